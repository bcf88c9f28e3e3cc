"""Lowering: each TFLite operator becomes one kernel call with int32 parameters fixed at generation time.

The parameter layouts are the ``enum`` blocks of ``firmware_templates/runtime_c/mcd_kernels.c``;
each ``_lower_*`` function below writes them in that order. RESHAPE-like ops lower to an alias
(the output shares the input's storage) and cost no code.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import UnsupportedError
from ...ml.model import Model, Operator, Tensor
from . import quant as q
from .lower_ops import LOWERINGS as OP_LOWERINGS
from .lower_ops import TFLM_LACKS

ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
SCRATCH = -2  # a Step input that passes the step's scratch buffer (step_scratch bytes, in the arena)
HINT = "use `--runtime tflm`, which runs every op TFLite Micro supports"


@dataclass(frozen=True)
class Step:
    """One kernel call: ``kernel(params, inputs, output)``."""

    op_index: int
    opcode: str
    kernel: str  # C function name in mcd_kernels.h
    params: tuple[int, ...]
    inputs: tuple[int, ...]  # tensor indices; -1 passes NULL (absent bias), SCRATCH the scratch buffer
    output: int


@dataclass(frozen=True)
class Program:
    model: Model
    steps: tuple[Step, ...]
    aliases: dict[int, int]  # tensor index -> the tensor whose storage it reuses (RESHAPE & co.)
    # constants made at generation time (weights re-laid out for the kernels), numbered after the
    # model's tensors
    derived: dict[int, Tensor] = field(default_factory=dict)
    arch: str = "host"  # the kernel path (:data:`ARCHS`) whose parameter layouts the steps hold

    def tensor(self, t: int) -> Tensor:
        return self.derived[t] if t in self.derived else self.model.tensors[t]

    def storage(self, t: int) -> int:
        while t in self.aliases:
            t = self.aliases[t]
        return t

    @property
    def constants(self) -> list[int]:
        """Constant tensors the kernels read (weights, biases, constant operands), sorted."""
        used = {i for s in self.steps for i in s.inputs if i >= 0}
        return sorted(i for i in used if self.tensor(i).is_constant)


class _Ctx:
    def __init__(self, model: Model, op: Operator, derived: dict[int, Tensor], arch: str = "host") -> None:
        self.model, self.op, self.derived, self.arch = model, op, derived, arch

    def derive(self, like: Tensor, suffix: str, data: np.ndarray) -> int:
        """A constant made from ``like`` at generation time; returns its tensor number."""
        i = len(self.model.tensors) + len(self.derived)
        name = f"{like.name}{suffix}"
        self.derived[i] = Tensor(i, name, data.shape, like.dtype, -1, None, data=data.tobytes())
        return i

    def where(self) -> str:
        return f"{self.model.source}: op {self.op.index} ({self.op.opcode})"

    def refuse(self, why: str) -> UnsupportedError:
        return UnsupportedError(f"{self.where()}: {why} is not supported by the C runtime", hint=HINT)

    def t(self, k: int) -> Tensor:
        return self.model.tensors[self.op.inputs[k]]

    @property
    def out(self) -> Tensor:
        return self.model.tensors[self.op.outputs[0]]

    def scale(self, t: Tensor) -> float:
        if t.quant is None:
            raise self.refuse(f"tensor '{t.name}' without quantization parameters")
        return t.quant.scale[0]

    def zp(self, t: Tensor) -> int:
        return t.quant.zero_point[0] if t.quant else 0

    def int8(self, *ts: Tensor) -> None:
        for t in ts:
            if t.dtype != "int8":
                raise self.refuse(f"{t.dtype} tensor '{t.name}'")

    def act(self) -> tuple[int, int]:
        a = int(self.op.options.get("fused_activation_function", 0))
        if a not in (q.ACT_NONE, q.ACT_RELU, q.ACT_RELU6, q.ACT_RELU_N1_TO_1):
            raise self.refuse(f"fused activation {a}")
        return q.activation_range(a, self.scale(self.out), self.zp(self.out))

    def const_ints(self, k: int) -> list[int]:
        t = self.t(k)
        if t.data is None:
            raise self.refuse(f"a non-constant '{t.name}' (input {k})")
        fmt = {"int32": "i", "int64": "q"}.get(t.dtype)
        if fmt is None:
            raise self.refuse(f"{t.dtype} index tensor '{t.name}'")
        return list(struct.unpack(f"<{t.num_elements}{fmt}", t.data))


def _shape4(shape: tuple[int, ...]) -> list[int]:
    if len(shape) > 4:
        raise ValueError(shape)
    return [1] * (4 - len(shape)) + list(shape)


def _padding(stride: int, dilation: int, size: int, k: int, out: int) -> int:
    eff = (k - 1) * dilation + 1
    return max(((out - 1) * stride + eff - size) // 2, 0)


def _conv_like(c: _Ctx, depthwise: bool) -> tuple[list[int], list[int]]:
    x, w, y = c.t(0), c.t(1), c.out
    c.int8(x, w, y)
    o = c.op.options
    # the model parser (ml/model.py _check_op) enforced the shapes: filter depth = input channels
    # (CONV_2D), output channels a multiple of them (DEPTHWISE_CONV_2D), output size from the options
    n, h, wd, ch = x.shape
    if depthwise:
        _, kh, kw, oc = w.shape
        dm = oc // ch
    else:
        oc, kh, kw, _ = w.shape
        dm = 1
    sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
    dh, dw = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    _, oh, ow, _ = y.shape
    lo, hi = c.act()
    mults, shifts = q.conv_multipliers(c.scale(x), w.quant.scale, c.scale(y), oc)
    wts = _weights(c, w)
    per_oc = wts.reshape(-1, oc).T if depthwise else wts.reshape(oc, -1)
    wsum = per_oc.sum(axis=1)
    head = [
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
        dh,
        dw,
        _padding(sh, dh, h, kh, oh),
        _padding(sw, dw, wd, kw, ow),
        -c.zp(x),
        c.zp(y),
        lo,
        hi,
        dm,
    ]
    bias = _folded_bias(c, 2, wsum, -c.zp(x))
    head.append(q.fast_requant(_abs_sums(per_oc), bias, shifts, c.zp(y), lo, hi))
    if depthwise:
        # Helium with multiplier 1 reads its own layout only; the others read the plain one
        rq = mve_dw_blocks(bias, mults, shifts) if dm == 1 and c.arch == "mve" else mults + shifts + bias
        return head + rq, [c.op.inputs[0], c.op.inputs[1], -1]
    wb = c.derive(w, " (4x16 blocks)", blocked_rows(wts.reshape(oc, -1).astype(np.int8)))
    return head + mults + shifts + bias, [c.op.inputs[0], wb, -1]


def _abs_sums(per_row: np.ndarray) -> list[int]:
    return [int(v) for v in np.abs(per_row).sum(axis=1)]


def mve_dw_blocks(bias: list[int], mults: list[int], shifts: list[int]) -> list[int]:
    """The Helium depthwise kernel's requantization constants (after the header, in place of the plain
    multipliers, shifts and biases, which that kernel never reads): a flag
    (1: every shift is a right shift of >= 1 bit), then per block of 8 channels bias, multiplier and
    shift of the even channels and of the odd ones (4 lanes each; lanes past the channels 0), the
    order of its VMULLB/VMULLT accumulators."""
    c = len(bias)
    nb = -(-c // 8)
    cols = np.zeros((3, nb * 8), np.int64)
    cols[:, :c] = [bias, mults, shifts]
    # [block][bias|mult|shift][even|odd][lane]
    blocks = cols.reshape(3, nb, 4, 2).transpose(1, 0, 3, 2).reshape(-1)
    return [int(all(v < 0 for v in shifts)), *(int(v) for v in blocks)]


def _weights(c: _Ctx, w: Tensor) -> np.ndarray:
    if w.data is None:
        raise c.refuse(f"non-constant weights '{w.name}'")
    return np.frombuffer(w.data, np.int8).astype(np.int64).reshape(w.shape)


def blocked_rows(w: np.ndarray) -> np.ndarray:
    """Weights (O, K) in the GEMV kernels' layout, one block of 4 rows (zero rows pad the last) after
    another: first the 4 rows' 16-byte chunks side by side ([K/16][4][16]), then the 4 rows' last K % 16
    bytes one after the other ([4][K % 16]). One pointer walks a block and the MVE loop loads 4 rows x
    16 bytes per step without predication (see gemv_requant in mcd_kernels.c)."""
    o, k = w.shape
    ob, full = -(-o // 4), k // 16
    padded = np.zeros((ob * 4, k), np.int8)
    padded[:o] = w
    head = padded[:, : full * 16].reshape(ob, 4, full, 16).transpose(0, 2, 1, 3).reshape(ob, -1)
    tail = padded[:, full * 16 :].reshape(ob, -1)
    return np.ascontiguousarray(np.concatenate([head, tail], axis=1))


def _folded_bias(c: _Ctx, k: int, wsum: np.ndarray, ioff: int) -> list[int]:
    """bias + ioff * sum(weights) per output channel, wrapped to int32 as the kernels accumulate: the
    input offset then costs nothing at run time (see mcd_kernels.c)."""
    b = _bias(c, k)
    bias = np.zeros(len(wsum), np.int64) if b < 0 else np.frombuffer(c.t(k).data, "<i4").astype(np.int64)
    folded = (bias + ioff * wsum + 2**31) % 2**32 - 2**31
    return [int(v) for v in folded]


def _bias(c: _Ctx, k: int) -> int:
    if len(c.op.inputs) <= k or c.op.inputs[k] < 0:
        return -1
    b = c.t(k)
    if b.dtype != "int32" or not b.is_constant:
        raise c.refuse(f"{b.dtype} {'constant ' if b.is_constant else ''}bias '{b.name}'")
    return c.op.inputs[k]


def _conv(c: _Ctx) -> tuple[str, list[int], list[int]]:
    p, ins = _conv_like(c, False)
    return "mcd_k_conv2d", p, [*ins, SCRATCH]


# The kernels pick their path from the compiler's macros (MCD_KERNEL_PATH in mcd_kernels.h): "mve"
# (Helium), "dsp" (SIMD32 + DSP), "c32" (plain C, 32-bit pointers), "host" (plain C, 64-bit pointers).
# Scratch needs differ per path, and each step's scratch is a temporary in the arena, so the memory plan
# is made for one path; the generated source refuses to compile for another (its MCD_KERNEL_PATH value
# is the path's position here, from 1).
ARCHS = ("mve", "dsp", "c32", "host")
DSP_CPUS = ("cortex-m4", "cortex-m7", "cortex-m33")  # gcc's -mcpu for them defines __ARM_FEATURE_DSP


def cpu_arch(cpu: str, has_mve: bool) -> str:
    """The kernel path a board's CPU compiles to (the same choice as mcd_kernels.h makes)."""
    return "mve" if has_mve else "dsp" if cpu in DSP_CPUS else "c32"


def step_scratch(step: Step, arch: str) -> int:
    """Bytes of scratch ``step`` needs on kernel path ``arch`` (0: none): the one place that says it."""
    fn = SCRATCH_FNS.get(step.kernel)
    return fn(step.params, arch) if fn else 0


def dw_scratch(params: tuple[int, ...], arch: str = "host") -> int:
    """Bytes of DEPTHWISE_CONV_2D's scratch: the row of input zero points that taps in the padding read
    (C, rounded up to 16), then a table of a pointer per filter tap (MVE: two tables of int32 tap
    offsets, the inner pixels' and a border pixel's); on DSP with depth multiplier 1 then the weights of
    each 4-channel block as SXTB16 halfword pairs (2 bytes per weight byte, mcd_kernels.c
    dw_expand_weights)."""
    c, kh, kw, dm = params[3], params[7], params[8], params[19]
    tables, entry = (2, 4) if arch == "mve" else (1, 8 if arch == "host" else 4)
    size = (c + 15) // 16 * 16 + tables * kh * kw * entry
    if arch == "dsp" and dm == 1:  # 8-aligned, the weights of 4-channel blocks as halfword pairs
        size = (size + 7) // 8 * 8 + 2 * kh * kw * (c // 4 * 4)
    return size


def conv_scratch(params: tuple[int, ...], arch: str = "host") -> int:
    """Bytes of CONV_2D's scratch: the im2col patch of one output pixel (none for a 1x1 filter without
    padding, read in place). MVE computes pixels in pairs: two patches. DSP too: two slots of F + K
    bytes (F = K's 16-byte chunks), each a patch copied F bytes in, then expanded in place to halfword
    pairs (2F bytes) ahead of its raw K % 16 tail."""
    c, kh, kw, ph, pw = params[3], params[7], params[8], params[13], params[14]
    k = kh * kw * c
    if arch != "dsp":  # MVE: pixels in pairs, two patches
        return 0 if (kh, kw, ph, pw) == (1, 1, 0, 0) else k * (2 if arch == "mve" else 1)
    return 2 * ((k // 16 * 16 + k + 3) // 4 * 4)


def conv_add_scratch(params: tuple[int, ...], arch: str = "host") -> int:
    """mcd_k_conv2d_add: 2 * OC bytes (a pixel pair's convolution outputs before the ADD), rounded up to
    16, then CONV_2D's scratch."""
    conv = params[FUSED_HDR:]
    return (2 * conv[6] + 15) // 16 * 16 + conv_scratch(conv, arch)


SCRATCH_FNS: dict[str, Callable[[tuple[int, ...], str], int]] = {
    "mcd_k_conv2d": conv_scratch,
    "mcd_k_conv2d_add": conv_add_scratch,
    "mcd_k_depthwise_conv2d": dw_scratch,
}

# Output pixels a CONV_2D / DEPTHWISE_CONV_2D kernel path computes as one group (default 1): it reads the
# receptive fields of the whole group before or while writing any of its outputs. The planner lets an
# output overlap its input by that rule (planner.overlap_delta): a kernel that starts computing more
# pixels at once must raise its number here, or it would read input bytes its own outputs overwrote.
WRITE_GROUPS: dict[str, dict[str, int]] = {
    "mcd_k_conv2d": {"dsp": 2, "mve": 2},  # gemv2_requant / gemv2_mve (1x1): output pixels in pairs
    "mcd_k_conv2d_add": {"dsp": 2, "mve": 2},
    "mcd_k_depthwise_conv2d": {},  # one pixel at a time on every path
}


def write_group(kernel: str, arch: str) -> int:
    return WRITE_GROUPS.get(kernel, {}).get(arch, 1)


FUSED_HDR = 2  # mcd_k_conv2d_add: offset of the ADD's parameters, which ADD operand the convolution is


def add_is_flat(params: tuple[int, ...]) -> bool:
    """An ADD whose operands both walk like its output (mcd_kernels.c ``contiguous``): its flat path."""

    def contiguous(d: tuple[int, ...], strides: tuple[int, ...]) -> bool:
        step = 1
        for n, s in zip(reversed(d), reversed(strides), strict=True):
            if n != 1 and s != step:
                return False
            step *= n
        return True

    d = params[0:4]
    return contiguous(d, params[4:8]) and contiguous(d, params[8:12])


def fuse_conv_add(model: Model, steps: list[Step], aliases: dict[int, int]) -> list[Step]:
    """A CONV_2D whose output feeds nothing but one same-shape ADD becomes one mcd_k_conv2d_add step (at
    the convolution's place) that adds each output pixel to the other operand as it is computed: the
    convolution's output never takes arena space, and the sum may be written over the other operand.
    Needs that operand computed before the convolution (a residual branch usually is)."""

    def storage(t: int) -> int:
        while t in aliases:
            t = aliases[t]
        return t

    readers: dict[int, list[int]] = {}
    producer: dict[int, int] = {}
    for i, s in enumerate(steps):
        for t in s.inputs:
            if t >= 0:
                readers.setdefault(storage(t), []).append(i)
        producer[storage(s.output)] = i
    outputs = {storage(t) for t in model.main.outputs}
    fused: dict[int, Step] = {}
    dropped: set[int] = set()
    for i, s in enumerate(steps):
        t = storage(s.output)
        if s.kernel != "mcd_k_conv2d" or t in outputs or len(readers.get(t, [])) != 1:
            continue
        j = readers[t][0]
        add = steps[j]
        if add.kernel != "mcd_k_add" or not add_is_flat(add.params) or j in fused or j in dropped:
            continue
        ops = [storage(x) for x in add.inputs]
        if ops.count(t) != 1:
            continue
        which = ops.index(t)
        other = add.inputs[1 - which]
        if producer.get(storage(other), -1) >= i:  # not computed yet where the convolution runs
            continue
        params = (FUSED_HDR + len(s.params), which, *s.params, *add.params)
        inputs = (*s.inputs[:4], other)
        fused[i] = Step(s.op_index, f"{s.opcode}+ADD", "mcd_k_conv2d_add", params, inputs, add.output)
        dropped.add(j)
    return [fused.get(i, s) for i, s in enumerate(steps) if i not in dropped]


def _dwconv(c: _Ctx) -> tuple[str, list[int], list[int]]:
    p, ins = _conv_like(c, True)
    return "mcd_k_depthwise_conv2d", p, [*ins, SCRATCH]


def _fc(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, w, y = c.t(0), c.t(1), c.out
    c.int8(x, w, y)
    if len(w.shape) != 2:
        raise c.refuse(f"weights of shape {list(w.shape)}")
    o, d = w.shape
    lo, hi = c.act()
    if len(w.quant.scale) > 1:
        mults, shifts = q.conv_multipliers(c.scale(x), w.quant.scale, c.scale(y), o)
    else:
        m, s = q.fc_multiplier(c.scale(x), w.quant.scale[0], c.scale(y))
        mults, shifts = [m] * o, [s] * o
    woff = -c.zp(w)
    # int8 weights are symmetric (zero point 0): fold the input offset; otherwise the kernel adds both
    wsum = _weights(c, w).sum(axis=1) if woff == 0 else np.zeros(o, np.int64)
    bias = _folded_bias(c, 2, wsum, -c.zp(x))
    fast = q.fast_requant(_abs_sums(_weights(c, w)), bias, shifts, c.zp(y), lo, hi) if woff == 0 else 0
    p = [x.num_elements // d, d, o, -c.zp(x), woff, c.zp(y), lo, hi, fast]
    wt = c.op.inputs[1]
    if woff == 0:
        wt = c.derive(w, " (4x16 blocks)", blocked_rows(_weights(c, w).astype(np.int8)))
    return "mcd_k_fully_connected", p + mults + shifts + bias, [c.op.inputs[0], wt]


def _pool(kernel: str) -> Callable[[_Ctx], tuple[str, list[int], list[int]]]:
    def lower(c: _Ctx) -> tuple[str, list[int], list[int]]:
        x, y = c.t(0), c.out
        c.int8(x, y)
        if (c.scale(x), c.zp(x)) != (c.scale(y), c.zp(y)):
            raise c.refuse("a pool whose input and output quantization differ")
        o = c.op.options
        n, h, w, ch = x.shape
        _, oh, ow, _ = y.shape
        fh, fw, sh, sw = o["filter_height"], o["filter_width"], o.get("stride_h", 1), o.get("stride_w", 1)
        lo, hi = c.act()
        p = [
            n,
            h,
            w,
            ch,
            oh,
            ow,
            fh,
            fw,
            sh,
            sw,
            _padding(sh, 1, h, fh, oh),
            _padding(sw, 1, w, fw, ow),
            lo,
            hi,
        ]
        return kernel, p, [c.op.inputs[0]]

    return lower


def _mean(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    if len(x.shape) > 4:
        raise c.refuse(f"a {len(x.shape)}-D input")
    nd = len(x.shape)
    axes = sorted({a + nd if a < 0 else a for a in c.const_ints(1)})
    dims = _shape4(x.shape)
    red = [0] * 4
    for a in axes:
        red[a + 4 - nd] = 1
    count = math.prod(d for d, r in zip(dims, red, strict=True) if r)
    mult, shift = q.mean_multiplier(c.scale(x), c.scale(y), max(count, 1))
    return "mcd_k_mean", [*dims, *red, c.zp(x), c.zp(y), mult, shift, count], [c.op.inputs[0]]


def _broadcast(c: _Ctx) -> list[int]:
    a, b, y = c.t(0), c.t(1), c.out
    c.int8(a, b, y)
    if max(len(a.shape), len(b.shape), len(y.shape)) > 4:
        raise c.refuse("broadcasting beyond 4 dimensions")
    od = _shape4(y.shape)

    def strides(shape: tuple[int, ...]) -> list[int]:
        d = _shape4(shape)
        st, acc = [0] * 4, 1
        for i in range(3, -1, -1):
            st[i] = 0 if d[i] == 1 and od[i] != 1 else acc
            acc *= d[i]
        return st

    lo, hi = c.act()
    return [*od, *strides(a.shape), *strides(b.shape), -c.zp(a), -c.zp(b), c.zp(y), lo, hi]


def _add(c: _Ctx) -> tuple[str, list[int], list[int]]:
    p = _broadcast(c)
    s1, s2, so = c.scale(c.t(0)), c.scale(c.t(1)), c.scale(c.out)
    left = 20
    twice_max = 2 * float(max(q.f32(s1), q.f32(s2)))
    m1 = q.quantize_multiplier(s1 / twice_max)
    m2 = q.quantize_multiplier(s2 / twice_max)
    mo = q.quantize_multiplier(twice_max / ((1 << left) * so))
    return "mcd_k_add", [*p, left, *m1, *m2, *mo], list(c.op.inputs[:2])


def _mul(c: _Ctx) -> tuple[str, list[int], list[int]]:
    p = _broadcast(c)
    m = q.quantize_multiplier(c.scale(c.t(0)) * c.scale(c.t(1)) / c.scale(c.out))
    return "mcd_k_mul", [*p, *m], list(c.op.inputs[:2])


def _pad(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    if len(x.shape) > 4:
        raise c.refuse(f"a {len(x.shape)}-D input")
    pads = c.const_ints(1)
    before = [0] * (4 - len(x.shape)) + pads[0::2]
    value = c.zp(y)
    if len(c.op.inputs) > 2 and c.op.inputs[2] >= 0:
        cv = c.t(2)
        if cv.data is None or cv.dtype != "int8":
            raise c.refuse("a non-constant or non-int8 pad value")
        value = struct.unpack("<b", cv.data[:1])[0]
    return "mcd_k_pad", [*_shape4(x.shape), *_shape4(y.shape), *before, value], [c.op.inputs[0]]


def _concat(c: _Ctx) -> tuple[str, list[int], list[int]]:
    y = c.out
    ins = [c.model.tensors[i] for i in c.op.inputs]
    c.int8(y, *ins)
    for t in ins:
        if (c.scale(t), c.zp(t)) != (c.scale(y), c.zp(y)):
            raise c.refuse(f"concatenating '{t.name}' whose quantization differs from the output's")
    if int(c.op.options.get("fused_activation_function", 0)):
        raise c.refuse("a fused activation on CONCATENATION")
    axis = c.op.options.get("axis", 0)
    axis = axis + len(y.shape) if axis < 0 else axis
    outer = math.prod(y.shape[:axis])
    inner = math.prod(y.shape[axis + 1 :])
    return "mcd_k_concat", [len(ins), outer, *(t.shape[axis] * inner for t in ins)], list(c.op.inputs)


def _softmax(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    if (c.zp(y), q.f32(c.scale(y))) != (-128, q.f32(1.0 / 256)):
        raise c.refuse("an int8 SOFTMAX output not quantized as scale 1/256, zero point -128")
    mult, shift, diff_min = q.softmax_params(float(c.op.options.get("beta", 1.0)), c.scale(x))
    depth = x.shape[-1]
    return "mcd_k_softmax", [x.num_elements // depth, depth, mult, shift, diff_min], [c.op.inputs[0]]


def _sigmoid_like(kernel: str, out_zp: int) -> Callable[[_Ctx], tuple[str, list[int], list[int]]]:
    def lower(c: _Ctx) -> tuple[str, list[int], list[int]]:
        x, y = c.t(0), c.out
        c.int8(x, y)
        if c.zp(y) != out_zp:
            raise c.refuse(f"an output zero point {c.zp(y)} (TFLM needs {out_zp})")
        mult, shift = q.frexp_multiplier(c.scale(x) * (1 << 27))
        p = [x.num_elements, c.zp(x), q.input_radius(4, shift), mult, shift]
        return kernel, p, [c.op.inputs[0]]

    return lower


def _requantize(c: _Ctx, lo: int = q.INT8_MIN, hi: int = q.INT8_MAX, mult_scale: float | None = None):
    x, y = c.t(0), c.out
    m, s = q.quantize_multiplier(mult_scale if mult_scale is not None else c.scale(x) / c.scale(y))
    return "mcd_k_requantize", [x.num_elements, c.zp(x), c.zp(y), m, s, lo, hi], [c.op.inputs[0]]


def _quantize(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(y)
    if x.dtype == "float32":
        bits = struct.unpack("<i", struct.pack("<f", c.scale(y)))[0]
        return "mcd_k_quantize_f32", [x.num_elements, c.zp(y), bits], [c.op.inputs[0]]
    c.int8(x)
    return _requantize(c)


def _dequantize(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x)
    if y.dtype != "float32":
        raise c.refuse(f"DEQUANTIZE to {y.dtype}")
    bits = struct.unpack("<i", struct.pack("<f", c.scale(x)))[0]
    return "mcd_k_dequantize_f32", [x.num_elements, c.zp(x), bits], [c.op.inputs[0]]


def _relu(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    so, zo = c.scale(y), c.zp(y)
    lo = max(q.INT8_MIN, zo + q.tf_round(float(q.f32(0.0) / q.f32(so))))
    # the installed tflite-micro divides the scales in double (probed: tests/exact_elementwise.py)
    return _requantize(c, lo, q.INT8_MAX, c.scale(x) / so)


def _relu6(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    zero = c.zp(x)
    six = min(max(q.quantize_value(6.0, c.scale(x), zero), q.INT8_MIN), q.INT8_MAX)
    return "mcd_k_clamp", [x.num_elements, zero, six], [c.op.inputs[0]]


def _leaky_relu(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    # both multipliers in double, left to right, as the installed tflite-micro computes them; alpha is
    # the float32 of the op options
    sx, sy, alpha = c.scale(x), c.scale(y), float(q.f32(c.op.options.get("alpha", 0.2)))
    ma = q.quantize_multiplier(sx * alpha / sy)
    mi = q.quantize_multiplier(sx / sy)
    return "mcd_k_leaky_relu", [x.num_elements, c.zp(x), c.zp(y), *mi, *ma], [c.op.inputs[0]]


def _hard_swish(c: _Ctx) -> tuple[str, list[int], list[int]]:
    x, y = c.t(0), c.out
    c.int8(x, y)
    hires = q.f32(1.0 / 128.0) * q.f32(c.scale(x))
    om, oe = q.quantize_multiplier(float(hires / q.f32(c.scale(y))))
    rm, re_ = q.quantize_multiplier(float(hires / q.f32(3.0 / 32768.0)))
    if oe > 0:
        raise c.refuse("an output scale below the input's hi-res scale")
    p = [x.num_elements, c.zp(x), c.zp(y), q.downscale_to_int16(om), oe, q.downscale_to_int16(rm), re_]
    return "mcd_k_hard_swish", p, [c.op.inputs[0]]


LOWERINGS: dict[str, Callable[[_Ctx], tuple[str, list[int], list[int]]]] = {
    "ADD": _add,
    "AVERAGE_POOL_2D": _pool("mcd_k_avg_pool"),
    "CONCATENATION": _concat,
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _dwconv,
    "DEQUANTIZE": _dequantize,
    "FULLY_CONNECTED": _fc,
    "HARD_SWISH": _hard_swish,
    "LEAKY_RELU": _leaky_relu,
    "LOGISTIC": _sigmoid_like("mcd_k_logistic", -128),
    "MAX_POOL_2D": _pool("mcd_k_max_pool"),
    "MEAN": _mean,
    "MUL": _mul,
    "PAD": _pad,
    "PADV2": _pad,
    "QUANTIZE": _quantize,
    "RELU": _relu,
    "RELU6": _relu6,
    "SOFTMAX": _softmax,
    "TANH": _sigmoid_like("mcd_k_tanh", 0),
}

SUPPORTED_OPS = tuple(sorted((*LOWERINGS, *OP_LOWERINGS, *ALIAS_OPS)))


def unsupported_ops(model: Model) -> list[str]:
    return sorted({op.opcode for op in model.operators if op.opcode not in SUPPORTED_OPS})


def lower(model: Model, arch: str = "host") -> Program:
    """Lower every operator of the main subgraph for kernel path ``arch`` (:data:`ARCHS`: some
    parameter layouts exist for one path only); refuse the first model-level problem by name."""
    if arch not in ARCHS:
        raise ValueError(f"unknown kernel path {arch!r} (known: {', '.join(ARCHS)})")
    bad = unsupported_ops(model)
    if bad:
        lacks = "".join(f"; {TFLM_LACKS[b]}" for b in bad if b in TFLM_LACKS)
        raise UnsupportedError(
            f"{model.source}: the C runtime does not support op(s) {', '.join(bad)} "
            f"(it supports {', '.join(SUPPORTED_OPS)}){lacks}",
            hint=HINT if not lacks else "replace the op (e.g. by a fused activation) or run it elsewhere",
        )
    if len(model.subgraphs) != 1:
        raise UnsupportedError(
            f"{model.source}: {len(model.subgraphs)} subgraphs (the C runtime runs one)", hint=HINT
        )
    for t in (*model.inputs, *model.outputs):
        if t.dtype not in ("int8", "float32"):
            raise UnsupportedError(f"{model.source}: model I/O tensor '{t.name}' is {t.dtype}", hint=HINT)
    steps: list[Step] = []
    aliases: dict[int, int] = {}
    derived: dict[int, Tensor] = {}
    for op in model.operators:
        c = _Ctx(model, op, derived, arch)
        if op.opcode in OP_LOWERINGS:  # lower_ops.py: ops that may become several kernel calls
            for kernel, params, ins, out in OP_LOWERINGS[op.opcode](c):
                steps.append(_step(c, kernel, params, ins, out))
            continue
        if len(op.outputs) != 1:
            raise c.refuse(f"{len(op.outputs)} outputs")
        if op.opcode in ALIAS_OPS:
            src = op.inputs[0]
            if model.tensors[src].is_constant:
                raise c.refuse("reshaping a constant tensor")
            aliases[op.outputs[0]] = src
            continue
        kernel, params, ins = LOWERINGS[op.opcode](c)
        steps.append(_step(c, kernel, params, ins, op.outputs[0]))
    return Program(model, tuple(fuse_conv_add(model, steps, aliases)), aliases, derived, arch)


def _step(c: _Ctx, kernel: str, params: list[int], ins: list[int], out: int) -> Step:
    for v in params:
        if not -(2**31) <= v < 2**31:
            raise c.refuse(f"a parameter ({v}) outside int32")
    return Step(c.op.index, c.op.opcode, kernel, tuple(params), tuple(ins), out)
