"""The fault-injecting proxy between the harness and the host-built C device (real sockets, real C)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mcudeploy.device.harness import DeviceLink, Expectation, LinkPolicy, ResultsLog, run_samples
from mcudeploy.device.protocol_host import HostDevice, build_host_device, toy_layer, toy_meta
from mcudeploy.device.proxy import FaultProxy, Faults
from mcudeploy.device.targets.transport import Transport
from mcudeploy.errors import ConfigError

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc: apt-get install gcc")

IN, OUT = 16, 10


@pytest.fixture(scope="module")
def host_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_host_device(tmp_path_factory.mktemp("hostdev"), toy_meta(IN, OUT))


def expectation() -> Expectation:
    sha = toy_meta(IN, OUT)["MCD_MODEL_SHA256"].strip('"')
    return Expectation(sha, IN, OUT, f"in=int8[1,{IN}];out=int8[1,{OUT}]")


def soak(exe: Path, tmp: Path, n: int, faults: Faults, policy: LinkPolicy, *, cut: bool = False):
    x = np.random.default_rng(faults.seed).integers(-128, 128, (n, IN)).astype(np.int8)
    golden = toy_layer(x, OUT)
    labels = golden.argmax(axis=1)
    with HostDevice(exe) as dev, FaultProxy(("127.0.0.1", dev.port), faults, reset=dev.reset) as px:
        with Transport(px.url) as tr:
            link = DeviceLink(tr, policy)
            res = ResultsLog.open(tmp / "results.jsonl", resume=False, sha256=expectation().sha256)
            run_samples(link, x, exp=expectation(), results=res, labels=labels, golden=golden)
        assert px.error is None
        return x, golden, res, link, px, dev


def test_faults_are_validated() -> None:
    with pytest.raises(ConfigError, match="probability"):
        Faults(flip=1.5)
    with pytest.raises(ConfigError, match="directions"):
        Faults(directions="sideways")


def test_clean_proxy_is_transparent(host_exe: Path, tmp_path: Path) -> None:
    _x, golden, res, link, px, _ = soak(host_exe, tmp_path, 50, Faults(), LinkPolicy())
    assert [bytes.fromhex(res.records[i]["output"]) for i in range(50)] == [g.tobytes() for g in golden]
    assert link.stats.retries == 0 and px.stats.dropped == px.stats.flipped == 0


@pytest.mark.slow
def test_soak_1000_inferences_one_percent_noise_and_a_reset(host_exe: Path, tmp_path: Path) -> None:
    """~1 % of bytes flipped or dropped both ways plus one device reset: no wrong result accepted."""
    faults = Faults(flip=0.005, drop=0.005, reset_after_bytes=30_000, seed=11)
    n = 1000
    _x, golden, res, link, px, dev = soak(
        host_exe, tmp_path, n, faults, LinkPolicy(request_timeout=2.0, min_timeout=0.015)
    )
    assert px.stats.flipped > 500 and px.stats.dropped > 500  # the noise really happened
    assert px.stats.resets == 1 and dev.resets == 1
    assert link.stats.resets >= 1  # noticed: BOOT HELLO or FRESH flag
    assert any(h.get("reset") for h in res.hellos)
    assert sorted(res.records) == list(range(n))  # every sample has a record
    ok = [r for r in res.records.values() if r["status"] == "ok"]
    failed = [r for r in res.records.values() if r["status"] != "ok"]
    for r in ok:  # zero wrong results accepted
        assert bytes.fromhex(r["output"]) == golden[r["index"]].tobytes()
        assert r["bit_exact"] is True
    assert all(r["reason"] for r in failed)  # the rest failed with a reason
    assert len(ok) >= 0.97 * n
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert sum('"kind":"sample"' in ln for ln in lines) == n


def test_cut_link_duplicates_and_delays(host_exe: Path, tmp_path: Path) -> None:
    faults = Faults(duplicate=0.01, delay=0.02, delay_s=0.02, cut_after_bytes=3000, seed=5)
    _x, golden, res, link, px, _ = soak(host_exe, tmp_path, 200, faults, LinkPolicy(min_timeout=0.05))
    assert px.stats.cuts == 1 and px.stats.duplicated > 0 and px.stats.delayed > 0
    assert link.stats.reopens >= 1  # the harness reconnected after the cut
    ok = [r for r in res.records.values() if r["status"] == "ok"]
    assert len(res.records) == 200 and len(ok) >= 190
    assert all(bytes.fromhex(r["output"]) == golden[r["index"]].tobytes() for r in ok)
