"""Static memory plan: every activation gets an offset in one arena, reusing memory across lifetimes.

Greedy placement, each buffer at the lowest aligned offset that its placed neighbours (buffers whose
lifetime intersects its own; lifetimes are inclusive op-step intervals) allow: the classic offline
planner TFLM's GreedyMemoryPlanner uses, run for a few buffer orders (by size, by first use, by
lifetime), keeping the smallest peak. A buffer goes where the arena's extent grows least, above or
below what is placed, so a chain of outputs written over their inputs can slide downwards.

An op's output never shares bytes with its inputs, except where the kernel is safe with a partial
overlap: CONV_2D and DEPTHWISE_CONV_2D (batch 1) walk output pixels in order, in groups of
``write_group`` pixels (per kernel path, lower.py) that read their whole receptive fields before or while
writing the group, and never read an input row above the first group pixel's window again. So when the
input dies at that step the output may start ``delta`` bytes below the input and run into it, where
``delta`` is the largest (group's output end - lowest input byte still read from the group on) over all
groups. ADD of same-shape operands (one flat loop, each element, or vector of 4, read before it is
written) may write over either operand in place (delta 0).

A kernel's scratch (im2col patches, depthwise tap tables) is a buffer of the plan too, live during its
one step only, so it costs arena bytes only where it adds to that step's live activations. Its size
depends on the kernel path (lower.py ``step_scratch``), so a plan is made for one path of ``ARCHS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .lower import ARCHS, FUSED_HDR, Program, Step, add_is_flat, step_scratch, write_group

ALIGN = 16
_CV_N, _CV_W, _CV_C, _CV_OH, _CV_OW, _CV_OC, _CV_SH, _CV_SW, _CV_PH, _CV_PW = 0, 2, 3, 4, 5, 6, 9, 10, 13, 14
OVERLAP_KERNELS = ("mcd_k_conv2d", "mcd_k_depthwise_conv2d")  # + mcd_k_add, mcd_k_conv2d_add


def scratch_key(step: int) -> int:
    """The plan's key for step ``step``'s scratch buffer (tensor storages are >= 0)."""
    return -1 - step


@dataclass(frozen=True)
class Placement:
    tensor: int  # the storage owner (aliases resolve to it); scratch_key(i) for step i's scratch
    offset: int
    size: int
    first: int  # step index that writes it (-1: model input)
    last: int  # step index that last reads it (len(steps): model output)


@dataclass(frozen=True)
class MemoryPlan:
    placements: dict[int, Placement]
    arena_bytes: int  # peak: the arena the plan needs
    # (output, input) storage -> delta: the output may start delta bytes below the input and overlap it
    overlaps: dict[tuple[int, int], int]
    arch: str = "host"  # the kernel path whose scratch sizes the plan holds

    def offset(self, tensor: int) -> int:
        return self.placements[tensor].offset

    def scratch_offset(self, step: int) -> int | None:
        """Where step ``step``'s scratch starts in the arena (None: the step needs none)."""
        p = self.placements.get(scratch_key(step))
        return p.offset if p else None

    def naive_bytes(self) -> int:
        """What the arena would be without reuse (for reports)."""
        return sum(_align(p.size) for p in self.placements.values())

    def conflicts(self) -> list[tuple[int, int]]:
        """Live-at-once buffer pairs whose bytes collide beyond a sanctioned overlap (empty: valid)."""
        ps = list(self.placements.values())
        bad = []
        for i, a in enumerate(ps):
            for b in ps[i + 1 :]:
                if a.first <= b.last and b.first <= a.last:
                    lo, hi = _forbidden(a, b, self.overlaps)
                    if lo < b.offset - a.offset < hi:
                        bad.append((a.tensor, b.tensor))
        return bad


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def overlap_candidates(step: Step, arch: str) -> list[tuple[int, int]]:
    """(position in ``step.inputs``, delta) of each input the step's output may be written over on kernel
    path ``arch``, starting delta bytes below it, in order of preference (empty: none)."""
    p = step.params
    if step.kernel == "mcd_k_add":
        return [(0, 0), (1, 0)] if add_is_flat(p) else []
    if step.kernel == "mcd_k_conv2d_add":  # in place over the other ADD operand, else like CONV_2D
        d = _conv_delta(p[FUSED_HDR:], write_group("mcd_k_conv2d", arch))
        return [(4, 0)] if d is None else [(4, 0), (0, d)]
    if step.kernel in OVERLAP_KERNELS:
        d = _conv_delta(p, write_group(step.kernel, arch))
        return [] if d is None else [(0, d)]
    return []


def _conv_delta(p: tuple[int, ...], group: int) -> int | None:
    """CONV_2D / DEPTHWISE_CONV_2D computing ``group`` pixels at a time: how far below its input the
    output must start (None: batch > 1, not overlap-safe)."""
    if p[_CV_N] != 1:
        return None
    w, c, oh, ow, oc = p[_CV_W], p[_CV_C], p[_CV_OH], p[_CV_OW], p[_CV_OC]
    sh, sw, ph, pw = p[_CV_SH], p[_CV_SW], p[_CV_PH], p[_CV_PW]
    # each pixel's lowest possible input byte: its window's top-left corner clamped into the input
    # (a bound below every tap it reads), then the minimum over it and all later pixels
    oy, ox = np.divmod(np.arange(oh * ow), ow)
    low = (np.maximum(oy * sh - ph, 0) * w + np.maximum(ox * sw - pw, 0)) * c
    need = np.minimum.accumulate(low[::-1])[::-1]
    # a group of pixels writes its outputs while or after reading from its first pixel's need on
    p0 = np.arange(0, oh * ow, group)
    ends = np.minimum(p0 + group, oh * ow) * oc
    delta = int(max(0, (ends - need[p0]).max())) if len(p0) else 0
    return _align(delta)


def _forbidden(a: Placement, b: Placement, overlaps: dict[tuple[int, int], int]) -> tuple[int, int]:
    """Open interval of b.offset - a.offset that would corrupt one of two live-at-once buffers."""
    sa, sb = _align(a.size), _align(b.size)
    if (b.tensor, a.tensor) in overlaps:  # b written over a: b at most delta below a, or above a
        return -overlaps[b.tensor, a.tensor], sa
    if (a.tensor, b.tensor) in overlaps:  # a written over b
        return -sb, overlaps[a.tensor, b.tensor]
    return -sb, sa


def _greedy(
    order: list[int],
    size: dict[int, int],
    first: dict[int, int],
    last: dict[int, int],
    ov: dict[tuple[int, int], int],
    down: bool,
) -> dict[int, Placement]:
    """Place in ``order``, each buffer where the arena's extent grows least; among equals the lowest
    offset inside the extent, or (``down``) the lowest offset at all. Offsets may go below 0 (an output
    written over its input sits below it); the caller shifts."""
    placed: dict[int, Placement] = {}
    lo_all = hi_all = 0
    for s in order:
        me = Placement(s, 0, size[s], first[s], last[s])
        busy = []
        for p in placed.values():
            if p.first <= last[s] and first[s] <= p.last:
                lo, hi = _forbidden(p, me, ov)
                busy.append((p.offset + lo, p.offset + hi))
        cands = sorted({0, lo_all, *(x for iv in busy for x in iv)})
        best: tuple[int, int, int] | None = None
        for c in cands:
            if any(lo < c < hi for lo, hi in busy):
                continue
            key = (max(hi_all, c + _align(size[s])) - min(lo_all, c), 0 if down or c >= lo_all else 1, c)
            if best is None or key < best:
                best = key
        assert best is not None  # the highest busy end is always free
        offset = best[2]
        lo_all, hi_all = min(lo_all, offset), max(hi_all, offset + _align(size[s]))
        placed[s] = Placement(s, offset, size[s], first[s], last[s])
    return placed


def plan_memory(prog: Program, arch: str = "host") -> MemoryPlan:
    """Place every activation and every step's scratch (sized for kernel path ``arch``) in one arena."""
    if arch not in ARCHS:
        raise ValueError(f"unknown kernel path {arch!r} (known: {', '.join(ARCHS)})")
    m = prog.model
    n = len(prog.steps)
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        s = prog.storage(t)
        first[s] = min(first.get(s, step), step)
        last[s] = max(last.get(s, step), step)

    for t in m.main.inputs:
        touch(t, -1)
    for t in m.main.outputs:
        touch(t, n)
    for i, step in enumerate(prog.steps):
        for t in step.inputs:
            if t >= 0 and not prog.tensor(t).is_constant:
                touch(t, i)
        touch(step.output, i)

    ov: dict[tuple[int, int], int] = {}
    for i, step in enumerate(prog.steps):
        o = prog.storage(step.output)
        ins = [prog.storage(t) for t in step.inputs if t >= 0 and not prog.tensor(t).is_constant]
        # the first candidate input that dies here (and is read once by the step)
        for pos, delta in overlap_candidates(step, arch):
            t = step.inputs[pos]
            if t < 0 or prog.tensor(t).is_constant:
                continue
            x = prog.storage(t)
            if o != x and ins.count(x) == 1 and last[x] == i and first[o] == i:
                ov[o, x] = delta
                break

    size = {s: m.tensors[s].nbytes for s in first}
    for i, step in enumerate(prog.steps):
        need = step_scratch(step, arch)
        if need > 0:
            k = scratch_key(i)
            first[k], last[k], size[k] = i, i, need
    orders: list[Callable[[int], tuple[int, ...]]] = [
        lambda s: (-size[s], s),  # TFLM's greedy order
        lambda s: (first[s], -size[s], s),
        lambda s: (-first[s], -size[s], s),  # outputs before the inputs they are written over
        lambda s: (-size[s], -first[s], s),
        lambda s: (-(last[s] - first[s]), -size[s], s),
        lambda s: (-size[s] * (last[s] - first[s] + 1), s),
    ]
    best: tuple[int, dict[int, Placement]] | None = None
    for key, down in ((k, d) for k in orders for d in (False, True)):
        placed = _greedy(sorted(first, key=key), size, first, last, ov, down)
        base = min((p.offset for p in placed.values()), default=0)
        placed = {s: Placement(s, p.offset - base, p.size, p.first, p.last) for s, p in placed.items()}
        peak = max((p.offset + _align(p.size) for p in placed.values()), default=0)
        if best is None or peak < best[0]:
            best = (peak, placed)
    assert best is not None or not first
    peak, placed = best if best else (0, {})
    plan = MemoryPlan({s: placed[s] for s in sorted(placed)}, peak, ov, arch)
    if plan.conflicts():  # a planner bug must never reach a kernel as silently wrong bytes
        raise AssertionError(f"memory plan collides: {plan.conflicts()[:3]}")
    return plan
