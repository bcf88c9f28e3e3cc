"""``advise``: a small grid of optimization recipes × Vela configurations, measured, with a Pareto front.

Each recipe is run once (fine-tuned on the user's data), converted to int8 once and evaluated on the
host TFLite Micro interpreter once; Vela then compiles that int8 model for every target. The Pareto
front is taken per Vela target, since the board fixes the NPU and the question is which recipe to
use: a row is on the front when no other row for the same target is at least as accurate, no larger
in flash and no slower (Vela's total inference cycles), while strictly better in one of them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from .optimize import (
    FineTune,
    int8_accuracy,
    optimize,
    parse_recipe,
    to_int8,
    vela_compile,
    vela_numbers,
)

BASELINE = "ptq"  # plain post-training int8 of the model as given
DEFAULT_RECIPES = (BASELINE, "qat", "prune", "prune-cluster", "pcqat")
DEFAULT_TARGETS = ("ethos-u55-128", "ethos-u55-256")


@dataclass(frozen=True)
class AdviceRow:
    recipe: str
    target: str
    accuracy: float  # int8 top-1 on the validation data (host TFLM)
    int8_bytes: int
    flash_bytes: int  # Vela: constant data in flash (off-chip + on-chip)
    encoded_weights_bytes: int
    npu_cycles: int  # Vela's compute estimate
    total_cycles: int  # Vela's inference estimate, memory traffic included: the Pareto objective
    sram_bytes: int
    cpu_ops: int
    pareto: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dominates(a: AdviceRow, b: AdviceRow) -> bool:
    """``a`` is no worse than ``b`` on every objective and strictly better on at least one."""
    no_worse = (
        a.accuracy >= b.accuracy and a.flash_bytes <= b.flash_bytes and a.total_cycles <= b.total_cycles
    )
    better = a.accuracy > b.accuracy or a.flash_bytes < b.flash_bytes or a.total_cycles < b.total_cycles
    return no_worse and better


def mark_pareto(rows: Sequence[AdviceRow]) -> list[AdviceRow]:
    """The rows with ``pareto`` set on the non-dominated ones, per Vela target; order is kept."""
    return [
        replace(r, pareto=not any(dominates(o, r) for o in rows if o.target == r.target and o is not r))
        for r in rows
    ]


def advise(
    keras_model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    recipes: Sequence[str] = DEFAULT_RECIPES,
    targets: Sequence[str] = DEFAULT_TARGETS,
    finetune: FineTune | None = None,
    recipe_params: dict[str, Any] | None = None,
    samples: int = 200,
    show_progress: bool = True,
) -> list[AdviceRow]:
    """Measure every recipe on every Vela target; rows come in (recipe, target) grid order."""
    if not recipes or not targets:
        raise ConfigError("advise needs at least one recipe and one Vela target")
    grid = [*recipes, *targets]
    dupes = sorted({g for g in grid if grid.count(g) > 1})
    if dupes:
        raise ConfigError(f"repeated grid entries: {', '.join(dupes)}")
    # Check the whole grid before spending minutes on training.
    parsed = {n: parse_recipe(n, **(recipe_params or {})) for n in recipes if n != BASELINE}
    for target in targets:
        check_target(target)
    from ..console import err_console

    rows: list[AdviceRow] = []
    for name in recipes:
        keras = keras_model
        if name != BASELINE:
            keras = optimize(
                keras, x_train, y_train, parsed[name], finetune, show_progress=show_progress
            ).keras
        with err_console.status(f"{name}: int8, accuracy and Vela"):
            model = to_int8(keras, x_train, samples=samples, source=f"{name}_int8.tflite")
            acc = int8_accuracy(model, x_val, y_val)
            for target in targets:
                v = vela_numbers(vela_compile(model, target))
                rows.append(
                    AdviceRow(
                        recipe=name,
                        target=target,
                        accuracy=acc,
                        int8_bytes=model.size,
                        flash_bytes=v["flash_bytes"],
                        encoded_weights_bytes=v["encoded_weights_bytes"],
                        npu_cycles=v["npu_cycles"],
                        total_cycles=v["total_cycles"],
                        sram_bytes=v["sram_bytes"],
                        cpu_ops=v["cpu_ops"],
                    )
                )
    return mark_pareto(rows)


def check_target(target: str) -> None:
    """Refuse an unknown accelerator or board name (ConfigError / BoardError)."""
    if target.lower().startswith("ethos-u"):
        from .vela import check_accelerator

        check_accelerator(target.lower())
    else:
        from ..boards import get_board

        if get_board(target).npu is None:
            raise ConfigError(f"board {target!r} has no NPU to compile for with Vela")


def to_csv(rows: Sequence[AdviceRow]) -> str:
    """CSV with a fixed column order and number format (byte-identical for identical measurements)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = [f.name for f in fields(AdviceRow)]
    w.writerow(names)
    for r in rows:
        d = r.to_dict()
        w.writerow(
            [f"{d[n]:.6f}" if n == "accuracy" else int(d[n]) if n == "pareto" else d[n] for n in names]
        )
    return buf.getvalue()
