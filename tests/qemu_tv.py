"""Test-vector firmware (``generate --mode test-vectors``) on QEMU: generate and build it, run the ELF
to its exit and read the ``MCD-TV`` lines it prints, one per vector."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mcudeploy.boards import get_board
from mcudeploy.device.targets.qemu import QemuSimulator
from mcudeploy.firmware import build as build_mod
from mcudeploy.firmware import codegen

# MCD-TV <index> ok|MISMATCH t=<timer> npu=<npu cycles> out=<output bytes in hex>
TV_LINE = re.compile(r"^MCD-TV (\d+) (ok|MISMATCH) t=(\d+) npu=(\d+) out=([0-9a-f]*)\r?$", re.MULTILINE)


def run_elf(elf: Path, board: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run ``elf`` on ``board``'s QEMU machine until it exits: (exit code, UART text)."""
    with QemuSimulator(get_board(board)).start(elf, timeout=timeout) as running:
        uart = running.read_uart()
        code = running.wait()
    return code, uart.decode("ascii", "replace")


def run_vectors(
    model: Any, board: str, x: np.ndarray, proj_dir: Path, *, timeout: float = 120.0, **generate: Any
) -> tuple[codegen.Project, int, str, list[tuple[str, ...]]]:
    """The C runtime's test-vector firmware for ``model`` with inputs ``x``, generated into ``proj_dir``,
    built and run on ``board``'s QEMU: (project, exit code, UART text, parsed ``TV_LINE`` rows)."""
    p = codegen.generate(model, get_board(board), proj_dir, runtime="c", inputs=x, **generate)
    code, uart = run_elf(build_mod.build(p.path).elf, board, timeout)
    return p, code, uart, TV_LINE.findall(uart)


def tv_outputs(rows: list[tuple[str, ...]]) -> np.ndarray:
    """The int8 output bytes of each parsed ``TV_LINE`` row, one row per vector."""
    return np.array([np.frombuffer(bytes.fromhex(r[4]), np.int8) for r in rows])
