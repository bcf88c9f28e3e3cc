"""The report, rendered by headless Chromium, really shows its plots (pixels, not markup)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcudeploy.browser import screenshot
from mcudeploy.report import write_report

from .test_report import DATA

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="needs headless Chromium: run `make setup` (apt-get install chromium)",
)

BLUE, GREEN = (0x4C, 0x72, 0xB0), (0x55, 0xA8, 0x68)  # bar colours used by the plots


def _count(png: Path, rgb: tuple[int, int, int]) -> int:
    px = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return int((np.abs(px - np.array(rgb, dtype=np.int16)) <= 6).all(axis=-1).sum())


def test_screenshot_shows_plots(tmp_path: Path):
    html, _ = write_report(DATA, tmp_path / "with")
    bare, _ = write_report({"title": DATA["title"], "facts": DATA["facts"]}, tmp_path / "bare")
    shot = screenshot(html, tmp_path / "with.png")
    control = screenshot(bare, tmp_path / "bare.png")
    assert _count(shot, BLUE) > 5000 and _count(shot, GREEN) > 5000
    assert _count(control, BLUE) == 0 and _count(control, GREEN) == 0
