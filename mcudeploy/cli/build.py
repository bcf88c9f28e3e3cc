"""``mcudeploy build``: compile a generated project into firmware (ELF, map, section sizes)."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import emit_json, json_option


@click.command("build")
@click.argument("project_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--tflm-root",
    type=click.Path(path_type=Path),
    help="TFLite Micro tree (create_tflm_tree.py export); default $MCUDEPLOY_TFLM_ROOT.",
)
@click.option("--build-dir", type=click.Path(path_type=Path), help="Build folder (default: DIR/build).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel compile jobs.")
@json_option("Write the result as JSON ('-' = stdout).")
def command(
    project_dir: Path, tflm_root: Path | None, build_dir: Path | None, jobs: int | None, json_out: Path | None
) -> None:
    """Build the project in DIR with CMake and arm-none-eabi-gcc."""

    from ..console import console
    from ..firmware.build import build

    fw = build(project_dir, build_dir=build_dir, tflm_root=tflm_root, jobs=jobs)
    result = {**fw.to_dict(), "elf_path": str(fw.elf), "map_path": str(fw.map)}
    if emit_json(json_out, result, sort_keys=False):
        return
    runtime = f"{fw.runtime} runtime, {fw.kernels} kernels" if fw.kernels else f"{fw.runtime} runtime"
    console.print(f"built {fw.elf} ({runtime}, board {fw.board}); map: {fw.map}", markup=False)
    for name, size in sorted(fw.sections.items()):
        console.print(f"  {name:<12} {size:>10,} B", markup=False)
