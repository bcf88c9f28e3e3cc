"""Options, and the loading behind them, shared by the commands that fine-tune a Keras model
(optimize, advise)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def training_options(val_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """MODEL, --data, --val and the fine-tuning knobs (--epochs, --lr, --batch-size, --seed).

    The defaults mirror :class:`mcudeploy.ml.optimize.FineTune` (kept literal so --help needs no TF).
    """
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
            "--epochs",
            type=click.IntRange(min=1),
            default=4,  # mirrors mcudeploy.ml.optimize.FineTune.epochs
            show_default=True,
            help="Fine-tuning epochs per stage; each stage keeps its best epoch on a 10 % hold-out.",
        ),
        click.option(
            "--lr",
            type=click.FloatRange(min=0, min_open=True),
            help="Adam learning rate for every stage [per stage, well below training's: prune 1e-4, "
            "cluster 1e-5, qat 1e-4].",
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


def load_training(model_path: Path, data: Path, val: Path | None) -> tuple[Any, Any, Any, Any, Any]:
    """MODEL, --data and --val (default: --data) of :func:`training_options`, loaded and each data set
    checked against the model: (keras model, x, y, x_val, y_val)."""
    from ..console import err_console
    from ..ml.datasets import check_for_keras, load_labelled
    from ..ml.model import load_keras

    x, y = load_labelled(data)
    x_val, y_val = load_labelled(val) if val else (x, y)
    with err_console.status(f"loading {model_path.name}"):
        keras = load_keras(model_path)
    x = check_for_keras(x, y, keras, str(data))
    x_val = check_for_keras(x_val, y_val, keras, str(val or data))
    return keras, x, y, x_val, y_val
