"""Real boards (no simulator): their files agree with the vendor documents they cite, and each one's
generated firmware builds without a warning, with the UART driver, clock enables and baud divisor
the board file chose."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcudeploy.boards import get_board
from mcudeploy.firmware import build as build_mod
from mcudeploy.firmware import codegen

# board -> (UART kind, UART base, UART clock, {region: (origin, length)}), from the documents in `docs`
VENDOR = {
    "nucleo-h743zi2": (
        "stm32h7-usart",
        0x40004800,  # RM0433: USART3 (ST-LINK VCP, UM2407)
        64_000_000,  # HSI 64 MHz at reset, pclk1 undivided
        {
            "flash": (0x08000000, 2 << 20),
            "dtcm": (0x20000000, 128 << 10),
            "axi_sram": (0x24000000, 512 << 10),
        },
    ),
    "nrf52840dk": (
        "nrf-uart",
        0x40002000,  # nRF52840 PS: UART0/UARTE0, ID 2
        64_000_000,
        {"flash": (0x00000000, 1 << 20), "ram": (0x20000000, 256 << 10)},
    ),
    "alif-e7-appkit": (
        "dw-apb-uart",
        0x4901C000,  # global_map.h UART4_BASE (0x4900C000 is GPIO12)
        100_000_000,  # SYST_PCLK
        {"mram": (0x80000000, 5632 << 10), "sram0": (0x02000000, 4 << 20), "dtcm": (0x20000000, 1 << 20)},
    ),
}

# board -> lines the generated platform layer must contain (register writes from the board file)
PLATFORM_LINES = {
    "nucleo-h743zi2": [
        "*(volatile uint32_t *)0x580244E8u |= 1u << 18;",  # RCC_APB1LENR.USART3EN
        "*(volatile uint32_t *)0x580244E0u |= 1u << 3;",  # RCC_AHB4ENR.GPIODEN
        "MCD_UART->TDR = c;",
    ],
    "nrf52840dk": ["MCD_NRF_UART(0x524u) = 0x01D7E000u;", "MCD_NRF_UART(0x50Cu) = 6u;"],
    "alif-e7-appkit": ["*(volatile uint32_t *)0x4902F008u |= 1u << 12;", "MCD_DW_UART(0x0Cu) = 0x80u;"],
}


@pytest.mark.parametrize("name", sorted(VENDOR))
def test_board_file_matches_the_vendor_documents(name: str) -> None:
    board = get_board(name)
    kind, base, clock, regions = VENDOR[name]
    assert (board.uart.kind, board.uart.base, board.uart_clock_hz) == (kind, base, clock)
    for region, (origin, length) in regions.items():
        assert (board.memory[region].origin, board.memory[region].length) == (origin, length), region
    assert board.flasher and codegen.default_target(board) == "hardware"


@pytest.mark.qemu  # needs arm-none-eabi-gcc (the marker's skip names it)
@pytest.mark.parametrize("name", sorted(VENDOR))
def test_real_board_project_builds_warning_free(name: str, digits_int8, tmp_path: Path) -> None:
    board = get_board(name)
    p = codegen.generate(digits_int8, board, tmp_path / name, runtime="c", mode="protocol")
    assert p.target == "hardware"
    platform = (p.path / "src" / "mcd_platform.c").read_text()
    for line in PLATFORM_LINES[name]:
        assert line in platform, (name, line)
    assert (
        "bkpt 0xAB" in platform
        and "#define MCD_SEMIHOSTING 0" in (p.path / "src" / "mcd_board.h").read_text()
    )
    fw = build_mod.build(p.path)
    log = (fw.elf.parent / "mcudeploy-build.log").read_text()
    assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]
    code = board.memory[board.placement["vectors"]]
    assert fw.addresses[".vectors"] == code.origin  # the vector table at the vendor's boot address
