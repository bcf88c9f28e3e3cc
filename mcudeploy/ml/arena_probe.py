"""The TFLM arena search, run in a child process: native crashes must not take mcudeploy down.

The tflite-micro Python interpreter raises RuntimeError for most too-small arenas, but for some
sizes it segfaults the whole process (FACTS.md: 16 B and 16 KiB on a 9 MB Dense model). So
:func:`search` runs in ``python -m mcudeploy.ml.arena_probe`` (which never imports TensorFlow), and
each probe below the known-good size runs in a forked grandchild: a probe that crashes counts as
"does not fit" and the search goes on; a crash of the child itself becomes an mcudeploy error in
the parent (:func:`mcudeploy.ml.tflm_host.measure_arena`).

Protocol: the model's bytes (already validated by the parent) on stdin, its inputs as JSON
``[[shape, dtype], ...]`` in argv[1]; one JSON object on stdout:
``{"recorded": N, "minimum": M, "crashed": [sizes]}`` or ``{"error": "TFLM's message"}``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from typing import Any

import numpy as np

from ._tf import captured_fd2

DEFAULT_ARENA = 4 * 1024 * 1024
MAX_ARENA = 512 * 1024 * 1024
PROBE_SECONDS = 60  # one probe that runs longer than this is hung in native code: "does not fit"
_ALLOC_RE = re.compile(rb"Arena allocation total (\d+) bytes")

# exit codes of a probe grandchild
_FITS, _TOO_SMALL = 0, 10


def _runtime() -> Any:
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _run(data: bytes, inputs: list[tuple[tuple[int, ...], str]], size: int) -> Any:
    interp = _runtime().Interpreter.from_bytes(data, arena_size=size)
    for i, (shape, dtype) in enumerate(inputs):
        interp.set_input(np.zeros(shape, dtype), i)
    interp.invoke()
    return interp


def recorded_allocation(data: bytes, inputs: list[tuple[tuple[int, ...], str]]) -> int:
    """Bytes TFLM records as allocated with the default arena (raises RuntimeError if it cannot run)."""
    interp = _run(data, inputs, DEFAULT_ARENA)
    with captured_fd2() as captured:
        interp.print_allocations()
    m = _ALLOC_RE.search(b"".join(captured))
    if not m:  # pragma: no cover - depends on the tflite-micro build
        raise RuntimeError("the tflite-micro runtime did not report its arena allocation")
    return int(m.group(1))


def probe(data: bytes, inputs: list[tuple[tuple[int, ...], str]], size: int) -> str:
    """'fits', 'too small' or 'crashed (SIGNAL)': one prepare + invoke in a forked process."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the grandchild
        code = _TOO_SMALL
        try:
            signal.alarm(PROBE_SECONDS)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # TFLM prints its allocation failures to fd 2
            _run(data, inputs, size)
            code = _FITS
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        return {_FITS: "fits", _TOO_SMALL: "too small"}.get(os.WEXITSTATUS(status), "crashed (exit)")
    return f"crashed ({signal.Signals(os.WTERMSIG(status)).name})"


def search(data: bytes, inputs: list[tuple[tuple[int, ...], str]]) -> dict[str, Any]:
    """The smallest arena (multiple of 16) TFLM runs the model in, starting from its recorded allocation."""
    signal.alarm(PROBE_SECONDS)  # a hang in native code ends this process, and the parent says so
    try:
        recorded = recorded_allocation(data, inputs)
    except RuntimeError as e:
        return {"error": str(e)}
    finally:
        signal.alarm(0)
    crashed: list[int] = []

    def fits(size: int) -> bool:
        outcome = probe(data, inputs, size)
        if outcome.startswith("crashed"):
            crashed.append(size)
        return outcome == "fits"

    lo, hi = 0, max(-(-recorded // 16) * 16, 16)
    while not fits(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_ARENA:
            return {"error": f"TFLM needs more than {MAX_ARENA >> 20} MiB of arena"}
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if mid <= lo:
            break
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return {"recorded": recorded, "minimum": hi, "crashed": crashed}


def main(argv: list[str]) -> int:
    inputs = [(tuple(shape), str(dtype)) for shape, dtype in json.loads(argv[1])]
    data = sys.stdin.buffer.read()
    print(json.dumps(search(data, inputs)), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child by tflm_host.measure_arena
    sys.exit(main(sys.argv))
