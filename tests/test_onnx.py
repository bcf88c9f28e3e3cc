"""ONNX in: a small CNN built with the ``onnx`` package goes quantize -> evaluate -> generate -> run.

Weights are fixed by a seeded numpy generator and the labels come from the float model itself
(onnxruntime) on samples where its top-1 leads clearly, so nothing depends on training bits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mcudeploy.cli import run
from mcudeploy.errors import ExitCode

onnx = pytest.importorskip("onnx", reason="ONNX support needs the onnx extra: pip install 'mcudeploy[onnx]'")
pytest.importorskip("onnxruntime", reason="ONNX support needs the onnx extra: pip install 'mcudeploy[onnx]'")

from tests.onnx_models import small_cnn, teacher_split  # noqa: E402


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    d = tmp_path_factory.mktemp("onnx")
    path = small_cnn(d / "cnn.onnx", flatten_map=True)
    x, y = teacher_split(path, 200)
    return path, x, y


@pytest.mark.slow
@pytest.mark.parametrize("flatten_map", [False, True], ids=["gap", "flatten-map"])
def test_rebuild_computes_what_onnxruntime_computes(tmp_path, flatten_map):
    from mcudeploy.ml.model import load_keras
    from mcudeploy.ml.onnx_import import run_onnx

    path = small_cnn(tmp_path / "m.onnx", flatten_map=flatten_map)
    keras = load_keras(path)
    assert tuple(keras.inputs[0].shape[1:]) == (8, 8, 1)  # NCHW [1, 1, 8, 8] in, NHWC model
    x = np.random.default_rng(5).normal(size=(16, 8, 8, 1)).astype(np.float32)
    got = keras.predict(x, batch_size=1, verbose=0)
    assert np.allclose(got, run_onnx(path, x), atol=1e-5)
    names = [layer.name for layer in keras.layers]
    assert {"conv1", "dwconv", "pwconv", "fc"} <= set(names)  # ONNX node names name the layers


def test_bad_onnx_models_are_named_errors(tmp_path, capsys):
    from onnx import TensorProto, helper

    from mcudeploy.ml.digits import save_npz

    data = save_npz(tmp_path / "d.npz", np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64))

    def model(op: str, shape: list, **attrs) -> Path:
        node = helper.make_node(op, ["input"], ["out"], name=f"my_{op.lower()}", **attrs)
        g = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        )  # fmt: skip
        p = tmp_path / f"{op}_{len(shape)}.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(p))
        return p

    cases = [
        (model("Elu", [1, 1, 8, 8]), "node 'my_elu' (Elu): operator not supported"),
        (model("Relu", ["N", 1, "H", 8]), "fixed [N, C, H, W]"),
        (model("Relu", [1, 2, 8]), "fixed [N, C, H, W]"),
    ]
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not a protobuf at all")
    cases.append((junk, "not a valid ONNX model"))
    for path, message in cases:
        assert run("quantize", path, "--data", data) == ExitCode.BAD_INPUT, path
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tflite"))


@pytest.mark.qemu
@pytest.mark.slow
def test_onnx_cnn_quantize_evaluate_generate_run_on_qemu(cnn, tmp_path, capsys):
    from mcudeploy.ml.digits import save_npz
    from mcudeploy.ml.model import read_tflite
    from mcudeploy.ml.tflm_host import run_tflm

    path, x, y = cnn
    # NCHW data, as a PyTorch pipeline has it: taken as is and transposed for the NHWC model.
    calib = save_npz(tmp_path / "calib.npz", x[:100], y[:100])
    test = save_npz(tmp_path / "test.npz", x[100:], y[100:])
    int8_path = tmp_path / "cnn_int8.tflite"
    assert run("quantize", path, "--data", calib, "--samples", 100, "-o", int8_path) == 0
    int8 = read_tflite(int8_path)
    assert int8.inputs[0].shape == (1, 8, 8, 1) and "TRANSPOSE" not in int8.op_names()
    capsys.readouterr()
    assert run("evaluate", int8_path, "-d", test, "-f", path, "--no-default-kernels", "--json", "-") == 0
    ev = json.loads(capsys.readouterr().out)
    rungs = {r["name"]: r for r in ev["rungs"]}
    assert (
        rungs["float"]["runtime"] == "onnxruntime" and rungs["float"]["accuracy"] == 100.0
    )  # teacher labels
    assert abs(rungs["float"]["accuracy"] - rungs["tflm-int8"]["accuracy"]) <= 1.0
    fw = tmp_path / "fw"
    gen = ("generate", int8_path, "--board", "qemu-an547", "--runtime", "c", "--mode", "protocol", "-o", fw)
    assert run(*gen) == 0
    assert run("build", fw) == 0
    out = tmp_path / "results"
    args = ("run", "--board", "qemu-an547", "--project", fw, "--model", int8_path, "--data", test)
    assert run(*args, "--out", out, "--bench", 0) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["measured"] == len(y) - 100 and s["bit_exact_fraction"] == 1.0
    xq = np.clip(
        np.round(x[100:].transpose(0, 2, 3, 1) / int8.inputs[0].quant.scale[0])
        + int8.inputs[0].quant.zero_point[0],
        -128,
        127,
    ).astype(np.int8)
    golden = run_tflm(int8, xq).reshape(len(xq), -1)
    samples = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    outs = {r["index"]: r["output"] for r in samples if r["kind"] == "sample"}
    assert [outs[i] for i in range(len(xq))] == [g.tobytes().hex() for g in golden]


@pytest.mark.qemu
@pytest.mark.slow
def test_deploy_from_onnx_runs_every_stage_and_is_bit_exact_on_qemu(cnn, tmp_path, capsys):
    """`mcudeploy deploy` with a .onnx model and NCHW data: quantize, evaluate (onnxruntime as the float
    rung), generate, build and run on QEMU, byte-identical to host TFLM; a second deploy does nothing."""
    from mcudeploy.ml.digits import save_npz

    path, x, y = cnn
    calib = save_npz(tmp_path / "calib.npz", x[:100], y[:100])
    test = save_npz(tmp_path / "test.npz", x[100:], y[100:])
    cfg = tmp_path / "mcudeploy.toml"
    cfg.write_text(
        f'[model]\npath = "{path}"\n[quantize]\ndata = "{calib}"\nsamples = 100\n'
        f'[evaluate]\ndata = "{test}"\n[firmware]\nboard = "qemu-an547"\nruntime = "c"\n'
        "[run]\nsamples = 16\ngates = { require_bit_exact = true }\n"
    )
    out = tmp_path / "out"
    assert run("deploy", "-c", cfg, "-o", out) == 0
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())["stages"]
    assert sorted(manifest) == sorted(
        ["model", "quantize", "evaluate", "generate-c", "build-c", "run-c", "report"]
    )
    assert (out / "model" / "cnn.onnx").read_bytes() == path.read_bytes()
    rungs = {r["name"]: r for r in manifest["evaluate"]["summary"]["rungs"]}
    assert rungs["float"]["runtime"] == "onnxruntime" and rungs["float"]["accuracy"] == 100.0
    run_c = manifest["run-c"]["summary"]
    assert run_c["measured"] == 16 and run_c["failed"] == 0 and run_c["bit_exact_fraction"] == 1.0
    assert "cnn" in (out / "report" / "report.md").read_text()
    assert run("deploy", "-c", cfg, "-o", out) == 0
    assert "nothing to do" in capsys.readouterr().out
