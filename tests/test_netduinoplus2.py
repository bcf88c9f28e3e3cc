"""A real vendor MCU: the STM32F405 of the Netduino Plus 2, on QEMU's `netduinoplus2` machine.

Vendor flash address, the STM32 USART driver and RCC clock set-up chosen by the board file, SysTick
timing under -icount, and the memory fit against its two RAM regions (SRAM and the CCM, which QEMU
does not map, so the QEMU target keeps the stack in SRAM).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomllib

from mcudeploy.boards import get_board, parse_board
from mcudeploy.errors import BoardError, MemoryFitError
from mcudeploy.firmware import build as build_mod
from mcudeploy.firmware import codegen
from mcudeploy.ml.tflite_builder import GraphBuilder
from tests.graphs import conv

BOARD = "netduinoplus2"
BOARD_FILE = Path(__file__).resolve().parent.parent / "boards" / f"{BOARD}.toml"


def _board_data() -> dict[str, Any]:
    return tomllib.loads(BOARD_FILE.read_text())


def test_board_is_true_to_the_chip_and_qemu_moves_the_stack_out_of_the_ccm() -> None:
    b = get_board(BOARD)
    assert (b.memory["flash"].origin, b.memory["flash"].length, b.memory["flash"].kind) == (
        0x08000000,
        1 << 20,
        "rom",
    )
    assert (b.memory["sram"].origin, b.memory["sram"].length) == (0x20000000, 128 * 1024)
    assert (b.memory["ccm"].origin, b.memory["ccm"].length) == (0x10000000, 64 * 1024)
    assert b.uart.base == 0x40011000 and b.uart.kind == "stm32-usart"
    assert b.placement["stack"] == "ccm" and b.placement["arena"] == "sram"
    assert b.for_target("qemu").placement["stack"] == "sram"
    assert b.for_target("hardware") is b


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("clock.pllm", 5, "VCO input"),  # 5 MHz into the VCO
        ("clock.plln", 440, "VCO (needs"),  # 440 MHz VCO
        ("clock.plln", 400, "sysclk would run at 200,000,000 Hz"),
        ("clock.apb2_div", 1, "apb2 would run at 168,000,000 Hz"),
        ("clock.pllp", 3, "pllp must be"),
        ("clock.apb1_div", 3, "apb1_div must be"),
        ("clock.uart_bus", "ahb", "uart_bus must be"),
        ("clock.kind", "stm32h7-pll", "unknown kind"),
        ("uart.clock_hz", 42_000_000, "uart.clock_hz is 42000000"),
        ("cpu_clock_hz", 84_000_000, "cpu_clock_hz is 84,000,000"),
        ("uart.pins", {"gpio": 0x40020000, "tx": 9}, "needs tx and rx, and gpio with af"),
        ("uart.pins", {"gpio": 0x40020000, "tx": 9, "rx": 10}, "needs tx and rx, and gpio with af"),
        ("uart.enable", [{"register": 0x40023844}], "expected { register"),
        ("uart.flow", 1, "unknown key(s) flow"),
        ("simulator.qemu.placement", {"stack": "dtcm"}, "simulator.qemu.placement.stack = 'dtcm'"),
    ],
)
def test_clock_and_wiring_errors_name_the_key(path: str, value: Any, message: str) -> None:
    data = copy.deepcopy(_board_data())
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(BoardError) as exc:
        parse_board(data, "nd.toml")
    assert "nd.toml" in str(exc.value) and message in str(exc.value), str(exc.value)


def _copy_model(shape: tuple[int, ...]):
    """Input -> 1x1 conv -> ADD with the input, activations of ``shape``: the input stays live while
    the conv writes, so no plan overlaps the two and the arena is about twice the shape's size."""
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    c = shape[-1]
    x = g.tensor(shape, "int8", 0.05, 0)
    w = g.const(rng.integers(-127, 128, (c, 1, 1, c)), "int8", scale=[0.01] * c)
    b = g.const(np.zeros(c, dtype=np.int64), "int32", scale=[0.0005] * c)
    y = g.tensor(shape, "int8", 0.1, 0)
    conv(g, [x, w, b], y, padding=1)
    z = g.tensor(shape, "int8", 0.1, 0)
    g.op("ADD", [x, y], [z], fused_activation_function=0)
    return g.build([x], [z], source="wide.tflite")


def test_fit_is_planned_per_target_and_a_model_too_big_is_refused_naming_the_region(tmp_path: Path) -> None:
    board = get_board(BOARD)
    model = _copy_model((1, 56, 64, 16))  # 2 x 56 KiB of activations: fits 128K SRAM only without the stack
    hw = codegen.generate(model, board, tmp_path / "hw", runtime="c", mode="protocol", target="hardware")
    regions = {r.region.name: r for r in hw.fit.regions}
    assert {d.role for d in regions["ccm"].demands} == {"stack"}
    assert {"arena", "data"} <= {d.role for d in regions["sram"].demands}
    with pytest.raises(MemoryFitError) as exc:  # on QEMU the stack joins the arena in SRAM
        codegen.generate(model, board, tmp_path / "q", runtime="c", mode="protocol", target="qemu")
    assert "region 'sram' needs" in str(exc.value) and "does not fit board 'netduinoplus2'" in str(exc.value)
    assert not (tmp_path / "q").exists()  # refused before anything was written
    with pytest.raises(MemoryFitError, match="region 'sram' needs"):  # too big for the chip at all
        codegen.generate(
            _copy_model((1, 64, 64, 18)), board, tmp_path / "big", runtime="c", target="hardware"
        )


@pytest.mark.qemu
def test_hardware_project_sets_up_the_pll_and_builds_warning_free(digits_int8, tmp_path: Path) -> None:
    p = codegen.generate(digits_int8, get_board(BOARD), tmp_path / "p", runtime="c", target="hardware")
    platform = (p.path / "src" / "mcd_platform.c").read_text()
    assert "MCD_RCC_PLLCFGR = 25u | (336u << 6) | (0u << 16) | (1u << 22)" in platform
    assert "0x40023844u |= 1u << 4;" in platform  # RCC_APB2ENR.USART1EN before the USART is touched
    assert "#define MCD_UART_CLOCK_HZ 84000000u" in (p.path / "src" / "mcd_board.h").read_text()
    fw = build_mod.build(p.path)
    log = (fw.elf.parent / "mcudeploy-build.log").read_text()
    assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]
    assert fw.sections[".vectors"] > 0 and "08000000" in fw.map.read_text()  # vectors at the flash origin


def _run(model_path: Path, data: Path, project: Path, out: Path, limit: int) -> dict[str, Any]:
    from mcudeploy.cli import run as cli_run

    rc = cli_run(
        "run",
        "--board",
        BOARD,
        "--project",
        project,
        "--model",
        model_path,
        "--data",
        data,
        "--out",
        out,
        "--limit",
        limit,
        "--bench",
        2,
    )
    assert rc == 0, (out / "device.log").read_bytes()[-2000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.qemu
def test_digits_and_kws_run_on_netduinoplus2_byte_identical(
    digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    from mcudeploy.ml.model import read_tflite

    board = get_board(BOARD)
    kws_path, kws_data = _kws(tmp_path, 4)
    for name, path, data, limit in (
        ("digits", digits_int8_path, digits_test_npz, 12),
        ("kws", kws_path, kws_data, 3),
    ):
        model = read_tflite(path)
        proj = codegen.generate(model, board, tmp_path / name, runtime="c", mode="protocol")
        assert proj.target == "qemu"
        s = _run(path, data, proj.path, tmp_path / f"{name}-run", limit)
        assert s["measured"] == limit and s["failed"] == 0 and s["bit_exact_fraction"] == 1.0, name
        assert s["device"]["board"] == BOARD and s["device"]["sha256"] == model.sha256
        lat = s["latency"]
        assert lat["unit"] == "instructions" and 10_000 < lat["min"] <= lat["max"], (name, lat)
        log = (proj.path / "build" / "mcudeploy-build.log").read_text()
        assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]


def _kws(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """The DS-CNN keyword-spotting model (49x10 MFCC input) and ``n`` random inputs in its range."""
    from mcudeploy.ml.zoo import build_int8

    path = tmp_path / "ds_cnn_int8.tflite"
    path.write_bytes(build_int8("ds_cnn").data)
    rng = np.random.default_rng(0)
    data = tmp_path / "kws.npz"
    np.savez(data, x=rng.uniform(-1, 1, (n, 49, 10, 1)).astype(np.float32), y=rng.integers(0, 12, n))
    return path, data


@pytest.mark.qemu
@pytest.mark.tflm
def test_tflm_runs_digits_and_kws_on_netduinoplus2_byte_identical_within_the_fit_estimate(
    digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    """TFLite Micro (the tree's kernels, CMSIS-NN for the exported trees) on the STM32F405: byte-identical
    to host TFLM, its arena within the planned one, and the real image within the flash the fit
    check planned for it (an estimate below the real code would let a board that cannot hold the
    image pass the check)."""
    import os

    from mcudeploy.ml.model import read_tflite

    board = get_board(BOARD)
    tree = Path(os.environ["MCUDEPLOY_TFLM_ROOT"])
    kws_path, kws_data = _kws(tmp_path, 2)
    for name, path, data, limit in (
        ("digits", digits_int8_path, digits_test_npz, 4),
        ("kws", kws_path, kws_data, 2),
    ):
        model = read_tflite(path)
        proj = codegen.generate(model, board, tmp_path / name, runtime="tflm", mode="protocol")
        assert proj.target == "qemu"
        fw = build_mod.build(proj.path, tflm_root=tree, jobs=os.cpu_count())
        log = (fw.elf.parent / "mcudeploy-build.log").read_text()
        assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]
        flash = {r.region.name: r for r in proj.fit.regions}["flash"]
        image = fw.text_bytes + fw.sections.get(".data", 0) + fw.sections[".mcd_model"]
        assert image <= flash.used, (name, image, flash.used, fw.sections)
        s = _run(path, data, proj.path, tmp_path / f"{name}-run", limit)
        assert s["measured"] == limit and s["failed"] == 0 and s["bit_exact_fraction"] == 1.0, name
        assert s["device"]["runtime"] == "tflm" and s["device"]["sha256"] == model.sha256
        assert 0 < s["device"]["arena_used"] <= proj.manifest["arena_bytes"], (name, s["device"])
        assert s["latency"]["unit"] == "instructions" and s["latency"]["min"] > 10_000, (name, s["latency"])
