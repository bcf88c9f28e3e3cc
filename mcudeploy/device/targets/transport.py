"""Byte transports to a device: any pyserial URL (a real port with its baud rate, ``socket://`` for
QEMU and the FVP's telnet terminal, ``rfc2217://`` for networked serial servers, ``loop://``).

Open the transport *before* resetting or flashing the device so no boot output is lost. A closed
socket (the simulator exited, a cable was pulled) is reported as :class:`LinkError`, not a hang.
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import Any

from ...errors import LinkError

try:  # pyserial is a declared dependency; this keeps import errors readable
    import serial
except ImportError as _e:  # pragma: no cover
    raise ImportError("pyserial is required: pip install pyserial") from _e


class Transport:
    """A pyserial port with short polled reads, reopen-on-demand and error mapping."""

    def __init__(self, url: str, *, baudrate: int = 115200, open_timeout: float = 10.0) -> None:
        self.url = url
        self.baudrate = baudrate
        self.open_timeout = open_timeout
        self.poll_timeout = 0.01
        self._port: Any = None

    def open(self) -> Transport:
        """Open, retrying until ``open_timeout`` (a simulator's socket may need a moment to listen)."""
        deadline = time.monotonic() + self.open_timeout
        while True:
            try:
                # pyserial's rfc2217 client (labgrid's ser2net links) refuses a write timeout
                write_timeout = None if self.url.startswith("rfc2217://") else 10.0
                port = serial.serial_for_url(
                    self.url,
                    baudrate=self.baudrate,
                    timeout=self.poll_timeout,
                    write_timeout=write_timeout,
                    do_not_open=True,
                )
                # pyserial's open() discards whatever already arrived (reset_input_buffer); a simulator
                # that starts running when we connect has sent its boot output by then, so keep it.
                port.reset_input_buffer = lambda: None
                port.open()
                del port.reset_input_buffer
                self._port = port
                return self
            except (serial.SerialException, OSError, ValueError) as e:
                if time.monotonic() >= deadline:
                    raise LinkError(
                        f"cannot open {self.url}: {e}", hint="is the device connected and the port/URL right?"
                    ) from None
                time.sleep(0.05)

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def reopen(self) -> None:
        self.close()
        self.open()

    def read_some(self) -> bytes:
        """Whatever has arrived (waits at most ~10 ms for the first byte); LinkError if the link is gone.

        pyserial's ``in_waiting`` is 0 or 1 for sockets, so after the first byte the rest is drained
        with a zero timeout instead of being read one byte per call.
        """
        port = self._port
        if port is None:
            raise LinkError(f"{self.url}: the link is not open")
        try:
            data: bytes = port.read(1)
            if data:
                port.timeout = 0
                try:
                    data += port.read(65536)
                finally:
                    port.timeout = self.poll_timeout
        except serial.SerialException as e:
            raise LinkError(f"{self.url}: link lost ({e})") from None
        return data

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise LinkError(f"{self.url}: the link is not open")
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: write failed ({e})") from None

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
            self._port = None

    def __enter__(self) -> Transport:
        return self if self.is_open else self.open()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_transport(url: str, *, baudrate: int = 115200, open_timeout: float = 10.0) -> Transport:
    return Transport(url, baudrate=baudrate, open_timeout=open_timeout).open()
