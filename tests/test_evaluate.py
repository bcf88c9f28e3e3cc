"""The accuracy ladder on the session's digits models, its comparisons and the TFLM arena."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mcudeploy.errors import DatasetError, GateError, UnsupportedError
from mcudeploy.ml.evaluate import (
    check_gates,
    compare,
    enforce_gates,
    evaluate,
    evaluate_files,
    quantize_input,
)
from mcudeploy.ml.model import QuantParams, Tensor
from mcudeploy.ml.tflm_host import HostTFLM


@pytest.fixture(scope="module")
def ladder(digits_int8, digits_keras, digits_split):
    from mcudeploy.ml.quantize import float_tflite

    return evaluate(
        digits_int8,
        digits_split.x_test,
        digits_split.y_test,
        float_model=digits_keras,
        float_tflite=float_tflite(digits_keras),
        dataset="digits_test.npz",
    )


def _tensor(dtype: str, scale: float = 0.5, zp: int = 3, shape: tuple[int, ...] = (1, 4)) -> Tensor:
    return Tensor(0, "in", shape, dtype, 0, QuantParams((scale,), (zp,)))


def test_ladder_accuracies_match_independent_runs(ladder, digits_int8, digits_keras, digits_split):
    x, y = digits_split.x_test, digits_split.y_test
    assert [r.name for r in ladder.rungs] == ["float", "tflite-int8", "tflm-int8"]
    assert ladder.samples == len(y)
    float_top1 = digits_keras.predict(x, verbose=0).argmax(axis=1)
    assert ladder.rung("float").accuracy == pytest.approx(100 * np.mean(float_top1 == y), abs=1e-3)
    # quantize by the model's own parameters, then run host TFLM directly
    q = digits_int8.inputs[0].quant
    xq = np.clip(np.round(x / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)
    tflm = HostTFLM(digits_int8)
    top1 = np.array([tflm.run(s)[0].argmax() for s in xq])
    assert ladder.rung("tflm-int8").accuracy == pytest.approx(100 * np.mean(top1 == y), abs=1e-3)
    for prev, cur in zip(ladder.rungs, ladder.rungs[1:], strict=False):
        assert cur.drop_pp == pytest.approx(prev.accuracy - cur.accuracy, abs=1e-6)


def test_ladder_meets_issue_bounds(ladder, digits_int8):
    assert ladder.int8_drop_pp is not None and ladder.int8_drop_pp <= 0.5
    ref = ladder.agreement_for("reference")
    assert ref is not None and ref.top1_agreement_pct >= 99.0 and ref.max_lsb_diff <= 1
    assert ladder.agreement_for("default") is not None
    for a in ladder.agreement:
        assert a.top1_agreement_pct >= a.byte_identical_pct or a.byte_identical_pct == 100.0
        assert (a.max_lsb_diff == 0) == (a.byte_identical_pct == 100.0)
    assert ladder.float_bytes > ladder.int8_bytes == digits_int8.size
    assert ladder.size_ratio == pytest.approx(ladder.float_bytes / ladder.int8_bytes, abs=1e-3)
    assert check_gates(ladder, {"max_drop_pp": 0.5, "min_agreement": 99.0, "max_lsb": 1}) == []


def test_arena_is_measured_and_a_smaller_one_fails(ladder, digits_int8, digits_split):
    arena = ladder.arena_bytes
    assert arena > 0 and arena % 16 == 0
    x = quantize_input(digits_split.x_test[:1], digits_int8.inputs[0])
    ok = HostTFLM(digits_int8, arena_size=arena).run(x[0])[0]
    assert ok.shape == tuple(digits_int8.outputs[0].shape)
    with pytest.raises((UnsupportedError, RuntimeError)):
        HostTFLM(digits_int8, arena_size=arena - 16).run(x[0])


def test_json_round_trip(ladder):
    from mcudeploy.demo import evaluation_from_dict

    doc = json.loads(json.dumps(ladder.to_dict()))
    assert doc["sha256"] == ladder.sha256 and doc["arena_bytes"] == ladder.arena_bytes
    assert doc["int8_drop_pp"] == ladder.int8_drop_pp
    again = evaluation_from_dict(doc)
    assert again.rungs == ladder.rungs and again.agreement == ladder.agreement


def test_compare_counts_bytes_and_lsbs():
    ref = np.array([[10, 20, 30], [5, 1, 0], [0, 0, 9], [1, 2, 3]], np.int8)
    out = ref.copy()
    out[1, 0] -= 1  # 1 LSB, same top-1
    out[2, 0] = 12  # 12 LSB, top-1 changes
    a = compare(out, ref, "reference")
    assert a.byte_identical_pct == 50.0
    assert a.top1_agreement_pct == 75.0
    assert a.max_lsb_diff == 12
    assert a.mean_abs_lsb_diff == pytest.approx(13 / 12)
    # int8 extremes must not wrap around when subtracted
    assert compare(np.array([[127]], np.int8), np.array([[-128]], np.int8), "x").max_lsb_diff == 255


@pytest.mark.parametrize(
    ("dtype", "lo", "hi"), [("int8", -128, 127), ("uint8", 0, 255), ("int16", -32768, 32767)]
)
def test_quantize_input_rounds_and_clips(dtype, lo, hi):
    t = _tensor(dtype)
    x = np.array([[0.0, 1.0, 1e9, -1e9]], np.float32)
    q = quantize_input(x, t)
    assert q.dtype == np.dtype(dtype)
    assert q.tolist() == [[3, 5, hi, lo]]
    raw = np.array([[1, 2, 3, 4]], dtype)
    assert quantize_input(raw, t) is raw  # already raw values of the right type


def test_quantize_input_float_and_unsupported():
    x = np.array([[0.25]], np.float64)
    assert quantize_input(x, _tensor("float32")).dtype == np.float32
    with pytest.raises(UnsupportedError, match="int32"):
        quantize_input(x, _tensor("int32"))


def test_evaluate_rejects_bad_data(digits_int8, digits_split):
    with pytest.raises(DatasetError, match=r"samples have shape \[3\]"):
        evaluate(digits_int8, np.zeros((4, 3), np.float32), np.zeros(4, np.int64), dataset="bad.npz")
    with pytest.raises(DatasetError, match="no samples"):
        evaluate(digits_int8, digits_split.x_test[:0], digits_split.y_test[:0], dataset="empty.npz")


def test_gates_fail_with_gate_error(ladder):
    with pytest.raises(GateError, match="accuracy"):
        enforce_gates(ladder, {"min_accuracy": 100.01})
    enforce_gates(ladder, {"min_accuracy": None, "max_lsb": 255})


@pytest.mark.slow
def test_uint8_io_model_from_files(digits_keras, digits_split, digits_test_npz, tmp_path):
    """A uint8-I/O model: inputs are quantized with its own (uint8) scale and zero point."""
    from mcudeploy.ml.quantize import convert_int8

    m = convert_int8(digits_keras, digits_split.x_train, samples=50, io_dtype="uint8", source="u8.tflite")
    assert m.inputs[0].dtype == "uint8"
    path = tmp_path / "u8.tflite"
    path.write_bytes(m.data)
    ev = evaluate_files(path, digits_test_npz, default_kernels=False, limit=60)
    assert ev.samples == 60 and ev.io["input"]["dtype"] == "uint8"
    assert [r.name for r in ev.rungs] == ["tflite-int8", "tflm-int8"]
    assert ev.rung("tflm-int8").accuracy > 80.0
    assert ev.agreement_for("reference").top1_agreement_pct >= 95.0


def test_compare_float_outputs_counts_in_lsbs():
    ref = np.array([[0.0, 0.5, 1.0]], np.float32)
    out = np.array([[0.0, 1.0, 1.0]], np.float32)
    a = compare(out, ref, "reference", lsb=0.25)
    assert a.max_lsb_diff == 2 and a.byte_identical_pct == 0.0 and a.top1_agreement_pct == 0.0


def test_output_lsb(digits_int8):
    from mcudeploy.ml.evaluate import output_lsb

    assert output_lsb(digits_int8) == 1.0  # int8 output: differences are already in LSBs
