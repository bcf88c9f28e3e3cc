"""Representative (calibration) and labelled data from files the user already has.

Sources: a ``.npy`` array, an ``.npz`` archive (``key`` picks the array), a folder of images
(resized to the model's input, read in sorted path order so calibration is reproducible), or a
``module:function`` (or ``path/to/file.py:function``) generator. Everything comes back as float32
``(N, *input_shape)``; any mismatch is a :class:`DatasetError` naming the file, key and shapes.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

IMAGE_SUFFIXES = frozenset(
    {".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
)
DEFAULT_KEYS = ("x", "x_test", "x_train", "images", "data", "inputs")
_GENERATOR = re.compile(r"^(?P<module>[^:]+):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")

Shape = tuple[int, ...]


def describe_source(source: str | os.PathLike[str]) -> str:
    """What kind of source ``source`` is: ``npy``, ``npz``, ``images`` or ``generator``."""
    s = str(source)
    p = Path(s)
    if p.is_dir():
        return "images"
    if _GENERATOR.match(s) and not p.exists():
        return "generator"
    if not p.exists():
        raise DatasetError(
            f"{s}: no such file or folder", hint="give a .npy, .npz, image folder or module:function"
        )
    if p.suffix.lower() in (".npy", ".npz"):
        return p.suffix.lower()[1:]
    raise DatasetError(
        f"{s}: unknown dataset format {p.suffix!r}", hint="expected .npy, .npz, a folder or module:function"
    )


def load_representative(
    source: str | os.PathLike[str],
    input_shape: Sequence[int | None] | None = None,
    *,
    key: str | None = None,
    samples: int | None = None,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Load calibration samples as float32 ``(N, *input_shape)`` (the first ``samples`` of them).

    ``input_shape`` is the model input without the batch axis; with it, samples are checked (and a
    missing trailing channel axis of 1 is added). Images are scaled from 0..255 to ``pixel_range``.
    """
    if samples is not None and samples < 1:
        raise DatasetError(f"--samples must be at least 1, not {samples}")
    shape = _static_shape(input_shape)
    kind = describe_source(source)
    name = str(source)
    if kind == "images":
        x = load_image_folder(Path(source), shape, samples=samples, pixel_range=pixel_range)
    elif kind == "generator":
        x = _from_generator(name, shape, samples)
    else:
        x = _load_array(Path(source), key)
        name = f"{name}[{key}]" if key else name
        x = x[:samples] if samples and x.ndim else x
    x = _as_float(x, name)
    if shape is not None:
        x = fit_shape(x, shape, name)
    if len(x) == 0:
        raise DatasetError(f"{name}: contains no samples")
    return x


def load_labelled(
    path: str | os.PathLike[str], *, x_key: str = "x", y_key: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and integer labels from an ``.npz`` holding ``x`` and ``y`` (same length)."""
    p = Path(path)
    arrays = _open_npz(p)
    if isinstance(arrays, np.ndarray):  # an .npy: one array, no labels
        raise DatasetError(
            f"{p}: holds a single array {arrays.dtype} {arrays.shape}, not inputs with labels",
            hint=f"save labelled data as np.savez(path, {x_key}=inputs, {y_key}=labels)",
        )
    missing = [k for k in (x_key, y_key) if k not in arrays]
    if missing:
        raise DatasetError(
            f"{p}: no array named {', '.join(repr(k) for k in missing)} (it holds {_keys(arrays)})",
            hint=f"save labelled data as np.savez(path, {x_key}=inputs, {y_key}=labels)",
        )
    x = _check_numbers(_member(p, arrays, x_key), f"{p}[{x_key}]")
    y = np.asarray(_member(p, arrays, y_key))
    if y.ndim == 0 or len(x) != len(y):
        raise DatasetError(
            f"{p}: {x_key} has {len(x)} samples but {y_key} has "
            f"{len(y) if y.ndim else 'a scalar instead of'} labels"
        )
    if y.ndim == 2 and y.shape[1] > 1 and _is_one_hot(y):
        y = y.argmax(axis=1)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        raise DatasetError(
            f"{p}: {y_key} must be integer class labels of shape (N,) (or exact one-hot rows), "
            f"got {y.dtype} {list(y.shape)}"
        )
    if len(y) == 0:
        raise DatasetError(f"{p}: contains no samples")
    if y.min() < 0:
        raise DatasetError(f"{p}: {y_key} holds negative label {int(y.min())} (sample {int(y.argmin())})")
    return x, y.astype(np.int64)


def check_labels(y: np.ndarray, classes: int, name: str) -> None:
    """Labels must name one of the model's ``classes`` outputs; out of range they would score 0 %
    silently (a label no output can win)."""
    if len(y) and (y.min() < 0 or y.max() >= classes):
        i = int(np.argmax((y < 0) | (y >= classes)))
        raise DatasetError(
            f"{name}: label {int(y[i])} (sample {i}) is outside the model's "
            f"{classes} classes 0..{classes - 1}"
        )


def check_for_keras(x: np.ndarray, y: np.ndarray, keras_model: Any, name: str) -> np.ndarray:
    """Labelled samples fit for a Keras classifier: its input shape (see :func:`fit_shape`), labels
    among its outputs, at least one sample. Returns ``x`` shaped for the model."""
    if len(x) == 0:
        raise DatasetError(f"{name}: contains no samples")
    want = tuple(keras_model.inputs[0].shape[1:])
    if all(isinstance(d, int) for d in want):  # dynamic dimensions: nothing to check against
        x = fit_shape(x, want, name)
    classes = keras_model.outputs[0].shape[-1]
    if isinstance(classes, int) and classes > 1:
        check_labels(y, classes, name)
    return x


def load_raw_array(source: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """The array a .npy/.npz source holds (the one :func:`load_representative` reads), unconverted."""
    return _load_array(Path(source), key)


def _is_one_hot(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def _member(p: Path, arrays: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(arrays[key])
    except ValueError as e:
        raise DatasetError(
            f"{p}[{key}]: holds Python objects, which mcudeploy does not unpickle ({e})"
        ) from None
    except Exception as e:  # a corrupt member of an otherwise readable zip
        raise DatasetError(f"{p}[{key}]: cannot read ({type(e).__name__}: {e})") from None


def _check_numbers(a: np.ndarray, name: str) -> np.ndarray:
    """Real numbers with a sample axis, all finite (the dtype is kept)."""
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DatasetError(f"{name}: holds {a.dtype} data, expected numbers")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise DatasetError(f"{name}: holds complex numbers ({a.dtype}); a model input takes real numbers")
    if a.ndim < 2:
        raise DatasetError(f"{name}: shape {list(a.shape)} has no sample axis; expected [N, ...input shape]")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argwhere(bad.reshape(len(a), -1).any(axis=1))[0][0])
            raise DatasetError(f"{name}: sample {first} contains NaN or infinity")
    return a


def load_image_folder(
    folder: Path,
    shape: Shape | None,
    *,
    samples: int | None = None,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Images under ``folder`` (recursively, sorted by path), resized to ``shape``'s H×W and channels."""
    from PIL import Image, UnidentifiedImageError

    if shape is None or len(shape) != 3 or shape[-1] not in (1, 3, 4):
        raise DatasetError(
            f"{folder}: an image folder needs a model input of shape (H, W, 1|3|4), not {shape}",
            hint="give the data as .npy/.npz instead",
        )
    h, w, c = shape
    files = sorted(
        (f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda f: f.relative_to(folder).as_posix(),
    )
    if not files:
        raise DatasetError(f"{folder}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    lo, hi = pixel_range
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    out = []
    for f in files[:samples]:
        try:
            with Image.open(f) as im:
                im = im.convert(mode).resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.float32)
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"{f}: cannot read as an image ({e})") from None
        out.append(a.reshape(h, w, c) * ((hi - lo) / 255.0) + lo)
    return np.stack(out).astype(np.float32)


def fit_shape(x: np.ndarray, shape: Shape, name: str) -> np.ndarray:
    """Check ``x`` is ``(N, *shape)``. The one rule every command applies: a missing trailing
    channel axis of 1 is added, flattened samples ``(N, prod(shape))`` are reshaped (row-major),
    and NCHW samples of an (H, W, C) input are taken in NHWC order."""
    from .quantio import nchw_to_nhwc

    shape = tuple(int(d) for d in shape)
    if x.ndim < 1:
        raise DatasetError(f"{name}: a single number, not samples of shape {list(shape)}")
    x = nchw_to_nhwc(x, shape)
    if x.shape[1:] == shape:
        return x
    if shape and shape[-1] == 1 and x.shape[1:] == shape[:-1]:
        return x[..., None]
    if x.ndim == 2 and len(shape) > 1 and x.shape[1] == int(np.prod(shape)):
        return x.reshape((len(x), *shape))
    raise DatasetError(
        f"{name}: samples have shape {list(x.shape[1:])}, but the model input is {list(shape)} "
        f"(array shape {list(x.shape)}, expected [N, {', '.join(map(str, shape))}])"
    )


# -- helpers ------------------------------------------------------------------------------
def _static_shape(shape: Sequence[int | None] | None) -> Shape | None:
    if shape is None:
        return None
    if any(d is None or d < 0 for d in shape):
        return None  # dynamic dims: nothing to check against
    return tuple(int(d) for d in shape)


def _keys(arrays: Any) -> str:
    return ", ".join(repr(k) for k in sorted(arrays.keys())) or "no arrays"


def _open_npz(p: Path) -> Any:
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.is_dir():
        raise DatasetError(
            f"{p}: is a folder, expected an .npz file",
            hint="save arrays with numpy.savez(path, x=..., y=...)",
        )
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DatasetError(f"{p}: cannot read ({e.strerror})") from None
    if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":  # np.load would try to unpickle it
        raise DatasetError(
            f"{p}: not a NumPy .npz/.npy file", hint="save arrays with numpy.savez(path, x=..., y=...)"
        )
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        raise DatasetError(f"{p}: holds Python objects, which mcudeploy does not unpickle ({e})") from None
    except Exception as e:  # zipfile / OSError zoo for corrupt archives
        raise DatasetError(f"{p}: cannot read as .npz ({type(e).__name__}: {e})") from None


def _load_array(p: Path, key: str | None) -> np.ndarray:
    if p.suffix.lower() == ".npy":
        if key:
            raise DatasetError(f"{p}: --key {key!r} only applies to .npz files")
        try:
            return np.load(p, allow_pickle=False)
        except Exception as e:
            raise DatasetError(f"{p}: cannot read as .npy ({type(e).__name__}: {e})") from None
    arrays = _open_npz(p)
    if key is None:
        names = list(arrays.keys())
        found = [k for k in DEFAULT_KEYS if k in names]
        if len(names) == 1:
            key = names[0]
        elif found:
            key = found[0]
        else:
            raise DatasetError(f"{p}: holds {_keys(arrays)}; choose one with --key")
    if key not in arrays:
        raise DatasetError(f"{p}: no array named {key!r} (it holds {_keys(arrays)})")
    return _member(p, arrays, key)


def _as_float(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except ValueError as e:  # ragged lists
        raise DatasetError(f"{name}: samples do not all have the same shape ({e})") from None
    a = _check_numbers(a, name).astype(np.float32)
    bad = ~np.isfinite(a)  # finite float64 beyond float32's range
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(a), -1).any(axis=1))[0][0])
        raise DatasetError(f"{name}: sample {first} is beyond float32's range")
    return a


def _import_callable(spec: str) -> Any:
    m = _GENERATOR.match(spec)
    if not m:
        raise DatasetError(f"{spec}: expected module:function")
    module, func = m["module"], m["func"]
    try:
        if module.endswith(".py"):
            path = Path(module)
            if not path.exists():
                raise DatasetError(f"{spec}: no such file {module}")
            ms = importlib.util.spec_from_file_location(f"_mcudeploy_data_{path.stem}", path)
            assert ms is not None and ms.loader is not None
            mod = importlib.util.module_from_spec(ms)
            sys.modules[ms.name] = mod
            ms.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module)
    except DatasetError:
        raise
    except ImportError as e:
        raise DatasetError(f"{spec}: cannot import {module!r} ({e})", hint="is it on PYTHONPATH?") from None
    except Exception as e:
        raise DatasetError(f"{spec}: importing {module!r} failed ({type(e).__name__}: {e})") from None
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise DatasetError(f"{spec}: {module!r} has no function {func!r}")
    return fn


def _from_generator(spec: str, shape: Shape | None, samples: int | None) -> np.ndarray:
    """Samples from a user function returning an iterable of arrays (TF style ``[x]`` lists work too)."""
    fn = _import_callable(spec)
    try:
        produced = fn()
        if isinstance(produced, np.ndarray):
            produced = iter(produced)
        if not isinstance(produced, Iterable):
            raise DatasetError(f"{spec}: returned {type(produced).__name__}, expected an iterable of arrays")
        items = []
        for i, item in enumerate(itertools.islice(produced, samples)):
            if isinstance(item, (list, tuple)):
                if len(item) != 1:
                    raise DatasetError(
                        f"{spec}: item {i} has {len(item)} inputs; mcudeploy calibrates one input"
                    )
                item = item[0]
            a = np.asarray(item)
            # TF representative datasets yield batches of one: drop that axis.
            if shape is not None and a.ndim == len(shape) + 1 and a.shape[0] == 1:
                a = a[0]
            if items and a.shape != items[0].shape:
                raise DatasetError(
                    f"{spec}: item {i} has shape {list(a.shape)}, item 0 has {list(items[0].shape)}"
                )
            items.append(a)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{spec}: the generator raised {type(e).__name__}: {e}") from None
    if not items:
        raise DatasetError(f"{spec}: the generator yielded no samples")
    return np.stack(items)
