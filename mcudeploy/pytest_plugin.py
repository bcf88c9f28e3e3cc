"""pytest plugin: hardware-in-the-loop tests against a connected, model-checked target.

Registered through the ``pytest11`` entry point, so installing mcudeploy is enough. It is inert
unless a test asks for its fixtures, and it imports nothing heavy at load time (no TensorFlow,
no numpy): a test session that never touches a board pays nothing for it.

    pytest --mcu-board qemu-an547 --mcu-firmware build/app.elf --mcu-model model_int8.tflite
    pytest --mcu-board my-board --mcu-port /dev/ttyACM0 --mcu-model model_int8.tflite

``mcu_target`` is a :class:`mcudeploy.device.harness.DeviceLink` whose HELLO was checked against the model
(protocol version, model sha256, I/O layout, board). Without ``--mcu-port`` the board's simulator
(QEMU) is started with the firmware, or with the firmware built from ``--mcu-project``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

_HELP_SKIP = "needs a target: pass --mcu-board (and --mcu-port for a real board) and --mcu-model"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mcudeploy", "mcudeploy hardware-in-the-loop targets")
    group.addoption("--mcu-board", help="mcudeploy board name of the target (see `mcudeploy boards`).")
    group.addoption(
        "--mcu-port", help="Serial port or pyserial URL of a flashed board (default: its simulator)."
    )
    group.addoption("--mcu-firmware", help="Firmware ELF for the simulator (protocol mode).")
    group.addoption(
        "--mcu-project", help="Generated mcudeploy project to build when no --mcu-firmware is given."
    )
    group.addoption(
        "--mcu-model", help="The .tflite the firmware runs: the device's HELLO is checked against it."
    )
    group.addoption("--mcu-baudrate", type=int, default=115200, help="Baud rate of --mcu-port.")
    group.addoption("--mcu-timeout", type=float, default=600.0, help="Deadline for the simulator run (s).")


@dataclass(frozen=True)
class MCUOptions:
    board: str | None
    port: str | None
    firmware: Path | None
    project: Path | None
    model: Path | None
    baudrate: int
    timeout: float

    @property
    def used(self) -> bool:
        return any(v is not None for v in (self.board, self.port, self.firmware, self.project, self.model))


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


@pytest.fixture(scope="session")
def mcu_options(pytestconfig: pytest.Config) -> MCUOptions:
    """The --mcu-* options; tests that need a target are skipped when none were given."""
    opt = pytestconfig.getoption
    o = MCUOptions(
        board=opt("mcu_board"),
        port=opt("mcu_port"),
        firmware=_path(opt("mcu_firmware")),
        project=_path(opt("mcu_project")),
        model=_path(opt("mcu_model")),
        baudrate=opt("mcu_baudrate"),
        timeout=opt("mcu_timeout"),
    )
    if not o.used:
        pytest.skip(_HELP_SKIP)
    return o


def _usage(message: str) -> NoReturn:
    raise pytest.UsageError(f"mcudeploy: {message}")


@pytest.fixture(scope="session")
def mcu_model(mcu_options: MCUOptions) -> Any:
    """The model the device must be running (a :class:`mcudeploy.ml.model.Model`)."""
    from .ml.model import read_tflite

    if mcu_options.model is None:
        _usage("--mcu-model is required: the device's HELLO is checked against the model it should run")
    return read_tflite(mcu_options.model)


@pytest.fixture(scope="session")
def mcu_firmware(mcu_options: MCUOptions, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firmware ELF for the simulator: --mcu-firmware, or --mcu-project built once per session."""
    if mcu_options.firmware is not None:
        return mcu_options.firmware
    if mcu_options.project is None:
        _usage("without --mcu-port, pass --mcu-firmware (an ELF) or --mcu-project to run on the simulator")
    from .firmware.build import build

    return build(mcu_options.project, build_dir=tmp_path_factory.mktemp("mcu-build")).elf


@pytest.fixture(scope="session")
def mcu_target(mcu_options: MCUOptions, mcu_model: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A connected :class:`mcudeploy.device.harness.DeviceLink` whose HELLO matches ``mcu_model``."""
    from .device.harness import DeviceLink, Expectation, check_hello
    from .device.targets.transport import open_transport
    from .errors import DeviceMismatchError

    with contextlib.ExitStack() as stack:
        url = mcu_options.port or stack.enter_context(_start_simulator(mcu_options, request)).url
        transport = stack.enter_context(open_transport(url, baudrate=mcu_options.baudrate))
        link = DeviceLink(transport)
        link.wait_hello()  # the boot announcement (or the answer to the GET_HELLOs it sends)
        hello = link.handshake()  # and the handshake that ends the device's post-reset FRESH flags
        check_hello(hello, Expectation.from_model(mcu_model), url)
        if mcu_options.board and hello.board != mcu_options.board:
            raise DeviceMismatchError(
                f"{url} is board {hello.board!r}, --mcu-board says {mcu_options.board!r}"
            )
        yield link


@contextlib.contextmanager
def _start_simulator(o: MCUOptions, request: pytest.FixtureRequest) -> Iterator[Any]:
    from .boards import get_board
    from .device.targets import simulator_for

    if not o.board:
        _usage("without --mcu-port, --mcu-board names the board whose simulator runs the firmware")
    board = get_board(o.board)
    sim = simulator_for(board)
    if sim is None:
        _usage(f"board '{board.name}' has no simulator: pass --mcu-port for the flashed board")
    elf = request.getfixturevalue("mcu_firmware")
    with sim.start(elf, timeout=o.timeout) as running:
        yield running


@pytest.fixture(scope="session")
def mcu_hello(mcu_target: Any) -> Any:
    """The checked HELLO of the target (:class:`mcudeploy.protocol.Hello`)."""
    return mcu_target.hello
