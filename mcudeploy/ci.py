"""``mcudeploy ci``: a CI job (GitHub Actions or GitLab CI) that provisions, deploys and gates.

The job installs the Arm toolchain and QEMU from the distribution, mcudeploy from PyPI, restores the
setup cache (TFLM tree and library, FVP) keyed by the setup commands, runs ``mcudeploy deploy`` on the
board's simulator (the FVP for NPU boards, QEMU otherwise), uploads the HTML report and the JUnit XML
even when a gate failed, and fails the job on a gate (deploy exits 1). The text is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .boards import Board
from .errors import ConfigError, EulaError

PROVIDERS = ("github", "gitlab")
DEFAULT_PATHS = {"github": ".github/workflows/mcudeploy.yml", "gitlab": ".gitlab-ci.yml"}
APT = " ".join(
    [
        "gcc-arm-none-eabi",
        "libnewlib-arm-none-eabi",
        "libstdc++-arm-none-eabi-newlib",
        "qemu-system-arm",
        "cmake",
        "ninja-build",
        "git",
    ]
)
OUT = "mcudeploy-out"
DEFAULT_GATES = "{ require_bit_exact = true, match_golden_accuracy = true }"
CACHE = ".mcudeploy-cache"


@dataclass(frozen=True)
class Job:
    board: str
    model: str = "builtin:digits"
    data: str | None = None
    runtime: str = "c"
    samples: int | None = None
    install: str = "mcudeploy"  # pip requirement for mcudeploy itself
    gates: str = DEFAULT_GATES  # run.gates as a TOML inline table: what fails the job
    setup: list[str] = field(default_factory=list)  # mcudeploy setup commands, cached between runs

    def deploy(self) -> list[str]:
        cmd = ["mcudeploy", "deploy", "--model", self.model, "--board", self.board, "--runtime", self.runtime]
        if self.data:
            cmd += ["--data", self.data]
        if self.samples is not None:
            cmd += ["--samples", str(self.samples)]
        return [*cmd, "--set", f"run.gates={self.gates}", "-o", OUT]

    def commands(self) -> list[str]:
        """The shell commands after installation: setup (cache-restored), then deploy."""
        return [*self.setup, shlex.join(self.deploy())]

    def cache_key(self) -> str:
        from . import __version__

        digest = hashlib.sha256(json.dumps([__version__, self.setup]).encode()).hexdigest()[:16]
        return f"mcudeploy-setup-{digest}"


def plan(
    board: Board,
    *,
    model: str | None,
    data: str | None,
    runtime: str | None,
    samples: int | None,
    accept_fvp_eula: bool,
    install: str = "mcudeploy",
    gates: str = DEFAULT_GATES,
) -> Job:
    """What the job runs for ``board``: the NPU path (TFLM + Ethos-U, FVP) or the QEMU path."""
    from .setup.fvp import fvp_names, get_fvp

    npu = board.npu is not None
    runtime = runtime or ("tflm" if npu else "c")
    if runtime not in ("c", "tflm", "auto"):
        raise ConfigError(f"--runtime {runtime!r}: give c, tflm or auto")
    setup: list[str] = []
    if runtime in ("tflm", "auto") or npu:
        cmd = ["mcudeploy", "setup", "tflm", "--cpu", board.cpu]
        if npu and board.npu is not None:
            cmd += ["--npu", board.npu.type]
        setup.append(shlex.join(cmd))
    if npu:
        model_name = str(board.simulator.get("fvp", {}).get("model", ""))
        fvp = next((n for n in fvp_names() if model_name in get_fvp(n).executables), None)
        if fvp is None:
            raise ConfigError(
                f"board {board.name} has an NPU but no FVP mcudeploy can install ({model_name!r})"
            )
        if not accept_fvp_eula:
            spec = get_fvp(fvp)
            raise EulaError(
                f"board {board.name} runs on the {fvp} FVP, whose installation in CI accepts Arm's EULA "
                f"on your behalf; read it at {spec.eula}",
                hint=f"add --accept-fvp-eula to `mcudeploy ci --board {board.name} ...`, or use a QEMU board",
            )
        setup.append(shlex.join(["mcudeploy", "setup", "fvp", fvp, "--accept-eula"]))
    elif "qemu" not in board.simulator:
        raise ConfigError(
            f"board {board.name} has no simulator CI can run (no [simulator.qemu] or FVP): "
            "pick a qemu-* board or one with an NPU"
        )
    return Job(board.name, model or "builtin:digits", data, runtime, samples, install, gates, setup)


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(value)


def render_github(job: Job) -> str:
    lines = [
        f"# Written by `mcudeploy ci github --board {job.board}`: deploy {job.model} to {job.board} on its",
        "# simulator, gate it, and keep the report and JUnit XML. Re-run `mcudeploy ci` to regenerate.",
        "name: mcudeploy",
        "on:",
        "  push:",
        "  pull_request:",
        "  workflow_dispatch:",
        "permissions:",
        "  contents: read",
        "jobs:",
        "  deploy:",
        "    runs-on: ubuntu-24.04",
        "    timeout-minutes: 90",
        "    env:",
        f"      MCUDEPLOY_CACHE_DIR: {_q('${{ github.workspace }}/' + CACHE)}",
        '      TF_USE_LEGACY_KERAS: "1"',
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.11"',
        "      - name: Arm toolchain and QEMU",
        f"        run: sudo apt-get update && sudo apt-get install -y --no-install-recommends {APT}",
        "      - name: Install mcudeploy",
        f"        run: {_q('python -m pip install ' + shlex.quote(job.install))}",
    ]
    if job.setup:
        lines += [
            "      - name: Restore the mcudeploy setup cache",
            "        uses: actions/cache@v4",
            "        with:",
            f"          path: {CACHE}",
            f"          key: {_q(job.cache_key() + '-${{ runner.os }}')}",
            "      - name: mcudeploy setup",
            "        run: |",
            *[f"          {c}" for c in job.setup],
        ]
    lines += [
        "      - name: mcudeploy deploy (fails the job when a gate fails)",
        f"        run: {_q(shlex.join(job.deploy()))}",
        "      - name: Upload the report",
        "        if: always()",
        "        uses: actions/upload-artifact@v4",
        "        with:",
        "          name: mcudeploy-report",
        "          path: |",
        f"            {OUT}/report/",
        f"            {OUT}/**/junit.xml",
        "          if-no-files-found: warn",
    ]
    return "\n".join(lines) + "\n"


def render_gitlab(job: Job) -> str:
    lines = [
        f"# Written by `mcudeploy ci gitlab --board {job.board}`: deploy {job.model} to {job.board} on its",
        "# simulator, gate it, and keep the report and JUnit XML. Re-run `mcudeploy ci` to regenerate.",
        "mcudeploy:",
        "  image: python:3.11-bookworm",
        "  timeout: 90 minutes",
        "  variables:",
        f"    MCUDEPLOY_CACHE_DIR: {_q('$CI_PROJECT_DIR/' + CACHE)}",
        '    TF_USE_LEGACY_KERAS: "1"',
    ]
    if job.setup:
        lines += [
            "  cache:",
            f"    key: {_q(job.cache_key())}",
            "    paths:",
            f"      - {CACHE}/",
        ]
    lines += [
        "  before_script:",
        f"    - apt-get update && apt-get install -y --no-install-recommends {APT}",
        f"    - python -m pip install {shlex.quote(job.install)}",
        "  script:",
        *[f"    - {_q(c)}" for c in job.commands()],
        "  artifacts:",
        "    when: always",
        "    paths:",
        f"      - {OUT}/report/",
        "    reports:",
        f"      junit: {OUT}/**/junit.xml",
    ]
    return "\n".join(lines) + "\n"


def render(provider: str, job: Job) -> str:
    if provider not in PROVIDERS:
        raise ConfigError(f"CI provider {provider!r}: give one of {', '.join(PROVIDERS)}")
    return render_github(job) if provider == "github" else render_gitlab(job)


def write(provider: str, job: Job, out: Path | None = None) -> Path:
    from ._io import write_text_atomic

    return write_text_atomic(out or Path(DEFAULT_PATHS[provider]), render(provider, job))
