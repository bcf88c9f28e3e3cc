"""The C runtime on QEMU, byte-identical to host TFLM: every digits test sample on mps3-an547 (M55),
a kernel mix on each CPU board (M55, M4, M7, M33)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mcudeploy import build as build_mod
from mcudeploy import codegen
from mcudeploy.boards import get_board
from mcudeploy.targets.qemu import QemuSimulator
from mcudeploy.tflite_builder import GraphBuilder
from mcudeploy.tflm_host import run_tflm

QEMU = "qemu-an547"
# one QEMU board per CPU the runtime has a SIMD path for: M55 (MVE), M4, M7, M33 (DSP extension)
ARCH_BOARDS = ["qemu-an547", "qemu-an386", "qemu-an500", "qemu-an505"]
TV_LINE = re.compile(r"^MCD-TV (\d+) (ok|MISMATCH) t=(\d+) npu=(\d+) out=([0-9a-f]*)\r?$", re.MULTILINE)


@pytest.mark.qemu
@pytest.mark.slow
def test_c_runtime_runs_every_digits_test_sample_on_qemu(digits_int8, digits_split, tmp_path: Path) -> None:
    t = digits_int8.inputs[0]
    x = np.clip(np.round(digits_split.x_test / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127)
    x = x.astype(np.int8)
    p = codegen.generate(
        digits_int8, get_board(QEMU), tmp_path / "proj", runtime="c", inputs=x, num_vectors=len(x)
    )
    fw = build_mod.build(p.path)
    with QemuSimulator(get_board(QEMU)).start(fw.elf, timeout=120.0) as running:
        uart = running.read_uart().decode("ascii", "replace")
        code = running.wait()
    rows = TV_LINE.findall(uart)
    assert code == 0, uart[-2000:]
    assert f"runtime=c timer=icount-instructions arena={p.arena_bytes}" in uart
    assert [int(r[0]) for r in rows] == list(range(len(x)))
    device = np.array([np.frombuffer(bytes.fromhex(r[4]), np.int8) for r in rows])
    host = run_tflm(digits_int8, x).astype(np.int8).reshape(device.shape)
    assert int(np.count_nonzero(device != host)) == 0
    assert all(r[1] == "ok" for r in rows)
    # the same model and input cost the same instruction count on every sample but data-dependent
    # branches (padding borders are static): report, not assert, the spread; it must be nonzero work
    assert min(int(r[2]) for r in rows) > 10_000


def _kernel_mix_model():
    """A small graph touching every path of the kernels that only the target compiles (Helium MVE on
    Cortex-M55, DSP SMLAD on Cortex-M4): im2col and in-place convolutions, channel tails, dilation,
    depthwise with multiplier 1 and 2, fully connected."""
    rng = np.random.default_rng(11)
    g = GraphBuilder()
    x = g.tensor((1, 8, 8, 12), "int8", 0.04, -7)
    w1 = g.const(rng.integers(-127, 128, (16, 3, 3, 12)), "int8", scale=list(rng.uniform(0.002, 0.02, 16)))
    b1 = g.const(rng.integers(-2000, 2000, 16), "int32", scale=[1e-4] * 16)
    c1 = g.tensor((1, 8, 8, 16), "int8", 0.08, -20)
    g.op(
        "CONV_2D",
        [x, w1, b1],
        [c1],
        padding=0,
        stride_h=1,
        stride_w=1,
        dilation_h_factor=1,
        dilation_w_factor=1,
        fused_activation_function=1,
    )
    w2 = g.const(
        rng.integers(-127, 128, (1, 3, 3, 16)), "int8", scale=list(rng.uniform(0.005, 0.03, 16)), axis=3
    )
    b2 = g.const(rng.integers(-500, 500, 16), "int32", scale=[1e-4] * 16)
    c2 = g.tensor((1, 8, 8, 16), "int8", 0.06, 3)
    g.op(
        "DEPTHWISE_CONV_2D",
        [c1, w2, b2],
        [c2],
        padding=0,
        stride_h=1,
        stride_w=1,
        depth_multiplier=1,
        dilation_h_factor=1,
        dilation_w_factor=1,
        fused_activation_function=3,
    )
    s = g.tensor((1, 8, 8, 16), "int8", 0.1, -4)
    g.op("ADD", [c1, c2], [s], fused_activation_function=0)
    # 1x1 convolution read in place, 7 output channels (tails of the 4-row MVE and 2-row DSP blocks);
    # multipliers 0.07..0.43 (right shifts of 1..4 bits) and small weights: many exact rounding ties
    w3 = g.const(rng.integers(-4, 5, (7, 1, 1, 16)), "int8", scale=list(rng.uniform(0.05, 0.3, 7)))
    b3 = g.const(rng.integers(-900, 900, 7), "int32", scale=[1e-4] * 7)
    c3 = g.tensor((1, 8, 8, 7), "int8", 0.07, 9)
    g.op("CONV_2D", [s, w3, b3], [c3], padding=1, stride_h=1, stride_w=1, fused_activation_function=0)
    # depthwise on 7 channels (a 4-channel block and a 3-channel tail), 6 pixels a row (4 + 2)
    w3b = g.const(
        rng.integers(-127, 128, (1, 3, 3, 7)), "int8", scale=list(rng.uniform(0.005, 0.03, 7)), axis=3
    )
    b3b = g.const(rng.integers(-500, 500, 7), "int32", scale=[1e-4] * 7)
    c3b = g.tensor((1, 6, 6, 7), "int8", 0.06, -11)
    g.op(
        "DEPTHWISE_CONV_2D",
        [c3, w3b, b3b],
        [c3b],
        padding=1,
        stride_h=1,
        stride_w=1,
        depth_multiplier=1,
        dilation_h_factor=1,
        dilation_w_factor=1,
        fused_activation_function=1,
    )
    # dilated, strided, padded 3x3 convolution: patch of 63 bytes, taps gathered one by one
    w4 = g.const(rng.integers(-127, 128, (5, 3, 3, 7)), "int8", scale=list(rng.uniform(0.002, 0.02, 5)))
    c4 = g.tensor((1, 3, 3, 5), "int8", 0.09, -3)
    g.op(
        "CONV_2D",
        [c3b, w4, -1],
        [c4],
        padding=0,
        stride_h=2,
        stride_w=2,
        dilation_h_factor=2,
        dilation_w_factor=2,
        fused_activation_function=1,
    )
    # depth multiplier 2 on 5 channels, border and inside pixels
    w5 = g.const(
        rng.integers(-127, 128, (1, 3, 3, 10)), "int8", scale=list(rng.uniform(0.005, 0.03, 10)), axis=3
    )
    b5 = g.const(rng.integers(-500, 500, 10), "int32", scale=[1e-4] * 10)
    c5 = g.tensor((1, 3, 3, 10), "int8", 0.05, 6)
    g.op(
        "DEPTHWISE_CONV_2D",
        [c4, w5, b5],
        [c5],
        padding=0,
        stride_h=1,
        stride_w=1,
        depth_multiplier=2,
        dilation_h_factor=1,
        dilation_w_factor=1,
        fused_activation_function=0,
    )
    p = g.tensor((1, 1, 1, 10), "int8", 0.05, 6)
    g.op(
        "AVERAGE_POOL_2D",
        [c5],
        [p],
        padding=1,
        stride_h=2,
        stride_w=2,
        filter_height=2,
        filter_width=2,
        fused_activation_function=0,
    )
    m = g.tensor((1, 10), "int8", 0.05, 2)
    g.op("MEAN", [p, g.const(np.array([1, 2]), "int32")], [m], keep_dims=False)
    wf = g.const(rng.integers(-127, 128, (10, 10)), "int8", scale=0.01)
    bf = g.const(rng.integers(-300, 300, 10), "int32", scale=float(np.float32(0.05) * np.float32(0.01)))
    f = g.tensor((1, 10), "int8", 0.2, 1)
    g.op("FULLY_CONNECTED", [m, wf, bf], [f], fused_activation_function=0)
    y = g.tensor((1, 10), "int8", 1 / 256, -128)
    g.op("SOFTMAX", [f], [y], beta=1.0)
    return g.build([x], [y], source="kernel_mix.tflite")


@pytest.mark.qemu
@pytest.mark.parametrize("board", ARCH_BOARDS)
def test_c_runtime_kernel_mix_on_qemu_matches_host_tflm(board: str, tmp_path: Path) -> None:
    """Each architecture path the runtime compiles (MVE on M55, DSP on M4/M7/M33) on its QEMU board."""
    model = _kernel_mix_model()
    x = np.random.default_rng(2).integers(-128, 128, (40, 8, 8, 12), dtype=np.int8)
    p = codegen.generate(model, get_board(board), tmp_path / "proj", runtime="c", inputs=x)
    fw = build_mod.build(p.path)
    with QemuSimulator(get_board(board)).start(fw.elf, timeout=120.0) as running:
        uart = running.read_uart().decode("ascii", "replace")
        code = running.wait()
    rows = TV_LINE.findall(uart)
    assert code == 0, uart[-2000:]
    device = np.array([np.frombuffer(bytes.fromhex(r[4]), np.int8) for r in rows])
    assert device.tobytes() == run_tflm(model, x).astype(np.int8).tobytes()
