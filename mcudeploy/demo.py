"""The demo: digits CNN → fully int8 .tflite → accuracy ladder, as a list of pipeline stages.

Each stage writes its artifacts straight into the output folder and is skipped on a re-run when
its inputs are unchanged (see :mod:`mcudeploy.pipeline`). Later stages (Vela, generate, build,
run) are appended to :func:`demo_stages`' list.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._io import write_bytes_atomic, write_json_atomic
from .ml.evaluate import Agreement, Evaluation, Rung, check_gates
from .pipeline import Context, Pipeline, Stage, StageResult

# What the demo promises (issue #2): the int8 model is as good as the float one and host TFLM
# agrees with TFLite's reference kernels.
DEMO_GATES: dict[str, float | None] = {"max_drop_pp": 0.5, "min_agreement": 99.0, "max_lsb": 1}
KERAS, INT8, TEST_NPZ, EVALUATION = "digits.keras", "digits_int8.tflite", "digits_test.npz", "evaluation.json"


def _train(ctx: Context) -> tuple[dict[str, Path], dict[str, Any]]:
    from .ml.digits import load_digits_split, save_npz, train_cnn

    split = load_digits_split(seed=ctx.options["seed"])
    model = train_cnn(split, epochs=ctx.options["epochs"], seed=ctx.options["seed"])
    with tempfile.TemporaryDirectory() as tmp:  # Keras writes in place: stage it, then move atomically
        staged = Path(tmp) / KERAS
        model.save(staged)
        keras_path = write_bytes_atomic(ctx.out / KERAS, staged.read_bytes())
    npz = save_npz(ctx.out / TEST_NPZ, split.x_test, split.y_test)
    return {"keras": keras_path, "test_npz": npz}, {"train": len(split.x_train), "test": len(split.x_test)}


def _quantize(ctx: Context) -> tuple[dict[str, Path], dict[str, Any]]:
    from .ml.digits import load_digits_split
    from .ml.quantize import quantize

    split = load_digits_split(seed=ctx.options["seed"])
    res = quantize(ctx.artifact("keras"), split.x_train, samples=ctx.options["samples"], output_name=INT8)
    path = write_bytes_atomic(ctx.out / INT8, res.model.data)
    return {"int8": path}, res.to_dict()


def _evaluate(ctx: Context) -> tuple[dict[str, Path], dict[str, Any]]:
    from .ml.evaluate import evaluate_files

    ev = evaluate_files(ctx.artifact("int8"), ctx.artifact("test_npz"), float_path=ctx.artifact("keras"))
    doc = ev.to_dict()
    path = write_json_atomic(ctx.out / EVALUATION, doc)
    return {"evaluation": path}, doc


def demo_stages() -> list[Stage]:
    """The demo's stages, in order; each declares what defines its work so re-runs can skip it."""

    def opts(*keys: str) -> Callable[[Context], dict[str, Any]]:
        return lambda ctx: {k: ctx.options[k] for k in keys}

    return [
        Stage("train", "train the digits CNN (float)", _train, opts("seed", "epochs")),
        Stage(
            "quantize",
            "full-integer int8 quantization",
            _quantize,
            lambda ctx: {"keras": ctx.artifact("keras"), "samples": ctx.options["samples"]},
        ),
        Stage(
            "evaluate",
            "accuracy ladder: float, TFLite int8, host TFLM int8",
            _evaluate,
            lambda ctx: {
                "int8": ctx.artifact("int8"),
                "keras": ctx.artifact("keras"),
                "npz": ctx.artifact("test_npz"),
            },
        ),
    ]


def evaluation_from_dict(d: dict[str, Any]) -> Evaluation:
    keep = {k: v for k, v in d.items() if k not in ("int8_drop_pp", "size_ratio", "rungs", "agreement")}
    return Evaluation(
        rungs=[Rung(**r) for r in d["rungs"]], agreement=[Agreement(**a) for a in d["agreement"]], **keep
    )


def run_demo(
    out: str | Path,
    *,
    epochs: int = 30,
    samples: int = 200,
    seed: int = 0,
    on_stage: Callable[[Stage, StageResult], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> tuple[Evaluation, list[str]]:
    """Run the demo into ``out``; returns the evaluation and the messages of any failed demo gates."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        from .errors import InputError

        raise InputError(f"{out}: exists and is not a folder")
    from ._lock import folder_lock

    pipe = Pipeline(demo_stages(), out, {"epochs": epochs, "samples": samples, "seed": seed})
    with folder_lock(out, notice=notice):  # one demo per folder at a time (see mcudeploy._lock)
        pipe.run(on_stage)
    ev = evaluation_from_dict(pipe.ctx.summaries["evaluate"])
    return ev, check_gates(ev, DEMO_GATES)
