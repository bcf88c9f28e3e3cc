"""`mcudeploy quantize`: every data source, I/O dtype, 16x8, the gate, size ratio and the CLI."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcudeploy.cli import run
from mcudeploy.errors import InputError, NotFullyInt8Error, UnsupportedError
from mcudeploy.ml import gates
from mcudeploy.ml.model import Model, read_tflite
from mcudeploy.ml.quantize import convert_int8, quantize

N = 64  # calibration samples: enough for a sane model, small enough to keep the tests fast


def _quantize_input(model: Model, x: np.ndarray) -> np.ndarray:
    t = model.inputs[0]
    if t.dtype == "float32":
        return x.astype(np.float32)
    info = np.iinfo(t.dtype)
    q = np.round(x / t.quant.scale[0]) + t.quant.zero_point[0]  # type: ignore[union-attr]
    return np.clip(q, info.min, info.max).astype(t.dtype)


def _accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    from mcudeploy.ml.tflm_host import run_tflm

    out = run_tflm(model, _quantize_input(model, x))
    return float((out.reshape(len(x), -1).argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def float_accuracy(digits_keras, digits_split) -> float:
    p = digits_keras.predict(digits_split.x_test, verbose=0)
    return float((p.argmax(axis=1) == digits_split.y_test).mean())


@pytest.fixture(scope="module")
def calib(digits_split, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same N calibration samples as every kind of source."""
    d = tmp_path_factory.mktemp("calib")
    x = digits_split.x_train[:N]
    np.save(d / "x.npy", x)
    np.savez(d / "x.npz", other=np.zeros((2, 3)), calib=x)
    (d / "calib_src.py").write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            def samples():
                for s in np.load({str(d / "x.npy")!r}):
                    yield [s[None]]
            """
        )
    )
    imgs = d / "images"
    imgs.mkdir()
    for i, s in enumerate(x):  # 8-bit PNGs: the digits' 17 grey levels survive 0..255 exactly enough
        Image.fromarray(np.round(s[..., 0] * 255).astype(np.uint8), "L").save(imgs / f"{i:03d}.png")
    return {"npy": str(d / "x.npy"), "npz": str(d / "x.npz"), "generator": f"{d / 'calib_src.py'}:samples",
            "images": str(imgs)}  # fmt: skip


# -- data sources ---------------------------------------------------------------------------
def test_every_data_source_gives_the_same_model(digits_keras, calib: dict[str, str]) -> None:
    digests, quant = {}, {}
    for kind, src in sorted(calib.items()):
        r = quantize(
            digits_keras, src, key="calib" if kind == "npz" else None, samples=N, measure_float=False
        )
        assert r.samples == N
        gates.check_fully_int8(r.model)
        digests[kind] = r.model.sha256
        quant[kind] = r.model.inputs[0].quant
    # Same samples, same order -> byte-identical models (also shows conversion is deterministic).
    assert digests["npy"] == digests["npz"] == digests["generator"]
    # PNG rounding moves calibration values by < 1/510; the input range (0..1) and thus the
    # input quantization stay the same.
    assert len(digests) == 4
    assert quant["images"] == quant["npy"]


def test_samples_limit_changes_calibration(digits_keras, calib: dict[str, str]) -> None:
    few = quantize(digits_keras, calib["npy"], samples=4, measure_float=False)
    assert few.samples == 4
    many = quantize(digits_keras, calib["npy"], samples=N, measure_float=False)
    assert few.model.sha256 != many.model.sha256


# -- I/O dtypes and modes -----------------------------------------------------------------
@pytest.mark.parametrize("io", ["int8", "uint8", "float32"])
def test_io_dtypes(digits_keras, digits_split, float_accuracy: float, io: str) -> None:
    r = quantize(digits_keras, digits_split.x_train, samples=N, io_dtype=io, measure_float=False)
    m = r.model
    assert m.inputs[0].dtype == io and m.outputs[0].dtype == io
    assert m.inputs[0].shape == (1, 8, 8, 1)
    assert m.inputs[0].shape_signature in (None, (1, 8, 8, 1))  # batch fixed: no -1 anywhere
    assert r.io_dtype == io
    acc = _accuracy(m, digits_split.x_test, digits_split.y_test)
    assert acc >= float_accuracy - 0.03, (acc, float_accuracy)


def test_16x8_mode(digits_keras, digits_split, float_accuracy: float) -> None:
    r = quantize(digits_keras, digits_split.x_train, samples=N, mode="16x8", measure_float=False)
    m = r.model
    assert r.io_dtype == "int16" and m.inputs[0].dtype == "int16" and m.outputs[0].dtype == "int16"
    assert gates.detect_mode(m) == "16x8"
    activations = {t.dtype for t in m.tensors if not t.is_constant}
    assert activations == {"int16"}
    conv_w = m.tensors[m.operators[0].inputs[1]]
    conv_b = m.tensors[m.operators[0].inputs[2]]
    assert (conv_w.dtype, conv_b.dtype) == ("int8", "int64")
    assert _accuracy(m, digits_split.x_test, digits_split.y_test) >= float_accuracy - 0.03
    with pytest.raises(InputError, match="uint8 I/O is not available in 16x8 mode"):
        quantize(digits_keras, digits_split.x_train, mode="16x8", io_dtype="uint8")


def test_per_channel_and_per_tensor(digits_keras, digits_split) -> None:
    def conv_scales(per_channel: bool) -> int:
        m = convert_int8(digits_keras, digits_split.x_train, samples=N, per_channel=per_channel)
        w = m.tensors[m.operators[0].inputs[1]]
        return len(w.quant.scale)  # type: ignore[union-attr]

    assert conv_scales(True) == 16  # one scale per output channel of conv1
    assert conv_scales(False) == 1


def test_size_ratio_for_a_model_over_1mb(tmp_path: Path) -> None:
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input((256,), name="features")
    h = tf.keras.layers.Dense(1024, activation="relu", name="wide")(inp)
    out = tf.keras.layers.Dense(16, name="head")(h)
    model = tf.keras.Model(inp, out, name="big")
    assert model.count_params() * 4 > 1 << 20
    path = tmp_path / "big.keras"
    model.save(path)
    rep = np.random.default_rng(0).standard_normal((32, 256)).astype(np.float32)
    np.save(tmp_path / "rep.npy", rep)
    r = quantize(path, tmp_path / "rep.npy", samples=32)
    assert r.float_size is not None and r.float_size > 1 << 20
    assert r.model.size <= 0.27 * r.float_size, (r.model.size, r.float_size)
    assert r.model.source == "big_int8.tflite"


# -- refusals -----------------------------------------------------------------------------
def _with_lambda(fn, name: str):
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    inp = tf.keras.Input((8,), name="x")
    h = tf.keras.layers.Dense(8, name="d1")(inp)
    h = tf.keras.layers.Lambda(fn, name=name)(h)
    out = tf.keras.layers.Dense(4, name="d2")(h)
    return tf.keras.Model(inp, out, name="net")


def test_op_without_int8_kernel_is_refused_naming_op_and_layer() -> None:
    """tf.math.sin: the int8 converter leaves SIN in float between DEQUANTIZE and QUANTIZE."""
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    rep = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    with pytest.raises(NotFullyInt8Error) as e:
        quantize(_with_lambda(tf.math.sin, "sin_layer"), rep, measure_float=False)
    msg = str(e.value)
    assert "SIN (layer 'sin_layer'): SIN computes in float32" in msg
    assert e.value.exit_code == 1


def test_tf_only_op_is_refused_naming_op_and_layer() -> None:
    """tf.math.erf has no TFLite builtin at all: the converter error becomes a gate failure."""
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    rep = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    with pytest.raises(
        NotFullyInt8Error, match=r"TensorFlow op 'Erf' \(layer 'erf_layer'\) has no TFLite builtin"
    ):
        quantize(_with_lambda(tf.math.erf, "erf_layer"), rep, measure_float=False)


def test_op_without_16x8_kernel_is_refused_naming_op_and_layer() -> None:
    """In 16x8 mode the converter itself refuses SIN; the layer is found from the float graph."""
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    rep = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    with pytest.raises(
        NotFullyInt8Error, match=r"op SIN \(layer 'sin_layer'\) has no 16x8 \(int16 activation\) kernel"
    ):
        quantize(_with_lambda(tf.math.sin, "sin_layer"), rep, mode="16x8", measure_float=False)


def test_unrecognised_converter_failure_is_reported_plainly() -> None:
    from mcudeploy.ml.quantize import converter_error

    e = converter_error("m.tflite", "Traceback...\nerror: something unexpected happened\nmore")
    assert isinstance(e, UnsupportedError)
    assert str(e) == "m.tflite: TFLiteConverter failed: error: something unexpected happened"


def test_dynamic_and_bad_inputs(digits_split, digits_int8_path: Path) -> None:
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    inp = tf.keras.Input((None, 4), name="seq")
    dyn = tf.keras.Model(inp, tf.keras.layers.Dense(2)(inp))
    with pytest.raises(
        UnsupportedError, match=r"input 'seq' has shape \['\?', '\?', 4\]: dimension 1 is dynamic"
    ):
        quantize(dyn, np.zeros((2, 3, 4), np.float32))
    with pytest.raises(InputError, match=r"already a \.tflite"):
        quantize(digits_int8_path, digits_split.x_train)
    with pytest.raises(InputError, match="unknown I/O dtype 'int4'"):
        quantize(digits_int8_path, digits_split.x_train, io_dtype="int4")


# -- other model formats ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["h5", "saved_model"])
def test_h5_and_savedmodel_inputs(digits_keras, digits_int8: Model, calib, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / ("digits.h5" if fmt == "h5" else "digits_sm")
    digits_keras.save(path, save_format="h5" if fmt == "h5" else "tf")
    r = quantize(path, calib["npy"], samples=N, measure_float=False)
    gates.check_fully_int8(r.model)
    assert [op.opcode for op in r.model.operators] == [op.opcode for op in digits_int8.operators]
    assert r.model.inputs[0].shape == (1, 8, 8, 1)


def test_plain_savedmodel_with_dynamic_batch(tmp_path: Path) -> None:
    """A non-Keras SavedModel (tf.Module) whose signature has batch None comes out with batch 1."""
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()

    class Net(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="feat")])
        def __call__(self, x):
            return {"out": tf.nn.relu(tf.matmul(x, self.w))}

    net = Net()
    tf.saved_model.save(net, str(tmp_path / "sm"), signatures={"serving_default": net.__call__})
    r = quantize(
        tmp_path / "sm", np.random.default_rng(1).random((20, 16), dtype=np.float32), measure_float=False
    )
    gates.check_fully_int8(r.model)
    assert r.model.inputs[0].shape == (1, 16) and r.model.outputs[0].shape == (1, 4)
    assert r.model.source == "sm_int8.tflite" and r.samples == 20


# -- CLI ----------------------------------------------------------------------------------
def test_cli_writes_model_and_json(digits_keras_path: Path, calib, tmp_path: Path, capsys) -> None:
    out, js = tmp_path / "out" / "d.tflite", tmp_path / "d.json"
    rc = run(
        "quantize",
        digits_keras_path,
        "--data",
        calib["npz"],
        "--key",
        "calib",
        "-n",
        N,
        "-o",
        out,
        "--json",
        js,
    )
    assert rc == 0
    summary = json.loads(js.read_text())
    data = out.read_bytes()
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["int8_bytes"] == len(data) and summary["calibration_samples"] == N
    assert summary["float_bytes"] > len(data) and summary["ratio"] == round(
        len(data) / summary["float_bytes"], 4
    )
    gates.check_fully_int8(read_tflite(out))
    assert "fully int8" in capsys.readouterr().out


def test_cli_refuses_and_writes_nothing(tmp_path: Path, capsys) -> None:
    from mcudeploy.ml._tf import tensorflow

    tf = tensorflow()
    inp = tf.keras.Input((8,), name="x")
    h = tf.math.sin(tf.keras.layers.Dense(8, name="d1")(inp))  # a TFOpLambda layer named tf.math.sin
    path = tmp_path / "sin.keras"
    tf.keras.Model(inp, tf.keras.layers.Dense(4, name="d2")(h), name="net").save(path)
    np.save(tmp_path / "rep.npy", np.random.default_rng(0).random((8, 8), dtype=np.float32))
    rc = run("quantize", path, "--data", tmp_path / "rep.npy", "-o", tmp_path / "sin_int8.tflite")
    assert rc == 1
    assert not (tmp_path / "sin_int8.tflite").exists()
    err = capsys.readouterr().err
    assert "SIN (layer 'tf.math.sin'): SIN computes in float32" in err


def test_cli_bad_input_and_gate_docs(tmp_path: Path, capsys) -> None:
    assert run("quantize", tmp_path / "m.keras", "--data", tmp_path / "missing.npz") == 2
    assert "missing.npz: no such file" in capsys.readouterr().err
    assert run("quantize", "--gate-docs") == 0
    assert capsys.readouterr().out.strip() == gates.gate_docs().strip()
