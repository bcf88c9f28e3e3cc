"""Lazy, quiet TensorFlow import: commands that never touch TF must not pay for it."""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from .errors import ToolMissingError


@cache
def tensorflow() -> Any:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - the package depends on it
        raise ToolMissingError(
            f"tensorflow is not installed ({e})", hint="pip install tensorflow tf-keras"
        ) from None
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tf
