"""labgrid places → pyserial URL and flasher, with labgrid's own resource classes (when installed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mcudeploy import cli
from mcudeploy.device.targets import labgrid as lgmod
from mcudeploy.errors import ConfigError, ExitCode, LinkError, ToolMissingError


def test_without_labgrid_every_entry_point_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "labgrid", None)  # makes `import labgrid` fail like an absent package
    for call in (lambda: lgmod.open_place("rack-1"), lambda: lgmod.serial_url(object()), lgmod.labgrid):
        with pytest.raises(ToolMissingError) as e:
            call()
        assert e.value.exit_code == ExitCode.MISSING_TOOL
        assert "pip install labgrid" in str(e.value)


@pytest.fixture
def lg():
    lg = pytest.importorskip("labgrid", reason="labgrid not installed: pip install 'mcudeploy[farm]'")

    return lg


def test_network_serial_port_maps_to_rfc2217_or_raw_socket(lg) -> None:
    from labgrid.resource import NetworkSerialPort

    t = lg.Target("farm")
    rfc = NetworkSerialPort(t, name="uart", host="exporter-3", port=5002, speed=921600)
    assert lgmod.serial_url(rfc) == ("rfc2217://exporter-3:5002?ign_set_control", 921600)
    raw = NetworkSerialPort(t, name="raw", host="10.0.0.7", port=4001, protocol="raw")
    assert lgmod.serial_url(raw) == ("socket://10.0.0.7:4001", 115200)
    odd = NetworkSerialPort(t, name="odd", host="h", port=1, protocol="telnet")
    with pytest.raises(ConfigError, match="unknown protocol 'telnet'"):
        lgmod.serial_url(odd)


def test_local_serial_port_maps_to_its_device(lg) -> None:
    from labgrid.resource import RawSerialPort

    t = lg.Target("bench")
    assert lgmod.serial_url(RawSerialPort(t, name="uart", port="/dev/ttyACM3", speed=460800)) == (
        "/dev/ttyACM3",
        460800,
    )


def test_place_picks_its_serial_port_and_the_flasher_labgrid_binds(lg) -> None:
    from labgrid.resource import NetworkSerialPort
    from labgrid.resource.remote import NetworkUSBDebugger, NetworkUSBMassStorage

    t = lg.Target("rack-1")
    NetworkSerialPort(t, name="uart", host="exporter-1", port=5000)
    usb = {
        "host": "exporter-1",
        "busnum": 1,
        "devnum": 4,
        "path": "1-1",
        "vendor_id": 0x0D28,
        "model_id": 0x0204,
    }
    NetworkUSBMassStorage(t, name="daplink", **usb)
    place = lgmod.place_from_target("rack-1", t)
    assert (place.url, place.baudrate, place.serial_resource) == (
        "rfc2217://exporter-1:5000?ign_set_control",
        115200,
        "NetworkSerialPort",
    )
    assert (place.flasher, place.flash_resource) == ("USBStorageDriver", "NetworkUSBMassStorage")
    NetworkUSBDebugger(t, name="probe", **usb)  # a debug probe is preferred over mass storage
    assert lgmod.place_from_target("rack-1", t).flasher == "OpenOCDDriver"


def test_place_without_serial_port_names_what_it_has(lg) -> None:
    from labgrid.resource.remote import NetworkUSBDebugger

    t = lg.Target("rack-2")
    NetworkUSBDebugger(t, name="probe", host="e", busnum=1, devnum=2, path="1-2", vendor_id=1, model_id=2)
    with pytest.raises(
        ConfigError, match=r"'rack-2' has no serial port resource \(has: NetworkUSBDebugger\)"
    ):
        lgmod.place_from_target("rack-2", t)


def test_run_labgrid_place_without_labgrid_exits_3(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "labgrid", None)
    (tmp_path / "app.elf").write_bytes(b"\x7fELF")  # a missing firmware would be exit 2 first
    args = ["--board", "qemu-an547", "--firmware", tmp_path / "app.elf", "--data", tmp_path / "d.npz"]
    code = cli.run("run", *args, "--model", tmp_path / "m.tflite", "--labgrid-place", "rack-1")
    assert code == ExitCode.MISSING_TOOL
    assert "pip install labgrid" in capsys.readouterr().err


def test_deploy_labgrid_place_without_labgrid_exits_3_before_any_stage(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "labgrid", None)
    (tmp_path / "m.tflite").write_bytes(b"\0" * 64)  # never read: the check comes first
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 8, 8, 1), np.float32), y=np.zeros(2, np.int64))
    out = tmp_path / "out"
    args = ["--model", tmp_path / "m.tflite", "--data", tmp_path / "d.npz", "-o", out]
    assert cli.run("deploy", *args, "--labgrid-place", "rack-1") == ExitCode.MISSING_TOOL
    assert "pip install labgrid" in capsys.readouterr().err
    assert not out.exists()  # no stage ran, nothing was written


def test_deploy_labgrid_place_and_port_are_exclusive() -> None:
    from mcudeploy.deploy import load_config

    with pytest.raises(ConfigError, match=r"run\.port and run\.labgrid_place"):
        load_config(None, [("run", "port", "/dev/ttyACM0"), ("run", "labgrid_place", "rack-1")])


def test_unreachable_coordinator_is_a_link_error(lg) -> None:
    with pytest.raises(LinkError, match=r"labgrid coordinator at 127\.0\.0\.1:1"):
        lgmod.open_place("rack-1", coordinator="127.0.0.1:1")
