"""The C runtime's static memory plan, per kernel path: every pair of buffers live at the same step is
disjoint or a sanctioned overlap (an output written over its dying input, at least delta below it), each
step's scratch is as large as its kernel path needs and collides with nothing; and a runtime planned for
one kernel path does not compile for another.

Running the kernels inside the planned arena is tested elsewhere: the host path by every kernel property
test (run_program), the target paths by the QEMU kernel mix (tests/test_runtime_c_qemu.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.boards import list_boards
from mcudeploy.firmware.runtime_c.codegen import board_arch, kernel_files, render_c_runtime
from mcudeploy.firmware.runtime_c.host import host_cc, run_program
from mcudeploy.firmware.runtime_c.lower import ARCHS, lower, step_scratch
from mcudeploy.firmware.runtime_c.planner import (
    ALIGN,
    MemoryPlan,
    overlap_candidates,
    plan_memory,
    scratch_key,
)
from mcudeploy.ml.tflite_builder import GraphBuilder
from mcudeploy.ml.tflm_host import HostTFLM
from tests.graphs import conv, int8_weights
from tests.hyp import examples


def _chain(p: dict):
    """conv (k x k, stride, SAME/VALID) -> depthwise 3x3 SAME -> 1x1 conv -> ADD with the depthwise output."""
    rng = np.random.default_rng(p["seed"])
    g = GraphBuilder()
    h, c, oc = p["h"], p["c"], p["oc"]
    x = g.tensor((1, h, h, c), "int8", 0.05, 3)

    def layer(
        src: int, shape: tuple, o: int, k: int, s: int, pad: int, dw: bool = False
    ) -> tuple[int, tuple]:
        ih, iw, ic = shape
        oh = (ih + s - 1) // s if pad == 0 else (ih - k + s) // s  # padding 0: SAME, 1: VALID
        ow = (iw + s - 1) // s if pad == 0 else (iw - k + s) // s
        wshape = (1, k, k, o) if dw else (o, k, k, ic)
        w = g.const(int8_weights(rng, wshape), "int8", scale=0.02, zero_point=0)
        b = g.const(rng.integers(-300, 300, o), "int32", scale=0.001, zero_point=0)
        y = g.tensor((1, oh, ow, o), "int8", 0.1, -2)
        conv(g, [src, w, b], y, padding=pad, stride=s, depth_multiplier=1 if dw else None)
        return y, (oh, ow, o)

    y1, s1 = layer(x, (h, h, c), oc, p["k"], p["s"], p["pad"])
    y2, s2 = layer(y1, s1, oc, 3, 1, 0, dw=True)
    y3, s3 = layer(y2, s2, oc, 1, 1, 0)
    out = g.tensor((1, *s3), "int8", 0.2, 1)
    g.op("ADD", [y2, y3], [out])
    return g.build([x], [out])


def _live(a, b) -> bool:
    return a.first <= b.last and b.first <= a.last


def check_plan(prog, plan: MemoryPlan) -> None:
    """The plan's invariants, checked independently of the planner's own ``conflicts``."""
    ps = list(plan.placements.values())
    assert all(p.offset % ALIGN == 0 and p.offset >= 0 for p in ps)
    assert plan.arena_bytes >= max((p.offset + p.size for p in ps), default=0)
    for i, step in enumerate(prog.steps):
        need = step_scratch(step, plan.arch)
        at = plan.scratch_offset(i)
        assert (at is None) == (need == 0), (i, step.kernel, need, at)
        if need:
            assert plan.placements[scratch_key(i)].size >= need
    for i, a in enumerate(ps):
        for b in ps[i + 1 :]:
            if not _live(a, b):
                continue
            if a.offset + a.size <= b.offset or b.offset + b.size <= a.offset:
                continue
            # overlapping bytes: only an output over its input, no scratch, at least delta below it
            o, x = (a, b) if (a.tensor, b.tensor) in plan.overlaps else (b, a)
            assert (o.tensor, x.tensor) in plan.overlaps, f"{a.tensor} and {b.tensor} collide ({plan.arch})"
            assert min(o.tensor, x.tensor) >= 0
            step = next(s for s in prog.steps if prog.storage(s.output) == o.tensor)
            assert o.first == x.last == prog.steps.index(step)
            # the input is one the kernel may be written over, by the delta of its path
            deltas = {
                prog.storage(step.inputs[pos]): d
                for pos, d in overlap_candidates(step, plan.arch)
                if step.inputs[pos] >= 0
            }
            assert x.tensor in deltas
            assert o.offset <= x.offset - deltas[x.tensor]


chains = st.fixed_dictionaries(
    {
        "h": st.integers(3, 12),
        "c": st.integers(1, 9),
        "oc": st.integers(1, 20),
        "k": st.integers(1, 4),
        "s": st.integers(1, 2),
        "pad": st.sampled_from([0, 1]),
        "seed": st.integers(0, 2**16),
    }
)


@examples(40)
@given(chains)
def test_plan_is_valid_for_every_kernel_path(p: dict) -> None:
    if p["pad"] == 1 and p["k"] > p["h"]:
        return  # a VALID window larger than the input
    prog = lower(_chain(p))
    plans = {arch: plan_memory(prog, arch) for arch in ARCHS}
    for plan in plans.values():
        check_plan(prog, plan)
        assert not plan.conflicts()


def test_scratch_lives_in_the_arena_only_during_its_step(digits_int8) -> None:
    prog = lower(digits_int8)
    for arch in ARCHS:
        plan = plan_memory(prog, arch)
        check_plan(prog, plan)
        scratch = [p for p in plan.placements.values() if p.tensor < 0]
        assert scratch and all(p.first == p.last for p in scratch)


def test_helium_depthwise_constants_only_on_the_helium_path() -> None:
    """mve_dw_blocks is lowered for the MVE path only: every other path's steps are the host's,
    parameter for parameter; MVE's depthwise has the flag and the 8-channel blocks in place of the plain
    multipliers, shifts and biases (each layout costs 12 B of flash per channel)."""
    progs = {arch: lower(_conv_model(), arch) for arch in ARCHS}
    host = progs["host"].steps
    assert any(s.kernel == "mcd_k_depthwise_conv2d" for s in host)
    for arch, prog in progs.items():
        assert prog.arch == arch and len(prog.steps) == len(host)
        for s, h in zip(prog.steps, host, strict=True):
            if arch == "mve" and s.kernel == "mcd_k_depthwise_conv2d":
                c = h.params[3]  # channels: the plain layout is 3 * c after the header
                hdr = len(h.params) - 3 * c
                assert s.params[:hdr] == h.params[:hdr]
                assert len(s.params) == hdr + 1 + 3 * 8 * -(-c // 8)
            else:
                assert s.params == h.params
    with pytest.raises(ValueError, match="unknown kernel path"):
        lower(_conv_model(), "m55")


# -- a runtime planned for one kernel path must not build for another -----------------------------------
ARM_GCC = shutil.which("arm-none-eabi-gcc")
# the compiler flags that select each path (MCD_KERNEL_PATH in mcd_kernels.h)
TARGETS = {
    "mve": [ARM_GCC, "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
    "dsp": [ARM_GCC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "c32": [ARM_GCC, "-mcpu=cortex-m0plus", "-mthumb"],
    "host": [None],
}


def _conv_model():
    return _chain({"h": 6, "c": 3, "oc": 5, "k": 3, "s": 1, "pad": 0, "seed": 1})


@pytest.mark.parametrize("planned", ARCHS)
def test_runtime_refuses_to_compile_for_another_kernel_path(planned: str, tmp_path: Path) -> None:
    src = tmp_path / planned
    render_c_runtime(_conv_model(), src, arch=planned)
    assert {n for n in kernel_files() if n.endswith(".h")} <= {p.name for p in src.iterdir()}
    tried = 0
    for compiled, cc in TARGETS.items():
        if cc[0] is None and compiled != "host":
            continue  # no arm-none-eabi-gcc: the host row still runs
        argv = [host_cc() if cc[0] is None else cc[0], *cc[1:], "-std=c99", "-fsyntax-only", "-I", str(src)]
        r = subprocess.run([*argv, str(src / "mcd_runtime_c.c")], capture_output=True, text=True, check=False)
        tried += 1
        if compiled == planned:
            assert r.returncode == 0, r.stderr[-2000:]
        else:
            assert r.returncode != 0, f"planned for {planned}, compiled silently for {compiled}"
            assert f"generated for the '{planned}' kernel path" in r.stderr
    assert tried >= 1


# -- CONV_2D + ADD fused (lower.py fuse_conv_add): the convolution's output never exists ------------------
fused_cases = st.fixed_dictionaries(
    {
        "h": st.integers(1, 7),
        "w": st.integers(1, 7),
        "c": st.integers(1, 6),
        "oc": st.integers(1, 9),
        "k": st.integers(1, 3),
        "conv_first": st.booleans(),  # the convolution is the ADD's first operand
        "act": st.sampled_from([0, 1, 3]),
        "zp": st.integers(-128, 127),
        "s_a": st.floats(0.01, 0.3),
        "s_out": st.floats(0.01, 0.3),
        "seed": st.integers(0, 2**16),
    }
)


def _residual(p: dict, conv_is_output: bool = False):
    """r = conv(x) (k x k SAME, batch 1) is the residual; y = ADD(conv(r) 3x3 or 1x1, r) in either order."""
    rng = np.random.default_rng(p["seed"])
    g = GraphBuilder()
    h, w, c, oc = p["h"], p["w"], p["c"], p["oc"]
    x = g.tensor((1, h, w, c), "int8", 0.05, p["zp"])
    r = g.tensor((1, h, w, oc), "int8", p["s_a"], -3)
    w1 = g.const(int8_weights(rng, (oc, p["k"], p["k"], c)), "int8", scale=0.01, zero_point=0)
    conv(g, [x, w1, g.const(rng.integers(-500, 500, oc), "int32", scale=0.0005, zero_point=0)], r, padding=0)
    k2 = 4 - p["k"]  # 3x3 (im2col) or 1x1 (read in place)
    w2 = g.const(int8_weights(rng, (oc, k2, k2, oc)), "int8", scale=0.004, zero_point=0)
    b2 = g.const(rng.integers(-500, 500, oc), "int32", scale=float(np.float32(p["s_a"]) * np.float32(0.004)))
    cv = g.tensor((1, h, w, oc), "int8", 0.11, 7)
    conv(g, [r, w2, b2], cv, padding=0, act=1)
    y = g.tensor((1, h, w, oc), "int8", p["s_out"], -5)
    g.op("ADD", [cv, r] if p["conv_first"] else [r, cv], [y], fused_activation_function=p["act"])
    return g.build([x], [cv, y] if conv_is_output else [y])


@examples(40)
@given(fused_cases)
def test_conv_add_fused_bit_exact_in_the_planned_arena(p: dict) -> None:
    model = _residual(p)
    prog = lower(model)
    assert [s.kernel for s in prog.steps] == ["mcd_k_conv2d", "mcd_k_conv2d_add"]
    for arch in ARCHS:
        check_plan(prog, plan_memory(prog, arch))
    ref = HostTFLM(model)
    xs = np.random.default_rng(p["seed"]).integers(-128, 128, (3, *model.inputs[0].shape), dtype=np.int8)
    for x in xs:
        assert run_program(prog, x)[0].tobytes() == ref.run(x)[0].tobytes()


def test_conv_add_not_fused_when_the_convolution_output_is_needed() -> None:
    p = {"h": 4, "w": 5, "c": 3, "oc": 4, "k": 1, "conv_first": True, "act": 0, "zp": 0, "s_a": 0.1}
    model = _residual({**p, "s_out": 0.2, "seed": 1}, conv_is_output=True)
    prog = lower(model)
    assert [s.kernel for s in prog.steps] == ["mcd_k_conv2d", "mcd_k_conv2d", "mcd_k_add"]
    x = np.arange(60, dtype=np.int8).reshape(model.inputs[0].shape)
    for got, want in zip(run_program(prog, x), HostTFLM(model).run(x), strict=True):
        assert got.tobytes() == want.tobytes()


@pytest.mark.skipif(ARM_GCC is None, reason="needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi)")
def test_every_board_is_planned_for_the_kernel_path_its_compiler_selects(tmp_path: Path) -> None:
    """codegen plans a board's runtime for board_arch(board); its own gcc flags must select that path, or
    the project would not build (the generated source's #error): a new CPU needs cpu_arch updated."""
    model = _conv_model()
    for board in list_boards():
        src = tmp_path / board.name
        render_c_runtime(model, src, arch=board_arch(board))
        argv = [ARM_GCC, *board.gcc_flags, "-std=c99", "-fsyntax-only", "-I", str(src)]
        r = subprocess.run([*argv, str(src / "mcd_runtime_c.c")], capture_output=True, text=True, check=False)
        assert r.returncode == 0, f"{board.name} ({board.cpu}): {r.stderr[-1000:]}"
