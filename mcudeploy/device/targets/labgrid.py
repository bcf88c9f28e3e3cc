"""Board farms through labgrid: a place's serial port as a pyserial URL, and its flasher driver.

labgrid is the existing engine for shared board farms (coordinator, exporters, places, locking);
mcudeploy does not build its own. A place's resources come from labgrid's coordinator through its own
``RemotePlace``; this module only maps them onto what mcudeploy needs:

- ``NetworkSerialPort`` (an exporter's ser2net) → ``rfc2217://host:port?ign_set_control`` or, for ``protocol =
  "raw"``, ``socket://host:port``; a local ``RawSerialPort`` / ``USBSerialPort`` → its device path.
- the flasher: the first of :data:`FLASH_DRIVERS` whose labgrid ``bindings`` accept one of the
  place's resources (the bindings are labgrid's data, not a table of ours).

labgrid is optional (``pip install 'mcudeploy[farm]'`` or ``pip install labgrid``); without it every
entry point raises a :class:`ToolMissingError` that says so. A run holds the place (:func:`hold_place`):
labgrid's acquisition is the lock that keeps two runs off one board.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import ConfigError, FlashError, LinkError, TargetError, ToolMissingError

# No square brackets: the CLI prints hints as rich markup, which would swallow "[farm]".
INSTALL_HINT = (
    "pip install labgrid (mcudeploy's farm extra), then acquire the place: labgrid-client -p NAME acquire"
)
COORDINATOR_HINT = "set LG_COORDINATOR (or pass the coordinator address)"
# Preference order: a debug probe loads the ELF itself; a flash script or USB mass storage come next.
FLASH_DRIVERS = ("OpenOCDDriver", "FlashScriptDriver", "USBStorageDriver")


def labgrid() -> ModuleType:
    """The labgrid package, or ToolMissingError naming the install command."""
    try:
        import labgrid as lg
        import labgrid.driver
        import labgrid.resource
    except ImportError as e:
        raise ToolMissingError(
            f"board farms need labgrid, which is not installed ({e})", hint=INSTALL_HINT
        ) from None
    return lg


@dataclass(frozen=True)
class LabgridPlace:
    """What mcudeploy takes from a labgrid place."""

    name: str
    url: str  # pyserial URL or device path
    baudrate: int
    serial_resource: str  # e.g. "NetworkSerialPort"
    flasher: str | None  # labgrid driver class name, e.g. "OpenOCDDriver"
    flash_resource: str | None
    target: Any = None  # the labgrid Target holding the resources


def serial_url(resource: Any) -> tuple[str, int]:
    """(pyserial URL, baud rate) of a labgrid serial resource."""
    lg = labgrid()
    kind = type(resource).__name__
    if isinstance(resource, lg.resource.NetworkSerialPort):
        if resource.port is None:
            raise TargetError(f"{kind} on {resource.host} has no TCP port (is the exporter running?)")
        scheme = {"rfc2217": "rfc2217", "raw": "socket"}.get(resource.protocol)
        if scheme is None:
            raise ConfigError(
                f"{kind} on {resource.host}: unknown protocol {resource.protocol!r} (rfc2217, raw)"
            )
        # ser2net (what labgrid's exporter runs) does not answer RFC 2217 SET_CONTROL for every device
        # (a pty never does), and pyserial would wait for that answer forever: tell it not to.
        option = "?ign_set_control" if scheme == "rfc2217" else ""
        return f"{scheme}://{resource.host}:{resource.port}{option}", int(resource.speed)
    if isinstance(resource, lg.resource.SerialPort):
        if not resource.port:
            raise TargetError(f"{kind} {resource.name or ''} has no device node (is the adapter plugged in?)")
        return str(resource.port), int(resource.speed)
    raise ConfigError(f"labgrid resource {kind} is not a serial port")


def _binding_names(bindings: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for value in bindings.values():
        items: Iterable[Any] = value if isinstance(value, (set, frozenset, list, tuple)) else (value,)
        for v in items:
            if v is not None:
                names.add(v if isinstance(v, str) else getattr(v, "__name__", str(v)))
    return names


def flasher_driver(resource: Any) -> str | None:
    """The labgrid driver (of :data:`FLASH_DRIVERS`) that can flash through ``resource``, if any."""
    lg = labgrid()
    kind = type(resource).__name__
    for name in FLASH_DRIVERS:
        driver = getattr(lg.driver, name, None)
        if driver is not None and kind in _binding_names(driver.bindings):
            return name
    return None


def place_from_target(name: str, target: Any) -> LabgridPlace:
    """Pick the serial port and the flasher among a labgrid target's resources."""
    lg = labgrid()
    serial = [
        r for r in target.resources if isinstance(r, (lg.resource.NetworkSerialPort, lg.resource.SerialPort))
    ]
    if not serial:
        kinds = ", ".join(sorted(type(r).__name__ for r in target.resources)) or "none"
        raise ConfigError(
            f"labgrid place '{name}' has no serial port resource (has: {kinds})",
            hint="export a NetworkSerialPort (ser2net) or RawSerialPort for the board's UART",
        )
    if len(serial) > 1:
        names = ", ".join(sorted(f"{type(r).__name__}:{r.name}" for r in serial))
        raise ConfigError(
            f"labgrid place '{name}' has {len(serial)} serial ports ({names}); mcudeploy needs one"
        )
    url, baud = serial_url(serial[0])
    flashers = sorted(
        ((FLASH_DRIVERS.index(d), d, type(r).__name__) for r in target.resources if (d := flasher_driver(r))),
    )
    flasher, flash_resource = (flashers[0][1], flashers[0][2]) if flashers else (None, None)
    return LabgridPlace(name, url, baud, type(serial[0]).__name__, flasher, flash_resource, target)


@contextlib.contextmanager
def _coordinator(address: str | None) -> Iterator[None]:
    """labgrid's RemotePlace reads LG_COORDINATOR; set it for the lookup only."""
    old = os.environ.get("LG_COORDINATOR")
    if address:
        os.environ["LG_COORDINATOR"] = address
    try:
        yield
    finally:
        if address:
            if old is None:
                os.environ.pop("LG_COORDINATOR", None)
            else:
                os.environ["LG_COORDINATOR"] = old


def _session_error(e: Exception, name: str, where: str) -> Exception:
    if isinstance(e, ConnectionRefusedError) or "connect to coordinator" in str(e):
        return LinkError(f"cannot reach the labgrid coordinator at {where}", hint=COORDINATOR_HINT)
    return TargetError(
        f"labgrid place '{name}' (coordinator {where}): {type(e).__name__}: {e}",
        hint="check `labgrid-client places`",
    )


@contextlib.contextmanager
def hold_place(name: str, *, coordinator: str | None = None) -> Iterator[str]:
    """Hold place ``name`` for one run; yields the holder (``host/user`` as labgrid names them).

    The place's acquisition in the coordinator is the lock: an idle place is acquired here and
    released afterwards; one this user already holds on this host (``labgrid-client acquire``;
    LG_USERNAME / LG_HOSTNAME count, as for labgrid-client) is used and left held; one held by anyone
    else is refused with a :class:`TargetError` naming the holder, so two runs never share a board.
    """
    labgrid()
    import grpc
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
    from labgrid.resource.remote import RemotePlaceManager

    where = coordinator or os.environ.get("LG_COORDINATOR", "127.0.0.1:20408")
    # labgrid's own client session: the coordinator takes one stream per process, and open_place's
    # RemotePlace (which needs the place acquired first) reuses the manager's session.
    manager = RemotePlaceManager.get()
    try:
        if manager.session is None:
            manager.env, manager.url = None, where
            manager._start()
        session = manager.session
    except Exception as e:  # ConnectionRefusedError, grpc errors, labgrid's UserError / ServerError
        raise _session_error(e, name, where) from None
    run = session.loop.run_until_complete
    me = f"{session.gethostname()}/{session.getuser()}"

    def holder() -> str | None:
        run(session.sync_with_coordinator())
        try:
            return session.get_place(name).acquired or None
        except Exception as e:  # labgrid's UserError: no such place
            raise TargetError(
                f"labgrid place '{name}' (coordinator {where}): {e}",
                hint="list them with `labgrid-client places`",
            ) from None

    def refuse(held_by: str) -> TargetError:
        return TargetError(
            f"labgrid place '{name}' is held by {held_by}: another run (or user) has the board",
            hint=f"wait until it is released (labgrid-client -p {name} release), or run as {held_by}",
        )

    acquired_here = False
    try:
        held_by = holder()
        if held_by not in (None, me):
            raise refuse(held_by)
        if held_by is None:
            try:
                run(session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=name)))
                run(session.sync_with_coordinator())  # the session sees its own acquisition
            except grpc.aio.AioRpcError:  # lost a race: someone acquired it since we looked
                raise refuse(holder() or "another client") from None
            acquired_here = True
        yield me
    finally:
        if acquired_here:
            try:
                run(session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=name)))
                run(session.sync_with_coordinator())
            except Exception:  # the run's own outcome matters more than a failed release
                pass


def open_place(name: str, *, coordinator: str | None = None) -> LabgridPlace:
    """Resolve labgrid place ``name`` through the coordinator (``coordinator`` or $LG_COORDINATOR)."""
    lg = labgrid()
    from labgrid.resource import RemotePlace

    target = lg.Target(name)
    where = coordinator or os.environ.get("LG_COORDINATOR", "127.0.0.1:20408")
    try:
        with _coordinator(coordinator):
            RemotePlace(target, name=name)  # the manager asks the coordinator for the place's resources
            target.update_resources()
    except Exception as e:  # labgrid raises its own zoo (unknown place, not acquired, gRPC errors)
        raise _session_error(e, name, where) from None
    return place_from_target(name, target)


def flash(place: LabgridPlace, image: str | os.PathLike[str]) -> None:
    """Flash ``image`` with the place's flasher driver (labgrid does the work)."""
    lg = labgrid()
    if place.flasher is None or place.target is None:
        raise FlashError(
            f"labgrid place '{place.name}' has no flasher resource",
            hint="export a USBDebugger (OpenOCD), USBFlashableDevice or USBMassStorage for the board",
        )
    image = Path(image)
    driver_cls = getattr(lg.driver, place.flasher)
    try:
        from labgrid.exceptions import NoDriverFoundError

        try:  # a driver configured in the user's labgrid environment wins (e.g. its OpenOCD config)
            drv = place.target.get_driver(driver_cls, activate=False)
        except NoDriverFoundError:
            drv = driver_cls(place.target, name=None)
        place.target.activate(drv)
        if place.flasher == "OpenOCDDriver":
            drv.load(str(image))
        elif place.flasher == "FlashScriptDriver":
            drv.flash(args=[str(image)])
        else:  # mass storage (DAPLink and friends): copy the image onto the drive
            drv.write_files([str(image)], "/", None)
    except Exception as e:
        raise FlashError(
            f"labgrid {place.flasher} on place '{place.name}' failed: {type(e).__name__}: {e}"
        ) from None
