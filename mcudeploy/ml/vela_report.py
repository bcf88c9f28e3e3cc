"""Vela's outputs turned into a structured report.

Every number comes from the CSV files Vela writes (the network summary CSV and the per-layer CSV
of ``--verbose-performance``); Vela's human-readable stdout is never read for numbers. The only
text taken from stdout is Vela's "supported operators" diagnostics, which carry the reason an
operator falls back to the CPU and exist nowhere else.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .model import NPU_CUSTOM_OP, Model

NO_REASON = "placed on the CPU by Vela (it gave no reason)"

# One name and one meaning for Vela's two cycle counts wherever they are shown (compile, advise,
# optimize, sweep and advise CSVs use the field names npu_cycles / total_cycles for the same two).
NPU_CYCLES = "NPU cycles"
TOTAL_CYCLES = "total cycles"
CYCLES_LEGEND = (
    f"{NPU_CYCLES}: Vela's estimate of the NPU's compute alone; {TOTAL_CYCLES}: the NPU part of the "
    "inference including its memory traffic (weights, feature maps), from which inference time is "
    "computed. Neither counts operators left for the CPU."
)

# Per-layer CSV header -> our key. Vela's column names are kept in `vela_column` for the docs.
PER_LAYER_COLUMNS: dict[str, str] = {
    "Original Operator": "original_op",
    "NNG Operator": "op",
    "Target": "target",
    "Staging Usage": "sram_bytes",
    "Peak% (Staging)": "sram_peak_pct",
    "Op Cycles": "cycles",
    "Network% (cycles)": "cycles_pct",
    "NPU": "npu_cycles",
    "SRAM AC": "sram_access_cycles",
    "DRAM AC": "dram_access_cycles",
    "OnFlash AC": "onchip_flash_access_cycles",
    "OffFlash AC": "offchip_flash_access_cycles",
    "MAC Count": "macs",
    "Network% (MAC)": "macs_pct",
    "Util% (MAC)": "mac_util_pct",
    "Name": "name",
}

_WARN_RE = re.compile(r"^Warning \(supported operators\) operator: (?P<op>[^,]+), ofm: '(?P<ofm>.*)'\s*$")
_REASON_RE = re.compile(r"^\s*Reason: (?P<reason>.*\S)\s*$")
_ACCEL_RE = re.compile(r"^Ethos_(U\d\d)_(\d+)$", re.IGNORECASE)


def number(text: str) -> int | float | str:
    """A CSV cell as int when integral, float when numeric, else the text itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def accelerator_name(vela_name: str) -> str:
    """Vela's summary spelling (``Ethos_U55_128``) -> its CLI spelling (``ethos-u55-128``)."""
    m = _ACCEL_RE.match(vela_name.strip())
    return f"ethos-{m.group(1).lower()}-{m.group(2)}" if m else vela_name


def read_summary_csv(text: str) -> dict[str, int | float | str]:
    """The one data row of Vela's ``<net>_summary_<system config>.csv``, cells typed."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise ValueError(f"expected one row in Vela's summary CSV, found {len(rows)}")
    return {k: number(v) for k, v in rows[0].items()}


def read_per_layer_csv(text: str) -> list[dict[str, Any]]:
    """Vela's ``<net>_per-layer.csv`` rows with our snake_case keys and typed cells."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        out.append(
            {PER_LAYER_COLUMNS.get(k, k): (v if k in ("Name",) else number(v)) for k, v in row.items()}
        )
    return out


def read_cpu_reasons(stdout: str) -> dict[str, list[tuple[str, str]]]:
    """``ofm tensor name -> [(operator, reason), ...]`` from Vela's supported-operator warnings."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: tuple[str, str] | None = None
    for line in stdout.splitlines():
        w = _WARN_RE.match(line)
        if w:
            current = (w.group("op").strip(), w.group("ofm"))
            found.setdefault(current[1], [])
            continue
        r = _REASON_RE.match(line)
        if r and current is not None:
            found[current[1]].append((current[0], r.group("reason")))
            continue
        if line.strip():
            current = None
    return found


@dataclass(frozen=True)
class CpuOp:
    """An operator Vela left for the CPU. Unpacks as ``(op, reason)``."""

    op: str  # TFLite builtin name, e.g. "DEPTH_TO_SPACE"
    reason: str
    tensor: str = ""  # its output tensor (Vela names operators after it)
    index: int = -1  # operator index in the Vela model

    def __iter__(self) -> Iterator[str]:
        return iter((self.op, self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "tensor": self.tensor, "index": self.index, "reason": self.reason}


def cpu_ops_of(vela_model: Model, reasons: dict[str, list[tuple[str, str]]]) -> list[CpuOp]:
    """Operators of the compiled model that run on the CPU, each with Vela's reason."""
    ops = []
    for op in vela_model.operators:
        if op.opcode == NPU_CUSTOM_OP:
            continue
        tensor = vela_model.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else ""
        why = [r for name, r in reasons.get(tensor, []) if name == op.opcode] or [
            r for _, r in reasons.get(tensor, [])
        ]
        ops.append(CpuOp(op.opcode, "; ".join(why) if why else NO_REASON, tensor, op.index))
    return ops


@dataclass(frozen=True)
class VelaReport:
    """What Vela says about one compilation; numbers equal Vela's summary and per-layer CSVs."""

    accelerator: str
    system_config: str
    memory_mode: str
    optimise: str
    core_clock_hz: float  # the NPU clock the times are computed at (from the system config)
    arena_cache_size: int
    npu_ops: int  # TFLite operators of the input that Vela placed on the NPU
    cpu_ops: list[CpuOp]  # TFLite operators left for the CPU, with Vela's reason
    npu_passes: int  # Vela's "NPU operators" count: the NPU operations after lowering
    sram_bytes: int
    offchip_flash_bytes: int
    onchip_flash_bytes: int
    dram_bytes: int
    npu_cycles: int
    total_cycles: int
    inference_time_s: float
    inferences_per_s: float
    original_weights_bytes: int
    encoded_weights_bytes: int
    nn_macs: int
    per_layer: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, int | float | str] = field(default_factory=dict)  # Vela's summary row, as is
    model: str = ""
    model_sha256: str = ""
    vela_model_sha256: str = ""
    vela_model_bytes: int = 0
    vela_version: str = ""

    def npu_only_caveat(self) -> str | None:
        """What Vela's cycles and times leave out when operators fall back to the CPU (None if none do)."""
        if not self.cpu_ops:
            return None
        n = len(self.cpu_ops)
        return (
            f"{n} of {n + self.npu_ops} operators run on the CPU: Vela's {TOTAL_CYCLES}, inference time "
            "and inferences/s cover the NPU part only; measure the whole inference on the target "
            "(mcudeploy run) or remove the CPU fallbacks listed below"
        )

    @property
    def flash_bytes(self) -> int:
        """Constant data Vela placed in flash (off-chip plus on-chip)."""
        return self.offchip_flash_bytes + self.onchip_flash_bytes

    @classmethod
    def from_vela(
        cls,
        summary: dict[str, int | float | str],
        per_layer: list[dict[str, Any]],
        cpu_ops: list[CpuOp],
        *,
        memory_mode: str,
        optimise: str,
        source: Model,
        vela_model: Model,
        vela_version: str,
    ) -> VelaReport:
        def kib(key: str) -> int:
            return round(float(summary[key]) * 1024)  # Vela writes KiB; its byte counts are whole

        return cls(
            accelerator=accelerator_name(str(summary["accelerator_configuration"])),
            system_config=str(summary["system_config"]),
            memory_mode=memory_mode,
            optimise=optimise,
            core_clock_hz=float(summary["core_clock"]),
            arena_cache_size=kib("arena_cache_size"),
            npu_ops=max(0, len(source.operators) - len(cpu_ops)),
            cpu_ops=cpu_ops,
            npu_passes=int(summary["passes_before_fusing"]),
            sram_bytes=kib("sram_memory_used"),
            offchip_flash_bytes=kib("off_chip_flash_memory_used"),
            onchip_flash_bytes=kib("on_chip_flash_memory_used"),
            dram_bytes=kib("dram_memory_used"),
            npu_cycles=int(summary["cycles_npu"]),
            total_cycles=int(summary["cycles_total"]),
            inference_time_s=float(summary["inference_time"]),
            inferences_per_s=float(summary["inferences_per_second"]),
            original_weights_bytes=int(summary["total_original_weights"]),
            encoded_weights_bytes=int(summary["total_npu_encoded_weights"]),
            nn_macs=int(summary["nn_macs"]),
            per_layer=per_layer,
            summary=summary,
            model=source.source,
            model_sha256=source.sha256,
            vela_model_sha256=vela_model.sha256,
            vela_model_bytes=vela_model.size,
            vela_version=vela_version,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "vela_model_sha256": self.vela_model_sha256,
            "vela_model_bytes": self.vela_model_bytes,
            "vela_version": self.vela_version,
            "accelerator": self.accelerator,
            "system_config": self.system_config,
            "memory_mode": self.memory_mode,
            "optimise": self.optimise,
            "core_clock_hz": self.core_clock_hz,
            "arena_cache_size": self.arena_cache_size,
            "npu_ops": self.npu_ops,
            "cpu_ops": [c.to_dict() for c in self.cpu_ops],
            "npu_passes": self.npu_passes,
            "sram_bytes": self.sram_bytes,
            "offchip_flash_bytes": self.offchip_flash_bytes,
            "onchip_flash_bytes": self.onchip_flash_bytes,
            "dram_bytes": self.dram_bytes,
            "npu_cycles": self.npu_cycles,
            "total_cycles": self.total_cycles,
            "inference_time_s": self.inference_time_s,
            "inferences_per_s": self.inferences_per_s,
            "original_weights_bytes": self.original_weights_bytes,
            "encoded_weights_bytes": self.encoded_weights_bytes,
            "nn_macs": self.nn_macs,
            "per_layer": self.per_layer,
            "vela_summary": self.summary,
        }
