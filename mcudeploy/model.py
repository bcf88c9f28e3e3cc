"""Stage ``model``: load a model file and give a validated, parsed view of a .tflite.

Validation comes first. TFLite Micro and the TFLite C++ loader trust their input, so no byte of a
.tflite reaches them (or any later stage) before :func:`validate_tflite` has checked the file
identifier, schema version, every index and every buffer size. The view is built on the ``tflite``
flatbuffer package; nothing here hand-parses the schema.
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

from .errors import InputError, ModelFormatError

TFLITE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
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
    except (struct.error, IndexError, ValueError, OverflowError, TypeError, UnicodeDecodeError,
            RecursionError, MemoryError, AttributeError) as e:
        raise ModelFormatError(
            f"{source}: malformed TFLite flatbuffer (a table or vector points outside the file: {e})"
        ) from None
    _check_semantics(model)
    return model


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
        raise ModelFormatError(f"{source}: schema version {version}, mcudeploy reads version {SCHEMA_VERSION}")

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
        elif code in tflite.BUILTIN_OPCODE2NAME:
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
        ins = tuple(check_index(int(x), f"{what} input", True) for x in _ints(r, op.InputsLength(), op.Inputs, what))
        outs = tuple(check_index(int(x), f"{what} output") for x in _ints(r, op.OutputsLength(), op.Outputs, what))
        custom = b""
        if not builtin and not op.CustomOptionsIsNone():
            n = r.count(op.CustomOptionsLength(), 1, f"{what} custom options")
            custom = op.CustomOptionsAsNumpy().tobytes() if n else b""
        ops.append(Operator(i, name, builtin, version, ins, outs, _options(op), custom))
    ins = tuple(check_index(int(x), "subgraph input") for x in _ints(r, sg.InputsLength(), sg.Inputs, "inputs"))
    outs = tuple(check_index(int(x), "subgraph output") for x in _ints(r, sg.OutputsLength(), sg.Outputs, "outputs"))
    name = sg.Name()
    return Subgraph(
        name.decode("utf-8", "replace") if name else "", tuple(tensors), tuple(ops), ins, outs
    )


def _ints(r: _Reader, n: int, get: Callable[[int], Any], what: str) -> list[Any]:
    return [get(j) for j in range(r.count(n, 4, what))]


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
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
        if meth.startswith("_") or meth in ("Init",) or meth.startswith("GetRootAs") or "BufferHasIdentifier" in meth:
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


def _check_semantics(model: Model) -> None:
    for s, sg in enumerate(model.subgraphs):
        for op in sg.operators:
            if not op.outputs:
                raise ModelFormatError(f"{model.source}: operator {op.index} ({op.opcode}) has no outputs")
        if s == 0 and (not sg.inputs or not sg.outputs):
            raise ModelFormatError(f"{model.source}: the main subgraph declares no inputs or no outputs")


# -- float models -------------------------------------------------------------------------
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_tflite(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".tflite"


def load_keras(path: str | os.PathLike[str]) -> Any:
    """Load a Keras model (.keras / .h5) or a SavedModel folder as a tf.keras model."""
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
        if p.suffix.lower() not in KERAS_SUFFIXES:
            raise InputError(
                f"{p}: unknown model format {p.suffix!r}",
                hint="expected .keras, .h5, a SavedModel folder, or .tflite",
            )
        return tf.keras.models.load_model(str(p), compile=False)
    except InputError:
        raise
    except Exception as e:  # TF raises a zoo of types for corrupt files
        raise ModelFormatError(f"{p}: cannot load as a Keras model ({type(e).__name__}: {e})") from None
