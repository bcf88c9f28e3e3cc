"""The pytest plugin: a user-style HIL test file runs against the digits firmware on QEMU."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

QEMU = "qemu-an547"
USER_TESTS = """
import numpy as np
from mcudeploy.ml.tflm_host import run_tflm

def test_hello_names_the_runtime_and_board(mcu_hello):
    assert mcu_hello.runtime == "c" and mcu_hello.board == "qemu-an547"

def test_device_output_is_byte_identical_to_host_tflm(mcu_target, mcu_model):
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.integers(-128, 127, size=(1, *mcu_model.inputs[0].shape[1:]), dtype=np.int8)
        result = mcu_target.infer(x.tobytes())
        assert result.status == 0 and result.cycles > 0
        assert result.output == run_tflm(mcu_model, x).astype(np.int8).tobytes()
"""


@pytest.fixture(scope="module", autouse=True)
def _native_modules_loaded_outside() -> None:
    """Import host TFLM in this process before any in-process inner session does: pytester restores
    sys.modules after each inner run, and a pybind11 module dropped that way cannot be imported again
    ("type already registered"), which broke every later host-TFLM test of the outer session."""
    from mcudeploy.ml.tflm_host import _runtime

    _runtime()


def _plugin_args() -> list[str]:
    """Load the plugin explicitly only when its entry point is not installed (a stale editable install)."""
    installed = any(e.name == "mcudeploy" for e in entry_points(group="pytest11"))
    # mcudeploy is already imported by this (outer) session, so the inner one cannot rewrite its asserts
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return quiet if installed else [*quiet, "-p", "mcudeploy.pytest_plugin"]


@pytest.fixture(scope="module")
def protocol_project(digits_int8, tmp_path_factory) -> Path:
    from mcudeploy.boards import get_board
    from mcudeploy.firmware import codegen

    tmp = tmp_path_factory.mktemp("plugin")
    return codegen.generate(digits_int8, get_board(QEMU), tmp / "proj", runtime="c", mode="protocol").path


@pytest.fixture(scope="module")
def protocol_elf(protocol_project: Path) -> Path:
    from mcudeploy.firmware import build

    return build.build(protocol_project, build_dir=protocol_project.parent / "build").elf


@pytest.mark.qemu
def test_user_hil_tests_pass_on_qemu(pytester: pytest.Pytester, protocol_elf: Path, digits_int8_path) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    res = pytester.runpytest(
        *_plugin_args(),
        f"--mcu-board={QEMU}",
        f"--mcu-firmware={protocol_elf}",
        f"--mcu-model={digits_int8_path}",
        "-p",
        "no:cacheprovider",
    )
    res.assert_outcomes(passed=2)


@pytest.mark.qemu
def test_a_device_running_another_model_is_refused(
    pytester: pytest.Pytester, protocol_elf: Path, digits_int8, digits_keras, tmp_path: Path
) -> None:
    from mcudeploy.ml.quantize import float_tflite

    other = tmp_path / "float.tflite"
    other_model = float_tflite(digits_keras)
    other.write_bytes(other_model.data)
    pytester.makepyfile(test_user=USER_TESTS)
    res = pytester.runpytest(
        *_plugin_args(),
        f"--mcu-board={QEMU}",
        f"--mcu-firmware={protocol_elf}",
        f"--mcu-model={other}",
        "-p",
        "no:cacheprovider",
    )
    res.assert_outcomes(errors=2)
    # the hashes of both models, whatever bits this machine's training produced
    runs, expected = digits_int8.sha256[:16], other_model.sha256[:16]
    res.stdout.fnmatch_lines([f"*DeviceMismatchError*runs model {runs}*expected {expected}*"])


def test_plugin_is_inert_without_its_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        def test_plain():
            assert 1 + 1 == 2

        def test_needs_a_board(mcu_target):
            raise AssertionError("must be skipped")
        """
    )
    res = pytester.runpytest(*_plugin_args(), "-rs", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, skipped=1)
    res.stdout.fnmatch_lines(["*needs a target: pass --mcu-board*"])


def test_options_are_listed_in_help(pytester: pytest.Pytester) -> None:
    res = pytester.runpytest(*_plugin_args(), "--help")
    res.stdout.fnmatch_lines(["*--mcu-board*", "*--mcu-port*", "*--mcu-firmware*", "*--mcu-model*"])


def test_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, mcudeploy.pytest_plugin; "
        "print(sorted(m for m in ('tensorflow', 'numpy', 'serial', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.qemu
def test_a_project_is_built_then_served(
    pytester: pytest.Pytester, protocol_project: Path, digits_int8_path
) -> None:
    pytester.makepyfile(
        test_user="""
        def test_hello(mcu_hello, mcu_firmware):
            assert mcu_hello.runtime == "c" and mcu_firmware.name == "app.elf"
        """
    )
    res = pytester.runpytest(*_plugin_args(), f"--mcu-board={QEMU}", f"--mcu-project={protocol_project}",
                             f"--mcu-model={digits_int8_path}", "-p", "no:cacheprovider")  # fmt: skip
    res.assert_outcomes(passed=1)


def test_a_target_without_model_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_user="def test_t(mcu_target):\n    pass\n")
    res = pytester.runpytest(*_plugin_args(), f"--mcu-board={QEMU}", f"--mcu-firmware={tmp_path / 'a.elf'}")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*--mcu-model is required*"])
