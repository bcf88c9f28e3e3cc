"""Flashers, chosen by the board file's ``[flasher]`` table (``kind = ...``); a registry, no if-chains.

- ``pyocd``: pyOCD's Python API (``pip install mcudeploy[flash]``), verified by reading back every
  loadable ELF segment.
- ``openocd``: ``openocd -f CFG... -c "program ELF verify reset exit"`` (OpenOCD verifies itself).
- ``copy``: mass-storage copy of a .hex/.bin to a DAPLink/J-Link drive (``mount``); DAPLink reports a
  failed programming with FAIL.TXT on the drive, which is checked after the copy.
- ``command``: an argv template with ``{elf}``, ``{hex}``, ``{bin}`` placeholders.

Each flasher builds its command (pure, testable) separately from running it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from ...boards import Board
from ...errors import BoardError, FlashError, ToolMissingError

FLASHERS: dict[str, type[Flasher]] = {}


def register_flasher(cls: type[Flasher]) -> type[Flasher]:
    FLASHERS[cls.kind] = cls
    return cls


class Flasher(ABC):
    kind: ClassVar[str]

    def __init__(self, board: Board, config: dict[str, Any] | None = None, *, timeout: float = 300.0) -> None:
        self.board = board
        self.config = dict(config if config is not None else board.flasher)
        self.timeout = timeout

    @abstractmethod
    def flash(self, elf: Path) -> None:
        """Program ``elf`` and verify it where the tool can; FlashError on failure."""

    def _run(self, cmd: list[str], tool: str, hint: str) -> str:
        if shutil.which(cmd[0]) is None:
            raise ToolMissingError(
                f"{cmd[0]} not found: needed to flash board '{self.board.name}'", hint=hint
            )
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise FlashError(
                f"{tool} did not finish within {self.timeout:g} s flashing '{self.board.name}'"
            ) from None
        out = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            tail = "\n".join(out.splitlines()[-15:])
            raise FlashError(f"{tool} failed (exit {proc.returncode}) flashing '{self.board.name}':\n{tail}")
        return out


def objcopy(elf: Path, fmt: str) -> Path:
    """ELF -> .hex ('ihex') or .bin ('binary') beside it, with arm-none-eabi-objcopy."""
    tool = shutil.which("arm-none-eabi-objcopy")
    if tool is None:
        raise ToolMissingError("arm-none-eabi-objcopy not found", hint="apt-get install gcc-arm-none-eabi")
    out = elf.with_suffix(".hex" if fmt == "ihex" else ".bin")
    proc = subprocess.run([tool, "-O", fmt, str(elf), str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FlashError(f"objcopy {elf.name} -> {out.name} failed: {proc.stderr.strip()}")
    return out


def elf_load_segments(elf: Path) -> list[tuple[int, bytes]]:
    """(physical address, bytes) of every PT_LOAD segment with file data (ELF32 little-endian)."""
    data = elf.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise FlashError(f"{elf}: not a 32-bit little-endian ELF")
    (phoff,) = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    segs = []
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz = struct.unpack_from(
            "<IIIII", data, phoff + i * phentsize
        )
        if p_type == 1 and p_filesz:
            segs.append((p_paddr, data[p_offset : p_offset + p_filesz]))
    return sorted(segs)


@register_flasher
class OpenOcdFlasher(Flasher):
    kind = "openocd"

    def command(self, elf: Path) -> list[str]:
        cfgs = self.config.get("config", [])
        if isinstance(cfgs, str):
            cfgs = [cfgs]
        if not cfgs:
            raise BoardError(
                f"{self.board.source}: [flasher] kind = 'openocd' needs config = ['board/....cfg']"
            )
        cmd = [str(self.config.get("executable", "openocd"))]
        for c in cfgs:
            cmd += ["-f", str(c)]
        for c in self.config.get("commands", []):
            cmd += ["-c", str(c)]
        # Tcl braces keep paths with spaces intact; 'verify' compares flash with the file.
        return [*cmd, "-c", f"program {{{elf}}} verify reset exit"]

    def flash(self, elf: Path) -> None:
        out = self._run(self.command(elf), "OpenOCD", "apt-get install openocd")
        if "Verified OK" not in out and "verified" not in out.lower():
            raise FlashError(f"OpenOCD did not confirm verification of {elf.name}:\n{out[-800:]}")


@register_flasher
class PyOcdFlasher(Flasher):
    kind = "pyocd"

    def flash(self, elf: Path) -> None:
        try:
            from pyocd.core.helpers import ConnectHelper
            from pyocd.flash.file_programmer import FileProgrammer
        except ImportError:
            raise ToolMissingError("pyOCD is not installed", hint="pip install 'mcudeploy[flash]'") from None
        target = self.config.get("target")
        if not target:
            raise BoardError(f"{self.board.source}: [flasher] kind = 'pyocd' needs target = '...'")
        options = {"frequency": int(self.config.get("frequency", 4_000_000))}
        session = ConnectHelper.session_with_chosen_probe(
            target_override=target, unique_id=self.config.get("probe"), blocking=False, options=options
        )
        if session is None:
            raise FlashError(
                f"no debug probe found for board '{self.board.name}' (pyOCD target {target})",
                hint="connect the board's USB debug port; `pyocd list` shows probes",
            )
        with session:
            FileProgrammer(session).program(str(elf), file_format="elf")
            bad = []
            for addr, blob in elf_load_segments(elf):
                if addr >= 0x20000000:  # RAM-initialised data is copied at boot, not flashed
                    continue
                got = bytes(session.target.read_memory_block8(addr, len(blob)))
                if got != blob:
                    bad.append(f"0x{addr:08x}+{len(blob)}")
            if bad:
                raise FlashError(f"verify after flashing {elf.name} failed at {', '.join(bad)}")
            session.target.reset()


@register_flasher
class CopyFlasher(Flasher):
    kind = "copy"

    def flash(self, elf: Path) -> None:
        mount = self.config.get("mount")
        if not mount:
            raise BoardError(
                f"{self.board.source}: [flasher] kind = 'copy' needs mount = '/media/USER/DAPLINK'"
            )
        drive = Path(str(mount)).expanduser()
        if not drive.is_dir():
            raise FlashError(
                f"mass-storage drive {drive} is not mounted", hint="plug in the board's USB port"
            )
        fmt = str(self.config.get("format", "hex"))
        image = elf if fmt == "elf" else objcopy(elf, "ihex" if fmt == "hex" else "binary")
        dest = drive / image.name
        with open(image, "rb") as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        time.sleep(float(self.config.get("settle_s", 0.0)))  # DAPLink re-mounts after programming
        fail = drive / "FAIL.TXT"
        if fail.exists():
            raise FlashError(
                f"the board's drive reports a failure: {fail.read_text(errors='replace').strip()}"
            )


@register_flasher
class CommandFlasher(Flasher):
    kind = "command"

    def command(self, elf: Path) -> list[str]:
        argv = self.config.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise BoardError(
                f"{self.board.source}: [flasher] kind = 'command' needs argv = ['tool', '{{elf}}']"
            )
        files: dict[str, Any] = {"elf": elf}
        joined = " ".join(argv)
        if "{hex}" in joined:
            files["hex"] = objcopy(elf, "ihex")
        if "{bin}" in joined:
            files["bin"] = objcopy(elf, "binary")
        try:
            return [a.format(**files) for a in argv]
        except (KeyError, IndexError) as e:
            raise BoardError(
                f"{self.board.source}: flasher argv uses unknown placeholder {e} "
                "(known: {elf}, {hex}, {bin})"
            ) from None

    def flash(self, elf: Path) -> None:
        self._run(
            self.command(elf), f"flash command '{self.config['argv'][0]}'", "see the board file's [flasher]"
        )


def get_flasher(board: Board, **kw: Any) -> Flasher:
    kind = board.flasher.get("kind")
    if kind not in FLASHERS:
        raise BoardError(
            f"{board.source}: [flasher] kind {kind!r} is unknown (known: {', '.join(sorted(FLASHERS))})"
        )
    return FLASHERS[kind](board, **kw)


def flash_firmware(board: Board, elf: str | Path) -> None:
    elf = Path(elf)
    if not elf.is_file():
        raise FlashError(f"{elf}: no such firmware image")
    get_flasher(board).flash(elf)
