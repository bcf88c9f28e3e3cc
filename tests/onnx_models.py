"""Small ONNX models built with the ``onnx`` package, weights fixed by a seeded numpy generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def small_cnn(path: Path, *, flatten_map: bool = False, seed: int = 0) -> Path:
    """NCHW 1x8x8 input: Conv3x3(8)+BN+ReLU -> depthwise 3x3 stride 2 + ReLU6 -> Conv1x1(16) + ReLU ->
    MaxPool 2 -> (GlobalAveragePool + Flatten, or Flatten of the 2x2 map) -> Gemm(10) -> Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def w(name: str, *shape: int, scale: float | None = None) -> onnx.TensorProto:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.normal(size=shape) * (scale if scale is not None else 1 / np.sqrt(fan_in))
        return numpy_helper.from_array(a.astype(np.float32), name)

    inits = [
        w("c1_w", 8, 1, 3, 3), w("c1_b", 8, scale=0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_g"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "bn_b"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "bn_m"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_v"),
        w("dw_w", 8, 1, 3, 3), w("dw_b", 8, scale=0.1),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
        w("pw_w", 16, 8, 1, 1), w("pw_b", 16, scale=0.1),
    ]  # fmt: skip
    # Zero-mean rows: post-ReLU features share a positive offset that would otherwise pick one class.
    fc = rng.normal(size=(10, 64 if flatten_map else 16)) * 3 / np.sqrt(16)
    fc -= fc.mean(axis=1, keepdims=True)
    inits += [numpy_helper.from_array(fc.astype(np.float32), "fc_w"), w("fc_b", 10, scale=0.0)]
    nodes = [
        helper.make_node("Conv", ["input", "c1_w", "c1_b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_g", "bn_b", "bn_m", "bn_v"], ["bn"], name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node(
            "Conv", ["r1", "dw_w", "dw_b"], ["dw"], name="dwconv", group=8, strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Clip", ["dw", "zero", "six"], ["r2"], name="relu6"),
        helper.make_node("Conv", ["r2", "pw_w", "pw_b"], ["pw"], name="pwconv"),
        helper.make_node("Relu", ["pw"], ["r3"], name="relu3"),
        helper.make_node("MaxPool", ["r3"], ["mp"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    if flatten_map:
        nodes.append(helper.make_node("Flatten", ["mp"], ["flat"], name="flatten"))
    else:
        nodes += [
            helper.make_node("GlobalAveragePool", ["mp"], ["gap"], name="gap"),
            helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        ]
    nodes += [
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mcudeploy-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def teacher_split(path: Path, n: int, seed: int = 1, margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """NCHW samples labelled by the float model itself (onnxruntime), kept where its top-1 leads the
    runner-up by ``margin``: a fixed-weight model then has a float accuracy of 100 % by construction."""
    from mcudeploy.ml.onnx_import import onnxruntime_session

    sess = onnxruntime_session(path)
    x = np.random.default_rng(seed).normal(size=(4 * n, 1, 8, 8)).astype(np.float32)
    p = np.concatenate([sess.run(None, {"input": s[None]})[0] for s in x])
    top2 = np.sort(p, axis=1)[:, -2:]
    keep = np.flatnonzero(top2[:, 1] - top2[:, 0] > margin)[:n]
    return x[keep], p[keep].argmax(1).astype(np.int64)
