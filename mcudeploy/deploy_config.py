"""``mcudeploy deploy``'s configuration: :data:`SCHEMA` is the single definition of every key, its
type and default, used for validation, defaults and ``--set`` overrides alike (TOML,
``examples/mcudeploy.toml``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import tomllib

from .errors import ConfigError, InputError

BUILTIN_DIGITS = "builtin:digits"
AUTO_RUNTIME = "auto"  # the C runtime, plus TFLM when a TFLM tree is configured

# section -> key -> (accepted types, default). "" is the top level.
_Spec = tuple[tuple[type, ...], Any]
SCHEMA: dict[str, dict[str, _Spec]] = {
    "": {"out": ((str,), "mcudeploy-out")},
    "model": {"path": ((str,), BUILTIN_DIGITS), "epochs": ((int,), 30), "seed": ((int,), 0)},
    "optimize": {
        "recipe": ((str,), None),
        "data": ((str,), None),
        "epochs": ((int,), 4),  # mcudeploy.ml.optimize.FineTune's defaults
        "learning_rate": ((float, int), None),  # None: per stage (STAGE_LEARNING_RATES)
        "batch_size": ((int,), 32),
        "sparsity": ((float, int), None),
        "schedule": ((str,), None),
        "structured": ((str,), None),
        "clusters": ((int,), None),
        "centroid_init": ((str,), None),
        "per_channel": ((bool,), None),
    },
    "quantize": {"data": ((str,), None), "samples": ((int,), 200), "per_channel": ((bool,), True)},
    "evaluate": {
        "data": ((str,), None),
        "limit": ((int,), None),
        "gates": ((dict,), {}),
        "per_layer_samples": ((int,), 200),  # per-layer int8 error vs float on this many samples; 0: off
    },
    "vela": {
        "board": ((str,), None),
        "accelerator": ((str,), None),
        "system_config": ((str,), None),
        "memory_mode": ((str,), None),
        "optimise": ((str,), "Performance"),
    },
    "firmware": {
        "board": ((str,), "qemu-an547"),
        "runtime": ((str, list), AUTO_RUNTIME),
        "tflm_root": ((str,), None),
    },
    "run": {
        "enabled": ((bool,), True),
        "board": ((str,), None),
        "port": ((str,), None),
        "labgrid_place": ((str,), None),  # a board-farm place: its serial port and flasher (labgrid)
        "coordinator": ((str,), None),  # labgrid coordinator address (default: $LG_COORDINATOR)
        "baudrate": ((int,), 115200),
        "samples": ((int,), 0),  # 0: every sample of the evaluation data
        "timeout": ((float, int), 300.0),
        "gates": ((dict,), {}),
    },
    "report": {"title": ((str,), "mcudeploy deploy report")},
}
_PATH_KEYS = {
    ("", "out"),
    ("model", "path"),
    ("optimize", "data"),
    ("quantize", "data"),
    ("evaluate", "data"),
    ("firmware", "tflm_root"),
}
# Run gates are mcudeploy.device.results.Gates fields; evaluate gates are mcudeploy.ml.evaluate.GATES names.
_RUN_GATES = (
    "min_accuracy",
    "match_golden_accuracy",
    "require_bit_exact",
    "latency_budget_ms",
    "latency_budget",
    "max_failed",
)


# -- configuration ---------------------------------------------------------------------------
def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(
        {
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "dict": "table",
            "list": "list",
        }[t.__name__]
        for t in types
    )


def _check_value(where: str, value: Any, types: tuple[type, ...]) -> Any:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(types)}, got {value!r}")
    if isinstance(value, dict):  # gate tables: every number in them finite and not negative
        for k, v in value.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{where}.{k}: expected a finite number ≥ 0, got {v!r}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def _unknown_section(where: str, name: str) -> ConfigError:
    return ConfigError(f"{where}: unknown section [{name}] (known: {', '.join(sorted(SCHEMA)[1:])})")


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` (value in TOML syntax; a bare word is taken as a string)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE")
    section, _, key = name.strip().rpartition(".")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[tuple[str, str, Any]] | None = None,
    *,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """The validated configuration: defaults, then the TOML file, then ``overrides``.

    Relative paths in the file are taken relative to the file's folder; paths given as overrides
    (command-line flags) relative to the working directory.
    """
    raw: dict[str, Any] = {}
    cfg_dir = base_dir or Path.cwd()
    src = "configuration"
    if path is not None:
        p = Path(path)
        src = str(p)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{p}: no such configuration file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
        cfg_dir = p.resolve().parent
    cfg: dict[str, dict[str, Any]] = {s: {k: v for k, (_, v) in keys.items()} for s, keys in SCHEMA.items()}

    def put(section: str, key: str, value: Any, base: Path, where: str) -> None:
        if section not in SCHEMA:
            raise _unknown_section(where, section)
        spec = SCHEMA[section].get(key)
        name = f"{section}.{key}" if section else key
        if spec is None:
            known = ", ".join(sorted(SCHEMA[section]))
            raise ConfigError(f"{where}: unknown key '{name}' (known in {section or 'top level'}: {known})")
        value = _check_value(f"{where}: {name}", value, spec[0])
        if (section, key) in _PATH_KEYS and not value.startswith("builtin:"):
            value = str((base / Path(value).expanduser()).resolve())
        cfg[section][key] = value

    for k, v in raw.items():
        if isinstance(v, dict):
            if k not in SCHEMA or not k:
                raise _unknown_section(src, k)
            for kk, vv in v.items():
                put(k, kk, vv, cfg_dir, src)
        else:
            put("", k, v, cfg_dir, src)
    for section, key, value in overrides or []:
        put(section, key, value, Path.cwd(), "command line")
    cfg["optimize"]["enabled"] = cfg["optimize"]["recipe"] is not None
    _validate(cfg)
    return cfg


def _validate(cfg: dict[str, Any]) -> None:
    from .boards import get_board
    from .ml.evaluate import GATES

    for g in cfg["evaluate"]["gates"]:
        if g not in GATES:
            raise ConfigError(f"unknown key 'evaluate.gates.{g}' (known: {', '.join(sorted(GATES))})")
    for g in cfg["run"]["gates"]:
        if g not in _RUN_GATES:
            raise ConfigError(f"unknown key 'run.gates.{g}' (known: {', '.join(_RUN_GATES)})")
    fw = get_board(cfg["firmware"]["board"])
    rb = cfg["run"]["board"]
    if rb is not None and rb != fw.name:
        raise ConfigError(
            f"run.board '{rb}' differs from firmware.board '{fw.name}': the run uses that firmware"
        )
    if cfg["vela"]["board"]:
        get_board(cfg["vela"]["board"])
    model = cfg["model"]["path"]
    if model.startswith("builtin:") and model != BUILTIN_DIGITS:
        raise ConfigError(f"model.path {model!r}: the only built-in model is {BUILTIN_DIGITS!r}")
    if not model.startswith("builtin:") and cfg["evaluate"]["data"] is None:
        raise ConfigError("evaluate.data is required with your own model (a labelled .npz with x and y)")
    if cfg["run"]["port"] and cfg["run"]["labgrid_place"]:
        raise ConfigError("run.port and run.labgrid_place both name the device: give one")
    if cfg["run"]["samples"] < 0 or cfg["quantize"]["samples"] < 1:
        raise ConfigError("run.samples must be ≥ 0 and quantize.samples ≥ 1")
    if cfg["run"]["timeout"] <= 0:
        raise ConfigError(f"run.timeout must be > 0 seconds, got {cfg['run']['timeout']!r}")
    if cfg["model"]["epochs"] < 1:
        raise ConfigError(f"model.epochs must be ≥ 1, got {cfg['model']['epochs']!r}")
    runtimes(cfg)


def runtimes(cfg: dict[str, Any]) -> list[str]:
    """The firmware variants to build: ``auto`` is the C runtime, plus TFLM when a tree is configured."""
    from .firmware.codegen import get_runtime

    rt = cfg["firmware"]["runtime"]
    if rt == AUTO_RUNTIME:
        from .setup.tflm import default_tree

        has_tree = cfg["firmware"]["tflm_root"] or os.environ.get("MCUDEPLOY_TFLM_ROOT") or default_tree()
        names = ["c"] + (["tflm"] if has_tree else [])
    else:
        names = [rt] if isinstance(rt, str) else list(rt)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"firmware.runtime {rt!r}: give one runtime or a list of distinct ones")
    for n in names:
        _check_value("firmware.runtime", n, (str,))
        get_runtime(n)
    return names


def _is_tflite(path: str) -> bool:
    return Path(path).suffix.lower() == ".tflite"
