"""``mcudeploy ci``: write a GitHub Actions or GitLab CI job that provisions, deploys and gates."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("ci")
@click.argument("provider", type=click.Choice(["github", "gitlab"]))
@click.option(
    "--board", required=True, help="Firmware board (see `mcudeploy boards`): qemu-* or an NPU board."
)
@click.option("--model", help="Model in the repository (.keras/.tflite/...), default builtin:digits.")
@click.option("--data", help="Labelled evaluation data in the repository (.npz with x and y).")
@click.option(
    "--runtime", type=click.Choice(["c", "tflm", "auto"]), help="Default: tflm on NPU boards, else c."
)
@click.option("--samples", type=click.IntRange(min=0), help="Samples to run on the simulator (0: all).")
@click.option(
    "--accept-fvp-eula", is_flag=True, help="NPU boards: the job installs Arm's FVP, accepting its EULA."
)
@click.option(
    "--gates",
    default="{ require_bit_exact = true, match_golden_accuracy = true }",
    show_default=True,
    help="Device gates that fail the job (deploy's run.gates, a TOML inline table).",
)
@click.option(
    "--install", default="mcudeploy", show_default=True, help="pip requirement that installs mcudeploy."
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write (default: .github/workflows/mcudeploy.yml or .gitlab-ci.yml).",
)
def command(
    provider: str,
    board: str,
    model: str | None,
    data: str | None,
    runtime: str | None,
    samples: int | None,
    accept_fvp_eula: bool,
    gates: str,
    install: str,
    out: Path | None,
) -> None:
    """Write a CI job for PROVIDER (github or gitlab) that deploys to BOARD's simulator.

    The job caches `mcudeploy setup` (TFLM tree and library, the FVP), runs `mcudeploy deploy` on
    QEMU (on the FVP for NPU boards), uploads the HTML report and the JUnit XML, and fails when a
    gate fails.

    \b
    Examples:
      mcudeploy ci github --board qemu-an547 --model models/kws.tflite --data data/kws_test.npz
      mcudeploy ci gitlab --board corstone-300 --model m.keras --accept-fvp-eula
    """
    from ..boards import get_board
    from ..ci import plan, write
    from ..console import console

    job = plan(
        get_board(board),
        model=model,
        data=data,
        runtime=runtime,
        samples=samples,
        accept_fvp_eula=accept_fvp_eula,
        install=install,
        gates=gates,
    )
    path = write(provider, job, out)
    console.print(
        f"wrote {path}: {len(job.setup)} setup step(s), then {' '.join(job.deploy())}", markup=False
    )
