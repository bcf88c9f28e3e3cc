"""`mcudeploy header`: C/C++ sources for a model, compiled for real with gcc/g++ and arm-none-eabi-gcc.

Bit-exactness is checked by compiling, linking and running a host program that writes the array to
stdout (and, for the cross builds, by extracting the object's section with objcopy).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.boards import Board, list_boards
from mcudeploy.cli import run
from mcudeploy.errors import InputError, UnsupportedError
from mcudeploy.firmware.cnames import C_KEYWORDS, c_comment_text, c_identifier, c_macro_name, c_string_literal
from mcudeploy.firmware.header import (
    META_HEADER,
    check_options,
    render_array_body,
    render_meta_header,
    write_model_sources,
)
from mcudeploy.ml.model import Model, parse_tflite, read_tflite
from mcudeploy.ml.tflm_host import measure_arena
from tests.hyp import examples

needs_host_cc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("g++") is None,
    reason="needs gcc and g++: apt-get install g++",
)
needs_arm_cc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-g++") is None,
    reason="needs arm-none-eabi-gcc/g++: run `make setup`",
)
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]  # strict C99 also enables trigraphs
CXX_FLAGS = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic"]  # ... and so does strict C++11


def _cc(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}"
    return proc


def _dump_program(header: str, symbol: str) -> str:
    """A host program: checks length and alignment, then writes the model array to stdout."""
    macro = c_macro_name(symbol)
    return f"""#include <stdio.h>
#include "{header}"
int main(void) {{
    if ({symbol}_len != {macro}_LEN || sizeof({symbol}) != {macro}_LEN) return 3;
    if (((unsigned long)(const void *){symbol}) % {macro}_ALIGN != 0) return 4;
    return fwrite({symbol}, 1, {symbol}_len, stdout) == {symbol}_len ? 0 : 5;
}}
"""


# -- cnames -------------------------------------------------------------------------------
@examples(300)
@given(st.text())
def test_c_identifier_is_always_valid(text: str) -> None:
    ident = c_identifier(text)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ident), ident
    assert "__" not in ident and ident not in C_KEYWORDS and len(ident) <= 63
    macro = c_macro_name(text)
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", macro) and "__" not in macro


def test_c_identifier_examples() -> None:
    assert c_identifier("digits_int8") == "digits_int8"
    assert c_identifier("9lives") == "m_9lives"
    assert c_identifier("int") == "int_"
    assert c_identifier("__Reserved") == "Reserved"
    assert c_identifier("modèle") == "modele"
    assert c_identifier("模型") == "model"


@examples(300)
@given(st.text())
def test_comment_and_literal_text_cannot_escape(text: str) -> None:
    comment = c_comment_text(text)
    assert comment.isascii() and comment.isprintable()
    assert "*/" not in comment and "/*" not in comment and "??" not in comment
    literal = c_string_literal(text)
    assert literal.isascii() and literal.isprintable()
    assert "??" not in literal
    assert re.fullmatch(r'"([^"\\?]|\\[0-7]{3}|\\["\\?])*"', literal), literal


HOSTILE = [
    'quote " and \\ backslash',
    "end */ comment /* start",
    "trigraph ??/\nnewline ??= ??' ??!",
    "tab\tcr\rnull\x00bell\x07",
    "unicode é 模型 \u2028 🚀 \U0010ffff",
    "\\",
    "?",
    "*/",
    '"); system("rm -rf /"); //',
    "9 leading digit",
]


@needs_host_cc
@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_hostile_text_compiles_to_exactly_its_bytes(lang: str, tmp_path: Path) -> None:
    """Every hostile string, as a literal after a comment holding it, prints back byte for byte."""
    lines = ["#include <stdio.h>", "static const char *const texts[] = {"]
    for text in HOSTILE:
        lines.append(f"    /* {c_comment_text(text)} */ {c_string_literal(text)},")
    lines += [
        "};",
        "int main(void) {",
        "    unsigned i;",
        "    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {",
        "        fputs(texts[i], stdout);",
        "        putchar(0xff);",
        "    }",
        "    return 7;",
        "}",
    ]
    src = tmp_path / ("t.c" if lang == "c" else "t.cc")
    src.write_text("\n".join(lines) + "\n")
    compiler, flags = ("gcc", C_FLAGS) if lang == "c" else ("g++", CXX_FLAGS)
    _cc([compiler, *flags, "-Wno-overlength-strings", src.name, "-o", "t"], tmp_path)
    proc = subprocess.run([str(tmp_path / "t")], capture_output=True)
    assert proc.returncode == 7
    # fputs stops at a NUL: compare each text up to its first NUL
    expected = b"".join(t.encode().split(b"\x00")[0] + b"\xff" for t in HOSTILE)
    assert proc.stdout == expected


# -- the array body -----------------------------------------------------------------------
@examples(60)
@given(st.binary(max_size=200))
def test_array_body_parses_back(data: bytes) -> None:
    body = render_array_body(data).decode("ascii")
    assert all(len(line) <= 4 + 16 * 5 for line in body.splitlines())
    values = [int(v, 16) for v in re.findall(r"0x([0-9a-f]{2}),", body)]
    assert bytes(values) == data
    assert re.sub(r"0x[0-9a-f]{2},", "", body).replace(" ", "") == "\n" * len(body.splitlines())


# -- round trips on the host --------------------------------------------------------------
@needs_host_cc
@pytest.mark.parametrize("fmt", ["c-array", "incbin"])
@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_array_round_trips_byte_for_byte(digits_int8: Model, fmt: str, lang: str, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    paths = write_model_sources(digits_int8, gen, fmt=fmt, lang=lang, align=64)
    ext = ".c" if lang == "c" else ".cc"
    expected = {f"digits_int8{ext}", "digits_int8.h"} | ({"digits_int8.tflite"} if fmt == "incbin" else set())
    assert {p.name for p in paths} == expected
    (tmp_path / "main.c").write_text(_dump_program("digits_int8.h", "digits_int8"))
    compiler, flags = ("gcc", C_FLAGS) if lang == "c" else ("g++", CXX_FLAGS)
    _cc([compiler, *flags, "-Igen", "-Wa,-Igen", "-c", f"gen/digits_int8{ext}", "-o", "model.o"], tmp_path)
    _cc(["gcc", *C_FLAGS, "-Igen", "main.c", "model.o", "-o", "dump"], tmp_path)
    proc = subprocess.run([str(tmp_path / "dump")], capture_output=True)
    assert proc.returncode == 0
    assert proc.stdout == digits_int8.data


@needs_host_cc
def test_incbin_refuses_a_stale_blob(digits_int8: Model, tmp_path: Path) -> None:
    write_model_sources(digits_int8, tmp_path, fmt="incbin")
    (tmp_path / "digits_int8.tflite").write_bytes(digits_int8.data[:-16])
    proc = subprocess.run(["gcc", "-c", "digits_int8.c", "-o", "m.o"], cwd=tmp_path, capture_output=True)
    assert proc.returncode != 0
    assert b"does not hold the" in proc.stderr


# -- cross builds for every board ---------------------------------------------------------
_META_CHECK = """#include <stdint.h>
#include "mcd_model_meta.h"
#include "model_arr.h"
#include "model_inc.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef char input_bytes_ok[(MCD_INPUT_BYTES % sizeof(MCD_INPUT_CTYPE) == 0) ? 1 : -1];
typedef char same_model[(MODEL_ARR_LEN == MCD_MODEL_BYTES && MODEL_INC_LEN == MCD_MODEL_BYTES) ? 1 : -1];
static const int input_shape[MCD_INPUT_RANK] = MCD_INPUT_SHAPE;
static const int output_shape[MCD_OUTPUT_RANK] = MCD_OUTPUT_SHAPE;
static MCD_INPUT_CTYPE input[MCD_INPUT_BYTES / sizeof(MCD_INPUT_CTYPE)];
#define COUNT_OP(op) + 1
float check_meta(void);
float check_meta(void) {
    return MCD_INPUT_SCALE + (float)MCD_OUTPUT_ZERO_POINT + (float)(0 MCD_OP_LIST(COUNT_OP))
        + (float)input_shape[0] + (float)output_shape[0] + (float)input[0] + (float)MCD_ARENA_BYTES
        + (float)(MCD_MODEL_SHA256[0] + MCD_MODEL_NAME[0] + MCD_OPS[0])
        + (float)(model_arr[0] + model_inc[0] + model_arr_len + model_inc_len);
}
#ifdef __cplusplus
}
#endif
"""


@pytest.fixture(scope="module")
def cross_sources(digits_int8: Model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated tree per language: model_arr (c-array), model_inc (incbin), mcd_model_meta.h."""
    out = {}
    for lang in ("c", "cpp"):
        d = tmp_path_factory.mktemp(f"cross_{lang}")
        write_model_sources(digits_int8, d, name="model_arr", lang=lang, section=".model_data", meta=True)
        write_model_sources(digits_int8, d, name="model_inc", fmt="incbin", lang=lang, align=32)
        (d / ("check.c" if lang == "c" else "check.cc")).write_text(_META_CHECK)
        out[lang] = d
    return out


@needs_arm_cc
@pytest.mark.parametrize("lang", ["c", "cpp"])
@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_sources_cross_compile_for_every_board(
    board: Board, lang: str, cross_sources: dict[str, Path], digits_int8: Model, tmp_path: Path
) -> None:
    src = cross_sources[lang]
    ext = ".c" if lang == "c" else ".cc"
    compiler, std = ("arm-none-eabi-gcc", C_FLAGS) if lang == "c" else ("arm-none-eabi-g++", CXX_FLAGS)
    objs = []
    for stem in ("model_arr", "model_inc", "check"):
        obj = tmp_path / f"{stem}.o"
        cmd = [compiler, *board.gcc_flags, *std, "-O2", "-fdata-sections", f"-I{src}", f"-Wa,-I{src}", "-c"]
        _cc([*cmd, str(src / f"{stem}{ext}"), "-o", str(obj)], tmp_path)
        objs.append(obj)
    # the bytes in each object's section are the model, byte for byte
    for obj, section in ((objs[0], ".model_data"), (objs[1], ".rodata.model_inc")):
        blob = tmp_path / f"{obj.stem}.bin"
        _cc(
            ["arm-none-eabi-objcopy", "-O", "binary", f"--only-section={section}", str(obj), str(blob)],
            tmp_path,
        )
        assert blob.read_bytes() == digits_int8.data
    headers = _cc(["arm-none-eabi-objdump", "-h", str(objs[0]), str(objs[1])], tmp_path).stdout.decode()
    aligns = dict(re.findall(r"^\s*\d+\s+(\.model_data|\.rodata\.model_inc)\s.*?2\*\*(\d+)", headers, re.M))
    assert aligns == {".model_data": "4", ".rodata.model_inc": "5"}  # 16 (default) and 32 bytes


# -- hostile names ------------------------------------------------------------------------
def _hostile(text: str, nbytes: int) -> bytes:
    raw = text.encode("utf-8")
    assert len(raw) <= nbytes
    return raw + b"z" * (nbytes - len(raw))


@pytest.fixture(scope="module")
def hostile_model(digits_int8: Model) -> Model:
    """The digits model with its I/O tensor names overwritten in place (same byte length) by hostile text."""
    data = bytearray(digits_int8.data)
    for t, text in ((digits_int8.inputs[0], '"*/??/\n\\é'), (digits_int8.outputs[0], '/*??=\r"x\\\\🚀')):
        old = t.name.encode("utf-8")
        assert data.count(old) >= 1
        data = bytearray(bytes(data).replace(old, _hostile(text, len(old))))
    source = '9 "evil" */ ??/ \\\nmodèle 模型.tflite'
    model = parse_tflite(bytes(data), source=source)
    assert "\n" in model.inputs[0].name and "🚀" in model.outputs[0].name
    return model


@needs_host_cc
@pytest.mark.parametrize("lang", ["c", "cpp"])
@pytest.mark.parametrize("fmt", ["c-array", "incbin"])
def test_hostile_names_compile_with_nothing_injected(
    hostile_model: Model, fmt: str, lang: str, tmp_path: Path
) -> None:
    gen = tmp_path / "gen"
    paths = write_model_sources(hostile_model, gen, fmt=fmt, lang=lang, meta=True)
    for p in paths:
        if p.suffix != ".tflite":
            text = p.read_bytes()
            assert text.isascii() and b"??" not in text
    ident = check_options(hostile_model, None, fmt, 16, None, lang).name
    assert ident == "m_9_evil_modele"
    main = _dump_program(f"{ident}.h", ident).replace(
        "int main(void) {",
        '#include "mcd_model_meta.h"\nint main(void) {\n'
        "    fputs(MCD_INPUT0_NAME, stderr); fputc(0, stderr); fputs(MCD_OUTPUT0_NAME, stderr);"
        " fputc(0, stderr); fputs(MCD_MODEL_NAME, stderr);",
    )
    (tmp_path / "main.c").write_text(main)
    ext = ".c" if lang == "c" else ".cc"
    compiler, flags = ("gcc", C_FLAGS) if lang == "c" else ("g++", CXX_FLAGS)
    _cc([compiler, *flags, "-Igen", "-Wa,-Igen", "-c", f"gen/{ident}{ext}", "-o", "model.o"], tmp_path)
    _cc(["gcc", *C_FLAGS, "-Igen", "main.c", "model.o", "-o", "dump"], tmp_path)
    proc = subprocess.run([str(tmp_path / "dump")], capture_output=True)
    assert proc.returncode == 0
    assert proc.stdout == hostile_model.data
    names = [hostile_model.inputs[0].name, hostile_model.outputs[0].name, hostile_model.source]
    assert proc.stderr == b"\x00".join(n.encode("utf-8") for n in names)


def test_hostile_user_name_and_options(digits_int8: Model) -> None:
    assert check_options(digits_int8, 'my "model"*/', "c-array", 16, None, "c").name == "my_model"
    assert check_options(digits_int8, "class", "c-array", 16, None, "cpp").name == "class_"
    for bad in ({"align": 3}, {"align": 0}, {"align": 8192}, {"section": '.x"); evil("'}, {"fmt": "xxd"}):
        kwargs = {"name": None, "fmt": "c-array", "align": 16, "section": None, "lang": "c", **bad}
        with pytest.raises(InputError):
            check_options(digits_int8, **kwargs)
    with pytest.raises(InputError, match=r"would overwrite mcd_model_meta\.h"):
        check_options(digits_int8, "mcd_model_meta", "c-array", 16, None, "c")


# -- determinism and atomicity ------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["c-array", "incbin"])
def test_generation_is_deterministic(digits_int8: Model, fmt: str, tmp_path: Path) -> None:
    a = write_model_sources(digits_int8, tmp_path / "one", fmt=fmt, meta=True, arena_bytes=40000)
    b = write_model_sources(digits_int8, tmp_path / "two" / "deeper", fmt=fmt, meta=True, arena_bytes=40000)
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
        assert str(tmp_path).encode() not in pa.read_bytes()
    again = write_model_sources(digits_int8, tmp_path / "one", fmt=fmt, meta=True, arena_bytes=40000)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in b]


def test_failed_generation_leaves_the_folder_untouched(digits_int8: Model, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "digits_int8.c").write_text("old contents\n")
    (out / META_HEADER).mkdir()  # a folder in the way of one generated file
    before = sorted(os.listdir(out))
    with pytest.raises(InputError, match="a folder is in the way"):
        write_model_sources(digits_int8, out, meta=True, arena_bytes=1000)
    assert sorted(os.listdir(out)) == before
    assert (out / "digits_int8.c").read_text() == "old contents\n"
    # a bad option fails before anything is created
    with pytest.raises(InputError):
        write_model_sources(digits_int8, tmp_path / "new", section="bad section")
    assert not (tmp_path / "new").exists()


def test_failed_write_midway_removes_temp_files(digits_int8: Model, tmp_path: Path) -> None:
    """A real mid-commit failure: a file name the filesystem refuses (too long) comes last in the batch."""
    from mcudeploy.firmware.header import commit_files

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.h").write_text("/* Generated by mcudeploy: an earlier output */\n")
    with pytest.raises(InputError, match="cannot write"):
        commit_files(out, {"a.h": b"new\n", "b.c": b"x\n", "z" * 300: b"y\n"})
    assert sorted(os.listdir(out)) == ["a.h"]
    assert (out / "a.h").read_text() == "/* Generated by mcudeploy: an earlier output */\n"


# -- metadata -----------------------------------------------------------------------------
@needs_host_cc
def test_meta_header_values_match_the_model(digits_int8: Model, tmp_path: Path) -> None:
    (tmp_path / META_HEADER).write_text(render_meta_header(digits_int8))
    (tmp_path / "meta.c").write_text(
        """#include <stdio.h>
#include "mcd_model_meta.h"
#define SHOW(x) #x
int main(void) {
    static const int in_shape[] = MCD_INPUT_SHAPE, out_shape[] = MCD_OUTPUT_SHAPE;
    unsigned i;
    printf("%s %u %u", MCD_MODEL_SHA256, MCD_MODEL_BYTES, MCD_ARENA_BYTES);
    printf(" %u %u\\n", MCD_INPUT_BYTES, MCD_OUTPUT_BYTES);
    for (i = 0; i < MCD_INPUT_RANK; i++) printf("%d ", in_shape[i]);
    printf("| ");
    for (i = 0; i < MCD_OUTPUT_RANK; i++) printf("%d ", out_shape[i]);
    printf("\\n%.9g %d %.9g %d %s %s\\n", (double)MCD_INPUT_SCALE, MCD_INPUT_ZERO_POINT,
           (double)MCD_OUTPUT_SCALE, MCD_OUTPUT_ZERO_POINT, MCD_INPUT_DTYPE, MCD_OPS);
    printf("%d %d\\n", (int)sizeof(MCD_INPUT_CTYPE), MCD_HAS_ETHOSU);
    return 0;
}
"""
    )
    _cc(["gcc", *C_FLAGS, "meta.c", "-o", "meta"], tmp_path)
    lines = (
        subprocess.run([str(tmp_path / "meta")], capture_output=True, check=True).stdout.decode().splitlines()
    )
    m, i, o = digits_int8, digits_int8.inputs[0], digits_int8.outputs[0]
    assert lines[0].split() == [m.sha256, str(m.size), str(measure_arena(m)), str(i.nbytes), str(o.nbytes)]
    assert lines[1].split() == [*map(str, i.shape), "|", *map(str, o.shape)]
    assert i.quant is not None and o.quant is not None
    scale_in, zp_in, scale_out, zp_out, dtype, ops = lines[2].split()
    assert (
        float(scale_in) == pytest.approx(i.quant.scale[0], rel=1e-7) and int(zp_in) == i.quant.zero_point[0]
    )
    assert (
        float(scale_out) == pytest.approx(o.quant.scale[0], rel=1e-7) and int(zp_out) == o.quant.zero_point[0]
    )
    assert dtype == i.dtype and ops.split(",") == m.op_names()
    assert lines[3].split() == ["1", "0"]


@pytest.mark.slow
def test_vela_model_needs_arena_bytes(digits_int8_path: Path, tmp_path: Path) -> None:
    """A Vela model (ethos-u custom op) cannot be measured on the host: the user must give the arena."""
    vela = Path(sys.executable).with_name("vela")
    if not vela.exists():
        pytest.skip("needs ethos-u-vela: pip install ethos-u-vela")
    subprocess.run(
        [
            str(vela),
            "--accelerator-config",
            "ethos-u55-128",
            "--output-dir",
            str(tmp_path),
            str(digits_int8_path),
        ],
        check=True,
        capture_output=True,
    )
    model = read_tflite(tmp_path / f"{digits_int8_path.stem}_vela.tflite")
    with pytest.raises(UnsupportedError, match="--arena-bytes"):
        write_model_sources(model, tmp_path / "gen", meta=True)
    assert not (tmp_path / "gen").exists() or not os.listdir(tmp_path / "gen")
    paths = write_model_sources(model, tmp_path / "gen", meta=True, arena_bytes=123456)
    meta = (tmp_path / "gen" / META_HEADER).read_text()
    assert "#define MCD_HAS_ETHOSU 1" in meta and "#define MCD_ARENA_BYTES 123456u" in meta
    assert "#define MCD_ARENA_MEASURED 0" in meta and "X(ETHOS_U)" in meta
    assert len(paths) == 3


# -- CLI ----------------------------------------------------------------------------------
def test_cli_header(digits_int8_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gen"
    code = run(
        "header", digits_int8_path, "-o", out, "--format", "incbin", "--lang", "cpp", "--arena-bytes", "9000"
    )
    assert code == 0
    assert sorted(os.listdir(out)) == ["digits_int8.cc", "digits_int8.h", "digits_int8.tflite", META_HEADER]
    assert (out / "digits_int8.tflite").read_bytes() == digits_int8_path.read_bytes()
    assert "digits_int8.cc" in capsys.readouterr().out
    assert run("header", digits_int8_path, "-o", out, "--align", "24") == 2
    assert "power of two" in capsys.readouterr().err
    assert run("header", tmp_path / "missing.tflite", "-o", out) == 2
    assert run("header", digits_int8_path, "-o", tmp_path / "n", "--name", "ok_name", "--no-meta") == 0
    assert sorted(os.listdir(tmp_path / "n")) == ["ok_name.c", "ok_name.h"]
