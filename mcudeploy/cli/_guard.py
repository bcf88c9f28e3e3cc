"""Output paths, for every command at once: checked before the work starts, never replacing what is
not an earlier mcudeploy output of the same kind (unless --force), and all or none.

:data:`OUTPUTS` declares each command's output options and their kinds; :func:`guard` wraps a
command so that, before its body runs, every output path given is writable (probed with a real temp
file: permission bits say nothing to root) and is either new or recognisably ours. When the command
then fails (other than a gate, whose outputs are the point), the files it had newly created are
removed, so a failure never leaves half of its outputs behind.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import GateError, InputError

_LOCK = ".mcudeploy.lock"


def _head(p: Path, n: int = 8) -> bytes:
    with open(p, "rb") as f:
        return f.read(n)


def _is_json(p: Path) -> bool:
    try:
        json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def _is_csv(p: Path) -> bool:
    try:
        with open(p, encoding="utf-8") as f:
            return "," in f.readline()
    except (OSError, ValueError):
        return False


def _is_ci_job(p: Path) -> bool:
    try:
        return "mcudeploy deploy" in p.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return False


def _is_keras(p: Path) -> bool:
    if p.is_dir():
        return (p / "saved_model.pb").is_file()
    return _head(p) in (b"\x89HDF\r\n\x1a\n",) or _head(p, 4) == b"PK\x03\x04"


def _holds(*names: str) -> Callable[[Path], bool]:
    """A folder of ours: it holds one of ``names``, or nothing (but our lock)."""

    def check(p: Path) -> bool:
        entries = {q.name for q in p.iterdir()} - {_LOCK}
        return not entries or any(n in entries for n in names)

    return check


@dataclass(frozen=True)
class Kind:
    what: str  # how the refusal names it
    folder: bool | None  # None: either (a Keras model is a file or a SavedModel folder)
    ours: Callable[[Path], bool]


KINDS: dict[str, Kind] = {
    "tflite": Kind("a .tflite model", False, lambda p: _head(p)[4:8] == b"TFL3"),
    "json": Kind("a JSON file", False, _is_json),
    "csv": Kind("a CSV file", False, _is_csv),
    "ci-job": Kind("a CI job written by mcudeploy ci", False, _is_ci_job),
    "keras": Kind("a Keras model (.h5, .keras or SavedModel)", None, _is_keras),
    "project": Kind("a generated project (mcudeploy.json)", True, _holds("mcudeploy.json")),
    "pipeline": Kind("a deploy folder (manifest.json)", True, _holds("manifest.json")),
    "run": Kind("a run's results (results.jsonl)", True, _holds("results.jsonl")),
    "build": Kind("a build folder (CMakeCache.txt)", True, _holds("CMakeCache.txt", "mcudeploy-build.log")),
    "folder": Kind("a folder", True, lambda p: True),  # files are added to it
}

# command -> {parameter name: kind}: every option that names something the command writes.
OUTPUTS: dict[str, dict[str, str]] = {
    "advise": {"csv_out": "csv", "json_out": "json"},
    "build": {"build_dir": "build", "json_out": "json"},
    "ci": {"out": "ci-job"},
    "compile": {"out_dir": "folder", "json_out": "json", "csv_out": "csv"},
    "demo": {"out": "pipeline"},
    "deploy": {"out": "pipeline"},
    "evaluate": {"json_out": "json"},
    "generate": {"out_dir": "project"},
    "harness-lib": {"out_dir": "folder"},
    "header": {"out_dir": "folder"},
    "inspect": {"json_out": "json"},
    "optimize": {"output": "keras", "tflite": "tflite", "json_out": "json"},
    "quantize": {"output": "tflite", "json_out": "json"},
    "run": {"out_dir": "run"},
}


def _writable(option: str, p: Path) -> None:
    """Probe the nearest existing folder at or above where ``p`` goes with a real temp file."""
    at = p.parent if not p.is_dir() else p
    while not at.exists() and at != at.parent:
        at = at.parent
    if not at.is_dir():
        raise InputError(f"{option} {p}: {at} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mcudeploy-probe-", dir=at)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"{option} {p}: cannot write in {at} ({e.strerror or e})") from None


def claim(option: str, p: Path, kind: str, *, force: bool) -> bool:
    """Check one output path before the work; True when it does not exist yet (ours to remove on
    failure). Raises InputError naming the option and the path."""
    k = KINDS[kind]
    _writable(option, p)
    if not p.exists() and not p.is_symlink():
        return True
    if k.folder is not None and p.is_dir() != k.folder:
        want, got = ("a folder", "a file") if k.folder else ("a file", "a folder")
        raise InputError(f"{option} {p}: is {got}; {want} is written there", hint="choose another path")
    if not force and not k.ours(p):
        raise InputError(
            f"{option} {p}: exists and is not {k.what} from an earlier mcudeploy run; not replacing it",
            hint="choose another path, or pass --force to replace it",
        )
    return False


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


_META_FORCE, _META_NEW = "mcudeploy.force", "mcudeploy.new_outputs"


def forced() -> bool:
    """Whether the running command was given --force."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_META_FORCE))


def claim_default(option: str, p: Path, kind: str) -> Path:
    """:func:`claim` for an output path a command derives itself (the option was not given), with
    the running command's --force; a new file joins the ones removed if the command fails."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    if claim(option, p, kind, force=bool(meta.get(_META_FORCE))) and not KINDS[kind].folder:
        meta.setdefault(_META_NEW, []).append(p)
    return p


FORCE = click.Option(
    ["--force"],
    is_flag=True,
    help="Replace outputs that exist and are not earlier mcudeploy outputs of the same kind.",
)


def guard(cmd: click.Command) -> None:
    """Give ``cmd`` --force and the output checks of :data:`OUTPUTS` (no-op for other commands)."""
    outputs = OUTPUTS.get(cmd.name or "")
    if not outputs or cmd.callback is None:
        return
    flags = {p.name: max(p.opts, key=len) for p in cmd.params if p.name in outputs}
    missing = set(outputs) - set(flags)
    assert not missing, f"mcudeploy {cmd.name}: OUTPUTS names unknown options {missing}"
    cmd.params.append(FORCE)
    body = cmd.callback

    @functools.wraps(body)
    def checked(*args: Any, force: bool = False, **kwargs: Any) -> Any:
        new: list[Path] = []
        meta = click.get_current_context().meta
        meta[_META_FORCE], meta[_META_NEW] = force, new
        for name, kind in outputs.items():
            value = kwargs.get(name)
            if value is None or str(value) == "-":
                continue
            if claim(flags[name], Path(value), kind, force=force) and not KINDS[kind].folder:
                new.append(Path(value))
        try:
            return body(*args, **kwargs)
        except GateError:
            raise  # the outputs of a failed gate are the report of it: keep them
        except BaseException:
            for p in new:  # all or none: what this command newly wrote goes with its failure
                _remove(p)
            raise

    cmd.callback = checked
