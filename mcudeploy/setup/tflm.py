"""``mcudeploy setup tflm``: a TFLite Micro tree exported by TFLM's own create_tflm_tree.py.

The recipe, offline from mirrors (see FACTS.md): tflite-micro at a pinned commit; every third-party
pin it records (third_party_downloads.inc and the ``*_download.sh`` scripts) placed under
``tools/make/downloads`` the way those scripts would place it, TFLM's patches applied with
``patch -p1``; an empty ``downloads/pigweed``; our toolchain instead of TFLM's download; PIL and numpy
(this Python) on PATH for generate_cc_arrays.py. The export then gets what it omits: Cortex_DFP's
device headers (cortex_m_generic's micro_time.cc includes ARMCMxx.h) and, for NPU trees, the
Ethos-U core driver's ``src/`` (the export copies only its ``include/``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ToolMissingError
from .cache import Installed, cache_key, cache_root, current, install, set_current
from .sources import Pin, Provider, fetch_pins

# tflite-micro's main branch as of 2026-08-20; --commit picks another (its pins are read from it)
TFLM_REPO = "tensorflow/tflite-micro"
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
KERNELS = ("cmsis-nn", "reference")
NPUS = ("ethos-u55", "ethos-u65", "ethos-u85")
# TARGET_ARCH values TFLM's cortex_m_generic target accepts (cortex_m_generic_makefile.inc)
CPUS = (
    "cortex-m0",
    "cortex-m0plus",
    "cortex-m3",
    "cortex-m4",
    "cortex-m4+fp",
    "cortex-m7",
    "cortex-m7+fp",
    "cortex-m33",
    "cortex-m55",
    "cortex-m85",
)
KIND = "tflm"


@dataclass(frozen=True)
class TflmOptions:
    kernels: str = "cmsis-nn"
    npu: str | None = None  # "ethos-u55" ...: export the Ethos-U kernel and driver
    cpu: str = "cortex-m55"
    commit: str = TFLM_COMMIT

    def makefile_options(self, toolchain_root: str) -> str:
        opts = [
            "TARGET=cortex_m_generic",
            f"TARGET_ARCH={self.cpu}",
            f"TARGET_TOOLCHAIN_ROOT={toolchain_root}",
        ]
        if self.kernels == "cmsis-nn":
            opts.append("OPTIMIZED_KERNEL_DIR=cmsis_nn")
        if self.npu:
            opts += ["CO_PROCESSOR=ethos_u", f"ETHOSU_ARCH={self.npu.removeprefix('ethos-')}"]
        return " ".join(opts)

    def key(self) -> str:
        return cache_key(f"tflm-{self.commit[:10]}", self.__dict__)

    def describe(self) -> str:
        return f"{self.kernels} kernels, {self.cpu}" + (f", {self.npu}" if self.npu else "")


def _read(root: Path, rel: str) -> str:
    try:
        return (root / rel).read_text()
    except OSError as e:
        raise InputError(f"tflite-micro at this commit has no {rel}: cannot read its pins") from e


def _one(pattern: str, text: str, where: str, what: str, index: int = 0) -> str:
    found = re.findall(pattern, text)
    if len(found) <= index:
        raise InputError(
            f"cannot find the pin of {what} in {where} (this tflite-micro commit lays it out otherwise)"
        )
    return found[index]


def third_party_pins(src: Path, options: TflmOptions) -> list[Pin]:
    """The third-party pins this tflite-micro checkout records, placed as its download scripts place them."""
    make = "tensorflow/lite/micro/tools/make"
    inc = _read(src, f"{make}/third_party_downloads.inc")

    def url_pin(var: str, repo: str) -> tuple[str, str | None]:
        url = _one(rf'{var}_URL\s*:?=\s*"?([^"\s]+)', inc, "third_party_downloads.inc", repo)
        md5 = re.findall(rf'{var}_MD5\s*:?=\s*"?([0-9a-f]{{32}})', inc)
        ref = re.sub(r"\.(zip|tar\.gz)$", "", url.rsplit("/", 1)[-1])
        return ref, (md5[0] if md5 else None)

    pins = []
    for var, repo, dest, patch in (
        ("GEMMLOWP", "google/gemmlowp", "gemmlowp", None),
        ("RUY", "google/ruy", "ruy", None),
        ("FLATBUFFERS", "google/flatbuffers", "flatbuffers", f"{make}/flatbuffers.patch"),
        ("KISSFFT", "mborgerding/kissfft", "kissfft", "third_party/kissfft/kissfft.patch"),
    ):
        ref, md5 = url_pin(var, repo)
        pins.append(Pin(repo, ref, f"{DOWNLOADS}/{dest}", md5=md5, patch=patch))
    cmsis = _read(src, f"{make}/ext_libs/cmsis_download.sh")
    sha = r'ZIP_PREFIX="([0-9a-f]{40})"'
    md5 = r'_MD5="([0-9a-f]{32})"'
    pins.append(
        Pin(
            "ARM-software/CMSIS_6",
            _one(sha, cmsis, "cmsis_download.sh", "CMSIS_6"),
            f"{DOWNLOADS}/cmsis",
            md5=_one(md5, cmsis, "cmsis_download.sh", "CMSIS_6"),
        )
    )
    pins.append(
        Pin(
            "ARM-software/Cortex_DFP",
            _one(sha, cmsis, "cmsis_download.sh", "Cortex_DFP", 1),
            f"{DOWNLOADS}/cmsis/Cortex_DFP",
            md5=_one(md5, cmsis, "cmsis_download.sh", "Cortex_DFP", 1),
        )
    )
    if options.kernels == "cmsis-nn":
        nn = _read(src, f"{make}/ext_libs/cmsis_nn_download.sh")
        pins.append(
            Pin(
                "ARM-software/CMSIS-NN",
                _one(r'ZIP_PREFIX_NN="([0-9a-f]{40})"', nn, "cmsis_nn_download.sh", "CMSIS-NN"),
                f"{DOWNLOADS}/cmsis_nn",
                md5=_one(md5, nn, "cmsis_nn_download.sh", "CMSIS-NN"),
            )
        )
    if options.npu:
        drv = _read(src, f"{make}/ethos_u_core_driver_download.sh")
        ref = _one(
            r"checkout\s+([0-9a-f]{40})", drv, "ethos_u_core_driver_download.sh", "ethos-u-core-driver"
        )
        # upstream is on gitlab.arm.com; this GitHub mirror holds the same commits
        pins.append(Pin("pytorch-labs/ethos-u-core-driver-mirror", ref, f"{DOWNLOADS}/ethos_u_core_driver"))
    return pins


def _toolchain_root() -> str:
    gcc = shutil.which("arm-none-eabi-gcc")
    if not gcc:
        raise ToolMissingError(
            "setup tflm needs arm-none-eabi-gcc on PATH (TFLM's Makefile lists sources with it)",
            hint="sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi (or `make setup`)",
        )
    return str(Path(gcc).parent) + "/"


def _export(src: Path, out: Path, options: TflmOptions, log: list[str]) -> None:
    for tool in ("make", "patch"):
        if not shutil.which(tool):
            raise ToolMissingError(f"setup tflm needs `{tool}`", hint=f"sudo apt-get install {tool}")
    downloads = src / DOWNLOADS
    (downloads / "pigweed").mkdir(parents=True, exist_ok=True)  # only its test helpers are referenced
    env = dict(os.environ)
    # generate_cc_arrays.py runs under `python3` from PATH and imports PIL and numpy: use this Python's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    script = src / "tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py"
    cmd = [
        sys.executable,
        str(script),
        f"--makefile_options={options.makefile_options(_toolchain_root())}",
        str(out),
    ]
    log.append("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, check=False)
    log.append(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise InputError(f"create_tflm_tree.py failed for tflite-micro {options.commit[:12]}:\n{tail}")
    # What the export omits: the CPU device headers micro_time.cc includes, and the driver's sources.
    dfp = downloads / "cmsis/Cortex_DFP/Device"
    for include in sorted(dfp.glob("*/Include")):
        shutil.copytree(
            include,
            out / "third_party/cmsis/Cortex_DFP/Device" / include.parent.name / "Include",
            dirs_exist_ok=True,
        )
    if options.npu:
        # the export carries the driver sources it compiles, not the private headers beside them
        drv = out / "third_party/ethos_u_core_driver/src"
        shutil.copytree(downloads / "ethos_u_core_driver/src", drv, dirs_exist_ok=True)


def _check_tree(out: Path, options: TflmOptions) -> None:
    from ..firmware.tflm_tree import TFLM_CMSIS_NN_MARKER, TFLM_NPU_REQUIRED, TFLM_REQUIRED

    need = TFLM_REQUIRED + (TFLM_NPU_REQUIRED if options.npu else ())
    need += (TFLM_CMSIS_NN_MARKER,) if options.kernels == "cmsis-nn" else ()
    missing = [f for f in need if not (out / f).is_file()]
    if missing:
        raise InputError(f"the exported TFLM tree lacks {', '.join(missing)}")


def setup_tflm(
    provider_factory: Any,
    options: TflmOptions,
    *,
    force: bool = False,
    make_current: bool = True,
    log: list[str] | None = None,
    root: Path | None = None,
) -> Installed:
    """Export (or find in the cache) the TFLM tree for ``options``; ``provider_factory()`` is called
    only when something must be fetched, so a cache hit needs neither --from nor the network."""
    log = log if log is not None else []

    def build(stage: Path) -> dict[str, Any]:
        provider: Provider = provider_factory()
        tmp_parent = (root or cache_root()) / "tmp"
        tmp_parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tflm-src-", dir=tmp_parent) as tmp:
            src = Path(tmp) / "tflite-micro"
            fetch_pins(provider, [Pin(TFLM_REPO, options.commit, "tflite-micro")], Path(tmp), log=log)
            pins = third_party_pins(src, options)
            fetch_pins(provider, pins, src, log=log)
            out = stage / "tree"
            _export(src, out, options, log)
        _check_tree(out, options)
        return {
            "name": "tflite-micro",
            "version": options.commit,
            "options": dict(options.__dict__),
            "tree": "tree",
            "sources": [{"repo": p.repo, "ref": p.ref} for p in pins],
            "from": provider.describe(),
            "unlocks": "--runtime tflm for generate/build/run/deploy"
            + (f" (NPU models on {options.npu} boards)" if options.npu else ""),
        }

    item = install(KIND, options.key(), build, force=force, root=root)
    if make_current:
        set_current(KIND, item, root=root)
    return item


def default_tree(*, npu: bool = False, root: Path | None = None) -> Path | None:
    """The tree builds use with no --tflm-root or MCUDEPLOY_TFLM_ROOT: the one `setup tflm` made
    current, else (for an NPU model) an installed tree with the Ethos-U kernel."""
    item = current(KIND, root=root)
    if item is not None and (not npu or item.manifest.get("options", {}).get("npu")):
        return item.path / str(item.manifest.get("tree", "tree"))
    if npu:
        from .cache import installed

        for cand in installed(KIND, root=root):
            if cand.manifest.get("options", {}).get("npu"):
                return cand.path / str(cand.manifest.get("tree", "tree"))
    return None
