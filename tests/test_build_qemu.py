"""Stage ``build`` and the QEMU simulator: real CMake, arm-none-eabi-gcc and qemu-system-arm."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from mcudeploy.boards import get_board
from mcudeploy.cli import run as cli_run
from mcudeploy.device.targets import SIMULATORS
from mcudeploy.device.targets.qemu import QemuSimulator
from mcudeploy.errors import BoardError, BuildError, SimulatorError, ToolMissingError
from mcudeploy.firmware import build as build_mod
from mcudeploy.firmware import codegen
from mcudeploy.ml.tflm_host import run_tflm
from tests.qemu_tv import TV_LINE, run_elf, tv_outputs

QEMU = "qemu-an547"


# -- no toolchain / no TFLM tree ------------------------------------------------------------
@pytest.fixture
def c_project(digits_int8, tmp_path: Path) -> codegen.Project:
    return codegen.generate(digits_int8, get_board(QEMU), tmp_path / "c_proj", runtime="c")


def _path_with_only(tmp_path: Path, *tools: str) -> str:
    """A PATH holding just ``tools`` (symlinked), to simulate a machine without the rest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for t in tools:
        found = shutil.which(t)
        if found:
            (bin_dir / t).symlink_to(found)
    return str(bin_dir)


def test_build_without_toolchain_names_it(c_project, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, "cmake", "ninja"))
    with pytest.raises(ToolMissingError) as exc:
        build_mod.build(c_project.path)
    assert "arm-none-eabi-gcc" in exc.value.message and "apt-get install gcc-arm-none-eabi" in str(exc.value)
    assert not (c_project.path / "build").exists()  # refused before CMake ran
    assert cli_run("build", c_project.path) == 3


def test_build_without_cmake_names_it(c_project, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, "arm-none-eabi-gcc", "arm-none-eabi-g++"))
    with pytest.raises(ToolMissingError, match="cmake") as exc:
        build_mod.build(c_project.path)
    assert "ninja (or make)" in exc.value.message


def test_tflm_build_without_tree_says_how(digits_int8, tmp_path: Path, monkeypatch) -> None:
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("cmake") is None:
        pytest.skip("needs cmake and arm-none-eabi-gcc to get past the toolchain check")
    p = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "tflm_proj", runtime="tflm")
    monkeypatch.delenv("MCUDEPLOY_TFLM_ROOT", raising=False)
    monkeypatch.setenv("MCUDEPLOY_CACHE_DIR", str(tmp_path / "empty-cache"))  # no `setup tflm` tree either
    with pytest.raises(ToolMissingError, match="TFLite Micro tree") as exc:
        build_mod.build(p.path)
    assert "MCUDEPLOY_TFLM_ROOT" in str(exc.value) and "create_tflm_tree.py" in str(exc.value)
    # an incomplete tree: every missing file is named
    tree = tmp_path / "tflm_tree"
    (tree / "tensorflow/lite/micro").mkdir(parents=True)
    (tree / "tensorflow/lite/micro/micro_interpreter.h").write_text("")
    with pytest.raises(ToolMissingError, match="incomplete") as exc:
        build_mod.build(p.path, tflm_root=tree)
    assert "micro_mutable_op_resolver.h" in exc.value.message and "flatbuffers.h" in exc.value.message
    assert "arm_nnfunctions.h" not in exc.value.message  # CMSIS-NN is optional: reference kernels otherwise
    assert "micro_interpreter.h" not in exc.value.message.split("missing", 1)[1]
    assert cli_run("build", p.path, "--tflm-root", tree) == 3


def test_build_refuses_a_folder_that_is_no_project(tmp_path: Path) -> None:
    assert cli_run("build", tmp_path) == 2


# -- the QEMU simulator ---------------------------------------------------------------------
def test_qemu_command_is_built_from_the_board(tmp_path: Path) -> None:
    sim = QemuSimulator(get_board(QEMU))
    cmd = sim.command(tmp_path / "app.elf", 4321)
    assert cmd[:3] == ["qemu-system-arm", "-M", "mps3-an547"]
    assert "tcp:127.0.0.1:4321,server=on,wait=on" in cmd and "enable=on,target=native" in cmd
    assert cmd[cmd.index("-icount") + 1] == "shift=0" and cmd[-2:] == ["-kernel", str(tmp_path / "app.elf")]
    assert SIMULATORS["qemu"] is QemuSimulator
    with pytest.raises(BoardError, match=r"no \[simulator\.qemu\]"):
        QemuSimulator(get_board("nucleo-h743zi2"))


# -- build + run on QEMU ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_inputs(digits_test_int8) -> np.ndarray:
    return digits_test_int8[:12]


@pytest.fixture(scope="module")
def c_firmware(digits_int8, digits_inputs, tmp_path_factory) -> build_mod.Firmware:
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm: run `make setup`")
    root = tmp_path_factory.mktemp("c_fw")
    p = codegen.generate(digits_int8, get_board(QEMU), root / "proj", runtime="c", inputs=digits_inputs)
    return build_mod.build(p.path)


@pytest.mark.qemu
def test_c_firmware_builds_without_a_compiler_warning(c_firmware) -> None:
    log = (c_firmware.elf.parent / "mcudeploy-build.log").read_text()
    assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]


@pytest.mark.qemu
def test_c_runtime_on_qemu_is_bit_exact_with_host_tflm(c_firmware, digits_int8, digits_inputs) -> None:
    board = get_board(QEMU)
    # the linker script put each role in the board's region
    for section, role in ((".vectors", "vectors"), (".mcd_arena", "arena"), (".stack", "stack")):
        region = board.region_for(role)
        assert region.origin <= c_firmware.addresses[section] < region.end, section
    assert c_firmware.sections[".text"] > 1000 and c_firmware.map.is_file()

    code, uart = run_elf(c_firmware.elf, QEMU)
    assert code == 0, uart
    assert "MCD-TV-BEGIN n=12 runtime=c timer=icount-instructions" in uart
    rows = TV_LINE.findall(uart)
    assert [int(r[0]) for r in rows] == list(range(12)) and all(r[1] == "ok" for r in rows)
    # compare the device's output bytes with host TFLM directly, not only via the embedded goldens
    device = tv_outputs(rows)
    assert device.tobytes() == run_tflm(digits_int8, digits_inputs).astype(np.int8).tobytes()
    assert "MCD-TV-END pass=12 fail=0" in uart
    # the painted-stack high-water mark: more than main's frame, less than the linked stack
    stack = re.search(r"^MCD-TV-END .* stack=(\d+)\r?$", uart, re.MULTILINE)
    assert stack and 64 < int(stack.group(1)) < c_firmware.sections[".stack"], uart[-300:]

    # icount makes timings deterministic: a second boot reports the same instruction counts
    code2, uart2 = run_elf(c_firmware.elf, QEMU)
    assert code2 == 0
    assert [r[2] for r in TV_LINE.findall(uart2)] == [r[2] for r in rows]
    assert all(int(r[2]) > 10_000 for r in rows)


@pytest.mark.qemu
def test_read_uart_keeps_the_boot_lines_when_the_host_is_slow(c_firmware, monkeypatch) -> None:
    """QEMU runs the firmware the moment we connect; on a loaded machine it prints (here: runs to its
    end) before the port has finished opening, and pyserial's open() would drop all of that. The
    host's slowness, which cannot be caused on demand, is a sleep inside that open()."""
    import serial.urlhandler.protocol_socket as ps

    reconfigure = ps.Serial._reconfigure_port

    def slow(self):  # called by open() after the connect, before it would empty the input buffer
        reconfigure(self)
        time.sleep(1.0)

    monkeypatch.setattr(ps.Serial, "_reconfigure_port", slow)
    code, uart = run_elf(c_firmware.elf, QEMU)
    assert code == 0
    assert uart.startswith("\r\nMCD-BOOT board=qemu-an547"), uart[:200]
    assert "MCD-TV-BEGIN n=12 runtime=c" in uart and "MCD-TV-END pass=12 fail=0" in uart


@pytest.mark.qemu
def test_a_wrong_golden_fails_the_run(c_firmware, tmp_path: Path) -> None:
    src = c_firmware.project
    bad = tmp_path / "bad"
    shutil.copytree(src, bad, ignore=shutil.ignore_patterns("build"))
    header = bad / "src" / "mcd_test_vectors.h"
    text = header.read_text()
    outputs = text.index("mcd_tv_outputs")
    m = re.compile(r"0x([0-9a-f]{2})").search(text, outputs)
    flipped = f"0x{int(m.group(1), 16) ^ 0x01:02x}"
    header.write_text(text[: m.start()] + flipped + text[m.end() :])
    fw = build_mod.build(bad)
    code, uart = run_elf(fw.elf, QEMU)
    assert code == 1
    assert "MCD-TV 0 MISMATCH" in uart and "MCD-TV-END pass=11 fail=1" in uart


@pytest.mark.qemu
def test_simulator_deadline_kills_a_firmware_that_never_exits(digits_int8, tmp_path: Path) -> None:
    p = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "proto", runtime="c", mode="protocol")
    fw = build_mod.build(p.path)
    start = time.monotonic()
    with QemuSimulator(get_board(QEMU)).start(fw.elf, timeout=5.0) as running:
        with serial.serial_for_url(running.url, timeout=2.0) as port:
            boot = port.read(64)
        assert b"MCD-BOOT board=qemu-an547" in boot  # nothing lost: the port opened before the CPU ran
        with pytest.raises(SimulatorError, match="deadline"):
            running.wait()
        assert running.proc.poll() is not None
    assert time.monotonic() - start < 30
    assert "waiting for connection" in running.log


@pytest.mark.qemu
def test_build_failure_is_reported_with_the_compiler_error(c_project) -> None:
    main = c_project.path / "src" / "main.c"
    main.write_text(main.read_text() + "\nthis is not C;\n")
    with pytest.raises(BuildError, match="build failed") as exc:
        build_mod.build(c_project.path)
    assert "main.c" in exc.value.message and "error" in exc.value.message
    assert (c_project.path / "build" / "mcudeploy-build.log").is_file()


@pytest.mark.qemu
@pytest.mark.tflm
def test_tflm_project_builds_and_runs_on_qemu(digits_int8, digits_inputs, tmp_path: Path) -> None:
    p = codegen.generate(
        digits_int8, get_board(QEMU), tmp_path / "tflm", runtime="tflm", inputs=digits_inputs
    )
    tree = Path(os.environ["MCUDEPLOY_TFLM_ROOT"])
    fw = build_mod.build(p.path, tflm_root=tree, jobs=os.cpu_count())
    # the kernels CMake compiled are the ones the export carries (CMSIS-NN or reference)
    assert fw.kernels == build_mod.tflm_kernels(tree)
    log = (p.path / "build" / "mcudeploy-build.log").read_text()
    assert f"MCUDEPLOY: TFLite Micro kernels: {fw.kernels}" in log
    code, uart = run_elf(fw.elf, QEMU, timeout=120)
    assert code == 0, uart
    assert "runtime=tflm" in uart and "MCD-TV-END pass=12 fail=0" in uart
    # it linked the TFLM library compiled once into the setup cache: another project compiles none of TFLM
    assert "-DMCD_TFLM_PREBUILT=/" in log and "CMakeFiles/tflm.dir" not in log
    p2 = codegen.generate(
        digits_int8, get_board(QEMU), tmp_path / "tflm2", runtime="tflm", inputs=digits_inputs[:3]
    )
    build_mod.build(p2.path, tflm_root=tree)
    log2 = (p2.path / "build" / "mcudeploy-build.log").read_text()
    assert "CMakeFiles/tflm.dir" not in log2 and log2.count("Building C") < 20


def test_tflm_kernels_follow_the_export(tmp_path: Path) -> None:
    assert build_mod.tflm_kernels(tmp_path) == "reference"
    marker = tmp_path / build_mod.TFLM_CMSIS_NN_MARKER
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    assert build_mod.tflm_kernels(tmp_path) == "cmsis-nn"


@pytest.mark.qemu
def test_cli_build_reports_sections(c_firmware, tmp_path: Path) -> None:
    out = tmp_path / "fw.json"
    code = cli_run("build", c_firmware.project, "--build-dir", tmp_path / "b", "--json", out)
    assert code == 0
    data = json.loads(out.read_text())
    assert data["runtime"] == "c" and data["board"] == QEMU
    assert data["sections"][".text"] == c_firmware.sections[".text"]  # same sources, same compiler
    assert Path(data["elf_path"]).is_file()


@pytest.mark.qemu
def test_prebuilt_tflm_of_a_reference_kernel_tree_configures(digits_int8, tmp_path: Path) -> None:
    """A reference-kernel export has no third_party/cmsis_nn: the prebuilt (IMPORTED) library target
    must not name that folder, which CMake refuses for imported targets (seen with setup tflm
    --kernels reference)."""
    tree = tmp_path / "tree"
    for rel in build_mod.TFLM_REQUIRED:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("")
    for d in ("third_party/gemmlowp", "third_party/ruy", "third_party/kissfft"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libtflm.a").write_bytes(b"!<arch>\n")
    p = codegen.generate(digits_int8, get_board(QEMU), tmp_path / "p", runtime="tflm")
    tools = build_mod.find_toolchain()
    r = subprocess.run(
        [tools.cmake, "-S", str(p.path), "-B", str(tmp_path / "b"), "-G", tools.generator,
         f"-DTFLM_ROOT={tree}", f"-DMCD_TFLM_PREBUILT={lib}", f"-DARM_TOOLCHAIN_ROOT={tools.bin_dir}",
         f"-DCMAKE_TOOLCHAIN_FILE={p.path / 'cmake' / 'arm-none-eabi.cmake'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TFLite Micro kernels: reference" in r.stdout
