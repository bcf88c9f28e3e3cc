"""``mcudeploy deploy``: model → quantize → evaluate → Vela → generate → build → run → report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._guard import claim_default

# flag -> (section, key): the common options as flags; every other key through --set SECTION.KEY=VALUE.
_FLAGS: dict[str, tuple[str, str]] = {
    "out": ("", "out"),
    "model": ("model", "path"),
    "data": ("evaluate", "data"),
    "board": ("firmware", "board"),
    "runtime": ("firmware", "runtime"),
    "tflm_root": ("firmware", "tflm_root"),
    "vela_board": ("vela", "board"),
    "port": ("run", "port"),
    "labgrid_place": ("run", "labgrid_place"),
    "samples": ("run", "samples"),
}


@click.command("deploy")
@click.option(
    "-c", "--config", type=click.Path(path_type=Path, dir_okay=False), help="mcudeploy.toml to read."
)
@click.option("-o", "--out", help="Output folder (default: out from the config, else ./mcudeploy-out).")
@click.option("--model", help="Model: .keras/.h5/SavedModel/.tflite or builtin:digits.")
@click.option("--data", help="Labelled evaluation data (.npz with x and y).")
@click.option("--board", help="Firmware board (see `mcudeploy boards`).")
@click.option("--runtime", help="Firmware runtime: c, tflm or auto (c, plus tflm when a TFLM tree is set).")
@click.option("--tflm-root", help="TFLite Micro tree for the tflm runtime.")
@click.option(
    "--vela-board", help="Board whose NPU Vela compiles for (an estimate unless it is the firmware board)."
)
@click.option(
    "--port", help="Serial port or pyserial URL of a flashed board (default: the board's simulator)."
)
@click.option("--labgrid-place", help="Run on a labgrid board-farm place (its serial port and flasher).")
@click.option("--samples", type=click.IntRange(min=0), help="Samples to run on the device (0: all).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Override any config key.")
def command(config: Path | None, sets: tuple[str, ...], **flags: Any) -> None:
    """Run the whole pipeline; re-running skips every stage whose inputs did not change.

    \b
    Each stage writes into its own folder under the output folder, with manifest.json holding the
    hashes of its inputs and outputs. The report is report/report.html (plots) and report/report.md.
    Exit 1 when a gate (evaluate or device) fails; the report is still written.
    """
    from ..console import console, err_console
    from ..deploy import check_deploy, deploy, load_config, parse_override

    overrides = [(*_FLAGS[k], v) for k, v in flags.items() if v is not None]
    overrides += [parse_override(s) for s in sets]
    cfg = load_config(config, overrides)
    if flags.get("out") is None:  # -o is checked with the other outputs; the config's out here
        claim_default(f"out in {config or 'the defaults'}", Path(cfg[""]["out"]), "pipeline")

    def on_stage(stage, res) -> None:  # type: ignore[no-untyped-def]
        state = "skipped (unchanged)" if res.skipped else f"ran ({res.seconds:.1f} s)"
        err_console.print(f"[bold]{stage.name}[/]: {state} — {stage.description}")

    res = deploy(cfg, on_stage, notice=lambda text: err_console.print(f"note: {text}", markup=False))
    if res.nothing_done:
        console.print(f"nothing to do: all {len(res.results)} stages up to date")
    else:
        ran = sum(not r.skipped for r in res.results)
        console.print(f"{ran} of {len(res.results)} stages ran")
    if res.report_html.is_file():
        if res.report_md.is_file():  # the Markdown summary doubles as the CI log's digest
            console.print(res.report_md.read_text(encoding="utf-8"), markup=False)
        console.print(f"report: {res.report_html}")
    check_deploy(res)
