"""``mcudeploy deploy``: the whole way from a model to a measured device, as one incremental pipeline.

model → optimize (optional) → quantize → evaluate → Vela (optional) → generate → build → run → report.
Every stage writes into its own folder under the output directory and the pipeline's manifest records
the hashes of its inputs and outputs (see :mod:`mcudeploy.pipeline`): a re-run with nothing changed
does no work, a changed option re-runs only the stages it reaches, a failed stage names itself.

The configuration lives in :mod:`mcudeploy.deploy_config`, the report's data in
:mod:`mcudeploy.deploy_report`; this module holds the stages and runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_directory, write_bytes_atomic, write_json_atomic, write_text_atomic
from .deploy_config import (
    AUTO_RUNTIME,
    BUILTIN_DIGITS,
    SCHEMA,
    _is_tflite,
    load_config,
    parse_override,
    runtimes,
)
from .deploy_report import memory_map, report_data
from .errors import ConfigError, GateError, InputError, MCUDeployError
from .pipeline import Context, Pipeline, Stage, StageResult, dist_version

if TYPE_CHECKING:
    from .ml.model import Model

# The typed API: config and report data live in their own modules, re-exported here.
__all__ = [
    "AUTO_RUNTIME",
    "BUILTIN_DIGITS",
    "SCHEMA",
    "DeployResult",
    "check_deploy",
    "deploy",
    "deploy_stages",
    "load_config",
    "memory_map",
    "parse_override",
    "report_data",
    "run_on_target",
    "runtimes",
]

# -- stages -------------------------------------------------------------------------------
StageOut = tuple[dict[str, Path], dict[str, Any]]


def _model(ctx: Context) -> StageOut:
    o = ctx.options["model"]
    d = ctx.stage_dir("model")
    if o["path"] == BUILTIN_DIGITS:
        from .ml.digits import load_digits_split, save_npz, train_cnn
        from .ml.optimize import save_keras

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
    # Checked here, so a bad model fails the first stage, before the output folder keeps anything.
    from .ml.model import KERAS_SUFFIXES, MODEL_FORMATS, read_tflite

    if _is_tflite(src.name):
        if src.is_dir():
            raise InputError(f"{src}: a folder, not a .tflite file")
        read_tflite(src)
    elif src.is_file() and src.suffix.lower() not in (*KERAS_SUFFIXES, ".onnx", ".pt2"):
        raise InputError(
            f"{src}: unknown model format {src.suffix!r}",
            hint=MODEL_FORMATS,
        )
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
    from .ml.datasets import load_labelled
    from .ml.model import load_keras
    from .ml.optimize import FineTune, is_qat_model, optimize, parse_recipe, save_keras

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
    from .ml.optimize import Recipe

    return [f for f in dataclasses.fields(Recipe) if f.name != "stages"]


def _quantize(ctx: Context) -> StageOut:
    d = ctx.stage_dir("quantize")
    o = ctx.options["quantize"]
    keras = ctx.artifact("keras")
    data = _train_data(ctx, "quantize") if (o["data"] or "train_npz" in ctx.artifacts) else _eval_data(ctx)
    name = f"{keras.stem}_int8.tflite"
    if ctx.options["optimize"]["enabled"]:
        from .ml.datasets import load_representative
        from .ml.optimize import load_optimized, to_int8

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
        from .ml.quantize import quantize

        res = quantize(keras, data, samples=o["samples"], per_channel=o["per_channel"], output_name=name)
        model, summary = res.model, res.to_dict()
        summary.pop("convert_seconds", None)  # a timing: keep the summary (and the report) deterministic
    path = write_bytes_atomic(d / name, model.data)
    return {"int8": path}, summary


def _evaluate(ctx: Context) -> StageOut:
    from .ml.evaluate import enforce_gates, evaluate_files

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
    path = write_json_atomic(ctx.stage_dir("evaluate") / "evaluation.json", doc)
    enforce_gates(ev, ctx.options["evaluate"]["gates"])
    return {"evaluation": path}, doc


def _vela(ctx: Context) -> StageOut:
    from .boards import get_board
    from .ml.model import read_tflite
    from .ml.vela import compile_for_npu

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
    from .ml.model import read_tflite

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
        from .firmware.codegen import generate

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
        from .firmware.build import build

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
    from .device.harness import (
        DeviceLink,
        Expectation,
        ResultsLog,
        profile_sample,
        quantize_inputs,
        run_samples,
    )
    from .device.profile import write_profile
    from .device.results import Gates, summarize, to_junit
    from .device.targets.transport import open_transport
    from .ml.datasets import load_labelled
    from .ml.tflm_host import run_tflm

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
            from .device.targets.labgrid import flash, hold_place, open_place

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
    summary_path = write_json_atomic(d / "summary.json", s)
    # CI systems read the device gates as test cases (`mcudeploy ci` uploads this file)
    junit = write_text_atomic(d / "junit.xml", to_junit(s, suite=f"mcudeploy.deploy.{rt}"))
    return outputs | {f"run-summary-{rt}": summary_path, f"junit-{rt}": junit}, s


def _simulator(board: Any, *, npu: bool) -> Any:
    from .device.targets import simulator_for

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


def _toolchain_versions() -> dict[str, str | None]:
    from .firmware.build import toolchain_versions

    return toolchain_versions()


def _tflm_tree_input(ctx: Context, rt: str) -> Any:
    """The TFLite Micro tree a ``tflm`` build will use, as a stage input: where it is and the path,
    size and mtime of each source in it (as the prebuilt TFLM library's key). The option alone is no
    key: without it the tree is the variable's or setup's current one, and a tree can be re-exported."""
    if rt != "tflm":
        return None
    from .errors import ToolMissingError
    from .firmware.build import find_tflm_root
    from .firmware.codegen import load_project
    from .ml.model import NPU_CUSTOM_OP
    from .setup.tflm_lib import tree_fingerprint

    project, npu = ctx.artifacts.get(f"project-{rt}"), False
    if project is not None:
        with contextlib.suppress(MCUDeployError):  # an unreadable project fails its build, named there
            npu = NPU_CUSTOM_OP in load_project(project).get("model", {}).get("ops", [])
    try:
        root = find_tflm_root(ctx.options["firmware"]["tflm_root"], npu=npu)
    except ToolMissingError:
        return None  # the build itself names what is missing
    return tree_fingerprint(root)


def _simulator_input(ctx: Context, rt: str) -> Any:
    """The simulator a run without a port or place uses, as a stage input: its [simulator] table and
    its executable's version line, so another QEMU or FVP (or icount shift) measures again."""
    if _on_hardware(ctx):
        return None
    from ._children import tool_version
    from .boards import get_board
    from .device.targets import simulator_for

    board = get_board(ctx.options["firmware"]["board"])
    sim = simulator_for(board, npu=rt == "tflm" and board.npu is not None and "vela" in ctx.artifacts)
    if sim is None:
        return None
    try:
        exe = sim.find_executable()
    except MCUDeployError:
        return None  # the run itself names what is missing
    return {"name": sim.name, "config": sim.config, "version": tool_version(exe)}


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
                "tools": {"tensorflow": dist_version("tensorflow")},
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
            lambda ctx: {
                "opts": ctx.options["evaluate"],
                "tools": {d: dist_version(d) for d in ("tensorflow", "tflite-micro")},
                **_paths(ctx, "int8", "keras"),
                **data_paths(ctx),
            },
        ),
        Stage(
            "vela",
            "Vela compile / estimate for the NPU",
            _vela,
            lambda ctx: {
                "opts": ctx.options["vela"],
                "tools": {"ethos-u-vela": dist_version("ethos-u-vela")},
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
                    "tools": {"tflite-micro": dist_version("tflite-micro")},  # the golden outputs
                    **_paths(ctx, "int8", *(("vela",) if rt == "tflm" else ())),
                },
            ),
            Stage(
                f"build-{rt}",
                f"build the {rt} firmware",
                _build(rt),
                lambda ctx, rt=rt: {
                    "tflm_root": ctx.options["firmware"]["tflm_root"],
                    "tools": _toolchain_versions(),
                    "tflm_tree": _tflm_tree_input(ctx, rt),
                    **_paths(ctx, f"project-{rt}"),
                },
            ),
            Stage(
                f"run-{rt}",
                f"run the {rt} firmware and measure",
                functools.partial(run_on_target, rt=rt),
                lambda ctx, rt=rt: {
                    "opts": ctx.options["run"],
                    "simulator": _simulator_input(ctx, rt),
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

    if cfg["run"]["enabled"] and cfg["run"]["labgrid_place"]:
        from .device.targets.labgrid import labgrid

        labgrid()  # as `run` does: a missing labgrid is said before any stage works for nothing
    out = Path(cfg[""]["out"])
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    fresh = not out.exists()
    pipe = Pipeline(deploy_stages(cfg), out, cfg)
    with folder_lock(out, notice=notice):
        try:
            results = pipe.run(on_stage)
        except MCUDeployError:
            # Nothing was made in a folder this run created: leave none behind (only while holding the
            # lock: a deploy that gave up waiting must not remove the folder another one is filling).
            if fresh and not pipe.ctx.summaries:
                shutil.rmtree(out, ignore_errors=True)
            raise
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
