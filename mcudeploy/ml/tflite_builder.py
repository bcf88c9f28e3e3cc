"""Build small TFLite flatbuffers directly: single-op (or small-graph) models with chosen shapes,
options, quantization parameters and weights, for kernel tests that need what a converter won't emit.

Built with the ``tflite`` package's generated builder functions on a ``flatbuffers.Builder``; the
result is validated by :func:`mcudeploy.ml.model.parse_tflite` like any other model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import tflite

from .model import TENSOR_TYPES, Model, parse_tflite

_TYPES = {name: code for code, (name, _) in TENSOR_TYPES.items()}  # dtype -> TFLite TensorType

# builtin op -> its options table (None: the op takes no options)
OPTIONS: dict[str, str | None] = {
    "ADD": "AddOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "CONCATENATION": "ConcatenationOptions",
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "DEQUANTIZE": None,
    "EXP": None,
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "HARD_SWISH": None,
    "LEAKY_RELU": "LeakyReluOptions",
    "LOGISTIC": None,
    "MAX_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions",
    "MUL": "MulOptions",
    "PAD": "PadOptions",
    "PADV2": "PadV2Options",
    "QUANTIZE": None,
    "RELU": None,
    "RELU6": None,
    "PACK": "PackOptions",
    "RELU_N1_TO_1": None,
    "RESHAPE": "ReshapeOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "SOFTMAX": "SoftmaxOptions",
    "SPLIT": "SplitOptions",
    "SPLIT_V": "SplitVOptions",
    "SQUEEZE": "SqueezeOptions",
    "STRIDED_SLICE": "StridedSliceOptions",
    "SUB": "SubOptions",
    "TANH": None,
    "TRANSPOSE": "TransposeOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
    "UNPACK": "UnpackOptions",
}


@dataclass
class _Tensor:
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] | None
    zero_point: tuple[int, ...] | None
    axis: int
    data: bytes | None
    name: str


@dataclass
class _Op:
    opcode: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


class GraphBuilder:
    """Collect tensors and ops, then :meth:`build` a validated :class:`Model`."""

    def __init__(self) -> None:
        self.tensors: list[_Tensor] = []
        self.ops: list[_Op] = []

    def tensor(
        self,
        shape: tuple[int, ...] | list[int],
        dtype: str = "int8",
        scale: float | list[float] | tuple[float, ...] | None = None,
        zero_point: int | list[int] | tuple[int, ...] | None = None,
        *,
        axis: int = 0,
        data: np.ndarray | bytes | None = None,
        name: str | None = None,
    ) -> int:
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data.astype(np.dtype(dtype).newbyteorder("<"))).tobytes()
        sc = None if scale is None else tuple(float(s) for s in np.atleast_1d(scale))
        zp = None
        if sc is not None:
            zp = tuple(int(z) for z in np.atleast_1d(zero_point if zero_point is not None else 0))
            if len(zp) == 1 and len(sc) > 1:
                zp = zp * len(sc)
        self.tensors.append(
            _Tensor(tuple(int(d) for d in shape), dtype, sc, zp, axis, data, name or f"t{len(self.tensors)}")
        )
        return len(self.tensors) - 1

    def const(self, values: np.ndarray, dtype: str, **quant: Any) -> int:
        values = np.asarray(values)
        return self.tensor(values.shape, dtype, data=values, **quant)

    def op(self, opcode: str, inputs: list[int], outputs: list[int], **options: Any) -> None:
        if opcode not in OPTIONS:
            raise ValueError(f"the builder does not know op {opcode}")
        self.ops.append(_Op(opcode, list(inputs), list(outputs), options))

    def build(self, inputs: list[int], outputs: list[int], source: str = "built.tflite") -> Model:
        return parse_tflite(self.to_bytes(inputs, outputs), source)

    # -- serialization ------------------------------------------------------------------------
    def to_bytes(self, inputs: list[int], outputs: list[int]) -> bytes:
        b = flatbuffers.Builder(1024)

        def vec(values: list[int] | list[float], dtype: Any) -> int:
            return b.CreateNumpyVector(np.asarray(values, dtype=dtype))

        def offsets(start: Any, items: list[int]) -> int:
            start(b, len(items))
            for o in reversed(items):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        # buffers: 0 is the empty sentinel, then one per constant tensor
        buffer_data: list[bytes | None] = [None]
        tensor_buffer: list[int] = []
        for t in self.tensors:
            if t.data is None:
                tensor_buffer.append(0)
            else:
                buffer_data.append(t.data)
                tensor_buffer.append(len(buffer_data) - 1)
        buf_offs = []
        for data in buffer_data:
            d = b.CreateByteVector(data) if data else None
            tflite.BufferStart(b)
            if d is not None:
                tflite.BufferAddData(b, d)
            buf_offs.append(tflite.BufferEnd(b))

        tensor_offs = []
        for t, buf in zip(self.tensors, tensor_buffer, strict=True):
            name = b.CreateString(t.name)
            shape = vec(list(t.shape), np.int32)
            qoff = None
            if t.scale is not None:
                sc = vec(list(t.scale), np.float32)
                zp = vec(list(t.zero_point or ()), np.int64)
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
                qoff = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, _TYPES[t.dtype])
            tflite.TensorAddBuffer(b, buf)
            tflite.TensorAddName(b, name)
            if qoff is not None:
                tflite.TensorAddQuantization(b, qoff)
            tensor_offs.append(tflite.TensorEnd(b))

        codes = sorted({op.opcode for op in self.ops})
        code_offs = []
        for c in codes:
            n = getattr(tflite.BuiltinOperator, c)
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(n, 127))
            tflite.OperatorCodeAddBuiltinCode(b, n)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offs.append(tflite.OperatorCodeEnd(b))

        op_offs = []
        for op in self.ops:
            opts_off, opts_type = self._options(b, op)
            ins, outs = vec(op.inputs, np.int32), vec(op.outputs, np.int32)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, codes.index(op.opcode))
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if opts_off is not None:
                tflite.OperatorAddBuiltinOptionsType(b, opts_type)
                tflite.OperatorAddBuiltinOptions(b, opts_off)
            op_offs.append(tflite.OperatorEnd(b))

        t_vec = offsets(tflite.SubGraphStartTensorsVector, tensor_offs)
        o_vec = offsets(tflite.SubGraphStartOperatorsVector, op_offs)
        i_vec, out_vec = vec(inputs, np.int32), vec(outputs, np.int32)
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, t_vec)
        tflite.SubGraphAddOperators(b, o_vec)
        tflite.SubGraphAddInputs(b, i_vec)
        tflite.SubGraphAddOutputs(b, out_vec)
        tflite.SubGraphAddName(b, sg_name)
        sg = tflite.SubGraphEnd(b)

        sg_vec = offsets(tflite.ModelStartSubgraphsVector, [sg])
        codes_vec = offsets(tflite.ModelStartOperatorCodesVector, code_offs)
        bufs_vec = offsets(tflite.ModelStartBuffersVector, buf_offs)
        desc = b.CreateString("mcudeploy tflite_builder")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, sg_vec)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, bufs_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _options(b: flatbuffers.Builder, op: _Op) -> tuple[int | None, int]:
        cls = OPTIONS[op.opcode]
        if cls is None:
            return None, 0
        vectors = {k: v for k, v in op.options.items() if isinstance(v, (list, tuple))}
        vec_offs = {k: b.CreateNumpyVector(np.asarray(v, dtype=np.int32)) for k, v in vectors.items()}
        getattr(tflite, f"{cls}Start")(b)
        for key, value in sorted(op.options.items()):
            camel = "".join(part.capitalize() for part in key.split("_"))
            add = getattr(tflite, f"{cls}Add{camel}", None)
            if add is None:
                raise ValueError(f"{cls} has no field {key!r}")
            add(b, vec_offs.get(key, value))
        return getattr(tflite, f"{cls}End")(b), getattr(tflite.BuiltinOptions, cls)
