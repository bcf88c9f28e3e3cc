"""Every command's output paths (the class, from the registry in mcudeploy.cli._guard): checked before
any work, never replacing what is not an earlier mcudeploy output of the same kind without --force,
and a command that fails leaves none of the files it had newly begun."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcudeploy.cli import cli, run
from mcudeploy.cli._guard import KINDS, OUTPUTS

# Arguments that get each command past click's parsing; the guard refuses before the body runs, so
# the input files only have to exist.
ARGS = {
    "advise": ["{keras}", "-d", "{npz}"],
    "build": ["{dir}"],
    "ci": ["github", "--board", "qemu-an547"],
    "compile": ["{tflite}"],
    "demo": [],
    "deploy": [],
    "evaluate": ["{tflite}", "-d", "{npz}"],
    "generate": ["{tflite}", "--board", "qemu-an547"],
    "harness-lib": [],
    "header": ["{tflite}"],
    "inspect": ["{tflite}"],
    "optimize": ["{keras}", "-d", "{npz}", "--recipe", "qat"],
    "quantize": ["{keras}", "--data", "{npz}"],
    "run": ["--board", "qemu-an547", "--firmware", "{elf}", "--data", "{npz}"],
}
CASES = [(c, name, kind) for c, opts in sorted(OUTPUTS.items()) for name, kind in sorted(opts.items())]
OUTPUT_LIKE = {"out", "out_dir", "output", "json_out", "csv_out", "tflite", "build_dir"}


def test_every_output_option_is_guarded() -> None:
    for name, cmd in cli.commands.items():
        paths = {p.name for p in cmd.params if p.name in OUTPUT_LIKE and not getattr(p, "is_flag", False)}
        assert paths <= set(OUTPUTS.get(name, {})), f"mcudeploy {name}: {paths} not in OUTPUTS"
        if paths:
            assert "force" in {p.name for p in cmd.params}


def _argv(command: str, name: str, target: Path, tmp: Path) -> list[str]:
    files = {"keras": tmp / "m.keras", "npz": tmp / "d.npz", "tflite": tmp / "m.tflite", "elf": tmp / "a.elf"}
    for f in files.values():
        f.write_bytes(b"input")
    (tmp / "proj").mkdir(exist_ok=True)
    fill = {**{k: str(v) for k, v in files.items()}, "dir": str(tmp / "proj")}
    flag = max(next(p for p in cli.commands[command].params if p.name == name).opts, key=len)
    return [command, *(a.format(**fill) for a in ARGS[command]), flag, str(target)]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"/" for p in root.rglob("*")}


@pytest.mark.parametrize(("command", "name", "kind"), CASES, ids=[f"{c}-{n}" for c, n, _ in CASES])
def test_what_is_not_ours_is_never_replaced(command, name, kind, tmp_path: Path, capsys) -> None:
    work = tmp_path / "w"
    work.mkdir()
    target = work / "theirs"
    if KINDS[kind].folder is False or kind == "keras":
        target.write_text("the user's own file\n")
    elif kind == "folder":
        target.write_text("a file where a folder goes\n")
    else:
        target.mkdir()
        (target / "thesis.tex").write_text("years of work\n")
    argv = _argv(command, name, target, tmp_path)
    before = _snapshot(work)
    assert run(*argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert argv[-2] in err and str(target) in err and "Traceback" not in err
    assert _snapshot(work) == before


@pytest.mark.parametrize(("command", "name", "kind"), CASES, ids=[f"{c}-{n}" for c, n, _ in CASES])
def test_unwritable_outputs_are_refused_before_any_work(command, name, kind, tmp_path: Path, capsys) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "afile").write_text("x")
    target = work / "afile" / "sub" / "out"
    argv = _argv(command, name, target, tmp_path)
    before = _snapshot(work)
    assert run(*argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert argv[-2] in err and "is a file, not a folder" in err
    assert _snapshot(work) == before


def test_earlier_outputs_are_replaced_and_force_replaces_anything(digits_int8_path: Path, tmp_path: Path):
    out = tmp_path / "inspect.json"
    out.write_text('{"an": "earlier run"}')
    assert run("inspect", digits_int8_path, "--json", out) == 0
    assert '"operators"' in out.read_text() or '"ops"' in out.read_text()
    out.write_text("notes")
    assert run("inspect", digits_int8_path, "--json", out) == 2 and out.read_text() == "notes"
    assert run("inspect", digits_int8_path, "--json", out, "--force") == 0 and out.read_text() != "notes"


def test_a_failing_command_leaves_none_of_its_new_outputs(
    digits_keras_path: Path, digits_test_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quantize writes the .tflite, then the JSON; the disk fills up in between (a fault this test
    cannot cause for real): neither is left."""
    import errno

    import mcudeploy._io as io

    real = io.write_text_atomic

    def full_for_json(path, text):  # type: ignore[no-untyped-def]
        if str(path).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(io, "write_text_atomic", full_for_json)
    out, js = tmp_path / "q.tflite", tmp_path / "q.json"
    with pytest.raises(OSError):
        run("--debug", "quantize", digits_keras_path, "--data", digits_test_npz, "-o", out, "--json", js)
    assert not out.exists() and not js.exists()


def test_default_output_paths_are_guarded_too(
    digits_int8_path: Path,
    digits_test_npz: Path,
    digits_keras_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Outputs a command names itself when the option is not given (run's run-BOARD/, quantize's
    MODEL_int8.tflite beside MODEL) are never someone else's either."""
    import shutil

    monkeypatch.chdir(tmp_path)
    Path("run-qemu-an547").mkdir()
    Path("run-qemu-an547/thesis.tex").write_text("years of work\n")
    elf = tmp_path / "a.elf"
    elf.write_bytes(b"\x7fELF")
    args = ("--board", "qemu-an547", "--firmware", elf, "--model", digits_int8_path)
    args += ("--data", digits_test_npz)
    assert run("run", *args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--out run-qemu-an547" in err and "--force" in err
    assert [p.name for p in Path("run-qemu-an547").iterdir()] == ["thesis.tex"]

    model = shutil.copy(digits_keras_path, tmp_path / "m.keras")
    Path("m_int8.tflite").write_text("the user's own file\n")
    assert run("quantize", model, "--data", digits_test_npz) == 2
    assert "m_int8.tflite" in capsys.readouterr().err
    assert Path("m_int8.tflite").read_text() == "the user's own file\n"


def test_deploy_out_from_the_config_is_guarded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('out = "mine"\n')
    assert run("deploy", "-c", cfg) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "out in" in err and "mine" in err and "not replacing it" in err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("command", ["header", "harness-lib"])
def test_files_written_into_a_folder_never_replace_the_users_own(
    command: str, digits_int8_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """header / harness-lib add files to a folder: one of the same name that mcudeploy did not
    generate stays, unless --force; their own earlier files are regenerated."""
    out = tmp_path / "include"
    args = [command, digits_int8_path, "-o", out] if command == "header" else [command, "-o", out]
    assert run(*args) == 0
    written = sorted(p.name for p in out.iterdir())
    assert run(*args) == 0  # earlier outputs: replaced
    mine = out / written[0]
    mine.write_text("/* my own code */\n")
    assert run(*args) == 2 and mine.read_text() == "/* my own code */\n"
    err = " ".join(capsys.readouterr().err.split())
    assert mine.name in err and "--force" in err
    assert run(*args, "--force") == 0 and mine.read_text() != "/* my own code */\n"


COMPILE_WRITES = [
    "m_vela.tflite",
    "m_vela_report.json",
    "m_summary_Ethos_U55_High_End_Embedded.csv",
    "m_per-layer.csv",
]


@pytest.mark.parametrize("written", COMPILE_WRITES)
def test_compile_never_replaces_a_file_of_the_users_beside_the_model(
    written: str, digits_int8_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file compile writes beside the model (Vela's own CSVs too) is checked before Vela runs."""
    import shutil

    model = Path(shutil.copy(digits_int8_path, tmp_path / "m.tflite"))
    theirs = tmp_path / written
    theirs.write_text("the user's own file\n")
    assert run("compile", model, "--accelerator", "ethos-u55-128") == 2
    assert written in capsys.readouterr().err and theirs.read_text() == "the user's own file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.tflite", written])
    # --force replaces it, with what Vela made under that very name
    assert run("compile", model, "--accelerator", "ethos-u55-128", "--force") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.tflite", *COMPILE_WRITES])
    assert theirs.read_bytes() != b"the user's own file\n"
