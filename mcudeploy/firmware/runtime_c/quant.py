"""TFLite's quantization arithmetic, computed at generation time exactly as TFLM's Prepare does.

Scales in a .tflite are float32; the installed tflite-micro (the reference) computes scale ratios
in double (RELU, LEAKY_RELU, FULLY_CONNECTED, conv, MUL, ADD ...) and a few values in float32
(activation bounds, HARD_SWISH, RESIZE coordinates). Each helper follows the order of the kernel
it serves, because a multiplier one LSB off is a different output byte.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127

# fused activation codes of the TFLite schema
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


def tf_round(x: float) -> int:
    """TfLiteRound / std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def f32(x: float) -> np.float32:
    return np.float32(x)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """QuantizeMultiplier (double-rounding build): ``m ≈ q * 2^(shift - 31)``, q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = tf_round(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def frexp_multiplier(m: float) -> tuple[int, int]:
    """The frexp-only variant LOGISTIC/TANH Prepare uses (no 2^31 correction)."""
    q, shift = math.frexp(m)
    return tf_round(q * (1 << 31)), shift


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """CalculateInputRadius."""
    v = 1.0 * ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return math.floor(v)


def quantize_value(f: float, scale: float, zero_point: int) -> int:
    """kernel_util's Quantize: zero_point + round(f / scale) in float32."""
    return zero_point + tf_round(float(f32(f) / f32(scale)))


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs."""
    lo, hi = INT8_MIN, INT8_MAX
    if act == ACT_RELU:
        lo = max(lo, quantize_value(0.0, scale, zero_point))
    elif act == ACT_RELU6:
        lo = max(lo, quantize_value(0.0, scale, zero_point))
        hi = min(hi, quantize_value(6.0, scale, zero_point))
    elif act == ACT_RELU_N1_TO_1:
        lo = max(lo, quantize_value(-1.0, scale, zero_point))
        hi = min(hi, quantize_value(1.0, scale, zero_point))
    elif act != ACT_NONE:
        raise ValueError(f"fused activation {act}")
    return lo, hi


def conv_multipliers(in_scale: float, filter_scales: tuple[float, ...], out_scale: float, channels: int):
    """PopulateConvolutionQuantizationParams: per channel, double(in) * double(f) / double(out)."""
    mults, shifts = [], []
    for c in range(channels):
        fs = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        m, s = quantize_multiplier(in_scale * fs / out_scale)
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def fc_multiplier(in_scale: float, filter_scale: float, out_scale: float) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler as the installed tflite-micro computes it: every product and
    ratio in double, with and without a bias (probed against host TFLM on accumulators where the
    float32 product gives another byte; the older sources multiply in float32 first)."""
    return quantize_multiplier(in_scale * filter_scale / out_scale)


def softmax_params(beta: float, in_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius with 5 integer bits: (mult, shift, diff_min)."""
    real = min(beta * in_scale * (1 << 26), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    return mult, shift, -input_radius(5, shift)


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """PrepareSimple's multiplier, folded with 1/count as reference QuantizedMeanOrSum does."""
    mult, shift = quantize_multiplier(in_scale / out_scale)
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return (mult << s) // count, shift - s


def downscale_to_int16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier: round a Q31 multiplier to Q15."""
    if m >= (2**31 - 1) - (1 << 15):
        return 2**15 - 1
    return (m + (1 << 15)) >> 16


def fast_requant(
    abs_wsum: list[int], bias: list[int], shifts: list[int], out_zp: int, lo: int, hi: int
) -> int:
    """The requantization path of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer (the kernels'
    FASTRQ flag, mcd_kernels.c requant_fast): 0 the general MultiplyByQuantizedMultiplier; 1 the fast
    form (one SMMULR, one add, one shift), exact when for every channel the shift is a right shift
    e >= 1, every reachable accumulator |acc| <= 128 * sum|w| + |folded bias| is below 2^30 and
    2^30 + 2^(e-1) + |out_zp| * 2^e < 2^31 (int8 inputs: |x| <= 128); 2 the same with an activation range
    of all int8 (clamping is one saturation)."""
    for a, b, s in zip(abs_wsum, bias, shifts, strict=True):
        e = -s
        if (
            e < 1
            or 128 * a + abs(b) >= 1 << 30
            or (1 << 30) + (1 << (e - 1)) + abs(out_zp) * (1 << e) >= 1 << 31
        ):
            return 0
    return 2 if (lo, hi) == (INT8_MIN, INT8_MAX) else 1
