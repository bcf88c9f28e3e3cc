"""The demo workload that needs no download: scikit-learn's bundled 8x8 handwritten digits.

Used by ``make demo``, the tests' shared fixture and the benchmarks, so every stage is exercised
on the same small CNN (conv → depthwise conv → max-pool → 1x1 conv → flatten → dense → softmax).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_bytes_atomic

SEED = 0


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # float32, (N, 8, 8, 1) in [0, 1]
    y_train: np.ndarray  # int64 labels 0..9
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_fraction: float = 0.2, seed: int = SEED) -> Split:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return Split(x[train], y[train], x[test], y[test])


def build_cnn(input_shape: tuple[int, ...] = (8, 8, 1), classes: int = 10, width: int = 16) -> Any:
    from ._tf import tensorflow

    tf = tensorflow()
    L = tf.keras.layers
    return tf.keras.Sequential(
        [
            L.Input(shape=input_shape, name="image"),
            L.Conv2D(width, 3, padding="same", activation="relu", name="conv1"),
            L.DepthwiseConv2D(3, padding="same", activation="relu", name="dwconv"),
            L.MaxPooling2D(2, name="pool"),
            L.Conv2D(width * 2, 1, activation="relu", name="pwconv"),
            L.Flatten(name="flatten"),
            L.Dense(classes, name="logits"),
            L.Softmax(name="probs"),
        ],
        name="digits_cnn",
    )


def train_cnn(split: Split | None = None, epochs: int = 30, seed: int = SEED, verbose: int = 0) -> Any:
    """Train the digits CNN deterministically (about 10 s on 2 cores); returns a tf.keras model."""
    from ._tf import quiet_tf_stderr, tensorflow

    tf = tensorflow()
    split = split or load_digits_split()
    tf.keras.utils.set_random_seed(seed)
    with contextlib.suppress(Exception):  # already enabled / unsupported: determinism is best effort
        tf.config.experimental.enable_op_determinism()
    model = build_cnn()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    with quiet_tf_stderr():
        model.fit(split.x_train, split.y_train, epochs=epochs, batch_size=32, verbose=verbose, shuffle=True)
    return model


def save_npz(path: str | os.PathLike[str], x: np.ndarray, y: np.ndarray | None = None) -> Path:
    """Write ``x`` (and labels ``y``) as an .npz atomically."""
    import io

    buf = io.BytesIO()
    if y is None:
        np.savez(buf, x=x)
    else:
        np.savez(buf, x=x, y=y)
    return write_bytes_atomic(path, buf.getvalue())
