"""Small builders for the synthetic graphs the tests make with :class:`GraphBuilder`: one place for the
option boilerplate of convolutions and pools and for the TFLite conventions of int8 weights and bias
scales (as Vela's tests build their graphs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mcudeploy.ml.tflite_builder import GraphBuilder


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


def conv(
    g: GraphBuilder,
    ins: list[int],
    out: int,
    *,
    padding: int,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    act: int = 0,
    depth_multiplier: int | None = None,
) -> None:
    """A CONV_2D, or a DEPTHWISE_CONV_2D when ``depth_multiplier`` is given; ``ins`` is [input, weights,
    bias or -1]; stride and dilation are (h, w) or one number for both."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    opts = dict(
        padding=padding,
        stride_h=sh,
        stride_w=sw,
        dilation_h_factor=dh,
        dilation_w_factor=dw,
        fused_activation_function=act,
    )
    if depth_multiplier is None:
        g.op("CONV_2D", ins, [out], **opts)
    else:
        g.op("DEPTHWISE_CONV_2D", ins, [out], depth_multiplier=depth_multiplier, **opts)


def pool(
    g: GraphBuilder,
    opcode: str,
    x: int,
    out: int,
    *,
    padding: int,
    size: int | tuple[int, int],
    stride: int | tuple[int, int],
    act: int = 0,
) -> None:
    """An AVERAGE_POOL_2D or MAX_POOL_2D with a (h, w) filter ``size`` and stride (or one number)."""
    (fh, fw), (sh, sw) = _pair(size), _pair(stride)
    g.op(
        opcode,
        [x],
        [out],
        padding=padding,
        stride_h=sh,
        stride_w=sw,
        filter_height=fh,
        filter_width=fw,
        fused_activation_function=act,
    )


def int8_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random symmetric int8 weights: [-127, 127], as TFLite quantizes them."""
    return rng.integers(-127, 128, shape).astype(np.int8)


def bias_scales(in_scale: float, weight_scales: Sequence[float], channels: int) -> list[float]:
    """The bias scale TFLite writes per output channel: input scale x weight scale, in float32 (a
    per-tensor weight scale repeats over the channels)."""
    return [float(np.float32(in_scale) * np.float32(s)) for s in np.resize(weight_scales, channels)]
