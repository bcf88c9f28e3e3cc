"""Data folders shipped inside the package (``boards/`` as ``mcudeploy.boards_data``,
``firmware_templates/`` as ``mcudeploy.templates``), found in a source checkout too.

pyproject maps the repo's top-level folders to those package names when installed; a checkout put on
``sys.path`` without installing (a ``.pth`` to the tree, ``PYTHONPATH``) has no such packages, so fall
back to the folder beside ``mcudeploy/``.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path
from typing import Any

_SOURCE_FOLDERS = {"mcudeploy.boards_data": "boards", "mcudeploy.templates": "firmware_templates"}


@cache
def package_data(package: str) -> Any:  # importlib.resources Traversable
    """The shipped data folder ``package`` (a key of the mapping above)."""
    try:
        return importlib.resources.files(package)
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parent.parent / _SOURCE_FOLDERS[package]
        if not folder.is_dir():
            raise
        return folder
