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

/* Per-layer profile (the protocol's PROFILE request). A layer is one operator the runtime executes,
 * in execution order. While a clock is set, every invoke stores each layer's clock() difference
 * (raw ticks, wrapping like the timer); NULL stops timing, so a plain invoke pays one test per layer. */
uint32_t mcd_runtime_layer_count(void);                    /* 0: this runtime cannot time layers */
uint32_t mcd_runtime_layer_op(uint32_t layer);             /* the model's operator index of a layer */
void mcd_runtime_profile_clock(uint32_t (*clock)(void));
uint32_t mcd_runtime_layer_ticks(uint32_t layer);          /* of the last timed invoke */

#ifdef __cplusplus
}
#endif
#endif /* MCD_RUNTIME_H */
