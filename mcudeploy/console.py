"""Shared rich consoles and progress bars (stderr for progress and errors, stdout for results)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

# Width of results written to a file or a pipe: wide enough that no table column is cut or folded.
PIPE_WIDTH = 400


class _ResultConsole(Console):
    """stdout console: terminal width on a terminal; on a pipe or file, never rich's 80-column default.

    Rich falls back to 80 columns when stdout is not a terminal, which cuts wide tables (advise,
    compile --sweep) in CI logs and redirected output. COLUMNS, when set, still wins.
    """

    @property
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS"):
            return ConsoleDimensions(max(dims.width, PIPE_WIDTH), dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _ResultConsole(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)

T = TypeVar("T")


def progress_bar(*columns: ProgressColumn, enabled: bool = True) -> Progress:
    """A transient progress bar on stderr: the task's description, the bar, then ``columns``. Hidden
    when stderr is not a terminal (logs get no control codes) or when not ``enabled``."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        console=err_console,
        transient=True,
        disable=not (enabled and err_console.is_terminal),
    )


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (hidden when stderr is not a terminal)."""
    bar = progress_bar(MofNCompleteColumn(), TimeRemainingColumn())
    with bar:
        yield from bar.track(items, total=total, description=escape(description))
