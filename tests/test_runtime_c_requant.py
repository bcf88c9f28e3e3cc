"""The kernels' fast requantization (mcd_kernels.c requant_fast: one SMMULR, one add, one shift) equals
TFLite's MultiplyByQuantizedMultiplier + output offset on the whole domain the lowering admits it for
(quant.fast_requant). Checked on the domain's boundaries: every right shift 1..31, output offsets at
the extremes, multipliers at both ends of [2^30, 2^31), accumulators around 0 and around +-2^30, and
exact rounding ties of the right shift (and their neighbours). The C is the kernels' own source built
by the host compiler (the 64-bit SMMULR model; the Cortex-M instruction runs in the QEMU kernel mix).
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mcudeploy.firmware.runtime_c import quant
from mcudeploy.firmware.runtime_c.codegen import kernel_files
from mcudeploy.firmware.runtime_c.host import CFLAGS, _compile, host_cc
from mcudeploy.firmware.templating import template_bytes

HARNESS = r"""
#include "mcd_kernels.c"
/* per case: the reference (MultiplyByQuantizedMultiplier + ooff) and the fast form, unclamped */
void mcd_test_requant(int32_t n, const int32_t *acc, int32_t m, int32_t shift, int32_t ooff, int32_t *ref,
                      int32_t *fast)
{
    for (int32_t i = 0; i < n; ++i) {
        ref[i] = mbqm(acc[i], m, shift) + ooff;
        fast[i] = requant_fast(acc[i], m, shift, 2 * ooff + 1);
    }
}
"""
MULTS = (1 << 30, (1 << 30) + 1, 1518500250, (1 << 31) - 2, (1 << 31) - 1)
OFFSETS = (-128, -127, -1, 0, 1, 126, 127)
LIMIT = (1 << 30) - 1  # the largest |accumulator| of the fast domain


@cache
def _lib() -> ctypes.CDLL:
    tmp = Path(tempfile.mkdtemp(prefix="mcd_requant_"))
    try:
        for name in kernel_files():
            (tmp / name).write_bytes(template_bytes(f"runtime_c/{name}"))
        (tmp / "harness.c").write_text(HARNESS)
        lib = tmp / "librq.so"
        _compile([host_cc(), *CFLAGS, "-shared", "-fPIC", str(tmp / "harness.c"), "-o", str(lib), "-lm"])
        return ctypes.CDLL(str(lib))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _accumulators(m: int, e: int) -> np.ndarray:
    """Around 0 and +-2^30 (every residue of the small shifts), plus accumulators whose high product
    lands on an exact tie of the right shift (h = t 2^e + 2^(e-1)) and next to it."""
    span = np.arange(-1024, 1025, dtype=np.int64)
    acc = [span, LIMIT - 1024 + np.arange(1025), -LIMIT + np.arange(1025)]
    h_max = (LIMIT * m) >> 31
    ts = {0, 1, 2, -1, -2, -3, (h_max >> e) - 1, -(h_max >> e)}
    for t in ts:
        target = t * (1 << e) + (1 << (e - 1))
        base = -(-target * (1 << 31) // m)  # the smallest acc whose product reaches the target
        acc.append(base + np.arange(-3, 4))
    a = np.concatenate(acc)
    return np.unique(a[np.abs(a) <= LIMIT]).astype(np.int32)


def _domain() -> list[tuple[int, int]]:
    """(right shift, output offset) pairs the lowering lets take the fast path at the largest accumulator."""
    return [
        (e, o) for e in range(1, 32) for o in OFFSETS if quant.fast_requant([0], [LIMIT], [-e], o, -128, 127)
    ]


def test_fast_requantization_equals_the_reference_on_its_domain() -> None:
    lib = _lib()
    fn = lib.mcd_test_requant
    fn.restype = None
    pairs = _domain()
    # 2^30 + 2^(e-1) + |ooff| 2^e < 2^31: up to e = 30 with offset 0, e = 22 with offset -128
    assert {e for e, _ in pairs} == set(range(1, 31))
    assert max(e for e, o in pairs if o == -128) == 22
    checked = ties = 0
    for m in MULTS:
        for e, ooff in pairs:
            acc = _accumulators(m, e)
            ref, fast = np.empty_like(acc), np.empty_like(acc)
            p = ctypes.POINTER(ctypes.c_int32)
            fn(len(acc), acc.ctypes.data_as(p), m, -e, ooff, ref.ctypes.data_as(p), fast.ctypes.data_as(p))
            bad = np.flatnonzero(ref != fast)
            assert bad.size == 0, (
                f"m={m} e={e} ooff={ooff} acc={acc[bad[:5]]}: {ref[bad[:5]]} != {fast[bad[:5]]}"
            )
            checked += len(acc)
            h = (acc.astype(np.int64) * m + (1 << 30)) >> 31
            ties += int(np.count_nonzero((h & ((1 << e) - 1)) == 1 << (e - 1)))
    assert checked > 1_000_000 and ties > 1000  # the boundaries and the ties were really visited


@pytest.mark.parametrize(
    ("abs_wsum", "bias", "shift", "ooff", "lo", "hi", "want"),
    [
        ([10, 20], [5, -5], [-3, -4], 0, -128, 127, 2),  # full int8 range: saturate only
        ([10, 20], [5, -5], [-3, -4], 0, -128, 100, 1),  # RELU6-like range: clamp
        ([10, 20], [5, -5], [-3, -4], 0, 0, 127, 1),
        ([10, 20], [5, -5], [-3, 0], 0, -128, 127, 0),  # one channel without a right shift
        ([10, 20], [5, -5], [-3, 2], 0, -128, 127, 0),  # a left shift
        ([0], [LIMIT], [-5], 0, -128, 127, 2),  # the largest accumulator
        ([0], [LIMIT + 1], [-5], 0, -128, 127, 0),
        ([0], [-(LIMIT + 1)], [-5], 0, -128, 127, 0),
        ([(LIMIT - 7) // 128], [7], [-5], 0, -128, 127, 2),
        ([(LIMIT - 7) // 128 + 1], [7], [-5], 0, -128, 127, 0),  # 128 x sum|w| counts
        ([1], [1], [-23], 127, -128, 127, 2),  # 2^30 + 2^22 + 127 * 2^23 < 2^31
        ([1], [1], [-24], 0, -128, 127, 2),
        ([1], [1], [-24], 64, -128, 127, 0),  # the offset constant would overflow
        ([1], [1], [-31], 0, -128, 127, 0),
    ],
)
def test_fast_requant_flag_follows_its_domain(abs_wsum, bias, shift, ooff, lo, hi, want) -> None:
    assert quant.fast_requant(abs_wsum, bias, shift, ooff, lo, hi) == want
