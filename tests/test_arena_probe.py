"""The TFLM arena search survives native crashes: TFLM segfaults for some too-small arenas.

Real crashes only: the tflite-micro interpreter given a 16-byte arena really segfaults, and a child
that really dies by a signal must become an mcudeploy error naming the model (exit 2, no traceback).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcudeploy.cli import run
from mcudeploy.errors import UnsupportedError
from mcudeploy.ml import tflm_host
from mcudeploy.ml.model import Model
from mcudeploy.ml.tflite_builder import GraphBuilder
from mcudeploy.ml.tflm_host import measure_arena


def dense_model(n_in: int, hidden: int, n_out: int, source: str) -> Model:
    """Dense n_in -> hidden -> n_out, int8, weights from a fixed seed (no training)."""
    rng = np.random.default_rng(0)
    g = GraphBuilder()
    x = g.tensor((1, n_in), "int8", 0.05, 0)
    w1 = g.const(rng.integers(-127, 128, (hidden, n_in)), "int8", scale=0.01, zero_point=0)
    b1 = g.const(np.zeros(hidden), "int32", scale=0.0005, zero_point=0)
    h = g.tensor((1, hidden), "int8", 0.5, 0)
    g.op("FULLY_CONNECTED", [x, w1, b1], [h])
    w2 = g.const(rng.integers(-127, 128, (n_out, hidden)), "int8", scale=0.01, zero_point=0)
    b2 = g.const(np.zeros(n_out), "int32", scale=0.005, zero_point=0)
    y = g.tensor((1, n_out), "int8", 1.0, 0)
    g.op("FULLY_CONNECTED", [h, w2, b2], [y])
    return g.build([x], [y], source=source)


@pytest.fixture(scope="module")
def big_dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 9 MB Dense 3000 -> 3000 -> 10 model of issue 13."""
    p = tmp_path_factory.mktemp("big") / "dense3000.tflite"
    p.write_bytes(dense_model(3000, 3000, 10, p.name).data)
    return p


# Runs in a child: crashing probes must not end the process that probes.
PROBES = r"""
import json, sys
from mcudeploy.ml import arena_probe
big, small = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
n = int(sys.argv[3])
out = {"n": arena_probe.probe(big, [((1, 3000), "int8")], n),
       "n-16": arena_probe.probe(big, [((1, 3000), "int8")], n - 16),
       "16": arena_probe.probe(small, [((1, 8), "int8")], 16)}
arena_probe.recorded_allocation = lambda d, i: 16  # start the search where TFLM crashes
out["search"] = arena_probe.search(small, [((1, 8), "int8")])
print(json.dumps(out))
"""


def _probes(big: Path, small: Path, arena: int) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", PROBES, str(big), str(small), str(arena)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_header_on_a_large_dense_model_measures_the_true_minimum(
    big_dense: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("header", big_dense, "-o", tmp_path / "h") == 0, capsys.readouterr().err
    meta = (tmp_path / "h" / "mcd_model_meta.h").read_text()
    arena = int(re.search(r"#define MCD_ARENA_BYTES (\d+)u", meta).group(1))  # type: ignore[union-attr]
    small = dense_model(8, 8, 2, "tiny_dense.tflite")
    (tmp_path / small.source).write_bytes(small.data)
    got = _probes(big_dense, tmp_path / small.source, arena)
    # the number written is the minimum: it runs, 16 bytes less does not
    assert got["n"] == "fits" and got["n-16"] != "fits", got
    # a 16-byte arena really crashes TFLM, and the search steps over such sizes to the same minimum
    assert got["16"].startswith("crashed"), got
    assert got["search"]["crashed"] and got["search"]["minimum"] == measure_arena(small), got


def test_generate_tflm_on_a_large_dense_model(
    big_dense: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fw"
    assert run("generate", big_dense, "-b", "qemu-an547", "-o", out, "--vectors", "1") == 0, (
        capsys.readouterr().err
    )
    project = json.loads((out / "mcudeploy.json").read_text())
    from mcudeploy.firmware.codegen import tflm_arena_bytes
    from mcudeploy.ml.model import read_tflite

    assert project["arena_bytes"] == tflm_arena_bytes(read_tflite(big_dense)) > 0


@pytest.fixture()
def crashing_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The arena child replaced by one that really dies of SIGSEGV (os.kill on itself)."""
    (tmp_path / "segv_probe.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(tflm_host, "_PROBE_MODULE", "segv_probe")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


@pytest.mark.usefixtures("crashing_probe")
def test_a_crashed_child_is_an_error_naming_the_model() -> None:
    model = dense_model(8, 8, 2, "tiny_dense.tflite")
    with pytest.raises(UnsupportedError, match=r"tiny_dense\.tflite.*crashed \(SIGSEGV\)") as e:
        measure_arena(model)
    assert "--arena-bytes" in str(e.value)


@pytest.mark.usefixtures("crashing_probe")
def test_a_crashed_child_is_exit_2_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "tiny_dense.tflite"
    p.write_bytes(dense_model(8, 8, 2, p.name).data)
    assert run("header", p, "-o", tmp_path / "h") == 2
    err = capsys.readouterr().err
    assert "tiny_dense.tflite" in err and "SIGSEGV" in err and "Traceback" not in err
    assert not (tmp_path / "h").exists()
