"""``mcudeploy deploy``: the whole way from a model to a measured device, as one incremental pipeline.

model → optimize (optional) → quantize → evaluate → Vela (optional) → generate → build → run → report.
Every stage writes into its own folder under the output directory and the pipeline's manifest records
the hashes of its inputs and outputs (see :mod:`mcudeploy.pipeline`): a re-run with nothing changed
does no work, a changed option re-runs only the stages it reaches, a failed stage names itself.

The configuration is TOML (``examples/mcudeploy.toml``); :data:`SCHEMA` is the single definition of
every key, its type and default, used for validation, defaults and ``--set`` overrides alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomllib

from ._io import atomic_directory, write_bytes_atomic, write_text_atomic
from .errors import ConfigError, GateError, InputError
from .pipeline import Context, Pipeline, Stage, StageResult

if TYPE_CHECKING:
    from .model import Model

BUILTIN_DIGITS = "builtin:digits"
AUTO_RUNTIME = "auto"  # the C runtime, plus TFLM when a TFLM tree is configured

# section -> key -> (accepted types, default). "" is the top level.
_Spec = tuple[tuple[type, ...], Any]
SCHEMA: dict[str, dict[str, _Spec]] = {
    "": {"out": ((str,), "mcudeploy-out")},
    "model": {"path": ((str,), BUILTIN_DIGITS), "epochs": ((int,), 30), "seed": ((int,), 0)},
    "optimize": {
        "recipe": ((str,), None),
        "data": ((str,), None),
        "epochs": ((int,), 4),  # mcudeploy.optimize.FineTune's defaults
        "learning_rate": ((float, int), None),  # None: per stage (STAGE_LEARNING_RATES)
        "batch_size": ((int,), 32),
        "sparsity": ((float, int), None),
        "schedule": ((str,), None),
        "structured": ((str,), None),
        "clusters": ((int,), None),
        "centroid_init": ((str,), None),
        "per_channel": ((bool,), None),
    },
    "quantize": {"data": ((str,), None), "samples": ((int,), 200), "per_channel": ((bool,), True)},
    "evaluate": {
        "data": ((str,), None),
        "limit": ((int,), None),
        "gates": ((dict,), {}),
        "per_layer_samples": ((int,), 200),  # per-layer int8 error vs float on this many samples; 0: off
    },
    "vela": {
        "board": ((str,), None),
        "accelerator": ((str,), None),
        "system_config": ((str,), None),
        "memory_mode": ((str,), None),
        "optimise": ((str,), "Performance"),
    },
    "firmware": {
        "board": ((str,), "qemu-an547"),
        "runtime": ((str, list), AUTO_RUNTIME),
        "tflm_root": ((str,), None),
    },
    "run": {
        "enabled": ((bool,), True),
        "board": ((str,), None),
        "port": ((str,), None),
        "labgrid_place": ((str,), None),  # a board-farm place: its serial port and flasher (labgrid)
        "coordinator": ((str,), None),  # labgrid coordinator address (default: $LG_COORDINATOR)
        "baudrate": ((int,), 115200),
        "samples": ((int,), 0),  # 0: every sample of the evaluation data
        "timeout": ((float, int), 300.0),
        "gates": ((dict,), {}),
    },
    "report": {"title": ((str,), "mcudeploy deploy report")},
}
_PATH_KEYS = {
    ("", "out"),
    ("model", "path"),
    ("optimize", "data"),
    ("quantize", "data"),
    ("evaluate", "data"),
    ("firmware", "tflm_root"),
}
# Run gates are mcudeploy.results.Gates fields; evaluate gates are mcudeploy.evaluate.GATES names.
_RUN_GATES = (
    "min_accuracy",
    "match_golden_accuracy",
    "require_bit_exact",
    "latency_budget_ms",
    "latency_budget",
    "max_failed",
)


# -- configuration ---------------------------------------------------------------------------
def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(
        {
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "dict": "table",
            "list": "list",
        }[t.__name__]
        for t in types
    )


def _check_value(where: str, value: Any, types: tuple[type, ...]) -> Any:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(types)}, got {value!r}")
    if isinstance(value, dict):  # gate tables: every number in them finite and not negative
        for k, v in value.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{where}.{k}: expected a finite number ≥ 0, got {v!r}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def _unknown_section(where: str, name: str) -> ConfigError:
    return ConfigError(f"{where}: unknown section [{name}] (known: {', '.join(sorted(SCHEMA)[1:])})")


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` (value in TOML syntax; a bare word is taken as a string)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE")
    section, _, key = name.strip().rpartition(".")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[tuple[str, str, Any]] | None = None,
    *,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """The validated configuration: defaults, then the TOML file, then ``overrides``.

    Relative paths in the file are taken relative to the file's folder; paths given as overrides
    (command-line flags) relative to the working directory.
    """
    raw: dict[str, Any] = {}
    cfg_dir = base_dir or Path.cwd()
    src = "configuration"
    if path is not None:
        p = Path(path)
        src = str(p)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{p}: no such configuration file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
        cfg_dir = p.resolve().parent
    cfg: dict[str, dict[str, Any]] = {s: {k: v for k, (_, v) in keys.items()} for s, keys in SCHEMA.items()}

    def put(section: str, key: str, value: Any, base: Path, where: str) -> None:
        if section not in SCHEMA:
            raise _unknown_section(where, section)
        spec = SCHEMA[section].get(key)
        name = f"{section}.{key}" if section else key
        if spec is None:
            known = ", ".join(sorted(SCHEMA[section]))
            raise ConfigError(f"{where}: unknown key '{name}' (known in {section or 'top level'}: {known})")
        value = _check_value(f"{where}: {name}", value, spec[0])
        if (section, key) in _PATH_KEYS and not value.startswith("builtin:"):
            value = str((base / Path(value).expanduser()).resolve())
        cfg[section][key] = value

    for k, v in raw.items():
        if isinstance(v, dict):
            if k not in SCHEMA or not k:
                raise _unknown_section(src, k)
            for kk, vv in v.items():
                put(k, kk, vv, cfg_dir, src)
        else:
            put("", k, v, cfg_dir, src)
    for section, key, value in overrides or []:
        put(section, key, value, Path.cwd(), "command line")
    cfg["optimize"]["enabled"] = cfg["optimize"]["recipe"] is not None
    _validate(cfg)
    return cfg


def _validate(cfg: dict[str, Any]) -> None:
    from .boards import get_board
    from .evaluate import GATES

    for g in cfg["evaluate"]["gates"]:
        if g not in GATES:
            raise ConfigError(f"unknown key 'evaluate.gates.{g}' (known: {', '.join(sorted(GATES))})")
    for g in cfg["run"]["gates"]:
        if g not in _RUN_GATES:
            raise ConfigError(f"unknown key 'run.gates.{g}' (known: {', '.join(_RUN_GATES)})")
    fw = get_board(cfg["firmware"]["board"])
    rb = cfg["run"]["board"]
    if rb is not None and rb != fw.name:
        raise ConfigError(
            f"run.board '{rb}' differs from firmware.board '{fw.name}': the run uses that firmware"
        )
    if cfg["vela"]["board"]:
        get_board(cfg["vela"]["board"])
    model = cfg["model"]["path"]
    if model.startswith("builtin:") and model != BUILTIN_DIGITS:
        raise ConfigError(f"model.path {model!r}: the only built-in model is {BUILTIN_DIGITS!r}")
    if not model.startswith("builtin:") and cfg["evaluate"]["data"] is None:
        raise ConfigError("evaluate.data is required with your own model (a labelled .npz with x and y)")
    if cfg["run"]["port"] and cfg["run"]["labgrid_place"]:
        raise ConfigError("run.port and run.labgrid_place both name the device: give one")
    if cfg["run"]["samples"] < 0 or cfg["quantize"]["samples"] < 1:
        raise ConfigError("run.samples must be ≥ 0 and quantize.samples ≥ 1")
    if cfg["run"]["timeout"] <= 0:
        raise ConfigError(f"run.timeout must be > 0 seconds, got {cfg['run']['timeout']!r}")
    if cfg["model"]["epochs"] < 1:
        raise ConfigError(f"model.epochs must be ≥ 1, got {cfg['model']['epochs']!r}")
    runtimes(cfg)


def runtimes(cfg: dict[str, Any]) -> list[str]:
    """The firmware variants to build: ``auto`` is the C runtime, plus TFLM when a tree is configured."""
    from .codegen import get_runtime

    rt = cfg["firmware"]["runtime"]
    if rt == AUTO_RUNTIME:
        from .setup.tflm import default_tree

        has_tree = cfg["firmware"]["tflm_root"] or os.environ.get("MCUDEPLOY_TFLM_ROOT") or default_tree()
        names = ["c"] + (["tflm"] if has_tree else [])
    else:
        names = [rt] if isinstance(rt, str) else list(rt)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"firmware.runtime {rt!r}: give one runtime or a list of distinct ones")
    for n in names:
        _check_value("firmware.runtime", n, (str,))
        get_runtime(n)
    return names


def _is_tflite(path: str) -> bool:
    return Path(path).suffix.lower() == ".tflite"


# -- stages -------------------------------------------------------------------------------
StageOut = tuple[dict[str, Path], dict[str, Any]]


def _model(ctx: Context) -> StageOut:
    o = ctx.options["model"]
    d = ctx.stage_dir("model")
    if o["path"] == BUILTIN_DIGITS:
        from .digits import load_digits_split, save_npz, train_cnn
        from .optimize import save_keras

        split = load_digits_split(seed=o["seed"])
        keras = train_cnn(split, epochs=o["epochs"], seed=o["seed"])
        keras_path = save_keras(keras, d / "digits.keras")
        train = save_npz(d / "train.npz", split.x_train, split.y_train)
        test = save_npz(d / "test.npz", split.x_test, split.y_test)
        summary = {"model": "digits CNN (built in)", "train": len(split.x_train), "test": len(split.x_test)}
        return {"keras": keras_path, "train_npz": train, "test_npz": test}, summary
    src = Path(o["path"])
    if not src.exists():
        raise InputError(f"{src}: no such model file or folder")
    dst = d / src.name
    if src.is_dir():  # a SavedModel folder
        with atomic_directory(dst) as stage:
            shutil.copytree(src, stage, dirs_exist_ok=True)
    else:
        write_bytes_atomic(dst, src.read_bytes())
    kind = "int8" if _is_tflite(src.name) else "keras"
    return {kind: dst}, {"model": src.name}


def _train_data(ctx: Context, key: str) -> Path:
    explicit = ctx.options[key]["data"]
    if explicit:
        return Path(explicit)
    if "train_npz" in ctx.artifacts:
        return ctx.artifact("train_npz")
    raise ConfigError(f"{key}.data is required with your own model (training samples as an .npz)")


def _eval_data(ctx: Context) -> Path:
    explicit = ctx.options["evaluate"]["data"]
    return Path(explicit) if explicit else ctx.artifact("test_npz")


def _optimize(ctx: Context) -> StageOut:
    from .datasets import load_labelled
    from .model import load_keras
    from .optimize import FineTune, is_qat_model, optimize, parse_recipe, save_keras

    o = ctx.options["optimize"]
    params = {f.name: o[f.name] for f in _recipe_fields() if o.get(f.name) is not None}
    recipe = parse_recipe(o["recipe"], **params)
    lr = o["learning_rate"]
    ft = FineTune(
        epochs=o["epochs"], learning_rate=None if lr is None else float(lr), batch_size=o["batch_size"]
    )
    x, y = load_labelled(_train_data(ctx, "optimize"))
    res = optimize(load_keras(ctx.artifact("keras")), x, y, recipe, ft, show_progress=False)
    suffix = ".h5" if is_qat_model(res.keras) else ".keras"
    path = save_keras(res.keras, ctx.stage_dir("optimize") / f"optimized{suffix}")
    return {"keras": path}, {"recipe": recipe.to_dict(), "history": res.history}


def _recipe_fields() -> list[dataclasses.Field[Any]]:
    from .optimize import Recipe

    return [f for f in dataclasses.fields(Recipe) if f.name != "stages"]


def _quantize(ctx: Context) -> StageOut:
    d = ctx.stage_dir("quantize")
    o = ctx.options["quantize"]
    keras = ctx.artifact("keras")
    data = _train_data(ctx, "quantize") if (o["data"] or "train_npz" in ctx.artifacts) else _eval_data(ctx)
    name = f"{keras.stem}_int8.tflite"
    if ctx.options["optimize"]["enabled"]:
        from .datasets import load_representative
        from .optimize import load_optimized, to_int8

        km = load_optimized(keras)
        rep = load_representative(data, tuple(km.inputs[0].shape[1:]), samples=o["samples"])
        model = to_int8(km, rep, samples=o["samples"], source=name)
        summary: dict[str, Any] = {
            "output": name,
            "sha256": model.sha256,
            "int8_bytes": model.size,
            "calibration_samples": min(len(rep), o["samples"]),
        }
    else:
        from .quantize import quantize

        res = quantize(keras, data, samples=o["samples"], per_channel=o["per_channel"], output_name=name)
        model, summary = res.model, res.to_dict()
        summary.pop("convert_seconds", None)  # a timing: keep the summary (and the report) deterministic
    path = write_bytes_atomic(d / name, model.data)
    return {"int8": path}, summary


def _evaluate(ctx: Context) -> StageOut:
    from .evaluate import enforce_gates, evaluate_files

    keras = ctx.artifacts.get("keras")
    o = ctx.options["evaluate"]
    ev = evaluate_files(
        ctx.artifact("int8"),
        _eval_data(ctx),
        float_path=keras,
        limit=o["limit"],
        per_layer_samples=(o["per_layer_samples"] or None) if keras else None,
    )
    doc = ev.to_dict()
    path = write_text_atomic(
        ctx.stage_dir("evaluate") / "evaluation.json", json.dumps(doc, indent=2, sort_keys=True) + "\n"
    )
    enforce_gates(ev, ctx.options["evaluate"]["gates"])
    return {"evaluation": path}, doc


def _vela(ctx: Context) -> StageOut:
    from .boards import get_board
    from .model import read_tflite
    from .vela import compile_for_npu

    o = ctx.options["vela"]
    d = ctx.stage_dir("vela")
    compiled = compile_for_npu(
        read_tflite(ctx.artifact("int8")),
        board=get_board(o["board"]) if o["board"] else None,
        accelerator=o["accelerator"],
        system_config=o["system_config"],
        memory_mode=o["memory_mode"],
        optimise=o["optimise"],
        out_dir=d,
    )
    assert compiled.path is not None
    r = compiled.report.to_dict()
    summary = {
        k: r[k]
        for k in (
            "accelerator",
            "system_config",
            "memory_mode",
            "npu_ops",
            "cpu_ops",
            "sram_bytes",
            "offchip_flash_bytes",
            "npu_cycles",
            "total_cycles",
            "inference_time_s",
            "inferences_per_s",
            "encoded_weights_bytes",
        )
    }
    summary["board"] = o["board"]
    summary["per_layer"] = [
        {"name": f"{i:02d} {layer['op']}", "npu_cycles": int(layer.get("npu_cycles") or 0)}
        for i, layer in enumerate(r["per_layer"])
        if layer.get("target") == "NPU" and layer.get("npu_cycles")
    ]
    return {"vela": compiled.path}, summary


def _firmware_models(ctx: Context, rt: str) -> tuple[Model, Model]:
    """The int8 model, and the one the firmware runs: the Vela model for the TFLM runtime on a board
    with an NPU, else the int8 model (the C runtime has no Ethos-U operator: it runs it on the CPU)."""
    from .boards import get_board
    from .model import read_tflite

    int8 = read_tflite(ctx.artifact("int8"))
    board = get_board(ctx.options["firmware"]["board"])
    if rt == "tflm" and board.npu is not None and "vela" in ctx.artifacts:
        return int8, read_tflite(ctx.artifact("vela"))
    return int8, int8


def _on_hardware(ctx: Context) -> bool:
    return bool(ctx.options["run"]["port"] or ctx.options["run"]["labgrid_place"])


def _generate(rt: str) -> Callable[[Context], StageOut]:
    def run(ctx: Context) -> StageOut:
        from .boards import get_board
        from .codegen import generate

        int8, model = _firmware_models(ctx, rt)
        board = get_board(ctx.options["firmware"]["board"])
        target = "hardware" if _on_hardware(ctx) else None
        proj = generate(
            model,
            board,
            ctx.stage_dir(f"generate-{rt}") / "project",
            runtime=rt,
            mode="protocol",
            target=target,
            reference=int8,
        )
        m = proj.manifest
        summary = {
            "board": m["board"],
            "runtime": m["runtime"],
            "target": m["target"],
            "timer": m["timer"],
            "arena_bytes": m["arena_bytes"],
            "model_sha256": model.sha256,
            "memory": m["memory"],
        }
        return {f"project-{rt}": proj.path}, summary

    return run


def _build(rt: str) -> Callable[[Context], StageOut]:
    def run(ctx: Context) -> StageOut:
        from .build import build

        d = ctx.stage_dir(f"build-{rt}")
        # A clean CMake folder: its cache pins absolute paths, so a moved output folder must not reuse it.
        shutil.rmtree(d / "cmake", ignore_errors=True)
        fw = build(
            ctx.artifact(f"project-{rt}"),
            build_dir=d / "cmake",
            tflm_root=ctx.options["firmware"]["tflm_root"],
        )
        # Only the image and its map are the stage's artifacts: the CMake folder holds absolute paths.
        elf = write_bytes_atomic(d / "app.elf", fw.elf.read_bytes())
        mapf = write_bytes_atomic(d / "app.map", fw.map.read_bytes()) if fw.map.is_file() else None
        outputs = {f"elf-{rt}": elf} | ({f"map-{rt}": mapf} if mapf else {})
        return outputs, {**fw.to_dict(), "text_bytes": fw.text_bytes}

    return run


def run_on_target(ctx: Context, rt: str) -> StageOut:
    """Serve the evaluation samples to the device (a port, or the board's simulator) and measure."""
    from .boards import get_board
    from .datasets import load_labelled
    from .harness import DeviceLink, Expectation, ResultsLog, profile_sample, quantize_inputs, run_samples
    from .profile import write_profile
    from .results import Gates, summarize, to_junit
    from .targets.transport import open_transport
    from .tflm_host import run_tflm

    o = ctx.options["run"]
    d = ctx.stage_dir(f"run-{rt}")
    int8, fw_model = _firmware_models(ctx, rt)
    board = get_board(ctx.options["firmware"]["board"])
    x, y = load_labelled(_eval_data(ctx))
    n = len(x) if not o["samples"] else min(o["samples"], len(x))
    xq = quantize_inputs(int8, x[:n])
    golden = run_tflm(int8, xq).reshape(n, -1)
    out_dtype = int8.outputs[0].dtype
    golden_acc = float(np.mean(golden.argmax(axis=1) == y[:n]))
    uart = bytearray()
    with contextlib.ExitStack() as stack:
        baud = o["baudrate"]
        if o["labgrid_place"]:
            from .targets.labgrid import flash, hold_place, open_place

            stack.enter_context(hold_place(o["labgrid_place"], coordinator=o["coordinator"]))
            place = open_place(o["labgrid_place"], coordinator=o["coordinator"])
            if place.flasher:
                flash(place, ctx.artifact(f"elf-{rt}"))
            url, baud, where = place.url, place.baudrate, f"labgrid place {place.name}"
        elif o["port"]:
            url = o["port"]
            where = url
        else:
            running = stack.enter_context(
                _simulator(board, npu="ethos-u" in fw_model.op_names()).start(
                    ctx.artifact(f"elf-{rt}"), timeout=o["timeout"]
                )
            )
            url, where = running.url, f"{running.sim.name} ({board.name})"
        transport = stack.enter_context(open_transport(url, baudrate=baud))
        link = DeviceLink(transport, log=uart.extend)
        results = ResultsLog.open(d / "results.jsonl", resume=False, sha256=fw_model.sha256)
        run_samples(
            link,
            xq,
            exp=Expectation.from_model(fw_model, rt),
            results=results,
            labels=y[:n],
            golden=golden.astype(out_dtype),
            output_dtype=out_dtype,
        )
        assert link.hello is not None
        # one more invoke of the first sample, timed per layer, for the report (which joins Vela's estimate)
        profile = profile_sample(link, fw_model, np.ascontiguousarray(xq[0]).tobytes())
        hello = link.hello.to_dict()
        stats = link.stats.to_dict()
    write_bytes_atomic(d / "uart.log", bytes(uart))
    s = summarize(
        results.records,
        n_samples=n,
        hello=hello,
        golden_accuracy=golden_acc,
        gates=Gates(**o["gates"]),
        link=stats,
    )
    ok = [results.records[i] for i in sorted(results.records) if results.records[i].get("status") == "ok"]
    diffs = [
        np.abs(
            np.frombuffer(bytes.fromhex(r["output"]), out_dtype).astype(np.int32)
            - golden[int(r["index"])].astype(np.int32)
        ).max(initial=0)
        for r in ok
    ]
    s.update(
        where=where,
        runtime=rt,
        max_lsb=int(max(diffs, default=0)),
        latency_values=[int(r["cycles"]) for r in ok],
        profile=profile,
    )
    outputs = {f"results-{rt}": d / "results.jsonl"}
    if "error" not in profile:
        outputs |= {f"{k}-{rt}": v for k, v in write_profile(d, profile).items()}
    summary_path = write_text_atomic(d / "summary.json", json.dumps(s, indent=2, sort_keys=True) + "\n")
    # CI systems read the device gates as test cases (`mcudeploy ci` uploads this file)
    junit = write_text_atomic(d / "junit.xml", to_junit(s, suite=f"mcudeploy.deploy.{rt}"))
    return outputs | {f"run-summary-{rt}": summary_path, f"junit-{rt}": junit}, s


def _simulator(board: Any, *, npu: bool) -> Any:
    from .targets import simulator_for

    sim = simulator_for(board, npu=npu)
    if sim is not None:
        return sim
    raise ConfigError(
        f"board '{board.name}' has no simulator; give run.port (a serial port or pyserial URL)",
        hint="or set run.enabled = false to stop after the build",
    )


def _report(ctx: Context) -> StageOut:
    from .report import write_report

    data = report_data(ctx.options, ctx.summaries)
    html_path, md_path = write_report(data, ctx.stage_dir("report"))
    return {"report_html": html_path, "report_md": md_path}, {"title": data["title"]}


# -- the report -------------------------------------------------------------------------------
_RUNG_LABELS = {"float": "float", "tflite-int8": "int8 TFLite", "tflm-int8": "int8 host TFLM"}


def _drop_pp(ev: dict[str, Any]) -> float:
    """Accuracy lost from the first rung (float, or the int8 model) to host TFLM, in percentage points."""
    rungs = ev.get("rungs", [])
    return rungs[0]["accuracy"] - rungs[-1]["accuracy"] if rungs else 0.0


def report_data(options: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report's :data:`mcudeploy.report.ReportData`, assembled from the stage summaries alone."""
    from .boards import get_board
    from .profile import join_vela

    rts = sorted(n[len("run-") :] for n in summaries if n.startswith("run-"))
    built = sorted(n[len("build-") :] for n in summaries if n.startswith("build-"))
    ev = summaries.get("evaluate", {})
    board = options["firmware"]["board"]
    facts: list[tuple[str, Any]] = [("model", ev.get("model", summaries.get("model", {}).get("model", "?")))]
    if ev:
        facts += [
            ("sha256", ev["sha256"]),
            ("int8 size", f"{ev['int8_bytes']:,} B"),
            *(
                [
                    (
                        "int8 / float .tflite",
                        f"{ev['int8_bytes'] / ev['float_bytes']:.3f}× ({ev['float_bytes']:,} B float)",
                    )
                ]
                if ev.get("float_bytes")
                else []
            ),
            ("int8 drop (float → host TFLM)", f"{_drop_pp(ev):.2f} pp"),
            *[
                (
                    f"TFLite ({a['kernels']} kernels) vs host TFLM",
                    f"{a['byte_identical_pct']:.2f} % byte-identical, top-1 agreeing on "
                    f"{a['top1_agreement_pct']:.2f} %, max {a['max_lsb_diff']} LSB",
                )
                for a in ev.get("agreement", [])
            ],
            ("evaluation data", f"{ev['dataset']} ({ev['samples']} samples)"),
            ("host TFLM arena", f"{ev['arena_bytes']:,} B"),
        ]
    if "optimize" in summaries:
        facts.append(("optimization", summaries["optimize"]["recipe"].get("name", "?")))
    layer_error = ev.get("per_layer") or []
    facts.append(("firmware board", board))
    accuracy = [
        {"rung": _RUNG_LABELS.get(r["name"], r["name"]), "top1": r["accuracy"] / 100.0}
        for r in ev.get("rungs", [])
    ]
    data: dict[str, Any] = {"title": options["report"]["title"], "facts": facts, "accuracy": accuracy}
    if layer_error:
        data["layer_error"] = layer_error[:5]
    for rt in rts:
        run = summaries[f"run-{rt}"]
        dev = run.get("device", {})
        facts.append(
            (
                f"device ({rt})",
                f"{run['where']}: {dev.get('timer', '?')}, arena used "
                f"{dev.get('arena_used', 0):,} B, {run['measured']}/{run['samples']} samples",
            )
        )
        if run.get("accuracy") is not None:
            subset = (
                f" ({run['samples']} of {ev['samples']})" if ev and run["samples"] != ev["samples"] else ""
            )
            accuracy.append({"rung": f"device {rt}{subset}", "top1": float(run["accuracy"])})
        if run.get("bit_exact_fraction") is not None and "agreement" not in data:
            data["agreement"] = {
                "label": f"device ({rt}) vs host TFLM",
                "byte_identical": float(run["bit_exact_fraction"]),
                "max_lsb": run["max_lsb"],
            }
        prof = run.get("profile") or {}
        if prof.get("layers") and "device_layers" not in data:
            data["device_layers"] = join_vela(prof, (summaries.get("vela") or {}).get("per_layer"))
        if run.get("latency_values") and "latency" not in data:
            unit = run["latency"]["unit"]
            data["latency"] = {
                "unit": f"{unit} per inference ({rt}, {run['where']})",
                "values": run["latency_values"],
                "clock_hz": dev.get("clock_hz"),
            }
    if built:
        data["memory"] = memory_map(
            get_board(board), summaries[f"build-{built[0]}"], summaries.get(f"generate-{built[0]}", {})
        )
        facts.append(
            ("image", ", ".join(f"{rt}: {summaries[f'build-{rt}']['text_bytes']:,} B text" for rt in built))
        )
    vela = summaries.get("vela")
    if vela:
        facts.append(
            (
                "Vela",
                f"{vela['accelerator']} ({vela.get('board') or 'no board'}): "
                f"{vela['npu_ops']} NPU ops, {len(vela['cpu_ops'])} CPU ops, "
                f"{vela['npu_cycles']:,} NPU cycles, {vela['total_cycles']:,} total cycles, "
                f"{vela['inference_time_s'] * 1e3:.3f} ms/inference estimated"
                + (" for the NPU part only (CPU ops not estimated)" if vela["cpu_ops"] else ""),
            )
        )
        data["npu_layers"] = vela["per_layer"]
        data["cpu_ops"] = [{"op": c["op"], "reason": c["reason"]} for c in vela["cpu_ops"]]
    return data


def _section_part(name: str) -> str:
    if name == ".mcd_model":
        return "model"
    if name == ".mcd_arena":
        return "arena"
    if name in (".stack", ".heap"):
        return "stack+heap"
    return "app"


def memory_map(board: Any, build: dict[str, Any], generate: dict[str, Any]) -> list[dict[str, Any]]:
    """Bytes per region of the linked image, split into model / arena / stack+heap / app.

    Runtimes that compile the weights into their code (the C runtime) have no model section: the
    weight bytes the generator planned are moved from "app" to "model" in the code region.
    """
    used: dict[str, dict[str, int]] = {name: {} for name in board.memory}
    for sec, size in build["sections"].items():
        addr = int(build["addresses"][sec], 16)
        region = next((r for r in board.memory.values() if r.origin <= addr < r.origin + r.length), None)
        if region is not None and size:
            part = _section_part(sec)
            used[region.name][part] = used[region.name].get(part, 0) + int(size)
    for reg in generate.get("memory", {}).get("regions", []):
        weights = sum(dm["bytes"] for dm in reg["demands"] if "weights" in dm["what"])
        app = used.get(reg["name"], {}).get("app", 0)
        if weights and app >= weights:
            used[reg["name"]]["app"] = app - weights
            used[reg["name"]]["model"] = used[reg["name"]].get("model", 0) + weights
    regions = sorted(board.memory.values(), key=lambda r: r.origin)
    return [{"region": r.name, "size": r.length, "used": used[r.name]} for r in regions if used[r.name]]


# -- the pipeline ---------------------------------------------------------------------------
def _model_inputs(ctx: Context) -> dict[str, Any]:
    o = dict(ctx.options["model"])
    if not o["path"].startswith("builtin:"):
        o["path"] = Path(o["path"])  # hashed by content, so a moved but identical file is no change
    return o


def _board_input(name: str | None) -> Any:
    """A board as a stage input: its whole parsed definition, so an edited board file (given as a
    path or found through MCUDEPLOY_BOARDS_PATH) re-runs the stages that used it."""
    from .boards import get_board

    return None if name is None else dataclasses.asdict(get_board(name))


def _paths(ctx: Context, *keys: str) -> dict[str, Any]:
    return {k: ctx.artifacts.get(k) for k in keys}


def deploy_stages(cfg: dict[str, Any]) -> list[Stage]:
    """The stages for ``cfg``, in order, each declaring what defines its work."""
    tflite_in = _is_tflite(cfg["model"]["path"])

    def data_paths(ctx: Context) -> dict[str, Any]:
        return {"eval": _eval_data(ctx), "train": ctx.artifacts.get("train_npz")}

    stages = [
        Stage("model", "load or train the model", _model, _model_inputs),
        Stage(
            "optimize",
            "optimize (tfmot recipe)",
            _optimize,
            lambda ctx: {"opts": ctx.options["optimize"], **_paths(ctx, "keras", "train_npz")},
            enabled=lambda ctx: bool(ctx.options["optimize"]["enabled"]) and not tflite_in,
        ),
        Stage(
            "quantize",
            "full-integer int8 quantization",
            _quantize,
            lambda ctx: {
                "opts": ctx.options["quantize"],
                "optimized": ctx.options["optimize"]["enabled"],
                **_paths(ctx, "keras"),
                **data_paths(ctx),
            },
            enabled=lambda ctx: not tflite_in,
        ),
        Stage(
            "evaluate",
            "accuracy ladder: float, TFLite int8, host TFLM",
            _evaluate,
            lambda ctx: {"opts": ctx.options["evaluate"], **_paths(ctx, "int8", "keras"), **data_paths(ctx)},
        ),
        Stage(
            "vela",
            "Vela compile / estimate for the NPU",
            _vela,
            lambda ctx: {
                "opts": ctx.options["vela"],
                "board": _board_input(ctx.options["vela"]["board"]),
                **_paths(ctx, "int8"),
            },
            enabled=lambda ctx: bool(ctx.options["vela"]["board"] or ctx.options["vela"]["accelerator"]),
        ),
    ]
    for rt in runtimes(cfg):
        stages += [
            Stage(
                f"generate-{rt}",
                f"generate the {rt} firmware project",
                _generate(rt),
                # only the TFLM runtime runs the Vela model; the C runtime's project ignores it
                lambda ctx, rt=rt: {
                    "fw": ctx.options["firmware"]["board"],
                    "board": _board_input(ctx.options["firmware"]["board"]),
                    "hardware": _on_hardware(ctx),
                    **_paths(ctx, "int8", *(("vela",) if rt == "tflm" else ())),
                },
            ),
            Stage(
                f"build-{rt}",
                f"build the {rt} firmware",
                _build(rt),
                lambda ctx, rt=rt: {
                    "tflm_root": ctx.options["firmware"]["tflm_root"],
                    **_paths(ctx, f"project-{rt}"),
                },
            ),
            Stage(
                f"run-{rt}",
                f"run the {rt} firmware and measure",
                functools.partial(run_on_target, rt=rt),
                lambda ctx, rt=rt: {
                    "opts": ctx.options["run"],
                    **_paths(ctx, f"elf-{rt}", "int8"),
                    **data_paths(ctx),
                },
                enabled=lambda ctx: bool(ctx.options["run"]["enabled"]),
            ),
        ]
    stages.append(
        Stage(
            "report",
            "HTML + Markdown report",
            _report,
            lambda ctx: {"title": ctx.options["report"]["title"], "summaries": ctx.summaries},
        )
    )
    return stages


@dataclasses.dataclass
class DeployResult:
    out: Path
    results: list[StageResult]
    summaries: dict[str, dict[str, Any]]
    failed_gates: list[str]

    @property
    def report_html(self) -> Path:
        return self.out / "report" / "report.html"

    @property
    def report_md(self) -> Path:
        return self.out / "report" / "report.md"

    @property
    def nothing_done(self) -> bool:
        return all(r.skipped for r in self.results)


def deploy(
    cfg: dict[str, Any],
    on_stage: Callable[[Stage, StageResult], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> DeployResult:
    """Run the pipeline for a :func:`load_config` configuration.

    Device gates that fail do not stop the pipeline (the report shows them); they are returned in
    ``failed_gates`` and :func:`check_deploy` turns them into a :class:`GateError`. One deploy at a
    time per output folder: a second one waits for the first (``notice`` says for whom), then finds
    its stages up to date instead of running them again beside it.
    """
    from ._lock import folder_lock

    out = Path(cfg[""]["out"])
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    pipe = Pipeline(deploy_stages(cfg), out, cfg)
    with folder_lock(out, notice=notice):
        results = pipe.run(on_stage)
    failed = [
        f"{name}: {g['message']}"
        for name, s in sorted(pipe.ctx.summaries.items())
        if name.startswith("run-")
        for g in s.get("gates", [])
        if not g["passed"]
    ]
    return DeployResult(out, results, pipe.ctx.summaries, failed)


def check_deploy(res: DeployResult) -> None:
    if res.failed_gates:
        raise GateError("device gates failed: " + "; ".join(res.failed_gates), hint=f"see {res.report_html}")
