"""Stage ``model``: load a model file and give a validated, parsed view of a .tflite.

Validation comes first. TFLite Micro and the TFLite C++ loader trust their input, so no byte of a
.tflite reaches them (or any later stage) before :func:`parse_tflite` has checked the file
identifier, schema version, every index and every buffer size, and then the graph itself: sane
quantization, activations written before they are read, and shapes/options that agree for the
ops whose TFLM kernels trust them (tests/test_fuzz_tflite.py runs mutants that pass through host
TFLM in a child process to hold this to "validated means safe"). The view is built on the
``tflite`` flatbuffer package; nothing here hand-parses the schema.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import tflite

from ..errors import InputError, MCUDeployError, ModelFormatError

TFLITE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
NPU_CUSTOM_OP = "ethos-u"  # the custom op Vela puts the NPU's part of a model in
_PLACEHOLDER_OPCODE = 127  # deprecated_builtin_code's "see builtin_code": never an op itself
_FLATBUFFER_MAX = 2**31  # flatbuffers cannot address beyond 2 GiB (larger models use buffer offsets)

# TensorType enum value -> (name, bytes per element; 0.5 for packed 4-bit; 0 for variable length)
TENSOR_TYPES: dict[int, tuple[str, float]] = {
    0: ("float32", 4),
    1: ("float16", 2),
    2: ("int32", 4),
    3: ("uint8", 1),
    4: ("int64", 8),
    5: ("string", 0),
    6: ("bool", 1),
    7: ("int16", 2),
    8: ("complex64", 8),
    9: ("int8", 1),
    10: ("float64", 8),
    11: ("complex128", 16),
    12: ("uint64", 8),
    13: ("resource", 0),
    14: ("variant", 0),
    15: ("uint32", 4),
    16: ("uint16", 2),
    17: ("int4", 0.5),
    18: ("bfloat16", 2),
    19: ("int2", 0.25),
}

_OPTION_CLASSES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)
}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    quant: QuantParams | None
    is_variable: bool = False
    shape_signature: tuple[int, ...] | None = None
    data: bytes | None = field(default=None, repr=False)  # constant data, None for activations

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return math.ceil(self.num_elements * TENSOR_TYPE_SIZES.get(self.dtype, 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "bytes": self.nbytes,
            "constant": self.is_constant,
            "quantization": self.quant.to_dict() if self.quant else None,
        }


TENSOR_TYPE_SIZES: dict[str, float] = dict(TENSOR_TYPES.values())


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str  # builtin name (e.g. "CONV_2D") or the custom code (e.g. "ethos-u")
    builtin: bool
    version: int
    inputs: tuple[int, ...]  # -1 marks an optional input that is absent
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_options: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "opcode": self.opcode,
            "builtin": self.builtin,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "options": self.options,
        }


@dataclass(frozen=True)
class Subgraph:
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Model:
    """A validated .tflite: its bytes and a parsed view of what is in them."""

    data: bytes = field(repr=False)
    source: str  # file name (not the absolute path: keeps outputs deterministic)
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    num_buffers: int

    # -- convenience for the main subgraph ------------------------------------------------
    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return self.main.tensors

    @property
    def operators(self) -> tuple[Operator, ...]:
        return self.main.operators

    @property
    def inputs(self) -> list[Tensor]:
        return [self.main.tensors[i] for i in self.main.inputs]

    @property
    def outputs(self) -> list[Tensor]:
        return [self.main.tensors[i] for i in self.main.outputs]

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def op_names(self) -> list[str]:
        """Distinct operator names across all subgraphs, sorted."""
        return sorted({op.opcode for sg in self.subgraphs for op in sg.operators})

    def producer(self, tensor_index: int) -> Operator | None:
        for op in self.operators:
            if tensor_index in op.outputs:
                return op
        return None

    def weight_bytes(self) -> int:
        return sum(len(t.data) for sg in self.subgraphs for t in sg.tensors if t.data is not None)

    def macs(self, op: Operator) -> int:
        return estimate_macs(self.main, op)

    def total_macs(self) -> int:
        return sum(self.macs(op) for op in self.operators)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "size": self.size,
            "version": self.version,
            "weight_bytes": self.weight_bytes(),
            "total_macs": self.total_macs(),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "operators": [{**op.to_dict(), "macs": self.macs(op)} for op in self.operators],
            "tensors": [t.to_dict() for t in self.tensors],
            "subgraphs": len(self.subgraphs),
        }


# -- MACs ---------------------------------------------------------------------------------
def estimate_macs(sg: Subgraph, op: Operator) -> int:
    """Multiply-accumulates of one operator (0 for data movement and elementwise ops)."""

    def shape(i: int) -> tuple[int, ...]:
        return sg.tensors[i].shape if 0 <= i < len(sg.tensors) else ()

    out = math.prod(shape(op.outputs[0])) if op.outputs else 0
    if op.opcode in ("CONV_2D", "TRANSPOSE_CONV") and len(op.inputs) > 1:
        w = shape(op.inputs[1])  # OHWI (TRANSPOSE_CONV: input 1 is the filter too)
        return out * math.prod(w[1:]) if len(w) == 4 else 0
    if op.opcode == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1:
        w = shape(op.inputs[1])  # 1HWC
        return out * w[1] * w[2] if len(w) == 4 else 0
    if op.opcode in ("FULLY_CONNECTED", "BATCH_MATMUL") and len(op.inputs) > 1:
        w = shape(op.inputs[1])
        return out * (w[-1] if w else 0)
    if op.opcode in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return out * op.options.get("filter_width", 1) * op.options.get("filter_height", 1)
    return 0


# -- loading ------------------------------------------------------------------------------
def read_tflite(path: str | os.PathLike[str]) -> Model:
    """Read and validate a .tflite file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a folder, expected a .tflite file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror})") from None
    return parse_tflite(data, source=p.name)


def parse_tflite(data: bytes, source: str = "<bytes>") -> Model:
    """Validate ``data`` as a TFLite flatbuffer and parse it; raise ModelFormatError if malformed."""
    data = bytes(data)
    _check_header(data, source)
    try:
        model = _parse(data, source)
    except ModelFormatError:
        raise
    except (
        struct.error,
        IndexError,
        ValueError,
        OverflowError,
        TypeError,
        UnicodeDecodeError,
        RecursionError,
        MemoryError,
        AttributeError,
    ) as e:
        raise ModelFormatError(
            f"{source}: malformed TFLite flatbuffer (a table or vector points outside the file: {e})"
        ) from None
    _check_semantics(model)
    _check_tflm_unpacks(data, source)
    return model


def _check_tflm_unpacks(data: bytes, source: str) -> None:
    """Reject what TFLite Micro's Python interpreter cannot read before its C++ sees the model.

    ``Interpreter.from_bytes`` first unpacks the whole flatbuffer (every table, including the
    ones this view skips: metadata, signatures, options of every kind) with the schema's object
    API in ``count_resource_variables``; a corrupt offset or length there raises struct.error,
    TypeError ("bad number") or ValueError. Running that same reader here makes those a
    ModelFormatError naming the file, for every command and not only the ones that reach TFLM.
    """
    try:
        from tflite_micro.python.tflite_micro.runtime import count_resource_variables
    except ImportError:  # pragma: no cover - a declared dependency; without it nothing unpacks this
        return
    try:
        count_resource_variables(data)
    except RecursionError:
        raise ModelFormatError(
            f"{source}: malformed TFLite flatbuffer (its tables nest without end)"
        ) from None
    except Exception as e:  # any failure of a third-party reader on untrusted bytes
        raise ModelFormatError(
            f"{source}: malformed TFLite flatbuffer: TFLite Micro's reader cannot unpack it "
            f"({type(e).__name__}: {e})"
        ) from None


def _check_header(data: bytes, source: str) -> None:
    if len(data) < 8:
        raise ModelFormatError(f"{source}: {len(data)} bytes is too short to be a .tflite model")
    if data[4:8] != TFLITE_IDENTIFIER:
        hint = None
        if data[:2] == b"PK":
            hint = "this looks like a zip (.keras) file: quantize it with `mcudeploy quantize` first"
        elif data[:8] == b"\x89HDF\r\n\x1a\n":
            hint = "this looks like a Keras .h5 file: quantize it with `mcudeploy quantize` first"
        raise ModelFormatError(
            f"{source}: not a TFLite model (file identifier is {data[4:8]!r}, expected b'TFL3')", hint=hint
        )
    if len(data) >= _FLATBUFFER_MAX:
        raise ModelFormatError(f"{source}: {len(data)} bytes exceeds the 2 GiB flatbuffer limit")
    root = struct.unpack_from("<I", data, 0)[0]
    if root + 4 > len(data):
        raise ModelFormatError(f"{source}: root table offset {root} is beyond the end of the file")


class _Reader:
    """Guards every vector length before iterating, so a corrupt length cannot make us loop for ages."""

    def __init__(self, data: bytes, source: str) -> None:
        self.size = len(data)
        self.source = source

    def count(self, n: int, elem_size: int, what: str) -> int:
        if n < 0 or n * elem_size > self.size:
            raise ModelFormatError(f"{self.source}: {what} claims {n} entries, more than the file can hold")
        return n


def _parse(data: bytes, source: str) -> Model:
    r = _Reader(data, source)
    m = tflite.Model.GetRootAs(data, 0)
    version = m.Version()
    if version != SCHEMA_VERSION:
        raise ModelFormatError(
            f"{source}: schema version {version}, mcudeploy reads version {SCHEMA_VERSION}"
        )

    nbuf = r.count(m.BuffersLength(), 4, "the buffer list")
    buffers: list[bytes | None] = []
    for i in range(nbuf):
        b = m.Buffers(i)
        if b is None:
            raise ModelFormatError(f"{source}: buffer {i} is missing")
        off, size = b.Offset(), b.Size()
        if off > 1:  # data stored outside the flatbuffer (models > 2 GiB)
            if off + size > len(data):
                raise ModelFormatError(
                    f"{source}: buffer {i} spans bytes {off}..{off + size}, beyond the file's {len(data)}"
                )
            buffers.append(data[off : off + size] if size else None)
            continue
        n = r.count(b.DataLength(), 1, f"buffer {i}")
        if n == 0:
            buffers.append(None)
            continue
        start = b._tab.Vector(b._tab.Offset(4))
        if start + n > len(data):
            raise ModelFormatError(f"{source}: buffer {i} runs {start + n - len(data)} bytes past the end")
        buffers.append(data[start : start + n])

    nops = r.count(m.OperatorCodesLength(), 4, "the operator-code list")
    opcodes: list[tuple[str, bool, int]] = []
    for i in range(nops):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == tflite.BuiltinOperator.CUSTOM:
            custom = oc.CustomCode()
            name = custom.decode("utf-8", "replace") if custom else "CUSTOM"
            opcodes.append((name, False, oc.Version()))
        elif code in tflite.BUILTIN_OPCODE2NAME and code != _PLACEHOLDER_OPCODE:
            opcodes.append((tflite.BUILTIN_OPCODE2NAME[code], True, oc.Version()))
        else:
            raise ModelFormatError(f"{source}: operator code {i} has unknown builtin code {code}")

    nsg = r.count(m.SubgraphsLength(), 4, "the subgraph list")
    if nsg == 0:
        raise ModelFormatError(f"{source}: the model has no subgraphs")
    subgraphs = []
    for s in range(nsg):
        subgraphs.append(_parse_subgraph(r, m.Subgraphs(s), s, buffers, opcodes))
    desc = m.Description()
    return Model(
        data=data,
        source=source,
        version=version,
        description=desc.decode("utf-8", "replace") if desc else "",
        subgraphs=tuple(subgraphs),
        num_buffers=nbuf,
    )


def _parse_subgraph(r: _Reader, sg: Any, s: int, buffers: list[bytes | None], opcodes: list) -> Subgraph:
    src = r.source
    ntens = r.count(sg.TensorsLength(), 4, f"subgraph {s}'s tensor list")
    tensors = []
    for i in range(ntens):
        t = sg.Tensors(i)
        name = (t.Name() or b"").decode("utf-8", "replace")
        where = f"{src}: tensor {i} ({name!r})"
        shape = tuple(int(x) for x in _ints(r, t.ShapeLength(), t.Shape, f"{where} shape"))
        sig = (
            tuple(int(x) for x in _ints(r, t.ShapeSignatureLength(), t.ShapeSignature, f"{where} signature"))
            if not t.ShapeSignatureIsNone()
            else None
        )
        ttype = t.Type()
        if ttype not in TENSOR_TYPES:
            raise ModelFormatError(f"{where} has unknown type code {ttype}")
        if any(d < 0 for d in shape):
            raise ModelFormatError(f"{where} has a negative dimension in shape {list(shape)}")
        buf = t.Buffer()
        if not 0 <= buf < len(buffers):
            raise ModelFormatError(f"{where} points at buffer {buf}, but the model has {len(buffers)}")
        q = t.Quantization()
        quant = None
        if q is not None and q.ScaleLength() > 0:
            scales = tuple(float(x) for x in _ints(r, q.ScaleLength(), q.Scale, f"{where} scales"))
            zps = tuple(int(x) for x in _ints(r, q.ZeroPointLength(), q.ZeroPoint, f"{where} zero points"))
            if len(zps) not in (0, len(scales)):
                raise ModelFormatError(f"{where} has {len(scales)} scales but {len(zps)} zero points")
            quant = QuantParams(scales, zps or (0,) * len(scales), q.QuantizedDimension())
        data = buffers[buf]
        dtype, esize = TENSOR_TYPES[ttype]
        if data is not None and esize and t.Sparsity() is None:
            expected = math.ceil(math.prod(shape) * esize)
            if len(data) != expected:
                raise ModelFormatError(
                    f"{where}: buffer {buf} holds {len(data)} bytes, but shape {list(shape)} of {dtype} "
                    f"needs {expected}"
                )
        tensors.append(Tensor(i, name, shape, dtype, buf, quant, bool(t.IsVariable()), sig, data))

    def check_index(idx: int, what: str, optional: bool = False) -> int:
        if (optional and idx == -1) or 0 <= idx < ntens:
            return idx
        raise ModelFormatError(f"{src}: {what} refers to tensor {idx}, but subgraph {s} has {ntens}")

    nops = r.count(sg.OperatorsLength(), 4, f"subgraph {s}'s operator list")
    ops = []
    for i in range(nops):
        op = sg.Operators(i)
        oi = op.OpcodeIndex()
        if not 0 <= oi < len(opcodes):
            raise ModelFormatError(f"{src}: operator {i} uses opcode {oi}, but the model has {len(opcodes)}")
        name, builtin, version = opcodes[oi]
        what = f"operator {i} ({name})"
        ins = tuple(
            check_index(int(x), f"{what} input", True) for x in _ints(r, op.InputsLength(), op.Inputs, what)
        )
        outs = tuple(
            check_index(int(x), f"{what} output") for x in _ints(r, op.OutputsLength(), op.Outputs, what)
        )
        custom = b""
        if not builtin and not op.CustomOptionsIsNone():
            n = r.count(op.CustomOptionsLength(), 1, f"{what} custom options")
            custom = op.CustomOptionsAsNumpy().tobytes() if n else b""
        problem = _options_type_error(name, builtin, op.BuiltinOptionsType())
        if problem:
            raise ModelFormatError(f"{src}: {what} {problem}")
        ops.append(Operator(i, name, builtin, version, ins, outs, _options(op), custom))
    ins = tuple(
        check_index(int(x), "subgraph input") for x in _ints(r, sg.InputsLength(), sg.Inputs, "inputs")
    )
    outs = tuple(
        check_index(int(x), "subgraph output") for x in _ints(r, sg.OutputsLength(), sg.Outputs, "outputs")
    )
    name = sg.Name()
    return Subgraph(name.decode("utf-8", "replace") if name else "", tuple(tensors), tuple(ops), ins, outs)


def _ints(r: _Reader, n: int, get: Callable[[int], Any], what: str) -> list[Any]:
    return [get(j) for j in range(r.count(n, 4, what))]


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if (
            ch.isupper()
            and i
            and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower()))
        ):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _options(op: Any) -> dict[str, Any]:
    """Builtin options as a plain dict with snake_case keys (``stride_w``, ``padding`` ...)."""
    kind = op.BuiltinOptionsType()
    cls_name = _OPTION_CLASSES.get(kind)
    table = op.BuiltinOptions()
    if not kind or cls_name is None or table is None:
        return {}
    cls = getattr(tflite, cls_name, None)
    if cls is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for meth in sorted(dir(cls)):
        if (
            meth.startswith("_")
            or meth in ("Init",)
            or meth.startswith("GetRootAs")
            or "BufferHasIdentifier" in meth
        ):
            continue
        if meth.endswith(("Length", "IsNone", "AsNumpy")):
            continue
        fn = getattr(opts, meth)
        params = inspect.signature(fn).parameters
        if len(params) == 0:
            out[_snake(meth)] = fn()
        elif len(params) == 1 and hasattr(opts, meth + "Length"):
            n = getattr(opts, meth + "Length")()
            if 0 <= n <= 4096:
                out[_snake(meth)] = [fn(j) for j in range(n)]
    return out


# -- semantic validation ------------------------------------------------------------------
# TFLite Micro trusts shapes, quant params and options: a well-formed flatbuffer with a wrong channel
# count or a zero scale makes it divide by zero or write out of bounds. So a model is only valid
# once the graph is consistent: tensors have sane sizes and quant params, every activation is
# produced before it is read, and the ops TFLM kernels trust have matching shapes and options.

_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int4": (-8, 7)}
_MAX_RANK = 6  # TFLM kernels support at most 5-6 dimensions
_MAX_TENSOR_BYTES = 2**31 - 1  # TFLM sizes are int32
_POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D")
_UNARY_SAME_SHAPE = (
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "LEAKY_RELU",
    "ABS",
    "NEG",
    "QUANTIZE",
    "DEQUANTIZE",
    "ELU",
    "GELU",
    "PRELU",
    "SOFTMAX",
    "LOG_SOFTMAX",
    "L2_NORMALIZATION",
)
_BROADCAST_BINARY = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "DIV")
# ops whose TFLM kernels dereference their builtin options: the options table must be present
_NEEDS_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "SOFTMAX": "SoftmaxOptions",
    "CONCATENATION": "ConcatenationOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
    **{p: "Pool2DOptions" for p in _POOLS},
}
# inputs that may be absent (-1): the bias; not for DEPTHWISE_CONV_2D, whose TFLM int8 kernel reads it
_OPTIONAL_INPUTS = {"CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {3}}


def _options_type_error(opcode: str, builtin: bool, kind: int) -> str | None:
    """Why an operator's builtin-options type does not fit its opcode (None when it fits)."""
    if kind and kind not in _OPTION_CLASSES:
        return f"unknown builtin options type {kind}"
    if not builtin:
        return None
    want = _NEEDS_OPTIONS.get(opcode)
    if want is None:
        guess = opcode.replace("_", "").lower() + "options"
        want = next((n for n in _OPTION_CLASSES.values() if n.lower() == guess), None)
        if want is None or not kind:  # options optional for this op (e.g. RESHAPE reads input 1)
            return None
    elif not kind:
        return f"has no builtin options, but {opcode} needs {want}"
    got = _OPTION_CLASSES.get(kind, "NONE")
    return None if got == want else f"carries {got}, but {opcode} takes {want}"


def _check_tensor(src: str, t: Tensor) -> None:
    where = f"{src}: tensor {t.index} ({t.name!r})"
    if len(t.shape) > _MAX_RANK:
        raise ModelFormatError(f"{where} has rank {len(t.shape)}; at most {_MAX_RANK} is supported")
    if 0 in t.shape and not t.is_constant:
        raise ModelFormatError(f"{where} has an empty dimension in shape {list(t.shape)}")
    if t.nbytes > _MAX_TENSOR_BYTES:
        raise ModelFormatError(f"{where} of shape {list(t.shape)} needs {t.nbytes} bytes, over 2 GiB")
    q = t.quant
    if q is None:
        return
    bad = [s for s in q.scale if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ModelFormatError(f"{where} has quantization scale {bad[0]}; scales must be finite and > 0")
    lo, hi = _INT_RANGES.get(t.dtype, (-(2**31), 2**31 - 1))
    badz = [z for z in q.zero_point if not lo <= z <= hi]
    if badz:
        raise ModelFormatError(f"{where} has zero point {badz[0]}, outside {t.dtype}'s range {lo}..{hi}")
    if q.per_channel:
        if not 0 <= q.axis < len(t.shape):
            raise ModelFormatError(f"{where}: quantized dimension {q.axis} is not an axis of {list(t.shape)}")
        if t.shape[q.axis] != len(q.scale):
            raise ModelFormatError(
                f"{where} has {len(q.scale)} per-channel scales, but dimension {q.axis} of "
                f"{list(t.shape)} has {t.shape[q.axis]} channels"
            )


def conv_out(size: int, filt: int, stride: int, dilation: int, padding: int) -> int:
    """TFLite's output size of a convolution or pool along one axis: SAME (0) is ceil(in/stride),
    VALID (1) drops the partial windows."""
    if padding == 0:
        return (size + stride - 1) // stride
    eff = (filt - 1) * dilation + 1
    return (size - eff + stride) // stride


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    out = []
    for x, y in zip((1,) * (len(b) - len(a)) + a, (1,) * (len(a) - len(b)) + b, strict=True):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y) if 1 in (x, y) else x)
    return tuple(out)


def _check_op(src: str, sg: Subgraph, op: Operator) -> None:
    """Shape, dtype and option rules for the ops whose TFLM kernels trust them."""
    what = f"{src}: operator {op.index} ({op.opcode})"
    t = sg.tensors
    optional = _OPTIONAL_INPUTS.get(op.opcode, set())
    for j, i in enumerate(op.inputs):
        if i == -1 and j not in optional and op.builtin:
            raise ModelFormatError(f"{what}: input {j} is missing")

    def inp(j: int) -> Tensor | None:
        return t[op.inputs[j]] if j < len(op.inputs) and op.inputs[j] != -1 else None

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ModelFormatError(f"{what}: {msg}")

    x, out = inp(0), t[op.outputs[0]]
    opts = op.options
    name = op.opcode
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", *_POOLS):
        need(len(op.inputs) >= (1 if name in _POOLS else 2), "too few inputs")
        need(
            x is not None and len(x.shape) == 4 and len(out.shape) == 4, "input and output must be 4-D (NHWC)"
        )
        assert x is not None
        sw, sh = opts.get("stride_w", 0), opts.get("stride_h", 0)
        dw, dh = opts.get("dilation_w_factor", 1), opts.get("dilation_h_factor", 1)
        need(
            sw >= 1 and sh >= 1 and dw >= 1 and dh >= 1,
            f"strides {sw}x{sh} / dilations {dw}x{dh} must be >= 1",
        )
        need(opts.get("padding", 0) in (0, 1), f"unknown padding {opts.get('padding')}")
        need(x.dtype == out.dtype, f"input is {x.dtype} but output is {out.dtype}")
        if name in _POOLS:
            fh, fw = opts.get("filter_height", 0), opts.get("filter_width", 0)
            need(fh >= 1 and fw >= 1, f"pool filter {fw}x{fh} must be at least 1x1")
            channels = x.shape[3]
        else:
            w = inp(1)
            need(w is not None and len(w.shape) == 4, "the filter must be 4-D")
            assert w is not None
            fh, fw = w.shape[1], w.shape[2]
            if name == "CONV_2D":
                need(
                    x.shape[3] == w.shape[3],
                    f"input has {x.shape[3]} channels, the filter expects {w.shape[3]}",
                )
                channels = w.shape[0]
            else:
                mult = opts.get("depth_multiplier", 1)
                need(
                    w.shape[0] == 1
                    and w.shape[3] == out.shape[3]
                    and x.shape[3] > 0
                    and out.shape[3] % x.shape[3] == 0,
                    f"filter {list(w.shape)} does not fit input "
                    f"{list(x.shape)} and output {list(out.shape)} (depth multiplier {mult})",
                )
                channels = w.shape[3]
            bias = inp(2)
            need(
                bias is None or bias.num_elements == channels,
                f"bias has {bias.num_elements if bias else 0} values for {channels} output channels",
            )
        expect = (
            x.shape[0],
            conv_out(x.shape[1], fh, sh, dh, opts.get("padding", 0)),
            conv_out(x.shape[2], fw, sw, dw, opts.get("padding", 0)),
            channels,
        )
        need(
            min(expect) >= 1 and out.shape == expect,
            f"output shape {list(out.shape)} does not match {list(expect)} from the input and options",
        )
    elif name == "FULLY_CONNECTED":
        w = inp(1)
        need(x is not None and w is not None and len(w.shape) == 2, "needs an input and a 2-D weight")
        assert x is not None and w is not None
        units, depth = w.shape
        need(depth > 0 and x.num_elements % depth == 0, f"input {list(x.shape)} is not a multiple of {depth}")
        need(x.dtype == out.dtype, f"input is {x.dtype} but output is {out.dtype}")
        need(
            out.num_elements == x.num_elements // depth * units and out.shape[-1:] == (units,),
            f"output shape {list(out.shape)} does not fit input {list(x.shape)} and weights {list(w.shape)}",
        )
        bias = inp(2)
        need(bias is None or bias.num_elements == units, f"bias does not have {units} values")
    elif name == "RESHAPE":
        need(
            x is not None and x.num_elements == out.num_elements and x.dtype == out.dtype,
            f"cannot reshape {list(x.shape) if x else None} into {list(out.shape)}",
        )
    elif name in _UNARY_SAME_SHAPE:
        need(
            x is not None and x.shape == out.shape, f"output shape {list(out.shape)} differs from the input's"
        )
        need(len(out.shape) >= 1 or name != "SOFTMAX", "input must have at least one dimension")
        if name not in ("QUANTIZE", "DEQUANTIZE"):
            assert x is not None
            need(x.dtype == out.dtype, f"input is {x.dtype} but output is {out.dtype}")
    elif name in _BROADCAST_BINARY:
        y = inp(1)
        need(x is not None and y is not None, "needs two inputs")
        assert x is not None and y is not None
        need(
            _broadcast(x.shape, y.shape) == out.shape,
            f"inputs {list(x.shape)} and {list(y.shape)} do not broadcast to {list(out.shape)}",
        )


def _check_graph(src: str, s: int, sg: Subgraph) -> None:
    """Every activation is written once, before it is read; graph inputs are not constants."""
    written: set[int] = set(sg.inputs)
    for i in sg.inputs:
        if sg.tensors[i].is_constant:
            raise ModelFormatError(f"{src}: subgraph {s} input tensor {i} is a constant")
    for op in sg.operators:
        # Vela's ethos-u op takes its NPU scratch areas as inputs 2 and 3: work memory, never written
        scratch = set(op.inputs[2:4]) if op.opcode == NPU_CUSTOM_OP and not op.builtin else set()
        for i in op.inputs:
            if i in scratch:
                continue
            if (
                i != -1
                and i not in written
                and not sg.tensors[i].is_constant
                and not sg.tensors[i].is_variable
            ):
                raise ModelFormatError(
                    f"{src}: operator {op.index} ({op.opcode}) reads tensor {i} ({sg.tensors[i].name!r}) "
                    "before anything writes it"
                )
        for i in op.outputs:
            if i in written or sg.tensors[i].is_constant:
                raise ModelFormatError(
                    f"{src}: operator {op.index} ({op.opcode}) writes tensor {i} ({sg.tensors[i].name!r}), "
                    "which is a graph input, a constant, or already written"
                )
            written.add(i)
    for i in sg.outputs:
        if i not in written and not sg.tensors[i].is_constant:
            raise ModelFormatError(f"{src}: subgraph {s} output tensor {i} is never written")


def _check_semantics(model: Model) -> None:
    src = model.source
    for s, sg in enumerate(model.subgraphs):
        for op in sg.operators:
            if not op.outputs:
                raise ModelFormatError(f"{src}: operator {op.index} ({op.opcode}) has no outputs")
        if s == 0 and (not sg.inputs or not sg.outputs):
            raise ModelFormatError(f"{src}: the main subgraph declares no inputs or no outputs")
        for t in sg.tensors:
            _check_tensor(src, t)
        _check_graph(src, s, sg)
        for op in sg.operators:
            _check_op(src, sg, op)


# -- float models -------------------------------------------------------------------------
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MODEL_FORMATS = "expected .keras, .h5, .onnx, .pt2 (torch.export), a SavedModel folder, or .tflite"


def is_tflite(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".tflite"


_QAT_CLASSES = ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")


def is_qat_model(keras_model: Any) -> bool:
    """A model wrapped for quantization-aware training by tfmot (its layers carry fake-quant)."""
    return any(type(layer).__name__ in _QAT_CLASSES for layer in getattr(keras_model, "layers", []))


def load_keras(path: str | os.PathLike[str]) -> Any:
    """Load a Keras model (.keras / .h5), a SavedModel folder or an ONNX model as a tf.keras model."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    from . import _tf

    tf = _tf.tensorflow()
    try:
        if p.is_dir():
            if not (p / "saved_model.pb").exists():
                raise InputError(f"{p}: a folder, but not a SavedModel (no saved_model.pb inside)")
            try:
                return tf.keras.models.load_model(str(p), compile=False)
            except Exception:  # a plain SavedModel (not Keras): callers convert it from the folder
                return tf.saved_model.load(str(p))
        if p.suffix.lower() == ".pt2":
            from .torch_import import load_torch

            return load_torch(p)  # an ExportedProgram, through ONNX
        if p.suffix.lower() == ".onnx":
            from .onnx_import import load_onnx

            return load_onnx(p)  # rebuilt as NHWC Keras, checked against onnxruntime
        if p.suffix.lower() not in KERAS_SUFFIXES:
            raise InputError(
                f"{p}: unknown model format {p.suffix!r}",
                hint=MODEL_FORMATS,
            )
        return _load_keras_file(tf, p)
    except MCUDeployError:  # already says what is wrong (a missing onnx package is exit 3, not 2)
        raise
    except Exception as e:  # TF raises a zoo of types for corrupt files
        raise ModelFormatError(f"{p}: cannot load as a Keras model ({type(e).__name__}: {e})") from None


def _load_keras_file(tf: Any, p: Path) -> Any:
    try:
        return tf.keras.models.load_model(str(p), compile=False)
    except Exception:
        # QAT models from `mcudeploy optimize` hold tfmot layers: retry with tfmot's custom objects.
        import tensorflow_model_optimization as tfmot

        with tfmot.quantization.keras.quantize_scope():
            return tf.keras.models.load_model(str(p), compile=False)
