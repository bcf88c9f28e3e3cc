"""Targets: simulators (and, from the harness side, flashers and transports).

``SIMULATORS`` maps a name ("qemu", "fvp") to its class; every simulator shares the base in
:mod:`mcudeploy.targets.simulator`. Adding one is a module that registers its class.
"""

from __future__ import annotations

from . import fvp, qemu  # noqa: F401 - importing registers them
from .simulator import SIMULATORS, RunningSimulator, Simulator, register_simulator


def get_simulator(name: str) -> type[Simulator]:
    from ..errors import ConfigError

    if name not in SIMULATORS:
        raise ConfigError(f"unknown simulator {name!r} (known: {', '.join(sorted(SIMULATORS))})")
    return SIMULATORS[name]


__all__ = ["SIMULATORS", "RunningSimulator", "Simulator", "get_simulator", "register_simulator"]
