"""Render the standalone C runtime for a model: kernels + one generated source with weights,
parameters, the static memory plan and ``mcd_invoke``.

:func:`render_c_runtime` writes a self-contained folder (handy for host builds and tests);
its :func:`render_parts` is the ``c`` entry of :data:`mcudeploy.firmware.runtimes.RUNTIMES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import write_bytes_atomic
from ...boards import Board
from ...ml.model import Model
from ..cnames import c_comment_text
from ..runtimes import GenContext, RuntimeParts
from ..templating import render, template_bytes, template_names
from .lower import ARCHS, SCRATCH, Program, cpu_arch, lower
from .planner import MemoryPlan, plan_memory


def kernel_files() -> list[str]:
    """The kernel library: every ``mcd_kernels*.h``/``.c`` of the runtime_c templates (sorted), so a new
    kernel file joins firmware, host executables and the ctypes library without touching this list."""
    names = template_names("runtime_c")
    return sorted(n for n in names if n.startswith("mcd_kernels") and n.endswith((".h", ".c")))


def kernel_sources() -> list[str]:
    return [n for n in kernel_files() if n.endswith(".c")]


C_TYPES = {"int8": ("int8_t", np.int8), "int32": ("int32_t", np.int32), "float32": ("float", np.float32)}
# kernels + runtime glue, -O2 Cortex-M55 (measured from the digits build, rounded up)


# each int8 value as a fixed-width cell ("-128, " ... "   5, "): a table lookup emits megabytes fast
_INT8_LUT = np.frombuffer(b"".join(f"{v:>4}, ".encode() for v in range(-128, 128)), np.uint8).reshape(256, 6)


def _c_numbers(values: np.ndarray, per_line: int = 16) -> str:
    """Numbers as a C initializer body (no trailing comma)."""
    flat = values.reshape(-1)
    if flat.dtype == np.int8:
        cells = _INT8_LUT[flat.astype(np.int16) + 128]
        n = len(cells)
        pad = (-n) % per_line
        rows = np.concatenate([cells, np.zeros((pad, 6), np.uint8)]).reshape(-1, per_line * 6)
        lines = np.concatenate([np.full((len(rows), 4), ord(" "), np.uint8), rows], axis=1)
        lines[:, -1] = ord("\n")
        text = lines.tobytes()
        # drop the padding cells of a short last row, then the final ", " / ",\n"
        text = text[: len(text) - (pad * 6 + 2)] if pad else text[:-2]
        return text.decode("ascii")
    text_cells = [f"{float(v)!r}f" for v in flat] if flat.dtype == np.float32 else [str(int(v)) for v in flat]
    rows_t = [", ".join(text_cells[i : i + per_line]) for i in range(0, len(text_cells), per_line)]
    return ",\n".join("    " + r for r in rows_t)


@dataclass(frozen=True)
class CRuntime:
    """A lowered, planned model and the C sources that run it."""

    program: Program
    plan: MemoryPlan
    files: dict[str, bytes]  # file name -> content

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes


def _symbol(i: int) -> str:
    return f"mcd_t{i}"


def board_arch(board: Board) -> str:
    """The kernel path of :data:`ARCHS` the board's CPU compiles to."""
    return cpu_arch(board.cpu, board.has_mve)


def build_c_runtime(model: Model, arch: str = "host") -> CRuntime:
    """Lower + plan + render, in memory, for kernel path ``arch`` (:data:`ARCHS`; the generated source
    refuses to compile for another). Raises UnsupportedError naming an op the runtime lacks."""
    prog = lower(model, arch)
    plan = plan_memory(prog, arch)
    consts = []
    for i in prog.constants:
        t = prog.tensor(i)
        ctype, np_type = C_TYPES.get(t.dtype, (None, None))
        if ctype is None:
            raise AssertionError(t.dtype)  # lowering only admits the types above
        arr = np.frombuffer(t.data or b"", dtype=np.dtype(np_type).newbyteorder("<"))
        consts.append(
            {
                "index": i,
                "name": c_comment_text(t.name, max_len=None),  # whole: TF names run long
                "shape": list(t.shape),
                "dtype": t.dtype,
                "ctype": ctype,
                "symbol": _symbol(i),
                "count": max(arr.size, 1),
                "body": _c_numbers(arr) if arr.size else "    0",
            }
        )

    def ref(t: int, step: int) -> str:
        if t == SCRATCH:
            at = plan.scratch_offset(step)
            return "NULL" if at is None else f"mcd_arena + {at}"
        if t < 0:
            return "NULL"
        if prog.tensor(t).is_constant:
            return _symbol(t)
        return f"mcd_arena + {plan.offset(prog.storage(t))}"

    steps = []
    for k, s in enumerate(prog.steps):
        steps.append(
            {
                "op_index": s.op_index,
                "opcode": s.opcode,
                "kernel": s.kernel,
                "params": s.params,
                "body": _c_numbers(np.array(s.params, dtype=np.int64)),
                "args": [ref(t, k) for t in s.inputs],
                "out_offset": plan.offset(prog.storage(s.output)),
            }
        )

    def io(tensors: list[int]) -> list[dict[str, int]]:
        out, pos = [], 0
        for t in tensors:
            n = model.tensors[t].nbytes
            out.append({"offset": plan.offset(prog.storage(t)), "pos": pos, "nbytes": n})
            pos += n
        return out

    ins, outs = io(list(model.main.inputs)), io(list(model.main.outputs))
    tv: dict[str, Any] = {
        "source": c_comment_text(model.source),
        "sha256": model.sha256,
        "constants": consts,
        "steps": steps,
        "inputs": ins,
        "outputs": outs,
        "arena_bytes": plan.arena_bytes,
        "arena_alloc": max(plan.arena_bytes, 16),
        "arch": arch,
        "arch_code": ARCHS.index(arch) + 1,
        "naive_bytes": plan.naive_bytes(),
        "kernel_headers": [n for n in kernel_files() if n.endswith(".h")],
        "input_bytes": sum(i["nbytes"] for i in ins),
        "output_bytes": sum(o["nbytes"] for o in outs),
    }
    files = {name: template_bytes(f"runtime_c/{name}") for name in kernel_files()}
    files["mcd_runtime_c.h"] = render("runtime_c/mcd_runtime_c.h.j2", tv)
    files["mcd_runtime_c.c"] = render("runtime_c/mcd_runtime_c.c.j2", tv)
    return CRuntime(prog, plan, files)


def render_c_runtime(model: Model, out_dir: str | Path, arch: str = "host") -> list[Path]:
    """Write the C runtime for ``model`` and kernel path ``arch`` (plus the shared mcd_runtime.h) into
    ``out_dir``."""
    rt = build_c_runtime(model, arch)
    files = dict(rt.files)
    files["mcd_runtime.h"] = template_bytes("app/mcd_runtime.h")
    out = Path(out_dir)
    return [write_bytes_atomic(out / name, files[name]) for name in sorted(files)]


def render_parts(ctx: GenContext) -> RuntimeParts:
    """The ``c`` entry of :data:`mcudeploy.firmware.runtimes.RUNTIMES`: the runtime's files in a project."""
    rt = build_c_runtime(ctx.model, board_arch(ctx.board))
    files = {f"src/{name}": data for name, data in sorted(rt.files.items())}
    return RuntimeParts(
        files=files,
        sources=[*(f"src/{n}" for n in kernel_sources()), "src/mcd_runtime_c.c"],
        arena_bytes=max(rt.arena_bytes, 16),
        arena_note="peak of the C runtime's static memory plan",
    )
