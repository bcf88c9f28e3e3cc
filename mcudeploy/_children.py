"""Child processes that die with mcudeploy: a `kill -9` of a run must not leave its QEMU or FVP
running (nothing else would ever stop it; it keeps its UART port and a CPU busy).

Linux's PR_SET_PDEATHSIG has the kernel send SIGKILL to the child when the thread that started it
dies, however it dies. Elsewhere this is a no-op and the usual cleanup (context managers) remains.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` (None where the kernel has no such signal).

    Start such children from a thread that lives as long as they should (mcudeploy starts them
    from the main thread): the signal follows the thread that forked, not the process.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@functools.cache
def tool_version(path: str | None) -> str | None:
    """The first line ``PATH --version`` prints (None if it cannot run), once per process."""
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.strip().splitlines()
    return lines[0].strip() if lines else None
