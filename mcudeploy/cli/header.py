"""``mcudeploy header``: a .tflite as C/C++ sources (c-array or incbin) plus mcd_model_meta.h."""

from __future__ import annotations

from pathlib import Path

import click

from ._guard import forced

_FORMATS = ("c-array", "incbin")  # mirrors mcudeploy.firmware.header.FORMATS (keeps --help fast)


@click.command("header")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Output folder (default: the folder of MODEL).",
)
@click.option("--name", help="C identifier for the array (default: from the model's file name).")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="c-array",
    show_default=True,
    help="c-array: portable C initializer. incbin: the assembler includes the bytes (GNU as, ELF: fast).",
)
@click.option("--align", type=int, default=16, show_default=True, help="Alignment of the array in bytes.")
@click.option(
    "--section", help="Linker section for the array, e.g. .model_data (default: compiler's choice)."
)
@click.option(
    "--lang",
    type=click.Choice(["c", "cpp"]),
    default="c",
    show_default=True,
    help="Source language of the generated definition file (.c or .cc).",
)
@click.option(
    "--meta/--no-meta",
    default=True,
    show_default=True,
    help="Also write mcd_model_meta.h (shapes, quantization, ops, sha256, arena bytes).",
)
@click.option(
    "--arena-bytes",
    type=click.IntRange(min=1),
    help="Tensor arena size for mcd_model_meta.h (default: measured with the host TFLM interpreter; "
    "required for Vela models).",
)
def command(
    model_path: Path,
    out_dir: Path | None,
    name: str | None,
    fmt: str,
    align: int,
    section: str | None,
    lang: str,
    meta: bool,
    arena_bytes: int | None,
) -> None:
    """Write MODEL as NAME.h + NAME.c/.cc (+ NAME.tflite for incbin) and mcd_model_meta.h.

    \b
    Generation is deterministic and all-or-nothing: a failure leaves the output folder untouched.
    """
    from ..console import console
    from ..firmware.header import write_model_sources
    from ..ml.model import read_tflite

    model = read_tflite(model_path)
    out = out_dir if out_dir is not None else model_path.parent  # Path("m.tflite").parent is Path(".")
    paths = write_model_sources(
        model,
        out,
        name=name,
        fmt=fmt,
        align=align,
        section=section,
        lang=lang,
        meta=meta,
        arena_bytes=arena_bytes,
        force=forced(),
    )
    for p in paths:
        console.print(f"wrote {p} ({p.stat().st_size:,} bytes)", highlight=False, markup=False)
    if fmt == "incbin":  # the assembler resolves .incbin against its own include path
        console.print(f"compile the .c/.cc with -Wa,-I{out}", highlight=False, markup=False)
