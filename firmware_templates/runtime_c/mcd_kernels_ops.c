/* Kernels for data movement (TRANSPOSE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK through one strided
 * gather, any element size), int8 RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR, SUB and TRANSPOSE_CONV, with the arithmetic of
 * TFLite Micro's reference kernels. Index tables and multipliers are computed at generation time by
 * mcudeploy/firmware/runtime_c/lower_ops.py, which writes the parameter layouts documented here.
 */
#include "mcd_kernels_ops.h"

#include <string.h>

/* ---- fixed point (the same primitives as mcd_kernels.c, kept private to this file) ------------ */
static int32_t ops_srdhm(int32_t a, int32_t b) /* SaturatingRoundingDoublingHighMul */
{
    if (a == b && a == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t ops_rdbpot(int32_t x, int e) /* RoundingDivideByPOT, e in 0..31 */
{
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t rem = x & mask;
    const int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

static int32_t ops_mbqm(int32_t x, int32_t m, int32_t shift) /* MultiplyByQuantizedMultiplier */
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x * ((uint32_t)1 << left));
    return ops_rdbpot(ops_srdhm(shifted, m), right);
}

static int32_t ops_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ---- GATHER4: p = [element bytes, base, d0, d1, d2, d3, s0, s1, s2, s3] -----------------------
 * y[n++] = x[base + i0*s0 + i1*s1 + i2*s2 + i3*s3] over the output box d (row-major). Base and strides
 * are in elements and may be negative (a reversed STRIDED_SLICE); elements are copied as bytes, so
 * any dtype moves (int8 models, and the float32 splits some converters leave between them). */
enum { G_ESIZE, G_BASE, G_D0, G_S0 = 6 };

void mcd_k_gather4(const int32_t *p, const void *const *in, void *out)
{
    const int32_t e = p[G_ESIZE];
    const uint8_t *x = (const uint8_t *)in[0] + p[G_BASE] * e;
    uint8_t *y = (uint8_t *)out;
    const int32_t *d = p + G_D0, *s = p + G_S0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0)
        for (int32_t i1 = 0; i1 < d[1]; ++i1)
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                const uint8_t *row = x + (i0 * s[0] + i1 * s[1] + i2 * s[2]) * e;
                if (s[3] == 1) {
                    memcpy(y, row, (size_t)(d[3] * e));
                    y += d[3] * e;
                } else if (e == 1) {
                    for (int32_t i3 = 0; i3 < d[3]; ++i3) *y++ = row[i3 * s[3]];
                } else {
                    for (int32_t i3 = 0; i3 < d[3]; ++i3, y += e) memcpy(y, row + i3 * s[3] * e, (size_t)e);
                }
            }
}

/* ---- SUB with 4-D broadcasting: the layout of mcd_kernels.c's ADD ------------------------------
 * p = [out dims 4, strides a 4, strides b 4, -zp a, -zp b, zp out, act min, act max, left shift,
 *      m1, s1, m2, s2, mo, so] */
enum { SB_D0, SB_SA = 4, SB_SB = 8, SB_IOFF1 = 12, SB_IOFF2, SB_OOFF, SB_AMIN, SB_AMAX, SB_LSHIFT, SB_M1, SB_S1,
       SB_M2, SB_S2, SB_MO, SB_SO };

void mcd_k_sub(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *a = (const int8_t *)in[0], *b = (const int8_t *)in[1];
    int8_t *y = (int8_t *)out;
    const int32_t *d = p + SB_D0, *sa = p + SB_SA, *sb = p + SB_SB;
    const int32_t lshift = (int32_t)1 << p[SB_LSHIFT];
    for (int32_t i0 = 0; i0 < d[0]; ++i0)
        for (int32_t i1 = 0; i1 < d[1]; ++i1)
            for (int32_t i2 = 0; i2 < d[2]; ++i2)
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    const int32_t va = a[i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3]] + p[SB_IOFF1];
                    const int32_t vb = b[i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3]] + p[SB_IOFF2];
                    const int32_t ra = ops_mbqm(va * lshift, p[SB_M1], p[SB_S1]);
                    const int32_t rb = ops_mbqm(vb * lshift, p[SB_M2], p[SB_S2]);
                    const int32_t v = ops_mbqm(ra - rb, p[SB_MO], p[SB_SO]) + p[SB_OOFF];
                    *y++ = (int8_t)ops_clamp(v, p[SB_AMIN], p[SB_AMAX]);
                }
}

/* ---- RESIZE_NEAREST_NEIGHBOR: p = [N, H, W, C, OH, OW, src row of each output row (OH),
 * src column of each output column (OW)]; the maps follow TFLM's GetNearestNeighbor (float32). */
enum { RS_N, RS_H, RS_W, RS_C, RS_OH, RS_OW, RS_HDR };

void mcd_k_resize_nearest(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    const int32_t H = p[RS_H], W = p[RS_W], C = p[RS_C], OH = p[RS_OH], OW = p[RS_OW];
    const int32_t *ymap = p + RS_HDR, *xmap = p + RS_HDR + OH;
    for (int32_t b = 0; b < p[RS_N]; ++b)
        for (int32_t oy = 0; oy < OH; ++oy)
            for (int32_t ox = 0; ox < OW; ++ox) {
                memcpy(y, x + ((b * H + ymap[oy]) * W + xmap[ox]) * C, (size_t)C);
                y += C;
            }
}

/* ---- RESIZE_BILINEAR (int8: TFLM's ResizeBilinearInteger, 10 fractional bits, double rounding) ----
 * p = [N, H, W, C, OH, OW, (scaled, lower, upper) per output row, the same per output column] */
void mcd_k_resize_bilinear(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    const int32_t H = p[RS_H], W = p[RS_W], C = p[RS_C], OH = p[RS_OH], OW = p[RS_OW];
    const int32_t *rows = p + RS_HDR, *cols = p + RS_HDR + 3 * OH;
    for (int32_t b = 0; b < p[RS_N]; ++b)
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t iy = rows[3 * oy], y0 = rows[3 * oy + 1], y1 = rows[3 * oy + 2];
            const int64_t wy1 = iy - (1 << 10) * y0, wy0 = (1 << 10) - wy1;
            for (int32_t ox = 0; ox < OW; ++ox) {
                const int32_t ix = cols[3 * ox], x0 = cols[3 * ox + 1], x1 = cols[3 * ox + 2];
                const int64_t wx1 = ix - (1 << 10) * x0, wx0 = (1 << 10) - wx1;
                const int8_t *p00 = x + ((b * H + y0) * W + x0) * C, *p10 = x + ((b * H + y1) * W + x0) * C;
                const int8_t *p01 = x + ((b * H + y0) * W + x1) * C, *p11 = x + ((b * H + y1) * W + x1) * C;
                for (int32_t c = 0; c < C; ++c) {
                    const int64_t v = p00[c] * wy0 * wx0 + p10[c] * wy1 * wx0 + p01[c] * wy0 * wx1 + p11[c] * wy1 * wx1;
                    const int64_t round = v > 0 ? (1 << 19) : -(1 << 19);
                    *y++ = (int8_t)((v + round) / (1 << 20));
                }
            }
        }
}

/* ---- TRANSPOSE_CONV (per-channel int8) --------------------------------------------------------
 * p = [N, H, W, C, OH, OW, OC, KH, KW, SH, SW, PH, PW, -zp in, zp out, act min, act max, mult (OC),
 *      shift (OC)]; filter [OC, KH, KW, C]; in = {input, filter, bias or NULL}.
 * TFLM scatters every input into an int32 scratch; gathering the same products per output gives the
 * same int32 sums (wrapping addition commutes) and needs no scratch buffer. */
enum { TC_N, TC_H, TC_W, TC_C, TC_OH, TC_OW, TC_OC, TC_KH, TC_KW, TC_SH, TC_SW, TC_PH, TC_PW, TC_IOFF, TC_OOFF,
       TC_AMIN, TC_AMAX, TC_HDR };

void mcd_k_transpose_conv(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    const int8_t *w = (const int8_t *)in[1];
    const int32_t *bias = (const int32_t *)in[2];
    int8_t *y = (int8_t *)out;
    const int32_t H = p[TC_H], W = p[TC_W], C = p[TC_C], OH = p[TC_OH], OW = p[TC_OW], OC = p[TC_OC];
    const int32_t KH = p[TC_KH], KW = p[TC_KW], SH = p[TC_SH], SW = p[TC_SW], ioff = p[TC_IOFF];
    const int32_t *mult = p + TC_HDR, *shift = p + TC_HDR + OC;
    for (int32_t b = 0; b < p[TC_N]; ++b)
        for (int32_t oy = 0; oy < OH; ++oy)
            for (int32_t ox = 0; ox < OW; ++ox)
                for (int32_t oc = 0; oc < OC; ++oc) {
                    uint32_t acc = 0; /* wraps like TFLM's int32 scratch */
                    for (int32_t ky = 0; ky < KH; ++ky) {
                        const int32_t ty = oy + p[TC_PH] - ky;
                        if (ty < 0 || ty % SH) continue;
                        const int32_t iy = ty / SH;
                        if (iy >= H) continue;
                        for (int32_t kx = 0; kx < KW; ++kx) {
                            const int32_t tx = ox + p[TC_PW] - kx;
                            if (tx < 0 || tx % SW) continue;
                            const int32_t ix = tx / SW;
                            if (ix >= W) continue;
                            const int8_t *xp = x + ((b * H + iy) * W + ix) * C;
                            const int8_t *wp = w + ((oc * KH + ky) * KW + kx) * C;
                            for (int32_t c = 0; c < C; ++c) acc += (uint32_t)((xp[c] + ioff) * wp[c]);
                        }
                    }
                    int32_t v = (int32_t)acc;
                    if (bias) v = (int32_t)((uint32_t)v + (uint32_t)bias[oc]);
                    v = ops_mbqm(v, mult[oc], shift[oc]) + p[TC_OOFF];
                    *y++ = (int8_t)ops_clamp(v, p[TC_AMIN], p[TC_AMAX]);
                }
}
