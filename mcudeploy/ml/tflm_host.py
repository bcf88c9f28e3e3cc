"""The host TFLite Micro interpreter (``tflite-micro`` package): the reference for bit-exactness.

TFLM's reference kernels run here on the host; every "byte-identical" claim in mcudeploy (C
runtime, device outputs, golden vectors) is made against this interpreter. Models are validated
by :mod:`mcudeploy.ml.model` before their bytes reach TFLM, which is not a validator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ToolMissingError, UnsupportedError
from .arena_probe import DEFAULT_ARENA
from .model import Model

_PROBE_MODULE = "mcudeploy.ml.arena_probe"  # the child that searches (tests swap in one that crashes)
_PKG_PARENT = str(Path(__file__).resolve().parents[2])  # so the child imports this mcudeploy


def _runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ToolMissingError(
            f"the tflite-micro package is missing ({e})", hint="pip install tflite-micro"
        ) from None
    return runtime


def _check_runnable(model: Model) -> None:
    custom = sorted({op.opcode for op in model.operators if not op.builtin})
    if custom:
        raise UnsupportedError(
            f"{model.source}: the host TFLM interpreter cannot run custom op(s) {', '.join(custom)}",
            hint="Vela-compiled models (ethos-u op) run only on an NPU target or the Corstone FVP; "
            "use the int8 model from before `mcudeploy compile` for host checks",
        )


class HostTFLM:
    """One TFLM interpreter for one model; ``run`` takes and returns raw (already quantized) arrays."""

    def __init__(self, model: Model, arena_size: int = DEFAULT_ARENA) -> None:
        _check_runnable(model)
        self.model = model
        rt = _runtime()
        try:
            self._interp = rt.Interpreter.from_bytes(model.data, arena_size=arena_size)
        except RuntimeError as e:
            raise UnsupportedError(f"{model.source}: TFLM could not prepare the model: {e}") from None
        self._in = model.inputs
        self._out = model.outputs

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run one inference. Each input is reshaped to its tensor's shape and cast to its dtype."""
        if len(inputs) != len(self._in):
            raise ValueError(f"model has {len(self._in)} inputs, got {len(inputs)}")
        for i, (t, x) in enumerate(zip(self._in, inputs, strict=True)):
            arr = np.ascontiguousarray(np.asarray(x).reshape(t.shape).astype(t.dtype, copy=False))
            self._interp.set_input(arr, i)
        self._interp.invoke()
        return [np.array(self._interp.get_output(i)) for i in range(len(self._out))]

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """Run a single-input, single-output model over a batch; returns outputs stacked on axis 0."""
        outs = [self.run(sample)[0].reshape(self._out[0].shape[1:] or (1,)) for sample in x]
        return np.stack(outs) if outs else np.zeros((0, *self._out[0].shape[1:]), self._out[0].dtype)


def run_tflm(model: Model, x: np.ndarray) -> np.ndarray:
    """Outputs of the host TFLM interpreter for every sample of ``x`` (raw dtype of the model's I/O)."""
    return HostTFLM(model).run_batch(x)


def measure_arena(model: Model) -> int:
    """The TFLM arena the model needs: the smallest arena size (multiple of 16) that the runtime accepts.

    The recorded allocation is the starting guess; a binary search then finds the true minimum,
    which includes the interpreter's own bookkeeping. The search runs in a child process
    (:mod:`mcudeploy.ml.arena_probe`): TFLM segfaults for some too-small arenas, and a crash there
    must end in an error naming the model, not take mcudeploy down.
    """
    _check_runnable(model)
    inputs = json.dumps([[list(t.shape), t.dtype] for t in model.inputs])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [_PKG_PARENT, os.environ.get("PYTHONPATH")])),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", _PROBE_MODULE, inputs],
            input=model.data,
            capture_output=True,
            env=env,
            check=False,
        )
    except OSError as e:  # pragma: no cover - the Python that runs us cannot be started again
        raise ToolMissingError(f"cannot start a child Python to measure the arena ({e})") from None
    hint = "pass --arena-bytes N to give the arena size yourself"
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        raise UnsupportedError(
            f"{model.source}: the host TFLite Micro interpreter crashed ({sig}) while measuring the arena",
            hint=hint,
        )
    try:
        result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise UnsupportedError(
            f"{model.source}: the arena measurement failed (exit {proc.returncode}): {' / '.join(tail)}",
            hint=hint,
        ) from None
    if "error" in result:
        raise UnsupportedError(
            f"{model.source}: TFLM could not prepare the model: {result['error']}", hint=hint
        )
    return int(result["minimum"])
