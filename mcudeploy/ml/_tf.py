"""Lazy, quiet TensorFlow import: commands that never touch TF must not pay for it.

TensorFlow's C++ runtime writes start-up chatter straight to file descriptor 2 (no CUDA driver,
CPU instruction sets, a tf.data attribute notice), before and regardless of TF_CPP_MIN_LOG_LEVEL.
:func:`quiet_tf_stderr` drops exactly those known lines and passes everything else through;
:func:`captured_fd2` is the capture underneath it, also used where native code (TFLiteConverter,
host TFLM) prints text mcudeploy reads or keeps out of the way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from functools import cache
from typing import Any

from ..errors import ToolMissingError, UnsupportedError

_NOISE = re.compile(
    rb"(All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuInit|"
    rb"Could not find cuda drivers|TF-TRT Warning|oneDNN custom operations|"
    rb"rebuild TensorFlow with the appropriate compiler flags|This TensorFlow binary is optimized|"
    rb"use_unbounded_threadpool|Created TensorFlow Lite XNNPACK delegate|"
    rb"fully_quantize: \d, inference_type|Statistics for quantized inputs were expected|"
    rb"^\s*warnings\.warn\($)"
)


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[bytes]]:
    """Send file descriptor 2 (what native code prints) to a temp file for the duration.

    The yielded list receives the captured bytes on exit, also when the body raised. Without a
    real fd 2 (an embedded interpreter) nothing is captured and the list stays empty.
    """
    out: list[bytes] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield out
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read())


@contextlib.contextmanager
def quiet_tf_stderr() -> Iterator[None]:
    """Capture fd 2 for the duration; re-emit every line that is not known TensorFlow chatter."""
    captured: list[bytes] = []
    try:
        with captured_fd2() as captured:
            yield
    finally:
        kept = [ln for ln in b"".join(captured).splitlines(keepends=True) if not _NOISE.search(ln)]
        if kept:
            os.write(2, b"".join(kept))


@cache
def tensorflow() -> Any:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with quiet_tf_stderr():
            import tensorflow as tf

            tf.config.list_logical_devices()  # device discovery (and its CUDA probing) happens here
    except ImportError as e:  # pragma: no cover - the package depends on it
        raise ToolMissingError(
            f"tensorflow is not installed ({e})", hint="pip install tensorflow tf-keras"
        ) from None
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


def tflite_interpreter(data: bytes, source: str, *, reference: bool, preserve_all: bool = False) -> Any:
    """TFLite's interpreter for a model's bytes (``source`` names it in errors), tensors allocated:
    its reference kernels or its default (optimised) ones, and with ``preserve_all`` every
    intermediate readable (for the per-layer error)."""
    tf = tensorflow()
    kind = tf.lite.experimental.OpResolverType
    try:
        with warnings.catch_warnings(), quiet_tf_stderr():  # it announces its move to LiteRT, and XNNPACK
            warnings.simplefilter("ignore")
            interp = tf.lite.Interpreter(
                model_content=data,
                experimental_op_resolver_type=kind.BUILTIN_REF if reference else kind.AUTO,
                experimental_preserve_all_tensors=preserve_all,
                num_threads=1,
            )
            interp.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise UnsupportedError(f"{source}: the TFLite interpreter cannot run it: {e}") from None
    return interp
