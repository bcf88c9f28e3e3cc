"""ONNX in: a float ONNX model (e.g. exported from PyTorch) rebuilt as an NHWC tf.keras model.

Why not onnx2tf (the maintained ONNX -> TFLite converter on PyPI)? Checked 2026-12-03: onnx2tf
1.29.24 pins tensorflow==2.19.0, numpy==1.26.4, onnx==1.19.1 and protobuf==4.25.5, so installing it
would downgrade this TensorFlow 2.21 / numpy 2 environment. The ops that microcontroller CNNs use are
few, so mcudeploy rebuilds them as Keras layers (weights transposed to NHWC) and everything after
(quantize, optimize, advise, evaluate, deploy) takes the result like any Keras model. The rebuild is
checked numerically against onnxruntime on seeded inputs before it is used, and the evaluation's
float rung runs the ONNX file itself in onnxruntime.

Layout: ONNX image models take NCHW, the rebuilt model NHWC (what TFLite and CMSIS-NN use). A
Flatten of a feature map keeps PyTorch's (C, H, W) element order by permuting the next Gemm's weight
columns, so the int8 graph gets no transpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ToolMissingError, UnsupportedError

SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Conv", "Dropout", "Flatten", "Gemm",
    "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Relu", "Reshape", "Sigmoid", "Softmax",
)  # fmt: skip
_TOLERANCE = 1e-4  # rebuild vs onnxruntime, relative to the output's magnitude


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ToolMissingError(
            "reading .onnx models needs the onnx and onnxruntime packages",
            hint="pip install 'mcudeploy[onnx]' (or: make setup)",
        ) from None
    return onnx


def onnxruntime_session(path: str | os.PathLike[str]) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ToolMissingError(
            "running .onnx models needs onnxruntime", hint="pip install 'mcudeploy[onnx]' (or: make setup)"
        ) from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass
class _Value:
    tensor: Any  # the Keras tensor
    nchw: bool  # an image tensor: ONNX NCHW, held here as NHWC
    flat_chw: tuple[int, int, int] | None = None  # a Flatten of a (C, H, W) map, held in H, W, C order


def run_onnx(path: str | os.PathLike[str], x_nhwc: np.ndarray, batch: int = 1) -> np.ndarray:
    """Outputs of the ONNX model in onnxruntime for NHWC (or flat) samples, one row per sample."""
    sess = onnxruntime_session(path)
    inp = sess.get_inputs()[0]
    x = np.asarray(x_nhwc, np.float32)
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    outs = [
        sess.run(None, {inp.name: x[i : i + batch]})[0].reshape(len(x[i : i + batch]), -1)
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(outs)


def load_onnx(path: str | os.PathLike[str]) -> Any:
    """The ONNX model at ``path`` as an NHWC tf.keras model, checked against onnxruntime.

    The returned model carries ``mcudeploy_onnx_path``: the float rung of ``evaluate`` runs the file
    itself in onnxruntime.
    """
    onnx = _onnx()
    p = Path(path)
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # onnx raises its own and protobuf's errors for a bad file
        raise InputError(f"{p}: not a valid ONNX model ({e})") from None
    keras = _Builder(model, p.name).build()
    _check_against_onnxruntime(keras, p)
    keras.mcudeploy_onnx_path = str(p)
    return keras


class _Builder:
    def __init__(self, model: Any, source: str) -> None:
        from onnx import numpy_helper

        from ._tf import tensorflow

        self.tf = tensorflow()
        self.L = self.tf.keras.layers
        self.graph = model.graph
        self.source = source
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer
        }
        for node in self.graph.node:  # Constant nodes are initializers too
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        self.values: dict[str, _Value] = {}
        self.used_names: set[str] = set()

    def fail(self, node: Any, why: str) -> UnsupportedError:
        return UnsupportedError(
            f"{self.source}: node {node.name or node.output[0]!r} ({node.op_type}): {why}",
            hint=f"mcudeploy reads these ONNX ops: {', '.join(SUPPORTED_OPS)}",
        )

    def layer_name(self, node: Any) -> str:
        """A Keras layer name from the ONNX node name (shown in fully-int8 and per-layer reports)."""
        base = "".join(c if c.isalnum() or c in "_-" else "_" for c in (node.name or node.op_type)).strip("_")
        name, i = base or node.op_type.lower(), 1
        while name in self.used_names:
            i += 1
            name = f"{base}_{i}"
        self.used_names.add(name)
        return name

    def build(self) -> Any:
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise UnsupportedError(
                f"{self.source}: mcudeploy takes models with one input and one output "
                f"(this one has {len(inputs)} and {len(self.graph.output)})"
            )
        dims = [
            d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim
        ]
        if len(dims) not in (2, 4) or any(d is None for d in dims[1:]):
            raise UnsupportedError(
                f"{self.source}: input {inputs[0].name!r} has shape {dims}; mcudeploy takes a fixed "
                "[N, C, H, W] image or [N, features] input"
            )
        if len(dims) == 4:
            _, c, h, w = dims
            inp = self.tf.keras.Input((h, w, c), batch_size=1, name="input")
            self.values[inputs[0].name] = _Value(inp, nchw=True)
        else:
            inp = self.tf.keras.Input((dims[1],), batch_size=1, name="input")
            self.values[inputs[0].name] = _Value(inp, nchw=False)
        for node in self.graph.node:
            if node.op_type == "Constant":
                continue
            handler = getattr(self, f"_op_{node.op_type}", None)
            if handler is None:
                raise self.fail(node, "operator not supported")
            out = handler(node, _attrs(node))
            self.values[node.output[0]] = out
        result = self.values[self.graph.output[0].name]
        if result.flat_chw is not None:
            raise self.fail(self.graph.node[-1], "a flattened feature map as the model output")
        return self.tf.keras.Model(inp, result.tensor, name=Path(self.source).stem.replace(".", "_"))

    # -- helpers ---------------------------------------------------------------------------
    def arg(self, node: Any, i: int) -> _Value:
        name = node.input[i]
        if name not in self.values:
            raise self.fail(node, f"input {name!r} is a constant or unknown where an activation is expected")
        v = self.values[name]
        if v.flat_chw is not None and node.op_type not in ("Gemm", "MatMul", "Identity", "Dropout"):
            raise self.fail(node, "reads a flattened feature map (only Gemm/MatMul may)")
        return v

    def const(self, node: Any, i: int, what: str) -> np.ndarray:
        if i >= len(node.input) or node.input[i] not in self.consts:
            raise self.fail(node, f"{what} must be a constant")
        return self.consts[node.input[i]]

    def apply(self, node: Any, layer: Callable[..., Any], v: _Value, **kw: Any) -> _Value:
        return _Value(layer(v.tensor), nchw=v.nchw, **kw)

    def _pad(
        self, node: Any, a: dict[str, Any], k: tuple[int, int], stride: tuple[int, int]
    ) -> tuple[str, Any]:
        """Keras padding for ONNX pads/auto_pad: 'same' where that is exact, else explicit zeros."""
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER",) or (auto == "NOTSET" and not any(a.get("pads", []))):
            return ("same" if auto == "SAME_UPPER" else "valid"), None
        if auto not in ("NOTSET", "VALID"):
            raise self.fail(node, f"auto_pad {auto} is not supported")
        if auto == "VALID":
            return "valid", None
        t, left, b, r = a["pads"]
        if (
            stride == (1, 1)
            and t == b == (k[0] - 1) // 2
            and left == r == (k[1] - 1) // 2
            and k[0] % 2
            and k[1] % 2
        ):
            return "same", None
        return "valid", ((t, b), (left, r))

    # -- operators -------------------------------------------------------------------------
    def _op_Conv(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        w = self.const(node, 1, "the weight")
        bias = self.const(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        if w.ndim != 4 or not x.nchw:
            raise self.fail(node, "only 2-D convolutions of NCHW images are supported")
        out_c, in_per_group, kh, kw = w.shape
        group = int(a.get("group", 1))
        stride = tuple(a.get("strides", [1, 1]))
        dil = tuple(a.get("dilations", [1, 1]))
        padding, explicit = self._pad(node, a, (kh, kw), stride)
        name = self.layer_name(node)
        t = x.tensor
        if explicit is not None:
            t = self.L.ZeroPadding2D(explicit, name=f"{name}_pad")(t)
        in_c = int(t.shape[-1])
        use_bias = bias is not None
        if group == 1:
            layer = self.L.Conv2D(
                out_c,
                (kh, kw),
                strides=stride,
                padding=padding,
                dilation_rate=dil,
                use_bias=use_bias,
                name=name,
            )
            kernel = w.transpose(2, 3, 1, 0)
        elif group == in_c and in_per_group == 1 and out_c % in_c == 0:
            mult = out_c // in_c
            layer = self.L.DepthwiseConv2D(
                (kh, kw),
                strides=stride,
                padding=padding,
                dilation_rate=dil,
                depth_multiplier=mult,
                use_bias=use_bias,
                name=name,
            )
            # ONNX output channel c*mult + m reads input channel c: Keras (kh, kw, C, mult)
            kernel = w.reshape(in_c, mult, kh, kw).transpose(2, 3, 0, 1)
        else:
            raise self.fail(node, f"grouped convolution (group={group}) that is not depthwise")
        y = layer(t)
        layer.set_weights([kernel, bias] if use_bias else [kernel])
        return _Value(y, nchw=True)

    def _op_BatchNormalization(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        gamma, beta, mean, var = (
            self.const(node, i, n) for i, n in enumerate(("scale", "bias", "mean", "var"), 1)
        )
        layer = self.L.BatchNormalization(
            axis=-1, epsilon=float(a.get("epsilon", 1e-5)), name=self.layer_name(node)
        )
        y = layer(x.tensor)
        layer.set_weights([gamma, beta, mean, var])
        return _Value(y, nchw=x.nchw)

    def _op_Relu(self, node: Any, a: dict[str, Any]) -> _Value:
        return self.apply(node, self.L.ReLU(name=self.layer_name(node)), self.arg(node, 0))

    def _op_Clip(self, node: Any, a: dict[str, Any]) -> _Value:
        lo = a.get(
            "min", float(self.const(node, 1, "min")) if len(node.input) > 1 and node.input[1] else None
        )
        hi = a.get(
            "max", float(self.const(node, 2, "max")) if len(node.input) > 2 and node.input[2] else None
        )
        if lo != 0 or hi is None:
            raise self.fail(node, f"Clip({lo}, {hi}): only Clip(0, max) (ReLU6 and the like) is supported")
        return self.apply(
            node, self.L.ReLU(max_value=float(hi), name=self.layer_name(node)), self.arg(node, 0)
        )

    def _op_Sigmoid(self, node: Any, a: dict[str, Any]) -> _Value:
        return self.apply(node, self.L.Activation("sigmoid", name=self.layer_name(node)), self.arg(node, 0))

    def _op_Softmax(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        axis = int(a.get("axis", -1))
        if x.nchw or axis not in (1, -1):
            raise self.fail(node, "only a Softmax over the features of a [N, K] tensor is supported")
        return self.apply(node, self.L.Softmax(name=self.layer_name(node)), x)

    def _pool(self, node: Any, a: dict[str, Any], cls: Any) -> _Value:
        x = self.arg(node, 0)
        k = tuple(a["kernel_shape"])
        stride = tuple(a.get("strides", [1, 1]))
        if any(a.get("pads", [])) or int(a.get("ceil_mode", 0)):
            raise self.fail(node, "padded or ceil_mode pooling is not supported")
        return self.apply(node, cls(k, strides=stride, padding="valid", name=self.layer_name(node)), x)

    def _op_MaxPool(self, node: Any, a: dict[str, Any]) -> _Value:
        return self._pool(node, a, self.L.MaxPooling2D)

    def _op_AveragePool(self, node: Any, a: dict[str, Any]) -> _Value:
        return self._pool(node, a, self.L.AveragePooling2D)

    def _op_GlobalAveragePool(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        return self.apply(node, self.L.GlobalAveragePooling2D(keepdims=True, name=self.layer_name(node)), x)

    def _flatten(self, node: Any, x: _Value) -> _Value:
        h, w, c = (int(d) for d in x.tensor.shape[1:])
        y = self.L.Flatten(name=self.layer_name(node))(x.tensor)
        return _Value(y, nchw=False, flat_chw=(c, h, w) if h * w > 1 else None)

    def _op_Flatten(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        if int(a.get("axis", 1)) != 1:
            raise self.fail(node, "only Flatten(axis=1) is supported")
        return self._flatten(node, x) if x.nchw else x

    def _op_Reshape(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        shape = [int(d) for d in self.const(node, 1, "the target shape")]
        if len(shape) != 2:
            raise self.fail(node, f"Reshape to {shape}: only a flatten to [N, -1] is supported")
        return self._flatten(node, x) if x.nchw else x

    def _dense(self, node: Any, x: _Value, kernel: np.ndarray, bias: np.ndarray | None) -> _Value:
        if x.nchw:
            raise self.fail(node, "a fully connected layer on an unflattened feature map")
        if x.flat_chw is not None:  # rows in PyTorch's (C, H, W) order -> this tensor's (H, W, C)
            c, h, w = x.flat_chw
            kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
        layer = self.L.Dense(kernel.shape[1], use_bias=bias is not None, name=self.layer_name(node))
        y = layer(x.tensor)
        layer.set_weights([kernel, bias] if bias is not None else [kernel])
        return _Value(y, nchw=False)

    def _op_Gemm(self, node: Any, a: dict[str, Any]) -> _Value:
        x = self.arg(node, 0)
        if int(a.get("transA", 0)) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
            raise self.fail(node, "only Gemm with transA=0, alpha=1, beta=1 is supported")
        b = self.const(node, 1, "B")
        kernel = b.T if int(a.get("transB", 0)) else b
        bias = self.const(node, 2, "C").reshape(-1) if len(node.input) > 2 and node.input[2] else None
        return self._dense(node, x, np.ascontiguousarray(kernel), bias)

    def _op_MatMul(self, node: Any, a: dict[str, Any]) -> _Value:
        return self._dense(node, self.arg(node, 0), self.const(node, 1, "the right-hand matrix"), None)

    def _op_Add(self, node: Any, a: dict[str, Any]) -> _Value:
        ins = [n for n in node.input]
        if all(n in self.values for n in ins):
            x, y = self.arg(node, 0), self.arg(node, 1)
            if x.nchw != y.nchw:
                raise self.fail(node, "adds tensors of different layouts")
            return _Value(self.L.Add(name=self.layer_name(node))([x.tensor, y.tensor]), nchw=x.nchw)
        act = next((i for i, n in enumerate(ins) if n in self.values), None)
        if act is None:
            raise self.fail(node, "adds two constants")
        x, c = self.arg(node, act), self.const(node, 1 - act, "the addend")
        if x.nchw and c.ndim >= 3:  # a per-channel (C, 1, 1) addend
            c = np.moveaxis(c.reshape(c.shape[-3:]), 0, -1)
        bias = self.tf.constant(c.astype(np.float32))
        layer = self.L.Lambda(lambda t, b=bias: t + b, name=self.layer_name(node))
        return self.apply(node, layer, x)

    def _op_Identity(self, node: Any, a: dict[str, Any]) -> _Value:
        return self.arg(node, 0)

    def _op_Dropout(self, node: Any, a: dict[str, Any]) -> _Value:
        return self.arg(node, 0)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check_against_onnxruntime(keras: Any, path: Path) -> None:
    """Refuse a rebuild that does not compute what onnxruntime computes on the same inputs."""
    shape = tuple(int(d) for d in keras.inputs[0].shape[1:])
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)
    ref = run_onnx(path, x)
    got = np.asarray(keras.predict(x, batch_size=1, verbose=0)).reshape(len(x), -1)
    if ref.shape != got.shape:
        raise UnsupportedError(
            f"{path.name}: the rebuilt model's output has shape {got.shape[1:]}, "
            f"onnxruntime's {ref.shape[1:]}"
        )
    err = float(np.max(np.abs(ref - got)))
    if err > _TOLERANCE * max(1.0, float(np.max(np.abs(ref)))):
        raise UnsupportedError(
            f"{path.name}: the rebuilt Keras model differs from onnxruntime by up to {err:.3g}",
            hint="please report the model's ops; convert it to Keras or TFLite another way meanwhile",
        )
