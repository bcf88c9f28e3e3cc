"""A small incremental pipeline runner: stages, artifacts and a manifest of hashes.

Each stage declares what defines it (input files and parameters) and writes its artifacts into
its own folder under the output directory. After every stage the manifest records the sha256 of
its inputs and outputs, so a re-run skips stages whose inputs did not change and whose outputs are
intact, and a failed stage names itself while every earlier artifact stays on disk.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import file_digest, write_json_atomic
from .errors import MCUDeployError

MANIFEST = "manifest.json"


def dist_version(name: str) -> str | None:
    """An installed distribution's version (None when absent): for stage keys, so a stage made by
    another TensorFlow, TFLite Micro or Vela runs again instead of being reused."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _tree_sha256(path: Path) -> str:
    if path.is_file():
        return file_digest(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + file_digest(p).encode())
    return h.hexdigest()


@dataclass
class StageResult:
    name: str
    skipped: bool
    seconds: float
    outputs: dict[str, Path]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    """``run(ctx)`` writes into ``ctx.stage_dir(name)`` and returns {artifact name: path} plus a summary."""

    name: str
    description: str
    run: Callable[[Context], tuple[dict[str, Path], dict[str, Any]]]
    inputs: Callable[[Context], dict[str, Any]]  # parameters and input paths that define this stage's work
    enabled: Callable[[Context], bool] = lambda ctx: True


class StageFailed(MCUDeployError):
    """A pipeline stage failed; the message names it and keeps the cause's exit code."""

    def __init__(self, stage: str, cause: MCUDeployError) -> None:
        super().__init__(f"stage '{stage}' failed: {cause.message}", hint=cause.hint)
        self.exit_code = cause.exit_code
        self.stage = stage
        self.cause = cause


class Context:
    """What stages share: the output folder, the options, and earlier stages' artifacts."""

    def __init__(self, out: Path, options: dict[str, Any]) -> None:
        self.out = out
        self.options = options
        self.artifacts: dict[str, Path] = {}
        self.summaries: dict[str, dict[str, Any]] = {}

    def stage_dir(self, name: str) -> Path:
        d = self.out / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def artifact(self, key: str) -> Path:
        if key not in self.artifacts:
            raise MCUDeployError(
                f"no artifact {key!r} has been produced yet (have: {', '.join(sorted(self.artifacts))})"
            )
        return self.artifacts[key]


def _fingerprint(value: Any) -> Any:
    """Replace paths by their content hash so a changed file (not a changed path) re-runs a stage."""
    if isinstance(value, Path):
        return {"sha256": _tree_sha256(value)} if value.exists() else {"missing": value.name}
    if isinstance(value, dict):
        return {str(k): _fingerprint(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_fingerprint(v) for v in value]
    return value


@functools.cache
def code_fingerprint() -> str:
    """Hash of mcudeploy itself (its Python sources, firmware templates and board files): every
    stage's output depends on the code that made it, so another mcudeploy re-runs the stages."""
    from ._resources import package_data

    h = hashlib.sha256()
    roots = {
        "mcudeploy": Path(__file__).resolve().parent,
        "templates": Path(str(package_data("mcudeploy.templates"))),
        "boards": Path(str(package_data("mcudeploy.boards_data"))),
    }
    for name, root in roots.items():
        for p in sorted(q for q in root.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
            h.update(f"{name}/{p.relative_to(root).as_posix()}\0".encode() + p.read_bytes())
    return h.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Pipeline:
    def __init__(self, stages: Iterable[Stage], out: Path, options: dict[str, Any]) -> None:
        self.stages = list(stages)
        self.ctx = Context(Path(out), options)
        self.manifest_path = self.ctx.out / MANIFEST

    def _load_manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text())
            return data if isinstance(data, dict) and isinstance(data.get("stages"), dict) else {"stages": {}}
        except (OSError, ValueError):
            return {"stages": {}}

    def _save_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    def _rel(self, p: Path) -> str:
        try:
            return p.resolve().relative_to(self.ctx.out.resolve()).as_posix()
        except ValueError:
            return p.name

    def run(self, on_stage: Callable[[Stage, StageResult], None] | None = None) -> list[StageResult]:
        self.ctx.out.mkdir(parents=True, exist_ok=True)
        manifest = self._load_manifest()
        results: list[StageResult] = []
        for stage in self.stages:
            if not stage.enabled(self.ctx):
                continue
            key = _digest({"code": code_fingerprint(), "inputs": _fingerprint(stage.inputs(self.ctx))})
            prev = manifest["stages"].get(stage.name)
            skipped = bool(prev) and prev.get("inputs_sha256") == key and self._outputs_intact(prev)
            if skipped:
                outputs = {k: self.ctx.out / v["path"] for k, v in prev["outputs"].items()}
                summary, seconds = prev.get("summary", {}), 0.0
            else:
                t0 = time.monotonic()
                try:
                    outputs, summary = stage.run(self.ctx)
                except MCUDeployError as e:
                    manifest["stages"].pop(stage.name, None)
                    self._save_manifest(manifest)
                    raise StageFailed(stage.name, e) from e
                seconds = time.monotonic() - t0
                manifest["stages"][stage.name] = {
                    "inputs_sha256": key,
                    "outputs": {
                        k: {"path": self._rel(p), "sha256": _tree_sha256(p)}
                        for k, p in sorted(outputs.items())
                    },
                    "summary": summary,
                    "seconds": round(seconds, 3),
                }
                self._save_manifest(manifest)
            self.ctx.artifacts.update(outputs)
            self.ctx.summaries[stage.name] = summary
            res = StageResult(stage.name, skipped, seconds, outputs, summary)
            results.append(res)
            if on_stage:
                on_stage(stage, res)
        return results

    def _outputs_intact(self, entry: dict[str, Any]) -> bool:
        for art in entry.get("outputs", {}).values():
            p = self.ctx.out / art["path"]
            if not p.exists() or _tree_sha256(p) != art["sha256"]:
                return False
        return True
