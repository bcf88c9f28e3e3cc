"""``mcudeploy setup fvp``: Arm's Corstone FVPs at a pinned version and sha256 (``fvps.toml``).

Arm's archive carries an installer script that shows Arm's EULA; mcudeploy runs it non-interactively
only after the user accepted that licence explicitly (``--accept-eula``). The installed executables are
then found by the fvp simulator with no MCUDEPLOY_FVP variable (:func:`find_installed_executable`).
"""

from __future__ import annotations

import importlib.resources
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from .._io import file_digest
from ..errors import EulaError, InputError, ToolMissingError
from .cache import Installed, cache_root, install, installed
from .download import download, verify
from .sources import extract_archive

KIND = "fvp"
BASE_ENV = "MCUDEPLOY_FVP_BASE_URL"  # another server with Arm's archive layout (an internal mirror)


@dataclass(frozen=True)
class FvpSpec:
    name: str
    version: str
    installer: str
    executables: tuple[str, ...]
    archive: str  # path under the base URL
    sha256: str
    eula: str
    base: str

    @property
    def url(self) -> str:
        return os.environ.get(BASE_ENV, self.base).rstrip("/") + "/" + self.archive

    @property
    def filename(self) -> str:
        return self.archive.rsplit("/", 1)[-1]


def _data() -> dict[str, Any]:
    return tomllib.loads(importlib.resources.files(__package__).joinpath("fvps.toml").read_text())


def fvp_names() -> list[str]:
    return sorted(k for k, v in _data().items() if isinstance(v, dict))


def get_fvp(name: str, machine: str | None = None) -> FvpSpec:
    data = _data()
    entry = data.get(name)
    if not isinstance(entry, dict):
        raise InputError(f"unknown FVP {name!r}; known: {', '.join(fvp_names())}")
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine or platform.machine().lower(), machine or "")
    arch = arch or platform.machine().lower()
    pin = entry.get(arch)
    if not isinstance(pin, dict):
        raise InputError(f"Arm publishes no {name} FVP for {arch} Linux")
    return FvpSpec(
        name=name,
        version=entry["version"],
        installer=entry["installer"],
        executables=tuple(entry["executables"]),
        archive=pin["archive"],
        sha256=pin["sha256"],
        eula=data["eula"],
        base=data["base"],
    )


def eula_error(spec: FvpSpec) -> EulaError:
    return EulaError(
        f"installing the {spec.name} FVP {spec.version} means accepting Arm's EULA, which mcudeploy "
        f"cannot accept for you; read it at {spec.eula}",
        hint=f"then run `mcudeploy setup fvp {spec.name} --accept-eula`",
    )


def setup_fvp(
    spec: FvpSpec,
    *,
    accept_eula: bool,
    source: str | None = None,
    force: bool = False,
    root: Path | None = None,
) -> Installed:
    """Install ``spec`` from ``source`` (a local archive) or Arm's server, after EULA acceptance."""
    if not accept_eula:
        raise eula_error(spec)
    base = root or cache_root()

    def build(stage: Path) -> dict[str, Any]:
        if source and not source.startswith(("http://", "https://")):
            archive = Path(source).expanduser()
            if not archive.is_file():
                raise InputError(f"--from {source}: no such file (give Arm's {spec.filename})")
            verify(archive, sha256=spec.sha256, what=str(archive))
        else:
            url = source or spec.url
            archive = download(
                url, base / "downloads" / spec.filename, sha256=spec.sha256, what=f"{spec.name} FVP"
            )
        with tempfile.TemporaryDirectory(prefix="fvp-", dir=base) as tmp:
            extract_archive(archive, Path(tmp), strip=False)
            script = Path(tmp) / spec.installer
            if not script.is_file():
                raise InputError(f"{archive} has no {spec.installer}: not Arm's {spec.name} FVP archive")
            os.chmod(script, 0o755)
            if not shutil.which("bash"):
                raise ToolMissingError("Arm's FVP installer needs bash")
            cmd = [
                str(script),
                "--i-agree-to-the-contained-eula",
                "--no-interactive",
                "-q",
                "-d",
                str(stage / "fvp"),
            ]
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
                raise InputError(f"Arm's {spec.installer} failed:\n{tail}")
        found = {exe: _find(stage, exe) for exe in spec.executables}
        missing = [exe for exe, path in found.items() if path is None]
        if missing:
            raise InputError(f"the {spec.name} FVP installed without {', '.join(missing)}")
        return {
            "name": spec.name,
            "version": spec.version,
            "sha256": file_digest(archive),
            "eula_accepted": True,
            "executables": {exe: str(Path(p).relative_to(stage)) for exe, p in found.items() if p},
            "unlocks": "--simulator fvp for boards whose [simulator.fvp] model is "
            + " or ".join(spec.executables),
        }

    return install(KIND, f"{spec.name}-{spec.version}", build, force=force, root=root)


def _find(folder: Path, exe: str) -> str | None:
    for path in sorted(folder.rglob(exe)):
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def find_installed_executable(name: str, *, root: Path | None = None) -> str | None:
    """The path of FVP executable ``name`` (e.g. FVP_Corstone_SSE-300_Ethos-U55) if setup installed it."""
    for item in installed(KIND, root=root):
        rel = item.manifest.get("executables", {}).get(name)
        if rel and (item.path / rel).is_file():
            return str(item.path / rel)
    return None
