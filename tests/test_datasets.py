"""Representative and labelled data sources: .npy, .npz, image folders, module:function generators."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcudeploy.errors import DatasetError
from mcudeploy.ml.datasets import describe_source, fit_shape, load_labelled, load_representative

SHAPE = (8, 8, 1)


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).random((12, *SHAPE), dtype=np.float32)


def test_npy_first_samples_in_order(tmp_path: Path, x: np.ndarray) -> None:
    np.save(tmp_path / "a.npy", x)
    got = load_representative(tmp_path / "a.npy", SHAPE, samples=5)
    assert got.dtype == np.float32 and np.array_equal(got, x[:5])


def test_npz_key_default_and_errors(tmp_path: Path, x: np.ndarray) -> None:
    np.savez(tmp_path / "d.npz", x_train=x, other=x[:2] * 2)
    assert np.array_equal(load_representative(tmp_path / "d.npz", SHAPE, key="other"), x[:2] * 2)
    assert np.array_equal(load_representative(tmp_path / "d.npz", SHAPE), x)  # x_train is a default key
    with pytest.raises(DatasetError, match=r"d\.npz: no array named 'nope' \(it holds 'other', 'x_train'\)"):
        load_representative(tmp_path / "d.npz", SHAPE, key="nope")
    np.savez(tmp_path / "amb.npz", a=x, b=x)
    with pytest.raises(DatasetError, match="choose one with --key"):
        load_representative(tmp_path / "amb.npz", SHAPE)


def test_missing_channel_axis_is_added_and_wrong_shape_named(tmp_path: Path, x: np.ndarray) -> None:
    np.save(tmp_path / "hw.npy", x[..., 0])
    assert np.array_equal(load_representative(tmp_path / "hw.npy", SHAPE), x)
    np.save(tmp_path / "bad.npy", np.zeros((3, 7, 7, 1), np.float32))
    with pytest.raises(
        DatasetError, match=r"bad\.npy: samples have shape \[7, 7, 1\], but the model input is \[8, 8, 1\]"
    ):
        load_representative(tmp_path / "bad.npy", SHAPE)


def test_nan_empty_and_unknown_sources(tmp_path: Path, x: np.ndarray) -> None:
    x = x.copy()
    x[3, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DatasetError, match="sample 3 contains NaN"):
        load_representative(tmp_path / "nan.npy", SHAPE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_representative(tmp_path / "empty", SHAPE)
    with pytest.raises(DatasetError, match="no such file"):
        load_representative(tmp_path / "missing.npy", SHAPE)
    (tmp_path / "f.csv").write_text("1,2\n")
    with pytest.raises(DatasetError, match=r"unknown dataset format '\.csv'"):
        describe_source(tmp_path / "f.csv")


def test_image_folder_sorted_resized_and_scaled(tmp_path: Path) -> None:
    # Flat-colour images survive any resize filter unchanged, so the expected values are exact.
    grays = {"b/2.png": 200, "a.png": 10, "b/10.png": 100}
    for rel, g in grays.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.new("L", (16, 12), g).save(tmp_path / rel)
    (tmp_path / "notes.txt").write_text("ignored")
    got = load_representative(tmp_path, SHAPE)
    assert got.shape == (3, *SHAPE)
    order = [grays[k] for k in sorted(grays)]  # sorted by relative path: a, b/10, b/2
    assert np.allclose(got[:, 0, 0, 0], np.array(order) / 255.0)
    assert np.all(got == got[:, :1, :1, :])  # each image stays flat
    ranged = load_representative(tmp_path, SHAPE, pixel_range=(-1.0, 1.0), samples=1)
    assert np.allclose(ranged, order[0] / 255.0 * 2 - 1)


def test_image_folder_rgb_and_bad_image(tmp_path: Path) -> None:
    Image.new("RGB", (5, 5), (255, 0, 51)).save(tmp_path / "c.png")
    got = load_representative(tmp_path, (4, 4, 3))
    assert got.shape == (1, 4, 4, 3) and np.allclose(got[0, 0, 0], [1.0, 0.0, 0.2])
    (tmp_path / "d.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"d\.png: cannot read as an image"):
        load_representative(tmp_path, (4, 4, 3))
    with pytest.raises(DatasetError, match="needs a model input of shape"):
        load_representative(tmp_path, (16,))


def test_generator_from_file_and_module(
    tmp_path: Path, x: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    np.save(tmp_path / "src.npy", x)
    (tmp_path / "calib_gen.py").write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            def tf_style():  # TF representative_dataset style: [batch-of-one]
                for s in np.load({str(tmp_path / "src.npy")!r}):
                    yield [s[None]]
            def plain():
                return np.load({str(tmp_path / "src.npy")!r})
            def broken():
                raise RuntimeError("boom")
            """
        )
    )
    got = load_representative(f"{tmp_path / 'calib_gen.py'}:tf_style", SHAPE, samples=4)
    assert np.array_equal(got, x[:4])
    monkeypatch.syspath_prepend(str(tmp_path))
    assert np.array_equal(load_representative("calib_gen:plain", SHAPE), x)
    with pytest.raises(DatasetError, match="the generator raised RuntimeError: boom"):
        load_representative("calib_gen:broken", SHAPE)
    with pytest.raises(DatasetError, match="has no function 'nothere'"):
        load_representative("calib_gen:nothere", SHAPE)
    with pytest.raises(DatasetError, match="cannot import 'no_such_mod_xyz'"):
        load_representative("no_such_mod_xyz:fn", SHAPE)


def test_load_labelled(digits_test_npz: Path, digits_split, tmp_path: Path) -> None:
    x, y = load_labelled(digits_test_npz)
    assert np.array_equal(x, digits_split.x_test) and np.array_equal(y, digits_split.y_test)
    np.savez(tmp_path / "nolabels.npz", x=x)
    with pytest.raises(DatasetError, match=r"no array named 'y' \(it holds 'x'\)"):
        load_labelled(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "short.npz", x=x, y=y[:-1])
    with pytest.raises(DatasetError, match=f"x has {len(x)} samples but y has {len(y) - 1} labels"):
        load_labelled(tmp_path / "short.npz")
    np.savez(tmp_path / "onehot.npz", x=x, y=np.eye(10)[y])
    assert np.array_equal(load_labelled(tmp_path / "onehot.npz")[1], y)
    np.save(tmp_path / "inputs.npy", x)  # a plain .npy has no labels: named, not an AttributeError
    with pytest.raises(DatasetError, match=r"inputs\.npy: holds a single array .* not inputs with labels"):
        load_labelled(tmp_path / "inputs.npy")


def test_a_non_numpy_file_is_named_not_unpickled(tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"\x18\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(DatasetError, match=r"model\.tflite: not a NumPy \.npz/\.npy file"):
        load_labelled(bogus)


def test_nchw_samples_are_transposed_for_an_nhwc_input():
    from mcudeploy.ml.quantio import nchw_to_nhwc

    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # N, C, H, W
    y = fit_shape(x, (4, 5, 3), "calib.npz")
    assert y.shape == (2, 4, 5, 3) and y[1, 2, 3, 1] == x[1, 1, 2, 3]
    same = np.zeros((2, 3, 3, 3), np.float32)
    assert nchw_to_nhwc(same, (3, 3, 3)) is same  # NHWC already fits: never transposed
    with pytest.raises(DatasetError, match=r"\[3, 4, 5\]"):
        fit_shape(x, (4, 4, 3), "calib.npz")  # neither layout fits


def test_one_shape_rule_for_every_loader(tmp_path: Path, x: np.ndarray, digits_int8) -> None:
    """Flattened (N, 64) samples are (N, 8, 8, 1) for calibration, test vectors and labelled data
    alike (issue 13: run/evaluate reshaped them while quantize/generate/optimize refused)."""
    from mcudeploy.firmware.codegen import load_inputs
    from mcudeploy.ml.quantio import fit_samples

    flat = x.reshape(len(x), -1)
    np.save(tmp_path / "flat.npy", flat)
    assert np.array_equal(load_representative(tmp_path / "flat.npy", SHAPE), x)
    assert np.array_equal(fit_shape(flat, SHAPE, "flat"), x)
    assert np.array_equal(fit_samples(flat, digits_int8.inputs[0], "flat"), x)
    assert load_inputs(digits_int8, tmp_path / "flat.npy", 2).shape == (2, *SHAPE)
    with pytest.raises(DatasetError, match=r"flat65: samples have shape \[65\]"):
        fit_shape(np.zeros((2, 65), np.float32), SHAPE, "flat65")


def test_labels_must_name_a_class(tmp_path: Path, x: np.ndarray) -> None:
    from mcudeploy.ml.datasets import check_labels

    y = np.arange(len(x)) % 10
    for name, bad, needle in (
        ("neg", y - 1, "negative label -1"),
        ("soft", np.full((len(x), 10), 0.1), "integer class labels"),
        ("cplx", None, "complex"),
    ):
        xs = x.astype(np.complex64) if bad is None else x
        np.savez(tmp_path / f"{name}.npz", x=xs, y=y if bad is None else bad)
        with pytest.raises(DatasetError, match=needle):
            load_labelled(tmp_path / f"{name}.npz")
    np.savez(tmp_path / "hot.npz", x=x, y=np.eye(10)[y])  # exact one-hot rows are class ids
    assert np.array_equal(load_labelled(tmp_path / "hot.npz")[1], y)
    with pytest.raises(DatasetError, match=r"big: label 10 \(sample \d+\) is outside the model's 10 classes"):
        check_labels(y + 1, 10, "big")
