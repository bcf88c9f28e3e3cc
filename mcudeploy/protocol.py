"""The host side of the mcudeploy device protocol (the firmware side is firmware_templates/protocol/).

Frame layout (all little-endian; see docs/protocol.md)::

    0  2  sync   A5 5A          resync point: everything between frames is device log text
    2  1  type
    3  1  flags  bit0 BOOT: the unsolicited HELLO after reset; bit1 FRESH: set on every frame since
                 reset until the host sends GET_HELLO, so a reset is noticed even if the BOOT HELLO is lost
    4  2  seq    echoed by the device in its reply; 0 only for BOOT HELLOs
    6  4  len    payload length
    10 2  hcrc   low 16 bits of CRC-32(bytes 2..9): a corrupt length is rejected at once
    12 len payload
    .. 4  crc    CRC-32 (IEEE, as zlib) of bytes 2..11 + payload

The decoder is a pure function of the bytes it is fed, so it is property-tested without a device.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

PROTOCOL_VERSION = 2  # 2: PROFILE / PROFILE_RESULT, HELLO keys layers and stack_size
SYNC = b"\xa5\x5a"
HEADER = struct.Struct("<2sBBHIH")  # sync, type, flags, seq, len, hcrc
HEADER_SIZE = HEADER.size  # 12
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
FLAG_BOOT = 0x01
FLAG_FRESH = 0x02


class MsgType(IntEnum):
    HELLO = 0x01  # device -> host: who I am (after reset, or as the reply to GET_HELLO)
    GET_HELLO = 0x02  # host -> device
    INFER = 0x10  # host -> device: input bytes
    BENCH = 0x11  # host -> device: u32 runs + input bytes
    PROFILE = 0x12  # host -> device: input bytes; one invoke with every layer timed
    INFER_RESULT = 0x90
    BENCH_RESULT = 0x91
    PROFILE_RESULT = 0x92
    ERROR = 0x7F  # device -> host: u8 request type, u8 code, UTF-8 text


class ErrorCode(IntEnum):
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    INVOKE_FAILED = 4
    TOO_LARGE = 5


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _hcrc(head10: bytes) -> int:
    return crc32(head10[2:10]) & 0xFFFF


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""
    flags: int = 0

    def encode(self) -> bytes:
        return encode_frame(self.type, self.seq, self.payload, self.flags)


def encode_frame(type_: int, seq: int, payload: bytes = b"", flags: int = 0) -> bytes:
    if not (0 <= type_ <= 0xFF and 0 <= flags <= 0xFF and 0 <= seq <= 0xFFFF):
        raise ValueError(f"frame field out of range: type={type_} flags={flags} seq={seq}")
    head10 = struct.pack("<2sBBHI", SYNC, type_, flags, seq, len(payload))
    head = head10 + struct.pack("<H", _hcrc(head10))
    return head + payload + struct.pack("<I", crc32(head[2:] + payload))


@dataclass(frozen=True)
class Corrupt:
    """A frame-shaped thing that failed a check; ``seq`` is trustworthy only when the header checked out."""

    reason: str
    seq: int | None = None
    type: int | None = None


@dataclass
class FrameDecoder:
    """Streaming decoder: ``feed(bytes)`` returns Frames and Corrupt events; log text collects in ``log``.

    A bad header check or CRC skips one byte past the sync and scans again, so a frame hidden after
    noise (or inside a cut-short frame) is still found. Accepting a wrong frame needs a CRC-32 collision.
    """

    max_payload: int = DEFAULT_MAX_PAYLOAD
    log: bytearray = field(default_factory=bytearray)
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame | Corrupt]:
        self._buf += data
        out: list[Frame | Corrupt] = []
        buf = self._buf
        while True:
            i = buf.find(SYNC)
            if i < 0:
                # keep a trailing A5: it may be the first half of a sync split across reads
                keep = 1 if buf.endswith(SYNC[:1]) else 0
                self.log += buf[: len(buf) - keep]
                del buf[: len(buf) - keep]
                break
            if i:
                self.log += buf[:i]
                del buf[:i]
            if len(buf) < HEADER_SIZE:
                break
            _, type_, flags, seq, length, hcrc = HEADER.unpack_from(buf)
            if hcrc != _hcrc(bytes(buf[:10])):
                out.append(Corrupt("header check failed"))
                self.log += buf[:1]
                del buf[:1]
                continue
            if length > self.max_payload:
                out.append(Corrupt(f"length {length} exceeds the {self.max_payload}-byte limit", seq, type_))
                self.log += buf[:1]
                del buf[:1]
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if len(buf) < total:
                break
            (crc,) = struct.unpack_from("<I", buf, HEADER_SIZE + length)
            if crc != crc32(bytes(buf[2 : HEADER_SIZE + length])):
                out.append(Corrupt("CRC mismatch", seq, type_))
                self.log += buf[:1]
                del buf[:1]
                continue
            out.append(Frame(type_, seq, bytes(buf[HEADER_SIZE : HEADER_SIZE + length]), flags))
            del buf[:total]
        return out

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def pending_header(self) -> tuple[int | None, int | None]:
        """(seq, type) of the checked header of a frame still waiting for bytes, else (None, None)."""
        if len(self._buf) >= HEADER_SIZE and self._buf[:2] == SYNC:
            _, type_, _, seq, _, hcrc = HEADER.unpack_from(self._buf)
            if hcrc == _hcrc(bytes(self._buf[:10])):
                return seq, type_
        return None, None

    def skip(self) -> list[Frame | Corrupt]:
        """Give up on the pending partial frame: drop its sync and rescan what follows."""
        if not self._buf:
            return []
        self.log += self._buf[:1]
        del self._buf[:1]
        return self.feed(b"")

    def take_log(self) -> bytes:
        data = bytes(self.log)
        self.log.clear()
        return data


# -- message payloads ----------------------------------------------------------------------------
HELLO_KEYS_REQUIRED = (
    "proto",
    "sha256",
    "runtime",
    "board",
    "clock_hz",
    "arena_used",
    "input_bytes",
    "output_bytes",
    "timer",
)


@dataclass(frozen=True)
class Hello:
    proto: int
    sha256: str
    runtime: str
    board: str
    clock_hz: int
    arena_used: int
    input_bytes: int
    output_bytes: int
    timer: str
    max_payload: int = 0
    npu: bool = False
    io: str = ""
    layers: int = 0  # layers the runtime can time (0: no per-layer profile)
    stack_size: int = 0  # bytes reserved for the stack (0: unknown)
    boot: bool = False

    @classmethod
    def decode(cls, payload: bytes, flags: int = 0) -> Hello:
        """Parse ``key=value`` lines; raises ValueError naming the missing or bad key."""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"HELLO is not UTF-8: {e}") from None
        kv: dict[str, str] = {}
        for line in text.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                kv[k.strip()] = v.strip()
        missing = [k for k in HELLO_KEYS_REQUIRED if k not in kv]
        if missing:
            raise ValueError(f"HELLO lacks {', '.join(missing)}")
        try:
            return cls(
                proto=int(kv["proto"]),
                sha256=kv["sha256"].lower(),
                runtime=kv["runtime"],
                board=kv["board"],
                clock_hz=int(kv["clock_hz"]),
                arena_used=int(kv["arena_used"]),
                input_bytes=int(kv["input_bytes"]),
                output_bytes=int(kv["output_bytes"]),
                timer=kv["timer"],
                max_payload=int(kv.get("max_payload", "0")),
                npu=kv.get("npu", "0") == "1",
                io=kv.get("io", ""),
                layers=int(kv.get("layers", "0")),
                stack_size=int(kv.get("stack_size", "0")),
                boot=bool(flags & FLAG_BOOT),
            )
        except ValueError as e:
            raise ValueError(f"HELLO has a bad number: {e}") from None

    def encode(self) -> bytes:
        """The payload the firmware sends (used by tests and by fakes of a device)."""
        fields = [
            ("proto", self.proto),
            ("sha256", self.sha256),
            ("runtime", self.runtime),
            ("board", self.board),
            ("clock_hz", self.clock_hz),
            ("arena_used", self.arena_used),
            ("input_bytes", self.input_bytes),
            ("output_bytes", self.output_bytes),
            ("max_payload", self.max_payload),
            ("timer", self.timer),
            ("npu", int(self.npu)),
            ("layers", self.layers),
            ("stack_size", self.stack_size),
            ("io", self.io),
        ]
        return "".join(f"{k}={v}\n" for k, v in fields).encode()

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "boot"}


INFER_RESULT_HEAD = struct.Struct("<iQQ")  # status, cpu elapsed (timer unit), npu cycles


@dataclass(frozen=True)
class InferResult:
    status: int
    cycles: int
    npu_cycles: int
    output: bytes

    @classmethod
    def decode(cls, payload: bytes) -> InferResult:
        if len(payload) < INFER_RESULT_HEAD.size:
            raise ValueError(f"INFER_RESULT of {len(payload)} bytes is shorter than its header")
        status, cycles, npu = INFER_RESULT_HEAD.unpack_from(payload)
        return cls(status, cycles, npu, payload[INFER_RESULT_HEAD.size :])

    def encode(self) -> bytes:
        return INFER_RESULT_HEAD.pack(self.status, self.cycles, self.npu_cycles) + self.output


BENCH_RESULT = struct.Struct("<IiQQQQ")  # runs, status, min, max, total, npu total


@dataclass(frozen=True)
class BenchResult:
    runs: int
    status: int
    min: int
    max: int
    total: int
    npu_total: int

    @classmethod
    def decode(cls, payload: bytes) -> BenchResult:
        if len(payload) != BENCH_RESULT.size:
            raise ValueError(f"BENCH_RESULT must be {BENCH_RESULT.size} bytes, got {len(payload)}")
        return cls(*BENCH_RESULT.unpack(payload))

    @property
    def mean(self) -> float:
        return self.total / self.runs if self.runs else 0.0


PROFILE_RESULT_HEAD = struct.Struct("<iQQIII")  # status, elapsed, npu cycles, stack used, stack size, layers
PROFILE_LAYER = struct.Struct("<IQ")  # model operator index, elapsed (timer unit)


@dataclass(frozen=True)
class ProfileResult:
    """One invoke timed per layer: ``layers`` is ``(operator index, elapsed)`` in execution order."""

    status: int
    cycles: int
    npu_cycles: int
    stack_used: int
    stack_size: int
    layers: tuple[tuple[int, int], ...]

    @classmethod
    def decode(cls, payload: bytes) -> ProfileResult:
        if len(payload) < PROFILE_RESULT_HEAD.size:
            raise ValueError(f"PROFILE_RESULT of {len(payload)} bytes is shorter than its header")
        status, cycles, npu, used, size, n = PROFILE_RESULT_HEAD.unpack_from(payload)
        want = PROFILE_RESULT_HEAD.size + n * PROFILE_LAYER.size
        if len(payload) != want:
            raise ValueError(f"PROFILE_RESULT with {n} layers must be {want} bytes, got {len(payload)}")
        layers = tuple(PROFILE_LAYER.iter_unpack(payload[PROFILE_RESULT_HEAD.size :]))
        return cls(status, cycles, npu, used, size, layers)

    def encode(self) -> bytes:
        head = PROFILE_RESULT_HEAD.pack(
            self.status, self.cycles, self.npu_cycles, self.stack_used, self.stack_size, len(self.layers)
        )
        return head + b"".join(PROFILE_LAYER.pack(op, t) for op, t in self.layers)


def bench_request(runs: int, input_bytes: bytes = b"") -> bytes:
    return struct.pack("<I", runs) + input_bytes


@dataclass(frozen=True)
class DeviceError:
    request_type: int
    code: int
    message: str

    @classmethod
    def decode(cls, payload: bytes) -> DeviceError:
        if len(payload) < 2:
            raise ValueError("ERROR frame shorter than 2 bytes")
        return cls(payload[0], payload[1], payload[2:].decode("utf-8", "replace"))

    def __str__(self) -> str:
        try:
            name = ErrorCode(self.code).name
        except ValueError:
            name = f"code {self.code}"
        return f"device error {name}: {self.message}"


def io_info(model: Any) -> str:
    """The canonical I/O description the firmware reports in HELLO's ``io`` key (MCD_IO_INFO).

    e.g. ``in=int8[1,8,8,1]q(0.0627451,-128);out=int8[1,10]q(0.00390625,-128)``. Generated from the
    same :class:`~mcudeploy.ml.model.Model` on both sides, so the host can compare strings exactly.
    """

    def one(t: Any) -> str:
        q = ""
        if t.quant is not None and t.quant.scale:
            q = f"q({t.quant.scale[0]:.9g},{t.quant.zero_point[0]})"
        return f"{t.dtype}[{','.join(str(d) for d in t.shape)}]{q}"

    ins = "|".join(one(t) for t in model.inputs)
    outs = "|".join(one(t) for t in model.outputs)
    return f"in={ins};out={outs}"
