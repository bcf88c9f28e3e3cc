"""Whole models through the generated C runtime (host gcc) vs host TFLM: 0 differing bytes.

Five architectures (zoo: DS-CNN, MobileNet-style VWW, ResNet-8, FC autoencoder; plus the trained
digits CNN from the session fixture), 100 random inputs each, one compile per model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcudeploy.errors import UnsupportedError
from mcudeploy.firmware.runtime_c.codegen import build_c_runtime, render_c_runtime
from mcudeploy.firmware.runtime_c.host import build_host_executable, run_host_executable
from mcudeploy.ml.tflite_builder import GraphBuilder
from mcudeploy.ml.tflm_host import HostTFLM, measure_arena
from tests.graphs import conv

SAMPLES = 100
ZOO_MODELS = ("ds_cnn", "mobilenet_vww", "resnet8", "fc_autoencoder")


def _compare(model, tmp: Path, seed: int) -> None:
    exe = build_host_executable(model, tmp / "build")
    t = model.inputs[0]
    x = np.random.default_rng(seed).integers(-128, 128, (SAMPLES, *t.shape[1:]), dtype=np.int8)
    got = run_host_executable(exe, model, x)
    ref = HostTFLM(model)
    want = np.stack([ref.run(s[None])[0][0] for s in x])
    assert got.shape == want.shape
    diff = int(np.count_nonzero(got != want))
    assert diff == 0, f"{model.source}: {diff} differing bytes over {SAMPLES} inputs"


@pytest.fixture(scope="session")
def zoo_models() -> dict:
    from mcudeploy.ml.zoo import build_int8

    return {name: build_int8(name, seed=i) for i, name in enumerate(ZOO_MODELS)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_model_bit_exact(zoo_models: dict, name: str, tmp_path: Path) -> None:
    model = zoo_models[name]
    _compare(model, tmp_path, seed=len(name))
    # the static plan must not need more than TFLM's measured arena (which adds its bookkeeping)
    assert build_c_runtime(model).arena_bytes <= measure_arena(model)


@pytest.mark.slow
def test_digits_model_bit_exact(digits_int8, tmp_path: Path) -> None:
    _compare(digits_int8, tmp_path, seed=3)


@pytest.mark.slow
def test_digits_test_set_bit_exact(digits_int8, digits_test_int8, tmp_path: Path) -> None:
    """Real (quantized) test images, not just random bytes."""
    x = digits_test_int8
    exe = build_host_executable(digits_int8, tmp_path / "build")
    got = run_host_executable(exe, digits_int8, x)
    ref = HostTFLM(digits_int8)
    want = np.stack([ref.run(s[None])[0][0] for s in x])
    assert got.tobytes() == want.tobytes()


def test_float_io_graph_through_generated_c(tmp_path: Path) -> None:
    """QUANTIZE/DEQUANTIZE at the edges, a SQUEEZE alias and a small conv stack, as one generated program."""
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    xf = g.tensor((1, 6, 6, 2), "float32")
    xq = g.tensor((1, 6, 6, 2), "int8", 0.05, -3)
    g.op("QUANTIZE", [xf], [xq])
    w = g.const(rng.integers(-127, 128, (4, 3, 3, 2)), "int8", scale=[0.02, 0.03, 0.01, 0.04], zero_point=0)
    b = g.const(rng.integers(-500, 500, 4), "int32", scale=[0.001, 0.0015, 0.0005, 0.002], zero_point=0)
    c = g.tensor((1, 1, 1, 4), "int8", 0.1, 5)
    conv(g, [xq, w, b], c, padding=1, stride=3, dilation=2, act=1)
    s = g.tensor((1, 4), "int8", 0.1, 5)
    g.op("SQUEEZE", [c], [s], squeeze_dims=[1, 2])
    l8 = g.tensor((1, 4), "int8", 1 / 256, -128)
    g.op("LOGISTIC", [s], [l8])
    yf = g.tensor((1, 4), "float32")
    g.op("DEQUANTIZE", [l8], [yf])
    model = g.build([xf], [yf], source="float_io.tflite")
    assert [st.opcode for st in build_c_runtime(model).program.steps] == [
        "QUANTIZE",
        "CONV_2D",
        "LOGISTIC",
        "DEQUANTIZE",
    ]
    exe = build_host_executable(model, tmp_path / "build")
    x = rng.normal(0, 2, (SAMPLES, 6, 6, 2)).astype(np.float32)
    got = run_host_executable(exe, model, x)
    ref = HostTFLM(model)
    want = np.stack([ref.run(s[None])[0][0] for s in x])
    assert got.tobytes() == want.tobytes()


def test_generation_is_deterministic(digits_int8, tmp_path: Path) -> None:
    a = render_c_runtime(digits_int8, tmp_path / "a")
    b = render_c_runtime(digits_int8, tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
        assert str(tmp_path) not in pa.read_text()


def test_model_with_unsupported_op_is_refused(tmp_path: Path) -> None:
    g = GraphBuilder()
    x = g.tensor((1, 8), "int8", 0.1, 0)
    y = g.tensor((1, 8), "int8", 0.1, 0)
    z = g.tensor((1, 8), "int8", 0.1, 0)
    g.op("RELU", [x], [y])
    g.op("EXP", [y], [z])
    m = g.build([x], [z], source="hs.tflite")
    with pytest.raises(UnsupportedError, match=r"hs\.tflite.*EXP"):
        render_c_runtime(m, tmp_path / "out")
    assert not (tmp_path / "out").exists()
