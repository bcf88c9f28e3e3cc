"""The Python frame codec: round trips, and noise never turning into an accepted wrong frame."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy import protocol as P
from tests.hyp import examples

payloads = st.binary(max_size=300)
frames = st.builds(
    P.Frame,
    type=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    payload=payloads,
    flags=st.integers(0, 255),
)
FAST = examples(150)


def decode_all(data: bytes, chunk: int | None = None) -> tuple[list[P.Frame], list[P.Corrupt], bytes]:
    dec = P.FrameDecoder(max_payload=4096)
    events: list[P.Frame | P.Corrupt] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        events += dec.feed(data[i : i + step])
    return (
        [e for e in events if isinstance(e, P.Frame)],
        [e for e in events if isinstance(e, P.Corrupt)],
        bytes(dec.log),
    )


def test_frame_layout_matches_the_documented_format() -> None:
    raw = P.encode_frame(0x10, 0x1234, b"abc", flags=2)
    assert raw[:2] == b"\xa5\x5a"
    assert struct.unpack_from("<BBHI", raw, 2) == (0x10, 2, 0x1234, 3)
    assert struct.unpack_from("<H", raw, 10)[0] == zlib.crc32(raw[2:10]) & 0xFFFF
    assert raw[12:15] == b"abc"
    assert struct.unpack_from("<I", raw, 15)[0] == zlib.crc32(raw[2:15])
    assert len(raw) == P.OVERHEAD + 3


@FAST
@given(
    st.lists(frames, max_size=5), st.lists(st.text(max_size=40), min_size=6, max_size=6), st.integers(1, 64)
)
def test_frames_round_trip_between_log_text_in_any_chunking(
    fs: list[P.Frame], texts: list[str], chunk: int
) -> None:
    # log text never contains the sync byte 0xA5 when it is UTF-8 text without U+00A5-ish bytes
    logs = [t.encode("ascii", "ignore") for t in texts]
    stream = b"".join(log + f.encode() for log, f in zip(logs, fs, strict=False)) + logs[-1]
    got, corrupt, log = decode_all(stream, chunk)
    assert got == fs
    assert corrupt == []
    assert log == b"".join(logs[: len(fs)]) + logs[-1]


@FAST
@given(st.binary(max_size=2000))
def test_random_garbage_never_yields_a_frame(data: bytes) -> None:
    got, _, _ = decode_all(data, 7)
    assert got == []  # a 16-bit header check plus a CRC-32 over random bytes: ~2^-48 per position


@FAST
@given(frames, st.data())
def test_truncated_frame_is_never_accepted(f: P.Frame, data: st.DataObject) -> None:
    raw = f.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    got, _, _ = decode_all(raw[:cut])
    assert got == []


@FAST
@given(frames, st.data())
def test_bit_flips_never_yield_an_accepted_wrong_frame(f: P.Frame, data: st.DataObject) -> None:
    raw = bytearray(f.encode())
    flips = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=3, unique=True))
    for bit in flips:
        raw[bit // 8] ^= 1 << (bit % 8)
    nxt = P.Frame(1, 7, b"next")
    got, _, _ = decode_all(bytes(raw) + nxt.encode(), 5)
    # the damaged frame is rejected (CRC-32 detects every 1-3 bit error) and the next one still found
    assert got == [nxt]


@FAST
@given(frames, st.data())
def test_dropped_or_duplicated_bytes_never_yield_a_wrong_frame(f: P.Frame, data: st.DataObject) -> None:
    raw = bytearray(f.encode())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw = raw[:i] + raw[i + 1 :] if data.draw(st.booleans()) else raw[:i] + raw[i : i + 1] + raw[i:]
    nxt = P.Frame(1, 7, b"next")
    got, _, _ = decode_all(bytes(raw) + nxt.encode(), 3)
    assert all(g in (nxt, f) for g in got)  # a duplicate inside the sync can leave the frame intact
    assert got[-1] == nxt


def test_noise_soak_accepts_only_frames_that_were_sent() -> None:
    rng = random.Random(1)
    sent = {P.Frame(0x90, s, rng.randbytes(rng.randrange(0, 80))) for s in range(1, 1500)}
    stream = bytearray()
    for f in sorted(sent, key=lambda f: f.seq):
        for b in f.encode():
            r = rng.random()
            if r < 0.005:
                continue  # drop
            if r < 0.01:
                b ^= 1 << rng.randrange(8)
            stream.append(b)
    got, corrupt, _ = decode_all(bytes(stream), 97)
    assert got and corrupt
    assert set(got) <= sent  # every accepted frame is byte-for-byte one that was sent


def test_corrupt_payload_reports_the_trusted_sequence_number() -> None:
    raw = bytearray(P.encode_frame(0x90, 321, b"x" * 20))
    raw[15] ^= 0x40
    dec = P.FrameDecoder()
    events = dec.feed(bytes(raw))
    assert events == [P.Corrupt("CRC mismatch", 321, 0x90)]


def test_oversized_length_is_rejected_without_waiting_for_it() -> None:
    dec = P.FrameDecoder(max_payload=16)
    events = dec.feed(P.encode_frame(1, 1, b"y" * 17)[:12])
    assert isinstance(events[0], P.Corrupt) and "exceeds" in events[0].reason
    assert dec.pending < 12


def test_hello_round_trip_and_missing_keys() -> None:
    h = P.Hello(
        1,
        "ab" * 32,
        "c",
        "qemu-an547",
        32_000_000,
        2048,
        64,
        10,
        "icount-instructions",
        68,
        False,
        "in=int8[1,8,8,1]q(0.5,-128);out=int8[1,10]q(0.00390625,-128)",
        boot=True,
    )
    assert P.Hello.decode(h.encode(), P.FLAG_BOOT) == h
    with pytest.raises(ValueError, match="lacks sha256"):
        P.Hello.decode(b"proto=1\nruntime=c\n")
    with pytest.raises(ValueError, match="bad number"):
        P.Hello.decode(h.encode().replace(b"clock_hz=32000000", b"clock_hz=fast"))


def test_result_payloads_round_trip() -> None:
    r = P.InferResult(0, 123456789012, 42, b"\x01\x02")
    assert P.InferResult.decode(r.encode()) == r
    b = P.BenchResult(3, 0, 5, 9, 21, 0)
    assert P.BenchResult.decode(P.BENCH_RESULT.pack(3, 0, 5, 9, 21, 0)) == b and b.mean == 7
    with pytest.raises(ValueError):
        P.InferResult.decode(b"\x00" * 5)


def test_io_info_describes_the_model(digits_int8) -> None:
    info = P.io_info(digits_int8)
    t_in, t_out = digits_int8.inputs[0], digits_int8.outputs[0]
    assert info.startswith(f"in=int8[{','.join(map(str, t_in.shape))}]q(")
    assert f"out=int8[{','.join(map(str, t_out.shape))}]" in info
    assert f",{t_in.quant.zero_point[0]})" in info
