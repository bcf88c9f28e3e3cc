"""``mcudeploy proxy``: a fault-injecting TCP proxy in front of a device's TCP UART (soak tests)."""

from __future__ import annotations

import click


@click.command("proxy")
@click.argument("target", metavar="HOST:PORT")
@click.option(
    "--listen",
    "listen_port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Local port to listen on (0: any free port).",
)
@click.option("--drop", type=click.FloatRange(0, 1), default=0.0, help="Probability of dropping a byte.")
@click.option(
    "--flip", type=click.FloatRange(0, 1), default=0.0, help="Probability of flipping a bit in a byte."
)
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.0, help="Probability of doubling a byte.")
@click.option("--delay", type=click.FloatRange(0, 1), default=0.0, help="Probability of delaying a chunk.")
@click.option("--delay-ms", type=click.FloatRange(min=0), default=50.0, show_default=True)
@click.option(
    "--directions", type=click.Choice(["both", "to-device", "to-host"]), default="both", show_default=True
)
@click.option("--reset-command", help="Shell command that resets the device (run by --reset-after).")
@click.option(
    "--reset-after", type=click.IntRange(min=1), help="Reset the device once after N bytes to the host."
)
@click.option(
    "--cut-after", type=click.IntRange(min=1), help="Cut the host link once after N bytes to the host."
)
@click.option("--seed", type=int, default=0, show_default=True, help="RNG seed (replays the same faults).")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: until Ctrl-C).",
)
def command(
    target: str,
    listen_port: int,
    drop: float,
    flip: float,
    duplicate: float,
    delay: float,
    delay_ms: float,
    directions: str,
    reset_command: str | None,
    reset_after: int | None,
    cut_after: int | None,
    seed: int,
    duration: float | None,
) -> None:
    """Forward HOST:PORT to a local port, dropping/flipping/duplicating/delaying bytes.

    Point `mcudeploy run --port` at the printed URL. Prints the fault counts when it stops.
    """
    import json
    import shlex
    import subprocess
    import time

    from ..console import console
    from ..device.proxy import FaultProxy, Faults
    from ..errors import ConfigError

    if reset_after and not reset_command:
        raise ConfigError("--reset-after needs --reset-command (how to reset the device)")

    def reset() -> None:
        if reset_command:
            subprocess.run(shlex.split(reset_command), check=False, timeout=60)

    faults = Faults(
        drop=drop,
        flip=flip,
        duplicate=duplicate,
        delay=delay,
        delay_s=delay_ms / 1e3,
        directions=directions,
        reset_after_bytes=reset_after,
        cut_after_bytes=cut_after,
        seed=seed,
    )
    with FaultProxy(
        target, faults, reset=reset if reset_command else None, listen=("127.0.0.1", listen_port)
    ) as proxy:
        console.print(f"proxy listening on {proxy.url} -> {target}", markup=False)
        end = time.monotonic() + duration if duration else None
        try:
            while end is None or time.monotonic() < end:
                time.sleep(0.2)
                if proxy.error is not None:
                    raise proxy.error
        except KeyboardInterrupt:
            pass
        console.print(json.dumps(proxy.stats.to_dict(), sort_keys=True), markup=False)
