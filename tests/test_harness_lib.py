"""The harness library in the user's own firmware: `mcudeploy harness-lib` writes it, it depends on
nothing generated, and examples/harness_app (its own start-up, UART and timer) linking it is
measured by `mcudeploy run --port socket://...` on netduinoplus2 and qemu-an547, byte-identical."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mcudeploy.boards import get_board
from mcudeploy.cli import main
from mcudeploy.device.targets.qemu import QemuSimulator
from mcudeploy.firmware import codegen
from mcudeploy.firmware.harness_lib import LIBRARY_FILES, MODEL_HEADER
from mcudeploy.ml.model import read_tflite
from mcudeploy.protocol import io_info

APP = Path(__file__).resolve().parent.parent / "examples" / "harness_app"


def test_harness_lib_writes_a_self_contained_library(digits_int8_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "third_party" / "mcd_harness"
    out.mkdir(parents=True)
    (out / "mine.c").write_text("/* the user's own file */\n")
    assert main(["harness-lib", "-o", str(out), "--model", str(digits_int8_path)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*LIBRARY_FILES, MODEL_HEADER, "mine.c"])
    assert (out / "mine.c").read_text() == "/* the user's own file */\n"  # other files left alone
    model = read_tflite(digits_int8_path)
    meta = (out / MODEL_HEADER).read_text()
    assert f'"{model.sha256}"' in meta and f'"{io_info(model)}"' in meta
    # the library includes nothing but the C library and itself: no generated or platform headers
    for name in ("mcd_harness.c", "mcd_harness.h"):
        includes = re.findall(r'#include [<"]([^>"]+)[>"]', (out / name).read_text())
        assert set(includes) <= {"stddef.h", "stdint.h", "string.h", "mcd_harness.h"}, (name, includes)
    if shutil.which("gcc"):  # strict C99 on its own, the example port too
        for src in ("mcd_harness.c", "mcd_harness_port_example.c"):
            cmd = [
                "gcc",
                "-std=c99",
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-c",
                src,
                "-o",
                "/dev/null",
            ]
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
    readme = (out / "README.md").read_text()
    for word in ("run_model", "timeout_ms", "MicroInterpreter", "mcudeploy run"):
        assert word in readme


def test_harness_lib_bad_model_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "not.tflite").write_bytes(b"nope")
    assert main(["harness-lib", "-o", str(tmp_path / "lib"), "--model", str(tmp_path / "not.tflite")]) == 2
    assert not (tmp_path / "lib").exists()  # nothing half-written


@pytest.mark.qemu
@pytest.mark.parametrize("board_name", ["netduinoplus2", "qemu-an547"])
def test_own_firmware_with_the_library_is_measured_byte_identical(
    board_name: str, digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    if shutil.which("make") is None:
        pytest.skip("needs make: apt-get install make")
    lib = tmp_path / "lib"
    assert main(["harness-lib", "-o", str(lib), "--model", str(digits_int8_path)]) == 0
    board = get_board(board_name)
    model = read_tflite(digits_int8_path)
    # the inference code: mcudeploy's C runtime for this CPU (a TFLM app links its interpreter)
    gen = codegen.generate(model, board, tmp_path / "gen", runtime="c", mode="protocol")
    out = tmp_path / "app"
    cmd = ["make", "-C", str(APP), f"BOARD={board_name}", f"HARNESS={lib}", f"MODEL={gen.path / 'src'}"]
    proc = subprocess.run([*cmd, f"OUT={out}"], capture_output=True, text=True)
    assert proc.returncode == 0 and "warning:" not in proc.stderr, proc.stderr
    with QemuSimulator(board).start(out / "app.elf", timeout=180) as sim:
        rc = main(
            [
                "run",
                "--board",
                board_name,
                "--port",
                f"socket://127.0.0.1:{sim.port}",
                "--no-flash",
                "--model",
                str(digits_int8_path),
                "--data",
                str(digits_test_npz),
                "--limit",
                "10",
                "--bench",
                "2",
                "--out",
                str(tmp_path / "run"),
            ]
        )
    log = (tmp_path / "run" / "device.log").read_bytes()
    assert rc == 0, log[-2000:]
    assert b"harness_app: my own firmware on " + board_name.encode() in log  # the app's own text kept
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["measured"] == 10 and s["failed"] == 0 and s["bit_exact_fraction"] == 1.0
    assert s["device"]["timer"] == "systick-cycles" and s["device"]["sha256"] == model.sha256
    assert 0 < s["latency"]["min"] <= s["latency"]["max"] and s["bench"]["runs"] == 2
