"""Per-layer on-device profile: a PROFILE reply (mcudeploy.protocol) + the model -> rows, JSON and CSV.

Each device record names the model operator it timed, so a row carries the op's name, its output
tensor and its MACs; MACs per timer unit (per cycle on hardware, per instruction under QEMU -icount)
say how well a kernel uses the CPU. ``coverage`` is the layers' sum over the whole invoke: the rest is
the runtime's own work (input/output copies, the interpreter loop). Vela's per-layer estimate, when
given, joins by the op's output tensor name (Vela names each operation after it).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .._io import write_json_atomic, write_text_atomic
from ..ml.model import Model
from ..protocol import Hello, ProfileResult
from .results import timer_unit

CSV_FIELDS = (
    "layer",
    "op_index",
    "opcode",
    "output",
    "macs",
    "elapsed",
    "share",
    "macs_per_unit",
    "vela_cycles",
)


def _vela_by_output(per_layer: list[dict[str, Any]] | None) -> dict[str, float]:
    """Vela's per-layer rows (mcudeploy.ml.vela_report.read_per_layer_csv) keyed by the name Vela gives
    an operation, its output tensor's; the first row of a name wins."""
    out: dict[str, float] = {}
    for row in per_layer or []:
        name, cycles = row.get("name"), row.get("cycles")
        if name and isinstance(cycles, int | float):
            out.setdefault(str(name), float(cycles))
    return out


def build_profile(
    model: Model,
    hello: Hello | dict[str, Any],
    result: ProfileResult,
    vela_per_layer: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The profile document: device, unit, whole-invoke time, stack, and one row per layer."""
    h = hello.to_dict() if isinstance(hello, Hello) else dict(hello)
    timer = str(h.get("timer", ""))
    ops = model.operators
    total_layers = sum(t for _, t in result.layers)
    fused = _fused_layers(model, str(h.get("runtime", "")), result.layers)
    rows = []
    for k, (op_index, elapsed) in enumerate(result.layers):
        op = ops[op_index] if op_index < len(ops) else None
        out_name = model.tensors[op.outputs[0]].name if op is not None and op.outputs else ""
        opcode = op.opcode if op is not None else "?"
        if k in fused:  # one row for the fused ops: MACs of the first, name and output of all of them
            opcode, out_name = fused[k][0], model.tensors[fused[k][1]].name
        macs = model.macs(op) if op is not None else 0
        rows.append(
            {
                "layer": k,
                "op_index": op_index,
                "opcode": opcode,
                "output": out_name,
                "macs": macs,
                "elapsed": elapsed,
                "share": elapsed / total_layers if total_layers else 0.0,
                "macs_per_unit": macs / elapsed if elapsed else 0.0,
                "vela_cycles": None,
            }
        )
    return join_vela(
        {
            "model": model.source,
            "sha256": model.sha256,
            "device": {k: h.get(k) for k in ("board", "runtime", "timer", "clock_hz", "arena_used")},
            "unit": timer_unit(timer),
            "status": result.status,
            "elapsed": result.cycles,
            "layers_sum": total_layers,
            "coverage": total_layers / result.cycles if result.cycles else 0.0,
            "npu_cycles": result.npu_cycles,
            "stack_used": result.stack_used,
            "stack_size": result.stack_size,
            "layers": rows,
        },
        vela_per_layer,
    )


def _fused_layers(
    model: Model, runtime: str, layers: tuple[tuple[int, int], ...]
) -> dict[int, tuple[str, int]]:
    """The C runtime's steps that run several model ops (runtime_c.lower.fuse_conv_add: a CONV_2D and
    the ADD it feeds) report the first op's index only: layer k -> (the step's opcode, such as
    "CONV_2D+ADD", and its output tensor, the last op's). Empty for another runtime, a model without
    ADD, or layers that are not this model's C-runtime steps."""
    if runtime != "c" or not any(op.opcode == "ADD" for op in model.operators):
        return {}
    from ..errors import UnsupportedError
    from ..firmware.runtime_c.lower import lower

    try:
        steps = lower(model).steps  # fusion is the same on every kernel path
    except UnsupportedError:
        return {}
    if [s.op_index for s in steps] != [op for op, _ in layers]:
        return {}
    return {k: (s.opcode, s.output) for k, s in enumerate(steps) if s.kernel == "mcd_k_conv2d_add"}


def join_vela(profile: dict[str, Any], vela_per_layer: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``profile`` with each layer's ``vela_cycles`` from Vela's rows (None where Vela has no row)."""
    vela = _vela_by_output(vela_per_layer)
    layers = [{**r, "vela_cycles": vela.get(r["output"])} for r in profile["layers"]]
    return {**profile, "layers": layers}


def to_csv(profile: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in profile["layers"]:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS})
    return buf.getvalue()


def write_profile(out_dir: str | Path, profile: dict[str, Any]) -> dict[str, Path]:
    """profile.json and profile.csv in ``out_dir`` (atomic, deterministic)."""
    out = Path(out_dir)
    return {
        "profile_json": write_json_atomic(out / "profile.json", profile),
        "profile_csv": write_text_atomic(out / "profile.csv", to_csv(profile)),
    }
