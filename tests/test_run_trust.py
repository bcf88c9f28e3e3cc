"""Results never mixed or lost: `run --project` knows its model, resumes only what is the same, one
run per output folder at a time, and nothing replaced that is not an earlier mcudeploy output."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcudeploy.cli import run as cli_run


@pytest.fixture()
def c_protocol_project(digits_int8, tmp_path: Path) -> Path:
    from mcudeploy.boards import get_board
    from mcudeploy.codegen import generate

    return generate(digits_int8, get_board("qemu-an547"), tmp_path / "fw", runtime="c", mode="protocol").path


def test_a_c_project_names_its_model_and_run_checks_it(
    c_protocol_project: Path, digits_int8, digits_test_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcudeploy.codegen import project_model

    found = project_model(c_protocol_project)
    assert found is not None and found.read_bytes() == digits_int8.data
    # a model swapped under the project is refused before anything is built or run
    found.write_bytes(digits_int8.data[:-1] + bytes([digits_int8.data[-1] ^ 1]))
    rc = cli_run("run", "--board", "qemu-an547", "--project", c_protocol_project, "--data", digits_test_npz)
    err = capsys.readouterr().err
    assert rc == 2 and "model.tflite" in err and "not the model the project was generated from" in err
    assert not (c_protocol_project / "build").exists()
    found.unlink()
    assert (
        cli_run("run", "--board", "qemu-an547", "--project", c_protocol_project, "--data", digits_test_npz)
        == 2
    )
    assert "model.tflite is missing" in capsys.readouterr().err
