"""A fault-injecting TCP proxy between the harness and a device's TCP UART (QEMU, FVP, host device).

It drops, flips, duplicates and delays bytes, cuts the link and resets the device, with a seeded RNG
so a failing soak run can be replayed. The harness connects to ``proxy.url`` instead of the device.
A device reset is a callback the caller provides (restart the simulator, toggle a reset line);
after it the proxy reconnects upstream while the host side stays connected, as a real UART would.
"""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..errors import ConfigError, LinkError


@dataclass(frozen=True)
class Faults:
    """Per-byte probabilities (each direction selected by ``directions``) and scheduled events."""

    drop: float = 0.0
    flip: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0  # probability per forwarded chunk of sleeping delay_s first
    delay_s: float = 0.05
    directions: str = "both"  # "both", "to-device" or "to-host"
    reset_after_bytes: int | None = None  # device->host bytes after which the device is reset once
    cut_after_bytes: int | None = None  # device->host bytes after which the host link is cut once
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "flip", "duplicate", "delay"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"proxy fault '{name}' must be a probability in [0, 1], got {v}")
        if self.directions not in ("both", "to-device", "to-host"):
            raise ConfigError(f"proxy directions must be both, to-device or to-host, got {self.directions!r}")


@dataclass
class ProxyStats:
    forwarded: int = 0
    dropped: int = 0
    flipped: int = 0
    duplicated: int = 0
    delayed: int = 0
    resets: int = 0
    cuts: int = 0
    events: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "events"} | {"events": list(self.events)}


def parse_hostport(target: str) -> tuple[str, int]:
    t = target.removeprefix("socket://").removeprefix("tcp://")
    host, sep, port = t.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"proxy target {target!r} must look like HOST:PORT or socket://HOST:PORT")
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"proxy target {target!r}: port {int(port)} is outside 1..65535")
    return host or "127.0.0.1", int(port)


class FaultProxy:
    """``with FaultProxy(("127.0.0.1", port), Faults(flip=0.01), reset=dev.reset) as p: use p.url``."""

    def __init__(
        self,
        upstream: tuple[str, int] | str,
        faults: Faults | None = None,
        *,
        reset: Callable[[], None] | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        connect_timeout: float = 10.0,
    ) -> None:
        self.upstream = parse_hostport(upstream) if isinstance(upstream, str) else upstream
        self.faults = faults or Faults()
        self.reset_callback = reset
        self.connect_timeout = connect_timeout
        self.stats = ProxyStats()
        self._rng = random.Random(self.faults.seed)
        self._srv = socket.create_server(listen)
        self._srv.setblocking(False)
        self.address = self._srv.getsockname()[:2]
        self._client: socket.socket | None = None
        self._dev: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[str] = []  # "reset" / "cut" requested from other threads
        self._to_host_bytes = 0
        self._thread = threading.Thread(target=self._loop, name="mcudeploy-proxy", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.address[0]}:{self.address[1]}"

    # -- control --------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for s in (self._client, self._dev, self._srv):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()

    def reset_device(self) -> None:
        """Ask the proxy thread to reset the device (runs the callback, then reconnects upstream)."""
        with self._lock:
            self._pending.append("reset")

    def cut(self) -> None:
        """Drop the host's connection; the device side stays up and a reconnect resumes the link."""
        with self._lock:
            self._pending.append("cut")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the pump -------------------------------------------------------------------------------
    def _connect_upstream(self) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                s = socket.create_connection(self.upstream, timeout=1.0)
                s.setblocking(False)
                return s
            except OSError as e:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise LinkError(
                        f"proxy cannot reach the device at {self.upstream[0]}:{self.upstream[1]}: {e}"
                    ) from None
                time.sleep(0.02)

    def _mangle(self, data: bytes, to_host: bool) -> bytes:
        f = self.faults
        if f.directions == ("to-device" if to_host else "to-host"):
            return data
        if not (f.drop or f.flip or f.duplicate):
            return data
        out = bytearray()
        rnd = self._rng.random
        for b in data:
            if f.drop and rnd() < f.drop:
                self.stats.dropped += 1
                continue
            if f.flip and rnd() < f.flip:
                b ^= 1 << self._rng.randrange(8)
                self.stats.flipped += 1
            out.append(b)
            if f.duplicate and rnd() < f.duplicate:
                out.append(b)
                self.stats.duplicated += 1
        return bytes(out)

    def _send(self, s: socket.socket, data: bytes) -> None:
        s.setblocking(True)
        try:
            s.sendall(data)
        finally:
            s.setblocking(False)

    def _do_reset(self) -> None:
        self.stats.resets += 1
        self.stats.events.append(f"reset after {self._to_host_bytes} bytes to host")
        if self._dev is not None:
            with contextlib.suppress(OSError):
                self._dev.close()
            self._dev = None
        if self.reset_callback is not None:
            self.reset_callback()
        self._dev = self._connect_upstream()

    def _do_cut(self) -> None:
        self.stats.cuts += 1
        self.stats.events.append(f"cut after {self._to_host_bytes} bytes to host")
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            self._pump(sel)
        except BaseException as e:  # surfaced to the user through .error
            self.error = e
        finally:
            sel.close()

    def _pump(self, sel: selectors.BaseSelector) -> None:
        f = self.faults
        sel.register(self._srv, selectors.EVENT_READ, "accept")
        while not self._stop.is_set():
            with self._lock:
                pending, self._pending = self._pending, []
            for what in pending:
                if what == "reset":
                    self._unregister(sel, self._dev)
                    self._do_reset()
                    sel.register(self._dev, selectors.EVENT_READ, "dev")
                else:
                    self._unregister(sel, self._client)
                    self._do_cut()
            for key, _ in sel.select(timeout=0.02):
                if key.data == "accept":
                    try:
                        conn, _ = self._srv.accept()
                    except BlockingIOError:
                        continue
                    if self._client is not None:  # one host at a time
                        conn.close()
                        continue
                    conn.setblocking(False)
                    self._client = conn
                    sel.register(conn, selectors.EVENT_READ, "client")
                    if self._dev is None:
                        self._dev = self._connect_upstream()
                        sel.register(self._dev, selectors.EVENT_READ, "dev")
                    continue
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if key.data == "client":
                    if not data:  # host went away: wait for it to reconnect
                        self._unregister(sel, self._client)
                        self._client = None
                        continue
                    if self._dev is not None:
                        self._forward(self._dev, data, to_host=False)
                else:
                    if not data:  # device went away (exited or reset by someone else)
                        self._unregister(sel, self._dev)
                        self._dev = None
                        self.stats.events.append("device closed the link")
                        if self._client is not None:
                            self._unregister(sel, self._client)
                            self._client.close()
                            self._client = None
                        continue
                    self._to_host_bytes += len(data)
                    if self._client is not None:
                        self._forward(self._client, data, to_host=True)
                    if (
                        f.reset_after_bytes is not None
                        and self.stats.resets == 0
                        and self._to_host_bytes >= f.reset_after_bytes
                    ):
                        self.reset_device()
                    if (
                        f.cut_after_bytes is not None
                        and self.stats.cuts == 0
                        and self._to_host_bytes >= f.cut_after_bytes
                    ):
                        self.cut()

    def _forward(self, dst: socket.socket, data: bytes, *, to_host: bool) -> None:
        f = self.faults
        if f.delay and self._rng.random() < f.delay:
            self.stats.delayed += 1
            time.sleep(f.delay_s)
        data = self._mangle(data, to_host)
        self.stats.forwarded += len(data)
        with contextlib.suppress(OSError):  # the reader side notices the closed socket
            self._send(dst, data)

    @staticmethod
    def _unregister(sel: selectors.BaseSelector, s: socket.socket | None) -> None:
        if s is not None:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(s)
