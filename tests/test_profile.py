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
