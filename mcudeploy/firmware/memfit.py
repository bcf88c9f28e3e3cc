"""Memory-fit gate: does model + arena + app fit the board's regions, before anything is written?

Every byte the firmware needs is a :class:`Demand` for a role (code, model, arena, data, stack,
vectors); the board's ``[placement]`` maps roles to regions. Regions shared by several roles add
their demands up. A refusal names the region at fault and shows the whole table, so the user sees
what to move or shrink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..boards import Board, Region
from ..errors import MemoryFitError

# Roles whose contents are written at run time: they cannot live in a read-only ("rom") region.
WRITABLE_ROLES = frozenset({"arena", "data", "stack"})


@dataclass(frozen=True)
class Demand:
    role: str  # placement role: "code", "model", "arena", "data", "stack", "vectors"
    nbytes: int
    what: str  # shown in the table, e.g. "tensor arena (measured 4,864 B + margin)"


@dataclass(frozen=True)
class RegionUse:
    region: Region
    demands: tuple[Demand, ...]

    @property
    def used(self) -> int:
        return sum(d.nbytes for d in self.demands)

    @property
    def free(self) -> int:
        return self.region.length - self.used

    @property
    def fits(self) -> bool:
        return self.free >= 0 and not self.read_only_violations

    @property
    def read_only_violations(self) -> list[str]:
        if self.region.kind != "rom":
            return []
        return sorted({d.role for d in self.demands if d.role in WRITABLE_ROLES})

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.region.to_dict(),
            "used": self.used,
            "free": self.free,
            "fits": self.fits,
            "demands": [{"role": d.role, "bytes": d.nbytes, "what": d.what} for d in self.demands],
        }


@dataclass(frozen=True)
class FitReport:
    board: str
    regions: tuple[RegionUse, ...]

    @property
    def ok(self) -> bool:
        return all(r.fits for r in self.regions)

    @property
    def failing(self) -> list[RegionUse]:
        return [r for r in self.regions if not r.fits]

    def table(self) -> str:
        """A plain-text region table (fixed width, for errors and logs)."""
        head = f"{'region':<8} {'origin':>10} {'size':>11} {'used':>11} {'free':>12}  contents"
        lines = [head, "-" * len(head)]
        for r in self.regions:
            contents = ", ".join(f"{d.role} {d.nbytes:,} B" for d in r.demands) or "-"
            flag = "" if r.fits else "  <-- does not fit"
            lines.append(
                f"{r.region.name:<8} 0x{r.region.origin:08x} {r.region.length:>11,} {r.used:>11,} "
                f"{r.free:>12,}  {contents}{flag}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board, "ok": self.ok, "regions": [r.to_dict() for r in self.regions]}


def plan(board: Board, demands: list[Demand]) -> FitReport:
    """Place each demand in its role's region (``Board.region_for``) and total every region."""
    by_region: dict[str, list[Demand]] = {name: [] for name in board.memory}
    for d in demands:
        by_region[board.region_for(d.role).name].append(d)
    uses = [
        RegionUse(region, tuple(by_region[region.name]))
        for region in sorted(board.memory.values(), key=lambda r: r.origin)
    ]
    return FitReport(board.name, tuple(uses))


def check_fit(board: Board, demands: list[Demand]) -> FitReport:
    """:func:`plan`, then refuse with :class:`MemoryFitError` naming every region that overflows."""
    report = plan(board, demands)
    if report.ok:
        return report
    problems = []
    for r in report.failing:
        if r.read_only_violations:
            problems.append(
                f"region '{r.region.name}' is read-only but holds {', '.join(r.read_only_violations)}"
            )
        if r.free < 0:
            problems.append(
                f"region '{r.region.name}' needs {r.used:,} B but has {r.region.length:,} B "
                f"({-r.free:,} B over)"
            )
    raise MemoryFitError(
        f"does not fit board '{board.name}': " + "; ".join(problems) + "\n" + report.table(),
        hint="use a smaller model (prune/cluster, fewer channels), move a role to a larger region in "
        "the board's [placement], or pick a board with more memory",
    )
