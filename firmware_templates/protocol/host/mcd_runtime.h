/* Host build only: the agreed runtime interface (targets use the runtime's own mcd_runtime.h). */
#ifndef MCD_RUNTIME_H
#define MCD_RUNTIME_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int mcd_runtime_init(void);
int mcd_runtime_invoke(const void *input, void *output);
uint32_t mcd_runtime_arena_used(void);
const char *mcd_runtime_name(void);
uint64_t mcd_runtime_npu_cycles(void);
#ifdef __cplusplus
}
#endif
#endif
