"""``evaluate --per-layer``: the op that loses int8 accuracy is found first, on fixed weights.

The network's weights are set by the test (no training), and one layer is planted to quantize
badly: a channel with a constant activation of 1000 next to channels of order 1, so the shared
per-tensor int8 scale leaves the small channels a level or two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mcudeploy.cli import run
from mcudeploy.errors import ExitCode
from mcudeploy.ml.layer_error import ROUNDING_RMSE_LSB, layers_of, per_layer_error


def _planted(outlier: float):
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    layers = tf.keras.layers
    inp = tf.keras.Input((8, 8, 1), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inp)
    x = layers.Conv2D(8, 3, padding="same", name="hot")(x)
    x = layers.ReLU(name="hot_relu")(x)
    x = layers.Conv2D(8, 1, activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(4, name="head")(x)
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            w, b = ws
            fan_in = int(np.prod(w.shape[:-1]))
            w = (rng.normal(size=w.shape) / np.sqrt(fan_in)).astype(np.float32)
            b = np.full(b.shape, 0.1, np.float32)
            if layer.name == "hot":
                w[..., 0] = 0.0
                b[0] = outlier  # channel 0 is a constant `outlier`
            layer.set_weights([w, b])
    return model


@pytest.fixture(scope="module")
def planted():
    from mcudeploy.ml.quantize import convert_int8, float_tflite

    x = np.random.default_rng(1).normal(size=(96, 8, 8, 1)).astype(np.float32)
    out = {}
    for name, outlier in (("hot", 1000.0), ("tame", 1.0)):
        keras = _planted(outlier)
        out[name] = (keras, convert_int8(keras, x[:64], source=f"{name}_int8.tflite"), float_tflite(keras))
    return x, out


def test_layers_of_fused_tensor_names():
    name = "model/hot_relu/Relu;model/hot/BiasAdd;model/hot/Conv2D;model/hot/BiasAdd/ReadVariableOp1"
    assert layers_of(name) == ("hot_relu", "hot")
    assert layers_of("StatefulPartitionedCall:0") == ()
    name = "cnn/relu1/Relu;cnn/conv1/BiasAdd/ReadVariableOp;cnn/conv1/BiasAdd;cnn/conv1/Conv2D1"
    assert layers_of(name) == ("relu1", "conv1")


def test_planted_outlier_layer_ranks_first(planted):
    x, models = planted
    keras, int8, flt = models["hot"]
    errors = per_layer_error(int8, flt, x[64:], output_layers=keras.output_names)
    worst = errors[0]
    assert worst.layers == ("hot_relu", "hot") and worst.op == "CONV_2D"
    assert worst.lost_db is not None and worst.lost_db > 20  # the small channels are mostly lost
    assert worst.range_spread > 100 and "range" in worst.advice and "16x8" in worst.advice
    # whole-tensor numbers hide it: the loud channel dominates cosine, and RMSE is rounding-sized
    assert worst.cosine > 0.999 and worst.rmse_lsb < 2 * ROUNDING_RMSE_LSB
    assert {e.op for e in errors} == {"CONV_2D", "MEAN", "FULLY_CONNECTED"}
    assert next(e for e in errors if e.op == "FULLY_CONNECTED").layers == ("head",)
    for e in errors[1:]:
        assert e.lost_db is not None and e.lost_db < worst.lost_db / 2
    # the same network without the outlier: no op stands out and nothing needs fixing
    keras, int8, flt = models["tame"]
    tame = per_layer_error(int8, flt, x[64:])
    assert max(e.lost_db or 0 for e in tame) < 10 and not any(e.advice for e in tame)
    assert all(e.rmse_lsb < 1 and e.cosine > 0.99 for e in tame)


def test_cli_per_layer(planted, tmp_path, capsys, monkeypatch):
    from mcudeploy.ml.digits import save_npz

    monkeypatch.delenv("COLUMNS", raising=False)
    x, models = planted
    keras, int8, _ = models["hot"]
    keras.save(tmp_path / "hot.keras")
    (tmp_path / "hot_int8.tflite").write_bytes(int8.data)
    data = save_npz(tmp_path / "test.npz", x[64:], np.arange(len(x) - 64) % 4)
    base = ("evaluate", tmp_path / "hot_int8.tflite", "-d", data, "--no-default-kernels")
    assert run(*base, "-f", tmp_path / "hot.keras", "--per-layer", "--per-layer-samples", 16) == 0
    out = capsys.readouterr().out
    assert "per-layer int8 error vs float (16 samples)" in out
    ranked = [ln for ln in out.split("per-layer int8 error")[1].splitlines() if ln.startswith("│")]
    assert "hot_relu, hot" in ranked[0] and "1. hot_relu, hot (#1 CONV_2D): one channel's range" in out
    assert run(*base, "-f", tmp_path / "hot.keras", "--per-layer", "--json", "-") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["per_layer"][0]["layers"] == ["hot_relu", "hot"] and len(doc["per_layer"]) == 5
    assert run(*base, "--per-layer") == ExitCode.BAD_INPUT  # no float model to compare with
    assert "-f/--float" in capsys.readouterr().err
