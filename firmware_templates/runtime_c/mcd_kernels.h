/* mcudeploy standalone C runtime: int8 kernels with TFLite's reference arithmetic.
 *
 * Every kernel has the same shape so generated code, host tests (ctypes) and firmware call it alike:
 *   p   - int32 parameters precomputed at generation time (layout documented per kernel in mcd_kernels.c
 *         and mirrored by mcudeploy/firmware/runtime_c/lower.py),
 *   in  - input pointers (activations in the arena, constant weights/biases in flash),
 *   out - the output buffer.
 */
#ifndef MCD_KERNELS_H
#define MCD_KERNELS_H

#include <stdint.h>

/* The kernel path the compiler's target selects; mcd_kernels.c picks its code with the same tests, and
 * the generated mcd_runtime_c.c, whose memory plan sizes the scratch for one path, checks it. Values:
 * the position in lower.py ARCHS, from 1. */
#define MCD_PATH_MVE 1  /* Helium (Cortex-M55/M85) */
#define MCD_PATH_DSP 2  /* DSP + SIMD32 (Cortex-M4/M7/M33) */
#define MCD_PATH_C32 3  /* plain C, 32-bit pointers */
#define MCD_PATH_HOST 4 /* plain C, 64-bit pointers (host tests) */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define MCD_KERNEL_PATH MCD_PATH_MVE
#elif defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#define MCD_KERNEL_PATH MCD_PATH_DSP
#elif UINTPTR_MAX <= 0xffffffffu
#define MCD_KERNEL_PATH MCD_PATH_C32
#else
#define MCD_KERNEL_PATH MCD_PATH_HOST
#endif

#ifdef __cplusplus
extern "C" {
#endif

void mcd_k_conv2d(const int32_t *p, const void *const *in, void *out);
void mcd_k_conv2d_add(const int32_t *p, const void *const *in, void *out);
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
