"""Stage ``quantize``: float Keras model + representative data -> fully int8 .tflite.

(Initial core; representative-data sources, 16x8, the fully-int8 gate and the CLI build on it.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import InputError
from .model import Model, parse_tflite

IO_DTYPES = ("int8", "uint8", "float32")
MODES = ("int8", "16x8")


def convert_int8(
    keras_model: Any,
    representative: np.ndarray,
    *,
    samples: int = 200,
    io_dtype: str = "int8",
    mode: str = "int8",
    per_channel: bool = True,
    source: str = "model.tflite",
) -> Model:
    """Full-integer post-training quantization with TFLiteConverter; the batch dimension is fixed to 1."""
    from ._tf import tensorflow

    tf = tensorflow()
    if io_dtype not in IO_DTYPES:
        raise InputError(f"unknown I/O dtype {io_dtype!r} (choose from {', '.join(IO_DTYPES)})")
    if mode not in MODES:
        raise InputError(f"unknown quantization mode {mode!r} (choose from {', '.join(MODES)})")
    rep = np.asarray(representative, dtype=np.float32)[:samples]
    if len(rep) == 0:
        raise InputError("the representative dataset is empty")
    in_shape = (1, *keras_model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(in_shape, tf.float32, name=keras_model.inputs[0].name.split(":")[0])])
    def serving(x: Any) -> Any:
        return keras_model(x, training=False)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([serving.get_concrete_function()], keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def gen() -> Iterator[list[np.ndarray]]:
        for x in rep:
            yield [x.reshape(in_shape)]

    conv.representative_dataset = gen
    if mode == "16x8":
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = {"int8": tf.int16 if mode == "16x8" else tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_dtype]
    conv.inference_input_type = io
    conv.inference_output_type = io
    if not per_channel:
        conv._experimental_disable_per_channel = True
    data = conv.convert()
    return parse_tflite(data, source=source)
