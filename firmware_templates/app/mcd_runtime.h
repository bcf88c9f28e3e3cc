/* mcudeploy runtime interface: implemented by each runtime (tflm, c); the app and the protocol
 * loop see nothing else, so the harness cannot tell the runtimes apart except by mcd_runtime_name(). */
#ifndef MCD_RUNTIME_H
#define MCD_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int mcd_runtime_init(void);                                /* 0 ok */
int mcd_runtime_invoke(const void *input, void *output);   /* raw I/O bytes; 0 ok */
uint32_t mcd_runtime_arena_used(void);
const char *mcd_runtime_name(void);                        /* "tflm" | "c" */
uint64_t mcd_runtime_npu_cycles(void);                     /* of the last invoke; 0 without NPU */

#ifdef __cplusplus
}
#endif
#endif /* MCD_RUNTIME_H */
