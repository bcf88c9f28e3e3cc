"""``mcudeploy demo``: train → quantize → evaluate the digits CNN, and print the accuracy ladder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("mcudeploy-demo"),
    show_default=True,
    help="Folder for the artifacts (digits.keras, digits_int8.tflite, digits_test.npz, evaluation.json).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="Training epochs.")
@click.option(
    "-n", "--samples", type=click.IntRange(min=1), default=200, show_default=True, help="Calibration samples."
)
def command(out: Path, epochs: int, samples: int) -> None:
    """Run the no-download demo on scikit-learn's 8x8 digits and check the int8 ladder.

    \b
    Gates (exit 1 when one fails): int8 drop ≤ 0.5 pp, top-1 agreement TFLite vs host TFLM
    ≥ 99 %, max output difference ≤ 1 LSB. Re-running skips stages whose inputs did not change.
    """
    from ..console import console, err_console
    from ..demo import DEMO_GATES, run_demo
    from ..errors import GateError
    from ..ml.inspection import print_evaluation

    def on_stage(stage, res) -> None:  # type: ignore[no-untyped-def]
        state = "skipped (up to date)" if res.skipped else f"done in {res.seconds:.1f} s"
        err_console.print(f"[bold]{stage.name}[/]: {stage.description} — {state}")

    ev, failed = run_demo(
        out,
        epochs=epochs,
        samples=samples,
        on_stage=on_stage,
        notice=lambda text: err_console.print(f"note: {text}", markup=False),
    )
    print_evaluation(ev)
    console.print(f"artifacts in {out}")
    if failed:
        raise GateError("demo gates failed: " + "; ".join(failed))
    gates = ", ".join(f"{k} {v:g}" for k, v in DEMO_GATES.items() if v is not None)
    console.print(f"[green]all demo gates passed[/] ({gates})")
