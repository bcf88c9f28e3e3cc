"""Render an HTML page to PNG with headless Chromium (used to check that reports show their plots)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import TargetError, ToolMissingError

# Flags for a closed network: without the background-networking ones Chromium keeps dialling out.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ToolMissingError("headless Chromium is not installed", hint="sudo apt-get install -y chromium")


def screenshot(page: Path, png: Path, width: int = 1000, height: int = 2400, timeout: float = 60.0) -> Path:
    exe = find_chromium()
    with tempfile.TemporaryDirectory(prefix="mcd-chromium-") as profile:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TargetError(f"Chromium did not render {page.name} within {timeout:.0f} s") from None
    if proc.returncode != 0 or not png.exists():
        raise TargetError(f"Chromium failed to render {page.name}: {proc.stderr.strip()[-500:]}")
    return png
