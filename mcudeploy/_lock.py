"""One mcudeploy process per output folder: an fcntl lock on ``FOLDER/.mcudeploy.lock``.

Two ``deploy`` or ``run`` processes writing one folder would both run every stage and interleave
their results. The lock file holds the holder's pid, host and command line, so the one that waits
(or gives up) can say who holds it. The kernel drops an fcntl lock when its process dies, however it
dies: a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import InputError

LOCK_NAME = ".mcudeploy.lock"
WAIT_ENV = "MCUDEPLOY_LOCK_TIMEOUT"  # seconds to wait for a busy folder (default: as long as it takes)


class FolderBusy(InputError):
    """Another mcudeploy process holds the output folder."""


def _holder(f: int) -> str:
    try:
        os.lseek(f, 0, os.SEEK_SET)
        info = json.loads(os.read(f, 4096) or b"{}")
        return f"pid {info['pid']} on {info['host']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike[str],
    *,
    command: str | None = None,
    timeout: float | None = None,
    notice: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for this process; wait while another holds it.

    ``timeout`` (default: $MCUDEPLOY_LOCK_TIMEOUT, else no limit) bounds the wait; after it
    :class:`FolderBusy` names the holder. ``notice`` is told once when the wait begins.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise InputError(f"{folder}: cannot use it as an output folder ({e.strerror or e})") from None
    if timeout is None and os.environ.get(WAIT_ENV):
        try:
            timeout = float(os.environ[WAIT_ENV])
        except ValueError:
            raise InputError(f"{WAIT_ENV}={os.environ[WAIT_ENV]!r}: expected seconds") from None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                who = _holder(fd)
                if deadline is not None and time.monotonic() >= deadline:
                    raise FolderBusy(
                        f"{folder} is in use by {who}",
                        hint="wait for it to finish, or write to another output folder",
                    ) from None
                if notice is not None and not told:
                    notice(f"{folder} is in use by {who}: waiting for it to finish")
                    told = True
                time.sleep(0.2)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(["mcudeploy", *sys.argv[1:]]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info, sort_keys=True).encode() + b"\n", 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock
