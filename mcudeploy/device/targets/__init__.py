"""Targets: simulators (and, from the harness side, flashers and transports).

``SIMULATORS`` maps a name ("qemu", "fvp") to its class; every simulator shares the base in
:mod:`mcudeploy.device.targets.simulator`. Adding one is a module that registers its class.
"""

from __future__ import annotations

from typing import Any

from . import fvp, qemu  # noqa: F401 - importing registers them
from .simulator import SIMULATORS, RunningSimulator, Simulator, register_simulator


def get_simulator(name: str) -> type[Simulator]:
    from ...errors import ConfigError

    if name not in SIMULATORS:
        raise ConfigError(f"unknown simulator {name!r} (known: {', '.join(sorted(SIMULATORS))})")
    return SIMULATORS[name]


def simulator_for(board: Any, *, requested: str | None = None, npu: bool = False) -> Simulator | None:
    """The simulator for ``board``'s firmware, or None if the board has none: ``requested``, else
    QEMU first (it is the one CI has), except for a Vela model: only the FVP models the NPU."""
    order = (requested,) if requested else ("fvp", "qemu") if npu else ("qemu", "fvp")
    name = next((n for n in order if n in board.simulator and n in SIMULATORS), None)
    return SIMULATORS[name](board) if name else None


__all__ = [
    "SIMULATORS",
    "RunningSimulator",
    "Simulator",
    "get_simulator",
    "register_simulator",
    "simulator_for",
]
