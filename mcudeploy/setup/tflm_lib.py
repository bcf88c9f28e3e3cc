"""The TFLite Micro library, compiled once per (tree, CPU flags, kernels, NPU, compiler) and cached.

Compiling a TFLM tree is 200-313 sources and 7-15 minutes on two cores; a project's own code is a
handful. ``mcudeploy build`` therefore configures the project once more in the cache, builds only its
``tflm`` (and Ethos-U driver) targets with progress, keeps the archives, and links every later project
with the same key against them (``-DMCD_TFLM_PREBUILT=DIR``): a new project builds in seconds.

The key covers everything that changes the objects: the tree (every file's path, size and mtime), the
project's TFLM CMake fragment and CPU/optimisation flags, the toolchain file and the compiler version.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rich.progress import MofNCompleteColumn, TimeElapsedColumn

from .._children import tool_version
from ..console import err_console, progress_bar
from ..errors import BuildError
from .cache import Installed, install

KIND = "tflm-lib"
DISABLE_ENV = "MCUDEPLOY_TFLM_PREBUILT"  # "0": compile TFLM inside each project as before
_FRAGMENT_START = "# TensorFlow Lite Micro from a tree"
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1") not in ("0", "no", "off", "false")


def tree_fingerprint(root: Path) -> str:
    """Where a TFLM tree is and the path, size and mtime of each of its sources: cheap (no reads),
    and changed by a new export or an edit in place."""
    h = hashlib.sha256(str(root).encode())
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".c", ".cc", ".cpp", ".h", ".hpp", ".inc"):
            st = path.stat()
            h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def library_key(project: Path, root: Path, gcc: str) -> tuple[str, dict[str, Any]]:
    """The cache key of the TFLM library ``project`` would compile from ``root``, and what it covers."""
    cmakelists = (project / "CMakeLists.txt").read_text()
    fragment = cmakelists[cmakelists.find(_FRAGMENT_START) :] if _FRAGMENT_START in cmakelists else cmakelists
    flags = [
        ln.strip()
        for ln in cmakelists.splitlines()
        if re.match(r"\s*set\((MCD_CPU_FLAGS|CMAKE_\w*FLAGS)", ln)
    ]
    toolchain = (project / "cmake" / "arm-none-eabi.cmake").read_text()
    cpu = re.search(r"-mcpu=(\S+)", " ".join(flags))
    parts = {
        "tree": str(root),
        "tree_files": tree_fingerprint(root),
        "fragment": hashlib.sha256(fragment.encode()).hexdigest(),
        "flags": flags,
        "toolchain": hashlib.sha256(toolchain.encode()).hexdigest(),
        "compiler": tool_version(gcc) or "",
    }
    digest = hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()[:16]
    return f"{cpu.group(1) if cpu else 'cpu'}-{digest}", parts


def prebuilt_library(
    project: Path, root: Path, *, cmake: str, generator: str, gcc: str, defines: list[str], jobs: int | None
) -> Installed:
    """The cached TFLM library for ``project`` built from ``root``; compiled (with progress) if absent."""
    key, parts = library_key(project, root, gcc)
    npu = "ethosu_core_driver" in (project / "CMakeLists.txt").read_text()
    targets = ["tflm"] + (["ethosu_core_driver"] if npu else [])

    def build(stage: Path) -> dict[str, Any]:
        out = stage / "build"
        log = stage.parent / f".{key}.build.log"
        configure = [cmake, "-S", str(project), "-B", str(out), "-G", generator, *defines]
        configure.append(f"-DCMAKE_TOOLCHAIN_FILE={project / 'cmake' / 'arm-none-eabi.cmake'}")
        proc = subprocess.run(configure, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log.write_text(proc.stdout + proc.stderr)
            raise BuildError(f"configuring the TFLM library for {project.name} failed", hint=f"log: {log}")
        cmd = [cmake, "--build", str(out), "--target", *targets] + (["--parallel", str(jobs)] if jobs else [])
        _build_with_progress(cmd, log, f"compiling TFLite Micro once for {key}")
        for t in targets:
            shutil.copy2(out / f"lib{t}.a", stage / f"lib{t}.a")
        shutil.rmtree(out)
        log.unlink(missing_ok=True)
        return {"name": "tflm-lib", "version": key, "libraries": [f"lib{t}.a" for t in targets], **parts}

    return install(KIND, key, build)


def _build_with_progress(cmd: list[str], log: Path, what: str) -> None:
    lines: list[str] = []
    bar = progress_bar(MofNCompleteColumn(), TimeElapsedColumn())
    if not err_console.is_terminal:
        err_console.print(f"{what} (cached for the next project; 5-15 min cold on 2 cores)")
    with bar, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        task = bar.add_task(what, total=None)
        assert proc.stdout is not None
        shown = 0
        for line in proc.stdout:
            lines.append(line)
            m = _NINJA_STEP.match(line) or re.match(r"^\[\s*(\d+)%\]", line)
            if m and m.lastindex == 2:
                done, total = int(m.group(1)), int(m.group(2))
                bar.update(task, completed=done, total=total)
                if not err_console.is_terminal and done * 10 // total > shown:
                    shown = done * 10 // total
                    err_console.print(f"  {done}/{total} sources")
        code = proc.wait()
    if code != 0:
        log.write_text("".join(lines))
        errors = [ln.rstrip() for ln in lines if re.search(r"error", ln, re.IGNORECASE)][-10:]
        raise BuildError("compiling the TFLM library failed:\n" + "\n".join(errors), hint=f"full log: {log}")
