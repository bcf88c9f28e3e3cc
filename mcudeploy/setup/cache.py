"""The setup cache: one folder per installed item, keyed by what it was built from.

Layout under :func:`cache_root` (``$MCUDEPLOY_CACHE_DIR``, else ``$XDG_CACHE_HOME/mcudeploy``, else
``~/.cache/mcudeploy``)::

    downloads/           archives (``NAME.part`` while a download is under way: resumed next time)
    tflm/KEY/            exported TFLite Micro trees, KEY = tflite-micro commit + options
    tflm/current.json    the tree generate/build/run/deploy use when no --tflm-root is given
    tflm-lib/KEY/        TFLM libraries built from a tree for one CPU, kernel set and flag set
    fvp/KEY/             Corstone FVPs

Every item is built in a staging folder beside its final place and renamed into place only when
complete (``_io.atomic_directory``), with an ``mcudeploy-install.json`` manifest written last, so an
interrupted setup leaves nothing that looks installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_directory, write_json_atomic

CACHE_ENV = "MCUDEPLOY_CACHE_DIR"
MANIFEST = "mcudeploy-install.json"


def cache_root() -> Path:
    """Where setup keeps what it installs (created on first use)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mcudeploy"


def cache_key(prefix: str, options: dict[str, Any]) -> str:
    """A readable, stable folder name: ``prefix`` plus a hash of every option that changes the result."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


@dataclass(frozen=True)
class Installed:
    """One installed item, as its manifest describes it."""

    kind: str  # "tflm", "tflm-lib", "fvp"
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    cached: bool = False  # True when this call found it installed and did nothing

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of an installed folder, or None when the folder is not a finished install."""
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Serialise installs of one item between processes (two `setup` runs at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def install(
    kind: str,
    key: str,
    build: Callable[[Path], dict[str, Any]],
    *,
    force: bool = False,
    root: Path | None = None,
) -> Installed:
    """Install ``kind/key`` by calling ``build(stage)``, unless it is installed already.

    ``build`` fills the staging folder and returns the manifest fields; the folder is renamed into
    place only after it returned and the manifest was written, so a failure or an interrupt leaves
    the cache as it was. A finished install is a cache hit: nothing is called.
    """
    final = (root or cache_root()) / kind / key
    with _lock(final.parent / f".{key}.lock"):
        if not force:
            found = read_manifest(final)
            if found is not None:
                return Installed(kind, final, found, cached=True)
        with atomic_directory(final) as stage:
            os.chmod(stage, 0o755)  # mkdtemp made it private; the cache is read by other tools
            manifest = {"kind": kind, "key": key, **build(stage)}
            write_json_atomic(stage / MANIFEST, manifest)
        return Installed(kind, final, manifest)


def installed(kind: str | None = None, *, root: Path | None = None) -> list[Installed]:
    """Every finished install in the cache (staging and half-written folders are skipped)."""
    base = root or cache_root()
    kinds = [kind] if kind else sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    items = []
    for k in kinds:
        folder = base / k
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            manifest = read_manifest(path)
            if manifest is not None:
                items.append(Installed(k, path, manifest))
    return items


def set_current(kind: str, item: Installed, *, root: Path | None = None) -> Path:
    """Make ``item`` the one found by default for ``kind`` (e.g. the TFLM tree builds use)."""
    path = (root or cache_root()) / kind / "current.json"
    write_json_atomic(path, {"key": item.path.name})
    return path


def current(kind: str, *, root: Path | None = None) -> Installed | None:
    """The item ``set_current`` chose for ``kind``, if it is still installed."""
    base = (root or cache_root()) / kind
    try:
        key = json.loads((base / "current.json").read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    manifest = read_manifest(base / str(key))
    return Installed(kind, base / str(key), manifest) if manifest is not None else None
