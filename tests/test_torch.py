"""PyTorch in (the torch extra): an ExportedProgram goes quantize -> evaluate -> generate -> QEMU.

The network's weights are seeded by torch.manual_seed and the labels come from the module itself
on samples where its top-1 leads clearly, so nothing depends on training bits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mcudeploy.cli import run
from mcudeploy.errors import ExitCode

torch = pytest.importorskip("torch", reason="PyTorch models need the torch extra: pip install torch==2.13.0")
pytest.importorskip("onnxruntime", reason="PyTorch models go through ONNX: pip install 'mcudeploy[onnx]'")


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 16, 1)
        self.fc = torch.nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.nn.functional.relu6(self.dw(x))
        x = torch.relu(self.pw(x))
        return self.fc(torch.flatten(x, 1))


@pytest.mark.qemu
@pytest.mark.slow
def test_exported_program_quantize_evaluate_generate_run_on_qemu(tmp_path, capsys):
    from mcudeploy.ml.digits import save_npz

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.randn(1, 1, 8, 8),)), str(path))
    x = np.random.default_rng(1).normal(size=(800, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    top2 = np.sort(logits, axis=1)[:, -2:]
    keep = np.sort(np.argsort(top2[:, 0] - top2[:, 1])[:200])  # the 200 clearest float decisions
    x, y = x[keep], logits[keep].argmax(1)
    calib = save_npz(tmp_path / "calib.npz", x[:100], y[:100])  # NCHW, as PyTorch has it
    test = save_npz(tmp_path / "test.npz", x[100:], y[100:])
    int8 = tmp_path / "net_int8.tflite"
    assert run("quantize", path, "--data", calib, "--samples", 100, "-o", int8) == 0
    capsys.readouterr()
    assert run("evaluate", int8, "-d", test, "-f", path, "--no-default-kernels", "--json", "-") == 0
    rungs = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rungs"]}
    assert rungs["float"]["runtime"] == "torch" and rungs["float"]["accuracy"] == 100.0
    assert abs(rungs["float"]["accuracy"] - rungs["tflm-int8"]["accuracy"]) <= 1.0
    fw = tmp_path / "fw"
    assert (
        run("generate", int8, "--board", "qemu-an547", "--runtime", "c", "--mode", "protocol", "-o", fw) == 0
    )
    assert run("build", fw) == 0
    out = tmp_path / "results"
    args = ("run", "--board", "qemu-an547", "--project", fw, "--model", int8, "--data", test)
    assert run(*args, "--out", out, "--bench", 0) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["measured"] == len(y) - 100 and s["bit_exact_fraction"] == 1.0


def test_not_an_exported_program_is_a_named_error(tmp_path, capsys):
    from mcudeploy.ml.digits import save_npz

    bad = tmp_path / "net.pt2"
    bad.write_bytes(b"PK\x03\x04 not a torch archive")
    data = save_npz(tmp_path / "d.npz", np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64))
    assert run("quantize", bad, "--data", data) == ExitCode.BAD_INPUT
    assert "not a PyTorch ExportedProgram" in capsys.readouterr().err
