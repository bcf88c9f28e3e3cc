"""``mcudeploy advise``: recipes × Vela targets, measured, with the Pareto front marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._output import emit_json, json_option
from ._training import load_training, training_options

_DEFAULT_RECIPES = "ptq,qat,prune,prune-cluster,pcqat"  # mirrors mcudeploy.ml.advise.DEFAULT_RECIPES


@click.command("advise")
@training_options("Labelled data (.npz with x and y) for accuracy (default: the training data).")
@click.option(
    "--recipes",
    default=_DEFAULT_RECIPES,
    show_default=True,
    help="Comma-separated recipes; 'ptq' is plain int8 of MODEL (see `mcudeploy optimize --help`).",
)
@click.option(
    "--vela",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="Vela target: an accelerator (ethos-u55-128) or a board; repeat. [ethos-u55-128, ethos-u55-256]",
)
@click.option("--sparsity", type=click.FloatRange(0, 1, min_open=True, max_open=True), help="[0.5]")
@click.option("--clusters", type=click.IntRange(3, 256), help="[16]")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), help="Write the table as CSV.")
@json_option("Write the rows as JSON ('-' = stdout).")
def command(
    model_path: Path,
    data: Path,
    val: Path | None,
    recipes: str,
    targets: tuple[str, ...],
    sparsity: float | None,
    clusters: int | None,
    epochs: int,
    lr: float | None,
    batch_size: int,
    seed: int,
    csv_out: Path | None,
    json_out: Path | None,
) -> None:
    """Try each recipe on MODEL and compile each result for each Vela target; mark the Pareto front.

    \b
    Columns: int8 accuracy (host TFLite Micro), int8 .tflite size, Vela flash, encoded weights,
    total cycles (Vela's estimate of the NPU part of the inference, memory traffic included), NPU
    cycles (the NPU's compute alone) and CPU ops (operators Vela leaves to the CPU, which neither
    cycle count covers). Per target, ★ marks the rows no other row beats on accuracy, flash and
    total cycles together. The CSV and JSON use the same names (total_cycles, npu_cycles).
    \b
    Example:
      mcudeploy advise model.keras --data train.npz --val test.npz --vela ethos-u55-128 --csv advice.csv
    """
    from .._io import write_text_atomic
    from ..console import console
    from ..ml.advise import DEFAULT_TARGETS, advise, to_csv
    from ..ml.optimize import FineTune

    names = tuple(r.strip() for r in recipes.split(",") if r.strip())
    keras, x, y, x_val, y_val = load_training(model_path, data, val)
    params = {k: v for k, v in {"sparsity": sparsity, "clusters": clusters}.items() if v is not None}
    rows = advise(
        keras,
        x,
        y,
        x_val,
        y_val,
        recipes=names,
        targets=targets or DEFAULT_TARGETS,
        finetune=FineTune(epochs, lr, batch_size, seed),
        recipe_params=params,
    )
    if csv_out is not None:
        write_text_atomic(csv_out, to_csv(rows))
    if not emit_json(json_out, [r.to_dict() for r in rows]):
        _print(console, rows)
    _warn_drops(rows, names, params, FineTune(epochs, lr, batch_size, seed))


def _warn_drops(rows: list[Any], names: tuple[str, ...], params: dict[str, Any], ft: Any) -> None:
    """A warning naming the fix for each recipe that lost more than 1 pp against plain int8."""
    from ..console import err_console
    from ..ml.advise import BASELINE
    from ..ml.optimize import WARN_DROP_PP, drop_advice, parse_recipe

    acc = {r.recipe: r.accuracy for r in rows}
    if BASELINE not in acc:
        return
    for name in names:
        drop = round(100 * (acc[BASELINE] - acc.get(name, acc[BASELINE])), 2)
        if name != BASELINE and drop > WARN_DROP_PP:
            advice = drop_advice(parse_recipe(name, **params), ft, drop)
            err_console.print(f"warning: {advice}", highlight=False, markup=False)


def _print(console: Any, rows: list[Any]) -> None:
    from rich.table import Table

    from ..ml.vela_report import CYCLES_LEGEND, NPU_CYCLES, TOTAL_CYCLES

    t = Table(title="recipes × Vela targets (★ = Pareto front per target)", title_justify="left")
    cols = (
        "",
        "target",
        "recipe",
        "accuracy",
        "int8 B",
        "flash B",
        "enc. weights B",
        TOTAL_CYCLES,
        NPU_CYCLES,
        "CPU ops",
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("", "target", "recipe") else "right")
    for r in sorted(rows, key=lambda r: r.target):  # stable: grid order within a target
        t.add_row(
            "★" if r.pareto else "",
            r.target,
            r.recipe,
            f"{r.accuracy:.2%}",
            f"{r.int8_bytes:,}",
            f"{r.flash_bytes:,}",
            f"{r.encoded_weights_bytes:,}",
            f"{r.total_cycles:,}",
            f"{r.npu_cycles:,}",
            str(r.cpu_ops),
        )
    console.print(t)
    console.print(CYCLES_LEGEND)
    if any(r.cpu_ops for r in rows):
        console.print("note: rows with CPU ops: their cycles cover the NPU part of the inference only")
