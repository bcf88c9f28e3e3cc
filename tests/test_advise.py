"""mcudeploy.ml.advise: the Pareto front (properties) and one measured grid through the CLI."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.cli import run
from mcudeploy.errors import ConfigError, ExitCode
from mcudeploy.ml.advise import AdviceRow, advise, dominates, mark_pareto, to_csv
from tests.hyp import examples

_rows = st.lists(
    st.builds(
        AdviceRow,
        recipe=st.sampled_from(["ptq", "qat", "prune", "pcqat"]),
        target=st.sampled_from(["ethos-u55-128", "ethos-u55-256"]),
        accuracy=st.sampled_from([0.9, 0.95, 0.97, 1.0]),
        int8_bytes=st.integers(1, 10_000),
        flash_bytes=st.integers(1, 50),
        encoded_weights_bytes=st.integers(1, 10_000),
        npu_cycles=st.integers(1, 50),
        total_cycles=st.integers(1, 50),
        sram_bytes=st.integers(0, 10_000),
        cpu_ops=st.integers(0, 3),
    ),
    max_size=12,
)


@examples(60)
@given(_rows)
def test_pareto_front_properties(rows):
    marked = mark_pareto(rows)
    assert [replace(r, pareto=False) for r in marked] == rows  # only the mark changes
    for r in marked:
        same = [o for o in marked if o.target == r.target and o is not r]
        if r.pareto:  # nothing for the same target beats a front row
            assert not any(dominates(o, r) for o in same)
        else:  # and every other row is beaten by a front row (domination is transitive)
            assert any(o.pareto and dominates(o, r) for o in same)
    for target in {r.target for r in rows}:
        assert any(r.pareto for r in marked if r.target == target)  # a finite set has a front


def test_dominates():
    a = AdviceRow("a", "t", 0.9, 1, 10, 1, 7, 10, 0, 0)
    assert not dominates(a, a)  # equal rows do not dominate each other
    better = AdviceRow("b", "t", 0.9, 1, 9, 1, 7, 10, 0, 0)
    assert dominates(better, a) and not dominates(a, better)
    trade = AdviceRow("c", "t", 0.95, 1, 20, 1, 7, 5, 0, 0)
    faster = AdviceRow("d", "t", 0.9, 1, 10, 1, 99, 9, 0, 0)  # compute cycles are not an objective
    assert dominates(faster, a)
    assert not dominates(trade, a) and not dominates(a, trade)


def test_csv_is_stable_and_complete():
    rows = mark_pareto([AdviceRow("ptq", "ethos-u55-128", 0.98, 100, 80, 60, 1000, 1500, 50, 0)])
    text = to_csv(rows)
    assert text == to_csv(rows) and text.endswith("\n")
    (rec,) = csv.DictReader(io.StringIO(text))
    assert rec["accuracy"] == "0.980000" and rec["pareto"] == "1" and int(rec["npu_cycles"]) == 1000


def test_grid_errors(digits_keras, digits_split):
    x, y = digits_split.x_train[:8], digits_split.y_train[:8]
    with pytest.raises(ConfigError, match="repeated"):
        advise(digits_keras, x, y, x, y, recipes=("ptq", "ptq"), targets=("ethos-u55-128",))
    with pytest.raises(ConfigError, match="at least one"):
        advise(digits_keras, x, y, x, y, recipes=(), targets=("ethos-u55-128",))


@pytest.mark.slow
def test_advise_cli_grid(digits_split, digits_keras_path, digits_int8, tmp_path, capsys, monkeypatch):
    """ptq and prune-cluster on two targets: the ptq row is exactly the session's int8 model, and the
    Pareto column is the one recomputed from the CSV's own numbers."""
    from mcudeploy.ml.digits import save_npz
    from mcudeploy.ml.tflm_host import run_tflm

    train = save_npz(tmp_path / "train.npz", digits_split.x_train, digits_split.y_train)
    x_val, y_val = digits_split.x_test[:100], digits_split.y_test[:100]
    val = save_npz(tmp_path / "val.npz", x_val, y_val)
    out = tmp_path / "advice.csv"
    monkeypatch.delenv("COLUMNS", raising=False)
    code = run(
        "advise", digits_keras_path, "--data", train, "--val", val, "--recipes", "ptq,prune-cluster",
        "--vela", "ethos-u55-128", "--vela", "ethos-u55-256", "--epochs", 1, "--batch-size", 128,
        "--csv", out,
    )  # fmt: skip
    assert code == 0
    recs = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["recipe"], r["target"]) for r in recs] == [
        ("ptq", "ethos-u55-128"), ("ptq", "ethos-u55-256"),
        ("prune-cluster", "ethos-u55-128"), ("prune-cluster", "ethos-u55-256"),
    ]  # fmt: skip
    # The ptq row is plain int8 of the model, calibrated like the session fixture (first 200 samples).
    t = digits_int8.inputs[0]
    q = np.clip(np.round(x_val / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127).astype(np.int8)
    expected = np.mean(run_tflm(digits_int8, q).reshape(len(q), -1).argmax(1) == y_val)
    assert float(recs[0]["accuracy"]) == pytest.approx(expected, abs=1e-6)
    assert int(recs[0]["int8_bytes"]) == digits_int8.size
    by = {(r["recipe"], r["target"]): r for r in recs}
    for target in ("ethos-u55-128", "ethos-u55-256"):
        ptq, pc = by["ptq", target], by["prune-cluster", target]
        assert int(pc["encoded_weights_bytes"]) < int(ptq["encoded_weights_bytes"])
    rows = [
        AdviceRow(
            r["recipe"], r["target"], float(r["accuracy"]), int(r["int8_bytes"]), int(r["flash_bytes"]),
            int(r["encoded_weights_bytes"]), int(r["npu_cycles"]), int(r["total_cycles"]),
            int(r["sram_bytes"]), int(r["cpu_ops"]),
        )
        for r in recs
    ]  # fmt: skip
    assert [int(r.pareto) for r in mark_pareto(rows)] == [int(r["pareto"]) for r in recs]
    # The table names the cycle counts as compile and the CSV do, each row whole on one line (stdout
    # is not a terminal here: no 80-column cut).
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("┃"))
    assert header.index("total cycles") < header.index("NPU cycles") < header.index("CPU ops")
    for r in recs:
        key = (f" {r['target']} ", f" {r['recipe']} ")
        line = next(ln for ln in printed.splitlines() if all(k in ln for k in key))
        cells = [c.strip() for c in line.split("│")]
        assert cells[-4:-1] == [f"{int(r['total_cycles']):,}", f"{int(r['npu_cycles']):,}", r["cpu_ops"]]


def test_advise_cli_bad_input(digits_keras_path, tmp_path):
    from mcudeploy.ml.digits import save_npz

    data = save_npz(tmp_path / "d.npz", np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, np.int64))
    base = ["advise", digits_keras_path, "--data", data]
    assert run(*base, "--recipes", "ptq,distill", "--vela", "ethos-u55-128") == ExitCode.BAD_INPUT
    assert run(*base, "--recipes", "ptq", "--vela", "no-such-board") == ExitCode.BAD_INPUT
    assert run(*base, "--recipes", "ptq", "--vela", "ethos-u55-100") == ExitCode.BAD_INPUT
    assert run(*base, "--recipes", "ptq", "--vela", "qemu-an547") == ExitCode.BAD_INPUT  # no NPU
