"""The one Jinja environment over ``firmware_templates/`` (shipped as ``mcudeploy.templates``).

StrictUndefined: a template that names a value nobody passed fails loudly instead of rendering
an empty string into firmware.
"""

from __future__ import annotations

import importlib.resources
from functools import cache

import jinja2


@cache
def template_env() -> jinja2.Environment:
    root = importlib.resources.files("mcudeploy.templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def template_bytes(name: str) -> bytes:
    """A template file's raw bytes (files copied verbatim, without rendering)."""
    return importlib.resources.files("mcudeploy.templates").joinpath(name).read_bytes()
