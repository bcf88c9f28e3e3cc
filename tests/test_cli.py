"""CLI exit codes and messages: bad input is exit 2 naming the file, gates are exit 1, --help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcudeploy.cli import cli, run
from mcudeploy.errors import ModelFormatError

MAIN = "from mcudeploy.cli import main; raise SystemExit(main())"


def _mcudeploy(*args: object) -> subprocess.CompletedProcess[str]:
    """The real command in a child process: what a user sees, including any traceback."""
    return subprocess.run(
        [sys.executable, "-c", MAIN, *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture()
def truncated(digits_int8, tmp_path: Path) -> Path:
    p = tmp_path / "cut_short.tflite"
    p.write_bytes(digits_int8.data[: digits_int8.size // 3])
    return p


def test_bad_file_is_exit_2_naming_it_without_traceback(truncated: Path) -> None:
    r = _mcudeploy("inspect", truncated)
    assert r.returncode == 2, r.stderr
    assert "cut_short.tflite" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_debug_shows_the_traceback(truncated: Path) -> None:
    r = _mcudeploy("--debug", "inspect", truncated)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "ModelFormatError" in r.stderr and "cut_short.tflite" in r.stderr


def test_debug_reraises_in_process(truncated: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"cut_short\.tflite"):
        run("--debug", "inspect", truncated)


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_help_works_for_every_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(name, "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: mcudeploy {name}") and "--help" in out


def test_top_level_help_lists_my_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--help") == 0
    out = capsys.readouterr().out
    for name in ("demo", "evaluate", "inspect"):
        assert f"  {name} " in out


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.tflite", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: _write(d / "model.keras", b"PK\x03\x04" + b"\0" * 60), "mcudeploy quantize"),
        (lambda d: _write(d / "empty.tflite", b""), "too short"),
    ],
)
def test_inspect_bad_inputs_exit_2(make, needle: str, tmp_path: Path, capsys) -> None:
    path = make(tmp_path)
    assert run("inspect", path) == 2
    err = capsys.readouterr().err
    assert needle in err and path.name in err


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_evaluate_bad_data_exit_2(digits_int8_path: Path, tmp_path: Path, capsys) -> None:
    assert run("evaluate", digits_int8_path, "--data", tmp_path / "nope.npz") == 2
    assert "nope.npz" in capsys.readouterr().err
    import numpy as np

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((3, 5), np.float32), y=np.zeros(3, np.int64))
    assert run("evaluate", digits_int8_path, "--data", wrong) == 2
    assert "wrong.npz" in capsys.readouterr().err


def test_evaluate_gate_exit_1_and_json(digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path, capsys):
    out = tmp_path / "ev.json"
    import numpy as np

    with np.load(digits_test_npz) as d:  # every label shifted by one: accuracy far below 50 % on any training
        np.savez(tmp_path / "wrong_labels.npz", x=d["x"], y=(d["y"] + 1) % 10)
    code = run(
        "evaluate", digits_int8_path, "-d", tmp_path / "wrong_labels.npz", "-n", 40, "--no-default-kernels",
        "--min-accuracy", 50, "--json", out,
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and "gate failed" in captured.err and "accuracy" in captured.err
    doc = json.loads(out.read_text())
    assert doc["samples"] == 40 and doc["model"] == digits_int8_path.name
    args = ("evaluate", digits_int8_path, "-d", digits_test_npz, "-n", 40, "--no-default-kernels", "--json")
    assert run(*args) == 0
    assert json.loads(capsys.readouterr().out)["rungs"][-1]["name"] == "tflm-int8"


@pytest.mark.slow
def test_demo_writes_artifacts_and_skips_on_rerun(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    code = run("demo", "--out", out, "--epochs", 4, "--samples", 50)
    captured = capsys.readouterr()
    for name in ("digits.keras", "digits_int8.tflite", "digits_test.npz", "evaluation.json"):
        assert (out / name).is_file(), name
    ev = json.loads((out / "evaluation.json").read_text())
    ref = next(a for a in ev["agreement"] if a["kernels"] == "reference")
    passed = ev["int8_drop_pp"] <= 0.5 and ref["top1_agreement_pct"] >= 99.0 and ref["max_lsb_diff"] <= 1
    assert code == (0 if passed else 1), captured.err
    assert [r["name"] for r in ev["rungs"]] == ["float", "tflite-int8", "tflm-int8"]
    assert "tflm-int8" in captured.out
    before = (out / "digits_int8.tflite").read_bytes()
    assert run("demo", "--out", out, "--epochs", 4, "--samples", 50) == code
    assert capsys.readouterr().err.count("skipped") == 3
    assert (out / "digits_int8.tflite").read_bytes() == before


def test_evaluate_vela_model_is_exit_2_with_hint(digits_int8, digits_test_npz: Path, tmp_path: Path, capsys):
    """A Vela model (ethos-u custom op) cannot run on the host interpreters: a clear refusal."""
    from mcudeploy.ml.vela import compile_for_npu

    compiled = compile_for_npu(digits_int8, accelerator="ethos-u55-128", out_dir=tmp_path / "vela")
    path = tmp_path / "npu.tflite"
    path.write_bytes(compiled.model.data)
    assert run("evaluate", path, "-d", digits_test_npz) == 2
    err = capsys.readouterr().err
    assert "npu.tflite" in err and "ethos-u" in err and "mcudeploy compile" in err
    assert run("inspect", path) == 0 and "ethos-u" in capsys.readouterr().out
