"""Per-layer profile documents (mcudeploy.device.profile) from a PROFILE reply, without a device."""

from __future__ import annotations

import json
from pathlib import Path

from mcudeploy import protocol as P
from mcudeploy.device.profile import build_profile, write_profile
from tests.test_protocol_host import _small_c_model


def test_profile_rows_name_the_ops_join_vela_and_write_deterministically(tmp_path: Path) -> None:
    m = _small_c_model()
    hello = P.Hello(2, m.sha256, "c", "b", 10, 1, 72, 10, "dwt-cycles", layers=3)
    r = P.ProfileResult(0, 1000, 0, 300, 4096, ((0, 600), (2, 300), (3, 50)))
    fc_out = m.tensors[m.operators[2].outputs[0]].name
    vela = [{"name": fc_out, "cycles": 77}, {"name": "elsewhere", "cycles": 5}, {"name": fc_out, "cycles": 1}]
    doc = build_profile(m, hello, r, vela)
    rows = doc["layers"]
    assert [r_["opcode"] for r_ in rows] == ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert [r_["vela_cycles"] for r_ in rows] == [None, 77.0, None]
    assert rows[0]["macs"] == m.macs(m.operators[0]) > 0 and rows[0]["macs_per_unit"] == rows[0]["macs"] / 600
    assert doc["unit"] == "cycles" and doc["layers_sum"] == 950 and doc["coverage"] == 0.95
    assert abs(sum(r_["share"] for r_ in rows) - 1) < 1e-12
    a = write_profile(tmp_path / "a", doc)
    b = write_profile(tmp_path / "b", build_profile(m, hello, r, vela))
    assert a["profile_csv"].read_bytes() == b["profile_csv"].read_bytes()
    assert json.loads(a["profile_json"].read_text()) == doc
    assert a["profile_csv"].read_text().splitlines()[2].startswith("1,2,FULLY_CONNECTED,")


def _residual_model():
    """CONV_2D 3x3 -> CONV_2D 1x1 -> ADD (the two convolutions' outputs): the C runtime fuses the 1x1
    convolution and the ADD into one step (runtime_c.lower.fuse_conv_add)."""
    import numpy as np

    from mcudeploy.ml.tflite_builder import GraphBuilder
    from tests.graphs import conv, int8_weights

    rng = np.random.default_rng(3)
    g = GraphBuilder()
    x = g.tensor((1, 5, 5, 2), "int8", 0.05, -3)
    c1 = g.tensor((1, 5, 5, 4), "int8", 0.1, 2, name="c1")
    w1 = g.const(int8_weights(rng, (4, 3, 3, 2)), "int8", scale=[0.02], zero_point=0)
    conv(g, [x, w1, g.const(rng.integers(-500, 500, 4), "int32", scale=[0.001], zero_point=0)], c1, padding=0)
    c2 = g.tensor((1, 5, 5, 4), "int8", 0.1, -1, name="c2")
    w2 = g.const(int8_weights(rng, (4, 1, 1, 4)), "int8", scale=[0.02], zero_point=0)
    conv(
        g, [c1, w2, g.const(rng.integers(-500, 500, 4), "int32", scale=[0.002], zero_point=0)], c2, padding=0
    )
    y = g.tensor((1, 5, 5, 4), "int8", 0.2, 0, name="sum")
    g.op("ADD", [c1, c2], [y])
    return g.build([x], [y])


def test_a_fused_c_runtime_step_names_every_op_it_runs() -> None:
    """The C runtime's CONV_2D+ADD step reports the convolution's op index: its row names both ops, has
    the convolution's MACs and the ADD's output, and the layers still add up to the timed invoke."""
    from mcudeploy.firmware.runtime_c.lower import lower

    m = _residual_model()
    steps = lower(m).steps
    assert [s.opcode for s in steps] == ["CONV_2D", "CONV_2D+ADD"]
    r = P.ProfileResult(0, 1000, 0, 300, 4096, tuple((s.op_index, 400 + 90 * k) for k, s in enumerate(steps)))
    hello = P.Hello(2, m.sha256, "c", "b", 10, 1, 50, 100, "dwt-cycles", layers=len(steps))
    rows = build_profile(m, hello, r)["layers"]
    assert [x["opcode"] for x in rows] == ["CONV_2D", "CONV_2D+ADD"]
    assert [x["output"] for x in rows] == ["c1", "sum"] and [x["op_index"] for x in rows] == [0, 1]
    assert rows[1]["macs"] == m.macs(m.operators[1]) > 0
    doc = build_profile(m, hello, r)
    assert doc["layers_sum"] == sum(x["elapsed"] for x in rows) == 890 and doc["coverage"] == 0.89
    # another runtime times each op itself: rows stay one op each
    tflm = P.ProfileResult(0, 1000, 0, 300, 4096, ((0, 400), (1, 300), (2, 100)))
    rows = build_profile(m, {**hello.to_dict(), "runtime": "tflm"}, tflm)["layers"]
    assert [x["opcode"] for x in rows] == ["CONV_2D", "CONV_2D", "ADD"] and rows[2]["output"] == "sum"
