from __future__ import annotations

import pytest

from mcudeploy.errors import ModelFormatError
from mcudeploy.model import parse_tflite, read_tflite


def test_digits_view(digits_int8):
    m = digits_int8
    assert [op.opcode for op in m.operators] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
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
    with pytest.raises(ModelFormatError, match="x.tflite: not a TFLite model"):
        read_tflite(p)


def test_too_short():
    with pytest.raises(ModelFormatError, match="too short"):
        parse_tflite(b"TFL3", "t.tflite")
