"""Fuzzing the .tflite validator: ≥ 200 deterministic mutations of the real digits model.

Every mutated file must either raise ModelFormatError naming the file, or parse to a model that
still passes validation — never crash, hang or raise anything else. Mutants that parse are then
run through the host TFLM interpreter in a child process, so a crash there is caught and reported
(validated must mean safe for TFLM) instead of killing pytest.
"""

from __future__ import annotations

import json
import math
import random
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tflite
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.errors import ModelFormatError
from mcudeploy.ml.model import Model, parse_tflite
from tests.hyp import SCALE, examples

SEED = 20261122
CASE_SECONDS = 5.0  # per-case parse deadline: a hang is a failure, not a stuck CI job
SOURCE = "mutant.tflite"


# -- where the real fields are ----------------------------------------------------------------
class Field:
    """One scalar field or vector-length word of the flatbuffer: its label, absolute position, format."""

    def __init__(self, label: str, pos: int, fmt: str) -> None:
        self.label, self.pos, self.fmt = label, pos, fmt

    def __repr__(self) -> str:
        return f"{self.label}@{self.pos}"


def _scalar(tab: Any, slot: int, fmt: str, label: str) -> Field | None:
    o = tab.Offset(slot)
    return Field(label, tab.Pos + o, fmt) if o else None


def _vector_len(tab: Any, slot: int, label: str) -> Field | None:
    o = tab.Offset(slot)
    return Field(f"{label}.len", tab.Vector(o) - 4, "<I") if o else None


def _vector_elems(tab: Any, slot: int, fmt: str, label: str) -> list[Field]:
    o = tab.Offset(slot)
    if not o:
        return []
    start, n = tab.Vector(o), tab.VectorLen(o)
    size = struct.calcsize(fmt)
    # the first and last element stand for the rest (keeps the case count, and the run time, modest)
    return [Field(f"{label}[{j}]", start + j * size, fmt) for j in sorted({0, n - 1}) if n]


def locate_fields(data: bytes) -> list[Field]:
    """Every scalar field, vector length and index element of the model, found via the tflite reader."""
    m = tflite.Model.GetRootAs(data, 0)
    out: list[Field | None] = [
        _scalar(m._tab, 4, "<I", "model.version"),
        _vector_len(m._tab, 6, "model.operator_codes"),
        _vector_len(m._tab, 8, "model.subgraphs"),
        _vector_len(m._tab, 12, "model.buffers"),
    ]
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)._tab
        out += [
            _scalar(oc, 4, "<b", f"opcode{i}.deprecated_builtin_code"),
            _scalar(oc, 8, "<i", f"opcode{i}.version"),
            _scalar(oc, 10, "<i", f"opcode{i}.builtin_code"),
        ]
    for i in range(m.BuffersLength()):
        out.append(_vector_len(m.Buffers(i)._tab, 4, f"buffer{i}.data"))
    sg = m.Subgraphs(0)
    out += [
        _vector_len(sg._tab, 4, "sg.tensors"),
        _vector_len(sg._tab, 10, "sg.operators"),
        *_vector_elems(sg._tab, 6, "<i", "sg.inputs"),
        *_vector_elems(sg._tab, 8, "<i", "sg.outputs"),
    ]
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        out += [
            _scalar(t._tab, 6, "<b", f"tensor{i}.type"),
            _scalar(t._tab, 8, "<I", f"tensor{i}.buffer"),
            _vector_len(t._tab, 4, f"tensor{i}.shape"),
            *_vector_elems(t._tab, 4, "<i", f"tensor{i}.shape"),
        ]
        q = t.Quantization()
        if q is not None:
            out += _vector_elems(q._tab, 8, "<f", f"tensor{i}.scale")
            out += _vector_elems(q._tab, 10, "<q", f"tensor{i}.zero_point")
            out.append(_scalar(q._tab, 16, "<i", f"tensor{i}.quantized_dimension"))
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        out += [
            _scalar(op._tab, 4, "<I", f"op{i}.opcode_index"),
            _vector_len(op._tab, 6, f"op{i}.inputs"),
            *_vector_elems(op._tab, 6, "<i", f"op{i}.inputs"),
            *_vector_elems(op._tab, 8, "<i", f"op{i}.outputs"),
            _scalar(op._tab, 10, "<B", f"op{i}.builtin_options_type"),
        ]
        opts = op.BuiltinOptions()
        if opts is not None:  # every scalar slot of the options table (strides, filter sizes ...)
            vt = opts.Pos - struct.unpack_from("<i", data, opts.Pos)[0]
            vt_len = struct.unpack_from("<H", data, vt)[0]
            for slot in range(4, vt_len, 2):
                o = struct.unpack_from("<H", data, vt + slot)[0]
                if o:
                    out.append(Field(f"op{i}.options[{slot}]", opts.Pos + o, "<b"))
    return [f for f in out if f is not None]


# -- mutations ----------------------------------------------------------------------------
Mutant = tuple[str, bytes]


def _put(data: bytes, pos: int, fmt: str, value: Any) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def _values_for(f: Field) -> list[Any]:
    """Field values that are out of range, at the edge, or absurd for that field's format."""
    if f.fmt == "<f":
        return [0.0, -1.0, math.inf, math.nan, 1e38]
    if f.fmt == "<q":
        return [-(2**40), 2**40, 128]
    if f.fmt in ("<b", "<B"):
        return [0, 127, -1] if f.fmt == "<b" else [0, 255]
    if f.fmt == "<I":
        return [0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]
    return [-2, -1, 0, 2**31 - 1, 10_000]


def generate_mutants(data: bytes) -> Iterator[Mutant]:
    """Distinct mutants, each different from the original (edits that change nothing are dropped)."""
    seen = {data}
    for label, mutant in _all_mutants(data):
        if mutant not in seen:
            seen.add(mutant)
            yield label, mutant


def _all_mutants(data: bytes) -> Iterator[Mutant]:
    rng = random.Random(SEED)
    size = len(data)
    fields = locate_fields(data)

    # wrong identifier, version and root offset
    yield "identifier TFL2", data[:4] + b"TFL2" + data[8:]
    yield "identifier zeroed", data[:4] + b"\0\0\0\0" + data[8:]
    for v in (0, 2, 4, 0xFFFFFFFF):
        yield f"version {v}", _put(data, next(f for f in fields if f.label == "model.version").pos, "<I", v)
    for root in (0, 8, size - 4, size, 0x7FFFFFFF, 0xFFFFFFFF):
        yield f"root offset {root}", _put(data, 0, "<I", root)

    # truncations: the first bytes, evenly spaced cuts, and one byte short
    for n in (0, 1, 4, 7, 8, 12, 16, 32, 64, size - 1, size - 4):
        yield f"truncate to {n}", data[:n]
    for k in range(1, 25):
        n = size * k // 25
        yield f"truncate to {n}", data[:n]

    # out-of-range / absurd values written into real fields (indices, lengths, types, shapes, scales)
    for f in fields:
        for v in _values_for(f):
            yield f"{f.label}={v}", _put(data, f.pos, f.fmt, v)

    # bit flips anywhere
    for _ in range(60):
        pos, bit = rng.randrange(size), rng.randrange(8)
        b = bytearray(data)
        b[pos] ^= 1 << bit
        yield f"flip bit {bit} at {pos}", bytes(b)

    # byte runs at offsets into tables and vectors
    for _ in range(40):
        f = rng.choice(fields)
        fill = rng.choice([b"\xff", b"\x00", b"\x7f", b"\x80"])
        n = rng.choice([4, 8, 16])
        b = bytearray(data)
        end = min(size, f.pos + n)
        b[f.pos : end] = fill * (end - f.pos)
        yield f"run {fill.hex()}x{n} at {f.label}", bytes(b)

    # appended garbage and a doubled file (still well-formed at the front)
    yield "appended junk", data + bytes(rng.randrange(256) for _ in range(64))
    yield "file twice", data + data


# -- the test -----------------------------------------------------------------------------
@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"parse took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _outcome(data: bytes) -> tuple[str, Model | str]:
    """("rejected", message) or ("parsed", model); anything else propagates and fails the test."""
    with deadline(CASE_SECONDS):
        try:
            return "parsed", parse_tflite(data, SOURCE)
        except ModelFormatError as e:
            return "rejected", str(e)


# The child imports mcudeploy and TFLM once, then forks per case: a case that crashes (or corrupts
# the heap) cannot take later cases with it, and SIGALRM's default action ends a case that hangs in C++.
TFLM_WORKER = r"""
import os, signal, sys
import numpy as np
from mcudeploy.ml.model import parse_tflite
from mcudeploy.ml.tflm_host import HostTFLM
seconds = int(sys.argv[1])
for line in sys.stdin:
    path = line.rstrip("\n")
    pid = os.fork()
    if pid == 0:
        signal.alarm(seconds)
        try:
            model = parse_tflite(open(path, "rb").read(), os.path.basename(path))
            HostTFLM(model, arena_size=1 << 20).run(*(np.zeros(t.shape, t.dtype) for t in model.inputs))
            code = 0
        except Exception:
            code = 3
        sys.stdout.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 3):
        print("ok" if os.WEXITSTATUS(status) == 0 else "error", flush=True)
    elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        print("crash: hang", flush=True)
    else:
        print("crash: wait status", status, flush=True)
"""


def run_in_tflm(paths: list[Path]) -> dict[Path, str]:
    """Validate and run each model once in HostTFLM ('ok', 'error' or 'crash: ...'), isolated per case."""
    proc = subprocess.run(
        [sys.executable, "-c", TFLM_WORKER, str(int(CASE_SECONDS))],
        input="".join(f"{p}\n" for p in paths),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == len(paths), f"TFLM worker died: {proc.stderr[-2000:]}"
    return dict(zip(paths, lines, strict=True))


@pytest.fixture(scope="module")
def outcomes(digits_int8: Model) -> list[tuple[str, bytes, str, Model | str]]:
    return [(label, m, *_outcome(m)) for label, m in generate_mutants(digits_int8.data)]


def test_mutants_are_deterministic_and_many(digits_int8: Model) -> None:
    a = list(generate_mutants(digits_int8.data))
    assert a == list(generate_mutants(digits_int8.data))
    assert len(a) >= 200
    assert len({m for _, m in a}) == len(a) and digits_int8.data not in {m for _, m in a}


def test_every_mutant_is_rejected_cleanly_or_valid(outcomes: list[Any]) -> None:
    rejected = [(label, msg) for label, _, kind, msg in outcomes if kind == "rejected"]
    parsed = [(label, m) for label, _, kind, m in outcomes if kind == "parsed"]
    assert len(rejected) + len(parsed) == len(outcomes)
    assert len(rejected) >= 150, "most mutations must be caught"
    for label, msg in rejected:
        assert SOURCE in msg, f"{label}: message does not name the file: {msg}"
        assert "Traceback" not in msg
    for label, model in parsed:  # a mutant that parses is a model that re-validates to the same view
        again = parse_tflite(model.data, SOURCE)
        assert again.to_dict() == model.to_dict(), label


def test_parsed_mutants_are_safe_in_tflm(outcomes: list[Any], tmp_path: Path) -> None:
    cases: dict[Path, str] = {}
    for n, (label, data, kind, _) in enumerate(outcomes):
        if kind == "parsed":
            p = tmp_path / f"{n:04d}.tflite"
            p.write_bytes(data)
            cases[p] = label
    assert cases, "some harmless mutations (e.g. appended bytes) must parse"
    results = run_in_tflm(sorted(cases))
    crashes = {cases[p]: r for p, r in results.items() if r.startswith("crash")}
    assert not crashes, json.dumps(crashes, indent=1)
    assert sum(r == "ok" for r in results.values()) > len(results) // 2, "most valid mutants must run"


def test_specific_corruptions_are_named(digits_int8: Model) -> None:
    data = digits_int8.data
    fields = {f.label: f for f in locate_fields(data)}
    cases = {
        "tensor3.buffer": (999, "buffer 999"),
        next(k for k in fields if k.endswith(".opcode_index")): (77, "opcode 77"),
        "op0.inputs[0]": (500, "tensor 500"),
        "model.version": (7, "schema version 7"),
        "buffer4.data.len": (0x7FFFFFFF, "buffer 4"),
    }
    for label, (value, needle) in cases.items():
        f = fields[label]
        with pytest.raises(ModelFormatError) as e:
            parse_tflite(_put(data, f.pos, f.fmt, value), SOURCE)
        assert SOURCE in str(e.value) and needle in str(e.value), (label, str(e.value))


@examples(150)
@given(
    st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4),
    st.integers(0, 1 << 20),
)
def test_random_splices_never_escape(digits_int8: Model, edits: list[tuple[int, bytes]], cut: int) -> None:
    """Random byte overwrites plus a random truncation: a clean rejection or a valid model, nothing else."""
    b = bytearray(digits_int8.data)
    for pos, chunk in edits:
        p = pos % len(b)
        b[p : p + len(chunk)] = chunk
    data = bytes(b[: max(8, len(b) - cut % 64)]) if cut % 3 == 0 else bytes(b)
    kind, result = _outcome(data)
    if kind == "rejected":
        assert SOURCE in str(result)
    else:
        assert isinstance(result, Model) and result.inputs and result.outputs


# -- what TFLM's own reader cannot unpack ---------------------------------------------------
def _small_fc_model() -> bytes:
    """A 700-byte FULLY_CONNECTED model: small enough to overwrite every byte of it."""
    from mcudeploy.ml.tflite_builder import GraphBuilder

    g = GraphBuilder()
    x = g.tensor((1, 4), "int8", 0.1, 0)
    w = g.const(np.arange(12).reshape(3, 4) - 6, "int8", scale=0.1, zero_point=0)
    b = g.const(np.arange(3), "int32", scale=0.01, zero_point=0)
    y = g.tensor((1, 3), "int8", 0.1, 0)
    g.op("FULLY_CONNECTED", [x, w, b], [y])
    return g.to_bytes([x], [y])


@pytest.mark.hypothesis  # make fuzz runs every overwrite through TFLM
def test_every_byte_overwrite_is_rejected_or_unpacks_in_tflm(tmp_path: Path) -> None:
    """Each byte of a model set to 0xFF and to 0x80: a ModelFormatError naming the file, or a model
    that TFLite Micro's Python interpreter reads (its object-API unpacking) and runs without crashing."""
    from tflite_micro.python.tflite_micro.runtime import count_resource_variables

    data = _small_fc_model()
    parsed: list[Path] = []
    unpack_rejections = 0
    for pos in range(len(data)):
        for value in (0xFF, 0x80):
            m = bytearray(data)
            m[pos] = value
            try:
                parse_tflite(bytes(m), SOURCE)
            except ModelFormatError as e:
                assert SOURCE in str(e), (pos, value, str(e))
                unpack_rejections += "cannot unpack" in str(e)
                continue
            count_resource_variables(bytes(m))  # what Interpreter.from_bytes runs first: must not raise
            p = tmp_path / f"{pos:04d}_{value:02x}.tflite"
            p.write_bytes(bytes(m))
            parsed.append(p)
    assert unpack_rejections, "some overwrites only TFLM's reader catches (metadata, option tables ...)"
    # every 10th runs in TFLM in make test (time budget), all of them in make fuzz
    sample = parsed if SCALE > 1 else parsed[::10]
    crashes = {p.name: r for p, r in run_in_tflm(sample).items() if r.startswith("crash")}
    assert not crashes, crashes


# -- every command that reads a model, on mutants -------------------------------------------
MODEL_COMMANDS: dict[str, Any] = {
    "inspect": lambda m, d, o: ["inspect", m, "--json", o / "i.json"],
    "header": lambda m, d, o: ["header", m, "-o", o / "h"],
    "generate-c": lambda m, d, o: [
        "generate",
        m,
        "-b",
        "qemu-an547",
        "-r",
        "c",
        "-o",
        o / "gc",
        "--vectors",
        "2",
    ],
    "generate-tflm": lambda m, d, o: ["generate", m, "-b", "qemu-an547", "-o", o / "gt", "--vectors", "2"],
    "compile": lambda m, d, o: ["compile", m, "-b", "corstone-300", "-o", o / "v"],
    "evaluate": lambda m, d, o: ["evaluate", m, "-d", d, "-n", "10", "--no-default-kernels"],
    "quantize": lambda m, d, o: ["quantize", m, "-d", d, "-o", o / "q.tflite"],
}


@examples(10)
@given(
    st.sampled_from(sorted(MODEL_COMMANDS)),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=4)), min_size=1, max_size=3),
)
def test_commands_on_mutants_end_in_an_exit_code(
    digits_int8: Model,
    digits_test_npz: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capfd: pytest.CaptureFixture[str],
    command: str,
    edits: list[tuple[int, bytes]],
) -> None:
    """Each command that reads a .tflite, on a mutated model: exit 0 or an mcudeploy exit code
    (the CLI turns MCUDeployError into one; anything else escapes run() and fails here)."""
    from mcudeploy.cli import run

    b = bytearray(digits_int8.data)
    for pos, chunk in edits:
        p = pos % len(b)
        b[p : p + len(chunk)] = chunk
    out = tmp_path_factory.mktemp("cmd")
    model = out / "mutant.tflite"
    model.write_bytes(bytes(b))
    code = run(*MODEL_COMMANDS[command](model, digits_test_npz, out))
    text = "".join(capfd.readouterr())
    assert code in (0, 1, 2, 3, 4), (command, code, text[-2000:])
    assert "Traceback" not in text
    if code == 2:
        assert "mutant.tflite" in text, text[-2000:]
