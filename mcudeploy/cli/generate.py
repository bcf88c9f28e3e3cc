"""``mcudeploy generate``: a complete CMake firmware project for a model on a board."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..boards import Board
    from ..firmware.codegen import Project
    from ..ml.model import Model

_RUNTIMES = ("tflm", "c")  # mirrors mcudeploy.firmware.runtimes.RUNTIMES (tested); literal: fast --help


@click.command("generate")
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(path_type=Path))
@click.option("-b", "--board", required=True, help="Board name or board .toml.")
@click.option(
    "-r",
    "--runtime",
    type=click.Choice(_RUNTIMES),
    default="tflm",
    show_default=True,
    help="tflm: TFLite Micro (needs --tflm-root at build time); c: mcudeploy's standalone C runtime.",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Project folder, replaced whole (default: MODEL_BOARD_RUNTIME beside the model).",
)
@click.option(
    "--mode",
    type=click.Choice(["test-vectors", "protocol"]),
    default="test-vectors",
    show_default=True,
    help="test-vectors: run embedded vectors, print results, exit; protocol: serve the harness.",
)
@click.option(
    "--target",
    type=click.Choice(["hardware", "qemu", "fvp"]),
    help="Where it will run: picks the timer and semihosting (default: from the board file).",
)
@click.option(
    "--inputs",
    "inputs_path",
    type=click.Path(path_type=Path),
    help="Test inputs (.npy/.npz/image folder), float or already quantized (default: random).",
)
@click.option(
    "--vectors",
    "num_vectors",
    type=click.IntRange(1, 10_000),
    default=8,
    show_default=True,
    help="Number of test vectors.",
)
@click.option(
    "--reference",
    "reference_path",
    type=click.Path(path_type=Path),
    help="int8 .tflite whose host-TFLM outputs are the goldens (for a Vela-compiled MODEL).",
)
@click.option("--arena-bytes", type=click.IntRange(min=16), help="Override the measured tensor arena size.")
def command(
    model_path: Path,
    board: str,
    runtime: str,
    out_dir: Path | None,
    mode: str,
    target: str | None,
    inputs_path: Path | None,
    num_vectors: int,
    reference_path: Path | None,
    arena_bytes: int | None,
) -> None:
    """Generate a firmware project (app, platform, linker script, CMake) for MODEL on a board.

    Nothing is written unless model + arena + app fit the board's memory regions.
    """
    from ..boards import get_board
    from ..console import console
    from ..firmware.codegen import generate, load_inputs
    from ..ml.model import read_tflite

    model = read_tflite(model_path)
    b = get_board(board)
    reference = read_tflite(reference_path) if reference_path else None
    inputs = load_inputs(reference or model, inputs_path, num_vectors) if inputs_path else None
    out = out_dir or model_path.with_name(f"{model_path.stem}_{b.name}_{runtime}")
    project = generate(
        model,
        b,
        out,
        runtime=runtime,
        mode=mode,
        target=target,
        inputs=inputs,
        num_vectors=num_vectors,
        reference=reference,
        arena_bytes=arena_bytes,
    )
    console.print(
        f"generated {project.path} ({len(project.files)} files): runtime {project.runtime}, "
        f"board {project.board}, target {project.target}, mode {project.mode}, "
        f"arena {project.arena_bytes:,} B"
    )
    console.print(project.fit.table(), markup=False)
    console.print(_next_step(project, b, model), markup=False)


def _next_step(project: Project, board: Board, model: Model) -> str:
    """The build command that works from here: a TFLM project names the tree the build will find
    (the same search as the build), or how to get one when there is none."""
    import os

    from ..errors import ToolMissingError
    from ..firmware.build import TFLM_ENV, find_tflm_root
    from ..ml.model import NPU_CUSTOM_OP

    cmd = f"mcudeploy build {project.path}"
    if not project.needs_tflm:
        return f"next: {cmd}"
    npu = NPU_CUSTOM_OP in model.op_names()
    try:
        root = find_tflm_root(None, npu=npu)
    except ToolMissingError as e:
        if os.environ.get(TFLM_ENV):  # it wins over an installed tree: a setup would not help
            return f"next: {cmd} --tflm-root TFLM_TREE  ({TFLM_ENV}: {e.message})"
        setup = "mcudeploy setup tflm" + (f" --npu {board.npu.type}" if npu and board.npu else "")
        return f"next: {setup}, then {cmd}  (or: {cmd} --tflm-root TFLM_TREE)"
    source = TFLM_ENV if os.environ.get(TFLM_ENV) else "mcudeploy setup tflm"
    return f"next: {cmd}  (TFLite Micro tree {root}, from {source})"
