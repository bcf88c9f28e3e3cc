"""Stage ``evaluate``: the accuracy ladder float → TFLite int8 → host TFLM int8, and how they agree.

Host TFLM is the reference every later bit-exact check is made against, so the ladder ends there;
the TFLite interpreter runs with its reference kernels (``BUILTIN_REF``, which round like TFLM) and,
when asked, its default optimised kernels too, whose rounding differs by an LSB here and there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..console import progress
from ..errors import ConfigError, DatasetError, GateError, UnsupportedError
from .model import Model
from .quantio import dequantize, fit_samples, quantize_input
from .tflm_host import HostTFLM, measure_arena


# -- data ---------------------------------------------------------------------------------
# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rung:
    name: str  # "float", "tflite-int8", "tflm-int8"
    runtime: str
    accuracy: float  # top-1, percent
    drop_pp: float | None  # percentage points below the previous rung


@dataclass(frozen=True)
class Agreement:
    """How one set of int8 outputs compares with the host TFLM's, sample by sample."""

    kernels: str  # "reference" or "default"
    byte_identical_pct: float
    top1_agreement_pct: float
    max_lsb_diff: int
    mean_abs_lsb_diff: float


@dataclass
class Evaluation:
    model: str
    sha256: str
    dataset: str
    samples: int
    rungs: list[Rung]
    agreement: list[Agreement]
    int8_bytes: int
    float_bytes: int | None  # float .tflite of the same network, when the float model was given
    arena_bytes: int  # the TFLM arena the model needs, measured on the host interpreter
    io: dict[str, Any] = field(default_factory=dict)
    per_layer: list[dict[str, Any]] = field(default_factory=list)  # layer_error.LayerError rows, worst first

    def rung(self, name: str) -> Rung | None:
        return next((r for r in self.rungs if r.name == name), None)

    def agreement_for(self, kernels: str) -> Agreement | None:
        return next((a for a in self.agreement if a.kernels == kernels), None)

    @property
    def int8_drop_pp(self) -> float | None:
        f, q = self.rung("float"), self.rung("tflm-int8")
        return None if f is None or q is None else round(f.accuracy - q.accuracy, 4)

    @property
    def size_ratio(self) -> float | None:
        return round(self.float_bytes / self.int8_bytes, 3) if self.float_bytes else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["int8_drop_pp"] = self.int8_drop_pp
        d["size_ratio"] = self.size_ratio
        return d


# -- runners ------------------------------------------------------------------------------
def run_tflite(model: Model, x: np.ndarray, *, reference: bool = True, label: str = "TFLite") -> np.ndarray:
    """Raw outputs of the TFLite interpreter, one sample at a time (the models have batch 1)."""
    from ._tf import tflite_interpreter

    interp = tflite_interpreter(model.data, model.source, reference=reference)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    shape = tuple(inp["shape"])
    outs = []
    for sample in progress(x, label, total=len(x)):
        interp.set_tensor(inp["index"], sample.reshape(shape))
        interp.invoke()
        outs.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(outs)


def run_host_tflm(model: Model, x: np.ndarray, label: str = "host TFLM") -> np.ndarray:
    tflm = HostTFLM(model)
    return np.stack([tflm.run(s)[0].reshape(-1) for s in progress(x, label, total=len(x))])


def run_float(keras_model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float outputs of a Keras model (or a SavedModel's serving signature); a model read from ONNX
    runs as the ONNX file in onnxruntime, so the float rung is the original model."""
    from ._tf import quiet_tf_stderr

    module = getattr(keras_model, "mcudeploy_torch_module", None)
    if module is not None:
        from .torch_import import run_torch

        return run_torch(module, x)
    onnx_path = getattr(keras_model, "mcudeploy_onnx_path", None)
    if onnx_path is not None:
        from .onnx_import import run_onnx

        return run_onnx(onnx_path, x)
    if hasattr(keras_model, "predict"):
        with quiet_tf_stderr():
            pred = keras_model.predict(x.astype(np.float32), batch_size=batch, verbose=0)
        return np.asarray(pred).reshape(len(x), -1)
    fn = keras_model.signatures["serving_default"]
    outs = []
    for i in range(0, len(x), batch):
        res = fn(x[i : i + batch].astype(np.float32))
        outs.append(np.asarray(next(iter(res.values()))).reshape(min(batch, len(x) - i), -1))
    return np.concatenate(outs)


def top1(outputs: np.ndarray) -> np.ndarray:
    return np.asarray(outputs).reshape(len(outputs), -1).argmax(axis=1)


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return round(100.0 * float(np.mean(top1(outputs) == y)), 4) if len(y) else 0.0


def output_lsb(model: Model) -> float:
    """One LSB of the model's output in its own units: 1 for integer outputs; for a float output,
    the scale of the quantized tensor its DEQUANTIZE reads (float differences are then in LSBs too)."""
    t = model.outputs[0]
    if t.dtype != "float32":
        return 1.0
    op = model.producer(t.index)
    if op is not None and op.opcode == "DEQUANTIZE":
        q = model.tensors[op.inputs[0]].quant
        if q is not None:
            return q.scale[0]
    return 1.0


def compare(outputs: np.ndarray, reference: np.ndarray, kernels: str, lsb: float = 1.0) -> Agreement:
    """Byte-identical samples, top-1 agreement and LSB differences of ``outputs`` against ``reference``."""
    a, b = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    identical = [p.tobytes() == q.tobytes() for p, q in zip(a, b, strict=True)]
    if a.dtype.kind in "iu":  # int64 so that int8 extremes do not wrap when subtracted
        diff = np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)
    else:  # float outputs: round away the float noise of dequantization before counting LSBs
        diff = np.round(np.abs(a.astype(np.float64) - b.astype(np.float64)) / lsb, 3)
    n = max(len(a), 1)
    return Agreement(
        kernels=kernels,
        byte_identical_pct=round(100.0 * sum(identical) / n, 4),
        top1_agreement_pct=round(100.0 * float(np.mean(top1(a) == top1(b))) if len(a) else 100.0, 4),
        max_lsb_diff=int(np.ceil(diff.max())) if diff.size else 0,
        mean_abs_lsb_diff=round(float(diff.mean()), 6) if diff.size else 0.0,
    )


# -- the ladder ---------------------------------------------------------------------------
def evaluate(
    int8: Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    float_model: Any = None,
    float_tflite: Model | None = None,
    default_kernels: bool = True,
    dataset: str = "data.npz",
    limit: int | None = None,
) -> Evaluation:
    """Run the ladder on labelled samples ``x`` (real values or raw int8 values) and labels ``y``."""
    if len(int8.inputs) != 1 or len(int8.outputs) != 1:
        raise UnsupportedError(
            f"{int8.source}: evaluate needs one input and one output, the model has "
            f"{len(int8.inputs)} and {len(int8.outputs)}"
        )
    custom = sorted({op.opcode for op in int8.operators if not op.builtin})
    if custom:
        raise UnsupportedError(
            f"{int8.source}: has custom op(s) {', '.join(custom)}; the host interpreters cannot run them",
            hint="evaluate the int8 model from before `mcudeploy compile` (Vela models need an NPU or FVP)",
        )
    t_in, t_out = int8.inputs[0], int8.outputs[0]
    x, y = np.asarray(x), np.asarray(y)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if len(x) == 0:
        raise DatasetError(f"{dataset}: no samples to evaluate")
    x = fit_samples(x, t_in, dataset)
    from .datasets import check_labels

    check_labels(y, int(np.prod(t_out.shape[1:])), dataset)
    xq = quantize_input(x, t_in)

    rungs: list[Rung] = []

    def add(name: str, runtime: str, outputs: np.ndarray) -> None:
        acc = accuracy(outputs, y)
        prev = rungs[-1].accuracy if rungs else None
        rungs.append(Rung(name, runtime, acc, None if prev is None else round(prev - acc, 4)))

    if float_model is not None:
        xf = x.astype(np.float32) if x.dtype.kind == "f" else dequantize(x, t_in)
        runtime = (
            "torch"
            if getattr(float_model, "mcudeploy_torch_module", None) is not None
            else "onnxruntime"
            if getattr(float_model, "mcudeploy_onnx_path", None)
            else "keras"
        )
        add("float", runtime, run_float(float_model, xf))
    ref = run_tflite(int8, xq, reference=True, label="TFLite int8 (reference kernels)")
    add("tflite-int8", "tflite (reference kernels)", ref)
    tflm = run_host_tflm(int8, xq)
    add("tflm-int8", "host tflite-micro", tflm)
    lsb = output_lsb(int8)
    agreement = [compare(ref, tflm, "reference", lsb)]
    if default_kernels:
        default = run_tflite(int8, xq, reference=False, label="TFLite int8 (default)")
        agreement.append(compare(default, tflm, "default", lsb))
    return Evaluation(
        model=int8.source,
        sha256=int8.sha256,
        dataset=dataset,
        samples=len(x),
        rungs=rungs,
        agreement=agreement,
        int8_bytes=int8.size,
        float_bytes=float_tflite.size if float_tflite is not None else None,
        arena_bytes=measure_arena(int8),
        io={
            "input": t_in.to_dict(),
            "output": t_out.to_dict(),
        },
    )


# -- gates --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """One pass/fail rule on an evaluation; the docstring-like ``text`` is both message and doc."""

    name: str
    text: str
    value: Callable[[Evaluation], float | None]
    ok: Callable[[float, float], bool]


GATES: dict[str, Gate] = {
    "max_drop_pp": Gate(
        "max_drop_pp",
        "int8 accuracy drop vs float (pp) must be at most",
        lambda e: e.int8_drop_pp,
        lambda v, t: v <= t,
    ),
    "min_accuracy": Gate(
        "min_accuracy",
        "host TFLM int8 top-1 accuracy (%) must be at least",
        lambda e: e.rung("tflm-int8").accuracy if e.rung("tflm-int8") else None,
        lambda v, t: v >= t,
    ),
    "min_agreement": Gate(
        "min_agreement",
        "top-1 agreement TFLite (reference) vs host TFLM (%) must be at least",
        lambda e: e.agreement_for("reference").top1_agreement_pct if e.agreement_for("reference") else None,
        lambda v, t: v >= t,
    ),
    "max_lsb": Gate(
        "max_lsb",
        "max output difference TFLite (reference) vs host TFLM (LSB) must be at most",
        lambda e: e.agreement_for("reference").max_lsb_diff if e.agreement_for("reference") else None,
        lambda v, t: v <= t,
    ),
}


def check_gates(ev: Evaluation, thresholds: dict[str, float | None]) -> list[str]:
    """Messages for every failed gate; a gate whose value is unknown (no float model) is skipped."""
    failed = []
    for name, threshold in sorted(thresholds.items()):
        if threshold is None:
            continue
        gate = GATES[name]
        value = gate.value(ev)
        if value is not None and not gate.ok(value, threshold):
            failed.append(f"{gate.text} {threshold:g}, got {value:g}")
    return failed


def enforce_gates(ev: Evaluation, thresholds: dict[str, float | None]) -> None:
    failed = check_gates(ev, thresholds)
    if failed:
        raise GateError(f"{ev.model} on {ev.dataset}: " + "; ".join(failed))


def evaluate_files(
    int8_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    *,
    float_path: str | os.PathLike[str] | None = None,
    default_kernels: bool = True,
    limit: int | None = None,
    per_layer_samples: int | None = None,
) -> Evaluation:
    """:func:`evaluate` from files: an int8 .tflite, a labelled .npz and optionally the float model.

    With ``per_layer_samples``, also the per-layer int8 error against the float model on that many
    samples (``layer_error``); it needs the float model.
    """
    from .datasets import load_labelled
    from .model import load_keras, read_tflite

    int8 = read_tflite(int8_path)
    x, y = load_labelled(data_path)
    keras_model = float_tfl = None
    if float_path is not None:
        keras_model = load_keras(float_path)
        float_tfl = _float_tflite(keras_model, Path(float_path))
    if per_layer_samples is not None and float_tfl is None:
        raise ConfigError(
            "per-layer error needs the float model the int8 model came from",
            hint="give it with -f/--float (a .keras, .h5 or SavedModel with Keras layers)",
        )
    ev = evaluate(
        int8,
        x,
        y,
        float_model=keras_model,
        float_tflite=float_tfl,
        default_kernels=default_kernels,
        dataset=Path(data_path).name,
        limit=limit,
    )
    if per_layer_samples is not None:
        from .layer_error import per_layer_error

        assert float_tfl is not None
        xs = x[:limit] if limit is not None else x
        names = list(getattr(keras_model, "output_names", None) or [])
        rows = per_layer_error(int8, float_tfl, xs, samples=per_layer_samples, output_layers=names)
        ev.per_layer = [r.to_dict() for r in rows]
    return ev


def _float_tflite(keras_model: Any, path: Path) -> Model | None:
    """The float .tflite of the network (for the size ratio); None when it cannot be converted."""
    if not hasattr(keras_model, "inputs"):
        return None
    from .quantize import float_tflite

    return float_tflite(keras_model, source=f"{path.stem}_float.tflite")


def rungs_table(ev: Evaluation) -> Iterable[tuple[str, ...]]:
    for r in ev.rungs:
        yield (r.name, r.runtime, f"{r.accuracy:.2f} %", "" if r.drop_pp is None else f"{r.drop_pp:.2f} pp")
