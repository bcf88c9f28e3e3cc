"""Stage ``quantize``: float Keras model + representative data -> fully int8 .tflite.

Full-integer post-training quantization with TFLiteConverter. The batch dimension is fixed to 1
(nothing downstream should see a dynamic signature), weights are per-channel by default, and the
result must pass the fully-int8 gate (:mod:`mcudeploy.ml.gates`) or it is refused. TFLiteConverter's
own diagnostics are captured; when it cannot lower an op to an int8 builtin, the error names the
op and the Keras layer instead of dumping MLIR.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MCUDeployError, NotFullyInt8Error, UnsupportedError
from .gates import check_fully_int8, layer_name
from .model import Model, is_qat_model, is_tflite, load_keras, parse_tflite

IO_DTYPES = ("int8", "uint8", "int16", "float32")
MODES = ("int8", "16x8")
DEFAULT_SAMPLES = 200  # 100 calibration samples measurably cost accuracy on a DS-CNN (FACTS.md)


def resolve_io_dtype(io_dtype: str, mode: str) -> str:
    """The I/O type actually used: integer I/O follows the activations (int16 in 16x8 mode)."""
    if io_dtype not in IO_DTYPES:
        raise InputError(f"unknown I/O dtype {io_dtype!r} (choose from {', '.join(IO_DTYPES)})")
    if mode not in MODES:
        raise InputError(f"unknown quantization mode {mode!r} (choose from {', '.join(MODES)})")
    if mode == "16x8":
        if io_dtype == "uint8":
            raise InputError("uint8 I/O is not available in 16x8 mode (choose int16 or float32)")
        return "int16" if io_dtype in ("int8", "int16") else io_dtype
    if io_dtype == "int16":
        raise InputError("int16 I/O needs 16x8 mode (--mode 16x8)")
    return io_dtype


def convert_int8(
    keras_model: Any,
    representative: np.ndarray,
    *,
    samples: int = DEFAULT_SAMPLES,
    io_dtype: str = "int8",
    mode: str = "int8",
    per_channel: bool = True,
    source: str = "model.tflite",
) -> Model:
    """Full-integer post-training quantization; the batch dimension is fixed to 1.

    ``mode="16x8"`` gives int16 activations with int8 weights; there, integer I/O is int16.
    The returned model is not gated: :func:`quantize` does that.
    """
    from ._tf import tensorflow

    tf = tensorflow()
    io = resolve_io_dtype(io_dtype, mode)
    rep = np.asarray(representative, dtype=np.float32)[:samples]
    if len(rep) == 0:
        raise InputError("the representative dataset is empty")
    conv, in_shape = _converter(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def gen() -> Iterator[list[np.ndarray]]:
        for x in rep:
            yield [x.reshape(in_shape)]

    conv.representative_dataset = gen
    if mode == "16x8":
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    tf_io = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[io]
    conv.inference_input_type = tf_io
    conv.inference_output_type = tf_io
    if not per_channel:
        conv._experimental_disable_per_channel = True
    locate = lambda op: _layers_of_op(keras_model, op)  # noqa: E731 - only called on failure
    return parse_tflite(run_converter(conv, source, mode=mode, locate=locate), source=source)


def float_tflite(keras_model: Any, source: str = "model_float.tflite") -> Model:
    """The float32 .tflite of the same model (batch 1): the baseline for size ratios and accuracy."""
    conv, _ = _converter(keras_model)
    return parse_tflite(run_converter(conv, source), source=source)


@dataclass(frozen=True)
class QuantizeResult:
    """A gated int8 model plus what it took to make it."""

    model: Model
    mode: str
    io_dtype: str
    per_channel: bool
    samples: int  # calibration samples actually used
    seconds: float  # TFLiteConverter time (calibration + conversion)
    float_size: int | None  # bytes of the float32 .tflite, when measured

    @property
    def ratio(self) -> float | None:
        """int8 size / float size (≈ 0.25 for weight-dominated models)."""
        return self.model.size / self.float_size if self.float_size else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.model.source,
            "sha256": self.model.sha256,
            "mode": self.mode,
            "io_dtype": self.io_dtype,
            "per_channel": self.per_channel,
            "calibration_samples": self.samples,
            "convert_seconds": round(self.seconds, 3),
            "int8_bytes": self.model.size,
            "float_bytes": self.float_size,
            "ratio": round(self.ratio, 4) if self.ratio is not None else None,
            "ops": self.model.op_names(),
        }


def quantize(
    model: str | os.PathLike[str] | Any,
    data: str | os.PathLike[str] | np.ndarray,
    *,
    key: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    io_dtype: str = "int8",
    mode: str = "int8",
    per_channel: bool = True,
    pixel_range: tuple[float, float] = (0.0, 1.0),
    output_name: str | None = None,
    measure_float: bool = True,
) -> QuantizeResult:
    """Load ``model`` (.keras/.h5/SavedModel or a tf.keras model), calibrate on ``data``, convert, gate.

    Raises :class:`NotFullyInt8Error` when the result (or the conversion) is not fully int8.
    """
    from .datasets import describe_source, fit_shape, load_representative

    if not isinstance(data, np.ndarray):
        describe_source(data)  # a missing data file should fail before TensorFlow loads the model
    if samples < 1:
        raise InputError(f"--samples must be at least 1, not {samples}")
    io = resolve_io_dtype(io_dtype, mode)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if is_tflite(path):
            raise InputError(
                f"{path}: already a .tflite; quantize the float model it came from (.keras/.h5/SavedModel)",
                hint="check an existing .tflite with `mcudeploy inspect`",
            )
        keras_model = load_keras(path)
        stem = path.stem if path.suffix else path.name
    else:
        keras_model = model
        stem = "model"
    name = output_name or f"{stem}_{mode}.tflite"  # mode is "int8" or "16x8" (checked above)
    in_shape = input_shape(keras_model)[1:]
    if isinstance(data, np.ndarray):
        rep = fit_shape(np.asarray(data, dtype=np.float32)[:samples], in_shape, "representative data")
    else:
        rep = load_representative(data, in_shape, key=key, samples=samples, pixel_range=pixel_range)
    t0 = time.perf_counter()
    q = convert_int8(
        keras_model, rep, samples=samples, io_dtype=io, mode=mode, per_channel=per_channel, source=name
    )
    seconds = time.perf_counter() - t0
    check_fully_int8(q, allow_float_io=io == "float32", allow_uint8_io=io == "uint8", mode=mode)
    # A QAT model has no float twin: its float conversion keeps fake-quant ops (mcudeploy optimize).

    float_size = float_tflite(keras_model).size if measure_float and not is_qat_model(keras_model) else None
    return QuantizeResult(q, mode, io, per_channel, min(len(rep), samples), seconds, float_size)


# -- converter plumbing -------------------------------------------------------------------
def input_shape(model: Any) -> tuple[int, ...]:
    """The single input's shape with the batch fixed to 1; other dynamic dimensions are refused."""
    specs = _input_specs(model)
    if len(specs) != 1:
        names = ", ".join(n for n, _ in specs)
        raise UnsupportedError(
            f"the model has {len(specs)} inputs ({names}); mcudeploy quantizes single-input models"
        )
    name, shape = specs[0]
    if not shape:
        raise UnsupportedError(f"input {name!r} is a scalar; expected a batch axis")
    dyn = [i for i, d in enumerate(shape[1:], 1) if d is None]
    if dyn:
        raise UnsupportedError(
            f"input {name!r} has shape {['?' if d is None else d for d in shape]}: dimension "
            f"{', '.join(map(str, dyn))} is dynamic; microcontrollers need a fixed shape",
            hint="rebuild the model with a fixed input shape (keras.Input(shape=(H, W, C)))",
        )
    return (1, *(int(d) for d in shape[1:]))


def _input_specs(model: Any) -> list[tuple[str, list[int | None]]]:
    if hasattr(model, "inputs") and model.inputs:
        return [(t.name.split(":")[0], list(t.shape)) for t in model.inputs]
    sig = _signature(model)
    _, kwargs = sig.structured_input_signature
    return [(k, list(v.shape)) for k, v in sorted(kwargs.items())]


def _signature(model: Any) -> Any:
    sigs = getattr(model, "signatures", None)
    if not sigs:
        raise UnsupportedError("the model has neither Keras inputs nor a serving signature")
    return sigs["serving_default"] if "serving_default" in sigs else sigs[sorted(sigs.keys())[0]]


def _converter(model: Any) -> tuple[Any, tuple[int, ...]]:
    """A TFLiteConverter over a concrete function whose input has batch 1."""
    from ._tf import tensorflow

    tf = tensorflow()
    shape = input_shape(model)
    name = _input_specs(model)[0][0]
    if hasattr(model, "inputs") and model.inputs:

        def call(x: Any) -> Any:
            return model(x, training=False)

    else:
        sig = _signature(model)

        def call(x: Any) -> Any:
            out = sig(**{name: x})
            return out[sorted(out)[0]] if isinstance(out, dict) and len(out) == 1 else out

    fn = tf.function(call, input_signature=[tf.TensorSpec(shape, tf.float32, name=name)])
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model), shape


def run_converter(
    conv: Any, source: str, *, mode: str = "int8", locate: Callable[[str], set[str]] | None = None
) -> bytes:
    """Run ``conv``; its MLIR diagnostics on fd 2 are kept out of the CLI and read only on failure."""
    from ._tf import captured_fd2

    log: list[bytes] = []
    try:
        with captured_fd2() as log:
            return bytes(conv.convert())
    except MCUDeployError:
        raise
    except Exception as e:
        text = b"".join(log).decode("utf-8", "replace")
        raise converter_error(source, f"{e}\n{text}", mode=mode, locate=locate) from None


_SELECT_OPS = re.compile(r"TF Select ops: ([A-Za-z0-9_, ]+)")
_TF_OP = re.compile(r"'(tfl?)\.([A-Za-z0-9_]+)' op")
_NOT_SUPPORTED = re.compile(r"not yet supported for op: '(?:tfl?\.)?([A-Za-z0-9_]+)'")
_LOC = re.compile(r'"([^"@]+)@__inference')


def converter_error(
    source: str, text: str, *, mode: str = "int8", locate: Callable[[str], set[str]] | None = None
) -> MCUDeployError:
    """Turn TFLiteConverter's error text into an error naming each op that cannot be int8, and its layer.

    TensorFlow ops with no TFLite builtin are located through the converter's source locations;
    builtins without a kernel for ``mode`` through ``locate`` (op name -> Keras layers).
    """
    tf_ops: dict[str, set[str]] = {}
    builtins: dict[str, set[str]] = {}
    for m in _SELECT_OPS.finditer(text):
        for op in (o.strip() for o in m.group(1).split(",")):
            if op:
                tf_ops.setdefault(op, set())
    for m in _TF_OP.finditer(text):
        if m.group(1) == "tf":
            tf_ops.setdefault(m.group(2), set())
        else:
            builtins.setdefault(m.group(2).upper(), set())
    for m in _NOT_SUPPORTED.finditer(text):
        builtins.setdefault(m.group(1).upper(), set())
    if not tf_ops and not builtins:
        lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
        detail = lines[0] if lines else text.strip().splitlines()[0] if text.strip() else "unknown error"
        return UnsupportedError(f"{source}: TFLiteConverter failed: {detail[:500]}")
    for loc in _LOC.findall(text):
        leaf = loc.rsplit("/", 1)[-1].lower()
        layer = layer_name(loc)
        for op, layers in (*tf_ops.items(), *builtins.items()):
            if layer and leaf in (op.lower(), op.lower().replace("_", "")):
                layers.add(layer)
    if locate is not None:
        for op, layers in builtins.items():
            if not layers:
                layers.update(locate(op))

    def where(layers: set[str]) -> str:
        return f" (layer {', '.join(repr(x) for x in sorted(layers))})" if layers else ""

    parts = [f"TensorFlow op '{op}'{where(tf_ops[op])} has no TFLite builtin" for op in sorted(tf_ops)]
    kernel = "16x8 (int16 activation)" if mode == "16x8" else "int8"
    parts += [f"op {op}{where(builtins[op])} has no {kernel} kernel" for op in sorted(builtins)]
    return NotFullyInt8Error(
        f"{source}: cannot be quantized fully {'16x8' if mode == '16x8' else 'int8'}: " + "; ".join(parts),
        hint=f"rewrite those layers with ops that have {kernel} kernels (`mcudeploy quantize --gate-docs`)",
    )


def _layers_of_op(keras_model: Any, opcode: str) -> set[str]:
    """Keras layers holding ``opcode`` in the model's float .tflite (only used to explain a failure)."""
    from .gates import GateContext

    try:
        f = float_tflite(keras_model)
    except MCUDeployError:
        return set()
    ctx = GateContext(f, 0, "int8", False, False)
    return {layer for op in f.operators if op.opcode == opcode and (layer := ctx.layer_of(op))}
