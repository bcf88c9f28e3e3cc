"""Results never mixed or lost: `run --project` knows its model, resumes only what is the same, one
run per output folder at a time, and nothing replaced that is not an earlier mcudeploy output."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcudeploy.cli import run as cli_run


@pytest.fixture()
def c_protocol_project(digits_int8, tmp_path: Path) -> Path:
    from mcudeploy.boards import get_board
    from mcudeploy.firmware.codegen import generate

    return generate(digits_int8, get_board("qemu-an547"), tmp_path / "fw", runtime="c", mode="protocol").path


def test_a_c_project_names_its_model_and_run_checks_it(
    c_protocol_project: Path, digits_int8, digits_test_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcudeploy.firmware.codegen import project_model

    found = project_model(c_protocol_project)
    assert found is not None and found.read_bytes() == digits_int8.data
    # a model swapped under the project is refused before anything is built or run
    found.write_bytes(digits_int8.data[:-1] + bytes([digits_int8.data[-1] ^ 1]))
    rc = cli_run("run", "--board", "qemu-an547", "--project", c_protocol_project, "--data", digits_test_npz)
    err = capsys.readouterr().err
    assert rc == 2 and "model.tflite" in err and "not the model the project was generated from" in err
    assert not (c_protocol_project / "build").exists()
    found.unlink()
    assert (
        cli_run("run", "--board", "qemu-an547", "--project", c_protocol_project, "--data", digits_test_npz)
        == 2
    )
    assert "model.tflite is missing" in capsys.readouterr().err


def _jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(ln) for ln in path.read_text().splitlines()]


@pytest.mark.qemu
def test_resume_reuses_only_results_of_the_same_run(
    c_protocol_project: Path, digits_split, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from mcudeploy.ml.digits import save_npz

    a = save_npz(tmp_path / "a.npz", digits_split.x_test[:40], digits_split.y_test[:40])
    b = save_npz(tmp_path / "b.npz", digits_split.x_test[40:80], digits_split.y_test[40:80])
    out = tmp_path / "out"
    args = ("run", "--board", "qemu-an547", "--project", c_protocol_project, "--out", out, "--bench", 0)

    assert cli_run(*args, "--data", a, "--limit", 6) == 0
    # interrupted after 3 samples: the same data (a longer --limit of it) resumes them
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    first_samples = [i for i, ln in enumerate(lines) if '"kind":"sample"' in ln]
    (out / "results.jsonl").write_text("".join(lines[: first_samples[3]]))
    assert cli_run(*args, "--data", a, "--limit", 8) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed"] == 3 and s["measured"] == 8 and s["bit_exact_fraction"] == 1.0
    capsys.readouterr()

    # other data into the same folder: the old results are moved aside, never mixed in
    assert cli_run(*args, "--data", b, "--limit", 8) == 0
    err = capsys.readouterr().err
    assert "data:" in err and "superseded-1" in err and "starting over" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed"] == 0 and s["measured"] == 8 and s["bit_exact_fraction"] == 1.0
    recs = _jsonl(out / "results.jsonl")
    assert recs[0]["kind"] == "start" and recs[0]["fingerprint"] == s["fingerprint"]
    assert sorted(r["label"] for r in recs if r["kind"] == "sample") == sorted(digits_split.y_test[40:48])
    old = _jsonl(out / "superseded-1" / "results.jsonl")
    assert old[0]["fingerprint"]["data"] != s["fingerprint"]["data"]
    assert (out / "superseded-1" / "summary.json").is_file()

    # results without a fingerprint (an older mcudeploy, or not ours) are not trusted either
    (out / "results.jsonl").write_text(
        "".join(ln + "\n" for ln in (out / "results.jsonl").read_text().splitlines()[1:])
    )
    assert cli_run(*args, "--data", b, "--limit", 8) == 0
    assert "no fingerprint" in capsys.readouterr().err and (out / "superseded-2").is_dir()


@pytest.mark.qemu
def test_results_of_another_simulator_are_not_resumed(
    c_protocol_project: Path,
    digits_test_npz: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Instruction counts belong to the QEMU that measured them: a run on another qemu-system-arm (the
    real one behind a wrapper reporting another version) starts over instead of resuming."""
    import json
    import os

    from tests.tools import another_version_of

    out = tmp_path / "out"
    args = ("run", "--board", "qemu-an547", "--project", c_protocol_project, "--out", out, "--bench", 0)
    args += ("--data", digits_test_npz, "--limit", 4)
    assert cli_run(*args) == 0
    assert cli_run(*args) == 0
    assert json.loads((out / "summary.json").read_text())["resumed"] == 4  # the same QEMU: resumed
    capsys.readouterr()
    other = another_version_of("qemu-system-arm", tmp_path / "other")
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{os.environ['PATH']}")
    assert cli_run(*args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "simulator:" in err and "another build" in err and "superseded-1" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed"] == 0 and s["measured"] == 4 and s["bit_exact_fraction"] == 1.0


HOLDER = """
import sys
from mcudeploy._lock import folder_lock
with folder_lock(sys.argv[1], command="the holder"):
    print("held", flush=True)
    sys.stdin.read()
"""


def _mcudeploy(*args: object, **env: str):
    import os
    import subprocess
    import sys

    main = "from mcudeploy.cli import main; raise SystemExit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", main, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_a_busy_output_folder_is_refused_naming_its_holder(
    digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    """A second process never writes into a folder another holds: it waits, and past
    MCUDEPLOY_LOCK_TIMEOUT gives up naming the holder; the lock dies with its process."""
    import subprocess
    import sys

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        elf = tmp_path / "app.elf"
        elf.write_bytes(b"\x7fELF")
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'model.path = "{digits_int8_path}"\nevaluate.data = "{digits_test_npz}"\n')
        runs = [
            _mcudeploy(
                "run",
                "--board",
                "qemu-an547",
                "--firmware",
                elf,
                "--model",
                digits_int8_path,
                "--data",
                digits_test_npz,
                "--out",
                out,
                MCUDEPLOY_LOCK_TIMEOUT="1",
            ),
            _mcudeploy("deploy", "-c", cfg, "-o", out, MCUDEPLOY_LOCK_TIMEOUT="1"),
        ]
        for p in runs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 2, err
            err = " ".join(err.split())
            assert f"in use by pid {holder.pid}" in err and "(the holder)" in err and "Traceback" not in err
        assert sorted(q.name for q in out.iterdir()) == [".mcudeploy.lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    from mcudeploy._lock import folder_lock

    with folder_lock(out, timeout=0):  # killed holder: free at once
        pass


@pytest.mark.qemu
@pytest.mark.slow
def test_two_deploys_into_one_folder_do_not_mix(digits_int8_path: Path, digits_split, tmp_path: Path) -> None:
    import json

    from mcudeploy.ml.digits import save_npz

    data = save_npz(tmp_path / "d.npz", digits_split.x_test[:24], digits_split.y_test[:24])
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'model.path = "{digits_int8_path}"\nevaluate.data = "{data}"\n'
        '[firmware]\nruntime = "c"\n[run]\nsamples = 8\n'
    )
    out = tmp_path / "out"
    first = _mcudeploy("deploy", "-c", cfg, "-o", out)
    second = _mcudeploy("deploy", "-c", cfg, "-o", out)
    res = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, res
    errs = " ".join((res[0][1] + res[1][1]).split())  # rich wraps lines
    assert errs.count("waiting for it to finish") == 1, errs  # one waited for the other ...
    assert sum("nothing to do" in o for o, _ in res) == 1  # ... and then found every stage done
    recs = _jsonl(out / "run-c" / "results.jsonl")
    assert [r["kind"] for r in recs].count("hello") == 1
    assert sorted(r["index"] for r in recs if r["kind"] == "sample") == list(range(8))
    assert json.loads((out / "run-c" / "summary.json").read_text())["measured"] == 8


SIM_HOLDER = """
import sys, time
from mcudeploy.boards import get_board
from mcudeploy.device.targets import simulator_for
with simulator_for(get_board("qemu-an547")).start(sys.argv[1], timeout=600) as running:
    print(running.proc.pid, flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie has died
    except FileNotFoundError:
        return False


@pytest.mark.qemu
def test_a_killed_mcudeploy_takes_its_simulator_with_it(c_protocol_project: Path) -> None:
    """kill -9 of the process that started QEMU (as `mcudeploy run` does) ends QEMU too."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mcudeploy.firmware.build import build

    elf = build(c_protocol_project).elf
    qemu = 0
    holder = subprocess.Popen([sys.executable, "-c", SIM_HOLDER, str(elf)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        qemu = int(holder.stdout.readline())
        assert _alive(qemu)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + 10
        while _alive(qemu) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(qemu), "QEMU outlived the mcudeploy process that started it"
    finally:
        holder.kill()
        holder.wait()
        if qemu and _alive(qemu):
            os.kill(qemu, signal.SIGKILL)


def test_the_kernel_library_leaves_nothing_in_the_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import shutil
    import tempfile

    from mcudeploy.firmware.runtime_c.host import host_cc, kernel_library

    if shutil.which(host_cc()) is None:
        pytest.skip(f"needs a host C compiler ({host_cc()}): run `make setup`")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    lib = kernel_library.__wrapped__()  # a fresh build, not the process's cached one
    assert lib.mcd_k_fully_connected is not None  # loaded and usable after its files are gone
    assert list(tmp_path.iterdir()) == []
