"""Targets: simulators (and, from the harness side, flashers and transports).

``SIMULATORS`` maps a name ("qemu", "fvp") to its class; every simulator shares the base in
:mod:`mcudeploy.targets.simulator`. Adding one is a module that registers its class.
"""

from __future__ import annotations

import importlib
import importlib.util

from .simulator import SIMULATORS, RunningSimulator, Simulator, register_simulator

for _name in ("qemu", "fvp"):  # fvp.py belongs to the harness side and may not be present yet
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")


def get_simulator(name: str) -> type[Simulator]:
    from ..errors import ConfigError

    if name not in SIMULATORS:
        raise ConfigError(f"unknown simulator {name!r} (known: {', '.join(sorted(SIMULATORS))})")
    return SIMULATORS[name]


__all__ = ["SIMULATORS", "RunningSimulator", "Simulator", "get_simulator", "register_simulator"]
