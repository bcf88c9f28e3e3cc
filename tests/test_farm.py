"""A real labgrid board farm on 127.0.0.1: coordinator, exporter (its ser2net exports QEMU's UART as an
RFC 2217 network serial port of a place), and `mcudeploy run --labgrid-place` / `mcudeploy deploy
--labgrid-place` measuring the digits model through it byte-identical; the place's acquisition keeps a
second run off the board (refused, naming the holder).

labgrid runs from its own virtualenv (`make farm`: .venv-farm, since it replaces pyserial with its
fork), so mcudeploy runs there as a subprocess, like a user's CI job would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcudeploy.boards import get_board
from mcudeploy.device.targets.simulator import free_port
from mcudeploy.firmware import codegen
from mcudeploy.ml.model import read_tflite

ROOT = Path(__file__).resolve().parent.parent
FARM_BIN = ROOT / ".venv-farm" / "bin"
PLACE = "qemu-desk"
BOARD = "qemu-an547"
SER2NET = shutil.which("ser2net") or ("/usr/sbin/ser2net" if Path("/usr/sbin/ser2net").exists() else None)

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        not (FARM_BIN / "labgrid-coordinator").exists() or SER2NET is None,
        reason="needs labgrid in .venv-farm and Debian's ser2net: run `make farm`",
    ),
]


class Farm:
    def __init__(self, root: Path, coordinator: str) -> None:
        self.root = root
        self.coordinator = coordinator
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, user: str) -> dict[str, str]:
        return {
            **os.environ,
            "LG_COORDINATOR": self.coordinator,
            "LG_USERNAME": user,
            "PYTHONPATH": str(ROOT),  # the mcudeploy under test, inside labgrid's venv
        }

    def start(self, name: str, cmd: list[str], user: str = "farm") -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the farm)
        proc = subprocess.Popen(  # cwd: the coordinator keeps its places.yaml / resources.yaml there
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(user),
            cwd=self.root,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def client(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(FARM_BIN / "labgrid-client"), "-p", PLACE, *args]
        return subprocess.run(cmd, env=self.env(user), capture_output=True, text=True, timeout=60)

    def wait_for(self, name: str, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, (self.root / f"{name}.log").read_text(errors="replace"))
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"{name} never logged {pattern!r}:\n" + (self.root / f"{name}.log").read_text())

    def mcudeploy(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(FARM_BIN / "python"), "-c", "import sys; from mcudeploy.cli import main; sys.exit(main())"]
        return subprocess.run([*cmd, *args], env=self.env(user), capture_output=True, text=True, timeout=300)

    def stop(self) -> None:
        for proc in reversed(self.procs):  # each in its own session: its children (ser2net) go too
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture(scope="module")
def farm(digits_int8, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("farm")
    board = get_board(BOARD)
    proj = codegen.generate(digits_int8, board, root / "fw", runtime="c", mode="protocol", target="qemu")
    from mcudeploy.firmware.build import build

    elf = build(proj.path).elf
    f = Farm(root, f"127.0.0.1:{free_port()}")
    try:
        f.start("coordinator", [str(FARM_BIN / "labgrid-coordinator"), "-l", f.coordinator])
        qemu = [
            "qemu-system-arm", "-M", board.simulator["qemu"]["machine"], "-nographic", "-monitor", "none",
            "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-serial", "pty",
            "-kernel", str(elf),
        ]  # fmt: skip
        f.start("qemu", qemu)
        pty = f.wait_for("qemu", r"/dev/pts/\d+").group(0)
        (root / "exporter.yaml").write_text(
            f"desk-1:\n  RawSerialPort:\n    port: {pty}\n    speed: 115200\n"
        )
        exporter = [
            str(FARM_BIN / "labgrid-exporter"),
            "-c",
            f.coordinator,
            "-n",
            "exp1",
            "--hostname",
            "127.0.0.1",
        ]
        f.start("exporter", [*exporter, str(root / "exporter.yaml")])
        f.wait_for("exporter", r"connected to coordinator")
        for args in (("create",), ("add-match", "exp1/desk-1/NetworkSerialPort")):
            r = f.client("admin", *args)
            assert r.returncode == 0, r.stdout + r.stderr
        yield f
    finally:
        f.stop()


def test_run_through_a_real_labgrid_farm_is_byte_identical_and_locks_the_place(
    farm: Farm, digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    from mcudeploy.device.harness import quantize_inputs
    from mcudeploy.ml.digits import load_digits_split
    from mcudeploy.ml.tflm_host import run_tflm

    run = ["run", "--board", BOARD, "--labgrid-place", PLACE, "--model", str(digits_int8_path)]
    run += ["--data", str(digits_test_npz), "--bench", "0"]
    # alice holds the place (labgrid-client acquire): bob's run is refused, naming her
    assert farm.client("alice", "acquire").returncode == 0
    r = farm.mcudeploy("bob", *run, "--limit", "3", "--out", str(tmp_path / "bob"))
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"labgrid place '{PLACE}' is held by" in r.stderr and "/alice" in r.stderr
    assert not (tmp_path / "bob" / "results.jsonl").exists()  # refused before touching the board

    # once she lets go, bob's run acquires the idle place, measures through the exporter's ser2net
    # (RFC 2217) and releases it afterwards: one short run
    assert farm.client("alice", "release").returncode == 0
    n = 8
    r = farm.mcudeploy("bob", *run, "--limit", str(n), "--out", str(tmp_path / "bob2"))
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((tmp_path / "bob2" / "summary.json").read_text())
    assert s["measured"] == n and s["failed"] == 0 and s["bit_exact_fraction"] == 1.0
    model = read_tflite(digits_int8_path)
    assert s["device"]["sha256"] == model.sha256
    golden = run_tflm(model, quantize_inputs(model, load_digits_split().x_test[:n]))
    lines = [json.loads(ln) for ln in (tmp_path / "bob2" / "results.jsonl").read_text().splitlines()]
    outs = {d["index"]: d["output"] for d in lines if d.get("kind") == "sample"}
    assert [outs[i] for i in range(n)] == [g.tobytes().hex() for g in golden]
    assert re.search(r"acquired:\s+None", farm.client("bob", "show").stdout)


def test_deploy_through_a_real_labgrid_farm_measures_on_the_place_and_releases_it(
    farm: Farm, digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    """`mcudeploy deploy --labgrid-place` runs its device stage on the place like `run` does: refused
    naming the holder while another user holds it (the stages before it keep their results), then
    acquired, measured byte-identical through the exporter and released."""
    out = tmp_path / "out"
    deploy = ["deploy", "--model", str(digits_int8_path), "--data", str(digits_test_npz), "--board", BOARD]
    deploy += ["--runtime", "c", "--labgrid-place", PLACE, "--samples", "6", "-o", str(out)]
    deploy += ["--set", "run.gates={require_bit_exact = true}"]
    assert farm.client("alice", "acquire").returncode == 0
    try:
        r = farm.mcudeploy("bob", *deploy)
    finally:
        assert farm.client("alice", "release").returncode == 0
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"labgrid place '{PLACE}' is held by" in r.stderr and "/alice" in r.stderr
    assert (out / "build-c" / "app.elf").is_file() and not (out / "run-c" / "results.jsonl").exists()

    r = farm.mcudeploy("bob", *deploy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "build-c: skipped (unchanged)" in r.stderr and "run-c: ran" in r.stderr, r.stderr
    s = json.loads((out / "run-c" / "summary.json").read_text())
    assert s["measured"] == 6 and s["failed"] == 0 and s["bit_exact_fraction"] == 1.0, s
    assert s["device"]["sha256"] == read_tflite(digits_int8_path).sha256
    assert "labgrid place" in (out / "report" / "report.md").read_text()
    assert re.search(r"acquired:\s+None", farm.client("bob", "show").stdout)


def test_farm_venv_has_labgrid_and_this_mcudeploy() -> None:
    out = subprocess.run(
        [str(FARM_BIN / "python"), "-c", "import labgrid, mcudeploy, serial; print(mcudeploy.__file__)"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(out.strip()).parent == ROOT / "mcudeploy", sys.path
