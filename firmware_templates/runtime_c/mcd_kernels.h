/* mcudeploy standalone C runtime: int8 kernels with TFLite's reference arithmetic.
 *
 * Every kernel has the same shape so generated code, host tests (ctypes) and firmware call it alike:
 *   p   - int32 parameters precomputed at generation time (layout documented per kernel in mcd_kernels.c
 *         and mirrored by mcudeploy/runtime_c/lower.py),
 *   in  - input pointers (activations in the arena, constant weights/biases in flash),
 *   out - the output buffer.
 */
#ifndef MCD_KERNELS_H
#define MCD_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void mcd_k_conv2d(const int32_t *p, const void *const *in, void *out);
void mcd_k_depthwise_conv2d(const int32_t *p, const void *const *in, void *out);
void mcd_k_fully_connected(const int32_t *p, const void *const *in, void *out);
void mcd_k_avg_pool(const int32_t *p, const void *const *in, void *out);
void mcd_k_max_pool(const int32_t *p, const void *const *in, void *out);
void mcd_k_mean(const int32_t *p, const void *const *in, void *out);
void mcd_k_add(const int32_t *p, const void *const *in, void *out);
void mcd_k_mul(const int32_t *p, const void *const *in, void *out);
void mcd_k_pad(const int32_t *p, const void *const *in, void *out);
void mcd_k_concat(const int32_t *p, const void *const *in, void *out);
void mcd_k_softmax(const int32_t *p, const void *const *in, void *out);
void mcd_k_logistic(const int32_t *p, const void *const *in, void *out);
void mcd_k_tanh(const int32_t *p, const void *const *in, void *out);
void mcd_k_requantize(const int32_t *p, const void *const *in, void *out);
void mcd_k_clamp(const int32_t *p, const void *const *in, void *out);
void mcd_k_hard_swish(const int32_t *p, const void *const *in, void *out);
void mcd_k_leaky_relu(const int32_t *p, const void *const *in, void *out);
void mcd_k_quantize_f32(const int32_t *p, const void *const *in, void *out);
void mcd_k_dequantize_f32(const int32_t *p, const void *const *in, void *out);

#ifdef __cplusplus
}
#endif

#endif /* MCD_KERNELS_H */
