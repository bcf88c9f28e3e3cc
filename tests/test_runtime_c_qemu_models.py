"""The four benchmark models (mcudeploy.ml.zoo.BENCHMARK_MODELS: digits, DS-CNN MLPerf, MobileNet-v2 VWW
96x96 width 0.25, ResNet-8 MLPerf) through the C runtime on the QEMU board of each CPU path the runtime
compiles -- an547 (M55, Helium), an386 (M4, DSP), an500 (M7, DSP) -- byte-identical to host TFLM.

The models are random init + randomized BatchNorm + PTQ on random calibration data (digits: the
session's trained CNN), built once per session; one firmware per model and board, 3 vectors each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcudeploy.ml.model import Model
from mcudeploy.ml.tflm_host import run_tflm
from mcudeploy.ml.zoo import BENCHMARK_MODELS
from tests.qemu_tv import run_vectors, tv_outputs

BOARDS = ["qemu-an547", "qemu-an386", "qemu-an500"]
VECTORS = 3


class _Models:
    """Builds each benchmark model (and its host TFLM outputs) the first time a test asks for it."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._cache: dict[str, tuple[Model, np.ndarray, np.ndarray]] = {}

    def get(self, name: str) -> tuple[Model, np.ndarray, np.ndarray]:
        if name not in self._cache:
            if BENCHMARK_MODELS[name] is None:
                model = self._request.getfixturevalue("digits_int8")
            else:
                from mcudeploy.ml.zoo import benchmark_model

                model = benchmark_model(name)
            t = model.inputs[0]
            rng = np.random.default_rng(len(name))
            x = rng.integers(-128, 128, (VECTORS, *t.shape[1:]), dtype=np.int8)
            self._cache[name] = (model, x, run_tflm(model, x).astype(np.int8).reshape(VECTORS, -1))
        return self._cache[name]


@pytest.fixture(scope="session")
def benchmark_models(request: pytest.FixtureRequest) -> _Models:
    return _Models(request)


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("name", list(BENCHMARK_MODELS))
def test_benchmark_model_on_qemu_matches_host_tflm(
    benchmark_models: _Models, name: str, board: str, tmp_path: Path
) -> None:
    model, x, host = benchmark_models.get(name)
    p, code, uart, rows = run_vectors(model, board, x, tmp_path / "proj", timeout=300.0)
    assert code == 0, uart[-2000:]
    assert f"runtime=c timer=icount-instructions arena={p.arena_bytes}" in uart
    assert [int(r[0]) for r in rows] == list(range(VECTORS)), uart[-2000:]
    device = tv_outputs(rows)
    assert device.shape == host.shape
    diff = int(np.count_nonzero(device != host))
    assert diff == 0, f"{name} on {board}: {diff} of {host.size} output bytes differ from host TFLM"
    assert all(r[1] == "ok" for r in rows)
