"""``mcudeploy compile``: Vela-compile an int8 .tflite for an Ethos-U NPU and report on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._guard import claim_default
from ._output import emit_json, json_option

if TYPE_CHECKING:
    from ..ml.vela import CompiledModel
    from ..ml.vela_report import VelaReport

_ACCELERATORS = (
    "ethos-u55-32",
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
    "ethos-u65-512",
    "ethos-u85-128",
    "ethos-u85-256",
    "ethos-u85-512",
    "ethos-u85-1024",
    "ethos-u85-2048",
)  # fmt: skip  (mirrors mcudeploy.ml.vela.ACCELERATORS; kept literal so --help needs no imports)


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from ..boards import parse_size

    return parse_size(int(value) if value.isdigit() else value, f"--{param.name.replace('_', '-')}")


@click.command("compile")
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(path_type=Path))
@click.option("-b", "--board", help="Board name or board .toml: its NPU, Vela system config and memory mode.")
@click.option("-a", "--accelerator", type=click.Choice(_ACCELERATORS), help="Vela MAC configuration.")
@click.option(
    "--config-ini", type=click.Path(path_type=Path), help="Your own Vela .ini (system configs, memory modes)."
)
@click.option("--system-config", help="System config section in the ini (default: the board's).")
@click.option("--memory-mode", help="Memory mode section in the ini (default: the board's).")
@click.option(
    "--optimise",
    type=click.Choice(["Performance", "Size"], case_sensitive=False),
    default="Performance",
    show_default=True,
    help="Vela's optimisation strategy.",
)
@click.option("--arena-cache-size", callback=_size, help="Arena cache size (bytes, or 256K / 1M).")
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(path_type=Path),
    help="Where to write the Vela model, report JSON and Vela's CSVs (default: beside MODEL).",
)
@json_option("Also write the JSON report here ('-' = stdout).")
@click.option(
    "--max-cpu-ops", type=click.IntRange(min=0), help="Gate: fail if more ops fall back to the CPU."
)
@click.option(
    "--sram-budget", callback=_size, help="Gate: fail if Vela's SRAM need exceeds this (e.g. 256K)."
)
@click.option("--flash-budget", callback=_size, help="Gate: fail if Vela's flash use exceeds this (e.g. 1M).")
@click.option("--layers", is_flag=True, help="Show Vela's per-layer table (cycles, MACs, SRAM).")
@click.option("--sweep", is_flag=True, help="Compile for every MAC config × optimise mode; table + CSV.")
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(path_type=Path),
    help="Sweep CSV path (default: OUT_DIR/NAME_vela_sweep.csv).",
)
def command(
    model_path: Path,
    board: str | None,
    accelerator: str | None,
    config_ini: Path | None,
    system_config: str | None,
    memory_mode: str | None,
    optimise: str,
    arena_cache_size: int | None,
    out_dir: Path | None,
    json_out: Path | None,
    max_cpu_ops: int | None,
    sram_budget: int | None,
    flash_budget: int | None,
    layers: bool,
    sweep: bool,
    csv_out: Path | None,
) -> None:
    """Compile MODEL.tflite with Arm Vela for an Ethos-U NPU.

    \b
    Refuses models that are not fully int8. Reports NPU vs CPU ops (with Vela's reason for each
    CPU fallback), SRAM / flash / DRAM use, NPU cycles (Vela's compute estimate) and total cycles
    (the NPU part of the inference with its memory traffic), inference time at the NPU clock,
    original vs encoded weight bytes. Vela estimates the NPU only: when ops fall back to the CPU,
    cycles and times leave them out (the output says so). Gates exit 1; Vela rejecting the input
    exits 2.
    \b
    Examples:
      mcudeploy compile model.tflite --board corstone-300
      mcudeploy compile model.tflite --accelerator ethos-u55-64 --max-cpu-ops 0 --sram-budget 256K
      mcudeploy compile model.tflite --sweep
    """
    from .._io import write_text_atomic
    from ..boards import get_board
    from ..ml import vela
    from ..ml.model import read_tflite

    model = read_tflite(model_path)
    b = get_board(board) if board else None
    out = out_dir if out_dir is not None else (model_path.parent if str(model_path.parent) else Path("."))
    optimise = "Size" if optimise.lower() == "size" else "Performance"

    if sweep:
        reports = vela.sweep(
            model,
            accelerators=[accelerator] if accelerator else None,
            board=b,
            config_ini=config_ini,
            arena_cache_size=arena_cache_size,
        )
        _print_sweep(reports)
        path = csv_out or claim_default("-o", out / f"{vela.model_stem(model)}_vela_sweep.csv", "csv")
        write_text_atomic(path, vela.sweep_csv(reports))
        _note(f"sweep CSV: {path}")
        return

    opts: dict[str, Any] = {
        "board": b,
        "accelerator": accelerator,
        "config_ini": config_ini,
        "system_config": system_config,
        "memory_mode": memory_mode,
        "optimise": optimise,
        "arena_cache_size": arena_cache_size,
    }
    # what compile_for_npu writes into out (Vela's CSVs too): never someone else's file
    for name, kind in vela.output_files(model, vela.resolve_config(**opts)).items():
        claim_default("-o", out / name, kind)
    compiled = vela.compile_for_npu(model, **opts, out_dir=out)
    report = compiled.report
    if not emit_json(json_out, report.to_dict(), sort_keys=False):
        _print_report(compiled, layers)
    _note(f"Vela model: {compiled.path}")
    # Gates run after the report is shown, so a failure still leaves the numbers in front of the user.
    if b is not None:
        vela.check_memory_fit(compiled, b)
    vela.check_budgets(report, max_cpu_ops=max_cpu_ops, sram_budget=sram_budget, flash_budget=flash_budget)


def _note(text: str) -> None:
    from ..console import err_console

    err_console.print(text, highlight=False, markup=False)


def _print_report(compiled: CompiledModel, layers: bool) -> None:
    from rich.table import Table

    from ..console import console
    from ..ml.vela_report import CYCLES_LEGEND, NPU_CYCLES, TOTAL_CYCLES

    r = compiled.report
    caveat = r.npu_only_caveat()
    part = " (NPU part only)" if caveat else ""
    t = Table(title=f"Vela {r.vela_version}: {r.model} → {r.accelerator}", show_header=False)
    t.add_column("", style="bold", overflow="fold")
    t.add_column("", justify="right", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("system config / memory mode", f"{r.system_config} / {r.memory_mode}"),
        ("optimise", r.optimise),
        ("NPU clock", f"{r.core_clock_hz / 1e6:g} MHz"),
        ("ops on NPU / CPU", f"{r.npu_ops} / {len(r.cpu_ops)}  (Vela NPU operations: {r.npu_passes})"),
        ("SRAM used", f"{r.sram_bytes:,} B"),
        ("off-chip flash used", f"{r.offchip_flash_bytes:,} B"),
        ("on-chip flash used", f"{r.onchip_flash_bytes:,} B"),
        ("DRAM used", f"{r.dram_bytes:,} B"),
        (f"{NPU_CYCLES} (compute only)", f"{r.npu_cycles:,}"),
        (f"{TOTAL_CYCLES} (with memory traffic)", f"{r.total_cycles:,}"),
        (f"inference time{part}", f"{r.inference_time_s * 1e3:.4f} ms"),
        (f"inferences/s{part}", f"{r.inferences_per_s:,.1f}"),
        ("weights original → encoded", f"{r.original_weights_bytes:,} B → {r.encoded_weights_bytes:,} B"),
        ("Vela model", f"{r.vela_model_bytes:,} B"),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
    console.print(CYCLES_LEGEND)
    if caveat:
        console.print(f"note: {caveat}")
        c = Table(title="CPU fallback")
        for col in ("#", "op", "output tensor", "Vela's reason"):
            c.add_column(col, overflow="fold")
        for op in r.cpu_ops:
            c.add_row(str(op.index), op.op, op.tensor, op.reason)
        console.print(c)
    if layers:
        _print_layers(r)


def _print_layers(r: VelaReport) -> None:
    from rich import box
    from rich.table import Table

    from ..console import console

    t = Table(title="per layer (Vela --verbose-performance)", box=box.SIMPLE_HEAD, show_edge=False)
    cols = [
        ("original_op", "original op"),
        ("op", "op"),
        ("target", "on"),
        ("cycles", "total cycles"),
        ("npu_cycles", "NPU cycles"),
        ("macs", "MACs"),
        ("sram_bytes", "SRAM"),
        ("name", "name"),
    ]
    for _, title in cols:
        text = title in ("original op", "op", "on", "name")
        # numbers fold (never ellipsized); on a terminal long tensor names may be cut (the JSON has
        # them whole), in a file or a pipe they are printed whole
        cut = title == "name" and console.is_terminal
        t.add_column(
            title,
            justify="left" if text else "right",
            overflow="ellipsis" if cut else "fold",
            no_wrap=title != "name",
            max_width=20 if cut else None,
        )
    for row in r.per_layer:
        t.add_row(*(str(row.get(k, "")) for k, _ in cols))
    console.print(t)


def _print_sweep(reports: list[VelaReport]) -> None:
    from rich import box
    from rich.table import Table

    from ..console import console

    # The CSV has every field (and inferences/s) in full.
    t = Table(
        title=f"Vela sweep: {reports[0].model if reports else ''}", box=box.SIMPLE_HEAD, show_edge=False
    )
    for col in ("NPU", "mode", "CPU ops", "NPU cycles", "total cycles", "ms", "SRAM B", "flash B", "DRAM B"):
        # fold, never ellipsize: a cut-off number reads as a different number
        t.add_column(
            col,
            justify="left" if col in ("NPU", "mode") else "right",
            overflow="fold",
            no_wrap=col == "NPU",
            min_width=8 if col == "NPU" else None,
        )
    for r in reports:
        t.add_row(
            r.accelerator.removeprefix("ethos-"),
            r.optimise[:4],
            str(len(r.cpu_ops)),
            str(r.npu_cycles),
            str(r.total_cycles),
            f"{r.inference_time_s * 1e3:.4f}",
            str(r.sram_bytes),
            str(r.flash_bytes),
            str(r.dram_bytes),
        )
    console.print(t)
    from ..ml.vela_report import CYCLES_LEGEND

    console.print(CYCLES_LEGEND)
    if any(r.cpu_ops for r in reports):
        console.print("note: rows with CPU ops: cycles and ms cover the NPU part of the inference only")
