"""Shared fixtures: one trained digits CNN and its int8 model per test session.

Tool-dependent tests are gated by markers; each skip reason says exactly what to install or set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tests.hyp  # noqa: F401  (the hypothesis profile: derandomized in make test)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TFLM_REASON = (
    "needs a TFLite Micro tree: run `mcudeploy setup tflm` (offline: --from MIRRORS) "
    "or set MCUDEPLOY_TFLM_ROOT to a create_tflm_tree.py export"
)
FVP_REASON = (
    "needs an Arm Corstone FVP: run `mcudeploy setup fvp corstone-300 --accept-eula` "
    "or set MCUDEPLOY_FVP to an FVP_Corstone_SSE-300_Ethos-U55 binary"
)


def _missing_tools(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    qemu_missing = _missing_tools("qemu-system-arm", "arm-none-eabi-gcc")
    tflm = os.environ.get("MCUDEPLOY_TFLM_ROOT")
    if not tflm:  # a tree `mcudeploy setup tflm` installed serves the tflm tests as the variable would
        from mcudeploy.setup.tflm import default_tree

        tree = default_tree()
        if tree is not None:
            tflm = os.environ["MCUDEPLOY_TFLM_ROOT"] = str(tree)
    fvp = os.environ.get("MCUDEPLOY_FVP")
    if not fvp:  # likewise an FVP `mcudeploy setup fvp corstone-300` installed
        from mcudeploy.setup.fvp import find_installed_executable

        found = find_installed_executable("FVP_Corstone_SSE-300_Ethos-U55")
        if found:
            fvp = os.environ["MCUDEPLOY_FVP"] = found
    for item in items:
        if "qemu" in item.keywords and qemu_missing:
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(qemu_missing)}: run `make setup`"))
        if "tflm" in item.keywords and not (tflm and Path(tflm).is_dir()):
            item.add_marker(pytest.mark.skip(reason=TFLM_REASON))
        if "fvp" in item.keywords and not (fvp and Path(fvp).exists()):
            item.add_marker(pytest.mark.skip(reason=FVP_REASON))


@pytest.fixture(scope="session")
def digits_split():
    from mcudeploy.ml.digits import load_digits_split

    return load_digits_split()


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def digits_keras_path(digits_split, session_dir: Path) -> Path:
    """The trained digits CNN saved as .keras (trained once per session, ~8 s)."""
    from mcudeploy.ml.digits import train_cnn

    path = session_dir / "digits.keras"
    train_cnn(digits_split).save(path)
    return path


@pytest.fixture(scope="session")
def digits_keras(digits_keras_path: Path):
    from mcudeploy.ml.model import load_keras

    return load_keras(digits_keras_path)


@pytest.fixture(scope="session")
def digits_int8(digits_keras, digits_split, session_dir: Path):
    """The fully int8 digits model (a validated :class:`mcudeploy.ml.model.Model`)."""
    from mcudeploy.ml.quantize import convert_int8

    model = convert_int8(digits_keras, digits_split.x_train, source="digits_int8.tflite")
    (session_dir / "digits_int8.tflite").write_bytes(model.data)
    return model


@pytest.fixture(scope="session")
def digits_test_int8(digits_int8, digits_split) -> np.ndarray:
    """The digits test split quantized with the int8 model's input scale and zero point."""
    from mcudeploy.ml.quantio import quantize_input

    return quantize_input(digits_split.x_test, digits_int8.inputs[0])


@pytest.fixture(scope="session")
def digits_int8_path(digits_int8, session_dir: Path) -> Path:
    return session_dir / "digits_int8.tflite"


@pytest.fixture(scope="session")
def digits_test_npz(digits_split, session_dir: Path) -> Path:
    from mcudeploy.ml.digits import save_npz

    return save_npz(session_dir / "digits_test.npz", digits_split.x_test, digits_split.y_test)
