"""The fully-int8 gate on real converted models and on small synthetic graphs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.errors import NotFullyInt8Error
from mcudeploy.ml import gates
from mcudeploy.ml.model import Model, Operator, QuantParams, Subgraph, Tensor, parse_tflite
from tests.hyp import examples

Q = QuantParams((0.1,), (0,))


# -- synthetic graph builder (Vela style: no binary fixtures) -------------------------------
def _t(i: int, dtype: str, *, const: bool = False, quant: QuantParams | None = Q, name: str = "") -> Tensor:
    shape = (4,)
    data = bytes(4 * 8) if const else None
    return Tensor(i, name or f"net/layer{i}/op", shape, dtype, 0, quant, data=data)


def _model(
    tensors: list[Tensor], ops: list[Operator], inputs: tuple[int, ...], outputs: tuple[int, ...]
) -> Model:
    sg = Subgraph("main", tuple(tensors), tuple(ops), inputs, outputs)
    return Model(
        data=b"", source="synthetic.tflite", version=3, description="", subgraphs=(sg,), num_buffers=1
    )


def _op(i: int, opcode: str, ins: tuple[int, ...], outs: tuple[int, ...], builtin: bool = True) -> Operator:
    return Operator(i, opcode, builtin, 1, ins, outs)


def _conv(
    weight: str = "int8", bias: str = "int32", act: str = "int8", bias_quant: QuantParams | None = Q
) -> Model:
    tensors = [
        _t(0, act, name="serving_default_x:0"),
        _t(1, weight, const=True, name="net/conv/Conv2D"),
        _t(2, bias, const=True, quant=bias_quant, name="net/conv/BiasAdd"),
        _t(3, act, name="net/conv/Relu;net/conv/BiasAdd"),
        _t(4, "int32", const=True, quant=None, name="arith.constant"),
        _t(5, act, name="net/flatten/Reshape"),
    ]
    ops = [_op(0, "CONV_2D", (0, 1, 2), (3,)), _op(1, "RESHAPE", (3, 4), (5,))]
    return _model(tensors, ops, (0,), (5,))


# -- synthetic --------------------------------------------------------------------------------
def test_int8_graph_with_int32_bias_and_shape_constant_passes() -> None:
    assert gates.fully_int8_violations(_conv()) == []


@pytest.mark.parametrize(
    ("kwargs", "rule", "tensor"),
    [
        ({"weight": "float32"}, "constant_dtype", "net/conv/Conv2D"),
        ({"weight": "uint8"}, "constant_dtype", "net/conv/Conv2D"),
        ({"bias": "int64"}, "constant_dtype", "net/conv/BiasAdd"),  # int64 bias only in 16x8
        ({"bias": "float32"}, "constant_dtype", "net/conv/BiasAdd"),
    ],
)
def test_bad_constants_are_named(kwargs: dict[str, str], rule: str, tensor: str) -> None:
    found = gates.fully_int8_violations(_conv(**kwargs), mode="int8")
    assert [(v.tensor, v.opcode, v.layer) for v in found if v.rule == rule] == [(tensor, "CONV_2D", "conv")]
    # A float constant also makes the op itself a float (hybrid) op.
    assert {v.rule for v in found} == ({rule, "integer_kernel"} if "float32" in kwargs.values() else {rule})


def test_int32_constant_in_a_weight_slot_is_refused() -> None:
    m = _conv(weight="int32")
    found = gates.fully_int8_violations(m)
    assert len(found) == 1 and "weight 'net/conv/Conv2D' is int32" in found[0].detail


def test_16x8_allows_int64_bias_and_int16_activations() -> None:
    m = _conv(bias="int64", act="int16")
    assert gates.detect_mode(m) == "16x8"
    assert gates.fully_int8_violations(m) == []
    # The same graph judged as plain int8: every int16 activation is reported once.
    found = gates.fully_int8_violations(m, mode="int8")
    assert sorted(v.tensor_index for v in found if v.rule == "activation_dtype") == [0, 3, 5]


def test_custom_op_is_refused_but_the_npu_op_is_not() -> None:
    tensors = [
        _t(0, "int8"),
        _t(1, "int8"),
        _t(2, "uint8", const=True, quant=None),
        _t(3, "uint8", quant=None),
    ]
    custom = _model(tensors, [_op(0, "MyOp", (0,), (1,), builtin=False)], (0,), (1,))
    found = gates.fully_int8_violations(custom)
    assert [(v.rule, v.opcode) for v in found] == [("builtin_op", "MyOp")]
    # Vela's ethos-u op carries uint8 command stream / scratch inputs: not int8 tensors to judge.
    npu = _model(tensors, [_op(0, "ethos-u", (0, 2, 3), (1,), builtin=False)], (0,), (1,))
    assert gates.fully_int8_violations(npu) == []


@examples(40)
@given(st.lists(st.sampled_from(["int8", "int16", "uint8", "float32"]), min_size=2, max_size=8))
def test_each_non_int8_activation_is_reported_exactly_once(dtypes: list[str]) -> None:
    tensors = [_t(i, d) for i, d in enumerate(dtypes)]
    ops = [_op(i, "RELU", (i,), (i + 1,)) for i in range(len(dtypes) - 1)]
    m = _model(tensors, ops, (0,), (len(dtypes) - 1,))
    found = gates.fully_int8_violations(m, mode="int8")
    reported = [v.tensor_index for v in found if v.rule == "activation_dtype"]
    assert sorted(reported) == [i for i, d in enumerate(dtypes) if d != "int8"]
    floats = {i for i, op in enumerate(ops) if "float32" in (dtypes[i], dtypes[i + 1])}
    assert {v.op_index for v in found if v.rule == "integer_kernel"} == floats


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("digits_cnn/conv1/Relu;digits_cnn/conv1/BiasAdd", "conv1"),
        ("model/block1/conv/Conv2D", "block1/conv"),
        ("StatefulPartitionedCall/net/dense/MatMul", "dense"),
        ("serving_default_image:0", None),
        ("StatefulPartitionedCall:0", None),
        ("tfl.dequantize", None),
        ("net/Relu", None),
    ],
)
def test_layer_name(name: str, layer: str | None) -> None:
    assert gates.layer_name(name) == layer


def test_docs_and_messages_come_from_the_same_rule_text() -> None:
    docs = gates.gate_docs()
    for rule in gates.RULES:
        first = inspect.getdoc(rule).splitlines()[0]  # type: ignore[union-attr]
        assert first in docs and rule.__name__ in docs
    with pytest.raises(NotFullyInt8Error) as e:
        gates.check_fully_int8(_conv(weight="float32"))
    assert inspect.getdoc(gates.constant_dtype).splitlines()[0] in str(e.value)  # type: ignore[union-attr]
    assert "layer 'conv'" in str(e.value) and e.value.exit_code == 1


# -- real converted models ------------------------------------------------------------------
def test_quantized_digits_passes(digits_int8: Model) -> None:
    assert gates.fully_int8_violations(digits_int8) == []
    gates.check_fully_int8(digits_int8)


def test_float_model_lists_every_op_and_layer(digits_keras) -> None:
    from mcudeploy.ml.quantize import float_tflite

    f = float_tflite(digits_keras, source="digits_float.tflite")
    with pytest.raises(NotFullyInt8Error) as e:
        gates.check_fully_int8(f)
    msg = str(e.value)
    assert msg.startswith("digits_float.tflite: not fully int8")
    flagged = {v.op_index for v in gates.fully_int8_violations(f) if v.rule == "integer_kernel"}
    assert flagged == {op.index for op in f.operators}
    for op in f.operators:
        assert f"op {op.index} {op.opcode}" in msg
    for layer in ("conv1", "dwconv", "pwconv", "logits"):
        assert f"layer '{layer}'" in msg


@pytest.mark.parametrize(("io", "flag"), [("float32", "allow_float_io"), ("uint8", "allow_uint8_io")])
def test_non_int8_io_passes_only_when_asked_for(digits_keras, digits_split, io: str, flag: str) -> None:
    from mcudeploy.ml.quantize import convert_int8

    m = convert_int8(digits_keras, digits_split.x_train, samples=50, io_dtype=io)
    found = gates.fully_int8_violations(m)
    assert {v.tensor_index for v in found} == {m.main.inputs[0], m.main.outputs[0]}
    assert all(f"{io} I/O was not asked for" in v.detail for v in found)
    assert gates.fully_int8_violations(m, **{flag: True}) == []


def test_select_tf_op_is_named_with_its_layer() -> None:
    """A real Flex model (tf.math.erf kept by SELECT_TF_OPS) fails the gate naming Erf and its layer."""
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    inp = tf.keras.Input((8,), name="x")
    h = tf.keras.layers.Dense(8, name="d1")(inp)
    h = tf.keras.layers.Lambda(lambda t: tf.math.erf(t), name="erf_layer")(h)
    out = tf.keras.layers.Dense(4, name="d2")(h)
    conv = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out, name="net"))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    m = parse_tflite(conv.convert(), "flex.tflite")
    flex = [v for v in gates.fully_int8_violations(m) if v.rule == "builtin_op"]
    assert [(v.opcode, v.layer) for v in flex] == [("FlexErf", "erf_layer")]
    assert "TensorFlow op 'Erf'" in flex[0].detail
    assert np.all([v.layer for v in gates.fully_int8_violations(m) if v.opcode == "FlexErf"])


def test_docs_file_is_in_sync_with_the_rules() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "fully_int8_gate.md"
    body = doc.read_text().split("\n", 1)[1]  # after the "generated by" comment
    assert body == gates.gate_docs(), "regenerate docs/fully_int8_gate.md from mcudeploy.ml.gates.gate_docs()"
