"""Pinned source trees, from git mirrors, tarballs, a ``setup pack`` archive or the network.

A :class:`Pin` names a repository and a commit (or tag). ``--from`` picks where it comes from:

- a folder holding git mirrors (bare or not; ``OWNER+NAME``, ``NAME``, ``NAME.git`` or any mirror that
  has the pinned commit): ``git archive COMMIT``, so the pinned commit is exactly what is extracted;
- the same folder holding tarballs or zips (``NAME-REF.tar.gz``, ``REF.zip`` as GitHub names them);
- an archive written by ``mcudeploy setup pack`` (a local file or an http(s) URL, with a
  ``.sha256`` file beside it), whose members are checked against its manifest;
- nothing: GitHub's archive of the commit, checked against the md5 TFLM pins where it pins one.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from .._io import file_digest, json_text
from ..errors import ChecksumError, InputError, ToolMissingError
from .download import FROM_HINT, download, verify

GITHUB_ENV = "MCUDEPLOY_GITHUB_URL"  # e.g. an internal mirror of github.com with the same URL scheme
PACK_MANIFEST = "mcudeploy-pack.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class Pin:
    """One repository at one commit, and where it goes in the tree being assembled."""

    repo: str  # "owner/name" as on GitHub
    ref: str  # full commit SHA, or a tag
    dest: str  # folder, relative to the tree being assembled
    md5: str | None = None  # of GitHub's zip of ref, where the pinning project records one
    patch: str | None = None  # patch (relative to the assembled tree) applied with `patch -p1`

    @property
    def name(self) -> str:
        return self.repo.split("/")[-1]

    @property
    def is_sha(self) -> bool:
        return re.fullmatch(r"[0-9a-f]{40}", self.ref) is not None

    def label(self) -> str:
        return f"{self.repo}@{self.ref[:12] if self.is_sha else self.ref}"


class Provider(Protocol):
    def describe(self) -> str: ...

    def extract(self, pin: Pin, dest: Path) -> str:
        """Put ``pin``'s files (no top-level folder) into the empty folder ``dest``; say from where."""
        ...


def _safe_extract_tar(tar: tarfile.TarFile, dest: Path, strip: bool) -> None:
    members = [m for m in tar.getmembers() if m.name not in (".", "pax_global_header")]
    top = {m.name.split("/", 1)[0] for m in members}
    do_strip = strip and len(top) == 1 and any("/" in m.name for m in members)
    picked = []
    for m in members:
        if do_strip:
            rest = m.name.split("/", 1)
            if len(rest) == 1:
                continue
            m.name = rest[1]
        picked.append(m)
    tar.extractall(dest, members=picked, filter="data")


def extract_archive(path: Path, dest: Path, *, strip: bool = True) -> None:
    """Extract a .tar(.gz)/.tgz/.zip into ``dest``, dropping its single top-level folder."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n]
                top = {n.split("/", 1)[0] for n in names}
                do_strip = strip and len(top) == 1 and any("/" in n for n in names)
                for info in z.infolist():
                    name = (
                        info.filename.split("/", 1)[1] if do_strip and "/" in info.filename else info.filename
                    )
                    if do_strip and "/" not in info.filename:
                        continue
                    target = (dest / name).resolve()
                    if not str(target).startswith(str(dest.resolve())):
                        raise InputError(f"{path}: member {info.filename} escapes the archive")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    mode = (info.external_attr >> 16) & 0o777
                    if mode & 0o100:
                        os.chmod(target, 0o755)
        else:
            with tarfile.open(path) as tar:
                _safe_extract_tar(tar, dest, strip)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path} is not a readable archive: {e}") from e


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    if not shutil.which("git"):
        raise ToolMissingError("git is needed to read git mirrors", hint="sudo apt-get install git")
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, check=False)


def _git_dir(path: Path) -> Path | None:
    for cand in (path / ".git", path / "repo" / ".git", path / "repo", path):
        if (cand / "HEAD").is_file() and (cand / "objects").is_dir():
            return cand
    return None


def _resolve(git_dir: Path, ref: str) -> str | None:
    proc = _git(git_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


class FolderProvider:
    """A folder of git mirrors and/or archives (``--from DIR``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def describe(self) -> str:
        return f"folder {self.folder}"

    def _named(self, pin: Pin) -> list[Path]:
        owner, name = pin.repo.lower().split("/", 1)
        keys = {name, f"{name}.git", f"{owner}+{name}", f"{owner}_{name}"}
        return [p for p in self._entries if p.is_dir() and (p.name.lower() in keys or name in p.name.lower())]

    def find_mirror(self, pin: Pin) -> tuple[Path, str] | None:
        named = self._named(pin)
        # an unnamed mirror is tried only for a full SHA: a tag like v130 could exist in any repository
        others = [p for p in self._entries if p.is_dir() and p not in named] if pin.is_sha else []
        for path in named + others:
            git_dir = _git_dir(path)
            if git_dir is None:
                continue
            sha = _resolve(git_dir, pin.ref)
            if sha:
                return git_dir, sha
        return None

    def find_archive(self, pin: Pin) -> Path | None:
        refs = {pin.ref, pin.ref.removeprefix("v")}
        stems = {f"{pin.name}-{r}" for r in refs} | refs
        for p in self._entries:
            for suffix in ARCHIVE_SUFFIXES:
                if p.is_file() and p.name.endswith(suffix) and p.name[: -len(suffix)] in stems:
                    return p
        return None

    def extract(self, pin: Pin, dest: Path) -> str:
        mirror = self.find_mirror(pin)
        if mirror:
            git_dir, sha = mirror
            proc = subprocess.Popen(
                ["git", f"--git-dir={git_dir}", "archive", "--format=tar", sha], stdout=subprocess.PIPE
            )
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.name != "pax_global_header":
                        tar.extract(member, dest, filter="data")
            if proc.wait() != 0:
                raise InputError(f"git archive {sha} failed in mirror {git_dir}")
            return f"git mirror {git_dir} at {sha[:12]}"
        archive = self.find_archive(pin)
        if archive:
            if pin.md5 and archive.name.endswith(".zip") and archive.name[:-4] == pin.ref:
                verify(archive, md5=pin.md5, what=str(archive))
            extract_archive(archive, dest)
            return f"archive {archive}"
        raise InputError(
            f"{self.folder} has no mirror or archive of {pin.label()} (looked for a git mirror with that "
            f"commit and for {pin.name}-{pin.ref}.tar.gz / {pin.ref}.zip)",
            hint="`git clone --mirror` the repository into that folder, "
            "or use an archive made by `mcudeploy setup pack`",
        )


class PackProvider:
    """An archive written by ``mcudeploy setup pack``: one tar per pin plus a manifest of sha256s."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path) as tar:
                member = tar.extractfile(PACK_MANIFEST)
                if member is None:
                    raise KeyError(PACK_MANIFEST)
                self.manifest = json.loads(member.read())
        except (tarfile.TarError, KeyError, OSError, ValueError) as e:
            raise InputError(f"{path} is not an archive made by `mcudeploy setup pack` ({e})") from e

    def describe(self) -> str:
        return f"pack {self.path}"

    def extract(self, pin: Pin, dest: Path) -> str:
        for entry in self.manifest.get("sources", []):
            if entry["repo"].lower() == pin.repo.lower() and pin.ref in (entry["ref"], entry.get("sha")):
                with tempfile.TemporaryDirectory() as tmp, tarfile.open(self.path) as pack:
                    data = pack.extractfile(entry["file"])
                    if data is None:
                        break
                    local = Path(tmp) / Path(entry["file"]).name
                    with open(local, "wb") as out:
                        shutil.copyfileobj(data, out)
                    verify(local, sha256=entry["sha256"], what=f"{self.path}:{entry['file']}")
                    with tarfile.open(local) as tar:
                        _safe_extract_tar(tar, dest, strip=False)
                return f"pack {self.path} ({entry['file']})"
        raise InputError(
            f"pack {self.path} has no {pin.label()}",
            hint="make the pack with the same mcudeploy version and --commit (`mcudeploy setup pack`)",
        )


class GitHubProvider:
    """GitHub's archive of each pinned commit (the only provider that needs the network)."""

    def __init__(self, downloads: Path) -> None:
        self.base = os.environ.get(GITHUB_ENV, "https://github.com").rstrip("/")
        self.downloads = downloads

    def describe(self) -> str:
        return self.base

    def extract(self, pin: Pin, dest: Path) -> str:
        url = f"{self.base}/{pin.repo}/archive/{pin.ref}.zip"
        local = self.downloads / f"{pin.name}-{pin.ref}.zip"
        download(url, local, md5=pin.md5, what=pin.label())
        extract_archive(local, dest)
        return url


def open_provider(source: str | None, downloads: Path, *, sha256: str | None = None) -> Provider:
    """The provider for a ``--from`` value (None: the network)."""
    if source is None:
        return GitHubProvider(downloads)
    if re.match(r"https?://", source):
        name = Path(source.split("?", 1)[0]).name or "pack.tar"
        digest = sha256 or _sidecar_sha256(source, downloads / f"{name}.sha256")
        return PackProvider(download(source, downloads / name, sha256=digest, what=f"setup pack {source}"))
    path = Path(source).expanduser()
    if path.is_dir():
        return FolderProvider(path)
    if path.is_file():
        if sha256:
            verify(path, sha256=sha256, what=str(path))
        return PackProvider(path)
    raise InputError(f"--from {source}: no such folder or file", hint=FROM_HINT)


def _sidecar_sha256(url: str, local: Path) -> str:
    """The sha256 published beside a pack (``URL.sha256``, as `sha256sum` writes it)."""
    local.unlink(missing_ok=True)
    download(url + ".sha256", local, what=f"checksum of {url}")
    text = local.read_text().split()
    if not text or not re.fullmatch(r"[0-9a-fA-F]{64}", text[0]):
        raise ChecksumError(f"{url}.sha256 does not hold a sha256 digest")
    return text[0]


def fetch_pins(provider: Provider, pins: list[Pin], root: Path, *, log: list[str] | None = None) -> None:
    """Extract every pin into ``root / pin.dest`` and apply its patch with ``patch -p1``
    (``git apply`` skips TFLM's patches silently when the folder is not a git checkout)."""
    for pin in pins:
        dest = root / pin.dest
        if dest.exists() and any(dest.iterdir()):
            raise InputError(f"{pin.label()}: {dest} is not empty")
        dest.mkdir(parents=True, exist_ok=True)
        how = provider.extract(pin, dest)
        if log is not None:
            log.append(f"{pin.label()} -> {pin.dest} from {how}")
        if pin.patch:
            patch = root / pin.patch
            if not shutil.which("patch"):
                raise ToolMissingError(
                    "`patch` is needed to apply TFLM's patches", hint="sudo apt-get install patch"
                )
            proc = subprocess.run(
                ["patch", "-p1", "--forward", "--batch", "-d", str(dest), "-i", str(patch)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise InputError(f"{pin.label()}: {patch.name} does not apply:\n{proc.stdout[-2000:]}")


def write_pack(provider: Provider, pins: list[Pin], out: Path, *, log: list[str] | None = None) -> Path:
    """Write a pack of ``pins`` (byte-identical for the same pins and git version) to ``out``."""
    from .._io import write_bytes_atomic

    buf = io.BytesIO()
    entries = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as pack,
    ):
        for pin in pins:
            tree = Path(tmp) / pin.name / "tree"
            tree.mkdir(parents=True)
            how = provider.extract(pin, tree)
            if log is not None:
                log.append(f"{pin.label()} from {how}")
            member = f"sources/{pin.name}-{pin.ref}.tar"
            inner = Path(tmp) / pin.name / "src.tar"
            _tar_folder(tree, inner)
            entries.append(
                {
                    **{k: v for k, v in asdict(pin).items() if k in ("repo", "ref")},
                    "file": member,
                    "sha256": file_digest(inner),
                }
            )
            _add(pack, member, inner.read_bytes())
        _add(
            pack,
            PACK_MANIFEST,
            json_text({"format": 1, "sources": entries}).encode(),
        )
    return write_bytes_atomic(out, buf.getvalue())


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _tar_folder(folder: Path, out: Path) -> None:
    """A deterministic tar of ``folder`` (sorted names, zero times and owners)."""
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
