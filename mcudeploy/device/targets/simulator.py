"""Simulator base: start a simulator headless with its UART on a TCP port, enforce a deadline, and
kill it on every exit path.

A simulator class only builds its command line (:meth:`Simulator.command`, pure and testable); the
base does the rest: a free local port, the process in its own session, stdout/stderr captured to a
log file (no pipe can fill and stall it), readiness detected before the caller connects (the UART is
opened with the CPU halted, so no boot output is lost), and the exit code the firmware passed
through semihosting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from ..._children import die_with_parent
from ...boards import Board
from ...errors import BoardError, LinkError, SimulatorError, ToolMissingError

SIMULATORS: dict[str, type[Simulator]] = {}


def register_simulator(cls: type[Simulator]) -> type[Simulator]:
    SIMULATORS[cls.name] = cls
    return cls


def free_port() -> int:
    """A TCP port that was free a moment ago (the simulator binds it; a lost race is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    """True once something listens on 127.0.0.1:port, found without connecting to it (a probe
    connection would be taken as the UART client and let the CPU run)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


class Simulator(ABC):
    """One simulator kind (QEMU, FVP) for one board."""

    name: ClassVar[str]
    executable: ClassVar[str]
    install_hint: ClassVar[str]
    env_var: ClassVar[str | None] = None  # environment variable that may name the executable
    ready_marker: ClassVar[bytes | None] = None  # log text that says the UART port is listening

    def __init__(self, board: Board, *, executable: str | None = None, extra_args: tuple[str, ...] = ()):
        if self.name not in board.simulator:
            have = ", ".join(sorted(board.simulator)) or "none"
            raise BoardError(f"board '{board.name}' has no [simulator.{self.name}] table (has: {have})")
        self.board = board
        self.config = dict(board.simulator[self.name])
        self._executable = executable
        self.extra_args = tuple(extra_args)

    def default_executable(self) -> str:
        """The program run when neither ``executable=`` nor ``env_var`` names one."""
        return self.executable

    def program(self) -> str:
        """``command()``'s first word: what ``start()`` found, else ``executable=`` or the default."""
        return self._executable or self.default_executable()

    def find_executable(self) -> str:
        name = self._executable or (os.environ.get(self.env_var) if self.env_var else None)
        name = name or self.default_executable()
        found = shutil.which(name)
        if found is None:
            raise ToolMissingError(f"simulator '{name}' not found on PATH", hint=self.install_hint)
        return found

    @abstractmethod
    def command(self, elf: Path, uart_port: int) -> list[str]:
        """The full command line that runs ``elf`` with the UART served on 127.0.0.1:``uart_port``."""

    @contextlib.contextmanager
    def start(self, elf: str | os.PathLike[str], *, timeout: float = 60.0) -> Iterator[RunningSimulator]:
        """Start the simulator; the context exit always kills it. ``timeout`` bounds the whole run."""
        elf = Path(elf)
        if not elf.is_file():
            raise SimulatorError(f"{elf}: no such firmware image")
        self._executable = self.find_executable()  # command() runs what was found (env_var included)
        running: RunningSimulator | None = None
        try:  # every exit, Ctrl-C while waiting included, kills it: its own session gets no SIGINT
            for _attempt in range(3):  # a port taken between free_port() and bind is retried
                if running is not None:
                    running.close()
                running = RunningSimulator(self, elf, free_port(), time.monotonic() + timeout)
                if running.wait_ready():
                    break
            else:
                assert running is not None
                raise SimulatorError(f"{self.name} did not start serving its UART\n{running.log_tail()}")
            yield running
        finally:
            if running is not None:
                running.close()


class RunningSimulator:
    """A started simulator: ``url`` for pyserial, ``wait()`` for the exit code, ``log`` for its output."""

    def __init__(self, sim: Simulator, elf: Path, port: int, deadline: float) -> None:
        self.sim = sim
        self.port = port
        self.url = f"socket://127.0.0.1:{port}"
        self.deadline = deadline
        self.command = sim.command(elf, port)
        self._final_log = b""  # the log once close() has dropped the file
        # Closed in close(), which every start() exit path calls.
        self._logf = tempfile.TemporaryFile(prefix=f"mcudeploy-{sim.name}-")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=self._logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole, children included
                preexec_fn=die_with_parent(),  # and killed by the kernel if mcudeploy is (kill -9)
            )
        except BaseException:
            self._logf.close()
            raise

    def _log_bytes(self) -> bytes:
        if self._logf.closed:
            return self._final_log
        self._logf.seek(0)
        return self._logf.read()

    @property
    def log(self) -> str:
        """Everything the simulator printed so far (stdout and stderr)."""
        return self._log_bytes().decode("utf-8", "replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 15.0) -> bool:
        """True once the UART port listens; False if the process died (e.g. port taken)."""
        end = min(self.deadline, time.monotonic() + timeout)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            marker = self.sim.ready_marker
            if _listening(self.port) or (marker is not None and marker in self._log_bytes()):
                return True
            time.sleep(0.02)
        return False

    def wait(self, timeout: float | None = None) -> int:
        """The simulator's exit status (the firmware's semihosting exit code). Kills it on timeout."""
        left = self.deadline - time.monotonic()
        limit = left if timeout is None else min(timeout, left)
        try:
            return self.proc.wait(timeout=max(limit, 0.0))
        except subprocess.TimeoutExpired:
            self.kill()
            raise SimulatorError(
                f"{self.sim.name} still running after its deadline; killed\n{self.log_tail()}",
                hint="the firmware may be stuck waiting on the UART or in a fault loop",
            ) from None

    def read_uart(self, timeout: float | None = None) -> bytes:
        """Connect to the UART and read until the simulator closes it (firmware exited) or the
        deadline passes. Use it for firmware that runs to completion (test-vector mode).

        Through :class:`Transport`, which keeps what arrives while the port opens: the simulator starts
        the CPU when we connect, and pyserial's own open() would drop the first lines (the boot banner)
        whenever this process is slower than the firmware, as on a loaded machine."""
        from .transport import Transport

        end = self.deadline if timeout is None else min(self.deadline, time.monotonic() + timeout)
        data = bytearray()
        link = Transport(self.url, open_timeout=max(0.5, min(10.0, end - time.monotonic())))
        try:
            link.open()
        except LinkError as e:
            raise SimulatorError(f"{e.message}\n{self.log_tail()}") from None
        try:
            while time.monotonic() < end:
                try:
                    chunk = link.read_some()
                except LinkError:  # socket closed: the simulator exited
                    break
                data += chunk
                if not chunk and self.proc.poll() is not None:
                    break
        finally:
            link.close()
        return bytes(data)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def close(self) -> None:
        self.kill()
        if not self._logf.closed:
            self._final_log = self._log_bytes()
            self._logf.close()
