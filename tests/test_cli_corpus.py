"""Adversarial CLI corpus: bad input of every kind, for every command and option that takes it.

Each case is one mistake a user can make (a path of the wrong kind, a data file that is not what
the option wants, a number out of range or not finite, an unknown board ...) put into an otherwise
valid command line. Run in-process (TensorFlow loads once), each must end in exit code 2 with a
message naming the culprit (the file, the option or the value) and no traceback, and must not
leave the output it was asked for behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mcudeploy.cli import run


@dataclass(frozen=True)
class Bad:
    """One bad value: ``make(folder)`` creates it and returns the argument text."""

    kind: str
    make: Callable[[Path], str]
    culprit: str  # text the message must contain ("{arg}" = the argument itself, "{name}" = its basename)


def _file(name: str, data: bytes) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        (d / name).write_bytes(data)
        return str(d / name)

    return make


def _folder(name: str) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        (d / name).mkdir()
        return str(d / name)

    return make


def _npz(name: str, **arrays: object) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        with open(d / name, "wb") as f:  # a file object: savez would append .npz to a path
            np.savez(f, **arrays)  # type: ignore[arg-type]
        return str(d / name)

    return make


def _under_a_file(name: str) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        (d / "plain_file").write_text("x")
        return str(d / "plain_file" / name)

    return make


X = np.random.default_rng(0).random((6, 8, 8, 1), dtype=np.float32)
Y = np.arange(6) % 10
NAN_X = X.copy()
NAN_X[2, 3, 3, 0] = np.nan
INF_X = X.copy()
INF_X[1, 0, 0, 0] = -np.inf

# -- the kinds of bad value, by what the option expects --------------------------------------
MISSING = Bad("missing", lambda d: str(d / "no_such_thing.bin"), "no_such_thing.bin")
FOLDER = Bad("a folder", _folder("a_folder.tflite"), "a_folder.tflite")
EMPTY = Bad("empty file", _file("empty_file.tflite", b""), "empty_file.tflite")
TEXT = Bad("a text file", _file("notes.txt", b"hello, not a model\n" * 4), "notes.txt")
NPZ_AS_MODEL = Bad("an .npz", _npz("data_not_model.npz", x=X), "data_not_model.npz")

MODEL_IN = [MISSING, FOLDER, EMPTY, TEXT, NPZ_AS_MODEL]
KERAS_IN = [
    MISSING,
    FOLDER,
    EMPTY,
    TEXT,
    Bad("a zip that is not a Keras model", _npz("arrays.keras", x=X), "arrays.keras"),
    Bad("garbage .h5", _file("garbage.h5", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 2), "garbage.h5"),
]

DATA_COMMON = [
    MISSING,
    Bad("a folder named .npz", _folder("folder.npz"), "folder.npz"),
    Bad("empty .npz", _file("empty.npz", b""), "empty.npz"),
    Bad("garbage .npz", _file("garbage.npz", bytes(range(256)) * 3), "garbage.npz"),
    Bad("truncated .npz", lambda d: _truncated(d), "truncated.npz"),
    Bad("0-d arrays", _npz("scalar.npz", x=np.array(1.5), y=np.array(1)), "scalar.npz"),
    Bad("strings", _npz("strings.npz", x=np.array([["a", "b"]] * 6), y=Y), "strings.npz"),
    Bad("object dtype", _npz("objects.npz", x=np.array([X[0], "a"], dtype=object), y=Y[:2]), "objects.npz"),
    Bad("complex", _npz("complex.npz", x=X.astype(np.complex64), y=Y), "complex.npz"),
    Bad("wrong shape", _npz("shape.npz", x=np.zeros((6, 5, 5, 1), np.float32), y=Y), "shape.npz"),
    Bad("NaN", _npz("nan.npz", x=NAN_X, y=Y), "nan.npz"),
    Bad("inf", _npz("inf.npz", x=INF_X, y=Y), "inf.npz"),
    Bad("0 samples", _npz("zero.npz", x=X[:0], y=Y[:0]), "zero.npz"),
]
DATA_LABELLED = [
    *DATA_COMMON,
    Bad("labels out of range", _npz("label_big.npz", x=X, y=Y + 10), "label_big.npz"),
    Bad("negative labels", _npz("label_neg.npz", x=X, y=Y - 3), "label_neg.npz"),
    Bad("float labels", _npz("label_float.npz", x=X, y=Y + 0.5), "label_float.npz"),
    Bad("soft one-hot labels", _npz("label_soft.npz", x=X, y=np.full((6, 10), 0.1)), "label_soft.npz"),
    Bad("no y", _npz("no_y.npz", x=X), "no_y.npz"),
    Bad("no x", _npz("no_x.npz", inputs_=X, y=Y), "no_x.npz"),
    Bad("x and y lengths differ", _npz("lengths.npz", x=X, y=Y[:2]), "lengths.npz"),
]
OUT_FILE = [
    Bad("under a file", _under_a_file("out.json"), "plain_file"),
    Bad("an existing folder", _folder("existing_folder"), "existing_folder"),
]
OUT_DIR = [Bad("under a file", _under_a_file("out_dir"), "plain_file")]
BOARD = [
    Bad("unknown name", lambda d: "no-such-board", "no-such-board"),
    Bad("missing .toml", lambda d: str(d / "missing_board.toml"), "missing_board.toml"),
    Bad("not TOML", _file("broken_board.toml", b"name = [unclosed\n"), "broken_board.toml"),
]


CONFIG = [
    Bad("NaN gate", _file("nan_gate.toml", b"[evaluate]\ngates = { max_drop_pp = nan }\n"), "max_drop_pp"),
    Bad(
        "negative gate", _file("neg_gate.toml", b"[evaluate]\ngates = { max_drop_pp = -1 }\n"), "max_drop_pp"
    ),
    Bad(
        "inf budget", _file("inf.toml", b"[run]\ngates = { latency_budget_ms = inf }\n"), "latency_budget_ms"
    ),
    Bad("negative timeout", _file("timeout.toml", b"[run]\ntimeout = -1\n"), "run.timeout"),
    Bad("zero epochs", _file("epochs.toml", b"[model]\nepochs = 0\n"), "model.epochs"),
    Bad("text samples", _file("samples.toml", b'[quantize]\nsamples = "abc"\n'), "quantize.samples"),
    Bad("unknown key", _file("key.toml", b"[run]\nspeed = 3\n"), "run.speed"),
]


def _truncated(d: Path) -> str:
    np.savez(d / "full.npz", x=X, y=Y)
    data = (d / "full.npz").read_bytes()
    (d / "truncated.npz").write_bytes(data[: len(data) // 2])
    return str(d / "truncated.npz")


def numbers(option: str, *values: str) -> list[Bad]:
    return [Bad(f"{option} {v}", lambda d, v=v: v, option) for v in values]


NOT_FINITE = ("nan", "inf", "-inf")

# -- where each kind goes: (command line with {} for the bad value, the kinds) ----------------
# M: a valid int8 .tflite, K: a valid .keras, D: a valid labelled .npz, O: a fresh output folder.
SLOTS: list[tuple[str, list[Bad]]] = [
    ("inspect {}", MODEL_IN),
    ("inspect M --json {}", OUT_FILE),
    ("header {} -o O/h", MODEL_IN),
    ("header M -o {}", OUT_DIR),
    (
        "header M -o O/h {}",
        [*numbers("--align", "-1", "0", "3", "8192"), *numbers("--arena-bytes", "0", "-5")],
    ),
    ("generate {} -b qemu-an547 -r c -o O/g", MODEL_IN),
    ("generate M -b {} -r c -o O/g", BOARD),
    ("generate M -b qemu-an547 -r c -o {}", OUT_DIR),
    ("generate M -b qemu-an547 -r c -o O/g --inputs {}", DATA_COMMON),
    ("generate M -b qemu-an547 -r c -o O/g --reference {}", MODEL_IN),
    (
        "generate M -b qemu-an547 -r c -o O/g {}",
        [*numbers("--vectors", "0", "-1"), *numbers("--runtime", "bogus")],
    ),
    ("compile {} -b corstone-300 -o O/v", MODEL_IN),
    ("compile M -b {} -o O/v", BOARD),
    ("compile M -b corstone-300 -o {}", OUT_DIR),
    ("compile M -b corstone-300 -o O/v --json {}", OUT_FILE),
    ("compile M -b corstone-300 -o O/v --config-ini {}", [MISSING, FOLDER, TEXT]),
    ("compile M -b corstone-300 -o O/v {}", numbers("--sram-budget", "-1", "abc", "nan")),
    ("evaluate {} -d D", MODEL_IN),
    ("evaluate M -d {}", DATA_LABELLED),
    ("evaluate M -d D -f {}", KERAS_IN),
    ("evaluate M -d D -n 2 --json {}", OUT_FILE),
    (
        "evaluate M -d D {}",
        [
            *numbers("--max-drop", *NOT_FINITE, "-1", "101"),
            *numbers("--min-accuracy", *NOT_FINITE, "-1", "1e12"),
            *numbers("--min-agreement", "nan", "200"),
            *numbers("--max-lsb", "-1"),
            *numbers("--limit", "0"),
        ],
    ),
    ("quantize {} -d D -o O/q.tflite", [*KERAS_IN, Bad("a .tflite", lambda d: "M", "already a .tflite")]),
    ("quantize K -d {} -o O/q.tflite", DATA_COMMON),
    ("quantize K -d D -o {}", OUT_FILE),
    ("quantize K -d D -o O/q.tflite --json {}", OUT_FILE),
    (
        "quantize K -d D -o O/q.tflite {}",
        [*numbers("--samples", "0", "-3"), *numbers("--image-range", "abc", "1,0")],
    ),
    ("optimize {} -d D -r prune", KERAS_IN),
    ("optimize K -d {} -r prune", DATA_LABELLED),
    ("optimize K -d D --val {} -r prune", DATA_LABELLED),
    ("optimize K -d D -r prune -o {}", OUT_FILE),
    (
        "optimize K -d D -r prune {}",
        [
            *numbers("--sparsity", "0", "1", *NOT_FINITE),
            *numbers("--lr", "0", "-1", *NOT_FINITE),
            *numbers("--epochs", "0"),
            *numbers("--clusters", "1"),
            *numbers("--structured", "5:2", "x"),
            *numbers("--recipe", "bogus"),
        ],
    ),
    ("advise {} -d D --recipes ptq", KERAS_IN),
    ("advise K -d {} --recipes ptq", DATA_LABELLED),
    ("advise K -d D --recipes ptq --csv {}", OUT_FILE),
    ("advise K -d D {}", [*numbers("--recipes", "bogus"), *numbers("--vela", "bogus")]),
    ("run --board qemu-an547 --firmware F --model {} --data D", MODEL_IN),
    ("run --board {} --firmware F --model M --data D", BOARD),
    ("run --board qemu-an547 --firmware {} --model M --data D", [MISSING, FOLDER]),
    ("run --board qemu-an547 --project {} --data D", [MISSING, TEXT]),
    ("run --board qemu-an547 --firmware F --model M --data {}", DATA_LABELLED),
    ("run --board qemu-an547 --firmware F --model M --data D --out {}", OUT_DIR),
    (
        "run --board qemu-an547 --firmware F --model M --data D {}",
        [
            *numbers("--timeout", "0", "-1", *NOT_FINITE),
            *numbers("--run-timeout", "0", "-5", *NOT_FINITE),
            *numbers("--latency-budget-ms", "-1", "nan"),
            *numbers("--baud", "0", "-9600"),
            *numbers("--retries", "-1"),
        ],
    ),
    ("build {}", [MISSING, TEXT, Bad("an empty folder", _folder("empty_project"), "empty_project")]),
    ("deploy -c {}", [MISSING, FOLDER, TEXT]),
    ("deploy -o O/d -c {}", CONFIG),
    ("deploy --model {} --data D -o O/d --runtime c", MODEL_IN),
    ("deploy --model M --data D -o O/d {}", [*numbers("--runtime", "bogus"), *numbers("--set", "bogus")]),
    ("deploy --model M --data D -o O/d --runtime c --board {}", BOARD[:1]),
    ("boards {}", BOARD),
    (
        "proxy {} --duration 0.1",
        [Bad(t, lambda d, t=t: t, t) for t in ("127.0.0.1:99999", "127.0.0.1:0", "nohost", "a:b")],
    ),
    (
        "proxy 127.0.0.1:9 {}",
        [
            *numbers("--delay-ms", "-50", *NOT_FINITE),
            *numbers("--duration", "0", "-1", *NOT_FINITE),
            *numbers("--drop", "2", "nan"),
            *numbers("--listen", "70000"),
        ],
    ),
    ("demo -o {}", OUT_DIR),
    ("demo -o O/demo {}", [*numbers("--epochs", "0"), *numbers("--samples", "0")]),
]

CASES = [
    pytest.param(
        slot,
        bad,
        id=f"{slot.split()[0]}|{slot.split('{}')[0].split()[-1] if '{}' in slot else ''}|{bad.kind}",
    )
    for slot, kinds in SLOTS
    for bad in kinds
]


@pytest.fixture(scope="module")
def valid(
    digits_int8_path: Path, digits_keras_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    d = tmp_path_factory.mktemp("valid")
    np.savez(d / "data.npz", x=X, y=Y)
    (d / "firmware.elf").write_bytes(b"\x7fELF" + bytes(60))
    return {
        "M": str(digits_int8_path),
        "K": str(digits_keras_path),
        "D": str(d / "data.npz"),
        "F": str(d / "firmware.elf"),
    }


@pytest.mark.parametrize(("slot", "bad"), CASES)
def test_bad_input_is_exit_2_naming_the_culprit(
    slot: str,
    bad: Bad,
    valid: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders (run-BOARD ...) land here, and are caught
    work = tmp_path / "work"
    out = tmp_path / "O"
    work.mkdir()
    value = bad.make(work)
    value = valid.get(value, value)
    words = slot.split()
    argv: list[str] = []
    for w in words:
        if w == "{}":
            argv.append(value)
        elif w in valid:
            argv.append(valid[w])
        elif w.startswith("O/"):
            argv.append(str(out / w[2:]))
        else:
            argv.append(w)
    if bad.culprit.startswith("--"):  # a number for an option: "{}" stands for "--opt value"
        i = argv.index(value)
        argv[i : i + 1] = [bad.culprit, value]
    before = set(os.listdir(tmp_path))
    code = run(*argv)
    err = capsys.readouterr()
    text = err.out + err.err
    assert code == 2, f"{argv}: exit {code}\n{text[-3000:]}"
    assert "Traceback" not in text
    named = bad.culprit in text or (  # an option's message may name the value instead, if it is a word
        bad.culprit.startswith("--") and not value.lstrip("-").replace(".", "").isdigit() and value in text
    )
    assert named, f"{argv}: the message does not name {bad.culprit!r}:\n{text[-2000:]}"
    assert not out.exists() or not any(out.rglob("*")), f"{argv}: left {sorted(out.rglob('*'))[:5]}"
    assert set(os.listdir(tmp_path)) <= before | {"O"}
