"""Other versions of real tools, for cache keys and fingerprints that must notice a toolchain change."""

from __future__ import annotations

import shutil
from pathlib import Path


def another_version_of(tool: str, where: Path) -> Path:
    """A folder to put first on PATH holding ``tool`` and its siblings (arm-none-eabi-*, qemu-*): the
    real programs, but ``tool --version`` reports another build -- another toolchain, as far as any
    cache key can tell."""
    real = Path(shutil.which(tool) or "")
    where.mkdir()
    for p in real.parent.glob(tool.split("-")[0] + "-*"):
        (where / p.name).symlink_to(p)
    wrapper = where / tool
    wrapper.unlink()
    wrapper.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "{tool} (another build) 99.1"; exit 0; }}\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return where
