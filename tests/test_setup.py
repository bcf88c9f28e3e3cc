"""`mcudeploy setup`: the machinery tested for real against a local HTTP server on 127.0.0.1 and
small git repositories made by the test (no network, no Arm archive, no TFLM mirrors needed).

The full TFLM export runs only when MCUDEPLOY_TFLM_MIRRORS names a folder of git mirrors of
tflite-micro and its pinned third-party repositories (see test_setup_tflm_from_mirrors)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcudeploy.cli import run as cli_run
from mcudeploy.errors import ChecksumError, EulaError, InputError, OfflineError
from mcudeploy.setup import cache
from mcudeploy.setup.download import download
from mcudeploy.setup.fvp import FvpSpec, find_installed_executable, get_fvp, setup_fvp
from mcudeploy.setup.sources import FolderProvider, Pin, fetch_pins, open_provider, write_pack

MIRRORS_ENV = "MCUDEPLOY_TFLM_MIRRORS"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git: sudo apt-get install git")


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` with Range support; ``drop_after``
    cuts the first response of a path after that many bytes, as a dropped connection would."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = outer.drop_after.pop(self.path, None)
                body = data[start:] if cut is None else data[start : start + cut]
                self.wfile.write(body)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(d))
    return d


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2020-01-01T00:00:00",
        "GIT_COMMITTER_DATE": "2020-01-01T00:00:00",
    }
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()


def _repo(path: Path, versions: list[dict[str, str]]) -> list[str]:
    """A git repository with one commit per version (files -> text); returns the commit SHAs."""
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    shas = []
    for files in versions:
        for name, text in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", "v")
        shas.append(_git(path, "rev-parse", "HEAD"))
    return shas


# -- downloads ----------------------------------------------------------------------------------
def test_download_resumes_a_dropped_connection_and_verifies(server: Server, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 800  # 200 KB
    server.files["/blob.bin"] = blob
    server.drop_after["/blob.bin"] = 70_000
    dest = download(f"{server.url}/blob.bin", tmp_path / "blob.bin", sha256=hashlib.sha256(blob).hexdigest())
    assert dest.read_bytes() == blob
    assert server.requests[0] == ("/blob.bin", None)
    assert server.requests[1] == ("/blob.bin", "bytes=70000-")  # resumed, not started over
    assert not (tmp_path / "blob.bin.part").exists()
    # a verified file already there is a cache hit: no request at all
    n = len(server.requests)
    download(f"{server.url}/blob.bin", dest, sha256=hashlib.sha256(blob).hexdigest())
    assert len(server.requests) == n


def test_download_resumes_a_part_left_by_an_earlier_run(server: Server, tmp_path: Path) -> None:
    blob = os.urandom(1) * 0 + b"x" * 50_000 + b"y" * 50_000
    server.files["/a.tgz"] = blob
    (tmp_path / "a.tgz.part").write_bytes(blob[:30_000])
    download(f"{server.url}/a.tgz", tmp_path / "a.tgz", md5=hashlib.md5(blob).hexdigest())
    assert server.requests == [("/a.tgz", "bytes=30000-")]
    assert (tmp_path / "a.tgz").read_bytes() == blob


def test_checksum_mismatch_is_refused_and_nothing_kept(server: Server, tmp_path: Path) -> None:
    server.files["/evil.tgz"] = b"not what was pinned"
    with pytest.raises(ChecksumError) as exc:
        download(f"{server.url}/evil.tgz", tmp_path / "evil.tgz", sha256="0" * 64)
    assert "sha256" in exc.value.message and "0" * 64 in exc.value.message
    assert int(exc.value.exit_code) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_offline_names_from(tmp_path: Path) -> None:
    with pytest.raises(OfflineError) as exc:
        download(f"{_closed_port_url()}/x.zip", tmp_path / "x.zip", sha256="0" * 64)
    assert "--from" in str(exc.value) and int(exc.value.exit_code) == 3


def test_setup_tflm_offline_says_to_use_from(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("MCUDEPLOY_GITHUB_URL", _closed_port_url())
    assert cli_run("setup", "tflm") == 3
    err = capsys.readouterr().err
    assert "tensorflow/tflite-micro" in err and "--from" in err and "setup pack" in err
    assert not (cache_dir / "tflm").exists() or cache.installed("tflm", root=cache_dir) == []


def test_not_found_is_bad_input(server: Server, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="HTTP 404"):
        download(f"{server.url}/missing.zip", tmp_path / "m.zip")


# -- sources ------------------------------------------------------------------------------------
@needs_git
def test_git_mirror_gives_the_pinned_commit_and_patch_applies(tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    first, _second = _repo(mirrors / "acme+lib", [{"a.txt": "one\n"}, {"a.txt": "two\n", "b.txt": "new\n"}])
    top = tmp_path / "tree"
    (top / "patches").mkdir(parents=True)
    (top / "patches/fix.patch").write_text("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+one patched\n")
    provider = FolderProvider(mirrors)
    log: list[str] = []
    fetch_pins(provider, [Pin("acme/lib", first, "deps/lib", patch="patches/fix.patch")], top, log=log)
    assert (top / "deps/lib/a.txt").read_text() == "one patched\n"  # pinned commit, then patch -p1
    assert not (top / "deps/lib/b.txt").exists()  # not the newer commit
    assert first[:12] in log[0] and "git mirror" in log[0]
    # a commit the mirror lacks is named, with what to do
    with pytest.raises(InputError, match="no mirror or archive of acme/lib@deadbeefdead") as exc:
        fetch_pins(provider, [Pin("acme/lib", "deadbeef" * 5, "x")], top)
    assert "git clone --mirror" in str(exc.value)


@needs_git
def test_pack_over_http_round_trip_and_tampering_refused(server: Server, tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    (sha,) = _repo(mirrors / "lib", [{"src/x.c": "int x;\n"}])
    (tag_sha,) = _repo(mirrors / "other", [{"y.h": "#define Y 1\n"}])
    _git(mirrors / "other", "tag", "v1.0")
    pins = [Pin("acme/lib", sha, "lib"), Pin("acme/other", "v1.0", "other")]
    pack = write_pack(FolderProvider(mirrors), pins, tmp_path / "p.tar")
    again = write_pack(FolderProvider(mirrors), pins, tmp_path / "p2.tar")
    assert pack.read_bytes() == again.read_bytes()  # deterministic
    data = pack.read_bytes()
    server.files["/p.tar"] = data
    server.files["/p.tar.sha256"] = f"{hashlib.sha256(data).hexdigest()}  p.tar\n".encode()
    provider = open_provider(f"{server.url}/p.tar", tmp_path / "dl")
    out = tmp_path / "out"
    fetch_pins(provider, pins, out)
    assert (out / "lib/src/x.c").read_text() == "int x;\n" and (out / "other/y.h").is_file()
    assert tag_sha  # the tag resolved in its own mirror
    # a pack whose bytes differ from its published digest is refused
    mid = len(data) // 2
    server.files["/bad.tar"] = data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1 :]
    server.files["/bad.tar.sha256"] = server.files["/p.tar.sha256"]
    with pytest.raises(ChecksumError):
        open_provider(f"{server.url}/bad.tar", tmp_path / "dl")


def test_github_archive_checked_against_the_pinned_md5(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lib-abc/inc/lib.h", "#pragma once\n")
    server.files["/acme/lib/archive/abc.zip"] = buf.getvalue()
    monkeypatch.setenv("MCUDEPLOY_GITHUB_URL", server.url)
    good = Pin("acme/lib", "abc", "lib", md5=hashlib.md5(buf.getvalue()).hexdigest())
    fetch_pins(open_provider(None, tmp_path / "dl"), [good], tmp_path / "a")
    assert (tmp_path / "a/lib/inc/lib.h").read_text() == "#pragma once\n"
    with pytest.raises(ChecksumError, match="md5"):
        fetch_pins(
            open_provider(None, tmp_path / "dl2"),
            [Pin("acme/lib", "abc", "lib", md5="1" * 32)],
            tmp_path / "b",
        )


# -- the cache ----------------------------------------------------------------------------------
def test_install_is_atomic_and_a_cache_hit_does_no_work(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(stage: Path) -> dict[str, str]:
        calls.append(stage)
        (stage / "f").write_text("x")
        return {"name": "thing", "version": "1"}

    def broken(stage: Path) -> dict[str, str]:
        (stage / "half").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.install("thing", "k1", broken, root=tmp_path)
    assert cache.installed("thing", root=tmp_path) == []
    assert [p.name for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")] == []
    first = cache.install("thing", "k1", build, root=tmp_path)
    second = cache.install("thing", "k1", build, root=tmp_path)
    assert len(calls) == 1 and not first.cached and second.cached
    assert (first.path / "f").read_text() == "x" and oct(first.path.stat().st_mode)[-3:] == "755"
    assert [i.name for i in cache.installed(root=tmp_path)] == ["thing"]


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_root() == tmp_path / "mcudeploy"
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"


# -- FVP ----------------------------------------------------------------------------------------
def _fake_fvp_archive(fail: bool = False) -> bytes:
    """A stand-in for Arm's archive (which no test may download): its installer script, run with
    Arm's non-interactive flags, writes the executables where Arm's does."""
    script = (
        "#!/bin/sh\nset -e\n"
        + ("echo 'installer broke' >&2; exit 7\n" if fail else "")
        + 'while [ $# -gt 0 ]; do case "$1" in -d) dest=$2; shift;; esac; shift; done\n'
        'mkdir -p "$dest/models/Linux64_GCC-9.3"\n'
        "for e in FVP_Corstone_SSE-300_Ethos-U55 FVP_Corstone_SSE-300_Ethos-U65; do\n"
        '  f="$dest/models/Linux64_GCC-9.3/$e"; printf "#!/bin/sh\\necho fvp\\n" > "$f"; chmod +x "$f"\n'
        "done\n"
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("FVP_Corstone_SSE-300.sh")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return buf.getvalue()


def _spec(server: Server, data: bytes) -> FvpSpec:
    real = get_fvp("corstone-300", "x86_64")
    server.files["/fvp/" + real.archive] = data
    return FvpSpec(
        **{**real.__dict__, "base": f"{server.url}/fvp/", "sha256": hashlib.sha256(data).hexdigest()}
    )


def test_fvp_needs_the_eula_accepted_and_says_where_to_read_it(
    server: Server, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("MCUDEPLOY_FVP_BASE_URL", server.url)
    assert cli_run("setup", "fvp", "corstone-300") == 2
    err = capsys.readouterr().err
    assert "EULA" in err and "developer.arm.com" in err and "--accept-eula" in err
    assert server.requests == []  # nothing downloaded before acceptance
    with pytest.raises(EulaError):
        setup_fvp(get_fvp("corstone-300"), accept_eula=False)


def test_fvp_pinned_sha256_refuses_another_archive(
    server: Server, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    spec = get_fvp("corstone-300", "x86_64")
    server.files["/" + spec.archive] = _fake_fvp_archive()
    monkeypatch.setenv("MCUDEPLOY_FVP_BASE_URL", server.url)
    assert cli_run("setup", "fvp", "corstone-300", "--accept-eula") == 2
    assert spec.sha256 in capsys.readouterr().err
    assert cache.installed("fvp") == []


def test_fvp_install_found_by_the_simulator_and_cached(
    server: Server, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcudeploy.boards import get_board
    from mcudeploy.device.targets.fvp import FvpSimulator

    spec = _spec(server, _fake_fvp_archive())
    item = setup_fvp(spec, accept_eula=True)
    exe = find_installed_executable("FVP_Corstone_SSE-300_Ethos-U55")
    assert exe and Path(exe).is_file() and str(cache_dir) in exe
    monkeypatch.delenv("MCUDEPLOY_FVP", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert FvpSimulator(get_board("corstone-300")).find_executable() == exe
    n = len(server.requests)
    again = setup_fvp(spec, accept_eula=True)
    assert again.cached and again.path == item.path and len(server.requests) == n
    assert item.manifest["eula_accepted"] is True and item.manifest["sha256"] == spec.sha256


def test_fvp_failed_installer_leaves_nothing(server: Server, cache_dir: Path) -> None:
    spec = _spec(server, _fake_fvp_archive(fail=True))
    with pytest.raises(InputError, match="installer broke"):
        setup_fvp(spec, accept_eula=True)
    assert cache.installed("fvp") == []
    assert [p for p in (cache_dir / "fvp").iterdir() if p.name.endswith(".stage")] == []


# -- TFLM ---------------------------------------------------------------------------------------
def test_builds_find_the_tree_setup_made_current(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcudeploy.errors import ToolMissingError
    from mcudeploy.firmware import build as build_mod

    monkeypatch.delenv("MCUDEPLOY_TFLM_ROOT", raising=False)
    with pytest.raises(ToolMissingError, match="none was given or installed") as exc:
        build_mod.find_tflm_root(None)
    assert "mcudeploy setup tflm" in str(exc.value)

    def fake_tree(stage: Path) -> dict[str, object]:
        for f in build_mod.TFLM_REQUIRED:
            (stage / "tree" / f).parent.mkdir(parents=True, exist_ok=True)
            (stage / "tree" / f).write_text("")
        return {"name": "tflite-micro", "version": "c0ffee", "tree": "tree", "options": {"npu": None}}

    item = cache.install("tflm", "t1", fake_tree)
    cache.set_current("tflm", item)
    assert build_mod.find_tflm_root(None) == (item.path / "tree").resolve()
    with pytest.raises(ToolMissingError, match="Ethos-U kernel"):  # an NPU build needs an NPU tree
        build_mod.find_tflm_root(None, npu=True)
    other = cache_dir / "elsewhere"
    shutil.copytree(item.path / "tree", other)
    monkeypatch.setenv("MCUDEPLOY_TFLM_ROOT", str(other))
    assert build_mod.find_tflm_root(None) == other.resolve()  # the variable still wins


def _fake_tflm_tree(stage: Path, npu: str | None = None) -> dict[str, object]:
    from mcudeploy.firmware import build as build_mod

    for f in build_mod.TFLM_REQUIRED + (build_mod.TFLM_NPU_REQUIRED if npu else ()):
        (stage / "tree" / f).parent.mkdir(parents=True, exist_ok=True)
        (stage / "tree" / f).write_text("")
    return {"name": "tflite-micro", "version": "c0ffee", "tree": "tree", "options": {"npu": npu}}


def _next_line(capsys: pytest.CaptureFixture[str]) -> str:
    out = " ".join(capsys.readouterr().out.split())
    return out[out.index("next: ") :]


def test_generate_says_the_build_command_that_works_from_here(
    cache_dir: Path, digits_int8_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The "next:" hint of a tflm project follows the build's own tree search: how to get a tree when
    there is none, the plain build command (and the tree) when setup installed one or the variable names
    one, --tflm-root when the variable is wrong (it wins); an NPU model asks for an NPU tree."""
    monkeypatch.delenv("MCUDEPLOY_TFLM_ROOT", raising=False)
    proj = tmp_path / "p"

    def generate(*extra: object, model: Path = digits_int8_path, board: str = "qemu-an547") -> str:
        assert cli_run("generate", model, "-b", board, "-r", "tflm", "-o", proj, *extra) == 0
        return _next_line(capsys)

    assert generate() == (
        f"next: mcudeploy setup tflm, then mcudeploy build {proj} "
        f"(or: mcudeploy build {proj} --tflm-root TFLM_TREE)"
    )
    item = cache.install("tflm", "t1", _fake_tflm_tree)
    cache.set_current("tflm", item)
    tree = (item.path / "tree").resolve()
    assert generate() == f"next: mcudeploy build {proj} (TFLite Micro tree {tree}, from mcudeploy setup tflm)"
    monkeypatch.setenv("MCUDEPLOY_TFLM_ROOT", str(tree))
    assert generate() == f"next: mcudeploy build {proj} (TFLite Micro tree {tree}, from MCUDEPLOY_TFLM_ROOT)"
    monkeypatch.setenv("MCUDEPLOY_TFLM_ROOT", str(tmp_path / "nowhere"))
    line = generate()
    assert line.startswith(f"next: mcudeploy build {proj} --tflm-root TFLM_TREE (MCUDEPLOY_TFLM_ROOT: ")
    assert "nowhere" in line and "setup tflm" not in line
    assert cli_run("generate", digits_int8_path, "-b", "qemu-an547", "-r", "c", "-o", proj) == 0
    assert _next_line(capsys) == f"next: mcudeploy build {proj}"
    # a Vela model: the installed tree has no Ethos-U kernel, so the hint asks for one that has
    monkeypatch.delenv("MCUDEPLOY_TFLM_ROOT")
    assert cli_run("compile", digits_int8_path, "-b", "corstone-300", "-o", tmp_path / "vela") == 0
    capsys.readouterr()
    vela_model = tmp_path / "vela" / f"{digits_int8_path.stem}_vela.tflite"
    line = generate("--reference", digits_int8_path, model=vela_model, board="corstone-300")
    assert line.startswith("next: mcudeploy setup tflm --npu ethos-u55, then mcudeploy build ")
    npu_item = cache.install("tflm", "t2", lambda s: _fake_tflm_tree(s, "ethos-u55"))
    line = generate("--reference", digits_int8_path, model=vela_model, board="corstone-300")
    assert line.startswith(f"next: mcudeploy build {proj} (TFLite Micro tree {npu_item.path / 'tree'}")


def test_deploy_rebuilds_tflm_firmware_when_the_tree_it_finds_changes(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build-tflm stage's key names the tree the build will find: another tree made current by
    `setup tflm`, MCUDEPLOY_TFLM_ROOT set, or the tree edited in place changes it although no option
    changed; the same tree twice does not. The C runtime's build key ignores TFLM trees."""
    from mcudeploy.deploy import deploy_stages, load_config
    from mcudeploy.firmware import build as build_mod
    from mcudeploy.pipeline import Context, _digest, _fingerprint

    monkeypatch.delenv("MCUDEPLOY_TFLM_ROOT", raising=False)
    cfg_file = tmp_path / "mcudeploy.toml"
    cfg_file.write_text('[firmware]\nboard = "qemu-an547"\nruntime = ["c", "tflm"]\n')
    cfg = load_config(cfg_file, [("", "out", str(tmp_path / "out"))])
    stages = {s.name: s for s in deploy_stages(cfg)}
    ctx = Context(tmp_path / "out", cfg)

    def key(rt: str = "tflm") -> str:
        return _digest(_fingerprint(stages[f"build-{rt}"].inputs(ctx)))

    none, c_key = key(), key("c")
    first = cache.install("tflm", "t1", _fake_tflm_tree)
    cache.set_current("tflm", first)
    with_first = key()
    assert with_first != none and key() == with_first
    second = cache.install("tflm", "t2", _fake_tflm_tree)
    cache.set_current("tflm", second)
    assert key() not in (none, with_first)
    monkeypatch.setenv("MCUDEPLOY_TFLM_ROOT", str(first.path / "tree"))
    assert key() == with_first  # the same tree, found through the variable
    (first.path / "tree" / build_mod.TFLM_REQUIRED[0]).write_text("/* exported again */\n")
    assert key() != with_first  # a tree edited (or re-exported) in place
    assert key("c") == c_key


def test_setup_status_lists_what_is_installed(cache_dir: Path, capsys) -> None:
    assert cli_run("setup", "status") == 0
    assert "nothing installed" in capsys.readouterr().out
    item = cache.install(
        "tflm",
        "t1",
        lambda s: {
            "name": "tflite-micro",
            "version": "a" * 40,
            "tree": "tree",
            "options": {"kernels": "reference", "cpu": "cortex-m55", "npu": None},
            "unlocks": "--runtime tflm",
        },
    )
    cache.set_current("tflm", item)
    assert cli_run("setup", "status", "--json", "-") == 0
    import json

    report = json.loads(capsys.readouterr().out)
    (entry,) = report["items"]
    assert entry["default"] and entry["version"] == "a" * 12 and entry["path"].endswith("t1/tree")
    assert "reference" in entry["name"] and entry["unlocks"] == "--runtime tflm"
    lib = cache.install(
        "tflm-lib", "cortex-m55-k", lambda s: {"name": "tflm-lib", "version": "k", "tree": "/t"}
    )
    assert cli_run("setup", "status", "--json", "-") == 0
    entries = {e["kind"]: e for e in json.loads(capsys.readouterr().out)["items"]}
    assert entries["tflm-lib"]["path"] == str(lib.path) and "/t " in entries["tflm-lib"]["unlocks"]


def test_setup_tflm_from_mirrors(tmp_path: Path) -> None:
    """The real export from git mirrors of tflite-micro and its pins (slow: ~2 min)."""
    mirrors = os.environ.get(MIRRORS_ENV)
    if not mirrors or not Path(mirrors).is_dir():
        pytest.skip(f"set {MIRRORS_ENV} to a folder of git mirrors of tensorflow/tflite-micro and its pins")
    from mcudeploy.firmware import build as build_mod
    from mcudeploy.setup.tflm import TflmOptions, setup_tflm

    opts = TflmOptions(kernels="reference")
    item = setup_tflm(lambda: FolderProvider(Path(mirrors)), opts, root=tmp_path)
    tree = item.path / "tree"
    assert build_mod.tflm_kernels(tree) == "reference"
    assert (tree / "third_party/cmsis/Cortex_DFP/Device/ARMCM55/Include/ARMCM55.h").is_file()
    calls = []
    again = setup_tflm(lambda: calls.append(1), opts, root=tmp_path)  # type: ignore[arg-type,func-returns-value]
    assert again.cached and calls == []
