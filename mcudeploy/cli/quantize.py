"""``mcudeploy quantize``: float model + calibration data -> fully int8 .tflite (or a refusal)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ._guard import claim_default
from ._output import emit_json, json_option

_IO_DTYPES = ("int8", "uint8", "int16", "float32")  # mirrors mcudeploy.ml.quantize.IO_DTYPES (fast --help)


def _gate_docs(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ..ml.gates import gate_docs

    click.echo(gate_docs())
    ctx.exit(0)


def _range(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LO,HI such as 0,1 or -1,1, not {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise click.BadParameter(f"expected finite LO < HI such as 0,1 or -1,1, not {value!r}")
    return lo, hi


@click.command("quantize")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "-d",
    "--data",
    required=True,
    metavar="SOURCE",
    help="Calibration data: a .npy, a .npz (see --key), a folder of images, or module:function.",
)
@click.option("--key", help="Array to use from a .npz (default: 'x', or its only array).")
@click.option(
    "-n",
    "--samples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Calibration samples (the first N, in file order).",
)
@click.option(
    "--io-dtype",
    type=click.Choice(_IO_DTYPES),
    default="int8",
    show_default=True,
    help="Model input/output type (int8 means int16 in 16x8 mode).",
)
@click.option(
    "--mode",
    type=click.Choice(["int8", "16x8"]),
    default="int8",
    show_default=True,
    help="int8, or 16x8: int16 activations with int8 weights.",
)
@click.option(
    "--per-channel/--per-tensor", default=True, show_default=True, help="Weight quantization granularity."
)
@click.option(
    "--image-range",
    default="0,1",
    show_default=True,
    callback=_range,
    help="Pixel range images are scaled to (images only).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output .tflite (default: MODEL_int8.tflite / MODEL_16x8.tflite beside MODEL).",
)
@json_option("Also write a JSON summary ('-' = stdout).")
@click.option(
    "--gate-docs",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_gate_docs,
    help="Print what the fully-int8 gate checks, and exit.",
)
def command(
    model_path: Path,
    data: str,
    key: str | None,
    samples: int,
    io_dtype: str,
    mode: str,
    per_channel: bool,
    image_range: tuple[float, float],
    output: Path | None,
    json_out: Path | None,
) -> None:
    """Quantize MODEL (.keras, .h5, a SavedModel folder or .onnx) to a fully int8 .tflite.

    \b
    Post-training quantization with TFLiteConverter, calibrated on the first N samples of SOURCE.
    An ONNX model (e.g. exported from PyTorch; needs the onnx extra) is rebuilt with NHWC layout,
    checked against onnxruntime, then quantized like any Keras model: the int8 model takes NHWC
    input. Calibration and test data may be NCHW or NHWC for any model; NCHW is transposed.
    The batch dimension is fixed to 1. The result must pass the fully-int8 gate (every op a
    builtin with an integer kernel, every non-bias tensor int8), otherwise nothing is written and
    each offending op, tensor and layer is listed (exit 1).
    \b
    Examples:
      mcudeploy quantize model.keras --data calib.npz --key x_train --samples 300
      mcudeploy quantize model.keras --data images/ --image-range -1,1 -o model_int8.tflite
      mcudeploy quantize saved_model/ --data mypkg.data:calibration --io-dtype float32
      mcudeploy quantize model.h5 --data calib.npy --mode 16x8
      mcudeploy quantize model.onnx --data calib_nchw.npz --samples 200
    """
    from rich.markup import escape

    from .._io import write_bytes_atomic
    from ..console import console, err_console
    from ..ml.quantize import quantize

    with err_console.status(f"quantizing {model_path.name} ({mode}, {samples} calibration samples)"):
        result = quantize(
            model_path,
            data,
            key=key,
            samples=samples,
            io_dtype=io_dtype,
            mode=mode,
            per_channel=per_channel,
            pixel_range=image_range,
            output_name=output.name if output else None,
        )
    out = output or claim_default("-o", model_path.with_name(result.model.source), "tflite")
    write_bytes_atomic(out, result.model.data)
    summary = {**result.to_dict(), "output": str(out)}
    if not emit_json(json_out, summary):
        _print_summary(console, summary, len(result.model.operators))
    if result.samples < samples:
        err_console.print(
            f"[yellow]note:[/] {escape(data)} holds only {result.samples} samples (asked for {samples})"
        )


def _print_summary(console: object, s: dict[str, object], n_ops: int) -> None:
    from rich.table import Table

    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("wrote", str(s["output"]))
    t.add_row(
        "mode",
        f"{s['mode']} (weights per-{'channel' if s['per_channel'] else 'tensor'}), I/O {s['io_dtype']}",
    )
    t.add_row("ops", f"{n_ops}: {', '.join(s['ops'])}")  # type: ignore[arg-type]
    sizes = f"{s['int8_bytes']:,} B"
    if s["float_bytes"]:
        sizes += f"  (float {s['float_bytes']:,} B, ratio {s['ratio']:.3f})"
    t.add_row("size", sizes)
    t.add_row("calibration", f"{s['calibration_samples']} samples, converted in {s['convert_seconds']:.2f} s")
    t.add_row("gate", "[green]fully int8[/]")
    console.print(t)  # type: ignore[attr-defined]
