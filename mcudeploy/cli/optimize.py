"""``mcudeploy optimize``: Keras model + training data + recipe -> optimized Keras model and its int8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._output import emit_json, json_option
from ._training import load_training, training_options

# Mirrors mcudeploy.ml.optimize (kept literal so --help does not import TensorFlow).
_RECIPES = ("qat", "prune", "cluster", "prune-cluster", "pqat", "cqat", "pcqat")
_INITS = ("kmeans++", "linear", "density", "random")


@click.command("optimize")
@training_options("Labelled data (.npz with x and y) for accuracy before/after (default: the training data).")
@click.option(
    "-r",
    "--recipe",
    required=True,
    metavar="RECIPE",
    help=f"One of {', '.join(_RECIPES)}, or a chain such as prune+cluster+qat.",
)
@click.option(
    "--sparsity", type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Target sparsity [0.5]."
)
@click.option(
    "--schedule", type=click.Choice(["polynomial", "constant"]), help="Pruning schedule [polynomial]."
)
@click.option("--structured", metavar="M:N", help="Structured pruning, e.g. 2:4 (Conv2D and Dense layers).")
@click.option("--clusters", type=click.IntRange(3, 256), help="Weight clusters per tensor or channel [16].")
@click.option(
    "--centroid-init", type=click.Choice(_INITS), help="Cluster centroid initialization [kmeans++]."
)
@click.option("--per-channel", is_flag=True, default=None, help="Cluster each output channel separately.")
@click.option(
    "--vela",
    "vela_targets",
    multiple=True,
    metavar="TARGET",
    help="Also compile baseline and optimized int8 with Vela: an accelerator (ethos-u55-128) or a board.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output model (default: MODEL_RECIPE.keras; .h5 for QAT recipes).",
)
@click.option("--tflite", type=click.Path(path_type=Path), help="Also write the optimized int8 .tflite here.")
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0),
    metavar="PP",
    help="Gate: exit 1 if int8 accuracy falls more than PP points below plain int8 of MODEL.",
)
@json_option("Write the report as JSON ('-' = stdout).")
def command(
    model_path: Path,
    data: Path,
    val: Path | None,
    recipe: str,
    sparsity: float | None,
    schedule: str | None,
    structured: str | None,
    clusters: int | None,
    centroid_init: str | None,
    per_channel: bool | None,
    epochs: int,
    lr: float | None,
    batch_size: int,
    seed: int,
    vela_targets: tuple[str, ...],
    output: Path | None,
    tflite: Path | None,
    max_drop: float | None,
    json_out: Path | None,
) -> None:
    """Prune, cluster and/or quantization-aware-train MODEL on your data (tensorflow-model-optimization).

    \b
    Stages run in the order prune → cluster → qat, each fine-tuned for --epochs and each preserving
    what the one before produced (sparsity-preserving clustering; PQAT / CQAT / PCQAT).
    Fine-tuning follows tfmot's guides: a learning rate well below training's (per stage unless
    --lr), 10 % of the data held out, and each stage keeps its best epoch on it. A drop of more
    than 1 pp against plain int8 prints a warning naming the fix; --max-drop makes it a gate.
    The report shows, per layer, the sparsity and distinct weight values in Keras and again in the
    int8 .tflite, accuracy before/after (float and int8 on host TFLite Micro), and with --vela the
    encoded weight bytes, total and NPU cycles against plain int8 of the original model.
    \b
    Examples:
      mcudeploy optimize model.keras --data train.npz --val test.npz --recipe pcqat --clusters 16
      mcudeploy optimize model.keras --data train.npz --recipe prune --structured 2:4 --vela ethos-u55-128
      mcudeploy optimize model.keras --data train.npz --recipe qat --tflite model_qat_int8.tflite
    """
    from .._io import write_bytes_atomic
    from ..console import console, err_console
    from ..errors import ConfigError, GateError
    from ..ml.optimize import WARN_DROP_PP, FineTune, compare, drop_advice, optimize, parse_recipe, save_keras

    rec = parse_recipe(
        recipe,
        sparsity=sparsity,
        schedule=schedule,
        structured=structured,
        clusters=clusters,
        centroid_init=centroid_init,
        per_channel=per_channel,
    )
    if output is not None and "qat" in rec.stages and output.suffix.lower() != ".h5":
        raise ConfigError(
            f"{output}: recipe {rec.name!r} makes a quantization-aware model; give an .h5 output",
            hint="tf-keras cannot load QAT models back from .keras files",
        )
    original, x, y, x_val, y_val = load_training(model_path, data, val)
    result = optimize(original, x, y, rec, FineTune(epochs, lr, batch_size, seed))
    with err_console.status("converting to int8 and measuring"):
        cmp = compare(original, result, representative=x, x_val=x_val, y_val=y_val, vela_targets=vela_targets)
    # tf-keras reloads QAT models only from .h5 (see mcudeploy.ml.optimize.save_keras)
    suffix = ".h5" if result.is_qat else ".keras"
    out = output or model_path.with_name(f"{model_path.stem}_{rec.name}{suffix}")
    save_keras(result.keras, out)
    if tflite is not None:
        write_bytes_atomic(tflite, cmp.optimized_int8.data)
    report = {**cmp.to_dict(), "output": out.name, "tflite": tflite.name if tflite else None}
    if not emit_json(json_out, report):
        _print(console, report, out, tflite)
    # Checked after everything is written and shown, so a failed gate leaves the numbers behind.
    a = cmp.accuracy
    drop = round(100 * (a["int8_before"] - a["int8_after"]), 2)
    if drop > WARN_DROP_PP:
        err_console.print(
            f"warning: {drop_advice(rec, result.finetune, drop)}", highlight=False, markup=False
        )
    if max_drop is not None and drop > max_drop:
        raise GateError(
            f"{rec.name}: int8 accuracy {100 * a['int8_after']:.2f} % is {drop:.2f} pp below plain int8 "
            f"({100 * a['int8_before']:.2f} %), more than --max-drop {max_drop:g}"
        )


def _print(console: Any, r: dict[str, Any], out: Path, tflite: Path | None) -> None:
    from rich.table import Table

    from ..ml.vela_report import CYCLES_LEGEND, NPU_CYCLES, TOTAL_CYCLES

    t = Table(title=f"{r['recipe']['name']}: per layer (Keras → int8 .tflite)", title_justify="left")
    for col in ("layer", "kind", "sparsity", "int8 sparsity", "unique", "int8 unique/ch"):
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for row in r["layers"]:
        k, q = row["keras"], row["int8"] or {}
        t.add_row(
            row["layer"],
            row["kind"],
            f"{k['sparsity']:.1%}",
            f"{q['sparsity']:.1%}" if q else "-",
            str(k["unique"]),
            str(q.get("unique_per_channel", "-")),
        )
    console.print(t)
    a = r["accuracy"]
    console.print(
        f"accuracy  float {a['float_before']:.2%} → {a['float_after']:.2%}   "
        f"int8 {a['int8_before']:.2%} → {a['int8_after']:.2%}"
    )
    console.print(f"int8 size {r['int8_bytes']['baseline']:,} B → {r['int8_bytes']['optimized']:,} B")
    for v in r["vela"]:
        b, o, ratio = v["baseline"], v["optimized"], v["ratio"]
        console.print(
            f"vela {v['target']}: encoded weights {b['encoded_weights_bytes']:,} → "
            f"{o['encoded_weights_bytes']:,} B (×{ratio['encoded_weights_bytes']:.2f}), {TOTAL_CYCLES} "
            f"{b['total_cycles']:,} → {o['total_cycles']:,} (×{ratio['total_cycles']:.2f}), {NPU_CYCLES} "
            f"{b['npu_cycles']:,} → {o['npu_cycles']:,} (×{ratio['npu_cycles']:.2f})"
            + (f", {o['cpu_ops']} CPU ops not counted" if o["cpu_ops"] else "")
        )
    if r["vela"]:
        console.print(CYCLES_LEGEND)
    console.print(f"wrote {out}" + (f" and {tflite}" if tflite else ""))
