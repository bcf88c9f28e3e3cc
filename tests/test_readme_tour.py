"""The README's "A five-minute tour" runs verbatim: every command of its shell block, in order, in a
fresh folder holding the files it names (model.keras, calib.npz, test.npz, train.npz).

The commands are read from README.md itself, so the README cannot drift from what mcudeploy does.
They run in-process (``mcudeploy.cli.main`` with the line's own argv) to keep TensorFlow's start-up
to once; the files they use are a tiny digits CNN trained for one epoch (its accuracy is not checked:
other CPUs train other bits). A step whose tool is missing is skipped by name, with the reason.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from mcudeploy.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
ACTIVATE = [".", ".venv/bin/activate"]
# Tools a step needs beyond Python: without them only that step (and those after it that use its
# output) is skipped, saying what to install.
STEP_TOOLS = {
    "build": ("arm-none-eabi-gcc", "cmake"),
    "run": ("qemu-system-arm", "arm-none-eabi-gcc", "cmake"),
}


def tour_commands(text: str) -> list[list[str]]:
    """argv of every command in the first ``sh`` block after the "A five-minute tour" heading."""
    section = text.split("## A five-minute tour", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README: no ```sh block in 'A five-minute tour'"
    return [argv for line in block.group(1).splitlines() if (argv := shlex.split(line, comments=True))]


def test_the_tour_is_read_from_the_readme() -> None:
    cmds = tour_commands(README.read_text(encoding="utf-8"))
    assert cmds[0] == ACTIVATE
    assert all(c[0] == "mcudeploy" for c in cmds[1:]), [c for c in cmds if c[0] != "mcudeploy"]
    names = [c[1] for c in cmds[1:]]
    for step in ("quantize", "evaluate", "generate", "build", "run", "optimize", "advise"):
        assert step in names


@pytest.fixture()
def tour_dir(tmp_path: Path, digits_split) -> Path:
    """The user's files the tour names, made small: a 4-filter digits CNN trained one epoch."""
    from mcudeploy.ml._tf import tensorflow
    from mcudeploy.ml.digits import build_cnn, save_npz

    tf = tensorflow()
    s = digits_split
    tf.keras.utils.set_random_seed(0)
    m = build_cnn(width=4)
    m.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    m.fit(s.x_train[:256], s.y_train[:256], epochs=1, batch_size=32, verbose=0)
    m.save(tmp_path / "model.keras")
    save_npz(tmp_path / "calib.npz", s.x_train[:200], s.y_train[:200])
    save_npz(tmp_path / "train.npz", s.x_train[:128], s.y_train[:128])
    save_npz(tmp_path / "test.npz", s.x_test[:16], s.y_test[:16])
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # the venv the tour activates
    return tmp_path


@pytest.mark.slow
def test_readme_tour_runs_verbatim(
    tour_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tour_dir)
    skipped: list[str] = []
    for argv in tour_commands(README.read_text(encoding="utf-8")):
        line = shlex.join(argv)
        if argv == ACTIVATE:
            assert (tour_dir / ".venv/bin/activate").is_file(), "no venv to activate"
            continue
        missing = [t for t in STEP_TOOLS.get(argv[1], ()) if shutil.which(t) is None]
        if missing or (argv[1] == "run" and skipped):
            skipped.append(f"`{line}` (needs {', '.join(missing) or 'the build step'}: run `make setup`)")
            continue
        rc = main(argv[1:])
        out = capsys.readouterr()
        assert rc == 0, f"`{line}` exited {rc}\n{out.out[-3000:]}\n{out.err[-3000:]}"
    # what the steps said they made is there
    assert (tour_dir / "model_int8.tflite").is_file() and (tour_dir / "model_pcqat.h5").exists()
    assert (tour_dir / "include/mcd_model_meta.h").is_file()
    assert json.loads((tour_dir / "fw/mcudeploy.json").read_text())["runtime"] == "c"
    if skipped:
        pytest.skip("every other tour step passed; skipped: " + "; ".join(skipped))
    s = json.loads((tour_dir / "run-qemu-an547/summary.json").read_text())
    assert s["measured"] == s["samples"] == 16 and s["bit_exact_fraction"] == 1.0
