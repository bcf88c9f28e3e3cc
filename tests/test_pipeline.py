"""The incremental pipeline: skip unchanged stages, re-run on changed inputs, keep artifacts on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcudeploy.errors import DatasetError
from mcudeploy.pipeline import Pipeline, Stage, StageFailed


def _stages(calls: list[str], fail_at: str | None = None) -> list[Stage]:
    def upper(ctx):
        calls.append("upper")
        src: Path = ctx.options["src"]
        out = ctx.stage_dir("upper") / "upper.txt"
        out.write_text(src.read_text().upper())
        return {"upper": out}, {"chars": len(src.read_text())}

    def count(ctx):
        calls.append("count")
        if fail_at == "count":
            raise DatasetError("count: the text is unreadable")
        text = ctx.artifact("upper").read_text()
        out = ctx.stage_dir("count") / "count.json"
        out.write_text(json.dumps({"words": len(text.split())}))
        return {"count": out}, {"words": len(text.split())}

    return [
        Stage("upper", "upper-case the text", upper, lambda ctx: {"src": ctx.options["src"]}),
        Stage(
            "count", "count words", count, lambda ctx: {"upper": ctx.artifact("upper"), "n": ctx.options["n"]}
        ),
    ]


def test_rerun_skips_and_changes_rerun(tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("hello int8 world")
    out = tmp_path / "out"
    calls: list[str] = []
    res = Pipeline(_stages(calls), out, {"src": src, "n": 1}).run()
    assert [r.skipped for r in res] == [False, False] and calls == ["upper", "count"]
    assert json.loads((out / "count" / "count.json").read_text()) == {"words": 3}

    calls.clear()
    res = Pipeline(_stages(calls), out, {"src": src, "n": 1}).run()
    assert calls == [] and all(r.skipped for r in res)
    assert res[1].summary == {"words": 3}

    calls.clear()
    Pipeline(_stages(calls), out, {"src": src, "n": 2}).run()  # a changed parameter re-runs only its stage
    assert calls == ["count"]

    calls.clear()
    src.write_text("hello int8")  # a changed input file re-runs everything downstream of it
    Pipeline(_stages(calls), out, {"src": src, "n": 2}).run()
    assert calls == ["upper", "count"]

    calls.clear()
    (out / "count" / "count.json").write_text("tampered")  # a damaged artifact is rebuilt
    Pipeline(_stages(calls), out, {"src": src, "n": 2}).run()
    assert calls == ["count"]


def test_failure_names_stage_and_keeps_earlier(tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("a b")
    out = tmp_path / "out"
    with pytest.raises(StageFailed, match="stage 'count' failed: count: the text is unreadable") as ei:
        Pipeline(_stages([], fail_at="count"), out, {"src": src, "n": 1}).run()
    assert ei.value.exit_code == DatasetError.exit_code
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["upper"] and (out / "upper" / "upper.txt").exists()
    calls: list[str] = []
    Pipeline(_stages(calls), out, {"src": src, "n": 1}).run()
    assert calls == ["count"]


def test_another_mcudeploy_reruns_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Outputs depend on the code that made them: a changed mcudeploy (sources, templates, boards)
    never reuses what an older one cached."""
    import mcudeploy.pipeline as pipeline

    src = tmp_path / "in.txt"
    src.write_text("hello int8 world")
    calls: list[str] = []
    Pipeline(_stages(calls), tmp_path / "out", {"src": src, "n": 1}).run()
    monkeypatch.setattr(pipeline, "code_fingerprint", lambda: "another mcudeploy")
    calls.clear()
    Pipeline(_stages(calls), tmp_path / "out", {"src": src, "n": 1}).run()
    assert calls == ["upper", "count"]


def test_an_edited_board_file_reruns_the_stages_that_used_it(tmp_path: Path):
    from mcudeploy.deploy import deploy_stages, load_config
    from mcudeploy.pipeline import Context, _digest, _fingerprint

    board = tmp_path / "myboard.toml"
    from mcudeploy._resources import package_data

    original = package_data("mcudeploy.boards_data").joinpath("qemu-an547.toml").read_text()
    board.write_text(original.replace('name = "qemu-an547"', 'name = "myboard"'))
    cfg = load_config(None, [("firmware", "board", str(board)), ("firmware", "runtime", "c")])
    stages = {s.name: s for s in deploy_stages(cfg)}
    ctx = Context(tmp_path / "out", cfg)

    def key() -> str:
        return _digest(_fingerprint(stages["generate-c"].inputs(ctx)))

    before = key()
    assert key() == before
    board.write_text(board.read_text().replace("baud = 115200", "baud = 57600"))
    assert key() != before
