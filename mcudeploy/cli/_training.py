"""Options shared by the commands that fine-tune a Keras model (optimize, advise)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def training_options(val_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """MODEL, --data, --val and the fine-tuning knobs (--epochs, --lr, --batch-size, --seed)."""
    decorators = [
        click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path)),
        click.option(
            "-d",
            "--data",
            required=True,
            type=click.Path(path_type=Path),
            help="Training data: .npz with x and y.",
        ),
        click.option("--val", type=click.Path(path_type=Path), help=val_help),
        click.option(
            "--epochs", type=click.IntRange(min=1), default=2, show_default=True, help="Epochs per stage."
        ),
        click.option(
            "--lr",
            type=click.FloatRange(min=0, min_open=True),
            default=1e-3,
            show_default=True,
            help="Adam LR.",
        ),
        click.option(
            "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Batch size."
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed (same inputs → same model)."
        ),
    ]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for deco in reversed(decorators):
            fn = deco(fn)
        return fn

    return apply
