"""``mcudeploy harness-lib``: the device side of the protocol, for the user's own firmware."""

from __future__ import annotations

from pathlib import Path

import click

from ._guard import forced


@click.command("harness-lib")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the library into (created; other files in it are left alone).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help="Also write mcd_harness_model.h: this .tflite's sha256, I/O string and sizes for HELLO.",
)
def command(out_dir: Path, model_path: Path | None) -> None:
    """Write the harness library (mcd_harness.h/.c, README.md, an example port) for your firmware.

    \b
    Link it into your own application (bare metal, STM32Cube, Zephyr, a TFLite Micro app), give it
    write / read-with-timeout / timer / run-model functions, and measure it like any board:
      mcudeploy harness-lib -o third_party/mcd_harness --model model_int8.tflite
      mcudeploy run --board nucleo-h743zi2 --port /dev/ttyACM0 --no-flash \\
                    --model model_int8.tflite --data test.npz
    README.md in the folder documents the porting layer and how to hook it into a TFLM app.
    """
    from ..console import console
    from ..firmware.harness_lib import write_harness_lib
    from ..ml.model import read_tflite

    model = read_tflite(model_path) if model_path is not None else None
    paths = write_harness_lib(out_dir, model, force=forced())
    console.print(f"wrote {len(paths)} files to {out_dir}: " + ", ".join(p.name for p in paths))
    console.print("next: see README.md there for the four functions your firmware provides")
