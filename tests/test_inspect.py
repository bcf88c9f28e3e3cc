"""``inspect``: the table and the JSON say what is in the model, checked against the Model view."""

from __future__ import annotations

import json
import math

from rich.console import Console

from mcudeploy.cli import run
from mcudeploy.ml.inspection import inspection_dict, print_inspection


def _render(model) -> str:
    c = Console(record=True, width=400, color_system=None)
    print_inspection(model, c)
    return c.export_text()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("│")[1:-1]]


def test_table_lists_every_op_and_tensor(digits_int8):
    text = _render(digits_int8)
    m = digits_int8
    assert m.sha256 in text and f"{m.size:,} B" in text
    assert f"{m.total_macs():,}" in text
    for op in m.operators:
        line = next(ln for ln in text.splitlines() if f" {op.opcode} " in ln and f"│ {op.index} │" in ln)
        assert f"{m.macs(op):,}" in line
        out = m.tensors[op.outputs[0]]
        assert "x".join(map(str, out.shape)) in line
    for t in m.tensors:
        assert t.name in text
        row = next(ln for ln in text.splitlines() if _cells(ln)[:2] == [str(t.index), t.name])
        assert f"{t.nbytes:,}" in row and t.dtype in row
        assert ("const" in row) == t.is_constant
        if t.quant is not None and t.quant.per_channel:
            assert f"per-channel x{len(t.quant.scale)}" in row
        elif t.quant is not None:
            assert f"@ {t.quant.zero_point[0]}" in row


def test_macs_follow_the_shapes(digits_int8):
    """MACs of the convolutions and the dense layer, computed here from the tensor shapes."""
    m = digits_int8
    for op in m.operators:
        out = m.tensors[op.outputs[0]].shape
        if op.opcode == "CONV_2D":
            w = m.tensors[op.inputs[1]].shape  # OHWI
            assert m.macs(op) == math.prod(out) * w[1] * w[2] * w[3]
        elif op.opcode == "DEPTHWISE_CONV_2D":
            w = m.tensors[op.inputs[1]].shape  # 1HWC
            assert m.macs(op) == math.prod(out) * w[1] * w[2]
        elif op.opcode == "FULLY_CONNECTED":
            units, depth = m.tensors[op.inputs[1]].shape
            assert m.macs(op) == math.prod(out) * depth and out[-1] == units
    assert m.total_macs() == sum(m.macs(op) for op in m.operators) > 0


def test_json_matches_the_model(digits_int8_path, digits_int8, capsys):
    assert run("inspect", digits_int8_path, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    m = digits_int8
    assert doc["sha256"] == m.sha256 and doc["size"] == m.size
    assert [o["opcode"] for o in doc["operators"]] == [op.opcode for op in m.operators]
    assert [o["macs"] for o in doc["operators"]] == [m.macs(op) for op in m.operators]
    assert [t["name"] for t in doc["tensors"]] == [t.name for t in m.tensors]
    assert [t["shape"] for t in doc["tensors"]] == [list(t.shape) for t in m.tensors]
    assert doc["weight_bytes"] == sum(len(t.data) for t in m.tensors if t.data is not None)
    assert sum(doc["op_counts"].values()) == len(m.operators)
    assert doc["inputs"][0]["quantization"]["scale"] == list(m.inputs[0].quant.scale)
    assert doc == json.loads(json.dumps(inspection_dict(m)))


def test_json_to_file_is_deterministic(digits_int8_path, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run("inspect", digits_int8_path, "--json", a) == 0
    assert run("inspect", digits_int8_path, "--json", b) == 0
    assert a.read_bytes() == b.read_bytes()
    assert str(tmp_path) not in a.read_text()  # no absolute paths in outputs
    assert "CONV_2D" in capsys.readouterr().out  # the table is still printed
