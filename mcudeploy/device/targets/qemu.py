"""QEMU (``qemu-system-arm``) as a target: the board's ``[simulator.qemu]`` names the machine.

``-icount shift=N`` makes every instruction advance virtual time by 2^N ns, so timings are
deterministic and the firmware reports them as instructions (QEMU models no cycle counter).
Semihosting is on so the firmware's exit code becomes QEMU's exit status.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import BoardError
from .simulator import Simulator, register_simulator


@register_simulator
class QemuSimulator(Simulator):
    name = "qemu"
    executable = "qemu-system-arm"
    env_var = "MCUDEPLOY_QEMU"
    install_hint = "sudo apt-get install qemu-system-arm (or run `make setup`)"
    ready_marker = b"waiting for connection"

    @property
    def machine(self) -> str:
        machine = self.config.get("machine")
        if not isinstance(machine, str) or not machine:
            raise BoardError(f'{self.board.source}: [simulator.qemu] needs machine = "..." (e.g. mps3-an547)')
        return machine

    @property
    def icount_shift(self) -> int:
        shift = self.config.get("icount_shift", 0)
        if not isinstance(shift, int) or not 0 <= shift <= 10:
            raise BoardError(f"{self.board.source}: simulator.qemu.icount_shift must be an integer 0..10")
        return shift

    def command(self, elf: Path, uart_port: int) -> list[str]:
        return [
            self.program(),
            "-M", self.machine,
            "-nographic",
            "-monitor", "none",
            "-semihosting-config", "enable=on,target=native",
            "-serial", f"tcp:127.0.0.1:{uart_port},server=on,wait=on",
            "-icount", f"shift={self.icount_shift}",
            *self.extra_args,
            "-kernel", str(elf),
        ]  # fmt: skip
