"""Run the C runtime on the host: the generated model as an executable, or single kernels via ctypes.

Both paths compile with the host C compiler, once per model (executable) or once per process
(kernel library), so property tests call kernels thousands of times without recompiling.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from ...errors import BuildError, TargetError, ToolMissingError
from ...ml.model import Model
from ..templating import template_bytes
from .codegen import kernel_files, kernel_sources, render_c_runtime
from .lower import SCRATCH, Program
from .planner import plan_memory

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing")


def host_cc() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ToolMissingError("no host C compiler (gcc or cc) on PATH", hint="apt-get install gcc")
    return cc


def _compile(args: list[str]) -> None:
    r = subprocess.run(args, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise BuildError(f"host compile failed: {' '.join(args)}\n{r.stderr[-4000:]}")


def build_host_executable(model: Model, work_dir: str | Path) -> Path:
    """Generate the C runtime for ``model`` into ``work_dir`` and link it with the host driver."""
    work = Path(work_dir)
    render_c_runtime(model, work)
    (work / "host_main.c").write_bytes(template_bytes("runtime_c/host_main.c"))
    exe = work / "mcd_host"
    srcs = [str(work / n) for n in (*kernel_sources(), "mcd_runtime_c.c", "host_main.c")]
    _compile([host_cc(), *CFLAGS, "-I", str(work), *srcs, "-o", str(exe), "-lm"])
    return exe


def run_host_executable(exe: str | Path, model: Model, x: np.ndarray, timeout: float = 120.0) -> np.ndarray:
    """Run every sample of ``x`` (raw, the model input's dtype) through the executable in one process."""
    t_in, t_out = model.inputs[0], model.outputs[0]
    data = np.ascontiguousarray(np.asarray(x).astype(t_in.dtype)).tobytes()
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise TargetError(f"{exe} exited with {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    out = np.frombuffer(r.stdout, dtype=t_out.dtype)
    return out.reshape(len(x), *t_out.shape[1:]) if len(x) else out


# -- kernels via ctypes ---------------------------------------------------------------------
@cache
def kernel_library() -> ctypes.CDLL:
    """The kernel library (every mcd_kernels*.c) compiled once per process into a shared library."""
    tmp = Path(tempfile.mkdtemp(prefix="mcd_kernels_"))
    try:
        for name in kernel_files():
            (tmp / name).write_bytes(template_bytes(f"runtime_c/{name}"))
        lib = tmp / "libmcd_kernels.so"
        srcs = [str(tmp / n) for n in kernel_sources()]
        _compile([host_cc(), *CFLAGS, "-shared", "-fPIC", *srcs, "-o", str(lib), "-lm"])
        return ctypes.CDLL(str(lib))  # mapped: the files can go (nothing left in the temp dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_program(prog: Program, *inputs: np.ndarray) -> list[np.ndarray]:
    """Execute a lowered program step by step through the kernel library, every activation at its
    offset of the static memory plan for the host's kernel path in one arena, scratch included (so
    outputs written over inputs and scratch next to live tensors are exercised)."""
    lib = kernel_library()
    m = prog.model
    plan = plan_memory(prog)
    arena = np.zeros(max(plan.arena_bytes, 16), np.uint8)
    bufs: dict[int, np.ndarray] = {}

    def buf(t: int) -> np.ndarray:
        s = prog.storage(t)
        if s not in bufs:
            tensor = prog.tensor(s)
            if tensor.is_constant:
                bufs[s] = np.frombuffer(tensor.data, dtype=tensor.dtype).copy()
            else:
                at = plan.offset(s)
                bufs[s] = arena[at : at + tensor.nbytes].view(tensor.dtype).reshape(tensor.shape)
        return bufs[s]

    for t, x in zip(m.main.inputs, inputs, strict=True):
        buf(t)[...] = np.asarray(x).astype(m.tensors[t].dtype).reshape(m.tensors[t].shape)

    for i, step in enumerate(prog.steps):
        params = np.array(step.params, dtype=np.int32)
        ptrs = (ctypes.c_void_p * max(len(step.inputs), 1))()
        at = plan.scratch_offset(i)
        scratch = None if at is None else arena.ctypes.data + at
        for k, t in enumerate(step.inputs):
            ptrs[k] = scratch if t == SCRATCH else None if t < 0 else buf(t).ctypes.data
        out = buf(step.output)
        fn = getattr(lib, step.kernel)
        fn.restype = None
        fn(params.ctypes.data_as(ctypes.c_void_p), ptrs, ctypes.c_void_p(out.ctypes.data))
    return [buf(t).reshape(m.tensors[t].shape).copy() for t in m.main.outputs]
