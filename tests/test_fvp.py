"""The Corstone FVP runner: its command line against Arm's documented parameters (FACTS), and a real
run when MCUDEPLOY_FVP points at an FVP binary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcudeploy.boards import get_board
from mcudeploy.device.targets import SIMULATORS, simulator_for
from mcudeploy.device.targets.fvp import FvpSimulator
from mcudeploy.errors import BoardError, ConfigError

# The command line TFLM's CI runs the Corstone-300 FVP with (shared FACTS, "FVP names").
TFLM_CI = (
    "FVP_Corstone_SSE-300_Ethos-U55 -C ethosu.num_macs=256 "
    "-C mps3_board.visualisation.disable-visualisation=1 "
    "-C mps3_board.telnetterminal0.start_telnet=0 -C mps3_board.uart0.out_file=- "
    "-C mps3_board.uart0.unbuffered_output=1 -C mps3_board.uart0.shutdown_on_eot=1 --stat app.elf"
)


def params(cmd: list[str]) -> dict[str, str]:
    return dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "-C")


def test_one_rule_picks_the_simulator_for_cli_deploy_and_plugin() -> None:
    def name(board: str, **kw) -> str | None:
        sim = simulator_for(get_board(board), **kw)
        return sim.name if sim else None

    assert name("corstone-300") == "qemu"  # the one CI has
    assert name("corstone-300", npu=True) == "fvp"  # only the FVP models the Ethos-U
    assert name("corstone-300", requested="fvp") == "fvp"
    assert name("corstone-310") == "fvp" and name("qemu-an547", npu=True) == "qemu"
    assert name("qemu-an547", requested="fvp") is None and name("nucleo-h743zi2") is None


def test_registered_on_the_shared_simulator_base() -> None:
    assert SIMULATORS["fvp"] is FvpSimulator and SIMULATORS["qemu"].__mro__[1] is FvpSimulator.__mro__[1]


def test_stdout_mode_uses_every_parameter_of_the_documented_command_line() -> None:
    board = get_board("corstone-300")
    cmd = FvpSimulator(board, uart="stdout").command(Path("app.elf"), 5000)
    ref = TFLM_CI.split()
    assert cmd[0] == board.simulator["fvp"]["model"] == ref[0]
    want = params(ref) | {"ethosu.num_macs": str(board.npu.macs)}  # the MAC count is the board's
    assert params(cmd) == want
    assert "--stat" in cmd and cmd[-2:] == ["-a", "app.elf"]


def test_telnet_mode_serves_the_uart_raw_on_the_given_port_with_a_timelimit() -> None:
    cmd = FvpSimulator(get_board("corstone-300"), timelimit_s=120).command(Path("/x/app.elf"), 6123)
    p = params(cmd)
    assert p["mps3_board.telnetterminal0.start_port"] == "6123"
    assert p["mps3_board.telnetterminal0.mode"] == "raw"  # binary frames: no telnet escaping
    assert p["mps3_board.telnetterminal0.start_telnet"] == "0"
    assert "mps3_board.uart0.out_file" not in p
    assert cmd[cmd.index("--timelimit") + 1] == "120"
    assert p["ethosu.num_macs"] == "128"


def test_num_macs_is_checked_against_the_vela_config() -> None:
    board = get_board("corstone-300")
    FvpSimulator(board, accelerator="ethos-u55-128")
    with pytest.raises(ConfigError, match="ethos-u55-256"):
        FvpSimulator(board, accelerator="ethos-u55-256")


def test_boards_without_an_fvp_are_refused() -> None:
    with pytest.raises(BoardError, match=r"no \[simulator.fvp\]"):
        FvpSimulator(get_board("qemu-an547"))
    with pytest.raises(BoardError, match="uart"):
        FvpSimulator(get_board("corstone-300"), uart="jtag")


@pytest.mark.fvp
def test_fvp_runs_the_digits_model_through_the_protocol(
    digits_int8_path: Path, digits_int8, digits_test_npz: Path, tmp_path: Path
) -> None:
    import json

    from mcudeploy.boards import get_board as gb
    from mcudeploy.cli import run as cli_run
    from mcudeploy.firmware.build import build
    from mcudeploy.firmware.codegen import generate

    assert os.environ.get("MCUDEPLOY_FVP")
    proj = tmp_path / "proj"
    generate(digits_int8, gb("corstone-300"), proj, runtime="c", mode="protocol", target="fvp")
    build(proj)
    out = tmp_path / "out"
    rc = cli_run(
        "run",
        "--board",
        "corstone-300",
        "--project",
        proj,
        "--model",
        digits_int8_path,
        "--data",
        digits_test_npz,
        "--simulator",
        "fvp",
        "--limit",
        50,
        "--out",
        out,
    )
    s = json.loads((out / "summary.json").read_text())
    assert rc == 0 and s["measured"] == 50 and s["bit_exact_fraction"] == 1.0
