"""Atomic file writes (nothing half-written survives a failure) and streamed file digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputError


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks (models, archives and ELFs can be large)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_temp_beside(path: Path, data: bytes) -> str:
    """Write ``data`` to a new temp file in ``path``'s folder (fsynced, mode 0644) and return its
    name; the caller renames it over ``path`` or removes it. Nothing is left behind on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        discard_temp(tmp)
        raise
    return tmp


def discard_temp(tmp: str) -> None:
    """Remove a temp file from write_temp_beside, if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then ``os.replace``.

    A path that cannot be written (its folder is a file, it is a folder, no permission) is an
    :class:`~mcudeploy.errors.InputError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_temp_beside(path, data)
    except OSError as e:
        raise InputError(f"{path}: cannot write ({_why(e, path)})") from None
    try:
        os.replace(tmp, path)
    except OSError as e:
        discard_temp(tmp)
        raise InputError(f"{path}: cannot write ({_why(e, path)})") from None
    except BaseException:
        discard_temp(tmp)
        raise
    return path


def _why(e: OSError, path: Path) -> str:
    """An OSError's reason, naming the part of ``path`` at fault when that is not ``path`` itself."""
    culprit = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if culprit is not None:
        return f"{culprit} is a file, not a folder"
    return e.strerror or str(e)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text with LF line endings atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_text(data: Any, *, sort_keys: bool = True) -> str:
    """How mcudeploy writes JSON: indented, keys sorted (byte-identical for the same data), a final
    newline."""
    return json.dumps(data, indent=2, sort_keys=sort_keys) + "\n"


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """:func:`json_text` of ``data`` written atomically to ``path``."""
    return write_text_atomic(path, json_text(data))


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a staging folder beside ``final``; on success it replaces ``final`` whole.

    On any failure the staging folder is removed and ``final`` is left as it was, so a failed
    generation never leaves a half-written tree.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".stage", dir=final.parent))
    try:
        yield stage
        if final.exists():
            if not overwrite:
                raise FileExistsError(final)
            old = final.with_name(f".{final.name}.old")
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
            os.replace(final, old)
            os.replace(stage, final)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:  # a file replaced by a folder (the user asked for it: generate --force)
                old.unlink(missing_ok=True)
        else:
            os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
