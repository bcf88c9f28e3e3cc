/* Ethos-U driver bring-up and PMU cycle counting for the TFLM runtime. */
#ifndef MCD_NPU_H
#define MCD_NPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int mcd_npu_init(void);
void mcd_npu_cycles_reset(void);
uint64_t mcd_npu_cycles(void);

#ifdef __cplusplus
}
#endif
#endif /* MCD_NPU_H */
