"""Lowering of data-movement, resize, SUB and TRANSPOSE_CONV ops (kernels: ``mcd_kernels_ops.c``).

A lowering returns one or more kernel calls ``(kernel, params, inputs, output)``: ops with several
outputs (SPLIT, SPLIT_V, UNPACK) become one strided gather per output, and TRANSPOSE and STRIDED_SLICE
are that same gather with other strides, so index arithmetic happens here, once, at generation time.
Constants follow TFLite Micro's reference kernels: RESIZE_NEAREST_NEIGHBOR's source maps in float32
(GetNearestNeighbor), RESIZE_BILINEAR's in TFLM's 10-bit integer form, SUB's multipliers as the
installed tflite-micro computes them (double, as ADD), TRANSPOSE_CONV's per channel like CONV_2D's (double).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ...errors import UnsupportedError
from ...ml.model import Model, Operator, Tensor, conv_out
from . import quant as q


class _Ctx(Protocol):
    """What a lowering sees of lower.py's per-op context (a protocol: lower.py imports this module)."""

    model: Model
    op: Operator

    def t(self, k: int) -> Tensor: ...
    @property
    def out(self) -> Tensor: ...
    def scale(self, t: Tensor) -> float: ...
    def zp(self, t: Tensor) -> int: ...
    def int8(self, *ts: Tensor) -> None: ...
    def refuse(self, why: str) -> UnsupportedError: ...
    def const_ints(self, k: int) -> list[int]: ...
    def act(self) -> tuple[int, int]: ...


Call = tuple[str, list[int], list[int], int]  # kernel, params, input tensors (-1: NULL), output tensor

# ops TFLite Micro has no kernel for: nothing to be bit-exact with, so they stay refused
TFLM_LACKS = {"RELU_N1_TO_1": "TFLite Micro has no RELU_N1_TO_1 kernel (only the fused activation)"}


def _dims4(c: _Ctx, shape: Sequence[int]) -> list[int]:
    if len(shape) > 4:
        raise c.refuse(f"a {len(shape)}-D tensor")
    return [1] * (4 - len(shape)) + list(shape)


def _strides(dims: Sequence[int]) -> list[int]:
    st, acc = [0] * len(dims), 1
    for i in range(len(dims) - 1, -1, -1):
        st[i] = acc
        acc *= dims[i]
    return st


def _axis(c: _Ctx, axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise c.refuse(f"axis {axis} of a {rank}-D tensor")
    return a


def _gather(c: _Ctx, x: int, out: int, base: int, counts: list[int], steps: list[int]) -> Call:
    if math.prod(counts) != c.model.tensors[out].num_elements:
        raise c.refuse(f"output '{c.model.tensors[out].name}' whose size does not follow from the options")
    return "mcd_k_gather4", [_moves(c, x), base, *counts, *steps], [x], out


MOVABLE = {"int8": 1, "int16": 2, "int32": 4, "float32": 4}


def _moves(c: _Ctx, *tensors: int) -> int:
    """Data movement copies elements as bytes (TFLM copies without requantizing, so do we): the element
    size of the op's data, which its outputs and ``tensors`` share."""
    ts = [c.model.tensors[i] for i in (*tensors, *c.op.outputs)]
    if ts[0].dtype not in MOVABLE or any(t.dtype != ts[0].dtype for t in ts):
        raise c.refuse(f"moving {', '.join(sorted({t.dtype for t in ts}))} data")
    return MOVABLE[ts[0].dtype]


def _transpose(c: _Ctx) -> list[Call]:
    x = c.t(0)
    rank = len(x.shape)
    perm = [_axis(c, p, rank) for p in c.const_ints(1)]
    if sorted(perm) != list(range(rank)):
        raise c.refuse(f"permutation {perm}")
    pad = 4 - rank
    dims = _dims4(c, x.shape)
    st = _strides(dims)
    perm4 = [*range(pad), *(pad + p for p in perm)]
    return [_gather(c, c.op.inputs[0], c.op.outputs[0], 0, [dims[a] for a in perm4], [st[a] for a in perm4])]


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if hi < v else (lo if v < lo else v)


def _strided_slice(c: _Ctx) -> list[Call]:
    """TFLM's StridedSliceStartForAxis / StridedSliceEndForAxis per axis, on the input padded to 4-D."""
    x, y = c.t(0), c.out
    o = c.op.options
    if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0):
        raise c.refuse("an ellipsis or new-axis mask")
    begin, end, strides = c.const_ints(1), c.const_ints(2), c.const_ints(3)
    rank = len(x.shape)
    if not len(begin) == len(end) == len(strides) == rank:
        raise c.refuse(
            f"begin/end/strides of lengths {len(begin)}/{len(end)}/{len(strides)} for a {rank}-D input"
        )
    if 0 in strides:
        raise c.refuse("a zero stride")
    dims = _dims4(c, x.shape)
    pad = 4 - rank
    begin, end, strides = [0] * pad + begin, [1] * pad + end, [1] * pad + strides
    bm = (o.get("begin_mask", 0) << pad) | ((1 << pad) - 1)
    em = (o.get("end_mask", 0) << pad) | ((1 << pad) - 1)
    sm = o.get("shrink_axis_mask", 0) << pad
    st = _strides(dims)
    base, counts, steps = 0, [], []
    for a in range(4):
        size, stride = dims[a], strides[a]
        start = begin[a] + size if begin[a] < 0 else begin[a]
        start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
        if bm & (1 << a):
            start = 0 if stride > 0 else size - 1
        if sm & (1 << a):
            stop = start if start >= size else start + 1
        else:
            stop = end[a] + (start if o.get("offset", False) else 0)
            stop = stop + size if stop < 0 else stop
            stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
            if em & (1 << a):
                stop = size if stride > 0 else -1
        n = -(-(stop - start) // stride) if stride > 0 else -(-(start - stop) // -stride)
        counts.append(max(n, 0))
        base += start * st[a] if n > 0 else 0
        steps.append(stride * st[a])
    kept = [n for a, n in enumerate(counts) if a >= pad and not sm & (1 << a)]
    if kept != list(y.shape):
        raise c.refuse(f"output shape {list(y.shape)} that does not follow from begin/end/strides")
    return [_gather(c, c.op.inputs[0], c.op.outputs[0], base, counts, steps)]


def _slices(c: _Ctx, x_at: int, axis: int, sizes: list[int], keep_axis: bool) -> list[Call]:
    """One gather per output: consecutive blocks of ``sizes`` along ``axis`` (SPLIT, SPLIT_V, UNPACK)."""
    x = c.model.tensors[c.op.inputs[x_at]]
    rank = len(x.shape)
    a = _axis(c, axis, rank) + 4 - rank
    dims = _dims4(c, x.shape)
    if sum(sizes) != dims[a] or len(sizes) != len(c.op.outputs):
        raise c.refuse(f"{len(c.op.outputs)} outputs of sizes {sizes} along an axis of {dims[a]}")
    st = _strides(dims)
    calls, at = [], 0
    for out, n in zip(c.op.outputs, sizes, strict=True):
        counts = [*dims[:a], n, *dims[a + 1 :]]
        want = list(c.model.tensors[out].shape)
        got = counts[4 - rank :] if keep_axis else counts[4 - rank : a] + counts[a + 1 :]
        if got != want:
            raise c.refuse(f"output '{c.model.tensors[out].name}' of shape {want}")
        calls.append(_gather(c, c.op.inputs[x_at], out, at * st[a], counts, st))
        at += n
    return calls


def _split(c: _Ctx) -> list[Call]:
    (axis,) = c.const_ints(0)
    x = c.t(1)
    a = _axis(c, axis, len(x.shape))
    n = len(c.op.outputs)
    if x.shape[a] % n:
        raise c.refuse(f"{n} splits of an axis of {x.shape[a]}")
    return _slices(c, 1, axis, [x.shape[a] // n] * n, keep_axis=True)


def _split_v(c: _Ctx) -> list[Call]:
    (axis,) = c.const_ints(2)
    x = c.t(0)
    a = _axis(c, axis, len(x.shape))
    sizes = [c.model.tensors[o].shape[a] if len(c.model.tensors[o].shape) > a else 0 for o in c.op.outputs]
    return _slices(c, 0, axis, sizes, keep_axis=True)


def _unpack(c: _Ctx) -> list[Call]:
    x = c.t(0)
    axis = int(c.op.options.get("axis", 0))
    a = _axis(c, axis, len(x.shape))
    return _slices(c, 0, axis, [1] * x.shape[a], keep_axis=False)


def _pack(c: _Ctx) -> list[Call]:
    """PACK is a concatenation along a new axis: mcd_kernels.c's concat with chunks of whole inputs."""
    y = c.out
    ins = [c.model.tensors[i] for i in c.op.inputs]
    esize = _moves(c, *c.op.inputs)
    for t in ins:
        if t.shape != ins[0].shape:
            raise c.refuse(f"inputs of different shapes ({list(ins[0].shape)}, {list(t.shape)})")
        if (t.quant and t.quant.scale, c.zp(t)) != (y.quant and y.quant.scale, c.zp(y)):
            raise c.refuse(f"packing '{t.name}' whose quantization differs from the output's")
    axis = _axis(c, int(c.op.options.get("axis", 0)), len(y.shape))
    outer = math.prod(y.shape[:axis])
    chunk = math.prod(ins[0].shape[axis:]) * esize
    return [("mcd_k_concat", [len(ins), outer, *([chunk] * len(ins))], list(c.op.inputs), c.op.outputs[0])]


def _sub(c: _Ctx) -> list[Call]:
    a, b, y = c.t(0), c.t(1), c.out
    c.int8(a, b, y)
    od = _dims4(c, y.shape)

    def bstrides(shape: Sequence[int]) -> list[int]:
        d = _dims4(c, shape)
        return [0 if d[i] == 1 and od[i] != 1 else s for i, s in enumerate(_strides(d))]

    lo, hi = c.act()
    left = 20
    s1, s2, so = c.scale(a), c.scale(b), c.scale(y)
    # as ADD: the larger scale doubled from float32, every ratio in double (probed against the installed
    # tflite-micro: with float32 ratios, as in older sources, s1 = s2 = 0.5, so = 1/3 is 1 LSB off)
    twice_max = 2 * float(max(q.f32(s1), q.f32(s2)))
    m1 = q.quantize_multiplier(s1 / twice_max)
    m2 = q.quantize_multiplier(s2 / twice_max)
    mo = q.quantize_multiplier(twice_max / ((1 << left) * so))
    p = [
        *od,
        *bstrides(a.shape),
        *bstrides(b.shape),
        -c.zp(a),
        -c.zp(b),
        c.zp(y),
        lo,
        hi,
        left,
        *m1,
        *m2,
        *mo,
    ]
    return [("mcd_k_sub", p, list(c.op.inputs[:2]), c.op.outputs[0])]


def _resize(c: _Ctx, kernel: str, per_axis: Callable[[int, int, bool, bool], list[int]]) -> list[Call]:
    """A RESIZE_* op: the shapes, then ``per_axis``'s table for the rows and for the columns."""
    x, y = c.t(0), c.out
    c.int8(x, y)
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise c.refuse("a resize of a tensor that is not 4-D")
    size = c.const_ints(1)
    if list(size) != list(y.shape[1:3]):
        raise c.refuse(f"size {size} that differs from the output shape {list(y.shape)}")
    align, half = bool(c.op.options.get("align_corners")), bool(c.op.options.get("half_pixel_centers"))
    if align and half:
        raise c.refuse("align_corners together with half_pixel_centers")
    n, h, w, ch = x.shape
    oh, ow = y.shape[1], y.shape[2]
    p = [n, h, w, ch, oh, ow, *per_axis(h, oh, align, half), *per_axis(w, ow, align, half)]
    return [(kernel, p, [c.op.inputs[0]], c.op.outputs[0])]


def _nearest(src: int, out: int, align: bool, half: bool) -> list[int]:
    """GetNearestNeighbor for every output index, in float32 as TFLM computes it."""
    f = np.float32
    scale = f(src - 1) / f(out - 1) if align and out > 1 else f(src) / f(out)
    offset = f(0.5) if half else f(0.0)
    maps = []
    for i in range(out):
        v = (f(i) + offset) * scale
        j = q.tf_round(float(v)) if align else math.floor(float(v))
        j = min(j, src - 1)
        maps.append(max(0, j) if half else j)
    return maps


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    n = abs(a) // abs(b)
    return n if (a >= 0) == (b > 0) else -n


def _bilinear(src: int, out: int, align: bool, half: bool) -> list[int]:
    """ComputeInterpolationValuesInteger for every output index: (scaled, lower, upper) triples."""
    scale = ((1 << 10) * src + out // 2) // out
    if align and out > 1:
        scale = ((1 << 10) * (src - 1) + (out - 1) // 2) // (out - 1)
    vals = []
    for i in range(out):
        v = i * scale + scale // 2 - (1 << 9) if half else i * scale
        vals += [v, max(_cdiv(v, 1 << 10), 0), min(_cdiv(v + (1 << 10) - 1, 1 << 10), src - 1)]
    return vals


def _transpose_conv(c: _Ctx) -> list[Call]:
    w, x, y = c.t(1), c.t(2), c.out
    c.int8(x, w, y)
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise c.refuse("a TRANSPOSE_CONV that is not 2-D")
    n, h, wd, ch = x.shape
    oc, kh, kw, wc = w.shape
    if wc != ch or list(y.shape) != [n, y.shape[1], y.shape[2], oc]:
        raise c.refuse(f"filter {list(w.shape)} for input {list(x.shape)} and output {list(y.shape)}")
    if c.const_ints(0) != list(y.shape):
        raise c.refuse(f"output_shape {c.const_ints(0)} that differs from the output tensor {list(y.shape)}")
    bias = -1
    if len(c.op.inputs) > 3 and c.op.inputs[3] >= 0:
        b = c.t(3)
        if b.dtype != "int32" or not b.is_constant:
            raise c.refuse(f"{b.dtype} bias '{b.name}'")
        bias = c.op.inputs[3]
    o = c.op.options
    sh, sw, padding = o.get("stride_h", 1), o.get("stride_w", 1), o.get("padding", 0)
    oh, ow = y.shape[1], y.shape[2]

    def pad(size: int, k: int, s: int) -> int:  # ComputePaddingHeightWidth on the *output* size
        out = conv_out(size, k, s, 1, padding)
        return max((out - 1) * s + k - size, 0) // 2

    lo, hi = c.act()
    mults, shifts = q.conv_multipliers(c.scale(x), w.quant.scale, c.scale(y), oc)
    p = [
        n,
        h,
        wd,
        ch,
        oh,
        ow,
        oc,
        kh,
        kw,
        sh,
        sw,
        pad(oh, kh, sh),
        pad(ow, kw, sw),
        -c.zp(x),
        c.zp(y),
        lo,
        hi,
    ]
    return [
        ("mcd_k_transpose_conv", p + mults + shifts, [c.op.inputs[2], c.op.inputs[1], bias], c.op.outputs[0])
    ]


LOWERINGS: dict[str, Callable[[_Ctx], list[Call]]] = {
    "PACK": _pack,
    "RESIZE_BILINEAR": lambda c: _resize(c, "mcd_k_resize_bilinear", _bilinear),
    "RESIZE_NEAREST_NEIGHBOR": lambda c: _resize(c, "mcd_k_resize_nearest", _nearest),
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "STRIDED_SLICE": _strided_slice,
    "SUB": _sub,
    "TRANSPOSE": _transpose,
    "TRANSPOSE_CONV": _transpose_conv,
    "UNPACK": _unpack,
}
