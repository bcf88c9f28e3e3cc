"""Stage ``vela``: real Vela runs on small int8 models; numbers checked against Vela's own files."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcudeploy.boards import get_board, list_boards, vela_ini_path
from mcudeploy.cli import run as cli_run
from mcudeploy.errors import BudgetError, CompileError, ConfigError, MemoryFitError, NotFullyInt8Error
from mcudeploy.ml import vela
from mcudeploy.ml.model import Model, parse_tflite
from mcudeploy.ml.vela_report import NO_REASON, number

SHIPPED_INI = Path(__file__).resolve().parents[1] / "boards" / "vela" / "mcudeploy_vela.ini"


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def side_models() -> dict[str, Model]:
    """A tiny int8 CNN with a DEPTH_TO_SPACE (no Ethos-U55 support) and a float twin (~5 s)."""
    from mcudeploy.ml._tf import tensorflow
    from mcudeploy.ml.quantize import convert_int8

    tf = tensorflow()
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((8, 8, 4), batch_size=1)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = tf.keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)
    x = tf.keras.layers.Conv2D(4, 1)(x)
    keras_model = tf.keras.Model(inp, x)
    rep = np.random.default_rng(0).normal(size=(16, 8, 8, 4)).astype(np.float32)
    d2s = convert_int8(keras_model, rep, source="d2s_int8.tflite")
    float_bytes = tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
    return {"d2s": d2s, "float": parse_tflite(float_bytes, source="d2s_float.tflite")}


@pytest.fixture(scope="module")
def corstone300():
    return get_board("corstone-300")


@pytest.fixture(scope="module")
def digits_compiled(digits_int8, corstone300, tmp_path_factory):
    out = tmp_path_factory.mktemp("vela_digits")
    return vela.compile_for_npu(digits_int8, board=corstone300, out_dir=out)


@pytest.fixture(scope="module")
def d2s_compiled(side_models):
    return vela.compile_for_npu(side_models["d2s"], accelerator="ethos-u55-64")


def _direct_vela(model_path: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Vela's own command line, exactly as a user would run it."""
    cmd = [
        sys.executable,
        "-m",
        "ethosu.vela",
        str(model_path),
        "--verbose-performance",
        "--output-dir",
        str(out),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=out.parent)


# -- the numbers equal Vela's -------------------------------------------------------------
def test_report_numbers_equal_direct_vela_summary_csv(digits_compiled, digits_int8, tmp_path):
    src = tmp_path / digits_int8.source
    src.write_bytes(digits_int8.data)
    _direct_vela(
        src,
        tmp_path / "direct",
        "--accelerator-config",
        "ethos-u55-128",
        "--config",
        str(SHIPPED_INI),
        "--system-config",
        "Ethos_U55_High_End_Embedded",
        "--memory-mode",
        "Shared_Sram",
    )
    stem = src.stem
    row = next(
        csv.DictReader((tmp_path / "direct" / f"{stem}_summary_Ethos_U55_High_End_Embedded.csv").open())
    )
    # Compare what a user reads: the JSON file written by compile, not the in-memory object.
    report = json.loads((digits_compiled.path.parent / f"{stem}_vela_report.json").read_text())

    assert report["accelerator"] == "ethos-u55-128" and row["accelerator_configuration"] == "Ethos_U55_128"
    assert report["npu_cycles"] == int(row["cycles_npu"])
    assert report["total_cycles"] == int(row["cycles_total"])
    assert report["inference_time_s"] == float(row["inference_time"])
    assert report["inferences_per_s"] == float(row["inferences_per_second"])
    assert report["core_clock_hz"] == float(row["core_clock"])
    assert report["original_weights_bytes"] == int(row["total_original_weights"])
    assert report["encoded_weights_bytes"] == int(row["total_npu_encoded_weights"])
    assert report["nn_macs"] == int(row["nn_macs"])
    assert report["npu_passes"] == int(row["passes_before_fusing"])
    assert report["arena_cache_size"] / 1024 == float(row["arena_cache_size"])
    for ours, theirs in [
        ("sram_bytes", "sram_memory_used"),
        ("dram_bytes", "dram_memory_used"),
        ("offchip_flash_bytes", "off_chip_flash_memory_used"),
        ("onchip_flash_bytes", "on_chip_flash_memory_used"),
    ]:
        assert report[ours] / 1024 == float(row[theirs]), ours  # Vela writes KiB
    assert report["sram_bytes"] > 0 and report["offchip_flash_bytes"] > 0
    assert report["vela_summary"] == {k: number(v) for k, v in row.items()}
    # Same compiled bytes as Vela's own run: nothing we pass changes the compilation.
    direct = (tmp_path / "direct" / f"{stem}_vela.tflite").read_bytes()
    assert direct == digits_compiled.model.data == digits_compiled.path.read_bytes()
    assert report["vela_model_sha256"] == digits_compiled.model.sha256


def test_per_layer_rows_add_up_to_the_summary(digits_compiled, digits_int8):
    r = digits_compiled.report
    assert r.per_layer, "Vela's --verbose-performance per-layer CSV was not read"
    assert sum(row["cycles"] for row in r.per_layer) == r.total_cycles
    assert sum(row["npu_cycles"] for row in r.per_layer) == r.npu_cycles
    assert sum(row["macs"] for row in r.per_layer) == r.nn_macs
    assert max(row["sram_bytes"] for row in r.per_layer) <= r.sram_bytes
    assert {row["target"] for row in r.per_layer} == {"NPU"}
    # The digits CNN is all NPU: every input op placed, none left for the CPU.
    assert r.cpu_ops == [] and r.npu_ops == len(digits_int8.operators)
    assert digits_compiled.model.op_names() == ["ethos-u"]


def test_compile_is_deterministic(digits_int8, corstone300, digits_compiled):
    again = vela.compile_for_npu(digits_int8, board=corstone300)
    assert again.model.data == digits_compiled.model.data
    assert vela.report_json(again.report) == vela.report_json(digits_compiled.report)
    assert "/" not in json.dumps(again.report.to_dict()["model"])  # no absolute paths leak in


# -- CPU fallback -------------------------------------------------------------------------
def test_cpu_fallback_op_is_listed_with_vela_reason(d2s_compiled, side_models, tmp_path):
    r = d2s_compiled.report
    assert [op for op, _ in r.cpu_ops] == ["DEPTH_TO_SPACE"]
    (cpu,) = r.cpu_ops
    assert cpu.reason and cpu.reason != NO_REASON
    # The op really stays a TFLite op in the compiled model, next to the NPU custom op.
    assert d2s_compiled.model.operators[cpu.index].opcode == "DEPTH_TO_SPACE"
    assert "ethos-u" in d2s_compiled.model.op_names()
    assert r.npu_ops == len(side_models["d2s"].operators) - 1
    assert {row["target"] for row in r.per_layer} == {"NPU", "CPU"}
    # The reason is Vela's own words for this op, as its direct run prints them.
    src = tmp_path / "d2s_int8.tflite"
    src.write_bytes(side_models["d2s"].data)
    proc = _direct_vela(src, tmp_path / "direct", "--accelerator-config", "ethos-u55-64")
    assert f"operator: DEPTH_TO_SPACE, ofm: '{cpu.tensor}'" in proc.stdout
    assert f"Reason: {cpu.reason}" in proc.stdout


# -- gates ---------------------------------------------------------------------------------
def test_non_int8_model_is_refused_before_vela(side_models):
    # The gate runs before anything else: even an impossible accelerator is not reached.
    with pytest.raises(NotFullyInt8Error) as e:
        vela.compile_for_npu(side_models["float"], accelerator="ethos-u99-1")
    assert "d2s_float.tflite" in str(e.value) and "float32" in str(e.value)


def test_max_cpu_ops_gate(d2s_compiled):
    vela.check_budgets(d2s_compiled.report, max_cpu_ops=1)
    with pytest.raises(BudgetError, match=r"--max-cpu-ops 0 \(DEPTH_TO_SPACE"):
        vela.check_budgets(d2s_compiled.report, max_cpu_ops=0)


def test_sram_and_flash_budget_gates(digits_compiled):
    r = digits_compiled.report
    vela.check_budgets(r, sram_budget=r.sram_bytes, flash_budget=r.flash_bytes)
    with pytest.raises(BudgetError, match="SRAM") as e:
        vela.check_budgets(r, sram_budget=r.sram_bytes - 1)
    assert "flash" not in str(e.value)
    with pytest.raises(BudgetError, match="flash"):
        vela.check_budgets(r, flash_budget=r.flash_bytes - 1)


def test_memory_fit_against_board_regions(digits_compiled, corstone300, tmp_path):
    needs = vela.memory_needs(digits_compiled, corstone300)
    # Shared_Sram: Vela's SRAM is the arena (placement arena = sram), the model lives in ddr.
    assert needs == {"sram": digits_compiled.report.sram_bytes, "ddr": digits_compiled.model.size}
    vela.check_memory_fit(digits_compiled, corstone300)
    assert vela_ini_path(corstone300) is not None and vela_ini_path(corstone300).is_file()
    small = tmp_path / "tiny-npu.toml"
    small.write_text(
        'name = "tiny-npu"\ncpu = "cortex-m55"\ncpu_clock_hz = 100_000_000\n'
        '[npu]\ntype = "ethos-u55"\nmacs = 128\nbase = 0x40000000\nirq = 10\n'
        'vela = { system_config = "Ethos_U55_High_End_Embedded", memory_mode = "Shared_Sram", '
        'ini = "mcudeploy_vela.ini" }\n'
        '[memory]\nflash = { origin = 0x0, length = "1M", kind = "rom" }\n'
        'sram = { origin = 0x20000000, length = "1K" }\n'
        '[placement]\ncode = "flash"\nmodel = "flash"\narena = "sram"\n[uart]\nkind = "semihosting"\n'
    )
    tiny = get_board(small)
    compiled = vela.compile_for_npu(digits_compiled.source, board=tiny)
    with pytest.raises(MemoryFitError, match=r"region 'sram' needs \d+ B but has 1024 B") as e:
        vela.check_memory_fit(compiled, tiny)
    assert "tiny-npu" in str(e.value) and "flash" not in str(e.value).split("fit board")[1]


def test_memory_needs_dedicated_sram_mode(digits_int8, tmp_path):
    """Ethos-U65 Dedicated_Sram: Vela's DRAM is the arena, its SRAM the NPU cache region."""
    board_file = tmp_path / "u65.toml"
    board_file.write_text(
        'name = "u65"\ncpu = "cortex-m55"\ncpu_clock_hz = 100_000_000\n'
        '[npu]\ntype = "ethos-u65"\nmacs = 256\nbase = 0x40000000\nirq = 10\n'
        'vela = { system_config = "Ethos_U65_High_End", memory_mode = "Dedicated_Sram_384KB", '
        'ini = "mcudeploy_vela.ini" }\n'
        '[memory]\nsram = { origin = 0x20000000, length = "384K" }\n'
        'ddr = { origin = 0x60000000, length = "16M" }\n'
        '[placement]\ncode = "ddr"\nmodel = "ddr"\narena = "ddr"\nnpu_cache = "sram"\n'
        '[uart]\nkind = "semihosting"\n'
    )
    board = get_board(board_file)
    compiled = vela.compile_for_npu(digits_int8, board=board)
    r = compiled.report
    assert (r.accelerator, r.memory_mode) == ("ethos-u65-256", "Dedicated_Sram_384KB")
    assert r.dram_bytes > 0 and r.sram_bytes > 0
    assert vela.memory_needs(compiled, board) == {
        "sram": r.sram_bytes,
        "ddr": r.dram_bytes + compiled.model.size,
    }
    vela.check_memory_fit(compiled, board)


def test_cli_accelerator_list_matches_the_api():
    from mcudeploy.cli import compile as compile_cli

    assert compile_cli._ACCELERATORS == vela.ACCELERATORS


# -- the MAC-config guard -----------------------------------------------------------------
def test_mac_config_guard(digits_compiled, digits_int8, corstone300):
    vela.check_mac_config(digits_compiled, corstone300)
    vela.check_mac_config("ethos-u55-128", corstone300)
    with pytest.raises(ConfigError, match=r"ethos-u55-256 does not match .*ethosu.num_macs=128"):
        vela.check_mac_config("ethos-u55-256", corstone300)
    with pytest.raises(ConfigError, match="ethos-u65-256"):
        vela.check_mac_config(
            dataclasses.replace(digits_compiled.report, accelerator="ethos-u65-256"), corstone300
        )
    with pytest.raises(ConfigError, match="no Ethos-U NPU"):
        vela.check_mac_config(digits_compiled, get_board("qemu-an547"))
    # compile refuses a mismatched pair before running Vela
    with pytest.raises(ConfigError, match="does not match"):
        vela.compile_for_npu(digits_int8, board=corstone300, accelerator="ethos-u55-64")


# -- Vela configuration and failures -------------------------------------------------------
def test_shipped_ini_configs_are_accepted_by_vela():
    import configparser

    cp = configparser.ConfigParser()
    cp.read(SHIPPED_INI)
    systems = [s.split(".", 1)[1] for s in cp.sections() if s.startswith("System_Config.")]
    modes = [s.split(".", 1)[1] for s in cp.sections() if s.startswith("Memory_Mode.")]
    assert {"Ethos_U55_High_End_Embedded", "Corstone_310_U55", "Alif_E7_HP_U55", "Himax_WE2_U55"} <= set(
        systems
    )
    for system in systems:
        accel = "ethos-u65-256" if "U65" in system else "ethos-u55-128"
        for mode in modes:
            if mode.startswith("Dedicated") and cp[f"System_Config.{system}"]["axi1_port"] != "Dram":
                # Vela itself refuses an arena in flash: check we pass its words on
                with pytest.raises(ConfigError, match="arena_mem_area=OffChipFlash"):
                    vela.resolve_config(
                        accelerator=accel, config_ini=SHIPPED_INI, system_config=system, memory_mode=mode
                    )
                continue
            cfg = vela.resolve_config(
                accelerator=accel, config_ini=SHIPPED_INI, system_config=system, memory_mode=mode
            )
            assert cfg.core_clock_hz == float(cp[f"System_Config.{system}"]["core_clock"])
    for board in list_boards():  # every shipped NPU board names configs that exist
        if board.npu is not None:
            assert vela.resolve_config(board=board).accelerator == board.npu.accelerator


def test_board_clock_sets_inference_time(side_models):
    """Inference time is at the system config's NPU clock: the Himax-like 400 MHz vs Corstone 500 MHz."""
    model = side_models["d2s"]
    fast = vela.compile_for_npu(
        model,
        accelerator="ethos-u55-64",
        config_ini=SHIPPED_INI,
        system_config="Himax_WE2_U55",
        memory_mode="Shared_Sram",
    ).report
    assert fast.core_clock_hz == 400e6
    assert fast.inference_time_s == pytest.approx(fast.total_cycles / 400e6, rel=1e-4)


@pytest.mark.parametrize(
    ("ini_text", "kwargs", "match"),
    [
        ("not an ini file\n", {}, "malformed"),
        (SHIPPED_INI.read_text(), {"system_config": "No_Such_System"}, "System_Config.No_Such_System"),
        (SHIPPED_INI.read_text(), {"memory_mode": "No_Such_Mode"}, "Memory_Mode.No_Such_Mode"),
    ],
    ids=["bad-ini", "unknown-system-config", "unknown-memory-mode"],
)
def test_bad_vela_configuration_is_a_clear_error(tmp_path, digits_int8, corstone300, ini_text, kwargs, match):
    ini = tmp_path / "mine.ini"
    ini.write_text(ini_text)
    with pytest.raises(ConfigError, match=match) as e:
        vela.compile_for_npu(digits_int8, board=corstone300, config_ini=ini, **kwargs)
    assert "mine.ini" in str(e.value)


def test_missing_or_misnamed_user_ini(tmp_path):
    with pytest.raises(ConfigError, match="no such Vela configuration file"):
        vela.resolve_config(accelerator="ethos-u55-128", config_ini=tmp_path / "absent.ini")
    txt = tmp_path / "mine.txt"
    txt.write_text(SHIPPED_INI.read_text())
    with pytest.raises(ConfigError, match=r"must end in \.ini"):
        vela.resolve_config(accelerator="ethos-u55-128", config_ini=txt)
    with pytest.raises(ConfigError, match="unknown accelerator"):
        vela.resolve_config(accelerator="ethos-u55-100")


def test_vela_failure_surfaces_as_compile_error(digits_int8):
    cfg = vela.resolve_config(accelerator="ethos-u55-128")
    broken = dataclasses.replace(digits_int8, data=digits_int8.data[: len(digits_int8.data) // 3])
    with pytest.raises(CompileError, match=r"digits_int8.tflite: Vela failed for ethos-u55-128: \S"):
        vela.run_vela(broken, cfg)


# -- sweep ---------------------------------------------------------------------------------
def test_sweep_every_mac_config_and_mode(digits_int8, digits_compiled, tmp_path):
    reports = vela.sweep(digits_int8)
    pairs = [(r.accelerator, r.optimise) for r in reports]
    assert pairs == [(a, o) for a in vela.ACCELERATORS for o in vela.OPTIMISE_MODES]
    one = next(r for r in reports if (r.accelerator, r.optimise) == ("ethos-u55-128", "Performance"))
    assert vela.report_json(one) == vela.report_json(digits_compiled.report)  # same as a single compile
    u55 = [
        r.npu_cycles for r in reports if r.accelerator.startswith("ethos-u55") and r.optimise == "Performance"
    ]
    assert u55 == sorted(u55, reverse=True) and u55[0] > u55[-1]  # more MACs, fewer NPU cycles
    text = vela.sweep_csv(reports)
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == len(reports)
    assert [int(r["npu_cycles"]) for r in rows] == [r.npu_cycles for r in reports]
    assert [int(r["sram_bytes"]) for r in rows] == [r.sram_bytes for r in reports]


# -- CLI -----------------------------------------------------------------------------------
def test_cli_compile_json_and_files(digits_int8_path, digits_compiled, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_run("compile", digits_int8_path, "--board", "corstone-300", "-o", out, "--json", "-") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(vela.report_json(digits_compiled.report))
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "digits_int8_per-layer.csv",
        "digits_int8_summary_Ethos_U55_High_End_Embedded.csv",
        "digits_int8_vela.tflite",
        "digits_int8_vela_report.json",
    ]


def test_cli_arena_cache_size_and_optimise(digits_int8_path, tmp_path, capsys):
    args = ("compile", digits_int8_path, "-a", "ethos-u55-128", "-o", tmp_path, "--json", "-")
    assert cli_run(*args, "--optimise", "size", "--arena-cache-size", "2K") == 0
    small = json.loads(capsys.readouterr().out)
    assert small["optimise"] == "Size" and small["arena_cache_size"] == 2048
    assert small["vela_summary"]["arena_cache_size"] * 1024 == 2048  # Vela writes KiB
    assert cli_run(*args) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["optimise"] == "Performance" and default["arena_cache_size"] > 2048
    assert cli_run(*args, "--arena-cache-size", "lots") == 2


def test_cli_exit_codes(side_models, digits_int8_path, tmp_path, capsys):
    d2s = tmp_path / "d2s_int8.tflite"
    d2s.write_bytes(side_models["d2s"].data)
    flt = tmp_path / "d2s_float.tflite"
    flt.write_bytes(side_models["float"].data)
    assert cli_run("compile", d2s, "-a", "ethos-u55-64", "-o", tmp_path) == 0
    assert "Unsupported opType" in capsys.readouterr().out  # the CPU-fallback table
    assert cli_run("compile", d2s, "-a", "ethos-u55-64", "-o", tmp_path, "--max-cpu-ops", "0") == 1
    assert "--max-cpu-ops 0" in capsys.readouterr().err
    assert cli_run("compile", d2s, "-a", "ethos-u55-64", "-o", tmp_path, "--sram-budget", "1K") == 1
    assert "--sram-budget 1024 B" in capsys.readouterr().err
    assert cli_run("compile", d2s, "-a", "ethos-u55-64", "-o", tmp_path, "--flash-budget", "16") == 1
    assert cli_run("compile", flt, "-a", "ethos-u55-64", "-o", tmp_path) == 1  # fully-int8 gate
    assert "not fully int8" in capsys.readouterr().err
    assert (
        cli_run("compile", digits_int8_path, "--board", "corstone-300", "-a", "ethos-u55-32", "-o", tmp_path)
        == 2
    )
    assert "does not match" in capsys.readouterr().err
    assert (
        cli_run(
            "compile", digits_int8_path, "--board", "corstone-300", "--system-config", "Nope", "-o", tmp_path
        )
        == 2
    )
    assert "System_Config.Nope" in capsys.readouterr().err
    assert cli_run("compile", digits_int8_path, "-o", tmp_path) == 2  # neither board nor accelerator


def test_cli_cycle_names_and_npu_only_caveat(side_models, digits_int8_path, tmp_path, capsys, monkeypatch):
    """Both cycle counts are named as everywhere else; times are flagged NPU-only when ops fall back."""
    from mcudeploy.ml.vela_report import CYCLES_LEGEND

    monkeypatch.delenv("COLUMNS", raising=False)
    d2s = tmp_path / "d2s_int8.tflite"
    d2s.write_bytes(side_models["d2s"].data)
    assert cli_run("compile", d2s, "-a", "ethos-u55-64", "-o", tmp_path, "--layers") == 0
    out = capsys.readouterr().out
    assert "NPU cycles (compute only)" in out and "total cycles (with memory traffic)" in out
    assert "inference time (NPU part only)" in out and "inferences/s (NPU part only)" in out
    assert "1 of 3 operators run on the CPU" in out and CYCLES_LEGEND in out
    assert "…" not in out  # stdout is a pipe here: no table is cut to 80 columns
    assert cli_run("compile", digits_int8_path, "-a", "ethos-u55-64", "-o", tmp_path) == 0
    out = capsys.readouterr().out
    assert "NPU part only" not in out and "run on the CPU" not in out
    assert "inference time " in out and CYCLES_LEGEND in out


def test_cli_sweep_writes_csv(digits_int8_path, tmp_path, capsys):
    path = tmp_path / "sweep.csv"
    assert cli_run("compile", digits_int8_path, "--board", "corstone-300", "--sweep", "--csv", path) == 0
    rows = list(csv.DictReader(path.read_text().splitlines()))
    # with a board: its NPU family's MAC configs, both modes, its system config
    assert [(r["accelerator"], r["optimise"]) for r in rows] == [
        (f"ethos-u55-{m}", o) for m in (32, 64, 128, 256) for o in ("Performance", "Size")
    ]
    assert {r["system_config"] for r in rows} == {"Ethos_U55_High_End_Embedded"}
    assert "u55-256" in capsys.readouterr().out
