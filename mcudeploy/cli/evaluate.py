"""``mcudeploy evaluate``: the accuracy ladder float → TFLite int8 → host TFLM int8, with agreement."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import emit_json, json_option


@click.command("evaluate")
@click.argument("int8_path", metavar="INT8_TFLITE", type=click.Path(path_type=Path))
@click.option(
    "-d",
    "--data",
    "data_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Labelled .npz with x and y.",
)
@click.option(
    "-f",
    "--float",
    "float_path",
    type=click.Path(path_type=Path),
    help="The float model (.keras, .h5, SavedModel folder, or .onnx run by onnxruntime) for the first "
    "rung and the size ratio.",
)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Evaluate only the first N samples.")
@click.option(
    "--default-kernels/--no-default-kernels",
    default=True,
    show_default=True,
    help="Also compare TFLite's default (optimised) kernels with host TFLM.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(0, 100),
    help="Gate: fail (exit 1) if float → int8 drops more than this (pp).",
)
@click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 100),
    help="Gate: fail if host TFLM int8 accuracy (%) is below this.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 100),
    help="Gate: fail if TFLite vs TFLM top-1 agreement (%) is below.",
)
@click.option(
    "--max-lsb",
    type=click.IntRange(min=0),
    help="Gate: fail if TFLite (reference) and TFLM differ by more LSBs.",
)
@click.option(
    "--per-layer",
    "per_layer",
    is_flag=True,
    help="Also rank the int8 model's ops by the error each adds against the float model (needs -f).",
)
@click.option(
    "--per-layer-samples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Samples the per-layer comparison runs on.",
)
@json_option("Write the evaluation as JSON to a file, or to stdout with a bare --json.", bare=True)
def command(
    int8_path: Path,
    data_path: Path,
    float_path: Path | None,
    limit: int | None,
    default_kernels: bool,
    max_drop: float | None,
    min_accuracy: float | None,
    min_agreement: float | None,
    max_lsb: int | None,
    per_layer: bool,
    per_layer_samples: int,
    json_out: Path | None,
) -> None:
    """Top-1 accuracy of INT8_TFLITE on labelled data: float, TFLite int8, host TFLM int8.

    \b
    Inputs are quantized with the int8 model's input scale and zero point (NCHW data is
    transposed for an NHWC model). Host TFLM is the
    reference for every bit-exact check: the agreement rows say how TFLite's kernels compare.

    
    --per-layer runs the int8 model and the float model side by side and ranks the int8 ops by
    the signal-to-noise ratio (SNR) each loses (its worst input's SNR minus its output's, median
    over channels), with RMSE and mean error in LSBs of the tensor's scale (rounding alone gives
    RMSE ~0.29), cosine similarity, the range spread between channels, the Keras layers fused
    into each op, and what to try for the worst ones.
    
    Examples:
      mcudeploy evaluate model_int8.tflite -d test.npz -f model.keras --max-drop 1
      mcudeploy evaluate model_int8.tflite -d test.npz -f model.keras --per-layer
    """
    from ..ml.evaluate import enforce_gates, evaluate_files
    from ..ml.inspection import print_evaluation, print_layer_errors

    ev = evaluate_files(
        int8_path,
        data_path,
        float_path=float_path,
        default_kernels=default_kernels,
        limit=limit,
        per_layer_samples=per_layer_samples if per_layer else None,
    )
    if not emit_json(json_out, ev.to_dict()):
        print_evaluation(ev)
        if per_layer:
            print_layer_errors(ev.per_layer, min(per_layer_samples, ev.samples))
    enforce_gates(
        ev,
        {
            "max_drop_pp": max_drop,
            "min_accuracy": min_accuracy,
            "min_agreement": min_agreement,
            "max_lsb": max_lsb,
        },
    )
