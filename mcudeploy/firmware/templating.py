"""The one Jinja environment over ``firmware_templates/`` (shipped as ``mcudeploy.templates``).

StrictUndefined: a template that names a value nobody passed fails loudly instead of rendering
an empty string into firmware.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from .._resources import package_data


def _root() -> Any:  # importlib.resources Traversable
    return package_data("mcudeploy.templates")


@cache
def template_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_root())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, ctx: dict[str, Any]) -> bytes:
    """Template ``name`` rendered with ``ctx``, as UTF-8 bytes."""
    return template_env().get_template(name).render(ctx).encode("utf-8")


def template_bytes(name: str) -> bytes:
    """A template file's raw bytes (files copied verbatim, without rendering)."""
    return _root().joinpath(name).read_bytes()


def has_template(name: str) -> bool:
    return _root().joinpath(name).is_file()


def template_names(folder: str) -> list[str]:
    """File names in a template folder."""
    return [p.name for p in _root().joinpath(folder).iterdir()]
