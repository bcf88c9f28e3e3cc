"""mcudeploy.ml.optimize: recipes, and the structure each tfmot chain leaves in the int8 .tflite.

The chain tests go through the CLI (``mcudeploy optimize ... --tflite``) and then re-derive the
structure from the written int8 .tflite bytes with plain numpy, independent of the module's own
statistics; the JSON report must agree with that independent count.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcudeploy.cli import run
from mcudeploy.errors import ConfigError, DatasetError, ExitCode
from mcudeploy.ml.gates import fully_int8_violations
from mcudeploy.ml.model import Model, load_keras, read_tflite
from mcudeploy.ml.optimize import RECIPES, FineTune, WeightStats, _stats, optimize, parse_recipe, to_int8
from tests.hyp import examples

EPS = 0.02  # sparsity slack: int8 rounding can only add zeros, tfmot rounds the count per tensor
N_TRAIN = 256
N_VAL = 100


# -- recipes (pure) -----------------------------------------------------------------------
def test_recipe_names_and_chains():
    assert parse_recipe("pcqat").stages == ("prune", "cluster", "qat")
    assert parse_recipe("prune+cluster+qat").name == "pcqat"
    assert parse_recipe(" Prune+QAT ").name == "pqat"
    assert parse_recipe("cluster", clusters=8, per_channel=True).clusters == 8
    assert parse_recipe("prune", structured="2:4").target_sparsity == 0.5
    assert parse_recipe("prune", sparsity=0.75).target_sparsity == 0.75
    assert parse_recipe("cluster").target_sparsity is None
    assert all(parse_recipe(name).stages == stages for name, stages in RECIPES.items())


def test_cli_mirrors_match_the_module():
    """The CLI lists recipe names literally (fast --help); they must stay the module's."""
    from mcudeploy.cli import advise as cli_advise
    from mcudeploy.cli import optimize as cli_optimize
    from mcudeploy.ml import advise
    from mcudeploy.ml.optimize import CENTROID_INITS

    assert tuple(RECIPES) == cli_optimize._RECIPES and cli_optimize._INITS == CENTROID_INITS
    assert ",".join(advise.DEFAULT_RECIPES) == cli_advise._DEFAULT_RECIPES


@pytest.mark.parametrize(
    ("text", "params", "match"),
    [
        ("qat+prune", {}, "in the order"),
        ("prune+prune", {}, "in the order"),
        ("distill", {}, "unknown recipe"),
        ("", {}, "unknown recipe"),
        ("prune", {"sparsity": 1.0}, "outside"),
        ("prune", {"structured": "4:2"}, "0 < M < N"),
        ("prune", {"structured": "two:four"}, "M:N"),
        ("prune", {"schedule": "cosine"}, "schedule"),
        ("cluster", {"clusters": 300}, "3..256"),
        ("cluster", {"clusters": 2}, "3..256"),  # tfmot's own floor: refused before any training
        ("cluster", {"centroid_init": "mean"}, "centroid"),
    ],
)
def test_recipe_errors(text, params, match):
    with pytest.raises(ConfigError, match=match):
        parse_recipe(text, **params)


@examples(30)
@given(
    channels=st.integers(1, 6),
    per_channel=st.integers(1, 12),
    values=st.integers(1, 12),
    zero_frac=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_weight_stats_counts(channels, per_channel, values, zero_frac, seed):
    """Channels built with a known set of distinct values and zeros are counted exactly."""
    rng = np.random.default_rng(seed)
    w = np.zeros((per_channel, channels), np.int8)  # output channels on the last axis (Keras layout)
    for c in range(channels):
        palette = rng.choice(np.arange(1, 100), size=values, replace=False).astype(np.int8) * (c % 2 * 2 - 1)
        col = np.resize(palette, per_channel)
        col[rng.random(per_channel) < zero_frac] = 0
        w[:, c] = col
    s = _stats("l", "Conv2D", w, out_axis=1)
    assert isinstance(s, WeightStats)
    assert s.unique_per_channel == max(len(np.unique(w[:, c])) for c in range(channels))
    assert s.unique == len(np.unique(w))
    assert s.sparsity == pytest.approx(float(np.mean(w == 0)))
    t = _stats("l", "CONV_2D", np.ascontiguousarray(w.T), out_axis=0)  # same tensor, TFLite layout
    assert (t.unique_per_channel, t.unique, t.sparsity) == (s.unique_per_channel, s.unique, s.sparsity)


# -- API ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_optimize_is_deterministic_leaves_input_alone_and_checks_data(digits_keras, digits_split):
    before = [w.copy() for w in digits_keras.get_weights()]
    x, y = digits_split.x_train[:128], digits_split.y_train[:128]
    result = optimize(digits_keras, x, y, parse_recipe("prune"), FineTune(epochs=1, batch_size=64))
    assert all(np.array_equal(a, b) for a, b in zip(before, digits_keras.get_weights(), strict=True))
    assert [h["stage"] for h in result.history] == ["prune"] and not result.is_qat
    with pytest.raises(DatasetError, match="shape"):
        optimize(digits_keras, x[:, :4], y, parse_recipe("qat"))
    with pytest.raises(DatasetError, match="labels"):
        optimize(digits_keras, x, y[:10], parse_recipe("qat"))
    with pytest.raises(DatasetError, match="representative"):
        to_int8(result.keras)  # not QAT: PTQ needs calibration data
    again = optimize(digits_keras, x, y, parse_recipe("prune"), FineTune(epochs=1, batch_size=64))
    assert to_int8(again.keras, x).data == to_int8(result.keras, x).data  # deterministic
    with pytest.raises(ConfigError, match="epochs"):
        optimize(digits_keras, x, y, parse_recipe("prune"), FineTune(epochs=0))


# -- chains through the CLI ---------------------------------------------------------------
@pytest.fixture(scope="module")
def train_npz(digits_split, tmp_path_factory) -> Path:
    from mcudeploy.ml.digits import save_npz

    d = tmp_path_factory.mktemp("optimize")
    return save_npz(d / "train.npz", digits_split.x_train[:N_TRAIN], digits_split.y_train[:N_TRAIN])


@pytest.fixture(scope="module")
def val_npz(digits_split, tmp_path_factory) -> Path:
    from mcudeploy.ml.digits import save_npz

    d = tmp_path_factory.mktemp("optimize_val")
    return save_npz(d / "val.npz", digits_split.x_test[:N_VAL], digits_split.y_test[:N_VAL])


def _filters(model: Model) -> list[tuple[str, np.ndarray, int]]:
    """(op, int8 filter, output-channel axis) for every conv / FC op, read straight from the bytes."""
    out = []
    for op in model.operators:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            t = model.tensors[op.inputs[1]]
            assert t.dtype == "int8" and t.data is not None
            w = np.frombuffer(t.data, np.int8).reshape(t.shape)
            out.append((op.opcode, w, 3 if op.opcode == "DEPTHWISE_CONV_2D" else 0))
    return out


def _max_unique_per_channel(w: np.ndarray, axis: int) -> int:
    return max(len(np.unique(np.take(w, c, axis=axis))) for c in range(w.shape[axis]))


# One run per recipe; the variants (schedules, 2:4, per-channel, centroid init) ride along.
CHAINS = [
    pytest.param("prune", ["--sparsity", "0.7"], id="prune"),
    pytest.param("cluster", ["--clusters", "4", "--per-channel", "--centroid-init", "linear"], id="cluster"),
    pytest.param("qat", [], id="qat"),
    pytest.param("prune-cluster", ["--structured", "2:4", "--clusters", "8"], id="prune-2:4-cluster"),
    pytest.param("pqat", ["--schedule", "constant"], id="pqat"),
    pytest.param("cqat", ["--clusters", "8", "--centroid-init", "density"], id="cqat"),
    pytest.param("pcqat", ["--clusters", "8", "--vela", "ethos-u55-128"], id="pcqat"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "args"), CHAINS)
def test_chain_survives_into_int8(recipe, args, train_npz, val_npz, digits_keras_path, tmp_path):
    rec = parse_recipe(
        recipe,
        sparsity=float(args[args.index("--sparsity") + 1]) if "--sparsity" in args else None,
        structured=args[args.index("--structured") + 1] if "--structured" in args else None,
        clusters=int(args[args.index("--clusters") + 1]) if "--clusters" in args else None,
    )
    out = tmp_path / ("opt.h5" if "qat" in rec.stages else "opt.keras")
    tfl, js = tmp_path / "opt_int8.tflite", tmp_path / "report.json"
    code = run(
        "optimize", digits_keras_path, "--data", train_npz, "--val", val_npz, "--recipe", recipe,
        *args, "--epochs", 1, "--batch-size", 64, "-o", out, "--tflite", tfl, "--json", js,
    )  # fmt: skip
    assert code == 0
    model = read_tflite(tfl)
    assert fully_int8_violations(model) == []
    filters = _filters(model)
    # tfmot prunes and clusters Conv2D and Dense kernels; it has no weights to touch in DepthwiseConv2D.
    touched = [(op, w, ax) for op, w, ax in filters if op != "DEPTHWISE_CONV_2D"]
    assert len(touched) == 3
    if "prune" in rec.stages:
        target = rec.target_sparsity
        if rec.structured:
            # 2:4 along the input-channel (last) axis, on every layer with whole groups of 4 inputs.
            grouped = [w for _, w, _ in touched if w.shape[-1] % 4 == 0]
            assert grouped
            for w in grouped:
                zeros = (w.reshape(-1, 4) == 0).sum(axis=1)
                assert zeros.min() >= 2
        else:
            for op, w, _ in touched:
                assert np.mean(w == 0) >= target - EPS, op
    if "cluster" in rec.stages:
        for op, w, ax in touched:
            if op == "CONV_2D" and w[0].size <= rec.clusters:
                continue  # a channel with ≤ k weights is trivially ≤ k values
            assert _max_unique_per_channel(w, ax) <= rec.clusters, op
    # The saved Keras model loads back and gives the same int8 model (QAT: without calibration data).
    keras = load_keras(out)
    if "qat" in rec.stages:
        assert to_int8(keras, None).data == model.data
    # The report's per-layer numbers are the ones re-derived here from the file.
    report = json.loads(js.read_text())
    assert report["recipe"]["stages"] == list(rec.stages)
    assert report["int8_bytes"]["optimized"] == model.size
    int8_rows = [r["int8"] for r in report["layers"]]
    assert [r["unique_per_channel"] for r in int8_rows] == [
        _max_unique_per_channel(w, ax) for _, w, ax in filters
    ]
    assert [r["sparsity"] for r in int8_rows] == pytest.approx(
        [float(np.mean(w == 0)) for _, w, _ in filters]
    )
    assert 0.0 <= report["accuracy"]["int8_after"] <= 1.0


def test_cli_bad_input(train_npz, digits_keras_path, tmp_path):
    base = ["optimize", digits_keras_path, "--data", train_npz]
    assert run(*base, "--recipe", "qat+prune") == ExitCode.BAD_INPUT
    assert run(*base, "--recipe", "qat", "-o", tmp_path / "x.keras") == ExitCode.BAD_INPUT  # QAT → .h5
    assert run(*base[:2], "--data", tmp_path / "missing.npz", "--recipe", "qat") == ExitCode.BAD_INPUT
    assert not list(tmp_path.iterdir())


# -- fine-tuning that keeps accuracy --------------------------------------------------------
def test_hold_out_is_seeded_disjoint_and_not_the_tail():
    from mcudeploy.ml.optimize import _split

    x, y = np.arange(100, dtype=np.float32)[:, None], np.repeat(np.arange(10), 10)  # sorted by class
    xt, _, (xv, yv) = _split(x, y, FineTune(seed=3))
    assert len(xv) == 10 and len(xt) == 90 and not set(xv[:, 0]) & set(xt[:, 0])
    assert len(set(yv)) > 1  # a tail split would hold out class 9 only
    again = _split(x, y, FineTune(seed=3))
    assert np.array_equal(again[2][0], xv) and not np.array_equal(_split(x, y, FineTune(seed=4))[2][0], xv)
    assert _split(x[:5], y[:5], FineTune())[2] is None  # too few samples to hold any out
    assert _split(x, y, FineTune(validation_split=0.0))[2] is None


def test_stage_rates_and_drop_advice():
    from mcudeploy.ml.optimize import STAGE_LEARNING_RATES, drop_advice

    ft = FineTune()
    assert ft.learning_rate is None and all(ft.rate(s) <= 1e-4 for s in STAGE_LEARNING_RATES)
    assert FineTune(learning_rate=3e-3).rate("cluster") == 3e-3
    text = drop_advice(
        parse_recipe("prune-cluster", sparsity=0.6, clusters=16), FineTune(learning_rate=1e-3), 28.0
    )
    assert "lost 28.00 pp" in text and "--epochs 8" in text and "--lr 0.0001" in text
    assert "--sparsity 0.4" in text and "--clusters 32" in text and "--recipe pcqat" in text
    text = drop_advice(parse_recipe("qat"), FineTune(), 2.0)
    assert "--lr" not in text and "--sparsity" not in text and "--recipe" not in text


@pytest.mark.slow
def test_each_stage_keeps_its_best_epoch_after_the_sparsity_target(digits_keras, digits_split):
    x, y = digits_split.x_train[:320], digits_split.y_train[:320]
    result = optimize(
        digits_keras, x, y, parse_recipe("prune", sparsity=0.5), FineTune(epochs=3, batch_size=32)
    )
    (h,) = result.history
    assert h["learning_rate"] == 1e-4 and len(h["val_accuracy_by_epoch"]) == 3
    # The polynomial schedule reaches 50 % at 2/3 of the steps: epochs before that cannot be kept.
    assert h["first_eligible_epoch"] == 2
    eligible = h["val_accuracy_by_epoch"][1:]
    assert h["epoch_kept"] == 2 + max(i for i, v in enumerate(eligible) if v == max(eligible))
    assert h["val_accuracy"] == h["val_accuracy_by_epoch"][h["epoch_kept"] - 1]
    kernels = [w for w in result.keras.get_weights() if w.ndim == 4 and w.shape[-2] > 1 and w.shape[-1] > 1]
    assert all(np.mean(w == 0) >= 0.5 - EPS for w in kernels)  # the kept epoch is at the target


@pytest.mark.slow
def test_max_drop_gate_and_warning(train_npz, digits_keras_path, tmp_path, capsys):
    # 95 % of the weights zero and three values left: no fine-tuning brings a CNN back from that.
    args = (
        "optimize", digits_keras_path, "--data", train_npz, "--recipe", "prune-cluster", "--sparsity", 0.95,
        "--clusters", 3, "--epochs", 1, "-o", tmp_path / "broken.keras", "--max-drop", 1,
    )  # fmt: skip
    assert run(*args) == ExitCode.GATE_FAILED
    err = capsys.readouterr().err
    assert "warning: prune-cluster lost" in err and "--clusters 6" in err and "--sparsity 0.75" in err
    assert "more than --max-drop 1" in err
    assert (tmp_path / "broken.keras").is_file()  # the gate runs after the outputs are written
