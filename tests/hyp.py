"""Hypothesis profiles: the same examples on every run and machine in `make test`, long random
profiles in `make fuzz`.

`make test` loads "ci" (derandomized, no example database): a property test either always passes
or always fails, so CI is not a lottery. `make fuzz` sets HYPOTHESIS_PROFILE=fuzz: fresh random
draws and ``MCD_FUZZ_SCALE`` (default 20) times the examples of each test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "fuzz"):
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: use 'ci' (make test) or 'fuzz' (make fuzz)")
SCALE = int(os.environ.get("MCD_FUZZ_SCALE", "20")) if PROFILE == "fuzz" else 1
_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]

settings.register_profile("ci", derandomize=True, database=None, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("fuzz", derandomize=False, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(PROFILE)


def examples(n: int) -> settings:
    """``@examples(n)``: n examples in `make test`, n x MCD_FUZZ_SCALE in `make fuzz`."""
    return settings(max_examples=n * SCALE)
