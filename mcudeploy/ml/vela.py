"""Stage ``vela``: a fully int8 .tflite + a board (or an accelerator) -> a Vela-compiled model + report.

Vela runs as a subprocess (``python -m ethosu.vela``) in a private temp folder: its C++ core prints
from native code and keeps global state, and a crash there must not take mcudeploy down. Its
numbers are read from the CSV files it writes, never from its stdout (see :mod:`.vela_report`).

Before Vela runs, three checks give precise errors: the fully-int8 gate, the Vela configuration
(ini, system config, memory mode — read by Vela's own parser, in-process) and the MAC-config guard
against the board's NPU. Budgets and the memory fit are separate gates a caller (or the CLI) applies.
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .._io import json_text, write_bytes_atomic, write_text_atomic
from ..boards import NPU_MACS, Board, vela_ini_path
from ..errors import (
    BudgetError,
    CompileError,
    ConfigError,
    MemoryFitError,
    ToolMissingError,
    UnsupportedError,
)
from .model import NPU_CUSTOM_OP, Model, parse_tflite
from .vela_report import (
    VelaReport,
    cpu_ops_of,
    read_cpu_reasons,
    read_per_layer_csv,
    read_summary_csv,
)

ACCELERATORS: tuple[str, ...] = tuple(f"{t}-{m}" for t, macs in NPU_MACS.items() for m in macs)
OPTIMISE_MODES = ("Performance", "Size")
# Used when neither a board nor --system-config names one: Arm's configs from Vela's own vela.ini,
# the pairs Arm's ML embedded evaluation kit uses for each NPU family.
DEFAULT_SYSTEM = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65": ("Ethos_U65_High_End", "Dedicated_Sram_384KB"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB"),
}
VELA_TIMEOUT_S = 600.0
_STEM_RE = re.compile(r"[^A-Za-z0-9_.-]+")


# -- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class VelaConfig:
    """Everything that selects one Vela compilation, resolved and checked."""

    accelerator: str
    ini: Path
    system_config: str
    memory_mode: str
    optimise: str = "Performance"
    arena_cache_size: int | None = None
    core_clock_hz: float = 0.0
    # Vela memory types ("Sram", "Dram", "OffChipFlash", "OnChipFlash") behind each use
    const_mem: str = ""
    arena_mem: str = ""
    cache_mem: str = ""

    def vela_args(self) -> list[str]:
        args = [
            "--accelerator-config", self.accelerator,
            "--config", str(self.ini),
            "--system-config", self.system_config,
            "--memory-mode", self.memory_mode,
            "--optimise", self.optimise,
        ]  # fmt: skip
        if self.arena_cache_size is not None:
            args += ["--arena-cache-size", str(self.arena_cache_size)]
        return args


def arm_vela_ini() -> Path:
    """Vela's own vela.ini (Arm's documented system configs and memory modes)."""
    ethosu = _import_vela()
    return Path(ethosu.architecture_features.CONFIG_FILES_PATH) / "Arm" / "vela.ini"


@cache
def _import_vela() -> Any:
    try:
        import ethosu.vela.architecture_features
        import ethosu.vela.errors
    except ImportError as e:
        raise ToolMissingError(f"Arm Vela is not installed ({e})", hint="pip install ethos-u-vela") from None
    return ethosu.vela


@cache
def vela_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ethos-u-vela")
    except PackageNotFoundError:
        raise ToolMissingError("Arm Vela is not installed", hint="pip install ethos-u-vela") from None


def check_accelerator(accelerator: str) -> str:
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"unknown accelerator {accelerator!r} (valid: {', '.join(ACCELERATORS)})")
    return accelerator


def check_mac_config(compiled_or_accelerator: CompiledModel | VelaReport | str, board: Board) -> None:
    """Config guard: the Vela accelerator must be the board's NPU (type and ``ethosu.num_macs``).

    A model compiled for another MAC count runs wrong or not at all on the NPU (and the FVP), so
    every stage that pairs a compiled model with a board calls this before any run.
    """
    if isinstance(compiled_or_accelerator, CompiledModel):
        accel = compiled_or_accelerator.report.accelerator
    elif isinstance(compiled_or_accelerator, VelaReport):
        accel = compiled_or_accelerator.accelerator
    else:
        accel = str(compiled_or_accelerator)
    if board.npu is None:
        raise ConfigError(
            f"board {board.name!r} has no Ethos-U NPU, but the model is compiled by Vela for {accel}",
            hint="run the int8 model (not the Vela one) on this board, or pick a board with an NPU",
        )
    if accel != board.npu.accelerator:
        raise ConfigError(
            f"Vela MAC configuration {accel} does not match board {board.name!r}, whose NPU is "
            f"{board.npu.accelerator} (ethosu.num_macs={board.npu.macs})",
            hint=f"compile with --accelerator {board.npu.accelerator} (or just --board {board.name})",
        )


def resolve_config(
    *,
    board: Board | None = None,
    accelerator: str | None = None,
    config_ini: Path | None = None,
    system_config: str | None = None,
    memory_mode: str | None = None,
    optimise: str = "Performance",
    arena_cache_size: int | None = None,
) -> VelaConfig:
    """Pick accelerator, ini, system config and memory mode, then let Vela's own parser check them."""
    if optimise not in OPTIMISE_MODES:
        raise ConfigError(f"unknown optimise mode {optimise!r} (valid: {', '.join(OPTIMISE_MODES)})")
    if arena_cache_size is not None and arena_cache_size < 0:
        raise ConfigError(f"arena cache size must be >= 0 bytes, got {arena_cache_size}")
    if board is not None and board.npu is None:
        raise ConfigError(
            f"board {board.name!r} has no Ethos-U NPU: Vela has nothing to compile for",
            hint="pick a board with an NPU (`mcudeploy boards`), or drop --board and pass --accelerator",
        )
    if accelerator is None:
        if board is None or board.npu is None:
            raise ConfigError(
                "say what to compile for: --board NAME or --accelerator CONFIG",
                hint=f"accelerators: {', '.join(ACCELERATORS)}",
            )
        accelerator = board.npu.accelerator
    check_accelerator(accelerator)
    npu_type = accelerator.rsplit("-", 1)[0]

    # The board's ini and names apply when the board's NPU family is the one being compiled for.
    board_npu = (
        board.npu if board is not None and board.npu is not None and board.npu.type == npu_type else None
    )
    board_ini = vela_ini_path(board) if board is not None and board_npu is not None else None
    if config_ini is not None:
        ini = Path(config_ini)
        if not ini.is_file():
            raise ConfigError(f"{ini}: no such Vela configuration file")
        if ini.suffix != ".ini":
            raise ConfigError(f"{ini.name}: Vela configuration files must end in .ini")
    elif board_ini is not None:
        ini = board_ini
        if not ini.is_file():
            raise ConfigError(f"the board's Vela ini {ini.name!r} is not shipped in boards/vela/")
    else:
        ini = arm_vela_ini()
    default_sys, default_mem = (
        (board_npu.system_config, board_npu.memory_mode)
        if board_npu is not None
        else DEFAULT_SYSTEM[npu_type]
    )
    cfg = VelaConfig(
        accelerator=accelerator,
        ini=ini,
        system_config=system_config or default_sys,
        memory_mode=memory_mode or default_mem,
        optimise=optimise,
        arena_cache_size=arena_cache_size,
    )
    return _validate(cfg)


def _validate(cfg: VelaConfig) -> VelaConfig:
    """Run Vela's own ini reader so a bad ini / unknown name fails here, with Vela's words."""
    vela = _import_vela()
    af = vela.architecture_features
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            arch = af.ArchitectureFeatures(
                vela_config_files=[str(cfg.ini)],
                system_config=cfg.system_config,
                memory_mode=cfg.memory_mode,
                accelerator_config=cfg.accelerator,
                max_blockdep=af.ArchitectureFeatures.MAX_BLOCKDEP,
                verbose_config=False,
                arena_cache_size=cfg.arena_cache_size,
            )
    except vela.errors.VelaError as e:
        raise ConfigError(
            f"Vela configuration {cfg.ini.name}: {e.error_msg}", hint=_names_hint(cfg.ini)
        ) from None
    except (configparser.Error, KeyError, ValueError) as e:
        raise ConfigError(f"Vela configuration {cfg.ini.name} is malformed: {e}") from None
    return VelaConfig(
        **{
            **cfg.__dict__,
            "core_clock_hz": float(arch.core_clock),
            "const_mem": arch._mem_port_mapping(arch.const_mem_area).name,
            "arena_mem": arch._mem_port_mapping(arch.arena_mem_area).name,
            "cache_mem": arch._mem_port_mapping(arch.cache_mem_area).name,
        }
    )


def _names_hint(ini: Path) -> str | None:
    cp = configparser.ConfigParser()
    try:
        cp.read(ini)
    except configparser.Error:
        return None
    sys_cfgs = sorted(s.split(".", 1)[1] for s in cp.sections() if s.startswith("System_Config."))
    modes = sorted(s.split(".", 1)[1] for s in cp.sections() if s.startswith("Memory_Mode."))
    return (
        f"{ini.name} defines system configs: {', '.join(sys_cfgs) or '-'}; "
        f"memory modes: {', '.join(modes) or '-'}"
    )


# -- running Vela -------------------------------------------------------------------------
@dataclass(frozen=True)
class VelaRun:
    """The raw files and text of one Vela run."""

    vela_tflite: bytes
    summary_csv: str
    per_layer_csv: str
    stdout: str
    stem: str


def model_stem(model: Model) -> str:
    stem = _STEM_RE.sub("_", Path(model.source).stem) or "model"
    return stem.lstrip(".") or "model"


def run_vela(model: Model, cfg: VelaConfig, *, timeout: float = VELA_TIMEOUT_S) -> VelaRun:
    """Run Vela on ``model`` with ``cfg`` in a temp folder and collect what it wrote."""
    vela_version()
    stem = model_stem(model)
    with tempfile.TemporaryDirectory(prefix="mcudeploy-vela-") as tmp:
        work = Path(tmp)
        src = work / f"{stem}.tflite"
        src.write_bytes(model.data)
        cmd = [
            sys.executable,
            "-m",
            "ethosu.vela",
            src.name,
            *cfg.vela_args(),
            "--verbose-performance",
            "--output-dir",
            "out",
        ]
        try:
            proc = subprocess.run(
                cmd,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONHASHSEED": "0"},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CompileError(f"{model.source}: Vela did not finish within {timeout:.0f} s") from None
        out = work / "out"
        vela_file = out / f"{stem}_vela.tflite"
        summary = out / f"{stem}_summary_{cfg.system_config}.csv"
        per_layer = out / f"{stem}_per-layer.csv"
        if proc.returncode != 0 or not vela_file.is_file() or not summary.is_file():
            raise CompileError(f"{model.source}: Vela failed for {cfg.accelerator}: {_vela_error(proc)}")
        return VelaRun(
            vela_tflite=vela_file.read_bytes(),
            summary_csv=summary.read_text(encoding="utf-8"),
            per_layer_csv=per_layer.read_text(encoding="utf-8") if per_layer.is_file() else "",
            stdout=proc.stdout,
            stem=stem,
        )


def _vela_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Vela's own error line(s): its "Error:" messages, else the last line of a traceback."""
    lines = [ln.strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("Error:", "ERROR:", "error:")) or "Error: " in ln[:60]]
    if errors:
        return " / ".join(dict.fromkeys(errors))
    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if tail:
        return tail[-1].strip()
    if proc.returncode < 0:  # killed by a signal: Vela's native core crashed (e.g. on a corrupt model)
        return f"Vela crashed (signal {-proc.returncode}) without a message"
    return f"exit status {proc.returncode} and no message"


# -- the stage ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledModel:
    """A Vela-compiled model: the NPU .tflite (as a Model) and Vela's report on it."""

    model: Model
    report: VelaReport
    config: VelaConfig
    source: Model
    path: Path | None = None  # where the Vela .tflite was written, if an out_dir was given


def compile_for_npu(
    model: Model,
    *,
    board: Board | None = None,
    accelerator: str | None = None,
    config_ini: Path | None = None,
    system_config: str | None = None,
    memory_mode: str | None = None,
    optimise: str = "Performance",
    arena_cache_size: int | None = None,
    out_dir: Path | None = None,
) -> CompiledModel:
    """Compile a fully int8 model with Vela for ``board``'s NPU or an explicit ``accelerator``.

    Raises NotFullyInt8Error (gate) before Vela runs, ConfigError for a bad ini / names / MAC
    mismatch with the board, CompileError when Vela rejects the model.
    """
    from .gates import check_fully_int8

    if NPU_CUSTOM_OP in model.op_names():
        raise UnsupportedError(
            f"{model.source}: already compiled by Vela (it contains an '{NPU_CUSTOM_OP}' op)",
            hint="compile the int8 model it was made from",
        )
    check_fully_int8(model)
    cfg = resolve_config(
        board=board,
        accelerator=accelerator,
        config_ini=config_ini,
        system_config=system_config,
        memory_mode=memory_mode,
        optimise=optimise,
        arena_cache_size=arena_cache_size,
    )
    if board is not None:
        check_mac_config(cfg.accelerator, board)
    return _compile(model, cfg, out_dir)


def output_files(model: Model, cfg: VelaConfig) -> dict[str, str]:
    """The files a compile writes into its ``out_dir`` (file name -> kind: tflite, json, csv), in the
    order the Vela model, the report JSON, Vela's summary CSV and its per-layer CSV: one definition
    for the writer and for the CLI, which checks every one of them before Vela runs."""
    stem = model_stem(model)
    return {
        f"{stem}_vela.tflite": "tflite",
        f"{stem}_vela_report.json": "json",
        f"{stem}_summary_{cfg.system_config}.csv": "csv",
        f"{stem}_per-layer.csv": "csv",
    }


def _compile(model: Model, cfg: VelaConfig, out_dir: Path | None) -> CompiledModel:
    run = run_vela(model, cfg)
    vela_model = parse_tflite(run.vela_tflite, source=f"{run.stem}_vela.tflite")
    try:
        summary = read_summary_csv(run.summary_csv)
        per_layer = read_per_layer_csv(run.per_layer_csv)
        report = VelaReport.from_vela(
            summary,
            per_layer,
            cpu_ops_of(vela_model, read_cpu_reasons(run.stdout)),
            memory_mode=cfg.memory_mode,
            optimise=cfg.optimise,
            source=model,
            vela_model=vela_model,
            vela_version=vela_version(),
        )
    except (KeyError, ValueError) as e:
        raise CompileError(f"{model.source}: cannot read Vela {vela_version()}'s report CSV ({e})") from None
    path = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        vela_name, report_name, summary_name, per_layer_name = output_files(model, cfg)
        path = write_bytes_atomic(out_dir / vela_name, vela_model.data)
        write_text_atomic(out_dir / report_name, report_json(report))
        write_text_atomic(out_dir / summary_name, run.summary_csv)
        if run.per_layer_csv:
            write_text_atomic(out_dir / per_layer_name, run.per_layer_csv)
    return CompiledModel(model=vela_model, report=report, config=cfg, source=model, path=path)


def report_json(report: VelaReport) -> str:
    return json_text(report.to_dict(), sort_keys=False)


# -- gates --------------------------------------------------------------------------------
def check_budgets(
    report: VelaReport,
    *,
    max_cpu_ops: int | None = None,
    sram_budget: int | None = None,
    flash_budget: int | None = None,
) -> None:
    """Raise BudgetError naming every budget the compilation exceeds."""
    failed = []
    if max_cpu_ops is not None and len(report.cpu_ops) > max_cpu_ops:
        ops = ", ".join(f"{c.op} '{c.tensor}'" for c in report.cpu_ops)
        failed.append(f"{len(report.cpu_ops)} CPU-fallback op(s) > --max-cpu-ops {max_cpu_ops} ({ops})")
    if sram_budget is not None and report.sram_bytes > sram_budget:
        failed.append(f"SRAM {report.sram_bytes} B > --sram-budget {sram_budget} B")
    if flash_budget is not None and report.flash_bytes > flash_budget:
        failed.append(f"flash {report.flash_bytes} B > --flash-budget {flash_budget} B")
    if failed:
        raise BudgetError(f"{report.model} on {report.accelerator}: " + "; ".join(failed))


def memory_needs(compiled: CompiledModel, board: Board) -> dict[str, int]:
    """Bytes each board region must hold: Vela's arena/cache needs and the compiled model itself.

    Vela reports usage per memory type; the memory mode says which use (arena, NPU cache, model)
    sits in which type, and the board's [placement] says which region holds each use.
    """
    r, c = compiled.report, compiled.config
    by_type = {"Sram": r.sram_bytes, "Dram": r.dram_bytes}
    needs: dict[str, int] = {}

    def add(role: str, nbytes: int) -> None:
        if nbytes:
            region = board.region_for(role).name
            needs[region] = needs.get(region, 0) + nbytes

    add("arena", by_type.get(c.arena_mem, 0))
    if c.cache_mem != c.arena_mem:  # a dedicated NPU cache (Dedicated_Sram modes)
        add("npu_cache" if "npu_cache" in board.placement else "arena", by_type.get(c.cache_mem, 0))
    add("model", compiled.model.size)
    return needs


def check_memory_fit(compiled: CompiledModel, board: Board) -> None:
    """Raise MemoryFitError if Vela's SRAM/DRAM need or the model exceed the board regions they live in."""
    over = []
    for region, need in sorted(memory_needs(compiled, board).items()):
        cap = board.memory[region].length
        if need > cap:
            over.append(f"region '{region}' needs {need} B but has {cap} B")
    if over:
        raise MemoryFitError(
            f"{compiled.report.model} compiled for {compiled.report.accelerator} does not fit board "
            f"{board.name!r}: " + "; ".join(over),
            hint="try --optimise Size or a smaller --arena-cache-size, or a board with more memory",
        )


# -- sweep --------------------------------------------------------------------------------
SWEEP_FIELDS = (
    "accelerator", "optimise", "system_config", "memory_mode", "npu_ops", "cpu_ops", "npu_cycles",
    "total_cycles", "inference_time_s", "inferences_per_s", "sram_bytes", "flash_bytes", "dram_bytes",
    "encoded_weights_bytes",
)  # fmt: skip


def sweep(
    model: Model,
    *,
    accelerators: Sequence[str] | None = None,
    optimise_modes: Iterable[str] = OPTIMISE_MODES,
    board: Board | None = None,
    config_ini: Path | None = None,
    arena_cache_size: int | None = None,
    workers: int = 2,
) -> list[VelaReport]:
    """Compile for every MAC config × optimise mode; reports in (accelerator, mode) order.

    With a board, the sweep covers its NPU family's MAC configs with its system config; the MAC
    guard does not apply (this is exploration, not deployment).
    """
    from .gates import check_fully_int8

    check_fully_int8(model)
    if accelerators is None:
        accelerators = [
            a for a in ACCELERATORS if board is None or board.npu is None or a.startswith(board.npu.type)
        ]
    cfgs = [
        resolve_config(
            board=board, accelerator=a, config_ini=config_ini, optimise=o, arena_cache_size=arena_cache_size
        )
        for a in accelerators
        for o in optimise_modes
    ]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Vela runs are subprocesses
        return [c.report for c in pool.map(lambda cfg: _compile(model, cfg, None), cfgs)]


def sweep_row(r: VelaReport) -> dict[str, Any]:
    """One sweep CSV row: the report's fields named in SWEEP_FIELDS (``cpu_ops`` as a count)."""
    return {f: len(r.cpu_ops) if f == "cpu_ops" else getattr(r, f) for f in SWEEP_FIELDS}


def sweep_csv(reports: Sequence[VelaReport]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SWEEP_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in reports:
        w.writerow(sweep_row(r))
    return buf.getvalue()
