"""The --json option and its one behaviour, shared by every command that has it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import _io


def json_option(help: str, *, bare: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json PATH`` (``json_out``): write the command's result there, or to stdout for ``-``; with
    ``bare``, a ``--json`` without a value also means stdout."""
    bare_flag: dict[str, Any] = {"is_flag": False, "flag_value": "-"} if bare else {}
    return click.option(
        "--json", "json_out", type=click.Path(path_type=Path, allow_dash=True), help=help, **bare_flag
    )


def emit_json(json_out: Path | None, data: Any, *, sort_keys: bool = True) -> bool:
    """Write ``data`` as indented JSON to ``json_out``, atomically, or to stdout for ``-``; nothing
    (and no serialising) without --json.

    Returns True when it went to stdout: the command then prints nothing else, so the output parses.
    """
    if json_out is None:
        return False
    text = _io.json_text(data, sort_keys=sort_keys)
    if str(json_out) == "-":
        click.echo(text, nl=False)
        return True
    _io.write_text_atomic(json_out, text)  # looked up at call time: tests fill the disk here
    return False
