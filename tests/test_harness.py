"""Harness: HELLO checks, resume, result files and gates; the digits model end to end on QEMU."""

from __future__ import annotations

import csv
import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mcudeploy import protocol as P
from mcudeploy.device import results as R
from mcudeploy.device.harness import (
    DeviceLink,
    Expectation,
    ResultsLog,
    check_hello,
    quantize_inputs,
    run_samples,
)
from mcudeploy.device.protocol_host import HostDevice, build_host_device, toy_layer, toy_meta
from mcudeploy.device.targets.transport import Transport
from mcudeploy.errors import DeviceMismatchError, InputError

IN, OUT = 16, 10
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc: apt-get install gcc")


def hello(**kw) -> P.Hello:
    base = dict(
        proto=P.PROTOCOL_VERSION,
        sha256="ab" * 32,
        runtime="c",
        board="b",
        clock_hz=32_000_000,
        arena_used=1,
        input_bytes=IN,
        output_bytes=OUT,
        timer="dwt-cycles",
        io="in=x;out=y",
    )
    return P.Hello(**{**base, **kw})


def test_check_hello_refuses_another_model_protocol_or_layout() -> None:
    exp = Expectation("ab" * 32, IN, OUT, "in=x;out=y", "c")
    check_hello(hello(), exp)
    check_hello(hello(sha256="ab" * 8), exp)  # a 16-digit prefix is enough
    for bad, match in [
        (dict(sha256="cd" * 32), "runs model"),
        (dict(proto=1), "protocol v1"),  # firmware built before PROFILE existed
        (dict(output_bytes=11), "output bytes"),
        (dict(io="in=z;out=y"), "reports I/O"),
        (dict(runtime="tflm"), "runtime"),
        (dict(sha256="ab" * 4), "runs model"),
    ]:
        with pytest.raises(DeviceMismatchError, match=match):
            check_hello(hello(**bad), exp)


def test_summary_statistics_gates_and_writers(tmp_path: Path) -> None:
    cycles = np.random.default_rng(0).integers(1000, 5000, 40)
    recs = {
        i: {
            "kind": "sample",
            "index": i,
            "status": "ok",
            "label": i % 3,
            "pred": i % 3 if i else 1,
            "bit_exact": i != 5,
            "cycles": int(c),
            "npu_cycles": 0,
            "output": "00",
        }
        for i, c in enumerate(cycles)
    }
    recs[7] = {"kind": "sample", "index": 7, "status": "failed", "reason": "no reply"}
    h = {"kind": "hello", **hello().to_dict()}
    s = R.summarize(
        recs,
        n_samples=41,
        hello=h,
        golden_accuracy=1.0,
        gates=R.Gates(min_accuracy=0.9, latency_budget_ms=0.1),
    )
    ok_cycles = [int(c) for i, c in enumerate(cycles) if i != 7]
    assert s["measured"] == 39 and s["failed"] == 1 and s["not_run"] == 1
    assert s["accuracy"] == pytest.approx(38 / 39) and s["bit_exact_fraction"] == pytest.approx(38 / 39)
    assert s["bit_mismatches"] == [5]
    lat = s["latency"]
    assert lat["unit"] == "cycles" and lat["min"] == min(ok_cycles) and lat["max"] == max(ok_cycles)
    assert lat["median"] == np.median(ok_cycles) and lat["ms"]["max"] == pytest.approx(max(ok_cycles) / 32e3)
    verdict = {g["name"]: g["passed"] for g in s["gates"]}
    assert verdict == {
        "accuracy": True,
        "accuracy_matches_host_tflm": False,
        "bit_exact": False,
        "latency_ms": False,
        "complete": False,
    }
    assert not s["passed"]
    files = R.write_results(tmp_path, s, recs)
    assert json.loads(files["json"].read_text())["measured"] == 39
    rows = list(csv.DictReader(io.StringIO(files["csv"].read_text())))
    assert len(rows) == 40 and rows[7]["reason"] == "no reply"
    suite = ET.parse(files["junit"]).getroot()[0]
    assert suite.get("tests") == "5" and suite.get("failures") == "4"
    # deterministic: the same inputs give the same bytes
    again = R.write_results(tmp_path / "again", s, recs)
    assert all(again[k].read_bytes() == files[k].read_bytes() for k in files)


def test_icount_latency_is_reported_as_instructions_without_ms() -> None:
    s = R.latency_stats([10, 20, 30], "icount-instructions", 32_000_000)
    assert s["unit"] == "instructions" and "ms" not in s and s["median"] == 20


def test_quantize_inputs_uses_the_input_scale(digits_int8) -> None:
    t = digits_int8.inputs[0]
    x = np.linspace(0, 1, 2 * int(np.prod(t.shape[1:]))).reshape(2, *t.shape[1:]).astype(np.float32)
    q = quantize_inputs(digits_int8, x)
    want = np.clip(np.round(x / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127).astype(np.int8)
    assert q.dtype == np.int8 and np.array_equal(q, want)
    assert quantize_inputs(digits_int8, q) is not None and np.array_equal(quantize_inputs(digits_int8, q), q)


@needs_gcc
def test_interrupted_run_resumes_and_refuses_another_models_file(tmp_path: Path) -> None:
    exe = build_host_device(tmp_path / "dev", toy_meta(IN, OUT))
    exp = Expectation(toy_meta(IN, OUT)["MCD_MODEL_SHA256"].strip('"'), IN, OUT)
    x = np.random.default_rng(1).integers(-128, 128, (60, IN)).astype(np.int8)
    golden = toy_layer(x, OUT)
    path = tmp_path / "run" / "results.jsonl"
    with HostDevice(exe) as dev, Transport(dev.url) as tr:
        link = DeviceLink(tr)
        run_samples(
            link,
            x[:25],
            exp=exp,
            results=ResultsLog.open(path, resume=False, sha256=exp.sha256),
            golden=golden,
        )
        with open(path, "a") as f:
            f.write('{"kind":"sample","index":25,"sta')  # killed mid-line
        res = ResultsLog.open(path, resume=True, sha256=exp.sha256)
        assert res.done() == set(range(25))
        sent_before = link.stats.requests
        run_samples(link, x, exp=exp, results=res, golden=golden)
        assert link.stats.requests - sent_before == 35 + 1  # only the missing samples (+ one GET_HELLO)
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    samples = [r for r in lines if r["kind"] == "sample"]
    assert [r["index"] for r in samples] == list(range(60))
    assert all(r["bit_exact"] for r in samples)
    with pytest.raises(InputError, match="holds results for model"):
        ResultsLog.open(path, resume=True, sha256="ff" * 32)


@needs_gcc
def test_device_with_another_model_is_refused(tmp_path: Path) -> None:
    exe = build_host_device(tmp_path / "dev", toy_meta(IN, OUT))
    with HostDevice(exe) as dev, Transport(dev.url) as tr:
        link = DeviceLink(tr)
        res = ResultsLog.open(tmp_path / "r.jsonl", resume=False, sha256="ee" * 32)
        with pytest.raises(DeviceMismatchError, match="runs model"):
            run_samples(link, np.zeros((3, IN), np.int8), exp=Expectation("ee" * 32, IN, OUT), results=res)
    assert "sample" not in (tmp_path / "r.jsonl").read_text()  # nothing measured


# -- end to end on QEMU: generate (C runtime, protocol mode) -> build -> mcudeploy run ------------
@pytest.fixture(scope="module")
def qemu_project(digits_int8_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mcudeploy.boards import get_board
    from mcudeploy.firmware.codegen import generate
    from mcudeploy.ml.model import read_tflite

    out = tmp_path_factory.mktemp("qemu") / "proj"
    generate(
        read_tflite(digits_int8_path),
        get_board("qemu-an547"),
        out,
        runtime="c",
        mode="protocol",
        target="qemu",
    )
    return out


@pytest.mark.qemu
def test_run_cli_digits_on_qemu_whole_test_split(
    qemu_project: Path,
    digits_int8_path: Path,
    digits_int8,
    digits_test_npz: Path,
    digits_split,
    tmp_path: Path,
) -> None:
    from mcudeploy.cli import run as cli_run
    from mcudeploy.ml.tflm_host import run_tflm

    out = tmp_path / "results"
    run = ("run", "--board", "qemu-an547", "--project", qemu_project, "--model", digits_int8_path)
    rc = cli_run(*run, "--data", digits_test_npz, "--out", out, "--bench", 5)
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    n = len(digits_split.y_test)
    golden = run_tflm(digits_int8, quantize_inputs(digits_int8, digits_split.x_test))
    host_acc = float((golden.reshape(n, -1).argmax(1) == digits_split.y_test).mean())
    assert n == 359 and s["measured"] == n and s["failed"] == 0
    assert s["accuracy"] == host_acc == s["golden_accuracy"]
    assert s["bit_exact_fraction"] == 1.0
    assert s["device"]["runtime"] == "c" and s["device"]["sha256"] == digits_int8.sha256
    lat = s["latency"]
    assert (
        lat["unit"] == "instructions" and lat["count"] == n and 0 < lat["min"] <= lat["median"] <= lat["max"]
    )
    assert s["bench"]["runs"] == 5 and lat["min"] <= s["bench"]["mean"] <= lat["max"] * 1.01
    samples = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    outs = {r["index"]: r["output"] for r in samples if r["kind"] == "sample"}
    assert [outs[i] for i in range(n)] == [g.tobytes().hex() for g in golden]  # byte-identical, each one
    assert b"MCD-BOOT" in (out / "device.log").read_bytes()  # boot text before the first frame kept

    # the same folder resumes with nothing left to do; a latency budget of 1 instruction fails (exit 1)
    rc = cli_run(*run, "--data", digits_test_npz, "--out", out, "--bench", 0, "--latency-budget", 1)
    assert rc == 1
    junit = ET.parse(out / "junit.xml").getroot()[0]
    assert [c.get("name") for c in junit if c.find("failure") is not None] == ["latency"]


@pytest.mark.qemu
@pytest.mark.slow
def test_qemu_firmware_resyncs_through_a_noisy_proxy(
    qemu_project: Path, digits_int8, digits_split, tmp_path: Path
) -> None:
    """The real firmware's C protocol under ~0.6 % byte noise: every result measured and correct."""
    from mcudeploy.boards import get_board
    from mcudeploy.device.proxy import FaultProxy, Faults
    from mcudeploy.device.targets.qemu import QemuSimulator
    from mcudeploy.firmware.build import build
    from mcudeploy.ml.tflm_host import run_tflm

    n = 15
    xq = quantize_inputs(digits_int8, digits_split.x_test[:n])
    golden = run_tflm(digits_int8, xq)
    elf = build(qemu_project).elf
    exp = Expectation.from_model(digits_int8, "c")
    with (
        QemuSimulator(get_board("qemu-an547")).start(elf, timeout=120) as sim,
        FaultProxy(("127.0.0.1", sim.port), Faults(flip=0.003, drop=0.003, seed=3)) as px,
        Transport(px.url) as tr,
    ):
        link = DeviceLink(tr)
        res = ResultsLog.open(tmp_path / "r.jsonl", resume=False, sha256=digits_int8.sha256)
        run_samples(link, xq, exp=exp, results=res, golden=golden, labels=digits_split.y_test[:n])
    assert px.stats.flipped + px.stats.dropped > 10 and link.stats.retries > 0
    assert sorted(res.records) == list(range(n))
    ok = [r for r in res.records.values() if r["status"] == "ok"]
    assert len(ok) >= n - 1 and all(bytes.fromhex(r["output"]) == golden[r["index"]].tobytes() for r in ok)


@pytest.mark.qemu
def test_run_profile_on_qemu_times_every_layer(
    qemu_project: Path, digits_int8_path: Path, digits_int8, digits_test_npz: Path, tmp_path: Path
) -> None:
    """`mcudeploy run --profile` on qemu-an547 (C runtime, -icount): one row per kernel step named by
    the model's op, the layers add up to the whole invoke within 1 %, and the stack high-water mark is
    inside the stack the linker reserved."""
    from mcudeploy.cli import run as cli_run
    from mcudeploy.firmware.runtime_c import lower

    out = tmp_path / "prof"
    args = ["run", "--board", "qemu-an547", "--project", qemu_project, "--model", digits_int8_path]
    rc = cli_run(*args, "--data", digits_test_npz, "--out", out, "--limit", 2, "--bench", 0, "--profile")
    assert rc == 0
    prof = json.loads((out / "profile.json").read_text())
    steps = lower(digits_int8).steps
    assert [r["op_index"] for r in prof["layers"]] == [s.op_index for s in steps]
    assert [r["opcode"] for r in prof["layers"]] == [digits_int8.operators[s.op_index].opcode for s in steps]
    assert prof["unit"] == "instructions" and all(r["elapsed"] > 0 for r in prof["layers"])
    assert 0.99 <= prof["layers_sum"] / prof["elapsed"] <= 1.0
    conv = [r for r in prof["layers"] if r["opcode"] == "CONV_2D"]
    assert conv and all(r["macs"] > 0 and r["macs_per_unit"] > 0 for r in conv)
    assert 0 < prof["stack_used"] < prof["stack_size"]
    rows = (out / "profile.csv").read_text().splitlines()
    assert rows[0].startswith("layer,op_index,opcode") and len(rows) == len(steps) + 1
    s = json.loads((out / "summary.json").read_text())
    assert s["profile"]["layers"] == len(steps) and s["profile"]["coverage"] >= 0.99


@pytest.mark.qemu
@pytest.mark.tflm
def test_run_profile_of_the_tflm_runtime_through_its_micro_profiler(
    digits_int8_path: Path, digits_int8, digits_test_npz: Path, tmp_path: Path
) -> None:
    """The tflm runtime times each operator through TFLM's MicroProfilerInterface: one row per op of
    the model, in order, adding up to the whole invoke within 1 %."""
    import os

    from mcudeploy.boards import get_board
    from mcudeploy.cli import run as cli_run
    from mcudeploy.firmware.build import build
    from mcudeploy.firmware.codegen import generate

    proj = generate(digits_int8, get_board("qemu-an547"), tmp_path / "tflm", runtime="tflm", mode="protocol")
    build(proj.path, tflm_root=Path(os.environ["MCUDEPLOY_TFLM_ROOT"]), jobs=os.cpu_count())
    out = tmp_path / "prof"
    args = ["run", "--board", "qemu-an547", "--project", proj.path, "--model", digits_int8_path]
    assert (
        cli_run(*args, "--data", digits_test_npz, "--out", out, "--limit", 2, "--bench", 0, "--profile") == 0
    )
    prof = json.loads((out / "profile.json").read_text())
    assert prof["device"]["runtime"] == "tflm"
    assert [r["opcode"] for r in prof["layers"]] == [op.opcode for op in digits_int8.operators]
    assert 0.99 <= prof["layers_sum"] / prof["elapsed"] <= 1.0 and 0 < prof["stack_used"] < prof["stack_size"]
