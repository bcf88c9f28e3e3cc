"""Per-kernel bit-exactness of the C runtime against host TFLM.

Each hypothesis example builds a single-op int8 model (mcudeploy.ml.tflite_builder) with random shapes,
options and quantization parameters, runs it through the host TFLM interpreter and through our
lowering + kernels (compiled once per session into a shared library), and compares bytes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.errors import UnsupportedError
from mcudeploy.firmware.runtime_c import quant
from mcudeploy.firmware.runtime_c.host import run_program
from mcudeploy.firmware.runtime_c.lower import lower
from mcudeploy.firmware.runtime_c.planner import plan_memory
from mcudeploy.ml.tflite_builder import GraphBuilder
from mcudeploy.ml.tflm_host import HostTFLM
from tests.exact_elementwise import OPS, Case, draw, mismatch
from tests.graphs import bias_scales, conv, int8_weights, pool
from tests.hyp import examples

SETTINGS = examples(60)

scales = st.floats(min_value=1e-3, max_value=0.5, allow_nan=False, allow_infinity=False)
zps = st.integers(min_value=-128, max_value=127)
acts = st.sampled_from([0, 1, 3])  # NONE, RELU, RELU6


def assert_bit_exact(model, seed: int, n: int = 3) -> None:
    rng = np.random.default_rng(seed)
    ref = HostTFLM(model)
    prog = lower(model)
    for _ in range(n):
        xs = []
        for t in model.inputs:
            if t.dtype == "float32":
                xs.append(rng.normal(0, 3, t.shape).astype(np.float32))
            else:
                xs.append(rng.integers(-128, 128, t.shape, dtype=np.int8))
        want = ref.run(*xs)
        got = run_program(prog, *xs)
        for w, g in zip(want, got, strict=True):
            assert w.tobytes() == g.tobytes(), f"differs:\nTFLM {w.ravel()[:64]}\nours {g.ravel()[:64]}"


def _out_size(pad: int, size: int, k: int, stride: int, dil: int) -> int:
    eff = (k - 1) * dil + 1
    return (size + stride - 1) // stride if pad == 0 else (size + stride - eff) // stride


conv_cases = st.fixed_dictionaries(
    {
        "h": st.integers(1, 9),
        "w": st.integers(1, 9),
        "c": st.integers(1, 5),
        "oc": st.integers(1, 6),
        "kh": st.integers(1, 4),
        "kw": st.integers(1, 4),
        "sh": st.integers(1, 3),
        "sw": st.integers(1, 3),
        "dh": st.integers(1, 2),
        "dw": st.integers(1, 2),
        "pad": st.sampled_from([0, 1]),
        "act": acts,
        "s_in": scales,
        "s_out": scales,
        "zp_in": zps,
        "zp_out": zps,
        "per_channel": st.booleans(),
        "bias": st.booleans(),
        "seed": st.integers(0, 2**16),
        "dm": st.integers(1, 3),
    }
)


def _conv_model(p: dict, depthwise: bool):
    oh = _out_size(p["pad"], p["h"], p["kh"], p["sh"], p["dh"])
    ow = _out_size(p["pad"], p["w"], p["kw"], p["sw"], p["dw"])
    if oh < 1 or ow < 1:
        return None
    rng = np.random.default_rng(p["seed"])
    oc = p["c"] * p["dm"] if depthwise else p["oc"]
    wscales = rng.uniform(0.002, 0.05, oc if p["per_channel"] else 1)
    g = GraphBuilder()
    x = g.tensor((1, p["h"], p["w"], p["c"]), "int8", p["s_in"], p["zp_in"])
    wshape = (1, p["kh"], p["kw"], oc) if depthwise else (oc, p["kh"], p["kw"], p["c"])
    w = g.const(
        int8_weights(rng, wshape), "int8", scale=list(wscales), zero_point=0, axis=3 if depthwise else 0
    )
    ins = [x, w]
    if p["bias"] or depthwise:  # TFLM's depthwise kernel dereferences a missing bias
        bscale = bias_scales(p["s_in"], wscales, oc)
        ins.append(g.const(rng.integers(-3000, 3000, oc), "int32", scale=bscale, zero_point=0))
    else:
        ins.append(-1)
    y = g.tensor((1, oh, ow, oc), "int8", p["s_out"], p["zp_out"])
    conv(
        g,
        ins,
        y,
        padding=p["pad"],
        stride=(p["sh"], p["sw"]),
        dilation=(p["dh"], p["dw"]),
        act=p["act"],
        depth_multiplier=p["dm"] if depthwise else None,
    )
    return g.build([x], [y])


@SETTINGS
@given(conv_cases)
def test_conv2d_bit_exact(p: dict) -> None:
    m = _conv_model(p, depthwise=False)
    if m is not None:
        assert_bit_exact(m, p["seed"])


@SETTINGS
@given(conv_cases)
def test_depthwise_conv2d_bit_exact(p: dict) -> None:
    m = _conv_model(p, depthwise=True)
    if m is not None:
        assert_bit_exact(m, p["seed"])


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 40),
    st.integers(1, 12),
    scales,
    scales,
    zps,
    zps,
    acts,
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_fully_connected_bit_exact(
    batch, depth, units, s_in, s_out, zp_in, zp_out, act, per_channel, bias, seed
) -> None:
    rng = np.random.default_rng(seed)
    wscales = list(rng.uniform(0.002, 0.05, units if per_channel else 1))
    g = GraphBuilder()
    x = g.tensor((batch, depth), "int8", s_in, zp_in)
    w = g.const(int8_weights(rng, (units, depth)), "int8", scale=wscales, zero_point=0)
    b = -1
    if bias:
        b = g.const(
            rng.integers(-5000, 5000, units), "int32", scale=bias_scales(s_in, wscales, units), zero_point=0
        )
    y = g.tensor((batch, units), "int8", s_out, zp_out)
    g.op("FULLY_CONNECTED", [x, w, b], [y], fused_activation_function=act)
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(
    st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"]),
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from([0, 1]),
    acts,
    scales,
    zps,
    st.integers(0, 2**16),
)
def test_pool_bit_exact(opcode, h, w, c, fh, fw, sh, sw, pad, act, s, zp, seed) -> None:
    oh, ow = _out_size(pad, h, fh, sh, 1), _out_size(pad, w, fw, sw, 1)
    if oh < 1 or ow < 1:
        return
    g = GraphBuilder()
    x = g.tensor((1, h, w, c), "int8", s, zp)
    y = g.tensor((1, oh, ow, c), "int8", s, zp)
    pool(g, opcode, x, y, padding=pad, size=(fh, fw), stride=(sh, sw), act=act)
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(
    st.lists(st.integers(1, 6), min_size=2, max_size=4),
    st.data(),
    st.booleans(),
    scales,
    scales,
    zps,
    zps,
    st.integers(0, 2**16),
)
def test_mean_bit_exact(shape, data, keep, s_in, s_out, zp_in, zp_out, seed) -> None:
    nd = len(shape)
    axes = data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    out = (
        [1 if i in axes else d for i, d in enumerate(shape)]
        if keep
        else [d for i, d in enumerate(shape) if i not in axes]
    )
    g = GraphBuilder()
    x = g.tensor(shape, "int8", s_in, zp_in)
    ax = g.const(np.array(axes), "int32")
    y = g.tensor(out or [1], "int8", s_out, zp_out)
    g.op("MEAN", [x, ax], [y], keep_dims=keep)
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(
    st.integers(1, 2),
    st.integers(1, 7),
    st.integers(1, 7),
    st.integers(1, 11),
    st.booleans(),
    scales,
    scales,
    zps,
    zps,
)
def test_mean_over_height_width_bit_exact(n, h, w, c, keep, s_in, s_out, zp_in, zp_out) -> None:
    """Global average pooling (axes 1, 2 of NHWC) takes MEAN's channels-inner path."""
    g = GraphBuilder()
    x = g.tensor((n, h, w, c), "int8", s_in, zp_in)
    y = g.tensor((n, 1, 1, c) if keep else (n, c), "int8", s_out, zp_out)
    g.op("MEAN", [x, g.const(np.array([1, 2]), "int32")], [y], keep_dims=keep)
    assert_bit_exact(g.build([x], [y]), h * 100 + w)


def _broadcast_shapes(draw) -> tuple[list[int], list[int], list[int]]:
    """Two operand shapes that broadcast (one possibly of lower rank) and their output shape."""
    out = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    a = [d if draw(st.booleans()) else 1 for d in out]
    b = [d if draw(st.booleans()) else 1 for d in out]
    b = b[draw(st.integers(0, len(b) - 1)) :]  # a lower-rank operand
    full = [max(x, y) for x, y in zip(a, [1] * (len(a) - len(b)) + b, strict=True)]
    return a, b, full


@SETTINGS
@given(
    st.sampled_from(["ADD", "MUL"]),
    st.data(),
    scales,
    scales,
    scales,
    zps,
    zps,
    zps,
    acts,
    st.booleans(),
    st.integers(0, 2**16),
)
def test_add_mul_bit_exact(opcode, data, s1, s2, so, z1, z2, zo, act, const_b, seed) -> None:
    check_binary_op(opcode, data.draw, (s1, s2, so), (z1, z2, zo), act, const_b, seed)


def check_binary_op(opcode: str, draw, scales3, zps3, act: int, const_b: bool, seed: int) -> None:
    """A broadcasting binary op (second operand a tensor or a constant) against host TFLM."""
    (s1, s2, so), (z1, z2, zo) = scales3, zps3
    a, b, out = _broadcast_shapes(draw)
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x1 = g.tensor(a, "int8", s1, z1)
    x2 = (
        g.const(rng.integers(-128, 128, b), "int8", scale=s2, zero_point=z2)
        if const_b
        else g.tensor(b, "int8", s2, z2)
    )
    y = g.tensor(out, "int8", so, zo)
    g.op(opcode, [x1, x2], [y], fused_activation_function=act)
    assert_bit_exact(g.build([x1] if const_b else [x1, x2], [y]), seed)


@SETTINGS
@given(st.integers(1, 70), scales, scales, scales, zps, zps, zps, acts, st.integers(0, 2**16))
def test_add_same_shape_bit_exact(n, s1, s2, so, z1, z2, zo, act, seed) -> None:
    """Operands of one shape take the flat (vectorised on MVE) ADD path."""
    g = GraphBuilder()
    x1, x2 = g.tensor((1, n), "int8", s1, z1), g.tensor((1, n), "int8", s2, z2)
    y = g.tensor((1, n), "int8", so, zo)
    g.op("ADD", [x1, x2], [y], fused_activation_function=act)
    assert_bit_exact(g.build([x1, x2], [y]), seed)


@SETTINGS
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=4),
    st.data(),
    scales,
    zps,
    st.booleans(),
    st.integers(0, 2**16),
)
def test_pad_bit_exact(shape, data, s, zp, v2, seed) -> None:
    pads = [[data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))] for _ in shape]
    out = [d + p[0] + p[1] for d, p in zip(shape, pads, strict=True)]
    g = GraphBuilder()
    x = g.tensor(shape, "int8", s, zp)
    pt = g.const(np.array(pads), "int32")
    y = g.tensor(out, "int8", s, zp)
    if v2:
        cv = g.const(np.array([data.draw(zps)]), "int8", scale=s, zero_point=zp)
        g.op("PADV2", [x, pt, cv], [y])
    else:
        g.op("PAD", [x, pt], [y])
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=4),
    st.data(),
    st.integers(1, 3),
    scales,
    zps,
    st.integers(0, 2**16),
)
def test_concatenation_bit_exact(shape, data, n, s, zp, seed) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    sizes = [data.draw(st.integers(1, 3)) for _ in range(n)]
    g = GraphBuilder()
    xs = [g.tensor([*shape[:a], k, *shape[a + 1 :]], "int8", s, zp) for k in sizes]
    y = g.tensor([*shape[:a], sum(sizes), *shape[a + 1 :]], "int8", s, zp)
    g.op("CONCATENATION", xs, [y], axis=axis)
    assert_bit_exact(g.build(xs, [y]), seed)


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 40),
    st.floats(0.005, 1.0),
    zps,
    st.sampled_from([1.0, 0.5, 2.0]),
    st.integers(0, 2**16),
)
def test_softmax_bit_exact(outer, depth, s, zp, beta, seed) -> None:
    g = GraphBuilder()
    x = g.tensor((outer, depth), "int8", s, zp)
    y = g.tensor((outer, depth), "int8", 1.0 / 256, -128)
    g.op("SOFTMAX", [x], [y], beta=beta)
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(
    st.sampled_from(["LOGISTIC", "TANH"]),
    st.integers(1, 64),
    st.floats(0.002, 0.5),
    zps,
    st.integers(0, 2**16),
)
def test_logistic_tanh_bit_exact(opcode, n, s, zp, seed) -> None:
    g = GraphBuilder()
    x = g.tensor((1, n), "int8", s, zp)
    y = (
        g.tensor((1, n), "int8", 1.0 / 256, -128)
        if opcode == "LOGISTIC"
        else g.tensor((1, n), "int8", 1 / 128, 0)
    )
    g.op(opcode, [x], [y])
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(
    st.sampled_from(["RELU", "RELU6", "LEAKY_RELU", "QUANTIZE", "HARD_SWISH"]),
    st.integers(1, 64),
    scales,
    scales,
    zps,
    zps,
    st.floats(0.01, 0.9),
    st.integers(0, 2**16),
)
def test_elementwise_bit_exact(opcode, n, s_in, s_out, zp_in, zp_out, alpha, seed) -> None:
    if opcode == "RELU6":  # TFLM's RELU6 assumes the output keeps the input's quantization
        s_out, zp_out = s_in, zp_in
    if opcode == "HARD_SWISH":  # TFLM (and we) refuse an output scale below input scale / 128
        s_out = max(s_out, s_in / 64)
    g = GraphBuilder()
    x = g.tensor((1, n), "int8", s_in, zp_in)
    y = g.tensor((1, n), "int8", s_out, zp_out)
    opts = {"alpha": alpha} if opcode == "LEAKY_RELU" else {}
    g.op(opcode, [x], [y], **opts)
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(st.integers(1, 64), scales, zps, st.integers(0, 2**16))
def test_float_edges_bit_exact(n, s, zp, seed) -> None:
    g = GraphBuilder()
    xf = g.tensor((1, n), "float32")
    q8 = g.tensor((1, n), "int8", s, zp)
    yf = g.tensor((1, n), "float32")
    g.op("QUANTIZE", [xf], [q8])
    g.op("DEQUANTIZE", [q8], [yf])
    assert_bit_exact(g.build([xf], [yf]), seed)


def test_reshape_aliases_without_copy() -> None:
    g = GraphBuilder()
    x = g.tensor((1, 4, 4, 2), "int8", 0.1, 0)
    r = g.tensor((1, 32), "int8", 0.1, 0)
    y = g.tensor((1, 32), "int8", 0.2, 3)
    g.op("RESHAPE", [x, g.const(np.array([1, 32]), "int32")], [r], new_shape=[1, 32])
    g.op("RELU", [r], [y])
    m = g.build([x], [y])
    prog = lower(m)
    assert [s.opcode for s in prog.steps] == ["RELU"]  # no copy kernel for the reshape
    assert prog.storage(r) == x
    assert_bit_exact(m, 7)


def test_unsupported_op_is_refused_by_name() -> None:
    g = GraphBuilder()
    x = g.tensor((1, 8), "int8", 0.1, 0)
    y = g.tensor((1, 8), "int8", 0.1, 0)
    g.op("EXP", [x], [y])
    with pytest.raises(UnsupportedError) as e:
        lower(g.build([x], [y]))
    assert "EXP" in str(e.value) and "--runtime tflm" in str(e.value)


@examples(200)
@given(st.floats(min_value=1e-9, max_value=1e3, allow_nan=False))
def test_quantize_multiplier_represents_the_scale(m: float) -> None:
    q, shift = quant.quantize_multiplier(m)
    if shift < -31 or q == 0:
        assert m < 2.0**-31
        return
    assert 2**30 <= q < 2**31
    assert math.isclose(q * 2.0 ** (shift - 31), m, rel_tol=2.0**-30)


def test_planner_reuses_memory_without_overlapping_live_tensors(digits_int8) -> None:
    prog = lower(digits_int8)
    plan = plan_memory(prog)
    ps = list(plan.placements.values())
    for i, a in enumerate(ps):
        for b in ps[i + 1 :]:
            if a.first <= b.last and b.first <= a.last:  # both live at some step
                disjoint = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
                # else an output written over its dying input: it starts at least delta below it
                ab, ba = (a.tensor, b.tensor), (b.tensor, a.tensor)
                o, x = (a, b) if ab in plan.overlaps else (b, a)
                assert disjoint or o.offset <= x.offset - plan.overlaps.get((o.tensor, x.tensor), 1 << 30), (
                    ab if ab in plan.overlaps or ba in plan.overlaps else "not an allowed overlap"
                )
    assert plan.overlaps and not plan.conflicts()
    assert plan.arena_bytes < plan.naive_bytes()
    assert plan.arena_bytes >= max(p.size for p in ps)


# -- constants in the reference's precision (issue: float32 multipliers accepted 1-LSB-wrong bytes) --
@pytest.mark.parametrize(
    "case",
    [
        # RELU with rescale: 0.5f/0.33333334f is 1.5 in float32, 1.4999999553 in double (TFLM: 118, not 119)
        Case("RELU", 0.5, float(np.float32(1 / 3)), 0, 0),
        # LEAKY_RELU, both multipliers (TFLM gives 19 for x = 2, a float32 alpha multiplier 20)
        Case("LEAKY_RELU", 0.25, float(np.float32(4 / 3)), 0, 19, float(np.float32(0.2))),
    ],
    ids=["relu", "leaky_relu"],
)
def test_elementwise_constants_use_the_reference_precision(case: Case) -> None:
    assert mismatch(case) is None


@pytest.mark.parametrize("op", OPS)
def test_elementwise_every_input_byte_sampled(op: str) -> None:
    """All 256 inputs for 40 fixed draws per op (the benchmark runs thousands: bench_elementwise_exact)."""
    rng = np.random.default_rng(list(OPS).index(op))
    bad = [(c, r) for c in (draw(op, rng) for _ in range(40)) if (r := mismatch(c)) is not None]
    assert not bad, f"{len(bad)}/40 cases differ, first: {bad[0]}"


def test_fully_connected_per_tensor_multiplier_in_double() -> None:
    """The issue's instance: a per-tensor FC whose float32 input*filter product moves the output byte."""
    s_in, s_w, s_out = 0.01314025092869997, 0.00831943191587925, 3.6946444511413574
    g = GraphBuilder()
    x = g.tensor((1, 1), "int8", s_in, 0)
    w = g.const(np.array([[1]]), "int8", scale=s_w, zero_point=0)
    b = g.const(np.array([-2146095]), "int32", scale=float(np.float32(s_in) * np.float32(s_w)), zero_point=0)
    y = g.tensor((1, 1), "int8", s_out, 0)
    g.op("FULLY_CONNECTED", [x, w, b], [y])
    m = g.build([x], [y])
    x0 = np.zeros((1, 1), np.int8)
    assert HostTFLM(m).run(x0)[0].ravel()[0] == -64
    assert run_program(lower(m), x0)[0].ravel()[0] == -64
