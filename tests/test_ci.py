"""`mcudeploy ci`: the generated GitHub workflow and GitLab job pass schema checks (and actionlint
when it is installed), NPU jobs need the FVP EULA accepted, and the QEMU job's commands run here."""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcudeploy.cli import run as cli_run

needs_schema = pytest.mark.skipif(
    importlib.util.find_spec("check_jsonschema") is None,
    reason="needs check-jsonschema: pip install -e '.[dev]'",
)


def _schema_ok(path: Path, schema: str) -> None:
    """The schema check with the GitHub / GitLab schemas check-jsonschema ships (no network)."""
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_schema
def test_github_workflow_validates_and_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    for out in (a, b):
        assert cli_run("ci", "github", "--board", "qemu-an547", "--runtime", "tflm", "-o", out) == 0
    assert a.read_bytes() == b.read_bytes()
    _schema_ok(a, "vendor.github-workflows")
    actionlint = shutil.which("actionlint")
    if actionlint:  # the full linter, where installed (its PyPI wrapper downloads it at build time)
        proc = subprocess.run([actionlint, "-shellcheck=", str(a)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
    steps = yaml.safe_load(a.read_text())["jobs"]["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any("mcudeploy setup tflm --cpu cortex-m55" in r for r in runs)  # the tflm runtime needs a tree
    assert any(s.get("uses", "").startswith("actions/cache@") for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and "junit.xml" in upload["with"]["path"]


@needs_schema
def test_gitlab_npu_job_needs_the_fvp_eula_then_validates(tmp_path: Path, capsys) -> None:
    out = tmp_path / ".gitlab-ci.yml"
    assert cli_run("ci", "gitlab", "--board", "corstone-300", "-o", out) == 2
    assert "EULA" in capsys.readouterr().err and not out.exists()
    assert cli_run("ci", "gitlab", "--board", "corstone-300", "--accept-fvp-eula", "-o", out) == 0
    _schema_ok(out, "vendor.gitlab-ci")
    job = yaml.safe_load(out.read_text())["mcudeploy"]
    assert job["script"][:2] == [
        "mcudeploy setup tflm --cpu cortex-m55 --npu ethos-u55",
        "mcudeploy setup fvp corstone-300 --accept-eula",
    ]
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"].endswith("junit.xml")


@pytest.mark.qemu
def test_the_qemu_jobs_commands_run(
    digits_int8_path: Path, digits_test_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = tmp_path / "wf.yml"
    args = ["--board", "qemu-an547", "--model", digits_int8_path, "--data", digits_test_npz, "--samples", 8]
    assert cli_run("ci", "github", *args, "-o", wf) == 0
    steps = yaml.safe_load(wf.read_text())["jobs"]["deploy"]["steps"]
    assert not any("mcudeploy setup" in s.get("run", "") for s in steps)  # the C runtime needs no setup
    (deploy,) = [s["run"] for s in steps if s.get("run", "").startswith("mcudeploy deploy")]
    argv = shlex.split(deploy)
    monkeypatch.chdir(tmp_path)
    assert cli_run(*argv[1:]) == 0
    assert (tmp_path / "mcudeploy-out/report/report.html").is_file()
    (junit,) = (tmp_path / "mcudeploy-out").glob("**/junit.xml")  # the path the upload step names
    assert junit.parent.name == "run-c" and "bit_exact" in junit.read_text()
