"""Stage ``header``: a .tflite model as C/C++ sources, plus the firmware's model-metadata header.

Two formats: ``c-array`` (portable C, any compiler) and ``incbin`` (the assembler pulls the bytes in
with ``.incbin``: a 10 MB model builds in milliseconds instead of many seconds). Every name that
reaches C goes through :mod:`mcudeploy.firmware.cnames`; outputs are byte-identical for the same inputs (no
timestamps, no absolute paths) and are committed all-or-nothing.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import __version__
from .._io import discard_temp, write_temp_beside
from ..errors import InputError, UnsupportedError
from ..ml.model import NPU_CUSTOM_OP, TENSOR_TYPES, Model
from .cnames import c_comment_text, c_identifier, c_macro_name, c_string_literal, is_section_name
from .templating import template_env

FORMATS = ("c-array", "incbin")
LANGS = ("c", "cpp")
META_HEADER = "mcd_model_meta.h"
DEFAULT_ALIGN = 16
_BODY_MARK = "@@MCD_ARRAY_BODY@@"
_BYTES_PER_ROW = 16  # must be even: rows are emitted two bytes at a time
_INDENT = b"    "
_CTYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "uint16": "uint16_t",
    "int32": "int32_t",
    "uint32": "uint32_t",
    "int64": "int64_t",
    "uint64": "uint64_t",
    "float32": "float",
    "float64": "double",
    "bool": "uint8_t",
}
_TYPE_CODES = {name: code for code, (name, _) in TENSOR_TYPES.items()}  # dtype -> TFLite TensorType


# -- the fast array body ------------------------------------------------------------------
@cache
def _pair_table() -> np.ndarray:
    """65,536 entries of ``b"0xLL,0xHH,"``: one lookup emits two bytes (little-endian uint16 index)."""
    single = np.frombuffer(b"".join(b"0x%02x," % i for i in range(256)), np.uint8).reshape(256, 5)
    lo, hi = np.meshgrid(np.arange(256), np.arange(256), indexing="xy")  # index = hi * 256 + lo
    pairs = np.concatenate([single[lo.ravel()], single[hi.ravel()]], axis=1)
    return np.ascontiguousarray(pairs).view("S10").ravel()


def render_array_body(data: bytes) -> bytes:
    """``data`` as C initializer lines: ``    0x00,0x01,...,\\n``, 16 bytes per line.

    A byte-pair lookup table and one ``np.take`` into a preallocated row buffer: about 10x faster
    than ``xxd -i`` (see benchmarks/bench_header.py). A trailing comma is valid in C and C++.
    """
    full_rows = len(data) // _BYTES_PER_ROW
    width = len(_INDENT) + _BYTES_PER_ROW * 5 + 1
    rows = np.empty((full_rows, width), np.uint8)
    if full_rows:
        rows[:, : len(_INDENT)] = np.frombuffer(_INDENT, np.uint8)
        rows[:, -1] = ord("\n")
        pairs = np.frombuffer(data, "<u2", count=full_rows * _BYTES_PER_ROW // 2)
        np.take(
            _pair_table(),
            pairs.reshape(full_rows, -1),
            out=rows[:, len(_INDENT) : -1].view("S10"),
            mode="clip",
        )
    tail = data[full_rows * _BYTES_PER_ROW :]
    out = rows.tobytes()
    if tail:
        out += _INDENT + b"".join(b"0x%02x," % b for b in tail) + b"\n"
    return out


# -- templates ----------------------------------------------------------------------------
def _render(template: str, **ctx: Any) -> str:
    return template_env().get_template(f"header/{template}").render(version=__version__, **ctx)


# -- options ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeaderOptions:
    name: str
    fmt: str
    align: int
    section: str | None
    lang: str

    @property
    def source_suffix(self) -> str:
        return ".cc" if self.lang == "cpp" else ".c"


def check_options(
    model: Model, name: str | None, fmt: str, align: int, section: str | None, lang: str
) -> HeaderOptions:
    """Validate the user's choices; the identifier comes from ``name`` or the model's file name."""
    if fmt not in FORMATS:
        raise InputError(f"unknown header format {fmt!r} (choose {' or '.join(FORMATS)})")
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r} (choose {' or '.join(LANGS)})")
    if (
        isinstance(align, bool)
        or not isinstance(align, int)
        or align < 1
        or align > 4096
        or align & (align - 1)
    ):
        raise InputError(f"alignment (--align) must be a power of two from 1 to 4096, got {align!r}")
    if section is not None and not is_section_name(section):
        raise InputError(
            f"section name {section!r} is not a plain linker section name",
            hint="use letters, digits, '_', '.' and '$', e.g. .model_data or .rodata.model",
        )
    # the model's source is a file name; drop its extension (not via Path: it may hold '/' or '\\')
    ident = c_identifier(name if name is not None else re.sub(r"\.[A-Za-z0-9]{1,8}$", "", model.source))
    if ident == Path(META_HEADER).stem:
        raise InputError(f"the name {ident!r} would overwrite {META_HEADER}; choose another with --name")
    return HeaderOptions(ident, fmt, align, section, lang)


# -- rendering ----------------------------------------------------------------------------
def _common(model: Model, opts: HeaderOptions) -> dict[str, Any]:
    return {
        "name": opts.name,
        "NAME": c_macro_name(opts.name),
        "header": f"{opts.name}.h",
        "source": c_comment_text(model.source),
        "size": model.size,
        "sha256": model.sha256,
        "align": opts.align,
        "section": opts.section,
    }


def render_model_sources(model: Model, opts: HeaderOptions) -> dict[str, bytes]:
    """File name -> contents for the model's header, its source and (incbin) the blob it includes."""
    ctx = _common(model, opts)
    files: dict[str, bytes] = {}
    files[ctx["header"]] = _render("model.h.j2", guard=f"{ctx['NAME']}_H", **ctx).encode("ascii")
    source = f"{opts.name}{opts.source_suffix}"
    if opts.fmt == "c-array":
        text = _render("model_array.c.j2", body=_BODY_MARK, **ctx)
        head, sep, tail = text.partition(_BODY_MARK)
        if not sep or _BODY_MARK in tail:  # pragma: no cover - template invariant
            raise AssertionError("model_array.c.j2 must hold exactly one body placeholder")
        files[source] = head.encode("ascii") + render_array_body(model.data) + tail.encode("ascii")
    else:
        blob = f"{opts.name}.tflite"
        section_asm = opts.section or f".rodata.{opts.name}"
        files[source] = _render("model_incbin.c.j2", blob=blob, section_asm=section_asm, **ctx).encode(
            "ascii"
        )
        files[blob] = model.data
    return files


def _c_float(x: float) -> str:
    if not math.isfinite(x):
        raise UnsupportedError(f"quantization scale {x!r} is not finite")
    s = f"{x:.9g}"  # 9 significant digits round-trip any float32
    if not any(c in s for c in ".e"):
        s += ".0"
    return s + "f"


def _io_ctx(kind: str, index: int, t: Any) -> dict[str, Any]:
    quant = t.quant
    return {
        "kind": kind,
        "index": index,
        "name_comment": c_comment_text(t.name),
        "name_literal": c_string_literal(t.name),
        "nbytes": t.nbytes,
        "shape": [int(d) for d in t.shape] or [1],  # a scalar as shape {1}: C has no empty initializer
        "dtype": t.dtype,
        "type_code": _TYPE_CODES[t.dtype],
        "ctype": _CTYPES.get(t.dtype, "unsigned char"),
        "quantized": quant is not None,
        "scale": _c_float(quant.scale[0]) if quant else "0.0f",
        "zero_point": int(quant.zero_point[0]) if quant else 0,
    }


def resolve_arena_bytes(model: Model, arena_bytes: int | None) -> tuple[int, bool]:
    """(arena bytes, measured?): the user's number, else the host TFLM interpreter's minimum."""
    if arena_bytes is not None:
        if isinstance(arena_bytes, bool) or not isinstance(arena_bytes, int) or arena_bytes <= 0:
            raise InputError(f"arena bytes must be a positive integer, got {arena_bytes!r}")
        return arena_bytes, False
    if any(not op.builtin for sg in model.subgraphs for op in sg.operators):
        custom = sorted({op.opcode for sg in model.subgraphs for op in sg.operators if not op.builtin})
        raise UnsupportedError(
            f"{model.source}: the arena cannot be measured on the host for custom op(s) {', '.join(custom)}",
            hint="pass --arena-bytes (for a Vela model: the SRAM figure of `mcudeploy compile`'s report "
            "plus the CPU-side tensors)",
        )
    from ..ml.tflm_host import measure_arena

    return measure_arena(model), True


def render_meta_header(
    model: Model, arena_bytes: int | None = None, *, source: str | None = None, arena_note: str | None = None
) -> str:
    """The ``mcd_model_meta.h`` text for ``model`` (the shared firmware interface).

    ``arena_bytes`` None measures the arena with the host TFLM interpreter (not possible for Vela
    models, whose ethos-u op it cannot run: pass the number then); ``arena_note`` says where a
    given number comes from.
    """
    arena, measured = resolve_arena_bytes(model, arena_bytes)
    ops = model.op_names()
    note = (
        "measured with the host TFLite Micro interpreter" if measured else (arena_note or "given by the user")
    )
    return _render(
        META_HEADER + ".j2",
        source=c_comment_text(source or model.source),
        source_literal=c_string_literal(source or model.source),
        sha256=model.sha256,
        size=model.size,
        arena_bytes=arena,
        arena_measured=measured,
        arena_note=note,
        inputs=[_io_ctx("INPUT", i, t) for i, t in enumerate(model.inputs)],
        outputs=[_io_ctx("OUTPUT", i, t) for i, t in enumerate(model.outputs)],
        ops=sorted({c_macro_name(op, default="OP") for op in ops}),
        ops_literal=c_string_literal(",".join(ops)),
        op_count=sum(len(sg.operators) for sg in model.subgraphs),
        has_ethosu=NPU_CUSTOM_OP in ops,
    )


# -- writing ------------------------------------------------------------------------------
def _generated(path: Path) -> bool:
    """A file mcudeploy wrote: a .tflite, or text naming mcudeploy in its first lines."""
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError:
        return False
    return head[4:8] == b"TFL3" or b"mcudeploy" in head.lower()


def commit_files(out_dir: Path, files: dict[str, bytes], *, force: bool = False) -> list[Path]:
    """Write every file, or none: all go to temp files first, then each is renamed into place.

    A failure while writing (disk full, a folder in the way, Ctrl-C) removes the temp files and
    leaves ``out_dir`` exactly as it was. A file in the way that mcudeploy did not generate (the
    user's own ``model.h``) is not replaced unless ``force``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create the output folder ({e.strerror})") from None
    temps: dict[Path, str] = {}
    try:
        for fname in files:
            if (out_dir / fname).is_dir():
                raise InputError(f"{out_dir / fname}: a folder is in the way of a generated file")
        for fname in files:
            if (out_dir / fname).exists() and not force and not _generated(out_dir / fname):
                raise InputError(
                    f"{out_dir / fname}: exists and is not a file mcudeploy generated; not replacing it",
                    hint="choose another output folder, or pass --force to replace it",
                )
        for fname, data in sorted(files.items()):
            temps[out_dir / fname] = write_temp_beside(out_dir / fname, data)
        for target, tmp in temps.items():
            os.replace(tmp, target)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot write the generated files ({e.strerror or e})") from None
    finally:
        for tmp in temps.values():
            discard_temp(tmp)
    return [out_dir / fname for fname in sorted(files)]


def write_model_sources(
    model: Model,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    fmt: Literal["c-array", "incbin"] | str = "c-array",
    align: int = DEFAULT_ALIGN,
    section: str | None = None,
    lang: Literal["c", "cpp"] | str = "c",
    meta: bool = False,
    arena_bytes: int | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``NAME.h`` and ``NAME.c``/``NAME.cc`` (+ ``NAME.tflite`` for incbin) into ``out_dir``.

    With ``meta`` also ``mcd_model_meta.h`` (arena measured unless ``arena_bytes`` is given). All
    files are rendered in memory first and committed together; returns their paths, sorted.
    """
    opts = check_options(model, name, fmt, align, section, lang)
    files = render_model_sources(model, opts)
    if meta:
        files[META_HEADER] = render_meta_header(model, arena_bytes).encode("ascii")
    return commit_files(Path(out_dir), files, force=force)
