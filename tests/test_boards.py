"""Board registry: shipped boards, schema errors, the `boards` command, and QEMU boards booted for real."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomllib

from mcudeploy import boards as boards_mod
from mcudeploy.boards import Board, get_board, list_boards, load_board_file, parse_board
from mcudeploy.cli import run
from mcudeploy.errors import BoardError

BOARDS_DIR = Path(__file__).resolve().parents[1] / "boards"
REQUIRED = {
    "corstone-300",
    "corstone-310",
    "qemu-an547",
    "qemu-an386",
    "qemu-an500",
    "qemu-an505",
    "nucleo-h743zi2",
    "netduinoplus2",
    "nrf52840dk",
    "alif-e7-appkit",
}
QEMU_BOARDS = sorted(b.name for b in list_boards() if "qemu" in b.simulator and b.uart.kind == "cmsdk")


def _base() -> dict[str, Any]:
    return tomllib.loads((BOARDS_DIR / "qemu-an386.toml").read_text())


# -- the shipped registry ----------------------------------------------------------------
def test_registry_has_the_required_boards() -> None:
    names = {b.name for b in list_boards()}
    assert names >= REQUIRED


@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_shipped_board_is_complete(board: Board) -> None:
    assert board.docs, f"{board.source} cites no vendor documentation"
    assert board.region_for("arena").kind == "ram"
    assert board.region_for("data").kind == "ram"
    assert board.source == f"{board.name}.toml"
    if not board.simulator:  # a real board: it must say how to flash it
        assert board.flasher.get("kind") in boards_mod.FLASHER_KINDS, f"{board.name} has no flasher"
    if board.npu:
        assert board.npu.macs in boards_mod.NPU_MACS[board.npu.type]


def test_qemu_boards_follow_qemus_memory_maps() -> None:
    """Spot-check the numbers read from QEMU's hw/arm/mps2.c: PSRAM differs between AN386 and AN500."""
    an386, an500 = get_board("qemu-an386"), get_board("qemu-an500")
    assert an386.memory["psram"].origin == 0x21000000
    assert an500.memory["psram"].origin == 0x60000000
    for b in (an386, an500):
        assert b.memory["ssram1"].origin == 0 and b.memory["ssram1"].length == 4 << 20
        assert b.uart.base == 0x40004000
        assert b.cpu_clock_hz == 25_000_000


# -- schema errors ------------------------------------------------------------------------
def _set(d: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()
SCHEMA_CASES = [
    ("cpu", _DELETE, "missing required key 'cpu'"),
    ("cpu_clock", 1, "unknown key(s) cpu_clock"),
    ("cpu", "cortex-a53", "unknown cpu 'cortex-a53'"),
    ("memory.ssram23.origin", 0x00100000, "overlap"),
    ("memory.psram.length", "12Q", "memory.psram.length: expected a size"),
    ("placement.arena", "sram9", "placement.arena = 'sram9' is not a memory region"),
    ("flasher", {"kind": "jlink"}, "flasher: unknown kind 'jlink'"),
    ("flasher", {"kind": "pyocd"}, "missing required key 'target'"),
    ("flasher", {"kind": "pyocd", "target": "nrf52840", "speed": 4}, "unknown setting(s) speed"),
    ("flasher", {"kind": "openocd", "config": "board/x.cfg"}, "'config' must be list"),
    ("flasher", {"kind": "openocd", "config": [1]}, "'config' must be a list of strings"),
    ("flasher", {"kind": "command", "argv": []}, "argv is empty"),
    ("flasher", {"kind": "command", "argv": ["flash", "{image}"]}, "unknown placeholder {image}"),
    ("flasher", {"kind": "copy"}, "missing required key 'volume'"),
    ("simulator.renode", {"platform": "x"}, "simulator.renode: unknown simulator"),
    ("simulator.qemu", {"icount_shift": 0}, "simulator.qemu: missing required key 'machine'"),
    ("npu", {"type": "ethos-u55", "macs": 100, "base": 0, "irq": 1, "vela": {}}, "no 100-MAC configuration"),
    ("uart", {"base": 0}, "uart: missing required key 'kind'"),
    ("uart.baud", 0, "uart.baud must be a positive integer, got 0"),
    ("uart.baud", -9600, "uart.baud must be a positive integer, got -9600"),
    ("uart.baud", "fast", "uart.baud must be a positive integer, got 'fast'"),
    (
        "simulator.qemu",
        {"machine": "mps3-an547", "icount_shift": 99},
        "icount_shift must be an integer 0..10",
    ),
    (
        "simulator.qemu",
        {"machine": "mps3-an547", "icount_shift": -1},
        "icount_shift must be an integer 0..10",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), SCHEMA_CASES, ids=[c[2][:40] for c in SCHEMA_CASES])
def test_schema_errors_name_file_and_key(path: str, value: Any, message: str) -> None:
    data = copy.deepcopy(_base())
    _set(data, path, value)
    with pytest.raises(BoardError) as exc:
        parse_board(data, "my-board.toml")
    assert "my-board.toml" in str(exc.value)
    assert message in str(exc.value)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm: run `make setup`")
def test_an_unknown_qemu_machine_is_refused_on_load() -> None:
    data = copy.deepcopy(_base())
    data["simulator"] = {"qemu": {"machine": "mps9-an999"}}
    with pytest.raises(
        BoardError, match=r"my-board\.toml: simulator\.qemu\.machine 'mps9-an999' is not a machine"
    ):
        parse_board(data, "my-board.toml")


def test_valid_flasher_kinds_are_accepted() -> None:
    for flasher in (
        {"kind": "pyocd", "target": "nrf52840", "frequency": 4_000_000},
        {"kind": "openocd", "config": ["board/st_nucleo_h743zi.cfg"]},
        {"kind": "copy", "volume": "NOD_H743ZI2", "format": "bin"},
        {"kind": "command", "argv": ["nrfjprog", "--program", "{hex}", "--verify", "--reset"]},
    ):
        data = copy.deepcopy(_base())
        data["flasher"] = flasher
        assert parse_board(data, "b.toml").flasher == flasher


def test_board_file_by_path_and_broken_toml(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text((BOARDS_DIR / "qemu-an386.toml").read_text().replace('"qemu-an386"', '"my-an386"', 1))
    assert get_board(good).name == "my-an386"
    bad = tmp_path / "broken.toml"
    bad.write_text("name = 'x\ncpu = ")
    with pytest.raises(BoardError, match=r"broken\.toml: not valid TOML"):
        load_board_file(bad)
    with pytest.raises(BoardError, match="no such board file"):
        get_board(tmp_path / "absent.toml")


def test_user_board_folder_and_duplicate_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (BOARDS_DIR / "qemu-an386.toml").read_text()
    (tmp_path / "extra.toml").write_text(text.replace('"qemu-an386"', '"extra-an386"', 1))
    monkeypatch.setenv("MCUDEPLOY_BOARDS_PATH", str(tmp_path))
    boards_mod._registry.cache_clear()
    try:
        assert get_board("extra-an386").cpu == "cortex-m4"
        (tmp_path / "zz-dup.toml").write_text(text)
        boards_mod._registry.cache_clear()
        with pytest.raises(BoardError, match=r"zz-dup.toml: board name 'qemu-an386' is already defined"):
            list_boards()
    finally:
        monkeypatch.delenv("MCUDEPLOY_BOARDS_PATH")
        boards_mod._registry.cache_clear()


# -- the CLI ------------------------------------------------------------------------------
def test_cli_boards_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("boards") == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert name in out
    assert run("boards", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {b["name"] for b in listed} == {b.name for b in list_boards()}


def test_cli_one_board(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("boards", "corstone-310", "--json") == 0
    d = json.loads(capsys.readouterr().out)
    board = get_board("corstone-310")
    assert [r["name"] for r in d["memory"]] == list(board.memory)
    assert board.npu is not None and d["npu"]["accelerator"] == board.npu.accelerator
    assert d["placement"]["arena"] == board.placement["arena"]
    assert d["simulator"] == {k: dict(sorted(v.items())) for k, v in board.simulator.items()}
    assert run("boards", "nucleo-h743zi2") == 0
    out = capsys.readouterr().out
    assert "axi_sram" in out and "0x24000000" in out and "openocd" in out


def test_cli_unknown_board_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("boards", "qemu-an38") == 2
    assert "did you mean qemu-an386" in capsys.readouterr().err


# -- QEMU boards, booted for real --------------------------------------------------------
_PROBE_C = r"""
#include <stdint.h>
#define UART_DATA (*(volatile uint32_t *)(UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART_BASE + 0x10u))
extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
struct region { const char *name; uint32_t first, last; };
static const struct region regions[] = { REGIONS };
static volatile uint32_t answer = 40u; /* in .data: proves the load-address copy worked */
static volatile uint32_t zeroed;        /* in .bss */

static void put(const char *s) {
    while (*s) { while (UART_STATE & 1u) {} UART_DATA = (uint8_t)*s++; }
}
static void sh_exit(int code) { /* semihosting SYS_EXIT_EXTENDED */
    uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register uint32_t r1 __asm__("r1") = (uint32_t)block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {}
}
static int probe(uint32_t addr) {
    volatile uint32_t *p = (volatile uint32_t *)addr;
    uint32_t saved = *p, ok;
    *p = 0xA5C3F00Du ^ addr;
    ok = (*p == (0xA5C3F00Du ^ addr));
    *p = saved;
    return ok;
}
void reset_handler(void) {
    const uint32_t *src = &__data_load;
    uint32_t *dst;
    unsigned i;
    int failed = 0;
    for (dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0u;
    UART_BAUDDIV = 16u;
    UART_CTRL = 1u; /* TX enable: QEMU drops output without it */
    put("hello from " BOARD "\n");
    for (i = 0; i < sizeof regions / sizeof regions[0]; i++) {
        int ok = probe(regions[i].first) && probe(regions[i].last);
        put(ok ? "ok " : "FAIL ");
        put(regions[i].name);
        put("\n");
        failed |= !ok;
    }
    sh_exit(failed ? 1 : (int)(answer + 2u + zeroed));
}
__attribute__((section(".vectors"), used))
static const void *const vectors[2] = {&__stack_top, (const void *)reset_handler};
"""

_LD = """MEMORY {{
  CODE (rx) : ORIGIN = 0x{code.origin:08x}, LENGTH = {code.length}
  DATA (rw) : ORIGIN = 0x{data.origin:08x}, LENGTH = {data.length}
}}
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); }} > CODE
  .data : {{ __data_start = .; *(.data*) . = ALIGN(4); __data_end = .; }} > DATA AT > CODE
  __data_load = LOADADDR(.data);
  .bss (NOLOAD) : {{ __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; }} > DATA
  __stack_top = ORIGIN(DATA) + LENGTH(DATA);
}}
"""


@pytest.mark.qemu
@pytest.mark.parametrize("name", QEMU_BOARDS)
def test_qemu_board_boots(name: str, tmp_path: Path) -> None:
    """A tiny ELF linked from the board file prints on its UART, touches every RAM region, exits 42."""
    board = get_board(name)
    code = board.memory[board.placement.get("vectors", board.placement["code"])]
    data = board.memory[board.placement["data"]]
    ram = [r for r in board.memory.values() if r.kind == "ram"]
    regions = ", ".join(f'{{"{r.name}", 0x{r.origin:08x}u, 0x{r.end - 4:08x}u}}' for r in ram)
    (tmp_path / "probe.c").write_text(_PROBE_C)
    (tmp_path / "probe.ld").write_text(_LD.format(code=code, data=data))
    elf = tmp_path / "probe.elf"
    cc = [
        "arm-none-eabi-gcc", *board.gcc_flags, "-O2", "-std=c99", "-Wall", "-Werror", "-ffreestanding",
        "-fno-tree-loop-distribute-patterns", "-nostdlib", "-nostartfiles",
        f"-DUART_BASE=0x{board.uart.base:08x}u", f'-DBOARD="{name}"', f"-DREGIONS={regions}",
        "-T", str(tmp_path / "probe.ld"), str(tmp_path / "probe.c"), "-o", str(elf),
    ]  # fmt: skip
    subprocess.run(cc, check=True, capture_output=True, text=True)
    qemu = [
        "qemu-system-arm", "-M", board.simulator["qemu"]["machine"], "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native", "-serial", "stdio", "-kernel", str(elf),
    ]  # fmt: skip
    proc = subprocess.run(qemu, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    out = proc.stdout.decode("ascii", "replace")
    assert f"hello from {name}" in out, proc.stderr
    for r in ram:
        assert f"ok {r.name}\n" in out, out
    assert proc.returncode == 42, out + proc.stderr.decode(errors="replace")


def test_qemu_boards_cover_the_mps2_machines() -> None:
    machines = {get_board(n).simulator["qemu"]["machine"] for n in QEMU_BOARDS}
    assert {"mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"} <= machines
