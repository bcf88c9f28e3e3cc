"""Stage ``build``: a generated project → firmware (ELF, map file, section sizes) via CMake and
arm-none-eabi-gcc.

Everything the build needs is checked before CMake runs, and each gap is named with how to fill
it: the toolchain on PATH, CMake and a generator, and for the ``tflm`` runtime a TFLite Micro tree
(``--tflm-root`` / ``MCUDEPLOY_TFLM_ROOT``) with the files the project uses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._children import tool_version
from .._io import write_text_atomic
from ..errors import BuildError, ToolMissingError
from ..ml.model import NPU_CUSTOM_OP
from .codegen import load_project
from .tflm_tree import TFLM_CMSIS_NN_MARKER, TFLM_NPU_REQUIRED, TFLM_REQUIRED

TOOLCHAIN_HINT = (
    "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
    "(or run `make setup`), or put Arm GNU Toolchain's bin/ on PATH"
)
TFLM_ENV = "MCUDEPLOY_TFLM_ROOT"
TFLM_HINT = (
    "run `mcudeploy setup tflm` (add --npu ethos-u55 for NPU boards, --from DIR offline), "
    f"or pass --tflm-root DIR / set {TFLM_ENV} to a tree exported by tflite-micro's "
    "tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py "
    '--makefile_options="TARGET=cortex_m_generic OPTIMIZED_KERNEL_DIR=cmsis_nn TARGET_ARCH=cortex-m55" DIR'
    " (add CO_PROCESSOR=ethos_u ETHOSU_ARCH=u55 for NPU boards, then copy the ethos-u-core-driver's src/ to"
    " DIR/third_party/ethos_u_core_driver/src; without OPTIMIZED_KERNEL_DIR it exports reference kernels)"
)


@dataclass(frozen=True)
class Toolchain:
    cmake: str
    generator: str  # "Ninja" or "Unix Makefiles"
    gcc: str
    readelf: str

    @property
    def bin_dir(self) -> str:
        return str(Path(self.gcc).parent)


@dataclass(frozen=True)
class Firmware:
    project: Path
    elf: Path
    map: Path
    sections: dict[str, int]  # allocated ELF sections -> bytes
    addresses: dict[str, int]  # allocated ELF sections -> load (run) address
    runtime: str
    board: str
    kernels: str | None = None  # tflm runtime: "cmsis-nn" or "reference", from the tree it was built against

    @property
    def text_bytes(self) -> int:
        return sum(
            v for k, v in self.sections.items() if k in (".text", ".vectors", ".ARM.exidx", ".ARM.extab")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "elf": self.elf.name,
            "map": self.map.name,
            "runtime": self.runtime,
            "board": self.board,
            **({"kernels": self.kernels} if self.kernels else {}),
            "sections": dict(sorted(self.sections.items())),
            "addresses": {k: f"0x{v:08x}" for k, v in sorted(self.addresses.items())},
        }


VERSIONED_TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "cmake")


def toolchain_versions() -> dict[str, str | None]:
    """The ``--version`` line of each build tool on PATH (None when absent). Part of the build stage's
    key in ``deploy``: firmware made by another compiler is not reused."""
    return {t: tool_version(shutil.which(t)) for t in VERSIONED_TOOLS}


def find_toolchain() -> Toolchain:
    """cmake, a generator and arm-none-eabi-{gcc,g++,readelf} from PATH, or one error naming all gaps."""
    found = {
        t: shutil.which(t)
        for t in ("cmake", "ninja", "make", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-readelf")
    }
    missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-readelf") if not found[t]]
    hints = [TOOLCHAIN_HINT] if missing else []
    if not found["cmake"]:
        missing.append("cmake")
        hints.append("sudo apt-get install cmake (or pip install cmake)")
    if not (found["ninja"] or found["make"]):
        missing.append("ninja (or make)")
        hints.append("sudo apt-get install ninja-build (or pip install ninja)")
    if missing:
        raise ToolMissingError(
            f"cannot build firmware: {', '.join(missing)} not found on PATH", hint="; ".join(hints)
        )
    return Toolchain(
        cmake=str(found["cmake"]),
        generator="Ninja" if found["ninja"] else "Unix Makefiles",
        gcc=str(found["arm-none-eabi-gcc"]),
        readelf=str(found["arm-none-eabi-readelf"]),
    )


def find_tflm_root(explicit: str | os.PathLike[str] | None, *, npu: bool = False) -> Path:
    """The TFLM tree to build against: ``--tflm-root``, else ``MCUDEPLOY_TFLM_ROOT``, else the tree
    ``mcudeploy setup tflm`` installed; errors name the missing files and how to get a tree."""
    source = "--tflm-root" if explicit else TFLM_ENV
    value = str(explicit) if explicit else os.environ.get(TFLM_ENV, "")
    if not value:
        from ..setup.tflm import default_tree

        installed = default_tree(npu=npu)
        if installed is None:
            raise ToolMissingError(
                "the tflm runtime needs a TFLite Micro tree and none was given or installed"
                + (" with the Ethos-U kernel" if npu else ""),
                hint=TFLM_HINT,
            )
        source, value = "mcudeploy setup tflm", str(installed)
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ToolMissingError(f"TFLite Micro tree {root} (from {source}) is not a directory", hint=TFLM_HINT)
    need = TFLM_REQUIRED + (TFLM_NPU_REQUIRED if npu else ())
    missing = [f for f in need if not (root / f).is_file()]
    if missing:
        raise ToolMissingError(
            f"TFLite Micro tree {root} (from {source}) is incomplete: missing {', '.join(missing)}",
            hint=TFLM_HINT,
        )
    return root.resolve()


def tflm_kernels(root: Path) -> str:
    """Which kernels a TFLM export carries: ``cmsis-nn`` when CMSIS-NN replaced the reference ones."""
    return "cmsis-nn" if (root / TFLM_CMSIS_NN_MARKER).is_file() else "reference"


def _run(cmd: list[str], log: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    log.append("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    log.append(proc.stdout + proc.stderr)
    return proc


def _errors(output: str, limit: int = 12) -> str:
    lines = [
        ln
        for ln in output.splitlines()
        if re.search(r"error|undefined reference|overflowed|CMake Error", ln, re.IGNORECASE)
    ]
    return "\n".join((lines or output.splitlines())[-limit:])


_SECTION_RE = re.compile(
    r"^\s*\[\s*\d+\]\s+(?P<name>\S+)\s+\S+\s+(?P<addr>[0-9a-f]+)\s+[0-9a-f]+\s+(?P<size>[0-9a-f]+)\s+[0-9a-f]+\s+"
    r"(?P<flags>[A-Za-z]*)\s"
)


def elf_sections(elf: Path, readelf: str) -> dict[str, tuple[int, int]]:
    """Allocated, non-empty sections of ``elf``: name -> (address, bytes), from ``readelf -S -W``."""
    out = subprocess.run([readelf, "-S", "-W", str(elf)], capture_output=True, text=True, check=True).stdout
    sections = {}
    for line in out.splitlines():
        m = _SECTION_RE.match(line)
        if m and "A" in m.group("flags") and int(m.group("size"), 16):
            sections[m.group("name")] = (int(m.group("addr"), 16), int(m.group("size"), 16))
    return sections


def build(
    project_dir: str | os.PathLike[str],
    *,
    build_dir: str | os.PathLike[str] | None = None,
    tflm_root: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
) -> Firmware:
    """Configure and build a generated project; returns the ELF, map and section sizes."""
    project = Path(project_dir).resolve()
    manifest = load_project(project)
    tools = find_toolchain()
    defines = [f"-DARM_TOOLCHAIN_ROOT={tools.bin_dir}"]
    kernels = None
    if manifest.get("needs_tflm"):
        npu = NPU_CUSTOM_OP in manifest.get("model", {}).get("ops", [])
        root = find_tflm_root(tflm_root, npu=npu)
        kernels = tflm_kernels(root)
        defines.append(f"-DTFLM_ROOT={root}")
        from ..setup import tflm_lib

        prebuilt = ""
        if tflm_lib.enabled():
            lib = tflm_lib.prebuilt_library(
                project,
                root,
                cmake=tools.cmake,
                generator=tools.generator,
                gcc=tools.gcc,
                defines=defines,
                jobs=jobs,
            )
            prebuilt = str(lib.path)
        defines.append(f"-DMCD_TFLM_PREBUILT={prebuilt}")
    out = Path(build_dir).resolve() if build_dir else project / "build"
    out.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    try:
        configure = [
            tools.cmake,
            "-S",
            str(project),
            "-B",
            str(out),
            "-G",
            tools.generator,
            f"-DCMAKE_TOOLCHAIN_FILE={project / 'cmake' / 'arm-none-eabi.cmake'}",
            *defines,
        ]
        proc = _run(configure, log, project)
        if proc.returncode != 0:
            raise BuildError(
                f"{project.name}: CMake configure failed\n{_errors(proc.stdout + proc.stderr)}",
                hint=f"full log: {out / 'mcudeploy-build.log'}",
            )
        build_cmd = [tools.cmake, "--build", str(out)] + (["--parallel", str(jobs)] if jobs else [])
        proc = _run(build_cmd, log, project)
        if proc.returncode != 0:
            raise BuildError(
                f"{project.name}: build failed\n{_errors(proc.stdout + proc.stderr)}",
                hint=f"full log: {out / 'mcudeploy-build.log'}",
            )
    finally:
        write_text_atomic(out / "mcudeploy-build.log", "\n".join(log))
    elf, mapf = out / "app.elf", out / "app.map"
    if not elf.is_file():
        raise BuildError(f"{project.name}: the build reported success but produced no {elf.name}")
    sections = elf_sections(elf, tools.readelf)
    return Firmware(
        project=project,
        elf=elf,
        map=mapf,
        sections={name: size for name, (_, size) in sections.items()},
        addresses={name: addr for name, (addr, _) in sections.items()},
        runtime=str(manifest.get("runtime")),
        board=str(manifest.get("board")),
        kernels=kernels,
    )
