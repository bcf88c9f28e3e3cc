"""Stage ``optimize``: Keras model + training data + recipe -> optimized Keras model (tfmot).

A recipe is a chain of stages taken in a fixed order — ``prune`` → ``cluster`` → ``qat`` — where each
stage preserves what the one before produced (tfmot's collaborative optimization): clustering after
pruning is sparsity-preserving, and QAT after pruning/clustering uses the PQAT / CQAT / PCQAT
schemes. Pruning and clustering wrappers are stripped after their fine-tuning; a QAT model stays a
quantize-wrapped Keras model, which :func:`to_int8` converts without a representative dataset.

The per-layer statistics (sparsity, distinct weight values) are computed both on the Keras kernels
and on the int8 weight tensors of the converted .tflite, so a report proves the structure survived.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_bytes_atomic
from ..errors import ConfigError, DatasetError, UnsupportedError
from .gates import check_fully_int8
from .model import Model, is_qat_model, load_keras, parse_tflite

STAGES = ("prune", "cluster", "qat")
# Named recipes: the collaborative chains get their tfmot names.
RECIPES: dict[str, tuple[str, ...]] = {
    "qat": ("qat",),
    "prune": ("prune",),
    "cluster": ("cluster",),
    "prune-cluster": ("prune", "cluster"),
    "pqat": ("prune", "qat"),
    "cqat": ("cluster", "qat"),
    "pcqat": ("prune", "cluster", "qat"),
}
SCHEDULES = ("polynomial", "constant")
CENTROID_INITS = ("kmeans++", "linear", "density", "random")
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_COLLAB = "tensorflow_model_optimization.python.core.quantization.keras.collab_opts"


@dataclass(frozen=True)
class Recipe:
    """What to do to the model; parameters of stages not in ``stages`` are ignored."""

    stages: tuple[str, ...]
    sparsity: float = 0.5  # target fraction of zero weights (unstructured pruning)
    schedule: str = "polynomial"  # PolynomialDecay from 0 to ``sparsity``, or ConstantSparsity
    structured: str | None = None  # "2:4" → tfmot's M-by-N structured pruning (sparsity is then 0.5)
    clusters: int = 16
    centroid_init: str = "kmeans++"
    per_channel: bool = False  # per-channel clustering (tfmot supports it for Conv2D only)

    @property
    def name(self) -> str:
        for name, stages in RECIPES.items():
            if stages == self.stages:
                return name
        return "+".join(self.stages)  # pragma: no cover - every ordered chain is named

    @property
    def target_sparsity(self) -> float | None:
        if "prune" not in self.stages:
            return None
        if self.structured:
            m, n = _parse_m_by_n(self.structured)
            return 1.0 - m / n
        return self.sparsity

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self), "stages": list(self.stages)}


# Fine-tuning rates per stage, well below the ~1e-3 a model is usually trained at (tfmot's guides:
# "fine-tune with a lower learning rate"; its clustering examples use 1e-5). At 1e-3 prune+cluster of a
# DS-CNN lost 28 pp of accuracy; fine-tuning only has to recover what the stage cost.
STAGE_LEARNING_RATES: dict[str, float] = {"prune": 1e-4, "cluster": 1e-5, "qat": 1e-4}
# A recipe that loses more int8 accuracy than this against plain int8 gets a warning naming the fix.
WARN_DROP_PP = 1.0


@dataclass(frozen=True)
class FineTune:
    """Fine-tuning of each stage on the user's data.

    A seeded ``validation_split`` of the data is held out; each stage keeps the weights of its best
    epoch on it (among the epochs after pruning reached its target sparsity), so an epoch that
    overshoots cannot end the stage worse than an earlier one.
    """

    epochs: int = 4
    learning_rate: float | None = None  # None: STAGE_LEARNING_RATES
    batch_size: int = 32
    seed: int = 0
    validation_split: float = 0.1
    keep_best: bool = True

    def rate(self, stage: str) -> float:
        return self.learning_rate if self.learning_rate is not None else STAGE_LEARNING_RATES[stage]


def parse_recipe(text: str, **params: Any) -> Recipe:
    """A recipe from its name (``pcqat``) or a ``+`` chain (``prune+cluster+qat``) plus parameters."""
    key = text.strip().lower()
    if key in RECIPES:
        stages = RECIPES[key]
    else:
        stages = tuple(s.strip() for s in key.split("+") if s.strip())
        unknown = [s for s in stages if s not in STAGES]
        if not stages or unknown:
            raise ConfigError(
                f"unknown recipe {text!r}",
                hint=f"use one of {', '.join(RECIPES)} or a chain of {'+'.join(STAGES)} stages",
            )
        if list(stages) != sorted(set(stages), key=STAGES.index):
            raise ConfigError(
                f"recipe {text!r}: stages must appear once each, in the order {' → '.join(STAGES)}",
                hint="each stage preserves what the one before it produced, so the order is fixed",
            )
    recipe = Recipe(stages=stages, **{k: v for k, v in params.items() if v is not None})
    _validate(recipe)
    return recipe


def _parse_m_by_n(text: str) -> tuple[int, int]:
    try:
        m, n = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"structured sparsity {text!r} is not of the form M:N (e.g. 2:4)") from None
    if not 0 < m < n:
        raise ConfigError(f"structured sparsity {text!r}: need 0 < M < N")
    return m, n


def _validate(r: Recipe) -> None:
    if not 0.0 < r.sparsity < 1.0:
        raise ConfigError(f"sparsity {r.sparsity} is outside (0, 1)")
    if r.schedule not in SCHEDULES:
        raise ConfigError(f"unknown pruning schedule {r.schedule!r} (choose from {', '.join(SCHEDULES)})")
    if r.structured is not None:
        _parse_m_by_n(r.structured)
    if not 3 <= r.clusters <= 256:  # tfmot refuses fewer than 3; int8 weights hold at most 256
        raise ConfigError(f"{r.clusters} clusters: tfmot and int8 weights allow 3..256")
    if r.centroid_init not in CENTROID_INITS:
        raise ConfigError(
            f"unknown centroid initialization {r.centroid_init!r} (choose from {', '.join(CENTROID_INITS)})"
        )


# -- the optimization ---------------------------------------------------------------------
@dataclass
class Optimized:
    """The result of :func:`optimize`: the Keras model and what each stage did."""

    keras: Any
    recipe: Recipe
    finetune: FineTune
    history: list[dict[str, Any]] = field(default_factory=list)  # per stage: name, final loss/accuracy

    @property
    def is_qat(self) -> bool:
        return is_qat_model(self.keras)


def optimize(
    keras_model: Any,
    x: np.ndarray,
    y: np.ndarray,
    recipe: Recipe,
    finetune: FineTune | None = None,
    *,
    show_progress: bool = True,
) -> Optimized:
    """Run ``recipe`` on a copy of ``keras_model``, fine-tuning each stage on ``(x, y)``.

    ``y`` holds integer class labels (sparse categorical cross-entropy). The input model is not changed.
    """
    from ._tf import tensorflow

    tf = tensorflow()
    ft = finetune or FineTune()
    if ft.epochs < 1 or ft.batch_size < 1 or not (ft.learning_rate is None or ft.learning_rate > 0):
        raise ConfigError(f"fine-tuning needs epochs ≥ 1, batch size ≥ 1 and a positive learning rate ({ft})")
    if not 0 <= ft.validation_split < 1:
        raise ConfigError(f"validation split {ft.validation_split} is outside [0, 1)")
    x, y = _check_data(keras_model, x, y)
    x, y, val = _split(x, y, ft)
    if is_qat_model(keras_model):
        raise ConfigError("the model is already quantization-aware; optimize its float original instead")
    # Same data, recipe and seed → same weights → byte-identical .tflite (best effort, as in digits).
    with contextlib.suppress(Exception):
        tf.config.experimental.enable_op_determinism()
    model = tf.keras.models.clone_model(keras_model)
    model.set_weights(keras_model.get_weights())
    history: list[dict[str, Any]] = []
    per_epoch = math.ceil(len(x) / ft.batch_size)
    for stage in recipe.stages:
        tf.keras.utils.set_random_seed(ft.seed)
        wrapped, callbacks, settled = _wrap(stage, model, recipe, steps=ft.epochs * per_epoch)
        wrapped.compile(
            optimizer=tf.keras.optimizers.Adam(ft.rate(stage)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        bar = _progress_callback(f"{recipe.name}: {stage}", ft.epochs, show_progress)
        # Epochs (1-based) from which the stage's structure is final: only those may be kept.
        best = (
            _best_epoch_callback(first=max(1, math.ceil(settled / per_epoch)))
            if val and ft.keep_best
            else None
        )
        fit = wrapped.fit(
            x, y, epochs=ft.epochs, batch_size=ft.batch_size, verbose=0, shuffle=True,
            validation_data=val, callbacks=[*callbacks, bar, *([best] if best else [])],
        )  # fmt: skip
        kept = best.best_epoch if best and best.best_epoch else ft.epochs
        history.append(
            {
                "stage": stage,
                "learning_rate": ft.rate(stage),
                "epoch_kept": kept,
                "first_eligible_epoch": best.first if best else ft.epochs,
                **{k: float(v[kept - 1]) for k, v in sorted(fit.history.items())},
                "val_accuracy_by_epoch": [float(v) for v in fit.history.get("val_accuracy", [])],
            }
        )
        model = _strip(stage, wrapped, recipe.stages)
    return Optimized(model, recipe, ft, history)


def _split(x: np.ndarray, y: np.ndarray, ft: FineTune) -> tuple[np.ndarray, np.ndarray, Any]:
    """A seeded hold-out of ``validation_split`` (data are often sorted by class: never the tail)."""
    n_val = round(len(x) * ft.validation_split)
    if n_val < 1 or len(x) - n_val < 1:
        return x, y, None
    order = np.random.default_rng(ft.seed).permutation(len(x))
    tr, va = np.sort(order[n_val:]), np.sort(order[:n_val])
    return x[tr], y[tr], (x[va], y[va])


def _best_epoch_callback(first: int) -> Any:
    """Remembers the weights of the epoch with the best validation accuracy (from ``first`` on) and
    puts them back when training ends; ties go to the later epoch."""
    from ._tf import tensorflow

    tf = tensorflow()

    class KeepBest(tf.keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.first = first
            self.best_epoch = 0
            self.best = -math.inf
            self.weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            acc = (logs or {}).get("val_accuracy")
            if acc is None or epoch + 1 < first or acc < self.best:
                return
            self.best, self.best_epoch = float(acc), epoch + 1
            self.weights = [w.copy() for w in self.model.get_weights()]

        def on_train_end(self, logs: Any = None) -> None:
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return KeepBest()


def drop_advice(recipe: Recipe, finetune: FineTune, drop_pp: float) -> str:
    """The warning for a recipe that lost ``drop_pp`` of int8 accuracy against plain int8."""
    fixes = [f"fine-tune longer (--epochs {2 * finetune.epochs})"]
    if finetune.learning_rate is not None and finetune.learning_rate > min(STAGE_LEARNING_RATES.values()):
        fixes.append(f"with a lower learning rate (--lr {finetune.learning_rate / 10:g})")
    if "prune" in recipe.stages and not recipe.structured:
        fixes.append(f"prune less (--sparsity {max(0.1, round(recipe.sparsity - 0.2, 2)):g})")
    if "cluster" in recipe.stages and recipe.clusters < 256:
        fixes.append(f"keep more clusters (--clusters {min(256, recipe.clusters * 2)})")
    if "qat" not in recipe.stages and len(recipe.stages) > 0:
        fixes.append(
            "or add QAT (--recipe " + ("pcqat" if recipe.stages == ("prune", "cluster") else "qat") + ")"
        )
    return (
        f"{recipe.name} lost {drop_pp:.2f} pp of int8 accuracy against plain int8 of the original model: "
        + ", ".join(fixes)
    )


def _check_data(keras_model: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    from .datasets import fit_shape

    want = tuple(keras_model.inputs[0].shape[1:])
    if all(isinstance(d, int) for d in want):  # dynamic dimensions: nothing to check against
        x = fit_shape(x, want, "training data")
    if y.shape[:1] != x.shape[:1]:
        raise DatasetError(f"{len(x)} samples but {len(y)} labels")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError("labels must be a 1-D array of integer class ids")
    if len(x) == 0:
        raise DatasetError("the training data is empty")
    return x, y.astype(np.int64)


def _tfmot() -> Any:
    from ._tf import tensorflow

    tensorflow()  # sets TF_USE_LEGACY_KERAS before tfmot picks its Keras
    import tensorflow_model_optimization as tfmot

    return tfmot


def _wrap(stage: str, model: Any, r: Recipe, steps: int) -> tuple[Any, list[Any], int]:
    """The stage's wrapped model, its callbacks, and the step from which its structure is final."""
    tfmot = _tfmot()
    if stage == "prune":
        sp = tfmot.sparsity.keras
        # Reach the target sparsity by 2/3 of the fine-tuning, then let the model recover.
        # tfmot only prunes on steps that are multiples of the frequency: end on one, at the target.
        end = max(1, (2 * steps) // 3)
        freq = max(1, end // 8)
        end -= end % freq
        target = r.target_sparsity or r.sparsity
        if r.schedule == "constant" or r.structured:
            schedule = sp.ConstantSparsity(target, begin_step=0, frequency=freq)
        else:
            schedule = sp.PolynomialDecay(0.0, target, begin_step=0, end_step=end, frequency=freq)
        kwargs: dict[str, Any] = {"pruning_schedule": schedule}
        if r.structured:
            kwargs["sparsity_m_by_n"] = _parse_m_by_n(r.structured)
        settled = freq if r.schedule == "constant" or r.structured else end
        return _apply(lambda m: sp.prune_low_magnitude(m, **kwargs), model), [sp.UpdatePruningStep()], settled
    if stage == "cluster":
        cl = tfmot.clustering.keras
        init = {
            "kmeans++": cl.CentroidInitialization.KMEANS_PLUS_PLUS,
            "linear": cl.CentroidInitialization.LINEAR,
            "density": cl.CentroidInitialization.DENSITY_BASED,
            "random": cl.CentroidInitialization.RANDOM,
        }[r.centroid_init]
        from tensorflow_model_optimization.python.core.clustering.keras.experimental import (
            cluster as exp_cluster,
        )

        def wrap(m: Any) -> Any:
            return exp_cluster.cluster_weights(
                m,
                number_of_clusters=r.clusters,
                cluster_centroids_init=init,
                preserve_sparsity="prune" in r.stages,
                cluster_per_channel=r.per_channel,
            )

        return _apply(wrap, model), [], 0
    # QAT: pick the scheme that preserves what the earlier stages produced.
    q = tfmot.quantization.keras
    combine = tfmot.experimental.combine
    if "cluster" in r.stages:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity="prune" in r.stages)
    elif "prune" in r.stages:
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = q.default_8bit.Default8BitQuantizeScheme()
    return _apply(lambda m: q.quantize_apply(q.quantize_annotate_model(m), scheme), model), [], 0


def _apply(wrap: Any, model: Any) -> Any:
    """tfmot wraps the layers it supports and skips weightless ones; anything else is a user error."""
    try:
        return wrap(model)
    except (ValueError, TypeError, RuntimeError) as e:
        raise UnsupportedError(
            f"model {model.name!r}: tensorflow-model-optimization refused it: {e}"
        ) from None


def _strip(stage: str, model: Any, stages: tuple[str, ...]) -> Any:
    tfmot = _tfmot()
    if stage == "prune":
        return tfmot.sparsity.keras.strip_pruning(model)
    if stage == "cluster":
        return tfmot.clustering.keras.strip_clustering(model)
    if "cluster" in stages:
        # CQAT/PCQAT keep centroids and cluster indices in their wrappers; fold them back into the
        # kernels so the model is a plain QAT model that Keras can save and load again.
        utils = importlib.import_module(f"{_COLLAB}.cluster_preserve.cluster_utils")
        return utils.strip_clustering_cqat(model)
    return model  # QAT wrappers carry the quantization ranges the converter needs


def _progress_callback(description: str, epochs: int, enabled: bool) -> Any:
    """A rich progress bar over fine-tuning batches (hidden when stderr is not a terminal)."""
    from rich.progress import MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from ..console import progress_bar
    from ._tf import tensorflow

    tf = tensorflow()

    class Bar(tf.keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def on_train_begin(self, logs: Any = None) -> None:
            metrics = TextColumn("{task.fields[metrics]}")
            self.bar = progress_bar(MofNCompleteColumn(), metrics, TimeRemainingColumn(), enabled=enabled)
            steps = self.params.get("steps") or 0
            self.task = self.bar.add_task(description, total=steps * epochs, metrics="")
            self.bar.start()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            acc = (logs or {}).get("accuracy")
            self.bar.update(self.task, advance=1, metrics=f"acc {acc:.3f}" if acc is not None else "")

        def on_train_end(self, logs: Any = None) -> None:
            self.bar.stop()

    return Bar()


def save_keras(keras_model: Any, path: str | os.PathLike[str]) -> Path:
    """Save as .keras / .h5 through a scratch folder, then atomically into place.

    :func:`mcudeploy.ml.model.load_keras` loads them back (QAT models with tfmot's custom objects).
    """
    path = Path(path)
    if path.suffix.lower() not in (".keras", ".h5"):
        raise ConfigError(
            f"{path}: the optimized model is saved as .keras or .h5, not {path.suffix or 'nothing'}"
        )
    if is_qat_model(keras_model) and path.suffix.lower() != ".h5":
        raise ConfigError(
            f"{path}: save quantization-aware models as .h5",
            hint="tf-keras cannot load QAT models back from .keras files (tfmot quantize layers)",
        )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / f"model{path.suffix.lower()}"
        keras_model.save(scratch)
        return write_bytes_atomic(path, scratch.read_bytes())


def load_optimized(path: str | os.PathLike[str]) -> Any:
    """Load a model written by ``mcudeploy optimize`` (used by mcudeploy.deploy)."""
    return load_keras(path)  # retries QAT models with tfmot's custom objects


# -- conversion ---------------------------------------------------------------------------
def to_int8(
    keras_model: Any,
    representative: np.ndarray | None = None,
    *,
    samples: int = 200,
    source: str = "model.tflite",
) -> Model:
    """The fully int8 .tflite of an optimized model (int8 I/O, batch 1, per-channel weights).

    QAT models carry their own ranges and convert without a representative dataset; the others go
    through :func:`mcudeploy.ml.quantize.convert_int8` and need one.
    """
    if is_qat_model(keras_model):
        model = convert_qat(keras_model, source=source)
    else:
        if representative is None:
            raise DatasetError("a representative dataset is needed to quantize a model trained without QAT")
        from .quantize import convert_int8

        model = convert_int8(keras_model, representative, samples=samples, source=source)
    check_fully_int8(model)
    return model


def convert_qat(keras_model: Any, *, source: str = "model.tflite") -> Model:
    """Convert a QAT Keras model to int8 .tflite from its fake-quant ranges (no representative data).

    Restricting the ops to TFLITE_BUILTINS_INT8 would make the converter ask for a representative
    dataset even for a QAT model, so the fully-int8 property is checked afterwards instead.
    """
    from ._tf import tensorflow
    from .quantize import run_converter

    tf = tensorflow()
    in_shape = (1, *keras_model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(in_shape, tf.float32)])
    def serving(x: Any) -> Any:
        return keras_model(x, training=False)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([serving.get_concrete_function()], keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return parse_tflite(run_converter(conv, source), source=source)


# -- per-layer statistics -----------------------------------------------------------------
@dataclass(frozen=True)
class WeightStats:
    """Sparsity and distinct values of one weight tensor (Keras kernel or int8 .tflite filter)."""

    layer: str
    kind: str  # Keras class name or TFLite op name
    shape: tuple[int, ...]
    sparsity: float  # fraction of exactly-zero weights
    unique: int  # distinct values in the whole tensor
    unique_per_channel: int  # max distinct values over output channels

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


def _stats(layer: str, kind: str, w: np.ndarray, out_axis: int) -> WeightStats:
    per_channel = np.moveaxis(w, out_axis, 0).reshape(w.shape[out_axis], -1)
    return WeightStats(
        layer=layer,
        kind=kind,
        shape=tuple(int(d) for d in w.shape),
        sparsity=float(np.mean(w == 0)) if w.size else 0.0,
        unique=len(np.unique(w)),
        unique_per_channel=max((len(np.unique(c)) for c in per_channel), default=0),
    )


def keras_weight_stats(keras_model: Any) -> list[WeightStats]:
    """Per layer with a kernel: Keras output channels are the last kernel axis (depthwise: axes 2, 3)."""
    out: list[WeightStats] = []
    for layer in keras_model.layers:
        inner = getattr(layer, "layer", layer)  # QAT wrappers hold the real layer
        # Read the variable itself: inside a QAT wrapper ``inner.kernel`` is the fake-quant tensor.
        kernels = {
            w.name.split("/")[-1].split(":")[0]: w
            for w in layer.weights
            if w.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel")
        }
        if not kernels:
            continue
        depthwise = "depthwise_kernel" in kernels
        w = np.asarray(kernels["depthwise_kernel" if depthwise else "kernel"].numpy())
        if depthwise:
            w = w.reshape(*w.shape[:2], -1)  # (kh, kw, in*multiplier): one channel per output
        out.append(_stats(inner.name, type(inner).__name__, w, w.ndim - 1))
    return out


def tflite_weight_stats(model: Model) -> list[WeightStats]:
    """Per conv/FC op of an int8 .tflite: distinct int8 values of its filter, per output channel.

    TFLite filters keep output channels on axis 0 (CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV) or on
    the last axis (DEPTHWISE_CONV_2D) — the quantization axis for per-channel tensors.
    """
    out: list[WeightStats] = []
    for op in model.operators:
        if op.opcode not in WEIGHTED_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        t = model.tensors[op.inputs[1]]
        if t.data is None or t.dtype != "int8":
            continue
        w = np.frombuffer(t.data, dtype=np.int8).reshape(t.shape)
        axis = w.ndim - 1 if op.opcode == "DEPTHWISE_CONV_2D" else 0
        if t.quant is not None and t.quant.per_channel:
            axis = t.quant.axis
        zp = t.quant.zero_point[0] if t.quant and t.quant.zero_point else 0
        stats = _stats(t.name, op.opcode, w, axis)
        if zp:  # a zero weight is the zero point; weights are symmetric in practice
            stats = replace(stats, sparsity=float(np.mean(w == zp)))
        out.append(stats)
    return out


def iter_pairs(keras_stats: list[WeightStats], tflite_stats: list[WeightStats]) -> Iterator[tuple[Any, Any]]:
    """Pair Keras layers with .tflite ops by name (the converter keeps layer names in tensor names),
    falling back to execution order for names it rewrote."""
    left = list(tflite_stats)
    for ks in keras_stats:
        match = next((ts for ts in left if ks.layer in _name_parts(ts.layer)), None)
        if match is None and left:
            match = left[0]
        if match is not None:
            left.remove(match)
        yield ks, match


def _name_parts(tensor_name: str) -> list[str]:
    return re.split(r"[/;]", tensor_name.replace("quant_", ""))


def int8_accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an int8 model on the host TFLM interpreter (the bit-exact reference)."""
    from .quantio import quantize_input
    from .tflm_host import run_tflm

    out = run_tflm(model, quantize_input(x, model.inputs[0]))
    return float(np.mean(out.reshape(len(x), -1).argmax(axis=1) == np.asarray(y)))


def keras_accuracy(keras_model: Any, x: np.ndarray, y: np.ndarray) -> float:
    pred = keras_model.predict(np.asarray(x, np.float32), batch_size=256, verbose=0)
    return float(np.mean(np.asarray(pred).reshape(len(x), -1).argmax(axis=1) == np.asarray(y)))


# -- before/after comparison --------------------------------------------------------------
def vela_compile(model: Model, target: str) -> Any:
    """Compile with Vela for ``target``: a board name (its NPU config) or an accelerator (ethos-u55-128)."""
    from ..boards import get_board
    from .vela import compile_for_npu

    if target.lower().startswith("ethos-u"):
        return compile_for_npu(model, accelerator=target.lower())
    return compile_for_npu(model, board=get_board(target))  # BoardError names the unknown board


def vela_numbers(compiled: Any) -> dict[str, Any]:
    r = compiled.report
    return {
        "accelerator": r.accelerator,
        "system_config": r.system_config,
        "memory_mode": r.memory_mode,
        "original_weights_bytes": r.original_weights_bytes,
        "encoded_weights_bytes": r.encoded_weights_bytes,
        "flash_bytes": r.flash_bytes,
        "sram_bytes": r.sram_bytes,
        "npu_cycles": r.npu_cycles,  # Vela's compute estimate: zeros are still multiplied
        "total_cycles": r.total_cycles,  # the inference, including weight and feature-map traffic
        "cpu_ops": len(r.cpu_ops),
    }


@dataclass
class Comparison:
    """Plain PTQ int8 of the original model next to the optimized model's int8, measured the same way."""

    optimized: Optimized
    baseline_int8: Model
    optimized_int8: Model
    accuracy: dict[str, float]  # float_before / float_after / int8_before / int8_after
    layers: list[tuple[WeightStats, WeightStats | None]]
    vela: list[dict[str, Any]] = field(default_factory=list)  # per target: baseline, optimized, ratios

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.optimized.recipe.to_dict(),
            "finetune": asdict(self.optimized.finetune),
            "history": self.optimized.history,
            "accuracy": self.accuracy,
            "int8_bytes": {"baseline": self.baseline_int8.size, "optimized": self.optimized_int8.size},
            "int8_sha256": {"baseline": self.baseline_int8.sha256, "optimized": self.optimized_int8.sha256},
            "layers": [
                {"layer": k.layer, "kind": k.kind, "keras": k.to_dict(), "int8": t.to_dict() if t else None}
                for k, t in self.layers
            ],
            "vela": self.vela,
        }


def compare(
    original: Any,
    optimized: Optimized,
    *,
    representative: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    vela_targets: tuple[str, ...] = (),
    samples: int = 200,
    baseline_int8: Model | None = None,
) -> Comparison:
    """Accuracy (float and int8 on host TFLM), per-layer structure and Vela numbers, before and after."""
    base = baseline_int8 or to_int8(original, representative, samples=samples, source="baseline_int8.tflite")
    name = f"{optimized.recipe.name}_int8.tflite"
    opt = to_int8(optimized.keras, representative, samples=samples, source=name)
    accuracy = {
        "float_before": keras_accuracy(original, x_val, y_val),
        "float_after": keras_accuracy(optimized.keras, x_val, y_val),
        "int8_before": int8_accuracy(base, x_val, y_val),
        "int8_after": int8_accuracy(opt, x_val, y_val),
    }
    layers = list(iter_pairs(keras_weight_stats(optimized.keras), tflite_weight_stats(opt)))
    vela = []
    for target in vela_targets:
        b, o = vela_numbers(vela_compile(base, target)), vela_numbers(vela_compile(opt, target))
        ratios = {
            k: (o[k] / b[k] if b[k] else None)
            for k in ("encoded_weights_bytes", "flash_bytes", "npu_cycles", "total_cycles")
        }
        vela.append({"target": target, "baseline": b, "optimized": o, "ratio": ratios})
    return Comparison(optimized, base, opt, accuracy, layers, vela)
