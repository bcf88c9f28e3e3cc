"""Stage ``codegen``: model + board + runtime → a complete CMake firmware project.

The project is rendered from ``firmware_templates/`` (Jinja2, StrictUndefined) in memory, checked
against the board's memory regions (:mod:`mcudeploy.firmware.memfit`) and only then written, whole, through
:func:`mcudeploy._io.atomic_directory`: a failed generation leaves nothing behind, and the same
inputs give a byte-identical tree (sorted iteration, no timestamps, no absolute paths).

Runtimes are a registry (:data:`mcudeploy.firmware.runtimes.RUNTIMES`): each entry says what it renders
into the project, what it needs at build time and how big its arena is. The app, platform layer,
linker script and CMake files are shared by every runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._io import atomic_directory, file_digest, json_text, write_bytes_atomic
from ..boards import Board
from ..errors import ConfigError, DatasetError, InputError, UnsupportedError
from ..ml.model import NPU_CUSTOM_OP, Model
from ..protocol import io_info
from .memfit import Demand, FitReport, check_fit
from .runtimes import MODEL_SYMBOL, GenContext, Runtime, RuntimeParts, get_runtime
from .templating import has_template, render, template_bytes, template_names

MODES = ("test-vectors", "protocol")
TARGETS = ("hardware", "qemu", "fvp")
MANIFEST = "mcudeploy.json"
PROJECT_MODEL = "model.tflite"  # the model a project was generated from, when no source embeds it
STACK_BYTES = 16 * 1024
HEAP_BYTES = 4 * 1024
APP_CODE_BYTES = 8 * 1024  # startup + platform + app + newlib-nano pieces (measured ~5 KB, rounded up)
APP_DATA_BYTES = 1024
DEFAULT_VECTORS = 8


# -- templates ----------------------------------------------------------------------------
def c_row(data: bytes) -> str:
    return ", ".join(f"0x{b:02x}" for b in data)


# -- the generated project ----------------------------------------------------------------
@dataclass(frozen=True)
class Project:
    path: Path
    board: str
    runtime: str
    mode: str
    target: str
    needs_tflm: bool
    arena_bytes: int
    fit: FitReport
    files: tuple[str, ...]
    manifest: dict[str, Any]


def load_project(path: str | Path) -> dict[str, Any]:
    """The manifest of a generated project (what :mod:`mcudeploy.firmware.build` needs to know)."""
    p = Path(path) / MANIFEST
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: not an mcudeploy project (no {MANIFEST})",
            hint="create one with `mcudeploy generate model.tflite --board B -o DIR`",
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{p}: unreadable project manifest ({e})") from None


def project_model(path: str | Path) -> Path | None:
    """The .tflite a generated project was built from (manifest ``model.file``), checked against the
    hash the manifest recorded; None for projects from before the manifest named it."""
    manifest = load_project(path)
    rel = manifest.get("model", {}).get("file")
    if not rel:
        return None
    p = Path(path) / rel
    if not p.is_file():
        raise InputError(f"{path}: the project's model {rel} is missing", hint="regenerate the project")
    sha = file_digest(p)
    if sha != manifest["model"].get("sha256"):
        raise InputError(
            f"{p}: sha256 {sha[:16]}… is not the model the project was generated from "
            f"({str(manifest['model'].get('sha256'))[:16]}…)",
            hint="regenerate the project, or pass --model with the right .tflite",
        )
    return p


def default_target(board: Board) -> str:
    """Hardware when the board has a flasher; else its simulator (the FVP first: it models the NPU)."""
    if board.flasher:
        return "hardware"
    for sim in ("fvp", "qemu"):
        if sim in board.simulator:
            return sim
    return "hardware"


def timer_config(board: Board, target: str) -> dict[str, Any]:
    """Which timer the firmware reads and the name its numbers travel with.

    QEMU models neither DWT nor the PMU; with ``-icount shift=N`` its SysTick advances 2^N ns per
    instruction, so SysTick ticks convert to instructions deterministically.
    """
    if target == "qemu":
        shift = int(board.simulator.get("qemu", {}).get("icount_shift", 0))
        return {"kind": "systick", "name": "icount-instructions", "icount": True, "icount_shift": shift}
    kind = board.timer if (board.timer != "dwt" or board.has_dwt) else "systick"
    return {"kind": kind, "name": f"{kind}-cycles", "icount": False, "icount_shift": 0}


def _check_uart(board: Board) -> None:
    """The board's UART kind has a firmware driver (platform/uart_KIND.inc.j2, which
    mcd_platform.c.j2 includes)."""
    name = f"platform/uart_{board.uart.kind}.inc.j2"
    if not has_template(name):
        drivers = (n for n in template_names("platform") if n.startswith("uart_"))
        have = sorted(n[len("uart_") : -len(".inc.j2")] for n in drivers)
        raise UnsupportedError(
            f"board '{board.name}': no firmware UART driver for uart kind '{board.uart.kind}' "
            f"(have: {', '.join(have)})",
            hint=f"add firmware_templates/{name} implementing mcd_uart_init/putc/getc",
        )


def _num_irqs(board: Board) -> int:
    irqs = [i for i in (board.uart.irq, board.npu.irq if board.npu else None) if i is not None]
    return max([32, *(i + 1 for i in irqs)])


# -- test vectors -------------------------------------------------------------------------
def _io_bytes(tensors: list[Any]) -> int:
    return sum(t.nbytes for t in tensors)


def _single_input(model: Model) -> Any:
    if len(model.inputs) != 1:
        raise UnsupportedError(f"{model.source}: test vectors support single-input models only")
    return model.inputs[0]


def default_inputs(model: Model, count: int) -> np.ndarray:
    """Deterministic inputs spanning the input dtype's range, seeded by the model's hash."""
    t = _single_input(model)
    rng = np.random.default_rng(int(model.sha256[:8], 16))
    info = np.iinfo(t.dtype) if np.dtype(t.dtype).kind in "iu" else None
    if info is None:
        return rng.standard_normal((count, *t.shape)).astype(t.dtype)
    return rng.integers(info.min, info.max, size=(count, *t.shape), endpoint=True, dtype=t.dtype)


def load_inputs(model: Model, source: str | Path, count: int) -> np.ndarray:
    """The first ``count`` test inputs from a file or folder, quantized with the model's input
    parameters when they are float (already-integer arrays of the input dtype pass unchanged)."""
    t = _single_input(model)
    from ..ml.datasets import describe_source, fit_shape, load_raw_array, load_representative

    shape = t.shape[1:]
    if describe_source(source) in ("npy", "npz"):
        # an integer array of the input dtype is taken as already quantized; the array is the one
        # load_representative reads (a .npz's only array, else the first of DEFAULT_KEYS)
        raw = load_raw_array(source)
        if raw.dtype == np.dtype(t.dtype) and raw.ndim >= 1:
            raw = raw[:count]
            if len(raw) == 0:
                raise DatasetError(f"{source}: contains no samples")
            return fit_shape(raw, tuple(shape), str(source))
    from ..ml.quantio import quantize_input

    return quantize_input(load_representative(source, shape, samples=count), t)


def golden_vectors(model: Model, reference: Model, inputs: np.ndarray) -> dict[str, Any]:
    """Inputs and the host TFLM outputs for them, as C initializer rows."""
    from ..ml.tflm_host import HostTFLM

    (tin,) = model.inputs
    x = np.asarray(inputs)
    if x.dtype != np.dtype(tin.dtype) or math.prod(x.shape[1:]) != tin.num_elements:
        raise InputError(
            f"{model.source}: test inputs are {x.dtype}{list(x.shape[1:])}, the model's input "
            f"'{tin.name}' is {tin.dtype}{list(tin.shape)} (pass already-quantized inputs)"
        )
    interp = HostTFLM(reference)
    ins, outs = [], []
    for sample in x:
        y = interp.run(sample)
        ins.append(c_row(np.ascontiguousarray(sample).tobytes()))
        outs.append(c_row(b"".join(np.ascontiguousarray(o).tobytes() for o in y)))
    return {"count": len(ins), "inputs": ins, "outputs": outs}


# -- model sources ------------------------------------------------------------------------
# The assembler pulls the model in (.incbin): no C parsing of a multi-megabyte array (19.5 s and 1.3 GB
# for a 10 MB model with gcc -O2, 0.02 s with .incbin; see FACTS), and the bytes stay a plain file.
MODEL_FORMAT = "incbin"


def _model_files(model: Model, arena_bytes: int, arena_note: str, runtime: Runtime) -> dict[str, bytes]:
    """mcd_model_meta.h and (for runtimes that parse the flatbuffer) the model array, from
    :mod:`mcudeploy.firmware.header`, placed in section .mcd_model (the board's model region)."""
    from . import header

    meta = header.render_meta_header(model, arena_bytes, arena_note=arena_note)
    files = {"src/" + header.META_HEADER: meta.encode("ascii")}
    if runtime.model_in_image:
        opts = header.check_options(
            model, MODEL_SYMBOL, MODEL_FORMAT, header.DEFAULT_ALIGN, ".mcd_model", "c"
        )
        files.update({f"src/{name}": data for name, data in header.render_model_sources(model, opts).items()})
    return files


# -- generate -----------------------------------------------------------------------------
def generate(
    model: Model,
    board: Board,
    out_dir: str | Path,
    *,
    runtime: str = "tflm",
    mode: str = "test-vectors",
    target: str | None = None,
    inputs: np.ndarray | None = None,
    num_vectors: int = DEFAULT_VECTORS,
    reference: Model | None = None,
    arena_bytes: int | None = None,
) -> Project:
    """Render a CMake firmware project for ``model`` on ``board`` into ``out_dir`` (replaced whole).

    ``inputs`` are raw (quantized) test inputs; without them ``num_vectors`` deterministic ones are
    drawn. Golden outputs come from the host TFLM interpreter running ``reference`` (default: the
    model itself; pass the pre-Vela int8 model for a Vela-compiled one).
    """
    rt = get_runtime(runtime)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    target = target or default_target(board)
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    board = board.for_target(target)  # a simulator may move roles out of regions it does not model
    if mode == "protocol" and not has_template("protocol/mcd_protocol.c"):
        raise UnsupportedError("protocol mode needs firmware_templates/protocol/mcd_protocol.c")
    _check_uart(board)
    ops = model.op_names()
    ctx = GenContext(model=model, board=board, runtime=rt, mode=mode, target=target, ops=ops)
    if ctx.has_npu_op and board.npu is None:
        raise UnsupportedError(
            f"{model.source} was compiled by Vela (ethos-u op) but board '{board.name}' has no NPU",
            hint="generate from the int8 model before `mcudeploy compile`, or pick an Ethos-U board",
        )

    parts = rt.render(ctx)
    if arena_bytes is not None:
        arena, arena_note = arena_bytes, "given by the user (--arena-bytes)"
    else:
        arena, arena_note = parts.arena_bytes, parts.arena_note
    files: dict[str, bytes] = dict(parts.files)
    files.update(_model_files(model, arena, arena_note, rt))
    # The project carries the .tflite it was generated from, so `run --project` can check the device
    # against it and compute golden outputs without being told (the C runtime compiles it to C).
    model_file = f"src/{MODEL_SYMBOL}.tflite"
    if model_file not in files:
        model_file = PROJECT_MODEL
        files[model_file] = model.data

    vectors = None
    if mode == "test-vectors" and reference is None and any(not op.builtin for op in model.operators):
        raise UnsupportedError(
            f"{model.source}: golden outputs come from the host TFLM interpreter, which cannot run "
            "its custom op(s)",
            hint="pass --reference with the int8 model from before `mcudeploy compile`, or --mode protocol",
        )
    if reference is not None and [(t.dtype, t.shape) for t in reference.inputs + reference.outputs] != [
        (t.dtype, t.shape) for t in model.inputs + model.outputs
    ]:
        raise InputError(f"reference {reference.source} has different inputs/outputs than {model.source}")
    if mode == "test-vectors":
        x = inputs if inputs is not None else default_inputs(model, num_vectors)
        vectors = golden_vectors(model, reference or model, x)
        files["src/mcd_test_vectors.h"] = render(
            "app/mcd_test_vectors.h.j2", {**ctx.template_vars(), "vectors": vectors}
        )

    num_irqs = _num_irqs(board)
    timer = timer_config(board, target)
    tv = {
        **ctx.template_vars(),
        "timer": timer,
        "semihosting": target in ("qemu", "fvp"),
        "num_irqs": num_irqs,
        "io_info": io_info(model),
    }
    files["src/mcd_board.h"] = render("platform/mcd_board.h.j2", tv)
    files["src/mcd_platform.h"] = template_bytes("platform/mcd_platform.h")
    files["src/mcd_platform.c"] = render("platform/mcd_platform.c.j2", tv)
    files["src/startup.c"] = render("platform/startup.c.j2", tv)
    files["src/syscalls.c"] = template_bytes("platform/syscalls.c")
    files["src/mcd_runtime.h"] = template_bytes("app/mcd_runtime.h")
    files["src/mcd_print.h"] = template_bytes("app/mcd_print.h")
    files["src/mcd_print.c"] = template_bytes("app/mcd_print.c")
    files["src/main.c"] = render("app/main.c.j2", tv)
    sources = ["src/startup.c", "src/syscalls.c", "src/mcd_platform.c", "src/mcd_print.c", "src/main.c"]
    if f"src/{MODEL_SYMBOL}.c" in files:
        sources.append(f"src/{MODEL_SYMBOL}.c")
    if mode == "protocol":
        files["src/mcd_harness.h"] = template_bytes("harness/mcd_harness.h")
        files["src/mcd_harness.c"] = template_bytes("harness/mcd_harness.c")
        files["src/mcd_protocol.h"] = template_bytes("protocol/mcd_protocol.h")
        files["src/mcd_protocol.c"] = template_bytes("protocol/mcd_protocol.c")
        sources += ["src/mcd_harness.c", "src/mcd_protocol.c"]
    sources += parts.sources

    # The memory-fit gate runs before a single file is written.
    vec_bytes = (vectors["count"] * (_io_bytes(model.inputs) + _io_bytes(model.outputs))) if vectors else 0
    demands = [
        Demand("vectors", (16 + num_irqs) * 4, "vector table"),
        Demand("code", APP_CODE_BYTES + rt.code_bytes + vec_bytes, f"app + {rt.name} runtime (estimate)"),
        Demand("data", APP_DATA_BYTES, "app data (estimate)"),
        Demand("arena", arena, "tensor arena"),
        Demand("stack", STACK_BYTES + HEAP_BYTES, "stack + heap"),
    ]
    if rt.model_in_image:
        demands.append(Demand("model", model.size, f"model {model.source}"))
    else:  # the runtime compiles the weights into its own constant data
        demands.append(Demand("code", model.weight_bytes(), f"{rt.name} runtime weights"))
    fit = check_fit(board, demands)

    files["linker.ld"] = render(
        "cmake/linker.ld.j2",
        {
            **tv,
            "regions": sorted(board.memory.values(), key=lambda r: r.origin),
            "placement": {role: board.region_for(role).name for role in _ROLES},
            "heap_bytes": HEAP_BYTES,
            "stack_bytes": STACK_BYTES,
        },
    )
    files["cmake/arm-none-eabi.cmake"] = template_bytes("cmake/arm-none-eabi.cmake")
    files["CMakeLists.txt"] = render(
        "cmake/CMakeLists.txt.j2",
        {
            **tv,
            "cpu_flags": board.gcc_flags,
            "sources": sources,
            "include_dirs": ["${CMAKE_CURRENT_SOURCE_DIR}/src", *parts.include_dirs],
            "defines": parts.defines,
            "cmake_fragments": [parts.cmake] if parts.cmake else [],
        },
    )

    manifest = {
        "generator": f"mcudeploy {__version__}",
        "model": {
            "source": model.source,
            "sha256": model.sha256,
            "size": model.size,
            "ops": ops,
            "file": model_file,
        },
        "board": board.name,
        "cpu": board.cpu,
        "runtime": rt.name,
        "needs_tflm": rt.needs_tflm,
        "mode": mode,
        "target": target,
        "timer": timer["name"],
        "arena_bytes": arena,
        "test_vectors": vectors["count"] if vectors else 0,
        "memory": fit.to_dict(),
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    files[MANIFEST] = json_text(manifest).encode()

    out = Path(out_dir)
    with atomic_directory(out) as stage:
        for rel in sorted(files):
            write_bytes_atomic(stage / rel, files[rel])
        if (out / "build").is_dir():  # keep the user's build folder: TFLM takes minutes to compile
            (out / "build").rename(stage / "build")
    return Project(
        path=out,
        board=board.name,
        runtime=rt.name,
        mode=mode,
        target=target,
        needs_tflm=rt.needs_tflm,
        arena_bytes=arena,
        fit=fit,
        files=tuple(sorted(files)),
        manifest=manifest,
    )


_ROLES = ("vectors", "code", "model", "data", "arena", "stack")


# -- the TFLM runtime ---------------------------------------------------------------------
# MicroMutableOpResolver method names that do not follow from the op name by the CamelCase rule.
_RESOLVER_EXCEPTIONS = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
    NPU_CUSTOM_OP: "EthosU",
    "TFLite_Detection_PostProcess": "DetectionPostprocess",
}
# Host TFLM (64-bit, reference kernels) measures less than the target needs: CMSIS-NN asks for
# scratch buffers (im2col) the reference kernels do not. The digits CNN measured 4,864 B on the host
# and needed 8,296 B with CMSIS-NN on the M55; a 35 KB model needed +10 % (FACTS).
TFLM_ARENA_MARGIN = 1.25
TFLM_ARENA_SLACK = 8 * 1024


def resolver_method(op: str) -> str:
    """``CONV_2D`` → ``AddConv2D``; ``ethos-u`` → ``AddEthosU``."""
    if op in _RESOLVER_EXCEPTIONS:
        return "Add" + _RESOLVER_EXCEPTIONS[op]
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", op):
        raise UnsupportedError(f"custom op '{op}' has no TFLM registration mcudeploy knows about")
    return "Add" + "".join(p if any(c.isdigit() for c in p) else p.capitalize() for p in op.split("_"))


def tflm_arena_bytes(model: Model) -> int:
    """Arena for TFLM: the measured minimum (host TFLM) plus a margin; for Vela models, every
    non-constant tensor (Vela's scratch tensors included) plus the interpreter's bookkeeping."""
    if any(not op.builtin for op in model.operators):
        need = sum(t.nbytes for sg in model.subgraphs for t in sg.tensors if not t.is_constant) + 8 * 1024
    else:
        from ..ml.tflm_host import measure_arena

        need = measure_arena(model)
    return math.ceil(need * TFLM_ARENA_MARGIN / 16.0) * 16 + TFLM_ARENA_SLACK


def render_tflm(ctx: GenContext) -> RuntimeParts:
    methods = [resolver_method(op) for op in ctx.ops]
    arena = tflm_arena_bytes(ctx.model)
    tv = {**ctx.template_vars(), "resolver_methods": methods, "arena_bytes": arena}
    files = {
        "src/mcd_runtime_tflm.cc": render("tflm/mcd_runtime_tflm.cc.j2", tv),
        "src/mcd_tflm_glue.cc": render("tflm/mcd_tflm_glue.cc.j2", tv),
    }
    sources = ["src/mcd_runtime_tflm.cc", "src/mcd_tflm_glue.cc"]
    if ctx.has_npu_op:
        files["src/mcd_npu.c"] = render("tflm/mcd_npu.c.j2", tv)
        files["src/mcd_npu.h"] = template_bytes("tflm/mcd_npu.h")
        files["src/ethosu/cmsis_compiler.h"] = template_bytes("tflm/ethosu_cmsis_compiler.h")
        sources.append("src/mcd_npu.c")
    return RuntimeParts(
        files=files,
        sources=sources,
        cmake=render("tflm/tflm.cmake.j2", tv).decode(),
        arena_bytes=arena,
        arena_note=f"TFLite Micro's need, measured on the host, x{TFLM_ARENA_MARGIN} + {TFLM_ARENA_SLACK} B"
        if not ctx.has_npu_op
        else "every non-constant tensor of the Vela model + 8 KiB for the interpreter",
    )
