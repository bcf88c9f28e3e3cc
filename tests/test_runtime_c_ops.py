"""Bit-exactness of the C runtime's data-movement, resize, SUB and TRANSPOSE_CONV kernels
(mcudeploy/firmware/runtime_c/lower_ops.py, mcd_kernels_ops.c) against host TFLM, one single-op model per
hypothesis example (derandomized in make test), plus unrolled int8 LSTM/GRU models end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mcudeploy.errors import UnsupportedError
from mcudeploy.firmware.runtime_c.lower import lower
from mcudeploy.ml.tflite_builder import GraphBuilder
from tests.graphs import bias_scales, int8_weights
from tests.hyp import examples
from tests.test_runtime_c_kernels import acts, assert_bit_exact, check_binary_op, scales, zps

SETTINGS = examples(40)
seeds = st.integers(0, 2**16)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4)


dtypes = st.sampled_from(["int8", "int8", "float32"])  # data movement copies any element size


def _q(dtype: str, s: float, zp: int) -> tuple:
    return (dtype, s, zp) if dtype == "int8" else (dtype,)


@SETTINGS
@given(shapes, st.data(), dtypes, scales, zps, seeds)
def test_transpose_bit_exact(shape, data, dtype, s, zp, seed) -> None:
    perm = data.draw(st.permutations(range(len(shape))))
    g = GraphBuilder()
    x = g.tensor(shape, *_q(dtype, s, zp))
    y = g.tensor([shape[p] for p in perm], *_q(dtype, s, zp))
    g.op("TRANSPOSE", [x, g.const(np.array(perm), "int32")], [y])
    assert_bit_exact(g.build([x], [y]), seed)


def _slice_len(size: int, b: int, e: int, stride: int, bm: bool, em: bool, shrink: bool) -> int:
    """The reference's loop count, written as the loop (independent of lower_ops' closed form)."""
    start = b + size if b < 0 else b
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if bm:
        start = 0 if stride > 0 else size - 1
    if shrink:
        stop = start if start >= size else start + 1
    else:
        stop = e + size if e < 0 else e
        stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
        if em:
            stop = size if stride > 0 else -1
    n, i = 0, start
    while (i < stop) if stride > 0 else (i > stop):
        n, i = n + 1, i + stride
    return n


@examples(60)
@given(shapes, st.data(), scales, zps, seeds)
def test_strided_slice_bit_exact(shape, data, s, zp, seed) -> None:
    r = len(shape)
    begin = [data.draw(st.integers(-d - 1, d + 1)) for d in shape]
    end = [data.draw(st.integers(-d - 1, d + 1)) for d in shape]
    strides = [data.draw(st.sampled_from([1, 1, 2, 3, -1, -2])) for _ in shape]
    bm, em = data.draw(st.integers(0, 2**r - 1)), data.draw(st.integers(0, 2**r - 1))
    sm = data.draw(st.integers(0, 2**r - 1))
    lens = [
        _slice_len(d, begin[a], end[a], strides[a], bool(bm >> a & 1), bool(em >> a & 1), bool(sm >> a & 1))
        for a, d in enumerate(shape)
    ]
    assume(all(n > 0 for n in lens))
    out = [n for a, n in enumerate(lens) if not sm >> a & 1]
    g = GraphBuilder()
    x = g.tensor(shape, "int8", s, zp)
    y = g.tensor(out, "int8", s, zp)
    idx = [g.const(np.array(v), "int32") for v in (begin, end, strides)]
    g.op("STRIDED_SLICE", [x, *idx], [y], begin_mask=bm, end_mask=em, shrink_axis_mask=sm)
    assert_bit_exact(g.build([x], [y]), seed)


@SETTINGS
@given(shapes, st.data(), st.sampled_from(["SPLIT", "SPLIT_V", "UNPACK"]), dtypes, scales, zps, seeds)
def test_split_split_v_unpack_bit_exact(shape, data, opcode, dtype, s, zp, seed) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    if opcode == "SPLIT":
        n = data.draw(st.integers(1, 3))
        shape[a] *= n
        sizes = [shape[a] // n] * n
    elif opcode == "SPLIT_V":
        sizes = [data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(1, 3)))]
        shape[a] = sum(sizes)
    else:
        sizes = [1] * shape[a]
    g = GraphBuilder()
    x = g.tensor(shape, *_q(dtype, s, zp))
    keep = opcode != "UNPACK"
    ys = [g.tensor([*shape[:a], *([k] if keep else []), *shape[a + 1 :]], *_q(dtype, s, zp)) for k in sizes]
    if opcode == "SPLIT":
        g.op("SPLIT", [g.const(np.array([axis]), "int32"), x], ys, num_splits=len(sizes))
    elif opcode == "SPLIT_V":
        # one size given as -1, as converters write it
        given_sizes = [-1 if i == len(sizes) - 1 and len(sizes) > 1 else k for i, k in enumerate(sizes)]
        g.op(
            "SPLIT_V",
            [x, g.const(np.array(given_sizes), "int32"), g.const(np.array([axis]), "int32")],
            ys,
            num_splits=len(sizes),
        )
    else:
        g.op("UNPACK", [x], ys, axis=axis, num=len(sizes))
    assert_bit_exact(g.build([x], ys), seed)


@SETTINGS
@given(shapes, st.data(), st.integers(1, 3), dtypes, scales, zps, seeds)
def test_pack_bit_exact(shape, data, n, dtype, s, zp, seed) -> None:
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    a = axis % (len(shape) + 1)
    g = GraphBuilder()
    xs = [g.tensor(shape, *_q(dtype, s, zp)) for _ in range(n)]
    y = g.tensor([*shape[:a], n, *shape[a:]], *_q(dtype, s, zp))
    g.op("PACK", xs, [y], axis=axis, values_count=n)
    assert_bit_exact(g.build(xs, [y]), seed)


@examples(60)
@given(st.data(), scales, scales, scales, zps, zps, zps, acts, st.booleans(), seeds)
def test_sub_bit_exact(data, s1, s2, so, z1, z2, zo, act, const_b, seed) -> None:
    check_binary_op("SUB", data.draw, (s1, s2, so), (z1, z2, zo), act, const_b, seed)


@SETTINGS
@given(
    st.sampled_from(["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"]),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(1, 13),
    st.integers(1, 13),
    st.sampled_from([(False, False), (True, False), (False, True)]),
    scales,
    zps,
    seeds,
)
def test_resize_bit_exact(opcode, h, w, c, oh, ow, corners, s, zp, seed) -> None:
    g = GraphBuilder()
    x = g.tensor((1, h, w, c), "int8", s, zp)
    y = g.tensor((1, oh, ow, c), "int8", s, zp)
    size = g.const(np.array([oh, ow]), "int32")
    g.op(opcode, [x, size], [y], align_corners=corners[0], half_pixel_centers=corners[1])
    assert_bit_exact(g.build([x], [y]), seed)


@examples(60)
@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from([0, 1]),
    acts,
    scales,
    scales,
    zps,
    zps,
    st.booleans(),
    st.booleans(),
    seeds,
)
def test_transpose_conv_bit_exact(h, w, c, oc, kh, kw, sh, sw, pad, act, s_in, s_out, zi, zo, pc, bias, seed):
    # the output size a converter writes: stride * in (SAME) or stride * (in - 1) + kernel (VALID)
    oh, ow = (sh * h, sw * w) if pad == 0 else (sh * (h - 1) + kh, sw * (w - 1) + kw)
    rng = np.random.default_rng(seed)
    ws = rng.uniform(0.002, 0.05, oc if pc else 1)
    g = GraphBuilder()
    x = g.tensor((1, h, w, c), "int8", s_in, zi)
    wt = g.const(int8_weights(rng, (oc, kh, kw, c)), "int8", scale=list(ws), zero_point=0)
    ins = [g.const(np.array([1, oh, ow, oc]), "int32"), wt, x]
    if bias:
        ins.append(
            g.const(rng.integers(-3000, 3000, oc), "int32", scale=bias_scales(s_in, ws, oc), zero_point=0)
        )
    y = g.tensor((1, oh, ow, oc), "int8", s_out, zo)
    g.op("TRANSPOSE_CONV", ins, [y], padding=pad, stride_h=sh, stride_w=sw, fused_activation_function=act)
    assert_bit_exact(g.build([x], [y]), seed)


def test_relu_n1_to_1_stays_refused_because_tflm_lacks_it() -> None:
    from mcudeploy.ml.tflm_host import HostTFLM

    g = GraphBuilder()
    x = g.tensor((1, 8), "int8", 0.02, 0)
    y = g.tensor((1, 8), "int8", 0.02, 0)
    g.op("RELU_N1_TO_1", [x], [y])
    m = g.build([x], [y])
    with pytest.raises(Exception):  # noqa: B017 - whatever the interpreter raises: it has no such kernel
        HostTFLM(m).run(np.zeros((1, 8), np.int8))
    with pytest.raises(UnsupportedError, match=r"RELU_N1_TO_1.*TFLite Micro has no RELU_N1_TO_1 kernel"):
        lower(m)


def test_a_strided_slice_with_an_ellipsis_is_refused_naming_the_op() -> None:
    g = GraphBuilder()
    x = g.tensor((1, 4, 4), "int8", 0.1, 0)
    y = g.tensor((1, 4, 2), "int8", 0.1, 0)
    idx = [g.const(np.array(v), "int32") for v in ([0, 0], [1, 2], [1, 1])]
    g.op("STRIDED_SLICE", [x, *idx], [y], ellipsis_mask=1)
    with pytest.raises(UnsupportedError, match=r"op 0 \(STRIDED_SLICE\): an ellipsis"):
        lower(g.build([x], [y]))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_unrolled_int8_rnn_runs_bit_exact(kind: str, tmp_path) -> None:
    """A Keras LSTM/GRU with unroll=True converts to FULLY_CONNECTED, SPLIT(_V), UNPACK, SUB, LOGISTIC,
    TANH, MUL, ADD: the whole model through the generated C (host build) matches host TFLM. (The
    converter is not deterministic here: about every other GRU conversion leaves one SPLIT in float32
    between a DEQUANTIZE and QUANTIZEs; the C runtime runs both forms.)"""
    from mcudeploy.firmware.runtime_c.host import build_host_executable, run_host_executable
    from mcudeploy.ml._tf import tensorflow
    from mcudeploy.ml.quantize import convert_int8
    from mcudeploy.ml.tflm_host import HostTFLM

    keras = tensorflow().keras
    keras.utils.set_random_seed(1)
    inp = keras.Input((5, 4), batch_size=1)
    out = keras.layers.Dense(3)(getattr(keras.layers, kind)(6, unroll=True)(inp))
    xs = np.random.default_rng(0).normal(size=(48, 5, 4)).astype(np.float32)
    m = convert_int8(keras.Model(inp, out), xs, source=f"{kind.lower()}.tflite")
    assert {"UNPACK", "SPLIT"} <= set(m.op_names()) and (kind == "LSTM" or "SUB" in m.op_names())
    x = np.random.default_rng(1).integers(-128, 128, (20, 5, 4)).astype(np.int8)
    got = run_host_executable(build_host_executable(m, tmp_path), m, x)
    ref = HostTFLM(m)
    want = np.stack([ref.run(s[None])[0][0] for s in x])
    assert got.reshape(want.shape).tobytes() == want.tobytes()


def test_sub_multipliers_in_double_over_every_input_pair() -> None:
    """s1 = s2 = 0.5, so = 1/3: float32 ratios (older TFLM sources) give another output multiplier and
    a byte 1 LSB off; the installed tflite-micro divides in double. All 65,536 input pairs compared."""
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)
    b = np.tile(np.arange(-128, 128, dtype=np.int8), 256)
    g = GraphBuilder()
    x1, x2 = g.tensor((a.size,), "int8", 0.5, 0), g.tensor((a.size,), "int8", 0.5, 0)
    y = g.tensor((a.size,), "int8", 1 / 3, 0)
    g.op("SUB", [x1, x2], [y])
    m = g.build([x1, x2], [y])
    from mcudeploy.firmware.runtime_c.host import run_program
    from mcudeploy.ml.tflm_host import HostTFLM

    assert run_program(lower(m), a, b)[0].tobytes() == HostTFLM(m).run(a, b)[0].tobytes()


def _op_mix_model():
    """TRANSPOSE_CONV -> RESIZE_BILINEAR -> STRIDED_SLICE (reversed) -> TRANSPOSE -> SPLIT -> SUB ->
    RESIZE_NEAREST_NEIGHBOR -> (RESHAPE) -> PACK -> UNPACK -> SPLIT_V, int8 throughout."""
    rng = np.random.default_rng(4)
    g = GraphBuilder()
    x = g.tensor((1, 5, 5, 3), "int8", 0.05, 3)
    w = g.const(int8_weights(rng, (4, 3, 3, 3)), "int8", scale=list(rng.uniform(0.01, 0.03, 4)))
    b = g.const(rng.integers(-400, 400, 4), "int32", scale=[1e-3] * 4)
    t = g.tensor((1, 10, 10, 4), "int8", 0.1, -5)
    g.op(
        "TRANSPOSE_CONV",
        [g.const(np.array([1, 10, 10, 4]), "int32"), w, x, b],
        [t],
        padding=0,
        stride_h=2,
        stride_w=2,
        fused_activation_function=0,
    )
    r = g.tensor((1, 7, 9, 4), "int8", 0.1, -5)
    g.op("RESIZE_BILINEAR", [t, g.const(np.array([7, 9]), "int32")], [r], half_pixel_centers=True)
    s = g.tensor((1, 4, 9, 4), "int8", 0.1, -5)
    idx = [g.const(np.array(v), "int32") for v in ([0, 6, 0, 0], [1, -8, 9, 4], [1, -2, 1, 1])]
    g.op("STRIDED_SLICE", [r, *idx], [s], end_mask=0)
    tr = g.tensor((1, 9, 4, 4), "int8", 0.1, -5)
    g.op("TRANSPOSE", [s, g.const(np.array([0, 2, 1, 3]), "int32")], [tr])
    h1, h2 = g.tensor((1, 9, 4, 2), "int8", 0.1, -5), g.tensor((1, 9, 4, 2), "int8", 0.1, -5)
    g.op("SPLIT", [g.const(np.array([3]), "int32"), tr], [h1, h2], num_splits=2)
    d = g.tensor((1, 9, 4, 2), "int8", 0.15, 7)
    g.op("SUB", [h1, h2], [d], fused_activation_function=0)
    n = g.tensor((1, 5, 6, 2), "int8", 0.15, 7)
    g.op("RESIZE_NEAREST_NEIGHBOR", [d, g.const(np.array([5, 6]), "int32")], [n], align_corners=True)
    n3 = g.tensor((5, 6, 2), "int8", 0.15, 7)
    g.op("RESHAPE", [n, g.const(np.array([5, 6, 2]), "int32")], [n3])
    pk = g.tensor((2, 5, 6, 2), "int8", 0.15, 7)
    g.op("PACK", [n3, n3], [pk], axis=0, values_count=2)
    u1, u2 = g.tensor((5, 6, 2), "int8", 0.15, 7), g.tensor((5, 6, 2), "int8", 0.15, 7)
    g.op("UNPACK", [pk], [u1, u2], axis=0, num=2)
    v1, v2 = g.tensor((2, 6, 2), "int8", 0.15, 7), g.tensor((3, 6, 2), "int8", 0.15, 7)
    g.op(
        "SPLIT_V",
        [u2, g.const(np.array([2, -1]), "int32"), g.const(np.array([0]), "int32")],
        [v1, v2],
        num_splits=2,
    )
    y = g.tensor((1, 3, 6, 2), "int8", 0.15, 7)
    g.op("RESHAPE", [v2, g.const(np.array([1, 3, 6, 2]), "int32")], [y])
    return g.build([x], [y], source="op_mix.tflite")


@pytest.mark.qemu
def test_op_mix_firmware_on_qemu_matches_host_tflm(tmp_path) -> None:
    """The new kernels compiled for the M55 (arm-none-eabi-gcc, MVE build) and run on QEMU."""
    from mcudeploy.ml.tflm_host import run_tflm
    from tests.qemu_tv import run_vectors, tv_outputs

    model = _op_mix_model()
    x = np.random.default_rng(3).integers(-128, 128, (12, 5, 5, 3), dtype=np.int8)
    _, code, uart, rows = run_vectors(model, "qemu-an547", x, tmp_path / "proj")
    assert code == 0, uart[-2000:]
    device = tv_outputs(rows)
    assert len(device) == len(x) and len({d.tobytes() for d in device}) > 1  # outputs depend on inputs
    assert device.tobytes() == run_tflm(model, x).astype(np.int8).tobytes()
