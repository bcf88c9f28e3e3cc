/* mcudeploy standalone C runtime: data-movement, resize, SUB and TRANSPOSE_CONV kernels.
 * Same calling convention as mcd_kernels.h; parameter layouts in mcd_kernels_ops.c, mirrored by
 * mcudeploy/firmware/runtime_c/lower_ops.py. */
#ifndef MCD_KERNELS_OPS_H
#define MCD_KERNELS_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void mcd_k_gather4(const int32_t *p, const void *const *in, void *out);
void mcd_k_sub(const int32_t *p, const void *const *in, void *out);
void mcd_k_resize_nearest(const int32_t *p, const void *const *in, void *out);
void mcd_k_resize_bilinear(const int32_t *p, const void *const *in, void *out);
void mcd_k_transpose_conv(const int32_t *p, const void *const *in, void *out);

#ifdef __cplusplus
}
#endif

#endif /* MCD_KERNELS_OPS_H */
