"""The --json option's one behaviour, shared by every command that has it."""

from __future__ import annotations

from pathlib import Path

import click


def emit_json(json_out: Path | None, text: str) -> bool:
    """Write ``text`` (a JSON document) to ``json_out``, atomically, or to stdout for ``-``.

    Returns True when it went to stdout: the command then prints nothing else, so the output parses.
    """
    if json_out is None:
        return False
    if str(json_out) == "-":
        click.echo(text, nl=False)
        return True
    from .._io import write_text_atomic

    write_text_atomic(json_out, text)
    return False
