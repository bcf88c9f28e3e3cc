"""The C runtime on QEMU, byte-identical to host TFLM: every digits test sample on mps3-an547 (M55),
a kernel mix on each CPU board (M55, M4, M7, M33)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcudeploy.ml.tflite_builder import GraphBuilder
from mcudeploy.ml.tflm_host import run_tflm
from tests.graphs import conv, pool
from tests.qemu_tv import run_vectors, tv_outputs

QEMU = "qemu-an547"
# one QEMU board per CPU the runtime has a SIMD path for: M55 (MVE), M4, M7, M33 (DSP extension)
ARCH_BOARDS = ["qemu-an547", "qemu-an386", "qemu-an500", "qemu-an505"]


@pytest.mark.qemu
@pytest.mark.slow
def test_c_runtime_runs_every_digits_test_sample_on_qemu(
    digits_int8, digits_test_int8, tmp_path: Path
) -> None:
    x = digits_test_int8
    p, code, uart, rows = run_vectors(digits_int8, QEMU, x, tmp_path / "proj", num_vectors=len(x))
    assert code == 0, uart[-2000:]
    assert f"runtime=c timer=icount-instructions arena={p.arena_bytes}" in uart
    assert [int(r[0]) for r in rows] == list(range(len(x)))
    device = tv_outputs(rows)
    host = run_tflm(digits_int8, x).astype(np.int8).reshape(device.shape)
    assert int(np.count_nonzero(device != host)) == 0
    assert all(r[1] == "ok" for r in rows)
    # the same model and input cost the same instruction count on every sample but data-dependent
    # branches (padding borders are static): report, not assert, the spread; it must be nonzero work
    assert min(int(r[2]) for r in rows) > 10_000


def _weights(g: GraphBuilder, rng, shape, wscale, bias: int = 0, *, axis: int = 0, lim: int = 127):
    """Random weights in [-lim, lim] with per-channel scales drawn from ``wscale``, and a random bias in
    [-bias, bias) (none when 0)."""
    n = shape[axis]
    w = g.const(rng.integers(-lim, lim + 1, shape), "int8", scale=list(rng.uniform(*wscale, n)), axis=axis)
    return w, (g.const(rng.integers(-bias, bias, n), "int32", scale=[1e-4] * n) if bias else -1)


def _kernel_mix_model():
    """A small graph touching every path of the kernels that only the target compiles (Helium MVE on
    Cortex-M55, DSP SMLAD on Cortex-M4): im2col and in-place convolutions, channel tails, dilation,
    depthwise with multiplier 1 and 2, fully connected."""
    rng = np.random.default_rng(11)
    g = GraphBuilder()
    x = g.tensor((1, 8, 8, 12), "int8", 0.04, -7)
    w1, b1 = _weights(g, rng, (16, 3, 3, 12), (0.002, 0.02), 2000)
    c1 = g.tensor((1, 8, 8, 16), "int8", 0.08, -20)
    conv(g, [x, w1, b1], c1, padding=0, act=1)
    w2, b2 = _weights(g, rng, (1, 3, 3, 16), (0.005, 0.03), 500, axis=3)
    c2 = g.tensor((1, 8, 8, 16), "int8", 0.06, 3)
    conv(g, [c1, w2, b2], c2, padding=0, act=3, depth_multiplier=1)
    s = g.tensor((1, 8, 8, 16), "int8", 0.1, -4)
    g.op("ADD", [c1, c2], [s], fused_activation_function=0)
    # 1x1 convolution read in place, 7 output channels (tails of the 4-row MVE and 2-row DSP blocks);
    # multipliers 0.07..0.43 (right shifts of 1..4 bits) and small weights: many exact rounding ties
    w3, b3 = _weights(g, rng, (7, 1, 1, 16), (0.05, 0.3), 900, lim=4)
    c3 = g.tensor((1, 8, 8, 7), "int8", 0.07, 9)
    conv(g, [s, w3, b3], c3, padding=1)
    # depthwise on 7 channels (a 4-channel block and a 3-channel tail), 6 pixels a row (4 + 2)
    w3b, b3b = _weights(g, rng, (1, 3, 3, 7), (0.005, 0.03), 500, axis=3)
    c3b = g.tensor((1, 6, 6, 7), "int8", 0.06, -11)
    conv(g, [c3, w3b, b3b], c3b, padding=1, act=1, depth_multiplier=1)
    # dilated, strided, padded 3x3 convolution: patch of 63 bytes, taps gathered one by one
    w4, _ = _weights(g, rng, (5, 3, 3, 7), (0.002, 0.02))
    c4 = g.tensor((1, 3, 3, 5), "int8", 0.09, -3)
    conv(g, [c3b, w4, -1], c4, padding=0, stride=2, dilation=2, act=1)
    # depth multiplier 2 on 5 channels, border and inside pixels
    w5, b5 = _weights(g, rng, (1, 3, 3, 10), (0.005, 0.03), 500, axis=3)
    c5 = g.tensor((1, 3, 3, 10), "int8", 0.05, 6)
    conv(g, [c4, w5, b5], c5, padding=0, depth_multiplier=2)
    p = g.tensor((1, 1, 1, 10), "int8", 0.05, 6)
    pool(g, "AVERAGE_POOL_2D", c5, p, padding=1, size=2, stride=2)
    m = g.tensor((1, 10), "int8", 0.05, 2)
    g.op("MEAN", [p, g.const(np.array([1, 2]), "int32")], [m], keep_dims=False)
    wf = g.const(rng.integers(-127, 128, (10, 10)), "int8", scale=0.01)
    bf = g.const(rng.integers(-300, 300, 10), "int32", scale=float(np.float32(0.05) * np.float32(0.01)))
    f = g.tensor((1, 10), "int8", 0.2, 1)
    g.op("FULLY_CONNECTED", [m, wf, bf], [f], fused_activation_function=0)
    y = g.tensor((1, 10), "int8", 1 / 256, -128)
    g.op("SOFTMAX", [f], [y], beta=1.0)
    return g.build([x], [y], source="kernel_mix.tflite")


@pytest.mark.qemu
@pytest.mark.parametrize("board", ARCH_BOARDS)
def test_c_runtime_kernel_mix_on_qemu_matches_host_tflm(board: str, tmp_path: Path) -> None:
    """Each architecture path the runtime compiles (MVE on M55, DSP on M4/M7/M33) on its QEMU board."""
    model = _kernel_mix_model()
    x = np.random.default_rng(2).integers(-128, 128, (40, 8, 8, 12), dtype=np.int8)
    _, code, uart, rows = run_vectors(model, board, x, tmp_path / "proj")
    assert code == 0, uart[-2000:]
    device = tv_outputs(rows)
    assert device.tobytes() == run_tflm(model, x).astype(np.int8).tobytes()


def _requant_edge_model():
    """Three FULLY_CONNECTED layers at the edges of the kernels' requantization paths (quant.fast_requant):
    accumulators up to +-(2^30 - 1) with a 23-bit right shift (fast path, saturation only), the same with
    a RELU range (fast path, clamp), then a multiplier above 1 (the general path)."""
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    d, o = 16, 12
    x = g.tensor((1, d), "int8", 0.05, 0)
    layer_in, s_in = x, 0.05
    for k, (mult, act, zp) in enumerate([(1.3 * 2**-24, 0, 0), (1.7 * 2**-24, 1, 5), (1.5, 0, -3)]):
        if k < 2:  # one sign pattern per layer: inputs +-127/128 * sign reach 128 * sum|w|
            w = (np.where(np.arange(d) % 3 == 0, -1, 1) * rng.integers(1, 128, (o, d))).astype(np.int8)
            reach = 128 * np.abs(w.astype(np.int64)).sum(axis=1)
            # channels at +-(2^30 - 1 - reach) (the accumulator's bound), and around 0
            bias = [
                (-1) ** i * ((1 << 30) - 1 - int(r)) if i < 8 else int(r) * (i - 10)
                for i, r in enumerate(reach)
            ]
        else:  # a signed permutation: each output is 1.5 x one input, not saturated
            w = np.zeros((o, d), np.int8)
            w[np.arange(o), rng.permutation(d)[:o]] = rng.choice([-1, 1], o)
            bias = list(rng.integers(-20, 20, o))
        s_w = 0.001
        s_out = s_in * s_w / mult
        wt = g.const(w, "int8", scale=s_w)
        bt = g.const(np.array(bias), "int32", scale=float(np.float32(s_in) * np.float32(s_w)))
        y = g.tensor((1, o), "int8", s_out, zp)
        g.op("FULLY_CONNECTED", [layer_in, wt, bt], [y], fused_activation_function=act)
        layer_in, s_in, d = y, s_out, o
    return g.build([x], [layer_in], source="requant_edges.tflite")


@pytest.mark.qemu
@pytest.mark.parametrize("board", ARCH_BOARDS[1:])
def test_c_runtime_requantization_edges_on_qemu_match_host_tflm(board: str, tmp_path: Path) -> None:
    """The DSP fast requantization (SMMULR) at +-2^30 accumulators and the general path, on each DSP CPU."""
    from mcudeploy.firmware.runtime_c.lower import lower

    model = _requant_edge_model()
    assert [s.params[8] for s in lower(model).steps] == [2, 1, 0]  # FC_FASTRQ: each path once
    sign = np.where(np.arange(16) % 3 == 0, -1, 1)
    rng = np.random.default_rng(3)
    x = np.concatenate([[-128 * sign, 127 * sign, -127 * sign], rng.integers(-128, 128, (13, 16))])
    x = x.astype(np.int8).reshape(16, 1, 16)
    _, code, uart, rows = run_vectors(model, board, x, tmp_path / "proj")
    assert code == 0 and len(rows) == len(x), uart[-2000:]
    device = tv_outputs(rows)
    host = run_tflm(model, x).astype(np.int8)
    assert device.tobytes() == host.tobytes()
    assert len(np.unique(host)) > 8  # not all saturated


def _depthwise_taps_model():
    """Chained depthwise convolutions whose tap counts are not multiples of 3 (the DSP kernel's tap steps
    go 3 at a time, then one by one): 2x2 (4 taps), 1x1 (1), 5x5 padded (25), 1x2 (2), on 12 channels
    (three 4-channel blocks) and then 7 (a block and a 3-channel tail)."""
    rng = np.random.default_rng(8)
    g = GraphBuilder()
    src = g.tensor((1, 7, 6, 12), "int8", 0.05, -3)
    x, shape = src, (7, 6)
    valid, same = 1, 0  # TFLite's padding codes
    layers = [((2, 2), valid, 12), ((1, 1), valid, 12), ((5, 5), same, 12), ((1, 2), valid, 12)]
    for k, (kernel, pad, c) in enumerate(layers):
        oh = shape[0] - kernel[0] + 1 if pad == valid else shape[0]
        ow = shape[1] - kernel[1] + 1 if pad == valid else shape[1]
        w = g.const(
            rng.integers(-127, 128, (1, *kernel, c)), "int8", scale=list(rng.uniform(0.002, 0.02, c)), axis=3
        )
        b = g.const(rng.integers(-3000, 3000, c), "int32", scale=[1e-4] * c)
        y = g.tensor((1, oh, ow, c), "int8", 0.06, [-5, 2, 7, -1][k])
        conv(g, [x, w, b], y, padding=pad, act=[0, 1, 0, 3][k], depth_multiplier=1)
        x, shape = y, (oh, ow)
    w = g.const(rng.integers(-127, 128, (7, 1, 1, 12)), "int8", scale=list(rng.uniform(0.002, 0.02, 7)))
    p7 = g.tensor((1, *shape, 7), "int8", 0.07, 4)
    conv(g, [x, w, -1], p7, padding=1)
    w = g.const(
        rng.integers(-127, 128, (1, 3, 2, 7)), "int8", scale=list(rng.uniform(0.002, 0.02, 7)), axis=3
    )
    b = g.const(rng.integers(-3000, 3000, 7), "int32", scale=[1e-4] * 7)
    y = g.tensor((1, shape[0] - 2, shape[1] - 1, 7), "int8", 0.06, 0)
    conv(g, [p7, w, b], y, padding=valid, depth_multiplier=1)
    return g.build([src], [y], source="depthwise_taps.tflite")


@pytest.mark.qemu
def test_c_runtime_depthwise_tap_counts_on_qemu_match_host_tflm(tmp_path: Path) -> None:
    """The DSP depthwise tap steps (3 at a time, then single) for 1, 2, 4, 6 and 25 taps, on the M4."""
    model = _depthwise_taps_model()
    x = np.random.default_rng(4).integers(-128, 128, (12, 7, 6, 12), dtype=np.int8)
    _, code, uart, rows = run_vectors(model, "qemu-an386", x, tmp_path / "proj")
    assert code == 0 and len(rows) == len(x), uart[-2000:]
    host = run_tflm(model, x).astype(np.int8)
    assert tv_outputs(rows).tobytes() == host.tobytes()
    assert len(np.unique(host)) > 8  # not all saturated


def _depthwise_mix_model():
    """Depthwise convolutions (multiplier 1) over the channel blocks of the Helium path: 24 channels
    (16 + 8), 13 (8 + a predicated 5), 20 (16 + 4) and 3 (tail only); windows inside and across the
    border, stride 2, dilation, a 5x3 filter; per-channel scales that give left shifts, no shift and
    right shifts (the generic requantization) and only right shifts of >= 1 bit (the short form), with
    rounding ties from small weights. 1x1 convolutions change the channel count in between; the output
    is every depthwise result, a same-shape ADD with a predicated tail and a strided 1x1 convolution,
    flattened and concatenated (the 1x1 convolutions with 5, 24, 13 and 20 input channels and an odd number
    of pixels feed them)."""
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    x = g.tensor((1, 9, 7, 5), "int8", 0.05, 4)

    def pointwise(src, c_in: int, shape, zp: int):
        c_out = shape[-1]
        w = g.const(
            rng.integers(-127, 128, (c_out, 1, 1, c_in)), "int8", scale=list(rng.uniform(0.002, 0.02, c_out))
        )
        y = g.tensor(shape, "int8", 0.07, zp)
        conv(g, [src, w, -1], y, padding=1)
        return y

    def depthwise(src, shape, scales, wmax: int, act: int, kernel=(3, 3), dh=1, padding=0, stride=1):
        c = shape[-1]
        w = g.const(rng.integers(-wmax, wmax + 1, (1, *kernel, c)), "int8", scale=list(scales), axis=3)
        b = g.const(rng.integers(-3000, 3000, c), "int32", scale=[1e-4] * c)
        y = g.tensor(shape, "int8", 0.06, -5)  # one quantization: the outputs are concatenated
        conv(g, [src, w, b], y, padding=padding, stride=stride, dilation=(dh, 1), act=act, depth_multiplier=1)
        return y

    a = pointwise(x, 5, (1, 9, 7, 24), -9)
    # 0.07 * s / 0.06 for s in 0.01..1.2: multipliers 0.01..1.4 (shifts -6..+1)
    a = depthwise(a, (1, 9, 7, 24), rng.uniform(0.01, 1.2, 24), 127, 0)
    b = pointwise(a, 24, (1, 9, 7, 13), 3)
    # 1x1 convolution with stride 2 and multipliers up to 1.5 (left shifts: the general requantization),
    # 20 pixels in pairs, 6 outputs (a 4-row block and a 2-row tail)
    w1 = g.const(rng.integers(-3, 4, (6, 1, 1, 24)), "int8", scale=list(rng.uniform(0.3, 1.5, 6)))
    s2 = g.tensor((1, 5, 4, 6), "int8", 0.06, -5)
    g.op("CONV_2D", [a, w1, -1], [s2], padding=1, stride_h=2, stride_w=2, fused_activation_function=0)
    # small weights and multipliers 0.07..0.3 (right shifts of 2..4 bits): many exact ties, short form
    b = depthwise(b, (1, 5, 4, 13), rng.uniform(0.06, 0.25, 13), 3, 1, stride=2)
    c = pointwise(b, 13, (1, 5, 4, 20), -1)
    c = depthwise(c, (1, 5, 4, 20), rng.uniform(0.002, 0.02, 20), 127, 3, kernel=(5, 3), dh=2)
    d = pointwise(c, 20, (1, 5, 4, 3), 2)
    e = g.tensor((1, 3, 2, 3), "int8", 0.07, 2)
    pool(g, "MAX_POOL_2D", d, e, padding=1, size=3, stride=1)
    d = depthwise(d, (1, 3, 2, 3), rng.uniform(0.005, 0.03, 3), 127, 0, padding=1)
    # ADD of 18 elements (4 full vectors and a predicated 2) with different input scales (a right shift)
    s = g.tensor((1, 3, 2, 3), "int8", 0.06, -5)
    g.op("ADD", [d, e], [s], fused_activation_function=0)
    flat = []
    outs = (
        (a, 9 * 7 * 24),
        (b, 5 * 4 * 13),
        (c, 5 * 4 * 20),
        (d, 3 * 2 * 3),
        (s, 3 * 2 * 3),
        (s2, 5 * 4 * 6),
    )
    for t, n in outs:
        f = g.tensor((1, n), "int8", 0.06, -5)
        g.op("RESHAPE", [t, g.const(np.array([1, n]), "int32")], [f])
        flat.append(f)
    y = g.tensor((1, sum(n for _, n in outs)), "int8", 0.06, -5)
    g.op("CONCATENATION", flat, [y], axis=1)
    return g.build([x], [y], source="depthwise_mix.tflite")


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu-an547", "qemu-an386"])
def test_c_runtime_depthwise_mix_on_qemu_matches_host_tflm(board: str, tmp_path: Path) -> None:
    """Every channel block, tail and requantization form of the depthwise kernels, byte-identical."""
    model = _depthwise_mix_model()
    x = np.random.default_rng(3).integers(-128, 128, (24, 9, 7, 5), dtype=np.int8)
    _, code, uart, rows = run_vectors(model, board, x, tmp_path / "proj")
    assert code == 0 and len(rows) == len(x), uart[-2000:]
    assert tv_outputs(rows).tobytes() == run_tflm(model, x).astype(np.int8).tobytes()
