"""The C protocol (firmware_templates/protocol/mcd_protocol.c) built for the host and driven over TCP."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mcudeploy import protocol as P
from mcudeploy.errors import SimulatorError
from mcudeploy.harness import DeviceLink, DeviceReset, LinkPolicy
from mcudeploy.protocol_host import HostDevice, build_host_device, toy_layer, toy_meta
from mcudeploy.targets.transport import Transport

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc: apt-get install gcc")

IN, OUT = 24, 10


@pytest.fixture(scope="module")
def host_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_host_device(tmp_path_factory.mktemp("hostdev"), toy_meta(IN, OUT))


@pytest.fixture
def device(host_exe: Path):
    with HostDevice(host_exe) as dev:
        yield dev


def read_events(tr: Transport, dec: P.FrameDecoder, n: int = 1, timeout: float = 5.0) -> list:
    out: list = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        out += dec.feed(tr.read_some())
    assert len(out) >= n, f"got {out} and log {bytes(dec.log)!r}"
    return out


def test_boot_hello_then_log_text_kept(device: HostDevice) -> None:
    with Transport(device.url) as tr:
        dec = P.FrameDecoder()
        (f,) = read_events(tr, dec)
        assert f.type == P.MsgType.HELLO and f.seq == 0 and f.flags == P.FLAG_BOOT | P.FLAG_FRESH
        h = P.Hello.decode(f.payload, f.flags)
        assert (h.input_bytes, h.output_bytes, h.runtime, h.board, h.timer) == (
            IN,
            OUT,
            "host-toy",
            "host",
            "host-ns",
        )
        assert h.max_payload == max(IN + 4, 64) and h.boot
        assert toy_meta(IN, OUT)["MCD_MODEL_SHA256"].strip('"') == h.sha256
        assert b"booting" in dec.log  # the app's text before the first frame is kept


def test_infer_matches_the_python_reference_byte_for_byte(device: HostDevice) -> None:
    x = np.random.default_rng(3).integers(-128, 128, (40, IN)).astype(np.int8)
    with Transport(device.url) as tr:
        link = DeviceLink(tr)
        link.wait_hello()
        link.handshake()
        outs = [link.infer(s.tobytes()) for s in x]
    assert all(r.status == 0 and r.npu_cycles == 0 and r.cycles > 0 for r in outs)
    assert b"".join(r.output for r in outs) == toy_layer(x, OUT).tobytes()


def test_bench_and_device_errors(device: HostDevice) -> None:
    with Transport(device.url) as tr:
        link = DeviceLink(tr)
        link.wait_hello()
        link.handshake()
        b = link.bench(25, bytes(range(IN)))
        assert b.runs == 25 and b.status == 0 and 0 < b.min <= b.mean <= b.max
        dec = link.decoder
        tr.write(P.encode_frame(P.MsgType.INFER, 77, b"short"))  # wrong input length
        tr.write(P.encode_frame(0x55, 78))  # unknown request
        bad = bytearray(P.encode_frame(P.MsgType.INFER, 79, bytes(IN)))
        bad[14] ^= 0x10  # payload damaged, header intact: the device NACKs with the same seq
        tr.write(bytes(bad))
        frames = read_events(tr, dec, 3)
    errs = {f.seq: P.DeviceError.decode(f.payload) for f in frames if f.type == P.MsgType.ERROR}
    assert errs[77].code == P.ErrorCode.BAD_LENGTH and errs[77].request_type == P.MsgType.INFER
    assert errs[78].code == P.ErrorCode.UNKNOWN_TYPE
    assert errs[79].code == P.ErrorCode.BAD_CRC


def test_device_resyncs_after_garbage_and_a_cut_request(device: HostDevice) -> None:
    x = np.arange(IN, dtype=np.int8)
    with Transport(device.url) as tr:
        link = DeviceLink(tr, LinkPolicy(request_timeout=2.0))
        link.wait_hello()
        link.handshake()
        # noise with sync bytes, then half a request: the device is left waiting mid-payload
        tr.write(b"\xa5\x5a\xa5noise\x00\xff\x01\x02")  # a sync and 10 header bytes that fail the check
        time.sleep(0.05)
        tr.write(P.encode_frame(P.MsgType.INFER, 5, x.tobytes())[:20])
        time.sleep(0.05)
        r = link.infer(x.tobytes())  # the retry's zero pad completes the stuck frame, then it resyncs
    assert r.output == toy_layer(x[None], OUT).tobytes()
    assert link.stats.retries >= 1


def test_fresh_flag_reveals_a_reset_whose_hello_was_missed(device: HostDevice) -> None:
    x = bytes(IN)
    with Transport(device.url) as tr:
        link = DeviceLink(tr)
        link.wait_hello()
        with pytest.raises(DeviceReset):  # replies stay FRESH until the host handshakes
            link.infer(x)
        assert link.handshake().sha256
        assert link.infer(x).status == 0  # no longer fresh


def test_a_device_that_never_announces_its_port_fails_by_the_deadline(tmp_path: Path) -> None:
    silent = tmp_path / "silent-device"  # lives on and prints a partial line: no readline() hang
    silent.write_text("#!/bin/sh\nprintf 'MCD_HOST_PORT='\nexec sleep 60\n")
    silent.chmod(0o755)
    dev = HostDevice(silent, start_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(SimulatorError, match=r"did not start within 1 s \(last output b'MCD_HOST_PORT='\)"):
        dev.start()
    assert time.monotonic() - t0 < 10 and dev.proc is None  # killed, not left behind
