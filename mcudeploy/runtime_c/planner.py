"""Static memory plan: every activation gets an offset in one arena, reusing memory across lifetimes.

Greedy by size (largest first), each buffer at the lowest aligned offset that does not overlap a
placed buffer whose lifetime intersects its own: the classic offline planner TFLM's
GreedyMemoryPlanner also uses. Lifetimes are inclusive op-step intervals, so an op's output never
shares bytes with its inputs (the kernels are not in-place safe).
"""

from __future__ import annotations

from dataclasses import dataclass

from .lower import Program

ALIGN = 16


@dataclass(frozen=True)
class Placement:
    tensor: int  # the storage owner (aliases resolve to it)
    offset: int
    size: int
    first: int  # step index that writes it (-1: model input)
    last: int  # step index that last reads it (len(steps): model output)


@dataclass(frozen=True)
class MemoryPlan:
    placements: dict[int, Placement]
    arena_bytes: int  # peak: the arena the plan needs

    def offset(self, tensor: int) -> int:
        return self.placements[tensor].offset

    def naive_bytes(self) -> int:
        """What the arena would be without reuse (for reports)."""
        return sum(_align(p.size) for p in self.placements.values())


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(prog: Program) -> MemoryPlan:
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

    owners = sorted(first, key=lambda s: (-m.tensors[s].nbytes, s))
    placed: list[Placement] = []
    for s in owners:
        size = m.tensors[s].nbytes
        busy = sorted(
            (p.offset, p.offset + _align(p.size)) for p in placed if p.first <= last[s] and first[s] <= p.last
        )
        offset = 0
        for lo, hi in busy:
            if offset + _align(size) <= lo:
                break
            offset = max(offset, hi)
        placed.append(Placement(s, offset, size, first[s], last[s]))
    peak = max((p.offset + _align(p.size) for p in placed), default=0)
    return MemoryPlan({p.tensor: p for p in sorted(placed, key=lambda p: p.tensor)}, peak)
