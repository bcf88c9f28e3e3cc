"""The C protocol (firmware_templates/protocol/mcd_protocol.c) built for the host and driven over TCP."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mcudeploy import protocol as P
from mcudeploy.device.harness import DeviceLink, DeviceReset, LinkPolicy
from mcudeploy.device.protocol_host import HostDevice, build_host_device, toy_layer, toy_meta
from mcudeploy.device.targets.transport import Transport
from mcudeploy.errors import SimulatorError

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


def _small_c_model():
    """CONV_2D -> RESHAPE (an alias: no layer) -> FULLY_CONNECTED -> SOFTMAX, all int8."""
    from mcudeploy.ml.tflite_builder import GraphBuilder
    from tests.graphs import conv, int8_weights

    rng = np.random.default_rng(5)
    g = GraphBuilder()
    x = g.tensor((1, 6, 6, 2), "int8", 0.05, -3)
    w = g.const(int8_weights(rng, (4, 3, 3, 2)), "int8", scale=[0.02], zero_point=0)
    b = g.const(rng.integers(-500, 500, 4), "int32", scale=[0.001], zero_point=0)
    c = g.tensor((1, 6, 6, 4), "int8", 0.1, 2)
    conv(g, [x, w, b], c, padding=0, act=1)
    flat = g.tensor((1, 144), "int8", 0.1, 2)
    g.op("RESHAPE", [c, g.const(np.array([1, 144]), "int32")], [flat])
    fw = g.const(int8_weights(rng, (10, 144)), "int8", scale=[0.01], zero_point=0)
    logits = g.tensor((1, 10), "int8", 0.2, 0)
    g.op("FULLY_CONNECTED", [flat, fw, -1], [logits])
    y = g.tensor((1, 10), "int8", 1 / 256, -128)
    g.op("SOFTMAX", [logits], [y], beta=1.0)
    return g.build([x], [y])


def test_profile_times_every_layer_of_the_c_runtime(tmp_path: Path) -> None:
    """PROFILE over the real protocol with the generated C runtime: one record per kernel step, named
    by the model's operator index (the RESHAPE alias is no layer), inner times within the whole, and the
    profiled invoke leaves plain INFER untouched."""
    from mcudeploy.firmware.runtime_c.codegen import kernel_sources, render_c_runtime

    model = _small_c_model()
    src = tmp_path / "rt"
    render_c_runtime(model, src)
    meta = {
        "MCD_MODEL_SHA256": f'"{model.sha256}"',
        "MCD_INPUT_BYTES": f"{model.inputs[0].nbytes}u",
        "MCD_OUTPUT_BYTES": f"{model.outputs[0].nbytes}u",
        "MCD_ARENA_BYTES": "0u",
        "MCD_IO_INFO": f'"{P.io_info(model)}"',
    }
    exe = build_host_device(
        tmp_path / "dev",
        meta,
        runtime_sources=[src / n for n in (*kernel_sources(), "mcd_runtime_c.c")],
        include_dirs=[src],
    )
    x = np.random.default_rng(9).integers(-128, 128, (3, model.inputs[0].nbytes)).astype(np.int8)
    with HostDevice(exe) as dev, Transport(dev.url) as tr:
        link = DeviceLink(tr)
        link.wait_hello()
        hello = link.handshake()
        assert hello.proto == P.PROTOCOL_VERSION == 2 and hello.layers == 3 and hello.stack_size == 0
        for s in x:
            before = link.infer(s.tobytes())
            p = link.profile(s.tobytes())
            after = link.infer(s.tobytes())
            assert p.status == 0 and [op for op, _ in p.layers] == [0, 2, 3]
            assert sum(t for _, t in p.layers) <= p.cycles
            assert before.output == after.output
        tr.write(P.encode_frame(P.MsgType.PROFILE, 91, b"short"))
        (f,) = read_events(tr, link.decoder)
    err = P.DeviceError.decode(f.payload)
    assert (err.code, err.request_type) == (P.ErrorCode.BAD_LENGTH, P.MsgType.PROFILE)


def test_profile_result_decoding_refuses_a_wrong_length() -> None:
    r = P.ProfileResult(0, 1000, 0, 512, 4096, ((0, 400), (2, 500)))
    assert P.ProfileResult.decode(r.encode()) == r
    for bad in (r.encode()[:-1], r.encode() + b"\0", b"\0" * 8):
        with pytest.raises(ValueError, match="PROFILE_RESULT"):
            P.ProfileResult.decode(bad)
