"""mcudeploy's standalone C runtime (``--runtime c``): generated C99, bit-exact with TFLite Micro.

Pipeline (each step a small module):

- :mod:`.quant` — TFLite's quantization arithmetic (QuantizeMultiplier, activation ranges, softmax
  and logistic/tanh input scaling), computed at generation time in the same float32/double order
  as TFLM's Prepare functions.
- :mod:`.lower` — each operator becomes one kernel call with int32 parameters; RESHAPE, SQUEEZE and
  EXPAND_DIMS become aliases (no code, no copy). An unsupported op is refused by name with a hint
  to use ``--runtime tflm``.
- :mod:`.lower_ops` — data movement (TRANSPOSE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK as one strided
  gather per output; PACK as a concatenation), SUB, the two RESIZEs and TRANSPOSE_CONV
  (``mcd_kernels_ops.c``); an op may become several kernel calls.
- :mod:`.planner` — a static memory plan: every activation gets an offset in one arena; greedy by
  size over op-step lifetimes, so buffers whose lifetimes do not overlap share bytes.
- :mod:`.codegen` — renders ``firmware_templates/runtime_c``: the kernel library (``mcd_kernels.c``,
  TFLM reference rounding: SaturatingRoundingDoublingHighMul + RoundingDivideByPOT, gemmlowp
  fixed-point exp / reciprocal for SOFTMAX, LOGISTIC, TANH) and one generated source with the
  weights as const arrays, per-channel multipliers/shifts, the plan and ``mcd_invoke``, which also
  implements the shared ``mcd_runtime.h`` so the firmware app and harness treat it like TFLM.
  It is the ``c`` entry of :data:`mcudeploy.firmware.runtimes.RUNTIMES`.
- :mod:`.host` — the same sources on the host: a whole model as an executable, or single kernels
  through ctypes (compiled once per process) for property tests against host TFLM.
"""

from __future__ import annotations

from .codegen import CRuntime, build_c_runtime, render_c_runtime
from .lower import SUPPORTED_OPS, lower, unsupported_ops
from .planner import MemoryPlan, plan_memory

__all__ = [
    "SUPPORTED_OPS",
    "CRuntime",
    "MemoryPlan",
    "build_c_runtime",
    "lower",
    "plan_memory",
    "render_c_runtime",
    "unsupported_ops",
]
