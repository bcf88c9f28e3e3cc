from __future__ import annotations

import pytest

from mcudeploy.errors import ModelFormatError
from mcudeploy.ml.model import parse_tflite, read_tflite


def test_digits_view(digits_int8):
    m = digits_int8
    assert [op.opcode for op in m.operators] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "MAX_POOL_2D",
        "CONV_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
    ]
    assert m.inputs[0].shape == (1, 8, 8, 1) and m.inputs[0].dtype == "int8"
    assert m.outputs[0].dtype == "int8"
    conv = m.operators[0]
    w = m.tensors[conv.inputs[1]]
    assert w.quant is not None and w.quant.per_channel and len(w.quant.scale) == w.shape[0]
    assert conv.options["padding"] == 0 and conv.options["stride_w"] == 1
    assert m.total_macs() > 0 and len(m.sha256) == 64


def test_read_errors(tmp_path):
    with pytest.raises(Exception, match="no such file"):
        read_tflite(tmp_path / "missing.tflite")
    p = tmp_path / "x.tflite"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(ModelFormatError, match=r"x\.tflite: not a TFLite model"):
        read_tflite(p)


def test_too_short():
    with pytest.raises(ModelFormatError, match="too short"):
        parse_tflite(b"TFL3", "t.tflite")


# -- semantic validation: real fields of the digits model edited one at a time -----------------
def _edit(model, label: str, value) -> bytes:
    from .test_fuzz_tflite import _put, locate_fields

    field = next(f for f in locate_fields(model.data) if f.label == label)
    return _put(model.data, field.pos, field.fmt, value)


@pytest.mark.parametrize(
    ("label", "value", "needle"),
    [
        ("tensor10.scale[0]", 0.0, "scales must be finite and > 0"),
        ("tensor10.scale[0]", float("nan"), "scales must be finite and > 0"),
        ("tensor10.zero_point[0]", 128, "outside int8's range"),
        ("tensor7.quantized_dimension", 0, "per-channel scales"),
        ("tensor0.shape[3]", 3, "channels"),
        ("tensor0.shape[3]", 0, "empty dimension"),
        ("tensor13.shape[3]", 31, "output shape"),
        ("op0.options[6]", 0, "strides"),
        ("op6.builtin_options_type", 1, "carries Conv2DOptions, but SOFTMAX takes SoftmaxOptions"),
        ("op6.builtin_options_type", 0, "SOFTMAX needs SoftmaxOptions"),
        ("op1.inputs[0]", 12, "before anything writes it"),
        ("op2.outputs[0]", 10, "already written"),
        ("op1.inputs[2]", -1, "input 2 is missing"),
    ],
)
def test_inconsistent_graphs_are_rejected(digits_int8, label: str, value, needle: str) -> None:
    data = _edit(digits_int8, label, value)
    with pytest.raises(ModelFormatError) as e:
        parse_tflite(data, "edited.tflite")
    assert "edited.tflite" in str(e.value) and needle in str(e.value), str(e.value)


def test_the_unedited_model_and_harmless_edits_pass(digits_int8) -> None:
    assert parse_tflite(digits_int8.data, "a.tflite").to_dict()["sha256"] == digits_int8.sha256
    m = parse_tflite(_edit(digits_int8, "tensor16.scale[0]", 0.5), "b.tflite")  # any positive scale is valid
    assert m.outputs[0].quant.scale == (0.5,)


# The C runtime's convolution lowering (runtime_c/lower.py _conv_like) relies on these shape rules.
# (input HWC, filter shape, output HWC, stride, depthwise) -> the parser's complaint
BAD_CONV_SHAPES = {
    "grouped CONV_2D": ((4, 4, 4), (2, 3, 3, 2), (4, 4, 2), 1, False, "the filter expects"),
    "depthwise channels not a multiple": ((4, 4, 4), (1, 3, 3, 6), (4, 4, 6), 1, True, "does not fit input"),
    "output size not from the options": ((5, 5, 2), (3, 3, 3, 2), (2, 2, 3), 2, False, "does not match"),
    "depthwise output size": ((5, 5, 2), (1, 3, 3, 2), (5, 4, 2), 1, True, "does not match"),
}


@pytest.mark.parametrize("case", list(BAD_CONV_SHAPES))
def test_convolution_shapes_that_do_not_fit_are_refused_by_name(case: str) -> None:
    import numpy as np

    from mcudeploy.ml.tflite_builder import GraphBuilder
    from tests.graphs import conv

    xs, ws, ys, stride, dw, needle = BAD_CONV_SHAPES[case]
    g = GraphBuilder()
    x = g.tensor((1, *xs), "int8", 0.1, 0)
    w = g.const(np.ones(ws, np.int8), "int8", scale=0.02, zero_point=0)
    b = g.const(np.zeros(ys[-1], np.int32), "int32", scale=0.002, zero_point=0)
    y = g.tensor((1, *ys), "int8", 0.1, 0)
    conv(g, [x, w, b], y, padding=0, stride=stride, depth_multiplier=1 if dw else None)
    op = "DEPTHWISE_CONV_2D" if dw else "CONV_2D"
    with pytest.raises(ModelFormatError, match=rf"built\.tflite: operator 0 \({op}\): .*{needle}"):
        g.build([x], [y])
