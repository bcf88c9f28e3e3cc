/* int8 kernels with TFLite's reference arithmetic (the rounding of TFLM's reference kernels).
 *
 * Written for mcudeploy from the published arithmetic (gemmlowp fixed point, TFLite quantization
 * utilities); parameter layouts are the enums below, mirrored by mcudeploy/firmware/runtime_c/lower.py.
 */
#include "mcd_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define MCD_MVE 1
#endif

/* ---- fixed-point primitives ------------------------------------------------------------------ */
static int32_t srdhm(int32_t a, int32_t b) /* SaturatingRoundingDoublingHighMul */
{
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t rdbpot(int32_t x, int e) /* RoundingDivideByPOT, e in 0..31 */
{
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t rem = x & mask;
    int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

static int32_t mbqm(int32_t x, int32_t m, int32_t shift) /* MultiplyByQuantizedMultiplier */
{
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    /* wraps like the reference on overflow; unsigned avoids C undefined behaviour */
    int32_t shifted = (int32_t)((uint32_t)x * ((uint32_t)1 << left));
    return rdbpot(srdhm(shifted, m), right);
}

static int32_t sat_shl(int32_t x, int e) /* SaturatingRoundingMultiplyByPOT, e > 0 */
{
    int32_t thr = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > thr) return INT32_MAX;
    if (x < -thr) return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

static int32_t clamp32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* gemmlowp exp on [-1/4, 0) for FixedPoint<int32, 0> */
static int32_t exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;  /* exp(-1/8) */
    const int32_t one_third = 715827883;
    int32_t x = a + (1 << 28);
    int32_t x2 = srdhm(x, x);
    int32_t x3 = srdhm(x2, x);
    int32_t x4 = srdhm(x2, x2);
    int32_t x4_over_4 = rdbpot(x4, 2);
    int32_t poly = rdbpot(srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values: input FixedPoint<int32, ibits>, result FixedPoint<int32, 0> */
static int32_t exp_neg(int32_t a, int ibits)
{
    static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fbits = 31 - ibits;
    const int32_t quarter = (int32_t)1 << (fbits - 2);
    int32_t a_mod = (a & (quarter - 1)) - quarter;
    int32_t result = exp_quarter(sat_shl(a_mod, ibits));
    int32_t remainder = a_mod - a;
    for (int k = -2; k <= 4; ++k) {
        if (ibits > k && (remainder & ((int32_t)1 << (fbits + k)))) result = srdhm(result, mults[k + 2]);
    }
    if (ibits > 5) {
        int32_t clamp = -((int32_t)1 << (36 - ibits));
        if (a < clamp) result = 0;
    }
    if (a == 0) result = INT32_MAX;
    return result;
}

static int clz32(uint32_t x)
{
    if (x == 0) return 32;
    int n = 0;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
}

static int32_t newton_recip_f2(int32_t a);
static int32_t one_over_one_plus_x(int32_t a) /* FixedPoint<int32,0> -> FixedPoint<int32,0> */
{
    return sat_shl(newton_recip_f2(a), 1); /* Rescale<0>(ExactMulByPot<-1>(x)) */
}

/* ---- requantization and dot products shared by CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED -------
 *
 * The lowering folds the input offset into the bias at generation time (bias + ioff * sum of the
 * weights, wrapped to int32): sum(w * (x + ioff)) + bias == sum(w * x) + folded bias in 32-bit two's
 * complement, and a tap that falls in the padding reads the input zero point (x + ioff == 0), which
 * the reference skips. So every path accumulates plain int8 products, in any order, and all paths
 * (plain C, Arm DSP SMLAD, Helium MVE) give the reference's bits. */

/* MultiplyByQuantizedMultiplier for m >= 0 (all conv/FC multipliers): SaturatingRoundingDoublingHighMul
 * is floor((a*b + 2^30) / 2^31) (for a*b < 0 the reference's nudge 1 - 2^30 then truncation towards
 * zero is the same floor), and saturates only for a == b == INT32_MIN, which m >= 0 excludes. */
static inline int32_t mbqm_pos(int32_t x, int32_t m, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t sx = (int32_t)((uint32_t)x << left);
    const int32_t hi = (int32_t)(((int64_t)sx * m + ((int64_t)1 << 30)) >> 31);
    return shift < 0 ? rdbpot(hi, -shift) : hi;
}

static inline int8_t requant1(int32_t acc, int32_t m, int32_t s, int32_t ooff, int32_t lo, int32_t hi)
{
    return (int8_t)clamp32(mbqm_pos(acc, m, s) + ooff, lo, hi);
}

#ifdef MCD_MVE
/* 4 lanes of MultiplyByQuantizedMultiplier: VQRDMULH is SaturatingRoundingDoublingHighMul exactly, and
 * RoundingDivideByPOT is gemmlowp's vector form (subtract 1 from negative values, then VRSHL). */
static inline int32x4_t mve_mbqm(int32x4_t acc, int32x4_t m, int32x4_t s)
{
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t right = vminq_s32(s, zero);
    int32x4_t v = vqrdmulhq_s32(vshlq_s32(acc, vmaxq_s32(s, zero)), m);
    v = vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, right), 31));
    return vrshlq_s32(v, right);
}

static inline int32x4_t mve_requant(int32x4_t acc, int32x4_t m, int32x4_t s, int32_t ooff, int32_t lo,
                                    int32_t hi)
{
    const int32x4_t v = vaddq_n_s32(mve_mbqm(acc, m, s), ooff);
    return vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}
#endif

#if !defined(MCD_MVE) && defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define MCD_DSP 1
static inline uint32_t ld32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int32_t sxtb16_ror8(uint32_t x) /* bytes 1 and 3, sign-extended to halfwords */
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#endif

/* ---- fast requantization, chosen per layer by the lowering ----------------------------------------
 * The layer's flag (CV_FASTRQ / FC_FASTRQ, quant.py fast_requant) is nonzero when, for every channel, the
 * shift is a right shift e = -shift >= 1, every accumulator the layer can reach is below 2^30 in
 * magnitude (128 * sum|w| + |folded bias|), and 2^30 + 2^(e-1) + |ooff| * 2^e < 2^31. Then exactly:
 * - SaturatingRoundingDoublingHighMul(acc, m) = floor((acc * m + 2^30) / 2^31) (see mbqm_pos)
 *   = floor((2acc * m + 2^31) / 2^32) = SMMULR(2acc, m), and 2acc does not overflow;
 * - RoundingDivideByPOT(h, e) rounds half away from zero: floor((h + 2^(e-1)) / 2^e) for h >= 0,
 *   floor((h + 2^(e-1) - 1) / 2^e) for h < 0, i.e. (h + 2^(e-1) - (h < 0)) >> e; ooff * 2^e added
 *   inside the floor adds ooff after it, so one constant (2 ooff + 1) << (e - 1) does both. |h| <= |acc|
 *   (m < 2^31), so the sum stays in int32.
 * Flag 2: the activation range is all of int8 (clamping is a saturation). Checked against the reference
 * formula on the domain's boundaries by tests/test_runtime_c_requant.py. */
static inline int32_t smmulr(int32_t a, int32_t b) /* (a * b + 2^31) >> 32 */
{
#if defined(MCD_DSP)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* mbqm_pos(acc, m, shift) + ooff on the fast domain; c = (2 * ooff + 1) << (e - 1), per channel */
static inline int32_t requant_fast_c(int32_t acc, int32_t m, int32_t shift, int32_t c)
{
    const int32_t h = smmulr((int32_t)((uint32_t)acc << 1), m);
    return (h + c + (h >> 31)) >> -shift;
}

static inline int32_t fast_c(int32_t ko, int32_t shift) /* ko = 2 * ooff + 1; ~shift = e - 1 */
{
    return (int32_t)((uint32_t)ko << ~shift);
}

static inline int32_t requant_fast(int32_t acc, int32_t m, int32_t shift, int32_t ko)
{
    return requant_fast_c(acc, m, shift, fast_c(ko, shift));
}

static inline int8_t sat8(int32_t v)
{
#if defined(MCD_DSP)
    return (int8_t)__ssat(v, 8);
#else
    return (int8_t)clamp32(v, -128, 127);
#endif
}

/* requantization of one layer: its output offset and activation range, and which path (flag above) */
typedef struct {
    int32_t ooff, ko, lo, hi, fast;
} rq_t;

static inline rq_t rq_make(int32_t fast, int32_t ooff, int32_t lo, int32_t hi)
{
    const rq_t r = {ooff, 2 * ooff + 1, lo, hi, fast};
    return r;
}

/* one output byte through path F (a literal: the callers branch once per group of outputs); c is
 * rq_c(F, s, r), shared by the outputs of one channel */
static inline __attribute__((always_inline)) int8_t rq_out(int F, int32_t acc, int32_t m, int32_t s, int32_t c,
                                                           const rq_t *r)
{
    if (F == 2) return sat8(requant_fast_c(acc, m, s, c));
    if (F == 1) return (int8_t)clamp32(requant_fast_c(acc, m, s, c), r->lo, r->hi);
    return requant1(acc, m, s, r->ooff, r->lo, r->hi);
}

static inline __attribute__((always_inline)) int32_t rq_c(int F, int32_t s, const rq_t *r)
{
    return F ? fast_c(r->ko, s) : 0;
}

static inline __attribute__((always_inline)) int8_t rq_one(int F, int32_t acc, int32_t m, int32_t s, const rq_t *r)
{
    return rq_out(F, acc, m, s, rq_c(F, s, r), r);
}

/* 4 consecutive channels of one pixel (acc with bias): every constant is read before the first store
 * (int8 stores may alias the tables, which would make the compiler read them again) */
static inline __attribute__((always_inline)) void rq4(int F, int32_t a0, int32_t a1, int32_t a2, int32_t a3,
                                                      const int32_t *mult, const int32_t *shift, const rq_t *r,
                                                      int8_t *dst)
{
    const int32_t s0 = shift[0], s1 = shift[1], s2 = shift[2], s3 = shift[3];
    const int8_t v0 = rq_out(F, a0, mult[0], s0, rq_c(F, s0, r), r), v1 = rq_out(F, a1, mult[1], s1, rq_c(F, s1, r), r);
    const int8_t v2 = rq_out(F, a2, mult[2], s2, rq_c(F, s2, r), r), v3 = rq_out(F, a3, mult[3], s3, rq_c(F, s3, r), r);
    dst[0] = v0;
    dst[1] = v1;
    dst[2] = v2;
    dst[3] = v3;
}

/* run the statement (which uses rq_out/rq_one/rq4(F, ...)) with F the layer's path as a constant */
#define RQ_PATHS(r, ...)                                                                                \
    do {                                                                                                \
        if ((r)->fast == 2) {                                                                           \
            enum { F = 2 };                                                                             \
            __VA_ARGS__;                                                                                \
        } else if ((r)->fast == 1) {                                                                    \
            enum { F = 1 };                                                                             \
            __VA_ARGS__;                                                                                \
        } else {                                                                                        \
            enum { F = 0 };                                                                             \
            __VA_ARGS__;                                                                                \
        }                                                                                               \
    } while (0)

#if defined(MCD_MVE)
/* MultiplyByQuantizedMultiplier of 4 lanes; rs: every shift is a right shift of >= 1 bit, so
 * RoundingDivideByPOT's fixup is -1 on negative values (as the layer's FASTRQ flag guarantees) */
static inline __attribute__((always_inline)) int32x4_t mve_rq(int32x4_t acc, int32x4_t m, int32x4_t s, int rs)
{
    if (!rs) return mve_mbqm(acc, m, s);
    const int32x4_t v = vqrdmulhq_s32(acc, m);
    return vrshlq_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), s);
}

/* gemv_requant on Helium: per block of 4 rows, 16 bytes of x against the 4 rows' chunks (VMLADAVA), the
 * loop written out (gcc adds a copy and pointer arithmetic per chunk), the 4 sums moved into one vector
 * two at a time, then requantized together */
static inline __attribute__((always_inline)) void gemv_mve(const int8_t *x, const int8_t *w, int32_t K, int32_t O,
                                                           const int32_t *bias, const int32_t *mult,
                                                           const int32_t *shift, int32_t ooff, int32_t lo,
                                                           int32_t hi, int8_t *out, int rs)
{
    const int32_t full = K >> 4, tail = K & 15;
    const mve_pred16_t ptail = vctp8q((uint32_t)tail);
    for (int32_t o = 0; o < O; o += 4) {
        const int8_t *xp = x;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (full) {
            int8x16_t vx, t0, t1;
            __asm__ volatile("dls lr, %[n]\n"
                             "1:\n\t"
                             "vldrb.8 %q[vx], [%[xp]], #16\n\t"
                             "vldrb.8 %q[t0], [%[wp], #16]\n\t"
                             "vldrb.8 %q[t1], [%[wp], #32]\n\t"
                             "vmladava.s8 %[a1], %q[t0], %q[vx]\n\t"
                             "vldrb.8 %q[t0], [%[wp], #48]\n\t"
                             "vmladava.s8 %[a2], %q[t1], %q[vx]\n\t"
                             "vldrb.8 %q[t1], [%[wp]], #64\n\t"
                             "vmladava.s8 %[a3], %q[t0], %q[vx]\n\t"
                             "vmladava.s8 %[a0], %q[t1], %q[vx]\n\t"
                             "le lr, 1b\n"
                             : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [vx] "=&w"(vx),
                               [t0] "=&w"(t0), [t1] "=&w"(t1), [xp] "+r"(xp), [wp] "+r"(w)
                             : [n] "r"(full)
                             : "lr", "memory");
        }
        if (tail) { /* each row's last K % 16 bytes, predicated */
            const int8x16_t vx = vldrbq_z_s8(xp, ptail);
            a0 = vmladavaq_s8(a0, vldrbq_z_s8(w, ptail), vx);
            a1 = vmladavaq_s8(a1, vldrbq_z_s8(w + tail, ptail), vx);
            a2 = vmladavaq_s8(a2, vldrbq_z_s8(w + 2 * tail, ptail), vx);
            a3 = vmladavaq_s8(a3, vldrbq_z_s8(w + 3 * tail, ptail), vx);
            w += 4 * tail;
        }
        int32x4_t acc = vdupq_n_s32(a0);
        acc = vsetq_lane_s32(a1, acc, 1);
        acc = vsetq_lane_s32(a2, acc, 2);
        acc = vsetq_lane_s32(a3, acc, 3);
        if (O - o >= 4) {
            acc = vaddq_s32(acc, vldrwq_s32(bias + o));
            acc = vaddq_n_s32(mve_rq(acc, vldrwq_s32(mult + o), vldrwq_s32(shift + o), rs), ooff);
            vstrbq_s32(out + o, vminq_s32(vmaxq_s32(acc, vdupq_n_s32(lo)), vdupq_n_s32(hi)));
        } else {
            const mve_pred16_t p4 = vctp32q((uint32_t)(O - o));
            acc = vaddq_s32(acc, vldrwq_z_s32(bias + o, p4));
            acc = vaddq_n_s32(mve_rq(acc, vldrwq_z_s32(mult + o, p4), vldrwq_z_s32(shift + o, p4), rs), ooff);
            vstrbq_p_s32(out + o, vminq_s32(vmaxq_s32(acc, vdupq_n_s32(lo)), vdupq_n_s32(hi)), p4);
        }
    }
}

/* two pixels through gemv_mve at once: each weight chunk is loaded once for both (4 rows x 2 pixels of
 * VMLADAVA, 8 accumulators in the 8 even registers VMLADAVA takes, so the loop counts down in an odd one) */
static inline __attribute__((always_inline)) void gemv2_mve(const int8_t *x0, const int8_t *x1, const int8_t *w,
                                                            int32_t K, int32_t O, const int32_t *bias,
                                                            const int32_t *mult, const int32_t *shift,
                                                            int32_t ooff, int32_t lo, int32_t hi, int8_t *y0,
                                                            int8_t *y1, int rs)
{
    const int32_t full = K >> 4, tail = K & 15;
    const mve_pred16_t ptail = vctp8q((uint32_t)tail);
    for (int32_t o = 0; o < O; o += 4) {
        const int8_t *p0 = x0, *p1 = x1;
#if defined(__OPTIMIZE__) /* unoptimized gcc cannot give the asm its 12 registers */
        register int32_t a0 __asm__("r0") = 0, a1 __asm__("r2") = 0, a2 __asm__("r4") = 0, a3 __asm__("r6") = 0;
        register int32_t b0 __asm__("r8") = 0, b1 __asm__("r10") = 0, b2 __asm__("r12") = 0;
        register int32_t b3 __asm__("lr") = 0;
        if (full) {
            int8x16_t v0, v1, t0, t1;
            int32_t n = full;
            __asm__ volatile("1:\n\t"
                             "vldrb.8 %q[v0], [%[p0]], #16\n\t"
                             "vldrb.8 %q[v1], [%[p1]], #16\n\t"
                             "vldrb.8 %q[t0], [%[w], #16]\n\t"
                             "vldrb.8 %q[t1], [%[w], #32]\n\t"
                             "vmladava.s8 %[a1], %q[t0], %q[v0]\n\t"
                             "vmladava.s8 %[b1], %q[t0], %q[v1]\n\t"
                             "vldrb.8 %q[t0], [%[w], #48]\n\t"
                             "vmladava.s8 %[a2], %q[t1], %q[v0]\n\t"
                             "vmladava.s8 %[b2], %q[t1], %q[v1]\n\t"
                             "vldrb.8 %q[t1], [%[w]], #64\n\t"
                             "vmladava.s8 %[a3], %q[t0], %q[v0]\n\t"
                             "vmladava.s8 %[b3], %q[t0], %q[v1]\n\t"
                             "vmladava.s8 %[a0], %q[t1], %q[v0]\n\t"
                             "vmladava.s8 %[b0], %q[t1], %q[v1]\n\t"
                             "subs %[n], %[n], #1\n\t"
                             "bne 1b\n"
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0),
                               [b1] "+r"(b1), [b2] "+r"(b2), [b3] "+r"(b3), [v0] "=&w"(v0), [v1] "=&w"(v1),
                               [t0] "=&w"(t0), [t1] "=&w"(t1), [p0] "+r"(p0), [p1] "+r"(p1), [w] "+r"(w),
                               [n] "+r"(n)
                             :
                             : "memory", "cc");
        }
#else
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        for (int32_t k = full; k > 0; --k, p0 += 16, p1 += 16, w += 64) {
            const int8x16_t v0 = vldrbq_s8(p0), v1 = vldrbq_s8(p1);
            int8x16_t t = vldrbq_s8(w);
            a0 = vmladavaq_s8(a0, t, v0);
            b0 = vmladavaq_s8(b0, t, v1);
            t = vldrbq_s8(w + 16);
            a1 = vmladavaq_s8(a1, t, v0);
            b1 = vmladavaq_s8(b1, t, v1);
            t = vldrbq_s8(w + 32);
            a2 = vmladavaq_s8(a2, t, v0);
            b2 = vmladavaq_s8(b2, t, v1);
            t = vldrbq_s8(w + 48);
            a3 = vmladavaq_s8(a3, t, v0);
            b3 = vmladavaq_s8(b3, t, v1);
        }
#endif
        int32_t sa0 = a0, sa1 = a1, sa2 = a2, sa3 = a3, sb0 = b0, sb1 = b1, sb2 = b2, sb3 = b3;
        if (tail) { /* each row's last K % 16 bytes, predicated */
            const int8x16_t v0 = vldrbq_z_s8(p0, ptail), v1 = vldrbq_z_s8(p1, ptail);
            int8x16_t t = vldrbq_z_s8(w, ptail);
            sa0 = vmladavaq_s8(sa0, t, v0);
            sb0 = vmladavaq_s8(sb0, t, v1);
            t = vldrbq_z_s8(w + tail, ptail);
            sa1 = vmladavaq_s8(sa1, t, v0);
            sb1 = vmladavaq_s8(sb1, t, v1);
            t = vldrbq_z_s8(w + 2 * tail, ptail);
            sa2 = vmladavaq_s8(sa2, t, v0);
            sb2 = vmladavaq_s8(sb2, t, v1);
            t = vldrbq_z_s8(w + 3 * tail, ptail);
            sa3 = vmladavaq_s8(sa3, t, v0);
            sb3 = vmladavaq_s8(sb3, t, v1);
            w += 4 * tail;
        }
        int32x4_t acc0 = vdupq_n_s32(sa0), acc1 = vdupq_n_s32(sb0);
        acc0 = vsetq_lane_s32(sa1, acc0, 1);
        acc1 = vsetq_lane_s32(sb1, acc1, 1);
        acc0 = vsetq_lane_s32(sa2, acc0, 2);
        acc1 = vsetq_lane_s32(sb2, acc1, 2);
        acc0 = vsetq_lane_s32(sa3, acc0, 3);
        acc1 = vsetq_lane_s32(sb3, acc1, 3);
        const int32x4_t vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(hi);
        if (O - o >= 4) {
            const int32x4_t vb = vldrwq_s32(bias + o), vm = vldrwq_s32(mult + o), vs = vldrwq_s32(shift + o);
            acc0 = vaddq_n_s32(mve_rq(vaddq_s32(acc0, vb), vm, vs, rs), ooff);
            acc1 = vaddq_n_s32(mve_rq(vaddq_s32(acc1, vb), vm, vs, rs), ooff);
            vstrbq_s32(y0 + o, vminq_s32(vmaxq_s32(acc0, vlo), vhi));
            vstrbq_s32(y1 + o, vminq_s32(vmaxq_s32(acc1, vlo), vhi));
        } else {
            const mve_pred16_t p4 = vctp32q((uint32_t)(O - o));
            const int32x4_t vb = vldrwq_z_s32(bias + o, p4), vm = vldrwq_z_s32(mult + o, p4);
            const int32x4_t vs = vldrwq_z_s32(shift + o, p4);
            acc0 = vaddq_n_s32(mve_rq(vaddq_s32(acc0, vb), vm, vs, rs), ooff);
            acc1 = vaddq_n_s32(mve_rq(vaddq_s32(acc1, vb), vm, vs, rs), ooff);
            vstrbq_p_s32(y0 + o, vminq_s32(vmaxq_s32(acc0, vlo), vhi), p4);
            vstrbq_p_s32(y1 + o, vminq_s32(vmaxq_s32(acc1, vlo), vhi), p4);
        }
    }
}
#endif

/* out[o] = requant(bias[o] + sum_k w[o][k] * x[k]) for o < O: the inner loop of CONV_2D (one output
 * pixel, x its im2col patch) and FULLY_CONNECTED (one batch row). w is in the generator's blocked layout
 * (lower.py blocked_rows): per block of 4 rows, the rows' 16-byte chunks side by side ([K/16][4][16]),
 * then each row's last K % 16 bytes ([4][K % 16]); a block is 4 * K bytes walked by one pointer. */
static __attribute__((noinline)) void gemv_requant(const int8_t *x, const int8_t *w, int32_t K, int32_t O, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, int32_t ooff, int32_t lo, int32_t hi,
                         int8_t *out, int32_t fast)
{
    const int32_t block = 4 * K;
#if !defined(MCD_MVE)
    const rq_t rq = rq_make(fast, ooff, lo, hi), *r = &rq;
#else
    (void)fast;
#endif
#if defined(MCD_MVE)
    (void)block;
    if (fast) gemv_mve(x, w, K, O, bias, mult, shift, ooff, lo, hi, out, 1);
    else gemv_mve(x, w, K, O, bias, mult, shift, ooff, lo, hi, out, 0);
#elif defined(MCD_DSP)
    for (int32_t o = 0; o < O; o += 4, w += block) {
        const int8_t *wp = w, *xp = x;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, k = K;
        for (; k >= 16; k -= 16, xp += 16, wp += 64) { /* SMLAD: two 16-bit MACs per instruction */
            for (int j = 0; j < 16; j += 4) {
                const uint32_t vx = ld32(xp + j);
                const int32_t xa = __sxtb16(vx), xb = sxtb16_ror8(vx);
                uint32_t u = ld32(wp + j);
                a0 = __smlad(__sxtb16(u), xa, a0);
                a0 = __smlad(sxtb16_ror8(u), xb, a0);
                u = ld32(wp + 16 + j);
                a1 = __smlad(__sxtb16(u), xa, a1);
                a1 = __smlad(sxtb16_ror8(u), xb, a1);
                u = ld32(wp + 32 + j);
                a2 = __smlad(__sxtb16(u), xa, a2);
                a2 = __smlad(sxtb16_ror8(u), xb, a2);
                u = ld32(wp + 48 + j);
                a3 = __smlad(__sxtb16(u), xa, a3);
                a3 = __smlad(sxtb16_ror8(u), xb, a3);
            }
        }
        for (int32_t j = 0; j < k; ++j) { /* each row's last K % 16 bytes */
            const int32_t v = xp[j];
            a0 += wp[j] * v;
            a1 += wp[k + j] * v;
            a2 += wp[2 * k + j] * v;
            a3 += wp[3 * k + j] * v;
        }
        if (O - o >= 4) {
            const int32_t *b = bias + o;
            RQ_PATHS(r, rq4(F, a0 + b[0], a1 + b[1], a2 + b[2], a3 + b[3], mult + o, shift + o, r, out + o));
        } else {
            const int32_t a[4] = {a0, a1, a2, a3};
            for (int32_t j = 0; j < O - o; ++j)
                RQ_PATHS(r, out[o + j] = rq_one(F, a[j] + bias[o + j], mult[o + j], shift[o + j], r));
        }
    }
#else
    for (int32_t o = 0; o < O; o += 4, w += block) {
        const int8_t *wp = w, *xp = x;
        int32_t a[4] = {0, 0, 0, 0}, k = K;
        for (; k >= 16; k -= 16, xp += 16, wp += 64)
            for (int r = 0; r < 4; ++r)
                for (int32_t j = 0; j < 16; ++j) a[r] += wp[16 * r + j] * xp[j];
        for (int r = 0; r < 4; ++r) /* each row's last K % 16 bytes */
            for (int32_t j = 0; j < k; ++j) a[r] += wp[k * r + j] * xp[j];
        const int32_t rows = O - o < 4 ? O - o : 4;
        for (int j = 0; j < rows; ++j)
            RQ_PATHS(r, out[o + j] = rq_one(F, a[j] + bias[o + j], mult[o + j], shift[o + j], r));
    }
#endif
}

#if defined(MCD_DSP)
/* The first K & ~3 bytes of x as SXTB16 halfword pairs, in the order the GEMV multiplies them: per word
 * of x, bytes 0/2 then bytes 1/3 (2 words out per word in). In place when x starts K bytes after xe: each
 * word is read before the expansion (2 words per word, from xe) reaches it. */
static void expand_pairs(const int8_t *x, int32_t K, int32_t *xe)
{
    for (int32_t k = K >> 2; k > 0; --k, x += 4, xe += 2) {
        const uint32_t v = ld32(x);
        xe[0] = __sxtb16(v);
        xe[1] = sxtb16_ror8(v);
    }
}

/* one word (4 bytes of K) of rows h and h + 1 (at wp + J and wp + 16 + J) times the next halfword pairs
 * of both pixels: SMLAD is the C path's __smlad (the same products and sums, wrapping alike) */
#define GEMV2_STEP(J)                                                                                   \
    "ldr %[u0], [%[wp], #" J "]\n\t"                                                                    \
    "ldr %[u1], [%[wp], #16+" J "]\n\t"                                                                 \
    "sxtb16 %[wb0], %[u0], ror #8\n\t"                                                                  \
    "sxtb16 %[u0], %[u0]\n\t"                                                                           \
    "sxtb16 %[wb1], %[u1], ror #8\n\t"                                                                  \
    "sxtb16 %[u1], %[u1]\n\t"                                                                           \
    "ldrd %[x0], %[x1], [%[p0]], #8\n\t"                                                                \
    "smlad %[a00], %[u0], %[x0], %[a00]\n\t"                                                            \
    "smlad %[a00], %[wb0], %[x1], %[a00]\n\t"                                                           \
    "smlad %[a10], %[u1], %[x0], %[a10]\n\t"                                                            \
    "smlad %[a10], %[wb1], %[x1], %[a10]\n\t"                                                           \
    "ldrd %[x0], %[x1], [%[p1]], #8\n\t"                                                                \
    "smlad %[a01], %[u0], %[x0], %[a01]\n\t"                                                            \
    "smlad %[a01], %[wb0], %[x1], %[a01]\n\t"                                                           \
    "smlad %[a11], %[u1], %[x0], %[a11]\n\t"                                                            \
    "smlad %[a11], %[wb1], %[x1], %[a11]\n\t"

/* gemv_requant for two output pixels at once: x0/x1 are the patches, e0/e1 their expand_pairs; rows in
 * pairs, so each weight word is unpacked once for both pixels (SMLAD on 2 rows x 2 pixels). */
static __attribute__((noinline)) void gemv2_requant(const int8_t *x0, const int8_t *x1, const int32_t *e0,
                                                    const int32_t *e1, const int8_t *w, int32_t K, int32_t O,
                                                    const int32_t *bias, const int32_t *mult,
                                                    const int32_t *shift, const rq_t *rin, int8_t *out0,
                                                    int8_t *out1)
{
    const rq_t rq = *rin, *r = &rq; /* a local copy: the output stores cannot alias it */
    const int32_t block = 4 * K, full = K >> 4, tail = K & 15;
    for (int32_t o = 0; o < O; o += 4, w += block) {
        const int32_t rows = O - o < 4 ? O - o : 4;
        for (int32_t h = 0; h < rows; h += 2) { /* rows h and h + 1 (a zero padding row past O) */
            const int8_t *wp = w + 16 * h;
            const int32_t *p0 = e0, *p1 = e1;
            int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
            for (int32_t c = full; c > 0; --c, wp += 64) {
                /* one 16-byte chunk of both rows: 64 instructions for 64 MACs (gcc's schedule of the same
                 * C spills and reloads on Cortex-M4: 84). Each pixel's halfword pairs come with one LDRD
                 * (e0/e1 are word aligned: the scratch is); weight words may be unaligned (LDR allows it). */
                int32_t u0, u1, wb0, wb1, x0, x1;
                __asm__(GEMV2_STEP("0") GEMV2_STEP("4") GEMV2_STEP("8") GEMV2_STEP("12")
                        : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [p0] "+r"(p0),
                          [p1] "+r"(p1), [u0] "=&r"(u0), [u1] "=&r"(u1), [wb0] "=&r"(wb0), [wb1] "=&r"(wb1),
                          [x0] "=&r"(x0), [x1] "=&r"(x1)
                        : [wp] "r"(wp)
                        : "memory");
            }
            const int8_t *t0 = w + 64 * full + tail * h, *t1 = t0 + tail; /* each row's last K % 16 */
            const int8_t *q0 = x0 + 16 * full, *q1 = x1 + 16 * full;
            int32_t j = 0;
            for (; j + 4 <= tail; j += 4) { /* whole words of the tail: both rows unpacked, then each pixel */
                uint32_t u = ld32(t0 + j);
                const int32_t wa0 = __sxtb16(u), wb0 = sxtb16_ror8(u);
                u = ld32(t1 + j);
                const int32_t wa1 = __sxtb16(u), wb1 = sxtb16_ror8(u);
                u = ld32(q0 + j);
                int32_t xa = __sxtb16(u), xb = sxtb16_ror8(u);
                a00 = __smlad(wb0, xb, __smlad(wa0, xa, a00));
                a10 = __smlad(wb1, xb, __smlad(wa1, xa, a10));
                u = ld32(q1 + j);
                xa = __sxtb16(u);
                xb = sxtb16_ror8(u);
                a01 = __smlad(wb0, xb, __smlad(wa0, xa, a01));
                a11 = __smlad(wb1, xb, __smlad(wa1, xa, a11));
            }
            for (; j < tail; ++j) { /* its last K % 4 bytes */
                a00 += t0[j] * q0[j];
                a01 += t0[j] * q1[j];
                a10 += t1[j] * q0[j];
                a11 += t1[j] * q1[j];
            }
            const int32_t i = o + h;
            /* each channel's constants once for both pixels, all read before the first store */
            RQ_PATHS(r, {
                const int32_t b0 = bias[i], m0 = mult[i], s0 = shift[i], c0 = rq_c(F, s0, r);
                const int8_t v00 = rq_out(F, a00 + b0, m0, s0, c0, r), v01 = rq_out(F, a01 + b0, m0, s0, c0, r);
                if (h + 1 < rows) {
                    const int32_t b1 = bias[i + 1], m1 = mult[i + 1], s1 = shift[i + 1], c1 = rq_c(F, s1, r);
                    const int8_t v10 = rq_out(F, a10 + b1, m1, s1, c1, r), v11 = rq_out(F, a11 + b1, m1, s1, c1, r);
                    out0[i] = v00;
                    out1[i] = v01;
                    out0[i + 1] = v10;
                    out1[i + 1] = v11;
                } else {
                    out0[i] = v00;
                    out1[i] = v01;
                }
            });
        }
    }
}
#endif

static inline void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
#ifdef MCD_MVE
    for (; n >= 16; n -= 16, src += 16, dst += 16) vstrbq_s8(dst, vldrbq_s8(src));
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
#else
    for (; n >= 4; n -= 4, src += 4, dst += 4) memcpy(dst, src, 4);
    while (n-- > 0) *dst++ = *src++;
#endif
}

static inline void fill_bytes(int8_t *dst, int8_t v, int32_t n)
{
    while (n-- > 0) *dst++ = v;
}

/* ---- CONV_2D / DEPTHWISE_CONV_2D -------------------------------------------------------------
 * p: the header below, then mult[OC], shift[OC], folded bias[OC] (a Helium build's DEPTHWISE_CONV_2D of
 * multiplier 1: lower.py mve_dw_blocks instead, see dw_mve). in: x, w, NULL, scratch (CONV_2D: the
 * im2col patches of two output pixels, 2*KH*KW*C bytes, unless the filter is 1x1 without padding;
 * DEPTHWISE_CONV_2D: C bytes, a row of input zero points that padding taps read). */
enum { CV_N, CV_H, CV_W, CV_C, CV_OH, CV_OW, CV_OC, CV_KH, CV_KW, CV_SH, CV_SW, CV_DH, CV_DW,
       CV_PH, CV_PW, CV_IOFF, CV_OOFF, CV_AMIN, CV_AMAX, CV_DM, CV_FASTRQ, CV_HDR };

static void add_flat(const int32_t *p, const int8_t *a, const int8_t *b, int8_t *y, int32_t n);

/* a fused ADD (mcd_k_conv2d_add): n bytes c of the convolution's output plus the other operand r, into y */
static void conv_add_out(const int32_t *ap, int32_t which, const int8_t *c, const int8_t *r, int8_t *y, int32_t n)
{
    if (which) add_flat(ap, r, c, y, n);
    else add_flat(ap, c, r, y, n);
}

#if defined(MCD_MVE)

/* CONV_2D with a 1x1 filter and no padding (the input read in place) on Helium: output pixels in pairs;
 * fused with an ADD (tmp set), each pair goes to tmp, then through the ADD (conv_add_out) to y */
static inline __attribute__((always_inline)) void conv1x1_mve(const int32_t *p, const int8_t *x, const int8_t *w,
                                                              int8_t *y, int rs, const int32_t *ap, int32_t which,
                                                              const int8_t *res, int8_t *tmp)
{
    int8_t *const y0 = y;
    const int32_t H = p[CV_H], W = p[CV_W], C = p[CV_C], OH = p[CV_OH], OW = p[CV_OW], OC = p[CV_OC];
    const int32_t SH = p[CV_SH], SW = p[CV_SW], ooff = p[CV_OOFF], lo = p[CV_AMIN], hi = p[CV_AMAX];
    const int32_t *mult = p + CV_HDR, *shift = mult + OC, *bias = shift + OC;
    const int32_t total = p[CV_N] * OH * OW;
    int32_t b = 0, oy = 0, ox = 0;
    const int8_t *first = 0;
    for (int32_t q = 0; q < total; ++q, y += OC) {
        const int8_t *px = x + ((b * H + oy * SH) * W + ox * SW) * C;
        if (++ox == OW) {
            ox = 0;
            if (++oy == OH) {
                oy = 0;
                ++b;
            }
        }
        if (!(q & 1)) {
            first = px;
            continue;
        }
        gemv2_mve(first, px, w, C, OC, bias, mult, shift, ooff, lo, hi, tmp ? tmp : y - OC, tmp ? tmp + OC : y, rs);
        if (tmp) conv_add_out(ap, which, tmp, res + (y - OC - y0), y - OC, 2 * OC);
    }
    if (total & 1) {
        gemv_mve(first, w, C, OC, bias, mult, shift, ooff, lo, hi, tmp ? tmp : y - OC, rs);
        if (tmp) conv_add_out(ap, which, tmp, res + (y - OC - y0), y - OC, OC);
    }
}

static __attribute__((noinline)) void conv1x1_mve_r(const int32_t *p, const int8_t *x, const int8_t *w, int8_t *y,
                                                    const int32_t *ap, int32_t which, const int8_t *res, int8_t *tmp)
{
    conv1x1_mve(p, x, w, y, 1, ap, which, res, tmp);
}

static __attribute__((noinline)) void conv1x1_mve_g(const int32_t *p, const int8_t *x, const int8_t *w, int8_t *y,
                                                    const int32_t *ap, int32_t which, const int8_t *res, int8_t *tmp)
{
    conv1x1_mve(p, x, w, y, 0, ap, which, res, tmp);
}
#endif

/* CONV_2D's im2col patch of a window that leaves the input (or is dilated): taps in the padding read the
 * input zero point. Out of line: few pixels take it, and its locals would bloat conv2d's stack frame. */
static __attribute__((noinline)) void im2col_border(const int32_t *p, const int8_t *xb, int32_t iy0, int32_t ix0,
                                                    int8_t *col)
{ /* the input zero point pads: it contributes 0 after the offset */
    const int32_t H = p[CV_H], W = p[CV_W], C = p[CV_C], KH = p[CV_KH], KW = p[CV_KW], DH = p[CV_DH];
    const int32_t DW = p[CV_DW];
    const int8_t pad = (int8_t)-p[CV_IOFF];
    int8_t *d = col;
    for (int32_t ky = 0; ky < KH; ++ky) {
        const int32_t iy = iy0 + DH * ky;
        if (iy < 0 || iy >= H) {
            fill_bytes(d, pad, KW * C);
            d += KW * C;
            continue;
        }
        const int8_t *row = xb + iy * W * C;
        if (DW == 1) { /* in-bounds taps of a row are contiguous */
            const int32_t k0 = ix0 < 0 ? -ix0 : 0;
            const int32_t k1 = W - ix0 < KW ? W - ix0 : KW;
            if (k1 <= k0) {
                fill_bytes(d, pad, KW * C);
            } else {
                fill_bytes(d, pad, k0 * C);
                copy_bytes(d + k0 * C, row + (ix0 + k0) * C, (k1 - k0) * C);
                fill_bytes(d + k1 * C, pad, (KW - k1) * C);
            }
            d += KW * C;
            continue;
        }
        for (int32_t kx = 0; kx < KW; ++kx, d += C) {
            const int32_t ix = ix0 + DW * kx;
            if (ix < 0 || ix >= W) fill_bytes(d, pad, C);
            else copy_bytes(d, row + ix * C, C);
        }
    }
}

/* ap: the parameters of an ADD fused after the convolution (NULL: none), which: the convolution's ADD
 * operand (0: the first), res: the other operand */
static __attribute__((noinline)) void conv2d_body(const int32_t *p, const void *const *in, void *out,
                                                  const int32_t *ap, int32_t which, const int8_t *res)
{
    const int8_t *x = (const int8_t *)in[0];
    const int8_t *w = (const int8_t *)in[1];
    int8_t *col = (int8_t *)in[3];
    int8_t *y = (int8_t *)out;
    const int32_t H = p[CV_H], W = p[CV_W], C = p[CV_C], OH = p[CV_OH], OW = p[CV_OW], OC = p[CV_OC];
    const int32_t KH = p[CV_KH], KW = p[CV_KW], SH = p[CV_SH], SW = p[CV_SW], DH = p[CV_DH], DW = p[CV_DW];
    const int32_t K = KH * KW * C, ooff = p[CV_OOFF], lo = p[CV_AMIN], hi = p[CV_AMAX];
    const int32_t *mult = p + CV_HDR, *shift = mult + OC, *bias = shift + OC;
    const int direct = KH == 1 && KW == 1 && p[CV_PH] == 0 && p[CV_PW] == 0;
    /* a fused ADD: each pixel (pair) goes to the scratch's first 2 * OC bytes, then through the ADD to y */
    int8_t *const tmp = ap ? col : 0, *const y0 = y;
    if (ap) col += (2 * OC + 15) & ~15;
#if defined(MCD_DSP)
    /* output pixels in pairs (gemv2_requant): the scratch holds two slots of F + K bytes (F = K & ~15,
     * lower.py conv_scratch), each a patch copied F bytes in and expanded in place to its first 2F
     * bytes (expand_pairs), so its raw K % 16 tail stays at 2F; the first pixel's slot waits */
    const int32_t F = K & ~15, slot = (F + K + 3) & ~3;
    const int8_t *pending = 0;
    int8_t *pending_y = 0;
    int8_t *const col0 = col;
    int32_t *const xe0 = (int32_t *)(void *)col0;
    int32_t *const xe1 = (int32_t *)(void *)(col0 + slot);
    const rq_t rq = rq_make(p[CV_FASTRQ], ooff, lo, hi);
#elif defined(MCD_MVE)
    /* output pixels in pairs (gemv2_mve): two K-byte patches (lower.py conv_scratch), the first waits */
    const int8_t *pending = 0;
    int8_t *pending_y = 0;
    int8_t *const col0 = col;
#endif
    for (int32_t b = 0; b < p[CV_N]; ++b) {
        const int8_t *xb = x + b * H * W * C;
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t iy0 = oy * SH - p[CV_PH];
            for (int32_t ox = 0; ox < OW; ++ox) {
                const int32_t ix0 = ox * SW - p[CV_PW];
                const int8_t *patch;
#if defined(MCD_DSP)
                col = col0 + (pending ? slot : 0) + F;
#elif defined(MCD_MVE)
                col = col0 + (pending ? K : 0);
#endif
                if (direct) {
                    patch = xb + (iy0 * W + ix0) * C;
                } else if (DW == 1 && iy0 >= 0 && ix0 >= 0 && iy0 + (KH - 1) * DH < H && ix0 + KW - 1 < W) {
                    /* the whole window inside: one copy per filter row */
                    const int8_t *row = xb + (iy0 * W + ix0) * C;
                    for (int32_t ky = 0; ky < KH; ++ky, row += DH * W * C) copy_bytes(col + ky * KW * C, row, KW * C);
                    patch = col;
                } else {
                    im2col_border(p, xb, iy0, ix0, col);
                    patch = col;
                }
#if defined(MCD_DSP)
                if (pending) {
                    expand_pairs(patch, F, xe1);
                    gemv2_requant(pending, patch, xe0, xe1, w, K, OC, bias, mult, shift, &rq, tmp ? tmp : pending_y,
                                  tmp ? tmp + OC : y);
                    if (tmp) conv_add_out(ap, which, tmp, res + (pending_y - y0), pending_y, 2 * OC);
                    pending = 0;
                } else {
                    expand_pairs(patch, F, xe0);
                    pending = patch;
                    pending_y = y;
                }
#elif defined(MCD_MVE) /* inlined: its setup and constants stay out of the pixel loop */
                if (pending) {
                    int8_t *const o0 = tmp ? tmp : pending_y, *const o1 = tmp ? tmp + OC : y;
                    if (p[CV_FASTRQ]) gemv2_mve(pending, patch, w, K, OC, bias, mult, shift, ooff, lo, hi, o0, o1, 1);
                    else gemv2_mve(pending, patch, w, K, OC, bias, mult, shift, ooff, lo, hi, o0, o1, 0);
                    if (tmp) conv_add_out(ap, which, tmp, res + (pending_y - y0), pending_y, 2 * OC);
                    pending = 0;
                } else {
                    pending = patch;
                    pending_y = y;
                }
#else
                gemv_requant(patch, w, K, OC, bias, mult, shift, ooff, lo, hi, tmp ? tmp : y, p[CV_FASTRQ]);
                if (tmp) conv_add_out(ap, which, tmp, res + (y - y0), y, OC);
#endif
                y += OC;
            }
        }
    }
#if defined(MCD_DSP)
    /* an odd last pixel: its patch's first F bytes are expanded now, so twice through the pair kernel */
    if (pending) {
        int8_t *const o = tmp ? tmp : pending_y;
        gemv2_requant(pending, pending, xe0, xe0, w, K, OC, bias, mult, shift, &rq, o, o);
        if (tmp) conv_add_out(ap, which, tmp, res + (pending_y - y0), pending_y, OC);
    }
#elif defined(MCD_MVE)
    if (pending) {
        gemv_mve(pending, w, K, OC, bias, mult, shift, ooff, lo, hi, tmp ? tmp : pending_y, p[CV_FASTRQ] != 0);
        if (tmp) conv_add_out(ap, which, tmp, res + (pending_y - y0), pending_y, OC);
    }
#endif
}

/* the 1x1 Helium path is dispatched before conv2d_body, whose frame (im2col pairs) it does not need: the
 * stack high-water mark counts in peak RAM */
static void conv2d(const int32_t *p, const void *const *in, void *out, const int32_t *ap, int32_t which,
                   const int8_t *res)
{
#if defined(MCD_MVE)
    if (p[CV_KH] == 1 && p[CV_KW] == 1 && p[CV_PH] == 0 && p[CV_PW] == 0) {
        const int8_t *x = (const int8_t *)in[0], *w = (const int8_t *)in[1];
        int8_t *const tmp = ap ? (int8_t *)in[3] : 0; /* a fused ADD's pixel pair, as in conv2d_body */
        if (p[CV_FASTRQ]) conv1x1_mve_r(p, x, w, (int8_t *)out, ap, which, res, tmp);
        else conv1x1_mve_g(p, x, w, (int8_t *)out, ap, which, res, tmp);
        return;
    }
#endif
    conv2d_body(p, in, out, ap, which, res);
}

void mcd_k_conv2d(const int32_t *p, const void *const *in, void *out)
{
    conv2d(p, in, out, 0, 0, 0);
}

/* CONV_2D whose output only feeds a same-shape ADD (lower.py fuse_conv_add), so that output never exists:
 * p = {offset of the ADD's parameters in p, the convolution's ADD operand (0: the first), the CONV_2D
 * parameters, the ADD's}; in: x, w, NULL, scratch (2 * OC bytes rounded up to 16, then the CONV_2D
 * scratch), the other ADD operand, which the output may overwrite in place (each pixel's bytes are read
 * right before they are written). */
void mcd_k_conv2d_add(const int32_t *p, const void *const *in, void *out)
{
    conv2d(p + 2, in, out, p + p[0], p[1], (const int8_t *)in[4]);
}

/* DEPTHWISE_CONV_2D with depth multiplier 1: per output pixel a table of one input pointer per tap (a
 * row of input zero points for taps in the padding), then channels in blocks of 4 with a plain loop
 * over the taps. The zero-point row and the tables live in the scratch buffer (lower.py dw_scratch). */

#ifndef MCD_MVE
/* noinline: inlined into the pixel loop its 4 accumulators spill on Cortex-M4 */
#ifdef MCD_DSP
/* one tap of 4 channels: the tap's input pointer (post-incremented table), its word at byte c0, the
 * tap's weights as SXTB16 pairs from the layer's expansion (LDRD, post-incremented); SMLABB/SMLATT as
 * the C form __smlabb/__smlatt (channels 0/2 from bytes 0/2, 1/3 from bytes 1/3) */
#define DW_TAP                                                                                          \
    "ldr %[xp], [%[tp]], #4\n\t"                                                                         \
    "ldr %[xw], [%[xp], %[c0]]\n\t"                                                                      \
    "ldrd %[w02], %[w13], [%[we]], #8\n\t"                                                              \
    "sxtb16 %[xp], %[xw], ror #8\n\t"                                                                   \
    "sxtb16 %[xw], %[xw]\n\t"                                                                           \
    "smlabb %[a0], %[xw], %[w02], %[a0]\n\t"                                                            \
    "smlatt %[a2], %[xw], %[w02], %[a2]\n\t"                                                            \
    "smlabb %[a1], %[xp], %[w13], %[a1]\n\t"                                                            \
    "smlatt %[a3], %[xp], %[w13], %[a3]\n\t"
#define DW_TAP_OPERANDS                                                                                 \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [tp] "+r"(tpp), [we] "+r"(wq),        \
      [xp] "=&r"(xp), [xw] "=&r"(xw), [w02] "=&r"(w02), [w13] "=&r"(w13)                                  \
    : [c0] "r"(c0)                                                                                      \
    : "memory"

/* the layer's weights for 4-channel blocks as SXTB16 halfword pairs, per block its T taps one after the
 * other (2 words each: channels 0/2, 1/3), so a block walks them with one post-incremented LDRD */
static void dw_expand_weights(const int8_t *w, int32_t T, int32_t C, int32_t *we)
{
    for (int32_t c0 = 0; c0 + 4 <= C; c0 += 4)
        for (int32_t t = 0; t < T; ++t, we += 2) {
            const uint32_t v = ld32(w + t * C + c0);
            we[0] = __sxtb16(v);
            we[1] = sxtb16_ror8(v);
        }
}
#endif

static __attribute__((noinline)) void dw_taps_requant(const int8_t *const *tp, int32_t T, const int8_t *w, int32_t C,
                            const int32_t *bias, const int32_t *mult, const int32_t *shift, const rq_t *rin,
                            int8_t *y, const int32_t *we)
{
    const rq_t rq = *rin, *r = &rq; /* a local copy: the output stores cannot alias it */
    int32_t c0 = 0;
#ifdef MCD_DSP
    for (; c0 + 4 <= C; c0 += 4) { /* channels c0..c0+3 of a word: bytes 0/2 and 1/3 as halfword pairs */
        int32_t a0 = bias[c0], a1 = bias[c0 + 1], a2 = bias[c0 + 2], a3 = bias[c0 + 3];
        const int8_t *const *tpp = tp;
        const int32_t *wq = we + 2 * T * (c0 >> 2);
        const int8_t *xp;
        int32_t xw, w02, w13;
        int32_t t = T;
        for (; t >= 3; t -= 3) __asm__(DW_TAP DW_TAP DW_TAP DW_TAP_OPERANDS);
        for (; t > 0; --t) __asm__(DW_TAP DW_TAP_OPERANDS);
        RQ_PATHS(r, rq4(F, a0, a1, a2, a3, mult + c0, shift + c0, r, y + c0));
    }
#else
    (void)we;
#endif
    for (; c0 < C; ++c0) {
        int32_t acc = bias[c0];
        const int8_t *wp = w + c0;
        for (int32_t t = 0; t < T; ++t, wp += C) acc += *wp * tp[t][c0];
        RQ_PATHS(r, y[c0] = rq_one(F, acc, mult[c0], shift[c0], r));
    }
}
#endif

#ifdef MCD_MVE
/* Helium: one output pixel at a time, channels in blocks of 8 loaded as int16 lanes (VLDRB.S16), two
 * blocks per pass. VMULLB/VMULLT multiply the even/odd lanes into int32, so a block's accumulators hold
 * channels {0,2,4,6} and {1,3,5,7}: the lowering lays bias, multipliers and shifts out in that order
 * (lower.py mve_dw_blocks: per block bias, mult, shift, each even then odd), and VQMOVNB/VQMOVNT
 * interleave the results back into channel order. tap[t] is tap t's byte offset from the pixel base. */
/* 8 channels: a (even) and b (odd) requantized, narrowed with saturation to int16 (order-preserving, so
 * the clamp to [lo, hi] within int8 is unchanged), offset, clamped, stored in channel order */
static inline __attribute__((always_inline)) void dw_out8(int32x4_t a, int32x4_t b, const int32_t *rq,
                                                          int32_t ooff, int32_t lo, int32_t hi, int8_t *y,
                                                          int rs, int32_t n)
{
    a = mve_rq(a, vldrwq_s32(rq + 8), vldrwq_s32(rq + 16), rs);
    b = mve_rq(b, vldrwq_s32(rq + 12), vldrwq_s32(rq + 20), rs);
    int16x8_t r = vqmovntq_s32(vqmovnbq_s32(vreinterpretq_s16_s32(a), a), b);
    r = vqaddq_n_s16(r, (int16_t)ooff);
    r = vminq_s16(vmaxq_s16(r, vdupq_n_s16((int16_t)lo)), vdupq_n_s16((int16_t)hi));
    if (n) vstrbq_p_s16(y, r, vctp16q((uint32_t)n));
    else vstrbq_s16(y, r);
}

static inline __attribute__((always_inline)) void dw_block(const int8_t *xp, const int32_t *tap, int32_t T,
                                                           const int8_t *wp, int32_t C, const int32_t *rq,
                                                           int32_t ooff, int32_t lo, int32_t hi, int8_t *y,
                                                           int two, int32_t n, int rs)
{
    /* n > 0: a last block of n < 8 channels (predicated loads); two: 16 channels (rq: 2 blocks) */
    int32x4_t a0 = vldrwq_s32(rq), b0 = vldrwq_s32(rq + 4);
    if (two) { /* by hand: gcc spills an accumulator and re-adds the channel offset per tap (widening
                * loads take low registers: "l") */
        int32x4_t a1 = vldrwq_s32(rq + 24), b1 = vldrwq_s32(rq + 28);
        int16x8_t vx, vw;
        int32x4_t pr;
        const int32_t *tp = tap;
        const int8_t *q;
        __asm__ volatile("dls lr, %[T]\n"
                         "1:\n\t"
                         "ldr %[q], [%[tp]], #4\n\t"
                         "add %[q], %[q], %[xp]\n\t"
                         "vldrb.s16 %q[vx], [%[q]]\n\t"
                         "vldrb.s16 %q[vw], [%[wp]]\n\t"
                         "vmullb.s16 %q[pr], %q[vx], %q[vw]\n\t"
                         "vadd.i32 %q[a0], %q[a0], %q[pr]\n\t"
                         "vmullt.s16 %q[pr], %q[vx], %q[vw]\n\t"
                         "vadd.i32 %q[b0], %q[b0], %q[pr]\n\t"
                         "vldrb.s16 %q[vx], [%[q], #8]\n\t"
                         "vldrb.s16 %q[vw], [%[wp], #8]\n\t"
                         "vmullb.s16 %q[pr], %q[vx], %q[vw]\n\t"
                         "vadd.i32 %q[a1], %q[a1], %q[pr]\n\t"
                         "vmullt.s16 %q[pr], %q[vx], %q[vw]\n\t"
                         "vadd.i32 %q[b1], %q[b1], %q[pr]\n\t"
                         "add %[wp], %[wp], %[C]\n\t"
                         "le lr, 1b\n"
                         : [a0] "+w"(a0), [b0] "+w"(b0), [a1] "+w"(a1), [b1] "+w"(b1), [vx] "=&w"(vx),
                           [vw] "=&w"(vw), [pr] "=&w"(pr), [q] "=&l"(q), [tp] "+r"(tp), [wp] "+l"(wp)
                         : [T] "r"(T), [xp] "r"(xp), [C] "r"(C)
                         : "lr", "memory");
        dw_out8(a0, b0, rq, ooff, lo, hi, y, rs, 0);
        dw_out8(a1, b1, rq + 24, ooff, lo, hi, y + 8, rs, 0);
        return;
    }
    const mve_pred16_t p16 = vctp16q((uint32_t)(n ? n : 8));
    for (int32_t t = 0; t < T; ++t, wp += C) {
        const int8_t *q = xp + tap[t];
        const int16x8_t x0 = vldrbq_z_s16(q, p16), w0 = vldrbq_z_s16(wp, p16);
        a0 = vaddq_s32(a0, vmullbq_int_s16(x0, w0));
        b0 = vaddq_s32(b0, vmulltq_int_s16(x0, w0));
    }
    dw_out8(a0, b0, rq, ooff, lo, hi, y, rs, n);
}

static inline __attribute__((always_inline)) void dw_pixel(const int8_t *xp, const int32_t *tap, int32_t T,
                                                           const int8_t *w, int32_t C, const int32_t *rq,
                                                           int32_t ooff, int32_t lo, int32_t hi, int8_t *y,
                                                           int rs)
{
    int32_t c0 = 0;
    for (; c0 + 16 <= C; c0 += 16, rq += 48)
        dw_block(xp + c0, tap, T, w + c0, C, rq, ooff, lo, hi, y + c0, 1, 0, rs);
    if (C - c0 >= 8) {
        dw_block(xp + c0, tap, T, w + c0, C, rq, ooff, lo, hi, y + c0, 0, 0, rs);
        c0 += 8;
        rq += 24;
    }
    if (c0 < C) dw_block(xp + c0, tap, T, w + c0, C, rq, ooff, lo, hi, y + c0, 0, C - c0, rs);
}

#endif

#ifdef MCD_MVE
/* DEPTHWISE_CONV_2D multiplier 1 on Helium: a pixel whose window lies inside the input reads its taps at
 * offsets shared by all such pixels; a border pixel gets its own offsets from the input's start, taps
 * in the padding pointing at the zero-point row. Scratch: that row (C, rounded up to 16), then the two
 * tables of KH * KW int32 offsets (lower.py dw_scratch). */
static inline __attribute__((always_inline)) void dw_mve(const int32_t *p, const int8_t *x, const int8_t *w,
                                                         int8_t *padrow, int8_t *y, int rs)
{
    const int32_t H = p[CV_H], W = p[CV_W], C = p[CV_C], OH = p[CV_OH], OW = p[CV_OW];
    const int32_t KH = p[CV_KH], KW = p[CV_KW], SH = p[CV_SH], SW = p[CV_SW], DH = p[CV_DH], DW = p[CV_DW];
    const int32_t ooff = p[CV_OOFF], lo = p[CV_AMIN], hi = p[CV_AMAX], T = KH * KW;
    const int32_t *rq = p + CV_HDR + 1; /* lower.py mve_dw_blocks, after the form flag */
    int32_t *inner = (int32_t *)(void *)(padrow + ((C + 15) & ~15)), *border = inner + T;
    for (int32_t ky = 0, t = 0; ky < KH; ++ky)
        for (int32_t kx = 0; kx < KW; ++kx, ++t) inner[t] = (ky * DH * W + kx * DW) * C;
    for (int32_t b = 0; b < p[CV_N]; ++b) {
        const int8_t *xb = x + b * H * W * C;
        const int32_t pad_off = (int32_t)((intptr_t)padrow - (intptr_t)xb);
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t iy0 = oy * SH - p[CV_PH];
            const int rows_in = iy0 >= 0 && iy0 + (KH - 1) * DH < H;
            for (int32_t ox = 0; ox < OW; ++ox, y += C) {
                const int32_t ix0 = ox * SW - p[CV_PW];
                const int8_t *xp = xb;
                const int32_t *tap = border;
                if (rows_in && ix0 >= 0 && ix0 + (KW - 1) * DW < W) {
                    xp = xb + (iy0 * W + ix0) * C;
                    tap = inner;
                } else {
                    for (int32_t ky = 0, t = 0; ky < KH; ++ky) {
                        const int32_t iy = iy0 + DH * ky;
                        for (int32_t kx = 0; kx < KW; ++kx, ++t) {
                            const int32_t ix = ix0 + DW * kx;
                            border[t] = iy < 0 || iy >= H || ix < 0 || ix >= W ? pad_off : (iy * W + ix) * C;
                        }
                    }
                }
                dw_pixel(xp, tap, T, w, C, rq, ooff, lo, hi, y, rs);
            }
        }
    }
}

/* one copy of the pixel loop per requantization form */
static __attribute__((noinline)) void dw_mve_r(const int32_t *p, const int8_t *x, const int8_t *w, int8_t *padrow,
                                               int8_t *y)
{
    dw_mve(p, x, w, padrow, y, 1);
}

static __attribute__((noinline)) void dw_mve_g(const int32_t *p, const int8_t *x, const int8_t *w, int8_t *padrow,
                                               int8_t *y)
{
    dw_mve(p, x, w, padrow, y, 0);
}
#else
#define DW_PIX 1
#endif

static __attribute__((noinline)) void depthwise_body(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    const int8_t *w = (const int8_t *)in[1];
    int8_t *padrow = (int8_t *)in[3];
    int8_t *y = (int8_t *)out;
    const int32_t H = p[CV_H], W = p[CV_W], C = p[CV_C], OH = p[CV_OH], OW = p[CV_OW], OC = p[CV_OC];
    const int32_t KH = p[CV_KH], KW = p[CV_KW], SH = p[CV_SH], SW = p[CV_SW], DH = p[CV_DH], DW = p[CV_DW];
    const int32_t DM = p[CV_DM], ooff = p[CV_OOFF], lo = p[CV_AMIN], hi = p[CV_AMAX];
    const int32_t pad = -p[CV_IOFF];
    const int32_t *mult = p + CV_HDR, *shift = mult + OC, *bias = shift + OC;
    const int fast = DM == 1;
    if (fast) fill_bytes(padrow, (int8_t)pad, C);
#ifndef MCD_MVE
    const rq_t rq = rq_make(p[CV_FASTRQ], ooff, lo, hi);
    /* after the zero-point row, rounded up to 16 bytes: DW_PIX tables of KH * KW tap pointers; on DSP
     * then (8-byte aligned) the weights as halfword pairs (dw_expand_weights, lower.py dw_scratch) */
    const int8_t **tp = (const int8_t **)(void *)(padrow + ((C + 15) & ~15));
    const int32_t T = KH * KW;
    int32_t *we = 0;
#ifdef MCD_DSP
    if (fast) {
        we = (int32_t *)(void *)((int8_t *)tp + ((DW_PIX * T * (int32_t)sizeof *tp + 7) & ~7));
        dw_expand_weights(w, T, C, we);
    }
#endif
#endif
    for (int32_t b = 0; b < p[CV_N]; ++b) {
        const int8_t *xb = x + b * H * W * C;
#ifndef MCD_MVE
        if (fast) { /* DW_PIX output pixels at a time (across rows), each with its table of tap pointers */
            int32_t oy = 0, ox = 0; /* the first pixel of the group */
            for (int32_t q0 = 0; q0 < OH * OW; q0 += DW_PIX) {
                const int32_t npix = OH * OW - q0 < DW_PIX ? OH * OW - q0 : DW_PIX;
                for (int32_t j = 0, py = oy, px = ox; j < DW_PIX; ++j) {
                    const int32_t iy0 = py * SH - p[CV_PH], ix0 = px * SW - p[CV_PW];
                    if (j + 1 < npix && ++px == OW) { /* the next pixel; past npix repeat the last */
                        px = 0;
                        ++py;
                    }
                    int32_t t = 0;
                    for (int32_t ky = 0; ky < KH; ++ky) {
                        const int32_t iy = iy0 + DH * ky;
                        for (int32_t kx = 0; kx < KW; ++kx, ++t) {
                            const int32_t ix = ix0 + DW * kx;
                            tp[j * T + t] =
                                iy < 0 || iy >= H || ix < 0 || ix >= W ? padrow : xb + (iy * W + ix) * C;
                        }
                    }
                }
                dw_taps_requant(tp, T, w, C, bias, mult, shift, &rq, y, we);
                y += npix * OC;
                for (int32_t j = 0; j < npix; ++j)
                    if (++ox == OW) {
                        ox = 0;
                        ++oy;
                    }
            }
            continue;
        }
#endif
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t iy0 = oy * SH - p[CV_PH];
            for (int32_t ox = 0; ox < OW; ++ox, y += OC) {
                const int32_t ix0 = ox * SW - p[CV_PW];
                for (int32_t ic = 0; ic < C; ++ic)
                    for (int32_t m = 0; m < DM; ++m) {
                        const int32_t oc = m + ic * DM;
                        int32_t acc = bias[oc];
                        for (int32_t ky = 0; ky < KH; ++ky) {
                            const int32_t iy = iy0 + DH * ky;
                            for (int32_t kx = 0; kx < KW; ++kx) {
                                const int32_t ix = ix0 + DW * kx;
                                const int32_t v = iy < 0 || iy >= H || ix < 0 || ix >= W
                                                      ? pad
                                                      : xb[(iy * W + ix) * C + ic];
                                acc += w[(ky * KW + kx) * OC + oc] * v;
                            }
                        }
                        y[oc] = requant1(acc, mult[oc], shift[oc], ooff, lo, hi);
                    }
            }
        }
    }
}

/* Helium's multiplier-1 path is dispatched before depthwise_body's frame (the stack counts in peak RAM) */
void mcd_k_depthwise_conv2d(const int32_t *p, const void *const *in, void *out)
{
#ifdef MCD_MVE
    if (p[CV_DM] == 1) {
        int8_t *padrow = (int8_t *)in[3];
        fill_bytes(padrow, (int8_t)-p[CV_IOFF], p[CV_C]);
        if (p[CV_HDR]) dw_mve_r(p, (const int8_t *)in[0], (const int8_t *)in[1], padrow, (int8_t *)out);
        else dw_mve_g(p, (const int8_t *)in[0], (const int8_t *)in[1], padrow, (int8_t *)out);
        return;
    }
#endif
    depthwise_body(p, in, out);
}

/* ---- FULLY_CONNECTED --------------------------------------------------------------------------
 * p: the header below, then mult[O], shift[O] (per-tensor values repeated), bias[O]: folded with the
 * input offset when the weight zero point is 0 (int8 TFLite), else the plain bias. */
enum { FC_B, FC_D, FC_O, FC_IOFF, FC_WOFF, FC_OOFF, FC_AMIN, FC_AMAX, FC_FASTRQ, FC_HDR };

void mcd_k_fully_connected(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    const int8_t *w = (const int8_t *)in[1];
    int8_t *y = (int8_t *)out;
    const int32_t D = p[FC_D], O = p[FC_O], ioff = p[FC_IOFF], woff = p[FC_WOFF];
    const int32_t *mult = p + FC_HDR, *shift = mult + O, *bias = shift + O;
    for (int32_t b = 0; b < p[FC_B]; ++b, x += D, y += O) {
        if (woff == 0) {
            gemv_requant(x, w, D, O, bias, mult, shift, p[FC_OOFF], p[FC_AMIN], p[FC_AMAX], y, p[FC_FASTRQ]);
            continue;
        }
        for (int32_t o = 0; o < O; ++o) {
            const int8_t *wp = w + o * D;
            int32_t acc = bias[o];
            for (int32_t d = 0; d < D; ++d) acc += (wp[d] + woff) * (x[d] + ioff);
            y[o] = (int8_t)clamp32(mbqm(acc, mult[o], shift[o]) + p[FC_OOFF], p[FC_AMIN], p[FC_AMAX]);
        }
    }
}

/* ---- AVERAGE_POOL_2D / MAX_POOL_2D ----------------------------------------------------------- */
enum { PL_N, PL_H, PL_W, PL_C, PL_OH, PL_OW, PL_FH, PL_FW, PL_SH, PL_SW, PL_PH, PL_PW, PL_AMIN, PL_AMAX };

static int8_t avg_round(int32_t acc, int32_t count, int32_t lo, int32_t hi)
{
    if (count == 0) count = 1; /* the reference fails here; we never generate it */
    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
    return (int8_t)clamp32(acc, lo, hi);
}

/* per output pixel the window's bounds once, then channels (in vector blocks on MVE) over the window */
static void pool(const int32_t *p, const int8_t *x, int8_t *y, int is_max)
{
    const int32_t H = p[PL_H], W = p[PL_W], C = p[PL_C], OH = p[PL_OH], OW = p[PL_OW];
    const int32_t lo = p[PL_AMIN], hi = p[PL_AMAX];
    for (int32_t b = 0; b < p[PL_N]; ++b)
        for (int32_t oy = 0; oy < OH; ++oy)
            for (int32_t ox = 0; ox < OW; ++ox, y += C) {
                const int32_t iy0 = oy * p[PL_SH] - p[PL_PH], ix0 = ox * p[PL_SW] - p[PL_PW];
                const int32_t fy0 = iy0 < 0 ? -iy0 : 0, fx0 = ix0 < 0 ? -ix0 : 0;
                const int32_t fy1 = p[PL_FH] < H - iy0 ? p[PL_FH] : H - iy0;
                const int32_t fx1 = p[PL_FW] < W - ix0 ? p[PL_FW] : W - ix0;
                const int32_t ny = fy1 > fy0 ? fy1 - fy0 : 0, nx = fx1 > fx0 ? fx1 - fx0 : 0;
                const int8_t *base = x + ((b * H + iy0 + fy0) * W + ix0 + fx0) * C;
                int32_t c0 = 0;
#ifdef MCD_MVE
                if (is_max) {
                    for (; c0 < C; c0 += 16) {
                        const mve_pred16_t pr = vctp8q((uint32_t)(C - c0));
                        int8x16_t m = vdupq_n_s8(-128);
                        for (int32_t fy = 0; fy < ny; ++fy) {
                            const int8_t *xp = base + fy * W * C + c0;
                            for (int32_t fx = 0; fx < nx; ++fx, xp += C) m = vmaxq_s8(m, vldrbq_z_s8(xp, pr));
                        }
                        m = vminq_s8(vmaxq_s8(m, vdupq_n_s8((int8_t)lo)), vdupq_n_s8((int8_t)hi));
                        vstrbq_p_s8(y + c0, m, pr);
                    }
                } else {
                    for (; c0 < C; c0 += 4) {
                        const mve_pred16_t pr = vctp32q((uint32_t)(C - c0));
                        int32x4_t acc = vdupq_n_s32(0);
                        for (int32_t fy = 0; fy < ny; ++fy) {
                            const int8_t *xp = base + fy * W * C + c0;
                            for (int32_t fx = 0; fx < nx; ++fx, xp += C) acc = vaddq_s32(acc, vldrbq_z_s32(xp, pr));
                        }
                        int32_t lane[4];
                        vstrwq_s32(lane, acc);
                        for (int32_t j = 0; j < 4 && c0 + j < C; ++j) y[c0 + j] = avg_round(lane[j], ny * nx, lo, hi);
                    }
                }
#endif
                for (; c0 < C; ++c0) {
                    int32_t acc = is_max ? -128 : 0;
                    for (int32_t fy = 0; fy < ny; ++fy) {
                        const int8_t *xp = base + fy * W * C + c0;
                        for (int32_t fx = 0; fx < nx; ++fx, xp += C) {
                            if (is_max) acc = *xp > acc ? *xp : acc;
                            else acc += *xp;
                        }
                    }
                    y[c0] = is_max ? (int8_t)clamp32(acc, lo, hi) : avg_round(acc, ny * nx, lo, hi);
                }
            }
}

void mcd_k_avg_pool(const int32_t *p, const void *const *in, void *out)
{
    pool(p, (const int8_t *)in[0], (int8_t *)out, 0);
}

void mcd_k_max_pool(const int32_t *p, const void *const *in, void *out)
{
    pool(p, (const int8_t *)in[0], (int8_t *)out, 1);
}

/* ---- MEAN (any axes of a 4-D view) ----------------------------------------------------------- */
enum { MN_D0, MN_R0 = 4, MN_IZP = 8, MN_OZP, MN_MULT, MN_SHIFT, MN_COUNT };

void mcd_k_mean(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    const int32_t *d = p + MN_D0, *r = p + MN_R0;
    if (!r[0] && r[1] && r[2] && !r[3]) { /* NHWC over H and W (global average pooling): channels inner */
        const int32_t pix = d[1] * d[2], C = d[3];
        for (int32_t b = 0; b < d[0]; ++b, x += pix * C, y += C) {
            int32_t c0 = 0;
#ifdef MCD_MVE
            for (; c0 + 4 <= C; c0 += 4) {
                int32x4_t acc = vdupq_n_s32(0);
                const int8_t *xp = x + c0;
                for (int32_t i = 0; i < pix; ++i, xp += C) acc = vaddq_s32(acc, vldrbq_s32(xp));
                int32_t lane[4];
                vstrwq_s32(lane, acc);
                for (int j = 0; j < 4; ++j) {
                    const int32_t v = mbqm(lane[j] - p[MN_IZP] * p[MN_COUNT], p[MN_MULT], p[MN_SHIFT]);
                    y[c0 + j] = (int8_t)clamp32(v + p[MN_OZP], -128, 127);
                }
            }
#endif
            for (; c0 < C; ++c0) {
                int32_t sum = 0;
                const int8_t *xp = x + c0;
                for (int32_t i = 0; i < pix; ++i, xp += C) sum += *xp;
                const int32_t v = mbqm(sum - p[MN_IZP] * p[MN_COUNT], p[MN_MULT], p[MN_SHIFT]);
                y[c0] = (int8_t)clamp32(v + p[MN_OZP], -128, 127);
            }
        }
        return;
    }
    int32_t od[4], o[4], k[4];
    for (int i = 0; i < 4; ++i) od[i] = r[i] ? 1 : d[i];
    int32_t n = 0;
    for (o[0] = 0; o[0] < od[0]; ++o[0])
        for (o[1] = 0; o[1] < od[1]; ++o[1])
            for (o[2] = 0; o[2] < od[2]; ++o[2])
                for (o[3] = 0; o[3] < od[3]; ++o[3]) {
                    int32_t sum = 0;
                    for (k[0] = 0; k[0] < (r[0] ? d[0] : 1); ++k[0])
                        for (k[1] = 0; k[1] < (r[1] ? d[1] : 1); ++k[1])
                            for (k[2] = 0; k[2] < (r[2] ? d[2] : 1); ++k[2])
                                for (k[3] = 0; k[3] < (r[3] ? d[3] : 1); ++k[3]) {
                                    int32_t idx = 0;
                                    for (int i = 0; i < 4; ++i) idx = idx * d[i] + (r[i] ? k[i] : o[i]);
                                    sum += x[idx];
                                }
                    const int32_t shifted = sum - p[MN_IZP] * p[MN_COUNT];
                    const int32_t v = mbqm(shifted, p[MN_MULT], p[MN_SHIFT]) + p[MN_OZP];
                    y[n++] = (int8_t)clamp32(v, -128, 127);
                }
}

/* ---- ADD / MUL with 4-D broadcasting (stride 0 on broadcast axes) ----------------------------- */
enum { BC_D0, BC_S1 = 4, BC_S2 = 8, BC_IOFF1 = 12, BC_IOFF2, BC_OOFF, BC_AMIN, BC_AMAX, BC_HDR };
enum { AD_LSHIFT = BC_HDR, AD_M1, AD_S1, AD_M2, AD_S2, AD_MO, AD_SO };
enum { ML_M = BC_HDR, ML_S };

static void binary(const int32_t *p, const int8_t *a, const int8_t *b, int8_t *y, int is_mul)
{
    const int32_t *d = p + BC_D0, *s1 = p + BC_S1, *s2 = p + BC_S2;
    int32_t n = 0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0)
        for (int32_t i1 = 0; i1 < d[1]; ++i1)
            for (int32_t i2 = 0; i2 < d[2]; ++i2)
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    const int32_t va = a[i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3]] + p[BC_IOFF1];
                    const int32_t vb = b[i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3]] + p[BC_IOFF2];
                    int32_t v;
                    if (is_mul) {
                        v = mbqm(va * vb, p[ML_M], p[ML_S]) + p[BC_OOFF];
                    } else {
                        const int32_t sa = mbqm(va * (1 << p[AD_LSHIFT]), p[AD_M1], p[AD_S1]);
                        const int32_t sb = mbqm(vb * (1 << p[AD_LSHIFT]), p[AD_M2], p[AD_S2]);
                        v = mbqm(sa + sb, p[AD_MO], p[AD_SO]) + p[BC_OOFF];
                    }
                    y[n++] = (int8_t)clamp32(v, p[BC_AMIN], p[BC_AMAX]);
                }
}

/* whether strides s walk the dims d in row-major order without broadcasting */
static int contiguous(const int32_t *d, const int32_t *s)
{
    int32_t step = 1;
    for (int i = 3; i >= 0; --i) {
        if (d[i] != 1 && s[i] != step) return 0;
        step *= d[i];
    }
    return 1;
}

/* ADD of two same-shape tensors: one flat loop, the reference's three rescalings per element */
#ifdef MCD_MVE
/* a same-shape ADD's constants, copied out of the parameters (the int8 stores may alias them, so read
 * through p they would be reloaded for every vector) */
typedef struct {
    int32_t o1, o2, ls, m1, m2, mo, r1, r2, ro, ooff, lo, hi;
} add_k;

/* 4 elements of a same-shape ADD whose shifts are all <= 0; the fixup masks have the sign bit set where a
 * right shift follows (RoundingDivideByPOT's -1 on negative values) */
static inline __attribute__((always_inline)) void add4_mve(const add_k k, const int8_t *a, const int8_t *b,
                                                           int8_t *y, mve_pred16_t pr, int tail)
{
    int32x4_t va = tail ? vldrbq_z_s32(a, pr) : vldrbq_s32(a);
    int32x4_t vb = tail ? vldrbq_z_s32(b, pr) : vldrbq_s32(b);
    va = vqrdmulhq_n_s32(vshlq_r_s32(vaddq_n_s32(va, k.o1), k.ls), k.m1);
    vb = vqrdmulhq_n_s32(vshlq_r_s32(vaddq_n_s32(vb, k.o2), k.ls), k.m2);
    va = vrshlq_n_s32(vqaddq_s32(va, vshrq_n_s32(vandq_s32(va, vdupq_n_s32(k.r1)), 31)), k.r1);
    vb = vrshlq_n_s32(vqaddq_s32(vb, vshrq_n_s32(vandq_s32(vb, vdupq_n_s32(k.r2)), 31)), k.r2);
    int32x4_t v = vqrdmulhq_n_s32(vaddq_s32(va, vb), k.mo);
    v = vrshlq_n_s32(vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, vdupq_n_s32(k.ro)), 31)), k.ro);
    v = vminq_s32(vmaxq_s32(vaddq_n_s32(v, k.ooff), vdupq_n_s32(k.lo)), vdupq_n_s32(k.hi));
    if (tail) vstrbq_p_s32(y, v, pr);
    else vstrbq_s32(y, v);
}
#endif

static void add_flat(const int32_t *p, const int8_t *a, const int8_t *b, int8_t *y, int32_t n)
{
    const int32_t scale = (int32_t)1 << p[AD_LSHIFT], o1 = p[BC_IOFF1], o2 = p[BC_IOFF2];
    const int32_t ooff = p[BC_OOFF], lo = p[BC_AMIN], hi = p[BC_AMAX];
#ifdef MCD_MVE
    if (p[AD_S1] <= 0 && p[AD_S2] <= 0 && p[AD_SO] <= 0) {
        /* every multiplier below one (as TFLite's ADD computes them): scalar-operand VQRDMULH and VRSHL;
         * full vectors unpredicated, the last partial one predicated */
        const add_k k = {o1, o2, p[AD_LSHIFT], p[AD_M1], p[AD_M2], p[AD_MO], p[AD_S1], p[AD_S2], p[AD_SO],
                         ooff, lo, hi};
        for (; n >= 4; n -= 4, a += 4, b += 4, y += 4) add4_mve(k, a, b, y, 0, 0);
        if (n > 0) add4_mve(k, a, b, y, vctp32q((uint32_t)n), 1);
        return;
    }
    const int32x4_t m1 = vdupq_n_s32(p[AD_M1]), s1 = vdupq_n_s32(p[AD_S1]);
    const int32x4_t m2 = vdupq_n_s32(p[AD_M2]), s2 = vdupq_n_s32(p[AD_S2]);
    const int32x4_t mo = vdupq_n_s32(p[AD_MO]), so = vdupq_n_s32(p[AD_SO]);
    for (; n > 0; n -= 4, a += 4, b += 4, y += 4) {
        const mve_pred16_t pr = vctp32q((uint32_t)n);
        const int32x4_t va = mve_mbqm(vmulq_n_s32(vaddq_n_s32(vldrbq_z_s32(a, pr), o1), scale), m1, s1);
        const int32x4_t vb = mve_mbqm(vmulq_n_s32(vaddq_n_s32(vldrbq_z_s32(b, pr), o2), scale), m2, s2);
        vstrbq_p_s32(y, mve_requant(vaddq_s32(va, vb), mo, so, ooff, lo, hi), pr);
    }
#else
    const int32_t s1 = p[AD_S1], s2 = p[AD_S2], so = p[AD_SO];
    if (p[AD_LSHIFT] <= 20 && s1 <= 0 && s2 <= 0 && so <= -1 && so >= -23) {
        /* requant_fast_c on ADD's own bounds: |x| = |(v + off) << 20| <= 255 * 2^20 < 2^28, so 2x fits and
         * SMMULR(2x, m) is SRDHM(x, m); a rescaled input is at most its x in magnitude, so |sa + sb| < 2^29,
         * and with e <= 23 the output's constant (2 ooff + 1) 2^(e-1) keeps the sum in int32. An input shift
         * of 0 (the larger input scale's: m = 2^30) divides by 1: no rounding constant, no sign fix. */
        const int32_t m1 = p[AD_M1], m2 = p[AD_M2], mo = p[AD_MO], sh = p[AD_LSHIFT] + 1;
        const int32_t e1 = -s1, e2 = -s2, co = fast_c(2 * ooff + 1, so);
        const int32_t c1 = e1 ? (int32_t)1 << (e1 - 1) : 0, f1 = e1 ? -1 : 0;
        const int32_t c2 = e2 ? (int32_t)1 << (e2 - 1) : 0, f2 = e2 ? -1 : 0;
        for (int32_t i = 0; i < n; ++i) {
            int32_t h1 = smmulr((int32_t)((uint32_t)(a[i] + o1) << sh), m1);
            int32_t h2 = smmulr((int32_t)((uint32_t)(b[i] + o2) << sh), m2);
            h1 = (h1 + c1 + ((h1 >> 31) & f1)) >> e1;
            h2 = (h2 + c2 + ((h2 >> 31) & f2)) >> e2;
            y[i] = (int8_t)clamp32(requant_fast_c(h1 + h2, mo, so, co), lo, hi);
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        const int32_t sa = mbqm_pos((a[i] + o1) * scale, p[AD_M1], p[AD_S1]);
        const int32_t sb = mbqm_pos((b[i] + o2) * scale, p[AD_M2], p[AD_S2]);
        y[i] = requant1(sa + sb, p[AD_MO], p[AD_SO], ooff, lo, hi);
    }
#endif
}

void mcd_k_add(const int32_t *p, const void *const *in, void *out)
{
    const int32_t *d = p + BC_D0;
    if (contiguous(d, p + BC_S1) && contiguous(d, p + BC_S2)) {
        add_flat(p, (const int8_t *)in[0], (const int8_t *)in[1], (int8_t *)out, d[0] * d[1] * d[2] * d[3]);
        return;
    }
    binary(p, (const int8_t *)in[0], (const int8_t *)in[1], (int8_t *)out, 0);
}

void mcd_k_mul(const int32_t *p, const void *const *in, void *out)
{
    binary(p, (const int8_t *)in[0], (const int8_t *)in[1], (int8_t *)out, 1);
}

/* ---- PAD / CONCATENATION ------------------------------------------------------------ */
enum { PD_I0, PD_O0 = 4, PD_B0 = 8, PD_VAL = 12 };

void mcd_k_pad(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    const int32_t *id = p + PD_I0, *od = p + PD_O0, *bf = p + PD_B0;
    int32_t n = 0;
    for (int32_t i0 = 0; i0 < od[0]; ++i0)
        for (int32_t i1 = 0; i1 < od[1]; ++i1)
            for (int32_t i2 = 0; i2 < od[2]; ++i2)
                for (int32_t i3 = 0; i3 < od[3]; ++i3) {
                    const int32_t j0 = i0 - bf[0], j1 = i1 - bf[1], j2 = i2 - bf[2], j3 = i3 - bf[3];
                    const int inside = j0 >= 0 && j0 < id[0] && j1 >= 0 && j1 < id[1] && j2 >= 0 &&
                                       j2 < id[2] && j3 >= 0 && j3 < id[3];
                    y[n++] = inside ? x[((j0 * id[1] + j1) * id[2] + j2) * id[3] + j3] : (int8_t)p[PD_VAL];
                }
}

/* p: [n_inputs, outer, chunk bytes of input 0..n-1] */
void mcd_k_concat(const int32_t *p, const void *const *in, void *out)
{
    int8_t *y = (int8_t *)out;
    for (int32_t o = 0; o < p[1]; ++o)
        for (int32_t i = 0; i < p[0]; ++i) {
            const int32_t chunk = p[2 + i];
            memcpy(y, (const int8_t *)in[i] + o * chunk, (size_t)chunk);
            y += chunk;
        }
}

/* ---- elementwise requantize (QUANTIZE int8->int8, RELU), clamp (RELU6), LEAKY_RELU ----------- */
enum { RQ_SIZE, RQ_IZP, RQ_OZP, RQ_MULT, RQ_SHIFT, RQ_AMIN, RQ_AMAX };

void mcd_k_requantize(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    for (int32_t i = 0; i < p[RQ_SIZE]; ++i) {
        const int32_t v = mbqm(x[i] - p[RQ_IZP], p[RQ_MULT], p[RQ_SHIFT]) + p[RQ_OZP];
        y[i] = (int8_t)clamp32(v, p[RQ_AMIN], p[RQ_AMAX]);
    }
}

void mcd_k_clamp(const int32_t *p, const void *const *in, void *out) /* p: size, lo, hi */
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    for (int32_t i = 0; i < p[0]; ++i) y[i] = (int8_t)clamp32(x[i], p[1], p[2]);
}

enum { LR_SIZE, LR_IZP, LR_OZP, LR_MI, LR_SI, LR_MA, LR_SA };

void mcd_k_leaky_relu(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    for (int32_t i = 0; i < p[LR_SIZE]; ++i) {
        const int32_t v = x[i] - p[LR_IZP];
        const int32_t r = v >= 0 ? mbqm(v, p[LR_MI], p[LR_SI]) : mbqm(v, p[LR_MA], p[LR_SA]);
        y[i] = (int8_t)clamp32(r + p[LR_OZP], -128, 127);
    }
}

/* ---- SOFTMAX (gemmlowp fixed point, as TFLM's reference) ------------------------------------- */
enum { SM_OUTER, SM_DEPTH, SM_MULT, SM_LSHIFT, SM_DIFFMIN };

void mcd_k_softmax(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    const int32_t depth = p[SM_DEPTH];
    for (int32_t i = 0; i < p[SM_OUTER]; ++i) {
        const int8_t *row = x + i * depth;
        int8_t *orow = y + i * depth;
        int32_t max = -128;
        for (int32_t c = 0; c < depth; ++c) max = row[c] > max ? row[c] : max;
        int32_t sum = 0; /* FixedPoint<int32, 12> */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = row[c] - max;
            if (diff >= p[SM_DIFFMIN]) {
                const int32_t scaled = srdhm(diff * (1 << p[SM_LSHIFT]), p[SM_MULT]);
                sum += rdbpot(exp_neg(scaled, 5), 12);
            }
        }
        const int headroom_plus_one = clz32((uint32_t)sum);
        const int bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum << headroom_plus_one) - ((uint32_t)1 << 31));
        const int32_t scale = one_over_one_plus_x(shifted_sum_minus_one);
        const int exponent = bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = row[c] - max;
            if (diff >= p[SM_DIFFMIN]) {
                const int32_t scaled = srdhm(diff * (1 << p[SM_LSHIFT]), p[SM_MULT]);
                const int32_t e = exp_neg(scaled, 5);
                const int32_t v = rdbpot(srdhm(scale, e), exponent) - 128;
                orow[c] = (int8_t)clamp32(v, -128, 127);
            } else {
                orow[c] = -128;
            }
        }
    }
}

/* ---- LOGISTIC / TANH ------------------------------------------------------------------------- */
enum { LG_SIZE, LG_IZP, LG_RADIUS, LG_MULT, LG_SHIFT };

/* gemmlowp 1/(1+x) and (1-x)/(1+x) for x in [0, 1): Newton-Raphson in FixedPoint<int32, 2> */
static int32_t newton_recip_f2(int32_t a)
{
    int64_t sum = (int64_t)a + INT32_MAX;
    int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* RoundingHalfSum(a, One) */
    const int32_t one_f2 = (int32_t)1 << 29;
    int32_t x = 1515870810 /* 48/17 */ + srdhm(half_den, -1010580540 /* -32/17 */);
    for (int i = 0; i < 3; ++i) x = x + sat_shl(srdhm(x, one_f2 - srdhm(half_den, x)), 2);
    return x;
}

static int32_t one_minus_x_over_one_plus_x(int32_t a)
{
    return sat_shl(newton_recip_f2(a) - ((int32_t)1 << 29), 2);
}

/* gemmlowp logistic of FixedPoint<int32, 4>, result FixedPoint<int32, 0> */
static int32_t logistic_q4(int32_t a)
{
    if (a == 0) return (int32_t)1 << 30;
    const int32_t pos = one_over_one_plus_x(exp_neg(a > 0 ? -a : a, 4));
    return a > 0 ? pos : INT32_MAX - pos;
}

/* gemmlowp tanh of FixedPoint<int32, 4>, result FixedPoint<int32, 0> */
static int32_t tanh_q4(int32_t a)
{
    if (a == 0) return 0;
    const int32_t n = a < 0 ? a : -a;
    const int32_t t = one_minus_x_over_one_plus_x(exp_neg(n, 5)); /* ExactMulByPot<1>: 5 integer bits */
    return a < 0 ? -t : t;
}

static void sigmoid_like(const int32_t *p, const int8_t *x, int8_t *y, int is_tanh)
{
    for (int32_t i = 0; i < p[LG_SIZE]; ++i) {
        const int32_t v = x[i] - p[LG_IZP];
        int32_t r;
        if (v <= -p[LG_RADIUS]) {
            r = -128;
        } else if (v >= p[LG_RADIUS]) {
            r = 127;
        } else {
            const int32_t q4 = mbqm(v, p[LG_MULT], p[LG_SHIFT]);
            r = is_tanh ? rdbpot(tanh_q4(q4), 24) : rdbpot(logistic_q4(q4), 23) - 128;
            r = clamp32(r, -128, 127);
        }
        y[i] = (int8_t)r;
    }
}

void mcd_k_logistic(const int32_t *p, const void *const *in, void *out)
{
    sigmoid_like(p, (const int8_t *)in[0], (int8_t *)out, 0);
}

void mcd_k_tanh(const int32_t *p, const void *const *in, void *out)
{
    sigmoid_like(p, (const int8_t *)in[0], (int8_t *)out, 1);
}

/* ---- HARD_SWISH (int16 fixed point, as TFLM's reference) --------------------------------------- */
enum { HS_SIZE, HS_IZP, HS_OZP, HS_OMULT, HS_OEXP, HS_RMULT, HS_REXP };

static int16_t srdhm16(int16_t a, int16_t b) /* gemmlowp SaturatingRoundingDoublingHighMul, int16 */
{
    if (a == b && a == INT16_MIN) return INT16_MAX;
    int32_t ab = (int32_t)a * (int32_t)b;
    int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (int16_t)((ab + nudge) / (1 << 15));
}

static int16_t sdhm16(int16_t a, int16_t b) /* the non-rounding variant of hard_swish.h */
{
    if (a == b && a == INT16_MIN) return INT16_MAX;
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t rdbpot16(int16_t x, int e)
{
    const int16_t mask = (int16_t)((1 << e) - 1);
    const int16_t rem = (int16_t)(x & mask);
    const int16_t thr = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
    return (int16_t)((x >> e) + (rem > thr ? 1 : 0));
}

static int16_t sat_shl16(int16_t v, int amount)
{
    int64_t r = (int64_t)v * (1 << amount);
    return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

void mcd_k_hard_swish(const int32_t *p, const void *const *in, void *out)
{
    const int8_t *x = (const int8_t *)in[0];
    int8_t *y = (int8_t *)out;
    const int rexp = p[HS_REXP];
    for (int32_t i = 0; i < p[HS_SIZE]; ++i) {
        const int16_t v = (int16_t)(x[i] - p[HS_IZP]);
        const int16_t hires = (int16_t)(v * (1 << 7));
        const int16_t pre_out = srdhm16(hires, (int16_t)p[HS_OMULT]);
        int16_t r = hires;
        if (rexp > 0) r = sat_shl16(r, rexp - 1);
        r = srdhm16(r, (int16_t)p[HS_RMULT]);
        if (rexp > 0) r = sat_shl16(r, 1);
        if (rexp < 0) r = rdbpot16(r, -rexp);
        r = (int16_t)((r + (1 << 15)) >> 1);
        int32_t o = rdbpot16(sdhm16(r, pre_out), -p[HS_OEXP]) + p[HS_OZP];
        y[i] = (int8_t)clamp32(o, -128, 127);
    }
}

/* ---- float edges ----------------------------------------------------------------------------- */
void mcd_k_quantize_f32(const int32_t *p, const void *const *in, void *out) /* p: size, zp, scale bits */
{
    const float *x = (const float *)in[0];
    int8_t *y = (int8_t *)out;
    float scale;
    memcpy(&scale, &p[2], sizeof scale);
    for (int32_t i = 0; i < p[0]; ++i) y[i] = (int8_t)clamp32((int32_t)roundf(x[i] / scale) + p[1], -128, 127);
}

void mcd_k_dequantize_f32(const int32_t *p, const void *const *in, void *out) /* p: size, zp, scale bits */
{
    const int8_t *x = (const int8_t *)in[0];
    float *y = (float *)out;
    float scale;
    memcpy(&scale, &p[2], sizeof scale);
    for (int32_t i = 0; i < p[0]; ++i) y[i] = (float)((double)scale * (double)(x[i] - p[1]));
}
