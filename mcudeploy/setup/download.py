"""Downloads that resume, show progress and are verified before anything uses them.

A download goes to ``NAME.part`` beside its destination; a dropped connection is retried from where
it stopped (HTTP Range), and so is a later run after an interrupt. Only a file whose checksum matches
the pin is renamed to its final name; a mismatch deletes the part and names both digests.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import DownloadColumn, TransferSpeedColumn

from .._io import file_digest
from ..console import err_console, progress_bar
from ..errors import ChecksumError, InputError, OfflineError

CHUNK = 1 << 16
ATTEMPTS = 4  # one try and three resumes of a dropped connection
TIMEOUT_S = 30.0
FROM_HINT = (
    "this machine may be offline: pass --from PATH, a folder of git mirrors or tarballs, or an archive "
    "made by `mcudeploy setup pack` on a connected machine"
)


def verify(path: Path, *, sha256: str | None = None, md5: str | None = None, what: str | None = None) -> None:
    """Raise ChecksumError unless ``path`` has every digest given."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if not expected:
            continue
        got = file_digest(path, algorithm)
        if got.lower() != expected.lower():
            raise ChecksumError(
                f"{what or path}: {algorithm} is {got}, the pin says {expected}; refusing to use it",
                hint="the file is corrupt or not the pinned version: delete it or fetch it again",
            )


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": "mcudeploy-setup"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    what: str | None = None,
    hint: str = FROM_HINT,
) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``), verify it, and return ``dest``.

    A ``dest`` that is already there and verifies is a cache hit: nothing is fetched.
    """
    what = what or url
    if dest.is_file():
        try:
            verify(dest, sha256=sha256, md5=md5, what=str(dest))
            return dest
        except ChecksumError:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: BaseException | None = None
    for _ in range(ATTEMPTS):
        offset = part.stat().st_size if part.is_file() else 0
        try:
            resp = _open(url, offset)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # the part is whole already (or longer): verify it below
                break
            if e.code in (401, 403, 404, 410):
                raise InputError(f"cannot download {what}: {url} answered HTTP {e.code}", hint=hint) from e
            last_error = e
            continue
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise OfflineError(f"cannot download {what} from {url}: {reason}", hint=hint) from e
        with resp:
            if offset and resp.status != 206:  # the server ignored Range: start over
                offset = 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            try:
                _stream(resp, part, offset, total, what)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
                last_error = e
                continue
            if total is not None and part.stat().st_size < total:
                last_error = ConnectionError(f"got {part.stat().st_size} of {total} bytes")
                continue
        break
    else:
        raise OfflineError(
            f"download of {what} from {url} kept failing ({last_error}); "
            f"{part.stat().st_size if part.is_file() else 0} bytes are kept in {part}",
            hint="run the same command again to resume, or pass --from PATH",
        )
    try:
        verify(part, sha256=sha256, md5=md5, what=f"{what} ({url})")
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _stream(resp: http.client.HTTPResponse, part: Path, offset: int, total: int | None, what: str) -> None:
    bar = progress_bar(DownloadColumn(), TransferSpeedColumn())
    if not err_console.is_terminal:
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        err_console.print(f"downloading {what}{size}" + (f", resuming at {offset} bytes" if offset else ""))
    with bar, open(part, "r+b" if offset else "wb") as f:
        f.seek(offset)
        f.truncate()
        task = bar.add_task(f"downloading {what}", total=total, completed=offset)
        while True:
            block = resp.read(CHUNK)
            if not block:
                break
            f.write(block)
            bar.advance(task, len(block))
        f.flush()
        os.fsync(f.fileno())
