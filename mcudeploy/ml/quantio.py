"""Real-valued samples <-> the raw values a quantized tensor holds (the model's I/O boundary)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DatasetError, UnsupportedError
from .model import Tensor

_INT_DTYPES = ("int8", "uint8", "int16")


def quantize_input(x: np.ndarray, t: Tensor) -> np.ndarray:
    """Real-valued samples -> the raw values the model's input tensor takes (any I/O dtype).

    Integer samples already in the tensor's dtype are taken as raw values; a float tensor takes
    the floats unchanged.
    """
    x = np.asarray(x)
    if t.dtype == "float32":
        return x.astype(np.float32)
    if t.dtype not in _INT_DTYPES:
        raise UnsupportedError(
            f"input tensor {t.name!r} has dtype {t.dtype}; evaluate handles int8/uint8/int16/float32"
        )
    if x.dtype == np.dtype(t.dtype):
        return x
    if t.quant is None:
        raise UnsupportedError(f"input tensor {t.name!r} is {t.dtype} without quantization parameters")
    info = np.iinfo(t.dtype)
    q = np.round(x.astype(np.float64) / t.quant.scale[0]) + t.quant.zero_point[0]
    return np.clip(q, info.min, info.max).astype(t.dtype)


def dequantize(q: np.ndarray, t: Tensor) -> np.ndarray:
    if t.quant is None or t.dtype == "float32":
        return q.astype(np.float32)
    return ((q.astype(np.float64) - t.quant.zero_point[0]) * t.quant.scale[0]).astype(np.float32)


def nchw_to_nhwc(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``x`` unchanged, or transposed when its samples are the NCHW form of an (H, W, C) ``shape``
    (PyTorch/ONNX data for the NHWC model); samples already NHWC win when both read the same."""
    shape = tuple(shape)
    if x.ndim == 4 and len(shape) == 3 and x.shape[1:] != shape and x.shape[1:] == (shape[2], *shape[:2]):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def fit_samples(x: np.ndarray, t: Tensor, source: str) -> np.ndarray:
    """Samples shaped (N, *input shape without batch); a missing channel axis of 1 is added and
    NCHW samples of an (H, W, C) input are transposed (never reshaped: that would scramble them)."""
    want = tuple(t.shape[1:])
    x = nchw_to_nhwc(x, want)
    if x.shape[1:] == want:
        return x
    if len(x) and int(np.prod(x.shape[1:])) == int(np.prod(want)):
        return x.reshape((len(x), *want))
    raise DatasetError(
        f"{source}: samples have shape {list(x.shape[1:])}, but the model's input "
        f"{t.name!r} takes {list(want)}"
    )
