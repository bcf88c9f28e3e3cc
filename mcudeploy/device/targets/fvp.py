"""Arm Corstone FVPs (FVP_Corstone_SSE-300_Ethos-U55/-U65, FVP_Corstone_SSE-310) on the shared
simulator base: headless, a wall-clock deadline, the process group killed on every exit path.

The model name comes from the board's ``[simulator.fvp]`` table; ``MCUDEPLOY_FVP`` may point at the
binary. ``ethosu.num_macs`` is the board's NPU MAC count, checked against the Vela accelerator the
model was compiled for (a mismatch runs wrong on the NPU). The UART is either the telnet terminal
in raw mode on a TCP port (protocol mode: binary frames, so no telnet escaping) or stdout
(``uart0.out_file=-``, test-vector mode). Parameters follow the command line TFLM's CI uses (FACTS).
NPU cycles come from the Ethos-U PMU through the runtime (``mcd_runtime_npu_cycles``), not from here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar

from ...boards import Board
from ...errors import BoardError
from .simulator import Simulator, register_simulator

UART_MODES = ("telnet", "stdout")


@register_simulator
class FvpSimulator(Simulator):
    name = "fvp"
    executable = "FVP_Corstone_SSE-300_Ethos-U55"
    env_var = "MCUDEPLOY_FVP"
    install_hint = (
        "run `mcudeploy setup fvp corstone-300 --accept-eula` (offline: --from Arm's archive), or "
        "download the Arm Ecosystem FVP for Corstone-300 and set MCUDEPLOY_FVP to its "
        "FVP_Corstone_SSE-300_Ethos-U55 binary"
    )
    ready_marker: ClassVar[bytes | None] = b"Listening for serial connection on port"

    def __init__(
        self,
        board: Board,
        *,
        executable: str | None = None,
        extra_args: tuple[str, ...] = (),
        accelerator: str | None = None,
        uart: str = "telnet",
        timelimit_s: float | None = None,
        stat: bool = True,
    ) -> None:
        super().__init__(board, executable=executable, extra_args=extra_args)
        if uart not in UART_MODES:
            raise BoardError(f"FVP uart must be one of {', '.join(UART_MODES)}, got {uart!r}")
        if accelerator is not None:
            from ...ml.vela import check_mac_config

            check_mac_config(accelerator, board)
        self.uart = uart
        self.timelimit_s = timelimit_s
        self.stat = stat

    @property
    def model(self) -> str:
        m = self.config.get("model")
        if not isinstance(m, str) or not m:
            raise BoardError(
                f'{self.board.source}: [simulator.fvp] needs model = "FVP_Corstone_SSE-300_Ethos-U55"'
            )
        return m

    def default_executable(self) -> str:
        return self.model

    def find_executable(self) -> str:
        """``executable=``, MCUDEPLOY_FVP, PATH, then the FVPs `mcudeploy setup fvp` installed."""
        if not self._executable and not os.environ.get(self.env_var or "") and not shutil.which(self.model):
            from ...setup.fvp import find_installed_executable

            found = find_installed_executable(self.model)
            if found:
                return found
        return super().find_executable()

    def params(self, uart_port: int) -> list[tuple[str, str]]:
        """The ``-C name=value`` parameters, in a fixed order."""
        p: list[tuple[str, str]] = []
        if self.board.npu is not None:
            p.append(("ethosu.num_macs", str(self.board.npu.macs)))
        p += [
            ("mps3_board.visualisation.disable-visualisation", "1"),
            ("mps3_board.telnetterminal0.start_telnet", "0"),  # never launch a telnet client window
            ("mps3_board.uart0.unbuffered_output", "1"),
            ("mps3_board.uart0.shutdown_on_eot", "1"),  # a 0x04 on UART0 ends the simulation
        ]
        if self.uart == "stdout":
            p.append(("mps3_board.uart0.out_file", "-"))
        else:
            p += [
                ("mps3_board.telnetterminal0.start_port", str(uart_port)),
                ("mps3_board.telnetterminal0.mode", "raw"),  # binary frames: no telnet IAC escaping
                ("mps3_board.telnetterminal0.quiet", "0"),  # keep the "Listening ..." line: our ready marker
            ]
        return p

    def command(self, elf: Path, uart_port: int) -> list[str]:
        cmd = [self.program()]
        for k, v in self.params(uart_port):
            cmd += ["-C", f"{k}={v}"]
        if self.timelimit_s is not None:
            cmd += ["--timelimit", f"{self.timelimit_s:g}"]  # wall-clock seconds, a backstop to our deadline
        if self.stat:
            cmd.append("--stat")  # instruction and time statistics on exit, kept in the run log
        return [*cmd, *self.extra_args, "-a", str(elf)]
