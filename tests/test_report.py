"""The HTML report is self-contained, deterministic, and shows each plot that has data."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from mcudeploy.report import render_html, render_markdown, write_report

DATA = {
    "title": "digits on qemu-an547",
    "facts": [("model", "digits_int8.tflite"), ("runtime", "c <script>")],
    "accuracy": [{"rung": "float", "top1": 0.986}, {"rung": "int8 TFLite", "top1": 0.983}],
    "agreement": {"label": "device vs host TFLM", "byte_identical": 1.0, "max_lsb": 0},
    "latency": {"unit": "instructions", "values": [1000, 1010, 990, 1005], "clock_hz": None},
    "memory": [
        {"region": "sram", "size": 2 << 20, "used": {"arena": 5000}},
        {"region": "bram", "size": 1 << 20, "used": {"model": 12000, "app": 30000}},
    ],
    "npu_layers": [{"name": "conv1", "npu_cycles": 1200}, {"name": "fc", "npu_cycles": 300}],
    "cpu_ops": [{"op": "SOFTMAX", "reason": "not supported"}],
}


def test_html_has_every_plot_and_escapes(tmp_path: Path):
    page = render_html(DATA)
    assert "<script>" not in page and "c &lt;script&gt;" in page
    imgs = re.findall(r"id='fig-(\w+)'><img alt='\w+' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert [name for name, _ in imgs] == ["accuracy", "latency", "memory", "npu"]
    for _, b64 in imgs:
        assert base64.b64decode(b64).startswith(b"\x89PNG")
    assert "http" not in page  # nothing fetched from the network
    h1, m1 = write_report(DATA, tmp_path / "a")
    h2, _ = write_report(DATA, tmp_path / "b")
    assert h1.read_bytes() == h2.read_bytes()
    assert "| float | 98.60 % |" in m1.read_text()


def test_sections_without_data_are_left_out():
    page = render_html({"title": "t", "accuracy": [{"rung": "float", "top1": 0.5}]})
    assert "fig-accuracy" in page and "fig-latency" not in page and "fig-memory" not in page
    md = render_markdown({"title": "t", "latency": {"unit": "cycles", "values": [3, 1, 2]}})
    assert "min 1, median 2, max 3" in md


def test_per_layer_profile_plot_and_table_with_vela_beside():
    row = dict(output="t<1>", macs=1000, share=0.5, vela_cycles=None)
    prof = {
        "unit": "instructions",
        "device": {"runtime": "c"},
        "elapsed": 2100,
        "layers_sum": 2000,
        "coverage": 2000 / 2100,
        "stack_used": 400,
        "stack_size": 4096,
        "layers": [
            {**row, "layer": 0, "op_index": 0, "opcode": "CONV_2D", "elapsed": 1000, "macs_per_unit": 1.0},
            {
                **row,
                "layer": 1,
                "op_index": 2,
                "opcode": "FULLY_CONNECTED",
                "elapsed": 1000,
                "macs_per_unit": 1.0,
            },
        ],
    }
    page = render_html({"title": "t", "device_layers": prof})
    assert "id='fig-layers'" in page and "t&lt;1&gt;" in page and "95.2 %" in page
    prof["layers"][1]["vela_cycles"] = 321.0
    assert render_html({"title": "t", "device_layers": prof}) != page  # a third panel and a Vela column
    md = render_markdown({"title": "t", "device_layers": prof})
    assert "| 1 | 2 FULLY_CONNECTED | t<1> | 1,000 | 1,000 | 50.0 % | 1.000 | 321 |" in md


def test_per_layer_error_section():
    row = {
        "op_index": 1, "op": "CONV_2D", "tensor": "model/hot/Relu", "layers": ["hot_relu", "hot"],
        "scale": 3.9, "rmse_lsb": 0.03, "mean_error_lsb": -0.01, "cosine": 1.0, "snr_db": 0.1,
        "lost_db": 36.2, "range_spread": 1087.0, "advice": "bound the activation | or QAT",
    }  # fmt: skip
    data = {
        "title": "t",
        "layer_error": [row, {**row, "op_index": 2, "layers": [], "lost_db": None, "advice": ""}],
    }
    md = render_markdown(data)
    assert "| 1 | #1 CONV_2D | hot_relu, hot | 36.2 | 0.1 | 0.03 | -0.01 | 1.0000 | 1087.0 |" in md
    assert "bound the activation / or QAT |" in md  # a pipe in the advice cannot break the table
    assert "| 2 | #2 CONV_2D | model/hot/Relu | - |" in md
    page = render_html(data)
    assert "Per-layer int8 error" in page and "<td>hot_relu, hot</td>" in page
    assert "Per-layer" not in render_html({"title": "t"})


def test_deploy_report_gives_every_runtime_its_agreement_and_latency():
    """With both runtimes on the device, the tflm one's byte-identity and latency are in the report
    too (the agreement and latency sections show the first runtime only)."""
    from mcudeploy.deploy import load_config
    from mcudeploy.deploy_report import report_data

    def run(where: str, exact: float, lsb: int, lat: list[int]) -> dict:
        return {
            "where": where,
            "measured": len(lat),
            "samples": len(lat),
            "accuracy": None,
            "bit_exact_fraction": exact,
            "max_lsb": lsb,
            "latency": {"unit": "instructions"},
            "latency_values": lat,
            "device": {"timer": "icount-instructions", "arena_used": 64},
        }

    summaries = {
        "run-c": run("qemu (b)", 1.0, 0, [9, 7, 8]),
        "run-tflm": run("qemu (b)", 0.5, 2, [1500, 1200]),
    }
    md = render_markdown(report_data(load_config(None, []), summaries))
    assert "100.00 % byte-identical to host TFLM (max 0 LSB), median 8 instructions" in md
    assert "50.00 % byte-identical to host TFLM (max 2 LSB), median 1,500 instructions" in md
