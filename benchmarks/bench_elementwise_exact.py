"""Exhaustive exactness of the C runtime's elementwise kernels against host TFLM.

    .venv/bin/python benchmarks/bench_elementwise_exact.py [--cases 3000] [--seed N] [--ops RELU ...]

For each op, N random (scale, zero point, alpha) draws — log-uniform and "simple" ratios such as 0.5 / (1/3),
where float32 and double arithmetic disagree most — each run over all 256 int8 inputs through host TFLM
and through the C runtime's lowering + kernels; prints the cases that differ. Exits 1 on any difference.
`make test` runs a fixed sample of the same draws (tests/test_runtime_c_kernels.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.exact_elementwise import OPS, draw, mismatch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000, help="draws per op (each checks 256 inputs)")
    ap.add_argument("--seed", type=int, default=None, help="fixed seed (default: a fresh one, printed)")
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    print(f"seed {seed}, {a.cases} cases x 256 inputs per op")
    failed = 0
    for k, op in enumerate(a.ops):
        rng = np.random.default_rng([seed, k])
        t0 = time.perf_counter()
        bad = [(c, r) for c in (draw(op, rng) for _ in range(a.cases)) if (r := mismatch(c)) is not None]
        failed += len(bad)
        print(f"{op:12s} {len(bad):5d} / {a.cases} differ   ({time.perf_counter() - t0:.1f} s)")
        for c, (x, want, got) in bad[:5]:
            print(f"    {c}: x={x} TFLM {want} ours {got}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
