"""The C runtime on QEMU mps3-an547 (Cortex-M55): RAM, flash and instructions per inference.

    .venv/bin/python benchmarks/bench_runtime_c.py [--models digits_cnn ds_cnn ...] [--vectors 8]
                                                  [--json out.json]

For each model (zoo builders, random init + PTQ; `digits` is the trained digits CNN): generate a
test-vector firmware with the `c` runtime, build it with arm-none-eabi-gcc, run it on QEMU with
`-icount shift=0` (instructions, deterministic) and report
  RAM   = arena (.mcd_arena) + static data (.data + .bss; stack and heap are fixed config, excluded),
  flash = code + constants (.text with .rodata, .ARM.exidx, .data load image, .mcd_model) minus the
          embedded test vectors,
  instructions per inference (median over the vectors; outputs must match host TFLM).
The static memory plan's peak is listed next to host TFLM's measured arena. When
MCUDEPLOY_TFLM_ROOT is set, the same firmware is built with the `tflm` runtime and the ratios shown.
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
TV_LINE = re.compile(r"^MCD-TV (\d+) (ok|MISMATCH) t=(\d+) npu=(\d+) out=([0-9a-f]*)\r?$", re.MULTILINE)
FLASH = (".text", ".ARM.exidx", ".ARM.extab", ".data", ".mcd_model", ".vectors")
RAM = (".data", ".bss", ".mcd_arena")


def load_model(name: str) -> Model:
    if name == "digits":
        from mcudeploy.digits import load_digits_split, train_cnn
        from mcudeploy.quantize import convert_int8

        split = load_digits_split()
        return convert_int8(train_cnn(split), split.x_train, source="digits_int8.tflite")
    from mcudeploy.zoo import build_int8

    return build_int8(name)


def measure(model: Model, runtime: str, x: np.ndarray, work: Path, tflm_root: str | None) -> dict[str, Any]:
    board = get_board(BOARD)
    proj = codegen.generate(model, board, work / runtime, runtime=runtime, inputs=x, target="qemu")
    fw = build_mod.build(proj.path, tflm_root=tflm_root) if runtime == "tflm" else build_mod.build(proj.path)
    with QemuSimulator(board).start(fw.elf, timeout=600.0) as running:
        uart = running.read_uart().decode("ascii", "replace")
        code = running.wait()
    rows = TV_LINE.findall(uart)
    device = np.array([np.frombuffer(bytes.fromhex(r[4]), np.int8) for r in rows])
    host = run_tflm(model, x).astype(np.int8).reshape(device.shape) if len(rows) == len(x) else None
    s = fw.sections
    # the embedded test vectors sit in .text too; they are not part of the deployment
    vectors = len(x) * (model.inputs[0].nbytes + model.outputs[0].nbytes)
    return {
        "runtime": runtime,
        "exit_code": code,
        "bit_exact": host is not None and device.tobytes() == host.tobytes(),
        "instructions_per_inference": int(statistics.median(int(r[2]) for r in rows)) if rows else None,
        "arena_bytes": s.get(".mcd_arena", 0),
        "ram_bytes": sum(s.get(k, 0) for k in RAM),
        "flash_bytes": sum(s.get(k, 0) for k in FLASH) - vectors,
        "test_vector_bytes": vectors,
        "sections": dict(sorted(s.items())),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="+", default=["digits", "ds_cnn", "mobilenet_vww", "resnet8", "fc_autoencoder"]
    )
    ap.add_argument("--vectors", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tflm_root = os.environ.get("MCUDEPLOY_TFLM_ROOT")
    results: list[dict[str, Any]] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = load_model(name)
            t = model.inputs[0]
            x = np.random.default_rng(0).integers(-128, 128, (args.vectors, *t.shape[1:]), dtype=np.int8)
            row: dict[str, Any] = {
                "model": name,
                "plan_arena_bytes": build_c_runtime(model).arena_bytes,
                "tflm_host_arena_bytes": measure_arena(model),
                "c": measure(model, "c", x, Path(tmp) / name, None),
            }
            if tflm_root:
                row["tflm"] = measure(model, "tflm", x, Path(tmp) / name, tflm_root)
                row["ratios_c_over_tflm"] = {
                    k: round(row["c"][k] / row["tflm"][k], 3)
                    for k in ("ram_bytes", "flash_bytes", "instructions_per_inference")
                    if row["c"][k] and row["tflm"][k]
                }
            ok &= all(row[r]["exit_code"] == 0 and row[r]["bit_exact"] for r in ("c", "tflm") if r in row)
            results.append(row)

    hdr = f"{'model':16} {'plan':>8} {'tflm-host':>9} {'RAM':>8} {'flash':>8} {'instr/inf':>11} exact"
    print(hdr)
    for r in results:
        c = r["c"]
        print(
            f"{r['model']:16} {r['plan_arena_bytes']:>8} {r['tflm_host_arena_bytes']:>9} {c['ram_bytes']:>8} "
            f"{c['flash_bytes']:>8} {c['instructions_per_inference'] or 0:>11} {c['bit_exact']}"
        )
        if "tflm" in r:
            t = r["tflm"]
            print(
                f"{'  tflm':16} {'':>18} {t['ram_bytes']:>8} {t['flash_bytes']:>8} "
                f"{t['instructions_per_inference'] or 0:>11} {t['bit_exact']} c/tflm "
                f"{r['ratios_c_over_tflm']}"
            )
    if not tflm_root:
        print("(set MCUDEPLOY_TFLM_ROOT to a TFLM tree to add the tflm runtime side by side)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
