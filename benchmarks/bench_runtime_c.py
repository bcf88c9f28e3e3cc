"""The C runtime on QEMU mps3-an547 (Cortex-M55): RAM, flash and instructions per inference.

    .venv/bin/python benchmarks/bench_runtime_c.py [--models digits ds_cnn ...] [--vectors 8]
        [--tflm ref=/path/tree-ref --tflm cmsis-nn=/path/tree-cmsis-nn] [--workdir DIR] [--json out.json]

For each model (zoo builders, random init + PTQ; `digits` is the trained digits CNN): generate a
test-vector firmware with the `c` runtime, build it with arm-none-eabi-gcc, run it on QEMU with
`-icount shift=0` (instructions, deterministic) and report
  RAM   = arena (.mcd_arena) + static data (.data + .bss; stack and heap are fixed config, excluded),
  flash = code + constants (.text with .rodata, .ARM.exidx, .data load image, .mcd_model) minus the
          embedded test vectors,
  instructions per inference (median over the vectors; outputs must match host TFLM).
The static memory plan's peak is listed next to host TFLM's measured arena; the arena the firmware
reports using at run time is listed too: RAM counts the .mcd_arena section as linked, ram_used (in the
JSON and the c/tflm ratios) that used arena instead.

TFLite Micro side by side: each `--tflm LABEL=DIR` (repeatable; a bare DIR is labelled `tflm`) builds
the same test-vector firmware with the `tflm` runtime against that create_tflm_tree.py export, e.g. one
exported with reference kernels and one with OPTIMIZED_KERNEL_DIR=cmsis_nn, and prints the ratios
c/tflm for each. Without --tflm, MCUDEPLOY_TFLM_ROOT (if set) is the one unlabelled tree. The kernels
each tree carries (cmsis-nn or reference) are detected and printed. TFLM library builds take minutes:
with --workdir the build directories are kept, so a rerun only rebuilds what changed.
Exits 1 if any run fails or an output differs from host TFLM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mcudeploy import build as build_mod
from mcudeploy import codegen
from mcudeploy.boards import get_board
from mcudeploy.model import Model
from mcudeploy.runtime_c.codegen import build_c_runtime
from mcudeploy.targets.qemu import QemuSimulator
from mcudeploy.tflm_host import measure_arena, run_tflm

BOARD = "qemu-an547"
TV_BEGIN = re.compile(r"^MCD-TV-BEGIN .*\barena=(\d+)", re.MULTILINE)
TV_LINE = re.compile(r"^MCD-TV (\d+) (ok|MISMATCH) t=(\d+) npu=(\d+) out=([0-9a-f]*)\r?$", re.MULTILINE)
FLASH = (".text", ".ARM.exidx", ".ARM.extab", ".data", ".mcd_model", ".vectors")
RAM = (".data", ".bss", ".mcd_arena")
# ratio keys -> short names in the table; ram_used counts the arena the firmware reports using instead
# of the .mcd_arena section (which codegen sizes with headroom, e.g. for CMSIS-NN scratch buffers)
COMPARED = {
    "ram_bytes": "ram",
    "ram_used_bytes": "ram_used",
    "flash_bytes": "flash",
    "instructions_per_inference": "instr",
}


def load_model(name: str) -> Model:
    if name == "digits":
        from mcudeploy.digits import load_digits_split, train_cnn
        from mcudeploy.quantize import convert_int8

        split = load_digits_split()
        return convert_int8(train_cnn(split), split.x_train, source="digits_int8.tflite")
    from mcudeploy.zoo import build_int8

    return build_int8(name)


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


def measure(
    model: Model, runtime: str, x: np.ndarray, host: np.ndarray, proj_dir: Path, tflm_root: str | None
) -> dict[str, Any]:
    board = get_board(BOARD)
    proj = codegen.generate(model, board, proj_dir, runtime=runtime, inputs=x, target="qemu")
    # beside the project, not in it: generate() replaces the project whole, the build dir survives
    build_dir = proj_dir.with_name(proj_dir.name + ".build")
    fw = build_mod.build(proj.path, build_dir=build_dir, tflm_root=tflm_root if runtime == "tflm" else None)
    with QemuSimulator(board).start(fw.elf, timeout=600.0) as running:
        uart = running.read_uart().decode("ascii", "replace")
        code = running.wait()
    rows = TV_LINE.findall(uart)
    begin = TV_BEGIN.search(uart)
    device = np.array([np.frombuffer(bytes.fromhex(r[4]), np.int8) for r in rows])
    s = fw.sections
    # the embedded test vectors sit in .text too; they are not part of the deployment
    vectors = len(x) * (model.inputs[0].nbytes + model.outputs[0].nbytes)
    return {
        "runtime": runtime,
        "tflm_root": tflm_root,
        "kernels": fw.kernels,
        "exit_code": code,
        "bit_exact": len(rows) == len(x) and device.tobytes() == host.reshape(device.shape).tobytes(),
        "instructions_per_inference": int(statistics.median(int(r[2]) for r in rows)) if rows else None,
        "arena_bytes": s.get(".mcd_arena", 0),
        "arena_used_bytes": int(begin.group(1)) if begin else None,
        "ram_bytes": sum(s.get(k, 0) for k in RAM),
        "ram_used_bytes": int(begin.group(1)) + sum(s.get(k, 0) for k in RAM if k != ".mcd_arena")
        if begin
        else None,
        "flash_bytes": sum(s.get(k, 0) for k in FLASH) - vectors,
        "test_vector_bytes": vectors,
        "sections": dict(sorted(s.items())),
    }


def safe_measure(*args: Any) -> dict[str, Any]:
    """measure(), but a failed build or run is recorded, so the other runtimes are still reported."""
    try:
        return measure(*args)
    except Exception as e:
        return {
            "runtime": args[1],
            "error": f"{type(e).__name__}: {e}",
            "exit_code": None,
            "bit_exact": False,
        }


def ratios(c: dict[str, Any], t: dict[str, Any]) -> dict[str, float]:
    return {k: round(c[k] / t[k], 3) for k in COMPARED if c.get(k) and t.get(k)}


def print_line(label: str, m: dict[str, Any], q: dict[str, float] | None = None) -> None:
    if "error" in m:
        print(f"  {label:14} ERROR {m['error'].splitlines()[0][:160]}", flush=True)
        return
    used = m["arena_used_bytes"] if m["arena_used_bytes"] is not None else "?"
    extra = ("  c/tflm: " + "  ".join(f"{COMPARED[k]} {v:.3f}" for k, v in q.items())) if q else ""
    print(
        f"  {label:14} {m['arena_bytes']:>8} {used:>8} {m['ram_bytes']:>8} {m['flash_bytes']:>8} "
        f"{m['instructions_per_inference'] or 0:>11} {m['bit_exact']!s:>5}{extra}",
        flush=True,
    )


def save(path: Path | None, results: list[dict[str, Any]]) -> None:
    """Rewrite the JSON after every runtime, so a long TFLM build that is stopped loses nothing before it."""
    if path:
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="+", default=["digits", "ds_cnn", "mobilenet_vww", "resnet8", "fc_autoencoder"]
    )
    ap.add_argument("--vectors", type=int, default=8)
    ap.add_argument(
        "--tflm",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="a TFLM tree (create_tflm_tree.py export) to compare against; repeat for several",
    )
    ap.add_argument("--workdir", type=Path, help="keep projects and builds here (default: a temp dir)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    trees = parse_tflm_trees(args.tflm)
    results: list[dict[str, Any]] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir.resolve() if args.workdir else Path(tmp)
        print(
            f"  {'':14} {'arena':>8} {'used':>8} {'RAM':>8} {'flash':>8} {'instr/inf':>11} exact", flush=True
        )
        for name in args.models:
            model = load_model(name)
            t = model.inputs[0]
            x = np.random.default_rng(0).integers(-128, 128, (args.vectors, *t.shape[1:]), dtype=np.int8)
            host = run_tflm(model, x).astype(np.int8)
            row: dict[str, Any] = {
                "model": name,
                "plan_arena_bytes": build_c_runtime(model).arena_bytes,
                "tflm_host_arena_bytes": measure_arena(model),
                "tflm": {},
                "ratios_c_over_tflm": {},
            }
            results.append(row)
            print(
                f"{name}: static plan {row['plan_arena_bytes']} B, "
                f"host TFLM arena {row['tflm_host_arena_bytes']} B",
                flush=True,
            )
            row["c"] = safe_measure(model, "c", x, host, work / name / "c", None)
            print_line("c", row["c"])
            save(args.json, results)
            for label, root in trees.items():
                m = safe_measure(model, "tflm", x, host, work / name / f"tflm-{label}", root)
                row["tflm"][label] = m
                if "error" not in m and "error" not in row["c"]:
                    row["ratios_c_over_tflm"][label] = ratios(row["c"], m)
                print_line(f"tflm:{label}", m, row["ratios_c_over_tflm"].get(label))
                if m.get("kernels"):
                    print(f"  {'':14} (tree {root}: {m['kernels']} kernels)", flush=True)
                save(args.json, results)
            ok &= all(m["exit_code"] == 0 and m["bit_exact"] for m in (row["c"], *row["tflm"].values()))
    if not trees:
        print("(pass --tflm LABEL=DIR, or set MCUDEPLOY_TFLM_ROOT, to add the tflm runtime side by side)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
