"""Board registry: one TOML data file per board in ``boards/`` (shipped as ``mcudeploy.boards_data``).

Adding a board is adding a file; no stage branches on a board's name. Every file is schema-checked
on load and errors name the file and the key at fault. Users may point at their own board file
(``--board path/to/board.toml``) or a folder of them (``MCUDEPLOY_BOARDS_PATH``).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import tomllib

from ._resources import package_data
from .errors import BoardError

CPUS = {
    # cpu -> (gcc -mcpu, -mfloat-abi, -mfpu or None, has DWT cycle counter, has MVE)
    "cortex-m0plus": ("cortex-m0plus", "soft", None, False, False),
    "cortex-m3": ("cortex-m3", "soft", None, True, False),
    "cortex-m4": ("cortex-m4", "hard", "fpv4-sp-d16", True, False),
    "cortex-m7": ("cortex-m7", "hard", "fpv5-d16", True, False),
    "cortex-m33": ("cortex-m33", "hard", "fpv5-sp-d16", True, False),
    "cortex-m55": ("cortex-m55", "hard", None, True, True),
    "cortex-m85": ("cortex-m85", "hard", None, True, True),
}
# GCC 12 (Debian's arm-none-eabi) has no -mcpu=cortex-m85 (added in GCC 13): name the architecture
# instead, which every GCC >= 11 accepts and which yields the same M85 code minus PACBTI.
_GCC_MARCH = {"cortex-m85": ["-march=armv8.1-m.main+mve.fp+fp.dp", "-mtune=cortex-m55"]}

# Flasher kinds: kind -> (required settings, optional settings), each setting -> its type.
# Placeholders allowed in a "command" flasher's argv: {elf}, {hex}, {bin}.
FLASHER_KINDS: dict[str, tuple[dict[str, type], dict[str, type]]] = {
    "pyocd": ({"target": str}, {"frequency": int, "pack": str, "probe": str, "erase": str}),
    "openocd": ({"config": list}, {"commands": list, "adapter_speed": int}),
    "copy": ({"volume": str}, {"format": str, "timeout_s": int}),  # USB mass-storage drive label
    "command": ({"argv": list}, {"timeout_s": int, "env": dict}),
}
COMMAND_PLACEHOLDERS = ("elf", "hex", "bin")
# Simulator kinds: kind -> required settings (other settings are passed on to the simulator class).
SIMULATOR_KINDS: dict[str, dict[str, type]] = {"qemu": {"machine": str}, "fvp": {"model": str}}
NPU_TYPES = ("ethos-u55", "ethos-u65", "ethos-u85")
NPU_MACS = {
    "ethos-u55": (32, 64, 128, 256),
    "ethos-u65": (256, 512),
    "ethos-u85": (128, 256, 512, 1024, 2048),
}
REGION_KINDS = ("rom", "ram")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value: Any, where: str) -> int:
    """``4096``, ``"512K"``, ``"2M"``, ``"1G"`` -> bytes."""
    if isinstance(value, bool):
        raise BoardError(f"{where}: expected a size such as 512K or 2M, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise BoardError(f"{where}: size must be positive, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]
    raise BoardError(f"{where}: expected a size such as 512K or 2M, got {value!r}")


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    length: int
    kind: str = "ram"  # "rom" regions are read-only at run time (flash)

    @property
    def end(self) -> int:
        return self.origin + self.length

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "origin": f"0x{self.origin:08x}", "length": self.length, "kind": self.kind}


@dataclass(frozen=True)
class Npu:
    type: str
    macs: int
    base: int
    irq: int
    system_config: str
    memory_mode: str
    vela_ini: str | None = None  # file name in boards/vela/ or None for Vela's built-in vela.ini

    @property
    def accelerator(self) -> str:
        return f"{self.type}-{self.macs}"


@dataclass(frozen=True)
class Uart:
    kind: str  # firmware driver: platform/uart_KIND.inc.j2 ("cmsdk", "stm32-usart", ...)
    base: int = 0
    baud: int = 115200
    irq: int | None = None
    clock_hz: int | None = None  # the peripheral clock its baud divisor derives from (default: CPU's)
    settings: dict[str, Any] = field(default_factory=dict)  # driver wiring: enable bits, pins (_UART_WIRING)


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    cpu: str
    cpu_clock_hz: int
    memory: dict[str, Region]
    placement: dict[str, str]  # role ("code", "model", "arena", "data", "stack") -> region name
    uart: Uart
    npu: Npu | None = None
    flasher: dict[str, Any] = field(default_factory=dict)
    simulator: dict[str, dict[str, Any]] = field(default_factory=dict)
    timer: str = "dwt"  # "dwt" or "systick"
    docs: tuple[str, ...] = ()
    source: str = ""
    clock: dict[str, Any] = field(
        default_factory=dict
    )  # [clock]: kind (platform/clock_KIND.inc.j2) + settings

    @property
    def uart_clock_hz(self) -> int:
        return self.uart.clock_hz or self.cpu_clock_hz

    def for_target(self, target: str) -> Board:
        """The board as a target sees it: a simulator may not model every region (QEMU 7.2 maps no
        STM32F4 CCM), so ``[simulator.X] placement`` moves roles for that simulator only."""
        override = self.simulator.get(target, {}).get("placement", {})
        if not override:
            return self
        return replace(self, placement={**self.placement, **override})

    @property
    def gcc_flags(self) -> list[str]:
        mcpu, abi, fpu, _, _ = CPUS[self.cpu]
        flags = [*_GCC_MARCH.get(self.cpu, [f"-mcpu={mcpu}"]), "-mthumb", f"-mfloat-abi={abi}"]
        if fpu:
            flags.append(f"-mfpu={fpu}")
        return flags

    @property
    def has_dwt(self) -> bool:
        return CPUS[self.cpu][3]

    @property
    def has_mve(self) -> bool:
        return CPUS[self.cpu][4]

    def region_for(self, role: str) -> Region:
        name = self.placement.get(role) or self.placement.get("data") or next(iter(self.memory))
        return self.memory[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "cpu": self.cpu,
            "cpu_clock_hz": self.cpu_clock_hz,
            "npu": self.npu.accelerator if self.npu else None,
            "memory": [r.to_dict() for r in self.memory.values()],
            "placement": dict(sorted(self.placement.items())),
            "timer": self.timer,
            "simulators": sorted(self.simulator),
            "flasher": self.flasher.get("kind"),
            "docs": list(self.docs),
        }


# -- loading ------------------------------------------------------------------------------
def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BoardError(f"{where} must be a positive integer, got {value!r}")
    return value


def _req(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise BoardError(f"{where}: missing required key '{key}'")
    v = d[key]
    if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
        tname = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise BoardError(f"{where}: '{key}' must be {tname}, got {v!r}")
    return v


_TOP_KEYS = {
    "name",
    "title",
    "cpu",
    "cpu_clock_hz",
    "memory",
    "placement",
    "uart",
    "npu",
    "flasher",
    "simulator",
    "timer",
    "docs",
    "clock",
}


def parse_board(data: dict[str, Any], source: str) -> Board:
    """Check a board table against the schema and build a :class:`Board`."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BoardError(
            f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOP_KEYS))})"
        )
    name = _req(data, "name", str, source)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise BoardError(f"{source}: name {name!r} must be lower-case letters, digits, '-', '_' or '.'")
    cpu = _req(data, "cpu", str, source)
    if cpu not in CPUS:
        raise BoardError(f"{source}: unknown cpu {cpu!r} (known: {', '.join(sorted(CPUS))})")
    cpu_hz = _req(data, "cpu_clock_hz", int, source)
    if cpu_hz <= 0:
        raise BoardError(f"{source}: cpu_clock_hz must be positive")

    mem_t = _req(data, "memory", dict, source)
    if not mem_t:
        raise BoardError(f"{source}: [memory] lists no regions")
    memory: dict[str, Region] = {}
    for rname, spec in mem_t.items():
        w = f"{source}: memory.{rname}"
        if not isinstance(spec, dict):
            raise BoardError(f"{w}: expected a table with origin and length")
        origin = _req(spec, "origin", int, w)
        length = parse_size(_req(spec, "length", (int, str), w), f"{w}.length")
        kind = spec.get("kind", "ram")
        if kind not in REGION_KINDS:
            raise BoardError(f"{w}: kind must be one of {', '.join(REGION_KINDS)}, got {kind!r}")
        if origin < 0 or origin + length > 2**32:
            raise BoardError(f"{w}: region 0x{origin:x}+{length} lies outside the 32-bit address space")
        memory[rname] = Region(rname, origin, length, kind)
    regions = sorted(memory.values(), key=lambda r: r.origin)
    for a, b in itertools.pairwise(regions):
        if a.end > b.origin:
            raise BoardError(f"{source}: memory regions '{a.name}' and '{b.name}' overlap")

    placement = _req(data, "placement", dict, source)
    _check_placement(placement, memory, f"{source}: placement")
    for role in ("code", "arena"):
        if role not in placement:
            raise BoardError(f"{source}: placement needs '{role}' (the region for {role})")

    u = _req(data, "uart", dict, source)
    uart = Uart(
        kind=_req(u, "kind", str, f"{source}: uart"),
        base=int(u.get("base", 0)),
        baud=_positive_int(u.get("baud", 115200), f"{source}: uart.baud"),
        irq=u.get("irq"),
        clock_hz=u.get("clock_hz"),
        settings=_check_uart_wiring(u, f"{source}: uart"),
    )
    table = UART_BAUD_TABLES.get(uart.kind)
    if table is not None:
        if uart.baud not in table:
            raise BoardError(
                f"{source}: uart.baud {uart.baud} has no {uart.kind} BAUDRATE value "
                f"(supported: {', '.join(map(str, table))})"
            )
        uart.settings["baudrate_register"] = table[uart.baud]
    if uart.clock_hz is not None and (not isinstance(uart.clock_hz, int) or uart.clock_hz <= 0):
        raise BoardError(f"{source}: uart.clock_hz must be a positive integer (Hz), got {uart.clock_hz!r}")

    npu = None
    if "npu" in data:
        n = _req(data, "npu", dict, source)
        w = f"{source}: npu"
        ntype = _req(n, "type", str, w)
        if ntype not in NPU_TYPES:
            raise BoardError(f"{w}: type must be one of {', '.join(NPU_TYPES)}, got {ntype!r}")
        macs = _req(n, "macs", int, w)
        if macs not in NPU_MACS[ntype]:
            raise BoardError(f"{w}: {ntype} has no {macs}-MAC configuration (valid: {NPU_MACS[ntype]})")
        vela = _req(n, "vela", dict, w)
        npu = Npu(
            type=ntype,
            macs=macs,
            base=_req(n, "base", int, w),
            irq=_req(n, "irq", int, w),
            system_config=_req(vela, "system_config", str, f"{w}.vela"),
            memory_mode=_req(vela, "memory_mode", str, f"{w}.vela"),
            vela_ini=vela.get("ini"),
        )

    timer = data.get("timer", "dwt" if CPUS[cpu][3] else "systick")
    if timer not in ("dwt", "systick"):
        raise BoardError(f"{source}: timer must be 'dwt' or 'systick', got {timer!r}")
    flasher = data.get("flasher", {})
    simulator = data.get("simulator", {})
    if not isinstance(flasher, dict) or not isinstance(simulator, dict):
        raise BoardError(f"{source}: [flasher] and [simulator] must be tables")
    if flasher:
        _check_flasher(flasher, source)
    for sim_kind, sim in simulator.items():
        _check_simulator(sim_kind, sim, source)
        _check_placement(sim.get("placement", {}), memory, f"{source}: simulator.{sim_kind}.placement")
    clock = data.get("clock", {})
    if not isinstance(clock, dict):
        raise BoardError(f"{source}: [clock] must be a table")
    if clock:
        _check_clock(clock, clock_hz=cpu_hz, uart=uart, source=source)
    docs = data.get("docs", [])
    if not isinstance(docs, list) or not all(isinstance(x, str) for x in docs):
        raise BoardError(f"{source}: docs must be a list of strings (vendor document references)")
    return Board(
        name=name,
        title=str(data.get("title", name)),
        cpu=cpu,
        cpu_clock_hz=cpu_hz,
        memory=memory,
        placement=dict(placement),
        uart=uart,
        npu=npu,
        flasher=flasher,
        simulator=simulator,
        timer=timer,
        docs=tuple(docs),
        source=source,
        clock=dict(clock),
    )


# UARTs whose baud rate is a register value from a table rather than a divisor of their clock.
UART_BAUD_TABLES: dict[str, dict[int, int]] = {
    "nrf-uart": {  # nRF52840 PS, UART BAUDRATE (16 MHz HFCLK)
        9600: 0x00275000,
        19200: 0x004EA000,
        38400: 0x009D5000,
        57600: 0x00EBF000,
        115200: 0x01D7E000,
        230400: 0x03AFB000,
        460800: 0x075F7000,
        921600: 0x0EBED000,
        1000000: 0x10000000,
    },
}
_UART_KEYS = {"kind", "base", "baud", "irq", "clock_hz", "enable", "pins"}
_PIN_KEYS = ("gpio", "tx", "rx", "af")


def _check_uart_wiring(u: dict[str, Any], where: str) -> dict[str, Any]:
    """``enable``: the clock bits to set before the UART is touched (a list of {register, bit});
    ``pins``: TX/RX pin numbers, with the GPIO port and alternate function where pins are muxed
    (STM32) and without where the UART selects its pins itself (nRF PSEL)."""
    unknown = sorted(set(u) - _UART_KEYS)
    if unknown:
        raise BoardError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_UART_KEYS))})"
        )
    enable = u.get("enable", [])
    if not isinstance(enable, list):
        raise BoardError(f"{where}.enable: expected a list of {{ register = 0x..., bit = N }}")
    for i, e in enumerate(enable):
        w = f"{where}.enable[{i}]"
        if not isinstance(e, dict) or set(e) != {"register", "bit"}:
            raise BoardError(f"{w}: expected {{ register = 0x..., bit = N }}, got {e!r}")
        if not 0 <= _req(e, "bit", int, w) <= 31 or not 0 <= _req(e, "register", int, w) < 2**32:
            raise BoardError(f"{w}: bit must be 0..31 and register a 32-bit address")
    settings: dict[str, Any] = {"enable": enable}
    if "pins" in u:
        pins = _req(u, "pins", dict, where)
        keys = set(pins)
        if not {"tx", "rx"} <= keys <= set(_PIN_KEYS) or len(keys & {"gpio", "af"}) == 1:
            raise BoardError(
                f"{where}.pins: needs tx and rx, and gpio with af for a pin-muxed port "
                f"(STM32: GPIO port address and alternate function), got {', '.join(sorted(pins))}"
            )
        for key in keys:
            _req(pins, key, int, f"{where}.pins")
        if not all(0 <= pins[k] <= 63 for k in ("tx", "rx")) or not 0 <= pins.get("af", 0) <= 15:
            raise BoardError(f"{where}.pins: tx and rx must be pin numbers 0..63, af 0..15")
        settings["pins"] = pins
    return settings


def _check_placement(placement: Any, memory: dict[str, Region], where: str) -> None:
    if not isinstance(placement, dict):
        raise BoardError(f"{where}: expected a table of role = region")
    for role, region in placement.items():
        if region not in memory:
            raise BoardError(
                f"{where}.{role} = {region!r} is not a memory region (have: {', '.join(memory)})"
            )


def _stm32f4_pll(c: dict[str, Any], where: str) -> dict[str, int]:
    """SYSCLK and bus clocks of an STM32F4 HSE -> PLL set-up, checked against RM0090 §6.3.2's limits."""
    vco_in = c["hse_hz"] / c["pllm"]
    if not 2 <= c["pllm"] <= 63 or not 1_000_000 <= vco_in <= 2_000_000:
        raise BoardError(f"{where}: pllm={c['pllm']} gives a {vco_in / 1e6:g} MHz VCO input (needs 1..2 MHz)")
    vco = vco_in * c["plln"]
    if not 50 <= c["plln"] <= 432 or not 100e6 <= vco <= 432e6:
        raise BoardError(f"{where}: plln={c['plln']} gives a {vco / 1e6:g} MHz VCO (needs 100..432 MHz)")
    if c["pllp"] not in (2, 4, 6, 8) or not 2 <= c["pllq"] <= 15:
        raise BoardError(f"{where}: pllp must be 2, 4, 6 or 8 and pllq 2..15")
    for key, allowed in (("ahb_div", (1, 2, 4, 8, 16, 64, 128, 256, 512)), ("apb1_div", (1, 2, 4, 8, 16))):
        if c[key] not in allowed:
            raise BoardError(f"{where}: {key} must be one of {allowed}, got {c[key]}")
    if c["apb2_div"] not in (1, 2, 4, 8, 16) or not 0 <= c["flash_latency"] <= 7:
        raise BoardError(f"{where}: apb2_div must be 1, 2, 4, 8 or 16 and flash_latency 0..7")
    sysclk = int(vco // c["pllp"])
    hclk = sysclk // c["ahb_div"]
    clocks = {"sysclk": sysclk, "apb1": hclk // c["apb1_div"], "apb2": hclk // c["apb2_div"]}
    for name, limit in (("sysclk", 168_000_000), ("apb1", 42_000_000), ("apb2", 84_000_000)):
        if clocks[name] > limit:
            raise BoardError(f"{where}: {name} would run at {clocks[name]:,} Hz, above the F4's {limit:,} Hz")
    return clocks


# Clock set-up kinds: kind -> (settings, function giving sysclk and bus clocks); the firmware side is
# firmware_templates/platform/clock_KIND.inc.j2.
CLOCK_KINDS: dict[str, tuple[dict[str, type], Any]] = {
    "stm32f4-pll": (
        {
            "hse_hz": int,
            "pllm": int,
            "plln": int,
            "pllp": int,
            "pllq": int,
            "ahb_div": int,
            "apb1_div": int,
            "apb2_div": int,
            "flash_latency": int,
            "uart_bus": str,
        },
        _stm32f4_pll,
    ),
}


def _check_clock(clock: dict[str, Any], *, clock_hz: int, uart: Uart, source: str) -> None:
    """The [clock] set-up must yield the board's cpu_clock_hz and the UART's clock_hz."""
    where = f"{source}: clock"
    kind = _req(clock, "kind", str, where)
    if kind not in CLOCK_KINDS:
        raise BoardError(f"{where}: unknown kind {kind!r} (known: {', '.join(sorted(CLOCK_KINDS))})")
    settings, derive = CLOCK_KINDS[kind]
    _check_settings(clock, settings, {}, f"{where} ({kind})")
    clocks = derive(clock, f"{where} ({kind})")
    if clocks["sysclk"] != clock_hz:
        raise BoardError(
            f"{where} ({kind}): gives SYSCLK {clocks['sysclk']:,} Hz but cpu_clock_hz is {clock_hz:,}"
        )
    bus = clock["uart_bus"]
    if bus not in clocks or bus == "sysclk":
        raise BoardError(f"{where}: uart_bus must be one of apb1, apb2, got {bus!r}")
    if uart.clock_hz != clocks[bus]:
        raise BoardError(
            f"{where} ({kind}): the UART's bus {bus} runs at {clocks[bus]:,} Hz "
            f"but uart.clock_hz is {uart.clock_hz!r}"
        )


def _check_settings(
    table: dict[str, Any], required: dict[str, type], optional: dict[str, type] | None, where: str
) -> None:
    for key, typ in required.items():
        _req(table, key, typ, where)
    if optional is not None:
        unknown = sorted(set(table) - set(required) - set(optional) - {"kind"})
        if unknown:
            known = ", ".join(sorted({*required, *optional}))
            raise BoardError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {known})")
        for key, typ in optional.items():
            if key in table:
                _req(table, key, typ, where)
    for key, value in table.items():
        if isinstance(value, list) and not all(isinstance(x, str) for x in value):
            raise BoardError(f"{where}: '{key}' must be a list of strings, got {value!r}")


def _check_flasher(flasher: dict[str, Any], source: str) -> None:
    where = f"{source}: flasher"
    kind = _req(flasher, "kind", str, where)
    if kind not in FLASHER_KINDS:
        raise BoardError(f"{where}: unknown kind {kind!r} (known: {', '.join(sorted(FLASHER_KINDS))})")
    required, optional = FLASHER_KINDS[kind]
    _check_settings(flasher, required, optional, f"{where} ({kind})")
    if kind == "command":
        if not flasher["argv"]:
            raise BoardError(f"{where} (command): argv is empty")
        for arg in flasher["argv"]:
            for name in re.findall(r"(?<!\{)\{([^{}]*)\}(?!\})", arg):
                if name not in COMMAND_PLACEHOLDERS:
                    raise BoardError(
                        f"{where} (command): unknown placeholder {{{name}}} in argv "
                        f"(known: {', '.join('{' + p + '}' for p in COMMAND_PLACEHOLDERS)})"
                    )


def _check_simulator(kind: str, sim: Any, source: str) -> None:
    where = f"{source}: simulator.{kind}"
    if kind not in SIMULATOR_KINDS:
        raise BoardError(f"{where}: unknown simulator (known: {', '.join(sorted(SIMULATOR_KINDS))})")
    if not isinstance(sim, dict):
        raise BoardError(f"{where}: expected a table")
    _check_settings(sim, SIMULATOR_KINDS[kind], None, where)
    if kind == "qemu":
        shift = sim.get("icount_shift", 0)
        if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= 10:
            raise BoardError(f"{where}.icount_shift must be an integer 0..10 (QEMU's limit), got {shift!r}")
        machines = qemu_machines()
        if machines and sim["machine"] not in machines:
            raise BoardError(
                f"{where}.machine {sim['machine']!r} is not a machine of this qemu-system-arm",
                hint="`qemu-system-arm -M help` lists them (e.g. mps3-an547, mps2-an386, netduinoplus2)",
            )


@cache
def qemu_machines() -> frozenset[str]:
    """Machine names the installed qemu-system-arm knows (empty when it is not installed: a board
    file is then checked again when the simulator starts)."""
    exe = shutil.which("qemu-system-arm")
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run(
            [exe, "-M", "help"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = [ln.split()[0] for ln in out.splitlines()[1:] if ln.strip()]
    return frozenset(names)


def load_board_file(path: str | os.PathLike[str]) -> Board:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BoardError(f"{p}: no such board file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BoardError(f"{p}: cannot read ({e})") from None
    return _parse_toml(text, p.name)


def _parse_toml(text: str, source: str) -> Board:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{source}: not valid TOML ({e})") from None
    return parse_board(data, source)


def _board_files() -> list[tuple[str, Any]]:
    """(file name, readable) for the shipped boards plus MCUDEPLOY_BOARDS_PATH folders."""
    files = [(f.name, f) for f in package_data("mcudeploy.boards_data").iterdir() if f.name.endswith(".toml")]
    for folder in filter(None, os.environ.get("MCUDEPLOY_BOARDS_PATH", "").split(os.pathsep)):
        files += [(p.name, p) for p in Path(folder).glob("*.toml")]
    return sorted(files, key=lambda x: x[0])


@cache
def _registry() -> dict[str, Board]:
    boards: dict[str, Board] = {}
    for fname, f in _board_files():
        b = _parse_toml(f.read_text(encoding="utf-8"), fname)
        if b.name in boards:
            raise BoardError(f"{fname}: board name {b.name!r} is already defined by {boards[b.name].source}")
        boards[b.name] = b
    return boards


def list_boards() -> list[Board]:
    return [b for _, b in sorted(_registry().items())]


def get_board(name_or_path: str | os.PathLike[str]) -> Board:
    """A board by registry name, or from a path to a board TOML file."""
    s = str(name_or_path)
    if s.endswith(".toml") or os.sep in s:
        return load_board_file(s)
    reg = _registry()
    if s not in reg:
        import difflib

        close = difflib.get_close_matches(s, reg, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run `mcudeploy boards` to list them"
        raise BoardError(f"unknown board {s!r}", hint=hint)
    return reg[s]


def vela_ini_path(board: Board) -> Path | None:
    """The Vela ini shipped for this board (boards/vela/NAME.ini), if it names one."""
    if board.npu is None or not board.npu.vela_ini:
        return None
    res = package_data("mcudeploy.boards_data").joinpath("vela", board.npu.vela_ini)
    return Path(str(res))
