"""Model-to-C speed, side by side: `xxd -i` vs a one-byte numpy lookup table vs mcudeploy's emitter.

    .venv/bin/python benchmarks/bench_header.py [--mb 10] [--compile] [--json out.json]

Emits the same 10 MB of bytes as a C initializer with each method and writes it to a file (best of
N runs; mcudeploy's first, cold call is reported too). With --compile, also times compiling the
generated sources with arm-none-eabi-gcc: the c-array (slow, GBs of RAM) against incbin.
Exits 1 if mcudeploy is not at least 5x faster than `xxd -i`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcudeploy.firmware.header import render_array_body

REQUIRED_SPEEDUP = 5.0


def best_of(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_single_lut(data: bytes) -> bytes:
    """The baseline from FACTS.md: a 256-entry table indexed per byte, 12 bytes per line."""
    lut = np.frombuffer(b"".join(b"0x%02x, " % i for i in range(256)), np.uint8).reshape(256, 6)
    return lut[np.frombuffer(data, np.uint8)].tobytes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=10.0, help="model size in MiB (default 10)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time arm-none-eabi-gcc on c-array vs incbin")
    ap.add_argument("--json", type=Path, help="write the numbers as JSON")
    args = ap.parse_args()

    data = np.random.default_rng(0).integers(0, 256, int(args.mb * 1024 * 1024), np.uint8).tobytes()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        blob = work / "model.bin"
        blob.write_bytes(data)
        out = work / "out.c"

        def ours() -> None:
            out.write_bytes(render_array_body(data))

        results["mcudeploy_cold_s"] = best_of(ours, 1)  # includes building the pair table
        results["mcudeploy_s"] = best_of(ours, args.runs)
        results["numpy_lut_s"] = best_of(lambda: out.write_bytes(numpy_single_lut(data)), args.runs)
        if shutil.which("xxd"):

            def xxd() -> None:
                with out.open("wb") as f:
                    subprocess.run(["xxd", "-i", str(blob)], stdout=f, check=True)

            results["xxd_s"] = best_of(xxd, max(1, args.runs // 2))
        if args.compile:
            results.update(compile_times(data, work))

    print(f"{args.mb:g} MiB model -> C initializer (best of {args.runs}, written to a file)")
    for key, value in results.items():
        print(f"  {key:<22} {value:8.3f} s")
    ok = True
    if "xxd_s" in results:
        speedup = results["xxd_s"] / results["mcudeploy_s"]
        results["speedup_vs_xxd"] = speedup
        ok = speedup >= REQUIRED_SPEEDUP
        print(
            f"  speedup vs xxd -i      {speedup:8.1f} x (need >= {REQUIRED_SPEEDUP:g} x): "
            + ("ok" if ok else "TOO SLOW")
        )
    else:
        print("  xxd not found: install it (apt-get install xxd) for the side-by-side number")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0 if ok else 1


def compile_times(data: bytes, work: Path) -> dict[str, float]:
    """Compile the generated sources for a Cortex-M55 (objects only) and time each format."""
    if shutil.which("arm-none-eabi-gcc") is None:
        print("  arm-none-eabi-gcc not found: skipping --compile")
        return {}
    from mcudeploy.firmware.header import HeaderOptions, render_model_sources
    from mcudeploy.ml.model import Model

    # render_model_sources only reads data/source/size/sha256: a bytes-only Model is enough here
    model = Model(data=data, source="bench.tflite", version=3, description="", subgraphs=(), num_buffers=0)
    times = {}
    for fmt in ("incbin", "c-array"):
        files = render_model_sources(model, HeaderOptions("bench", fmt, 16, None, "c"))
        for name, content in files.items():
            (work / name).write_bytes(content)
        cmd = ["arm-none-eabi-gcc", "-mcpu=cortex-m55", "-mthumb", "-O2", "-c", "bench.c", "-o", f"{fmt}.o"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=work, check=True)
        times[f"gcc_{fmt.replace('-', '_')}_s"] = time.perf_counter() - t0
    return times


if __name__ == "__main__":
    sys.exit(main())
