"""``mcudeploy run``: measure firmware on a board, the FVP or QEMU with a labelled dataset."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import click

from ._guard import claim_default


@click.command("run")
@click.option("--board", "board_name", required=True, help="Board name or board TOML file.")
@click.option("--firmware", type=click.Path(path_type=Path, dir_okay=False), help="Built firmware ELF.")
@click.option(
    "--project",
    type=click.Path(path_type=Path, file_okay=False),
    help="Generated project (protocol mode); built first.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help=".npz with x (inputs) and y (labels).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The .tflite the firmware was built from (default: the project's model).",
)
@click.option(
    "--reference",
    type=click.Path(path_type=Path, dir_okay=False),
    help="int8 model for golden outputs when --model is Vela-compiled.",
)
@click.option(
    "--port",
    help="pyserial URL or device of a running board: /dev/ttyACM0, socket://HOST:PORT, "
    "rfc2217://HOST:PORT. Without it the board's simulator runs the firmware.",
)
@click.option(
    "--labgrid-place",
    help="A labgrid board-farm place (coordinator from $LG_COORDINATOR): its serial port is the link "
    "and its flasher (OpenOCD, flash script, USB storage) flashes --firmware.",
)
@click.option("--baud", type=click.IntRange(min=1), help="Baud rate for a real port (default: the board's).")
@click.option(
    "--simulator",
    type=click.Choice(["qemu", "fvp"]),
    help="Simulator (default: QEMU where the board has it; the FVP for a Vela-compiled model).",
)
@click.option(
    "--flash/--no-flash",
    default=True,
    show_default=True,
    help="With --port and --firmware: flash with the board's flasher first.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Results folder (default: run-BOARD).",
)
@click.option("--fresh", is_flag=True, help="Start over instead of resuming results in --out.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N samples.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), help="Gate: top-1 accuracy floor (0..1).")
@click.option(
    "--bit-exact/--no-bit-exact",
    default=True,
    show_default=True,
    help="Gate: outputs byte-identical to host TFLM.",
)
@click.option(
    "--latency-budget-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="Gate: worst latency in ms (cycle timers only).",
)
@click.option(
    "--latency-budget",
    type=click.FloatRange(min=0, min_open=True),
    help="Gate: worst latency in the timer's unit.",
)
@click.option(
    "--max-failed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Samples allowed to fail on the link.",
)
@click.option(
    "--bench",
    "bench_runs",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="On-device BENCH runs after the dataset (0: skip).",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Time every layer of the first sample on the device (PROFILE): profile.json and profile.csv "
    "in --out, with MACs per cycle (per instruction under QEMU) and the stack high-water mark.",
)
@click.option(
    "--vela-per-layer",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --profile: Vela's <model>_per-layer.csv, to show its estimate beside each layer.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Per-request cap in seconds.",
)
@click.option("--retries", type=click.IntRange(min=0), default=10, show_default=True)
@click.option(
    "--run-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Deadline for the whole simulator run in seconds.",
)
def command(
    board_name: str,
    firmware: Path | None,
    project: Path | None,
    data: Path,
    model_path: Path | None,
    reference: Path | None,
    port: str | None,
    labgrid_place: str | None,
    baud: int | None,
    simulator: str | None,
    flash: bool,
    out_dir: Path | None,
    fresh: bool,
    limit: int | None,
    min_accuracy: float | None,
    bit_exact: bool,
    latency_budget_ms: float | None,
    latency_budget: float | None,
    max_failed: int,
    bench_runs: int,
    profile: bool,
    vela_per_layer: Path | None,
    timeout: float,
    retries: int,
    run_timeout: float,
) -> None:
    """Stream a labelled dataset through the device; report accuracy, bit-exactness and latency.

    \b
    Results go to --out as they arrive (results.jsonl; an interrupted run resumes), then
    summary.json, samples.csv and junit.xml. Exit 1 when a gate fails.

    \b
    Example, with a per-layer profile:
      mcudeploy run --board qemu-an547 --project fw/ --data test.npz --profile --out run1
    """
    from .._lock import folder_lock
    from ..boards import get_board
    from ..console import console, err_console, progress
    from ..device.harness import LinkPolicy, arrays_sha256, measure
    from ..device.results import Gates
    from ..device.targets.transport import Transport
    from ..errors import ConfigError, GateError, InputError, TargetError
    from ..ml.datasets import check_labels, fit_shape, load_labelled
    from ..ml.model import read_tflite

    if firmware is not None and project is not None:
        raise ConfigError("give one of --firmware ELF or --project DIR, not both")
    if firmware is None and project is None and not (port or labgrid_place):
        raise ConfigError("give --firmware ELF or --project DIR (or --port for a board already flashed)")
    if firmware is not None and not firmware.is_file():
        raise InputError(f"{firmware}: no such firmware image" + (" (a folder)" if firmware.is_dir() else ""))
    board = get_board(board_name)
    place = None
    if labgrid_place:
        from ..device.targets.labgrid import labgrid

        if port:
            raise ConfigError("give --port or --labgrid-place, not both")
        labgrid()  # a missing labgrid is said before any work
    model_path = model_path or _project_model(project)
    if model_path is None:
        raise InputError(
            "--model is required with --firmware (the .tflite the firmware was built from)"
            if project is None
            else f"--model is required: {project} does not hold the .tflite it was generated from",
            hint=None if project is None else "pass --model, or regenerate the project with this mcudeploy",
        )
    model = read_tflite(model_path)
    ref = read_tflite(reference) if reference else None
    x, y = load_labelled(data)
    data_sha = arrays_sha256(x, y)  # before --limit: a shorter or longer run of the same data resumes
    x = fit_shape(x, tuple(model.inputs[0].shape[1:]), str(data))
    check_labels(y, math.prod(model.outputs[0].shape[1:]), str(data))
    if limit:
        x, y = x[:limit], y[:limit]
    out = out_dir or claim_default("--out", Path(f"run-{board.name}"), "run")
    # one process per results folder: a second run waits (and says for whom) instead of interleaving
    with (
        folder_lock(out, notice=lambda text: err_console.print(f"note: {text}", markup=False)),
        contextlib.ExitStack() as holding,
    ):
        if labgrid_place:  # labgrid resolves and locks the place; it is the engine for shared farms, not us
            from ..device.targets.labgrid import hold_place, open_place

            holding.enter_context(hold_place(labgrid_place))  # refused when another run holds the board
            place = open_place(labgrid_place)
            port, baud = place.url, baud or place.baudrate
        runtime = None
        if project is not None:
            from ..firmware.build import build

            fw = build(project)
            firmware, runtime = fw.elf, fw.runtime
        gates = Gates(
            min_accuracy=min_accuracy,
            require_bit_exact=bit_exact,
            latency_budget_ms=latency_budget_ms,
            latency_budget=latency_budget,
            max_failed=max_failed,
        )
        policy = LinkPolicy(request_timeout=timeout, retries=retries)

        def bar(items: Any, total: int) -> Any:
            return progress(items, f"{board.name}: inference", total=total)

        from .._io import file_digest

        kw: dict[str, Any] = dict(
            fingerprint={
                "data": data_sha,
                "firmware": file_digest(firmware) if firmware is not None and firmware.is_file() else None,
                "board": board.name,
                "target": f"port {'flashed' if firmware is not None and flash else 'as is'}"
                if port
                else (simulator or "simulator"),
            },
            notice=lambda text: err_console.print(f"note: {text}", markup=False),
            reference=ref,
            runtime=runtime,
            gates=gates,
            policy=policy,
            resume=not fresh,
            bench_runs=bench_runs,
            profile=profile,
            vela_per_layer=_vela_rows(vela_per_layer),
            progress=bar,
        )
        if port:
            # Open the port before flashing/reset so boot output (and the boot HELLO) is not lost.
            with Transport(port, baudrate=baud or board.uart.baud) as tr:
                if firmware is None or not flash:
                    pass  # measure what the board already runs
                elif place is not None and place.flasher:
                    from ..device.targets.labgrid import flash as labgrid_flash

                    labgrid_flash(place, firmware)
                elif board.flasher:
                    from ..device.targets.flashers import flash_firmware

                    flash_firmware(board, firmware)
                summary = measure(model, tr, x, y, out, **kw)
        else:
            from ..device.targets import simulator_for
            from ..ml.model import NPU_CUSTOM_OP

            sim = simulator_for(board, requested=simulator, npu=NPU_CUSTOM_OP in model.op_names())
            if sim is None:
                raise ConfigError(
                    f"board '{board.name}' has no simulator this mcudeploy can run; pass --port"
                )
            if firmware is None:
                raise ConfigError("a simulator run needs --firmware ELF or --project DIR")
            from .._children import tool_version

            # what another QEMU or FVP (or icount shift) measured is not resumed into these results
            version = tool_version(sim.find_executable())
            kw["fingerprint"]["simulator"] = {"name": sim.name, "version": version, **sim.config}
            with sim.start(firmware, timeout=run_timeout) as running, Transport(running.url) as tr:
                try:
                    summary = measure(model, tr, x, y, out, **kw)
                except TargetError as e:
                    raise TargetError(f"{e.message}\n{running.log_tail()}", hint=e.hint) from None
        _print_summary(console, summary, out)
        failed = [g for g in summary["gates"] if not g["passed"]]
        if any(g["name"] != "complete" for g in failed):
            raise GateError("; ".join(f"{g['name']}: {g['message']}" for g in failed))
        if failed:
            raise TargetError(failed[0]["message"], hint=f"per-sample reasons in {out / 'results.jsonl'}")


def _vela_rows(path: Path | None) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    from ..errors import InputError
    from ..ml.vela_report import read_per_layer_csv

    try:
        return read_per_layer_csv(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not a readable Vela per-layer CSV ({e})") from None


def _project_model(project: Path | None) -> Path | None:
    if project is None:
        return None
    from ..firmware.codegen import project_model

    named = project_model(project)  # what the manifest names, hash-checked
    if named is not None:
        return named
    found = sorted(p for p in project.rglob("*.tflite") if "build" not in p.parts)
    return found[0] if len(found) == 1 else None


def _print_summary(console: Any, s: dict[str, Any], out: Path) -> None:
    dev = s["device"]
    console.print(
        f"device: {dev.get('board')} runtime={dev.get('runtime')} timer={dev.get('timer')} "
        f"model={str(dev.get('sha256', ''))[:16]}… arena_used={dev.get('arena_used')} B",
        markup=False,
    )
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    console.print(f"samples: {s['measured']}/{s['samples']} measured, {s['failed']} failed", markup=False)
    console.print(
        f"top-1 accuracy: {pct(s['accuracy'])} (host TFLM {pct(s['golden_accuracy'])}); "
        f"byte-identical to host TFLM: {pct(s['bit_exact_fraction'])}",
        markup=False,
    )
    lat = s["latency"]
    if lat.get("count"):
        cols = ("min", "median", "p90", "p99", "max")
        console.print(
            f"latency ({lat['unit']}): " + ", ".join(f"{c} {lat[c]:,.0f}" for c in cols), markup=False
        )
        if "ms" in lat:
            console.print("latency (ms): " + ", ".join(f"{c} {lat['ms'][c]:.3f}" for c in cols), markup=False)
    b = s.get("bench") or {}
    if b.get("runs"):
        console.print(
            f"BENCH on device ({b['runs']} runs, {lat['unit']}): "
            f"min {b['min']:,} mean {b['mean']:,.0f} max {b['max']:,}",
            markup=False,
        )
    p = s.get("profile") or {}
    if "error" in p:
        console.print(f"profile: none ({p['error']})", markup=False)
    elif p:
        console.print(
            f"profile: {p['layers']} layers, {p['layers_sum']:,} of {p['elapsed']:,} {p['unit']} "
            f"({100 * p['coverage']:.1f} %); stack used {p['stack_used']:,} of {p['stack_size']:,} B",
            markup=False,
        )
    if s.get("npu_cycles"):
        console.print(f"NPU cycles: median {s['npu_cycles']['median']:,.0f}", markup=False)
    for g in s["gates"]:
        console.print(f"  [{'PASS' if g['passed'] else 'FAIL'}] {g['name']}: {g['message']}", markup=False)
    console.print(f"results: {out}/ ({', '.join(sorted(s['files'].values()))})", markup=False)
