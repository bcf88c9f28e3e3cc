"""Exhaustive exactness of the C runtime's elementwise kernels against host TFLM.

Each case is one single-op model whose input holds all 256 int8 values, so a case checks every input
byte for one draw of (scales, zero points, alpha). Scales are drawn both log-uniformly and as "simple"
ratios (0.5, 1/3, k/2^n ...), where float32 and double arithmetic part ways most often: a multiplier
computed in the wrong precision shows up there first (s_in 0.5 / s_out 1/3 is exactly 1.5 in float32
but 1.4999999553 in double). `make test` runs a derandomized sample (tests/test_runtime_c_kernels.py);
`benchmarks/bench_elementwise_exact.py` runs thousands of cases per op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcudeploy.firmware.runtime_c.host import run_program
from mcudeploy.firmware.runtime_c.lower import lower
from mcudeploy.ml.tflite_builder import GraphBuilder
from mcudeploy.ml.tflm_host import HostTFLM

OPS = ("RELU", "RELU6", "LEAKY_RELU", "QUANTIZE", "HARD_SWISH", "LOGISTIC", "TANH")
ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
# fixed output quantization TFLM requires for these ops (scale, zero point)
FIXED_OUT = {"LOGISTIC": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}


@dataclass(frozen=True)
class Case:
    op: str
    s_in: float
    s_out: float
    zp_in: int
    zp_out: int
    alpha: float = 0.2

    def model(self):
        g = GraphBuilder()
        x = g.tensor((1, 256), "int8", self.s_in, self.zp_in)
        y = g.tensor((1, 256), "int8", self.s_out, self.zp_out)
        g.op(self.op, [x], [y], **({"alpha": self.alpha} if self.op == "LEAKY_RELU" else {}))
        return g.build([x], [y], source=f"{self.op}.tflite")


def _scale(rng: np.random.Generator) -> float:
    kind = rng.integers(3)
    if kind == 0:  # log-uniform
        return float(np.float32(10 ** rng.uniform(-3.5, 0.5)))
    if kind == 1:  # k / 2^n
        return float(np.float32(int(rng.integers(1, 32)) / 2 ** int(rng.integers(0, 12))))
    return float(np.float32(1.0 / int(rng.integers(1, 400))))  # 1/k: 1/3, 1/7 ...


def draw(op: str, rng: np.random.Generator) -> Case:
    s_in, s_out = _scale(rng), _scale(rng)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    alpha = float(np.float32(rng.choice([0.2, 0.1, 0.3, 0.01, 0.5, rng.uniform(0.01, 0.99)])))
    if op == "RELU6":  # TFLM's RELU6 keeps the input's quantization
        s_out, zp_out = s_in, zp_in
    if op == "HARD_SWISH":  # TFLM refuses an output scale below the input's hi-res scale
        s_out = max(s_out, s_in / 64)
    if op in FIXED_OUT:
        s_out, zp_out = FIXED_OUT[op]
    return Case(op, s_in, s_out, zp_in, zp_out, alpha)


def mismatch(case: Case) -> tuple[int, int, int] | None:
    """None when every one of the 256 inputs gives TFLM's byte, else (input, TFLM, ours) of the first."""
    m = case.model()
    want = HostTFLM(m).run(ALL_INT8)[0].reshape(-1)
    got = run_program(lower(m), ALL_INT8)[0].reshape(-1)
    bad = np.flatnonzero(want != got)
    if bad.size == 0:
        return None
    i = int(bad[0])
    return int(ALL_INT8[0, i]), int(want[i]), int(got[i])
