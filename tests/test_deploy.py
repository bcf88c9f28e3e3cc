"""``mcudeploy deploy`` end to end on the digits model: artifacts, manifest, report, incremental re-runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mcudeploy import cli
from mcudeploy._io import file_digest
from mcudeploy._lock import LOCK_NAME
from mcudeploy.deploy import DeployResult, deploy, load_config, parse_override, report_data
from mcudeploy.errors import ConfigError
from mcudeploy.pipeline import MANIFEST
from mcudeploy.report import render_html
from tests.tools import another_version_of

RUN_SAMPLES = 24
CONFIG = """
[model]
path = "{keras}"
[quantize]
data = "{train}"
samples = 100
[evaluate]
data = "{test}"
[vela]
board = "corstone-300"
[firmware]
board = "qemu-an547"
runtime = "c"
[run]
samples = {samples}
gates = {{ require_bit_exact = true }}
[report]
title = "deploy test"
"""
STAGES = ["model", "quantize", "evaluate", "vela", "generate-c", "build-c", "run-c", "report"]


def _config(tmp: Path, keras: Path, train: Path, test: Path) -> Path:
    p = tmp / "mcudeploy.toml"
    p.write_text(CONFIG.format(keras=keras, train=train, test=test, samples=RUN_SAMPLES))
    return p


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, digits_keras_path, digits_split, digits_test_npz) -> tuple[Path, DeployResult]:
    from mcudeploy.ml.digits import save_npz

    tmp = tmp_path_factory.mktemp("deploy")
    train = save_npz(tmp / "train.npz", digits_split.x_train, digits_split.y_train)
    cfg_path = _config(tmp, digits_keras_path, train, digits_test_npz)
    cfg = load_config(cfg_path, [("", "out", str(tmp / "out"))])
    return cfg_path, deploy(cfg)


def _copy_out(deployed: tuple[Path, DeployResult], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(deployed[1].out, out)
    return out


@pytest.mark.qemu
@pytest.mark.slow
def test_deploy_writes_every_artifact_with_its_hash_and_the_report(deployed) -> None:
    _, res = deployed
    assert [r.name for r in res.results] == STAGES
    assert not any(r.skipped for r in res.results)
    manifest = json.loads((res.out / MANIFEST).read_text())
    assert sorted(manifest["stages"]) == sorted(STAGES)
    for name in STAGES:
        entry = manifest["stages"][name]
        assert len(entry["inputs_sha256"]) == 64
        for art in entry["outputs"].values():
            p = res.out / art["path"]
            assert p.exists(), f"{name}: {p} missing"
            if p.is_file():
                assert file_digest(p) == art["sha256"]
    assert (res.out / "quantize" / "digits_int8.tflite").is_file()
    assert (res.out / "vela" / "digits_int8_vela.tflite").is_file()
    assert (res.out / "build-c" / "app.elf").read_bytes()[:4] == b"\x7fELF"
    # the device ran every requested sample, byte-identical to host TFLM
    run = res.summaries["run-c"]
    assert run["measured"] == RUN_SAMPLES and run["failed"] == 0
    assert run["bit_exact_fraction"] == 1.0 and run["max_lsb"] == 0
    assert run["device"]["runtime"] == "c" and run["device"]["timer"] == "icount-instructions"
    lines = (res.out / "run-c" / "results.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["kind"] == "sample" for line in lines) == RUN_SAMPLES
    assert res.failed_gates == []
    html = res.report_html.read_text()
    for fig in ("accuracy", "latency", "memory", "npu", "layers"):
        assert f"id='fig-{fig}'" in html
    prof = run["profile"]  # one sample timed per layer: the layers make up the invoke
    assert prof["layers"] and 0.99 <= prof["coverage"] <= 1.0
    assert (res.out / "run-c" / "profile.csv").is_file()
    md = res.report_md.read_text()
    n_eval = res.summaries["evaluate"]["samples"]
    assert f"| device c ({RUN_SAMPLES} of {n_eval}) |" in md and "100.00 % byte-identical" in md
    assert str(res.out) not in html and str(res.out) not in md  # no absolute paths in the report
    # the per-layer int8 error vs the float model: every weighted op of the digits CNN, worst first
    per_layer = res.summaries["evaluate"]["per_layer"]
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {e["op"] for e in per_layer}
    assert "Per-layer int8 error (worst first)" in md and "Per-layer int8 error" in html
    # the report is a pure function of the recorded stage summaries: no timestamps, no timings
    summaries = {name: entry["summary"] for name, entry in manifest["stages"].items()}
    cfg = load_config(deployed[0], [("", "out", str(res.out))])
    assert render_html(report_data(cfg, summaries)) == html


@pytest.mark.qemu
@pytest.mark.slow
def test_rerun_with_nothing_changed_does_no_work_and_says_so(deployed, capsys) -> None:
    cfg_path, res = deployed
    # every file but the folder's lock, which names the process holding it (mcudeploy._lock)
    before = {p: p.stat().st_mtime_ns for p in res.out.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    assert cli.run("deploy", "-c", cfg_path, "-o", res.out) == 0
    captured = capsys.readouterr()
    assert f"nothing to do: all {len(STAGES)} stages up to date" in captured.out
    assert captured.err.count("skipped (unchanged)") == len(STAGES)
    after = {p: p.stat().st_mtime_ns for p in res.out.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    assert after == before  # not a single file was rewritten


@pytest.mark.qemu
@pytest.mark.slow
def test_changed_run_option_reruns_only_run_and_report(deployed, tmp_path: Path, capsys) -> None:
    cfg_path, _ = deployed
    out = _copy_out(deployed, tmp_path)
    int8_before = file_digest(out / "quantize" / "digits_int8.tflite")
    assert cli.run("deploy", "-c", cfg_path, "-o", out, "--samples", 8) == 0
    err = capsys.readouterr().err
    ran = {name for name in STAGES if f"{name}: ran" in err}
    assert ran == {"run-c", "report"}
    summary = json.loads((out / "run-c" / "summary.json").read_text())
    assert summary["measured"] == 8
    assert file_digest(out / "quantize" / "digits_int8.tflite") == int8_before


@pytest.mark.qemu
@pytest.mark.slow
def test_changed_vela_target_leaves_the_c_firmware_alone(deployed, tmp_path: Path) -> None:
    cfg_path, _ = deployed
    out = _copy_out(deployed, tmp_path)
    res = deploy(load_config(cfg_path, [("", "out", str(out)), ("vela", "board", "corstone-310")]))
    ran = {r.name for r in res.results if not r.skipped}
    assert ran == {"vela", "report"}  # the C runtime never runs the Vela model


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "first"), [("arm-none-eabi-gcc", "build-c"), ("qemu-system-arm", "run-c")], ids=["gcc", "qemu"]
)
def test_another_compiler_or_simulator_redoes_its_stage(
    tool: str, first: str, deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another arm-none-eabi-gcc first on PATH rebuilds the firmware, another QEMU measures again; the
    stages before are reused, and the same tool twice is no change."""
    cfg_path, _ = deployed
    out = _copy_out(deployed, tmp_path)
    monkeypatch.setenv(
        "PATH", f"{another_version_of(tool, tmp_path / 'other')}{os.pathsep}{os.environ['PATH']}"
    )
    res = deploy(load_config(cfg_path, [("", "out", str(out))]))
    ran = [r.name for r in res.results if not r.skipped]
    assert ran and ran[0] == first, ran
    assert res.summaries["run-c"]["bit_exact_fraction"] == 1.0
    again = deploy(load_config(cfg_path, [("", "out", str(out))]))
    assert again.nothing_done


@pytest.mark.qemu
@pytest.mark.slow
def test_another_vela_recompiles_and_another_tflite_micro_regenerates(
    deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python tools cannot be swapped here, so their version strings are: each re-runs its stages only."""
    import mcudeploy.deploy as deploy_mod

    cfg_path, _ = deployed
    out = _copy_out(deployed, tmp_path)
    real, fake = deploy_mod.dist_version, {}
    monkeypatch.setattr(deploy_mod, "dist_version", lambda d: fake.get(d) or real(d))
    for dist, stages in (("ethos-u-vela", {"vela"}), ("tflite-micro", {"evaluate", "generate-c"})):
        fake[dist] = "0.0"
        res = deploy(load_config(cfg_path, [("", "out", str(out))]))
        ran = {r.name for r in res.results if not r.skipped}
        assert stages <= ran, dist
        assert not ran & ({"model", "quantize", "evaluate", "vela", "generate-c"} - stages), dist


@pytest.mark.qemu
@pytest.mark.slow
def test_failing_stage_names_itself_and_keeps_earlier_artifacts(deployed, tmp_path: Path, capsys) -> None:
    cfg_path, _ = deployed
    out = _copy_out(deployed, tmp_path)
    code = cli.run(
        "deploy", "-c", cfg_path, "-o", out, "--runtime", "tflm", "--tflm-root", tmp_path / "no-tflm"
    )
    err = capsys.readouterr().err
    assert code == 3  # a missing tool/tree keeps its exit code through the stage failure
    assert "stage 'build-tflm' failed" in err
    manifest = json.loads((out / MANIFEST).read_text())["stages"]
    assert "generate-tflm" in manifest and "build-tflm" not in manifest
    assert (out / "generate-tflm" / "project" / "mcudeploy.json").is_file()
    assert (out / "quantize" / "digits_int8.tflite").is_file()


@pytest.mark.qemu
@pytest.mark.slow
def test_failed_device_gate_exits_1_and_still_writes_the_report(deployed, tmp_path: Path, capsys) -> None:
    cfg_path, _ = deployed
    out = _copy_out(deployed, tmp_path)
    (out / "report" / "report.html").unlink()
    impossible = "run.gates={ min_accuracy = 1.01, require_bit_exact = true }"
    assert cli.run("deploy", "-c", cfg_path, "-o", out, "--set", impossible) == 1
    err = capsys.readouterr().err
    assert "gate failed" in err and "accuracy" in err
    assert "report" in json.loads((out / MANIFEST).read_text())["stages"]
    assert (out / "report" / "report.html").is_file()


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless Chromium: run `make setup`")
def test_deploy_report_screenshot_shows_the_plots(deployed, tmp_path: Path) -> None:
    from PIL import Image

    from mcudeploy.browser import screenshot
    from mcudeploy.report import write_report

    _, res = deployed
    shot = screenshot(res.report_html, tmp_path / "report.png", height=3200)
    bare_html, _ = write_report({"title": "bare"}, tmp_path / "bare")
    bare = screenshot(bare_html, tmp_path / "bare.png", height=3200)

    def count(png: Path, rgb: tuple[int, int, int]) -> int:
        px = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
        return int((np.abs(px - np.array(rgb, dtype=np.int16)) <= 6).all(axis=-1).sum())

    blue, green, purple = (0x4C, 0x72, 0xB0), (0x55, 0xA8, 0x68), (0x81, 0x72, 0xB2)
    # accuracy bars + latency histogram (blue), accuracy + NPU cycles (green), device rung + memory (purple)
    assert count(shot, blue) > 5000 and count(shot, green) > 5000 and count(shot, purple) > 2000
    assert count(bare, blue) == count(bare, green) == count(bare, purple) == 0


def test_unknown_keys_and_bad_values_name_the_key(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[run]\nsampels = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'run\.sampels'"):
        load_config(p)
    p.write_text("[firmwear]\nboard = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown section \[firmwear\]"):
        load_config(p)
    p.write_text("[run]\nsamples = 'many'\n")
    with pytest.raises(ConfigError, match=r"run\.samples: expected integer"):
        load_config(p)
    p.write_text("[run]\ngates = { bit_exact = true }\n")
    with pytest.raises(ConfigError, match=r"run\.gates\.bit_exact"):
        load_config(p)
    p.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        load_config(p)


def test_flags_override_the_file_and_paths_resolve_against_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.toml"
    p.write_text("out = 'o'\n[run]\nsamples = 5\n[firmware]\nboard = 'qemu-an547'\n")
    cfg = load_config(p)
    assert cfg["run"]["samples"] == 5
    assert Path(cfg[""]["out"]) == (tmp_path / "sub" / "o").resolve()
    cfg = load_config(p, [parse_override("run.samples=7"), parse_override("report.title=hello world")])
    assert cfg["run"]["samples"] == 7 and cfg["report"]["title"] == "hello world"
    assert cfg["model"]["path"] == "builtin:digits" and cfg["optimize"]["enabled"] is False
    with pytest.raises(ConfigError, match=r"run\.board 'corstone-300' differs"):
        load_config(p, [("run", "board", "corstone-300")])
    with pytest.raises(ConfigError, match=r"evaluate\.data is required"):
        load_config(p, [("model", "path", str(tmp_path / "m.keras"))])


def test_example_config_is_valid() -> None:
    cfg = load_config(Path(__file__).parents[1] / "examples" / "mcudeploy.toml")
    assert cfg["model"]["path"] == "builtin:digits"
    assert cfg["vela"]["board"] == "corstone-300" and cfg["firmware"]["board"] == "qemu-an547"


def test_cli_reports_a_bad_config_with_exit_2_and_the_section_name(tmp_path: Path, capsys) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[firmwear]\nboard = 'x'\n")
    assert cli.run("deploy", "-c", p) == 2
    assert "unknown section [firmwear]" in capsys.readouterr().err  # not eaten as rich markup


@pytest.mark.qemu  # builds with arm-none-eabi-gcc
@pytest.mark.slow
def test_npu_board_gets_the_vela_model_for_tflm_and_the_int8_model_for_c(
    digits_int8_path, digits_int8, digits_test_npz, tmp_path: Path
) -> None:
    from mcudeploy.pipeline import StageFailed

    overrides = [
        ("", "out", str(tmp_path / "out")),
        ("model", "path", str(digits_int8_path)),
        ("evaluate", "data", str(digits_test_npz)),
        ("evaluate", "limit", 32),
        ("vela", "board", "corstone-300"),
        ("firmware", "board", "corstone-300"),
        ("firmware", "runtime", ["c", "tflm"]),
        ("firmware", "tflm_root", str(tmp_path / "no-tflm")),
        ("run", "enabled", False),
    ]
    with pytest.raises(StageFailed, match="stage 'build-tflm' failed"):
        deploy(load_config(None, overrides))
    stages = json.loads((tmp_path / "out" / MANIFEST).read_text())["stages"]
    vela = stages["vela"]["outputs"]["vela"]
    assert stages["generate-c"]["summary"]["model_sha256"] == digits_int8.sha256  # C runtime: CPU only
    assert stages["generate-tflm"]["summary"]["model_sha256"] == vela["sha256"]  # TFLM: the NPU model
    assert "quantize" not in stages  # an int8 .tflite skips quantization
