"""Keras builders of the MLPerf-Tiny-style architectures (random init).

They exist to exercise runtimes and converters on realistic graph shapes — DS-CNN keyword spotting,
a MobileNet-style visual-wake-words net, ResNet-8, an FC autoencoder and the digits CNN — not to
be accurate. The plain names are scaled down so a conversion takes seconds; the ``*_mlperf`` /
``vww_mobilenet_v2`` entries are the full-size benchmark models of :data:`BENCHMARK_MODELS`, which
``benchmarks/bench_runtime_c.py`` measures and the QEMU tests run on every CPU board.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .model import Model


def _keras() -> Any:
    from ._tf import tensorflow

    return tensorflow().keras


def _layers() -> Any:
    return _keras().layers


def ds_cnn(
    input_shape: tuple[int, int, int] = (49, 10, 1), classes: int = 12, width: int = 16, blocks: int = 2
) -> Any:
    """DS-CNN keyword spotting (MLPerf Tiny KWS): conv 10x4/2, then ``blocks`` x (dw 3x3 + pw 1x1)."""
    L = _layers()
    x = inp = L.Input(shape=input_shape, name="mfcc")
    x = L.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    for _ in range(blocks):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        x = L.Conv2D(width, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
    x = L.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = L.Flatten()(x)
    x = L.Dense(classes)(x)
    out = L.Softmax()(x)
    return _keras().Model(inp, out, name="ds_cnn")


def mobilenet_vww(input_shape: tuple[int, int, int] = (32, 32, 3), classes: int = 2, alpha: int = 8) -> Any:
    """MobileNetV1-style visual wake words: explicit zero padding before strided depthwise convs, ReLU6."""
    L = _layers()
    x = inp = L.Input(shape=input_shape, name="image")
    x = L.Conv2D(alpha, 3, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    for filters, stride, mult in ((2 * alpha, 1, 1), (4 * alpha, 2, 2), (4 * alpha, 1, 1)):
        if stride == 2:
            x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
        x = L.DepthwiseConv2D(
            3,
            strides=stride,
            depth_multiplier=mult,
            padding="valid" if stride == 2 else "same",
            use_bias=False,
        )(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(classes)(x)
    out = L.Softmax()(x)
    return _keras().Model(inp, out, name="mobilenet_vww")


def resnet8(input_shape: tuple[int, int, int] = (32, 32, 3), classes: int = 10, width: int = 8) -> Any:
    """ResNet-8 (MLPerf Tiny image classification): three residual stacks with ADD shortcuts."""
    L = _layers()
    x = inp = L.Input(shape=input_shape, name="image")
    x = L.Conv2D(width, 3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        stride = 1 if i == 0 else 2
        y = L.Conv2D(filters, 3, strides=stride, padding="same")(x)
        y = L.BatchNormalization()(y)
        y = L.Activation("relu")(y)
        y = L.Conv2D(filters, 3, padding="same")(y)
        y = L.BatchNormalization()(y)
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride)(x)
        x = L.Activation("relu")(L.Add()([x, y]))
    x = L.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = L.Flatten()(x)
    out = L.Dense(classes, activation="softmax")(x)
    return _keras().Model(inp, out, name="resnet8")


def fc_autoencoder(inputs: int = 64, hidden: int = 32, bottleneck: int = 8) -> Any:
    """FC autoencoder (MLPerf Tiny anomaly detection): dense + ReLU down to a bottleneck and back."""
    L = _layers()
    x = inp = L.Input(shape=(inputs,), name="features")
    for units in (hidden, hidden, bottleneck, hidden, hidden):
        x = L.Dense(units)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
    out = L.Dense(inputs)(x)
    return _keras().Model(inp, out, name="fc_autoencoder")


def digits_cnn() -> Any:
    """The digits CNN of :mod:`mcudeploy.ml.digits` (untrained)."""
    from .digits import build_cnn

    return build_cnn()


def ds_cnn_mlperf() -> Any:
    """MLPerf Tiny KWS DS-CNN as benchmarked: 49x10x1, 64 channels, 4 depthwise-separable blocks."""
    return ds_cnn(width=64, blocks=4)


def vww_mobilenet_v2() -> Any:
    """MobileNet-v2 (inverted residuals, ReLU6, PAD before strided depthwise), 96x96x3, width 0.25."""
    return _keras().applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=2)


def resnet8_mlperf() -> Any:
    """MLPerf Tiny ResNet-8: 32x32x3, 16/32/64 filters, 10 classes."""
    return resnet8(width=16)


ZOO: dict[str, Callable[[], Any]] = {
    "ds_cnn": ds_cnn,
    "mobilenet_vww": mobilenet_vww,
    "resnet8": resnet8,
    "fc_autoencoder": fc_autoencoder,
    "digits_cnn": digits_cnn,
    "ds_cnn_mlperf": ds_cnn_mlperf,
    "vww_mobilenet_v2": vww_mobilenet_v2,
    "resnet8_mlperf": resnet8_mlperf,
}

# The four models the C runtime is measured on (benchmarks/bench_runtime_c.py) and that CI runs on
# every QEMU CPU board: short name -> zoo name; ``digits`` is the trained digits CNN, not a zoo entry.
BENCHMARK_MODELS: dict[str, str | None] = {
    "digits": None,
    "ds_cnn": "ds_cnn_mlperf",
    "vww": "vww_mobilenet_v2",
    "resnet8": "resnet8_mlperf",
}


def randomize(keras_model: Any, seed: int = 0) -> Any:
    """Give BatchNormalization layers non-trivial statistics so folding and requantization matter."""
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.normal(0, 0.2, beta.shape).astype(np.float32),
                    rng.normal(0, 0.2, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 1.5, var.shape).astype(np.float32),
                ]
            )
    return keras_model


def build_int8(name: str, *, seed: int = 0, samples: int = 32) -> Model:
    """Build zoo model ``name``, randomize it and quantize it fully int8 on random calibration data."""
    from ._tf import tensorflow
    from .quantize import convert_int8

    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r} (known: {', '.join(sorted(ZOO))})")
    tensorflow().keras.utils.set_random_seed(seed)
    km = randomize(ZOO[name](), seed)
    shape = tuple(int(d) for d in km.input_shape[1:])
    rep = np.random.default_rng(seed).normal(0.0, 1.0, (samples, *shape)).astype(np.float32)
    return convert_int8(km, rep, samples=samples, source=f"{name}_int8.tflite")


def benchmark_model(name: str, *, seed: int = 0, samples: int = 32) -> Model:
    """One of :data:`BENCHMARK_MODELS` (or any zoo name) fully int8; ``digits`` is trained (~10 s)."""
    if name in BENCHMARK_MODELS and BENCHMARK_MODELS[name] is None:
        from .digits import load_digits_split, train_cnn
        from .quantize import convert_int8

        split = load_digits_split()
        return convert_int8(train_cnn(split), split.x_train, source="digits_int8.tflite")
    return build_int8(BENCHMARK_MODELS.get(name) or name, seed=seed, samples=samples)
