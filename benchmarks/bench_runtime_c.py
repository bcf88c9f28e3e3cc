"""The C runtime against TFLite Micro + CMSIS-NN on QEMU, per model and Cortex-M CPU, side by side.

    .venv/bin/python benchmarks/bench_runtime_c.py                      # quick: 4 models on M55, C only
    .venv/bin/python benchmarks/bench_runtime_c.py --cpus m55 m4 m7 m33 \\
        --tflm cmsis-nn=/work/tflm-trees/{cpu}-cmsis-nn --workdir /tmp/bench --markdown numbers.md

Models (mcudeploy.ml.zoo.BENCHMARK_MODELS, which CI also runs on QEMU an547/an386/an500: random init,
BatchNorm statistics randomized, PTQ on random calibration data -- speed and memory do not depend on
training; `digits` is the trained digits CNN):
  digits   the digits CNN (8x8x1)
  ds_cnn   DS-CNN keyword spotting as in MLPerf Tiny: 49x10x1, 64 filters, 4 depthwise-separable blocks
  vww      MobileNet-v2-style visual wake words: Keras MobileNetV2, 96x96x3, width 0.25, 2 classes
  resnet8  ResNet-8 as in MLPerf Tiny: 32x32x3, 16/32/64 filters, 10 classes
Any name of mcudeploy.ml.zoo (e.g. fc_autoencoder) works too.

CPUs and their QEMU boards: m55 qemu-an547 (MVE), m4 qemu-an386, m7 qemu-an500, m33 qemu-an505 (DSP).

For each model and CPU a test-vector firmware is generated with the `c` runtime (and the `tflm` runtime
for each --tflm tree), built with arm-none-eabi-gcc and run on QEMU with `-icount shift=0`:
  instr  instructions per inference (median over the vectors; deterministic under -icount),
  RAM    peak RAM = arena the firmware reports using + stack high-water mark (painted stack) + static
         runtime data (.data + .bss),
  flash  code + constants (.text/.rodata, .ARM.exidx, .data load image, .mcd_model, vectors) minus the
         embedded test vectors,
  diff   output bytes that differ from the host TFLM interpreter (must be 0).
and c/tflm ratios of instr, RAM and flash.

TFLite Micro trees: `--tflm LABEL=DIR` (repeatable; a bare DIR is labelled `tflm`) is a
create_tflm_tree.py export; `{cpu}` in DIR is replaced by the CPU (cortex-m55 ...), for trees exported
per TARGET_ARCH. Without --tflm, MCUDEPLOY_TFLM_ROOT (if set) is the one tree; without any, only the C
columns are printed. The TFLM library compiles once per CPU and tree (the build directory is shared by
the models; with ccache on PATH the compiler runs through it). Exits 1 if a run fails or any output
byte differs from host TFLM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mcudeploy._io import write_text_atomic
from mcudeploy.boards import get_board
from mcudeploy.firmware import build as build_mod
from mcudeploy.firmware import codegen
from mcudeploy.firmware.runtime_c.codegen import build_c_runtime
from mcudeploy.ml.model import Model
from mcudeploy.ml.tflm_host import measure_arena, run_tflm
from mcudeploy.ml.zoo import BENCHMARK_MODELS, benchmark_model
from tests.qemu_tv import TV_LINE, run_elf

CPUS = {"m55": "qemu-an547", "m4": "qemu-an386", "m7": "qemu-an500", "m33": "qemu-an505"}
TV_BEGIN = re.compile(r"^MCD-TV-BEGIN .*\barena=(\d+)", re.MULTILINE)
TV_END = re.compile(r"^MCD-TV-END .*\bstack=(\d+)", re.MULTILINE)
FLASH = (".text", ".ARM.exidx", ".ARM.extab", ".data", ".mcd_model", ".vectors")
STATIC_RAM = (".data", ".bss")
COMPARED = {"instructions_per_inference": "instr", "peak_ram_bytes": "RAM", "flash_bytes": "flash"}


# -- trees ----------------------------------------------------------------------------------------------
def parse_tflm_trees(specs: list[str]) -> dict[str, str]:
    """``LABEL=DIR`` (or a bare ``DIR``, labelled ``tflm``) -> {label: dir}; MCUDEPLOY_TFLM_ROOT if none."""
    trees: dict[str, str] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        label, path = (label, path) if sep else ("tflm", spec)
        if not label or not path or not re.fullmatch(r"[A-Za-z0-9_.+-]+", label):
            raise SystemExit(f"--tflm {spec!r}: expected LABEL=DIR (label of letters, digits, _ . + -)")
        if label in trees:
            raise SystemExit(f"--tflm: label {label!r} given twice")
        trees[label] = path
    if not trees and os.environ.get(build_mod.TFLM_ENV):
        trees["tflm"] = os.environ[build_mod.TFLM_ENV]
    return trees


def tree_for(spec: str, cpu: str) -> str:
    return spec.replace("{cpu}", cpu)


# -- one measurement --------------------------------------------------------------------------------
def measure(
    model: Model,
    board_name: str,
    runtime: str,
    x: np.ndarray,
    host: np.ndarray,
    proj_dir: Path,
    root: str | None,
) -> dict[str, Any]:
    board = get_board(board_name)
    proj = codegen.generate(model, board, proj_dir, runtime=runtime, inputs=x, target="qemu")
    # beside the project, not in it: generate() replaces the project whole, the build dir survives, so
    # the next model on this CPU and runtime rebuilds only what changed (not the TFLM library)
    build_dir = proj_dir.with_name(proj_dir.name + ".build")
    fw = build_mod.build(proj.path, build_dir=build_dir, tflm_root=root if runtime == "tflm" else None)
    code, uart = run_elf(fw.elf, board_name, timeout=900.0)
    rows = TV_LINE.findall(uart)
    begin, end = TV_BEGIN.search(uart), TV_END.search(uart)
    out = [np.frombuffer(bytes.fromhex(r[4]), np.int8) for r in rows]
    host_rows = host.reshape(len(x), -1)
    # a vector the device did not report counts all its bytes as differing
    diff = sum(
        int(np.count_nonzero(o != h)) if o.shape == h.shape else h.size
        for o, h in zip(out, host_rows, strict=False)
    )
    diff += sum(h.size for h in host_rows[len(out) :])
    s = fw.sections
    vectors = len(x) * (model.inputs[0].nbytes + model.outputs[0].nbytes)
    arena_used = int(begin.group(1)) if begin else None
    stack = int(end.group(1)) if end else None
    static = sum(s.get(k, 0) for k in STATIC_RAM)
    return {
        "runtime": runtime,
        "board": board_name,
        "tflm_root": root,
        "kernels": fw.kernels,
        "exit_code": code,
        "diff_bytes": diff,
        "instructions_per_inference": int(statistics.median(int(r[2]) for r in rows)) if rows else None,
        "arena_linked_bytes": s.get(".mcd_arena", 0),
        "arena_used_bytes": arena_used,
        "stack_used_bytes": stack,
        "static_ram_bytes": static,
        "peak_ram_bytes": arena_used + stack + static
        if arena_used is not None and stack is not None
        else None,
        "flash_bytes": sum(s.get(k, 0) for k in FLASH) - vectors,
        "test_vector_bytes": vectors,
        "sections": dict(sorted(s.items())),
    }


def safe_measure(*args: Any) -> dict[str, Any]:
    """measure(), but a failed build or run is recorded, so the other columns are still reported."""
    try:
        return measure(*args)
    except Exception as e:
        return {"runtime": args[2], "board": args[1], "error": f"{type(e).__name__}: {e}", "exit_code": None}


def ok(m: dict[str, Any]) -> bool:
    return "error" not in m and m["exit_code"] == 0 and m["diff_bytes"] == 0


def ratios(c: dict[str, Any], t: dict[str, Any]) -> dict[str, float]:
    return {v: round(c[k] / t[k], 3) for k, v in COMPARED.items() if c.get(k) and t.get(k)}


# -- output ---------------------------------------------------------------------------------------------
def cells(m: dict[str, Any] | None) -> list[str]:
    if m is None:
        return ["", "", "", ""]
    if "error" in m:
        return ["ERROR", m["error"].splitlines()[0][:60], "", ""]
    return [
        f"{m['instructions_per_inference'] or 0:,}",
        f"{m['peak_ram_bytes']:,}" if m["peak_ram_bytes"] is not None else "?",
        f"{m['flash_bytes']:,}",
        str(m["diff_bytes"]),
    ]


def table(results: list[dict[str, Any]], labels: list[str]) -> str:
    """A markdown table: one row per model and CPU, C then each TFLM tree, then the c/tflm ratios."""
    head = ["model", "CPU", "C instr", "C RAM", "C flash", "C diff"]
    for lb in labels:
        head += [f"{lb} instr", f"{lb} RAM", f"{lb} flash", f"{lb} diff", "instr c/t", "RAM c/t", "flash c/t"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r["model"], r["cpu"], *cells(r["c"])]
        for lb in labels:
            q = r["ratios_c_over_tflm"].get(lb, {})
            row += [*cells(r["tflm"].get(lb)), *(f"{q[k]:.2f}x" if k in q else "" for k in COMPARED.values())]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def print_line(label: str, m: dict[str, Any], q: dict[str, float] | None = None) -> None:
    if "error" in m:
        print(f"  {label:16} ERROR {m['error'].splitlines()[0][:160]}", flush=True)
        return
    extra = ("  c/tflm: " + "  ".join(f"{k} {v:.3f}" for k, v in q.items())) if q else ""
    print(
        f"  {label:16} {m['instructions_per_inference'] or 0:>12,} {m['peak_ram_bytes'] or 0:>9,} "
        f"{m['flash_bytes']:>9,} {m['diff_bytes']:>5}   (arena {m['arena_used_bytes']}, stack "
        f"{m['stack_used_bytes']}, data+bss {m['static_ram_bytes']}){extra}",
        flush=True,
    )


def save(args: argparse.Namespace, results: list[dict[str, Any]], labels: list[str]) -> None:
    """Rewrite the outputs after every measurement, so a long run that is stopped loses nothing before it."""
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=2, sort_keys=True) + "\n")
    if args.markdown:
        write_text_atomic(args.markdown, table(results, labels))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(BENCHMARK_MODELS), help="default: %(default)s")
    ap.add_argument("--cpus", nargs="+", default=["m55"], choices=list(CPUS), help="default: m55")
    ap.add_argument("--vectors", type=int, default=4, help="test inputs per model (default: %(default)s)")
    ap.add_argument(
        "--tflm",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="a TFLM tree (create_tflm_tree.py export, {cpu} -> cortex-m55 ...); repeat for several",
    )
    ap.add_argument("--workdir", type=Path, help="keep projects and builds here (default: a temp dir)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path, help="write the table as markdown here too")
    args = ap.parse_args()
    trees = parse_tflm_trees(args.tflm)
    labels = list(trees)
    if shutil.which("ccache"):  # the TFLM library is the same ~300 files for every model on a CPU
        for lang in ("C", "CXX"):
            os.environ.setdefault(f"CMAKE_{lang}_COMPILER_LAUNCHER", "ccache")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir.resolve() if args.workdir else Path(tmp)
        print(f"  {'':16} {'instr/inf':>12} {'peak RAM':>9} {'flash':>9} {'diff':>5}", flush=True)
        for name in args.models:
            model = benchmark_model(name)
            t = model.inputs[0]
            x = np.random.default_rng(0).integers(-128, 128, (args.vectors, *t.shape[1:]), dtype=np.int8)
            host = run_tflm(model, x).astype(np.int8)
            plan, host_arena = build_c_runtime(model).arena_bytes, measure_arena(model)
            print(f"{name}: C static plan {plan} B, host TFLM arena {host_arena} B", flush=True)
            for cpu in args.cpus:
                board, arch = CPUS[cpu], get_board(CPUS[cpu]).cpu
                row: dict[str, Any] = {
                    "model": name,
                    "cpu": cpu,
                    "board": board,
                    "plan_arena_bytes": plan,
                    "tflm_host_arena_bytes": host_arena,
                    "tflm": {},
                    "ratios_c_over_tflm": {},
                }
                results.append(row)
                print(f" {cpu} ({board})", flush=True)
                row["c"] = safe_measure(model, board, "c", x, host, work / cpu / "c" / "proj", None)
                print_line("c", row["c"])
                save(args, results, labels)
                for label, spec in trees.items():
                    root = tree_for(spec, arch)
                    m = safe_measure(
                        model, board, "tflm", x, host, work / cpu / f"tflm-{label}" / "proj", root
                    )
                    row["tflm"][label] = m
                    if "error" not in m and "error" not in row["c"]:
                        row["ratios_c_over_tflm"][label] = ratios(row["c"], m)
                    print_line(f"tflm:{label}", m, row["ratios_c_over_tflm"].get(label))
                    if m.get("kernels"):
                        print(f"  {'':16} (tree {root}: {m['kernels']} kernels)", flush=True)
                    save(args, results, labels)
    print()
    print(table(results, labels), end="")
    if not trees:
        print("(pass --tflm LABEL=DIR, or set MCUDEPLOY_TFLM_ROOT, to add TFLite Micro side by side)")
    good = all(ok(r["c"]) and all(ok(m) for m in r["tflm"].values()) for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
