"""Flashers chosen by the board file: command lines, and real runs of the ones that need no probe."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from mcudeploy.boards import get_board
from mcudeploy.device.targets.flashers import (
    FLASHERS,
    CommandFlasher,
    CopyFlasher,
    OpenOcdFlasher,
    elf_load_segments,
    flash_firmware,
    get_flasher,
)
from mcudeploy.errors import BoardError, FlashError, ToolMissingError

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc: run `make setup`"
)


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc: run `make setup`")
    d = tmp_path_factory.mktemp("elf")
    (d / "a.c").write_text(
        "const int table[4] = {1, 2, 3, 4};\nint counter = 7;\n"
        "void _start(void) { for (;;) counter += table[counter & 3]; }\n"
    )
    (d / "a.ld").write_text(
        "MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 64K\n"
        "         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 16K }\n"
        "SECTIONS { .text : { *(.text*) *(.rodata*) } > FLASH\n"
        "           .data : { *(.data*) } > RAM AT > FLASH }\n"
    )
    out = d / "app.elf"
    subprocess.run(
        [
            "arm-none-eabi-gcc",
            "-mcpu=cortex-m4",
            "-mthumb",
            "-O1",
            "-nostdlib",
            "-T",
            str(d / "a.ld"),
            str(d / "a.c"),
            "-o",
            str(out),
        ],
        check=True,
    )
    return out


def board_with(flasher: dict) -> object:
    return dataclasses.replace(get_board("nucleo-h743zi2"), flasher=flasher)


def test_registry_covers_every_kind_the_shipped_boards_use() -> None:
    assert {"pyocd", "openocd", "copy", "command"} <= set(FLASHERS)
    for name in ("nucleo-h743zi2", "nrf52840dk", "alif-e7-appkit"):
        assert type(get_flasher(get_board(name))).kind == get_board(name).flasher["kind"]


def test_openocd_programs_verifies_and_resets() -> None:
    cmd = OpenOcdFlasher(get_board("nucleo-h743zi2")).command(Path("/tmp/my app.elf"))
    assert cmd[:3] == ["openocd", "-f", "board/st_nucleo_h743zi.cfg"]
    assert cmd[-2:] == ["-c", "program {/tmp/my app.elf} verify reset exit"]
    with pytest.raises(BoardError, match="needs config"):
        OpenOcdFlasher(board_with({"kind": "openocd"})).command(Path("a.elf"))


@needs_arm
def test_elf_segments_are_the_loadable_bytes(elf: Path) -> None:
    segs = elf_load_segments(elf)
    assert segs[0][0] == 0x08000000 and all(len(b) for _, b in segs)
    raw = subprocess.run(
        ["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", str(elf), "/dev/stdout"],
        capture_output=True,
        check=True,
    ).stdout
    assert segs[0][1].startswith(raw[:16])


@needs_arm
def test_command_flasher_runs_the_template_with_derived_images(elf: Path, tmp_path: Path) -> None:
    dest = tmp_path / "flashed.bin"
    board = board_with({"kind": "command", "argv": ["cp", "{bin}", str(dest)]})
    flash_firmware(board, elf)
    image = b"".join(b for _, b in elf_load_segments(elf))
    assert dest.read_bytes()[:16] == image[:16]
    with pytest.raises(BoardError, match="placeholder"):
        CommandFlasher(board_with({"kind": "command", "argv": ["x", "{nope}"]})).command(elf)
    with pytest.raises(FlashError, match="exit 1"):
        flash_firmware(board_with({"kind": "command", "argv": ["false", "{elf}"]}), elf)
    with pytest.raises(ToolMissingError):
        flash_firmware(board_with({"kind": "command", "argv": ["no-such-flash-tool-xyz", "{elf}"]}), elf)


@needs_arm
def test_copy_flasher_writes_hex_and_reads_the_drive_verdict(elf: Path, tmp_path: Path) -> None:
    drive = tmp_path / "DAPLINK"
    drive.mkdir()
    flasher = CopyFlasher(board_with({"kind": "copy", "mount": str(drive)}))
    flasher.flash(elf)
    assert (drive / "app.hex").read_text().startswith(":")
    (drive / "FAIL.TXT").write_text("The interface firmware FAILED to reset/halt the target MCU\n")
    with pytest.raises(FlashError, match="FAILED to reset"):
        flasher.flash(elf)
    with pytest.raises(FlashError, match="not mounted"):
        CopyFlasher(board_with({"kind": "copy", "mount": str(tmp_path / "absent")})).flash(elf)
