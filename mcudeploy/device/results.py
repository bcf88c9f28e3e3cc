"""Run results: per-sample records (from the harness's JSON Lines) -> summary, gates, JSON/CSV/JUnit.

Latency is reported in the unit of the timer the device named in HELLO: cycles (DWT or SysTick, and
then also ms at the board clock), instructions for QEMU's icount (never called cycles), or ns for
the host device. Every writer is deterministic: sorted keys, no timestamps, no absolute paths.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from .._io import write_json_atomic, write_text_atomic

PERCENTILES = (("min", 0), ("median", 50), ("p90", 90), ("p99", 99), ("max", 100))


def timer_unit(timer: str) -> str:
    """'dwt-cycles' -> 'cycles', 'icount-instructions' -> 'instructions', 'host-ns' -> 'ns'."""
    return timer.rsplit("-", 1)[-1]


def latency_stats(values: Sequence[int], timer: str, clock_hz: int) -> dict[str, Any]:
    unit = timer_unit(timer)
    if not values:
        return {"unit": unit, "timer": timer, "count": 0}
    arr = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {"unit": unit, "timer": timer, "count": len(values), "mean": float(arr.mean())}
    for name, q in PERCENTILES:
        out[name] = float(np.percentile(arr, q))
    to_ms = {"cycles": 1e3 / clock_hz if clock_hz else None, "ns": 1e-6}.get(unit)
    if to_ms is not None:
        out["ms"] = {k: out[k] * to_ms for k in ("mean", *(n for n, _ in PERCENTILES))}
    return out


@dataclass(frozen=True)
class Gates:
    min_accuracy: float | None = None  # fraction; None: no absolute floor
    match_golden_accuracy: bool = True  # device accuracy must equal host TFLM's (when golden given)
    require_bit_exact: bool = True  # every measured output byte-identical to host TFLM
    latency_budget_ms: float | None = None  # applied to the worst (max) latency
    latency_budget: float | None = None  # in the timer's own unit (cycles / instructions)
    max_failed: int = 0  # samples allowed to fail on the link


def summarize(
    records: dict[int, dict[str, Any]],
    *,
    n_samples: int,
    hello: dict[str, Any],
    golden_accuracy: float | None = None,
    bench: dict[str, Any] | None = None,
    gates: Gates | None = None,
    link: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run summary, including a ``gates`` list of {name, passed, message}."""
    gates = gates or Gates()
    recs = [records[i] for i in sorted(records) if i < n_samples]
    ok = [r for r in recs if r.get("status") == "ok"]
    failed = [r for r in recs if r.get("status") != "ok"]
    missing = n_samples - len(recs)
    labelled = [r for r in ok if "label" in r]
    accuracy = sum(r["pred"] == r["label"] for r in labelled) / len(labelled) if labelled else None
    exact = [r for r in ok if "bit_exact" in r]
    bit_exact = sum(bool(r["bit_exact"]) for r in exact) / len(exact) if exact else None
    timer = str(hello.get("timer", "unknown"))
    clock = int(hello.get("clock_hz", 0))
    s: dict[str, Any] = {
        "device": {k: hello[k] for k in sorted(hello) if k not in ("kind", "reset")},
        "samples": n_samples,
        "measured": len(ok),
        "failed": len(failed),
        "not_run": missing,
        "failure_reasons": dict(sorted(Counter(r.get("reason", "?") for r in failed).items())),
        "accuracy": accuracy,
        "golden_accuracy": golden_accuracy,
        "bit_exact_fraction": bit_exact,
        "bit_mismatches": sorted(int(r["index"]) for r in exact if not r["bit_exact"]),
        "latency": latency_stats([int(r["cycles"]) for r in ok], timer, clock),
        "npu_cycles": latency_stats([int(r["npu_cycles"]) for r in ok], "npu-cycles", clock)
        if any(r.get("npu_cycles") for r in ok)
        else None,
        "bench": bench,
        "link": link,
    }
    checks: list[dict[str, Any]] = []

    def gate(name: str, passed: bool, message: str) -> None:
        checks.append({"name": name, "passed": bool(passed), "message": message})

    if gates.min_accuracy is not None:
        acc = accuracy if accuracy is not None else -1.0
        gate(
            "accuracy",
            acc >= gates.min_accuracy,
            f"accuracy {_pct(accuracy)} (floor {_pct(gates.min_accuracy)})",
        )
    if gates.match_golden_accuracy and golden_accuracy is not None and accuracy is not None:
        gate(
            "accuracy_matches_host_tflm",
            abs(accuracy - golden_accuracy) < 1e-12,
            f"device {_pct(accuracy)} vs host TFLM {_pct(golden_accuracy)}",
        )
    if gates.require_bit_exact and bit_exact is not None:
        gate(
            "bit_exact",
            bit_exact == 1.0,
            f"{_pct(bit_exact)} of outputs byte-identical to host TFLM"
            + (f"; mismatches at {s['bit_mismatches'][:10]}" if s["bit_mismatches"] else ""),
        )
    lat = s["latency"]
    if gates.latency_budget_ms is not None:
        worst = lat.get("ms", {}).get("max")
        gate(
            "latency_ms",
            worst is not None and worst <= gates.latency_budget_ms,
            f"max latency {worst:.3f} ms (budget {gates.latency_budget_ms} ms)"
            if worst is not None
            else f"the {timer} timer has no ms conversion",
        )
    if gates.latency_budget is not None:
        worst = lat.get("max")
        gate(
            "latency",
            worst is not None and worst <= gates.latency_budget,
            f"max latency {worst} {lat['unit']} (budget {gates.latency_budget})",
        )
    gate(
        "complete",
        len(failed) + missing <= gates.max_failed,
        f"{len(ok)}/{n_samples} measured, {len(failed)} failed, {missing} not run"
        + (f": {s['failure_reasons']}" if failed else ""),
    )
    s["gates"] = checks
    s["passed"] = all(c["passed"] for c in checks)
    return s


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


CSV_FIELDS = (
    "index",
    "status",
    "label",
    "pred",
    "bit_exact",
    "cycles",
    "npu_cycles",
    "timer",
    "attempts",
    "resets",
    "reason",
    "output",
)


def to_csv(records: dict[int, dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for i in sorted(records):
        w.writerow({k: records[i].get(k, "") for k in CSV_FIELDS})
    return buf.getvalue()


def to_junit(summary: dict[str, Any], suite: str = "mcudeploy.run") -> str:
    gates = summary["gates"]
    fails = sum(not g["passed"] for g in gates)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites><testsuite name={quoteattr(suite)} tests="{len(gates)}" failures="{fails}">',
    ]
    for g in gates:
        head = f"  <testcase classname={quoteattr(suite)} name={quoteattr(g['name'])}"
        if g["passed"]:
            lines.append(f"{head}><system-out>{escape(g['message'])}</system-out></testcase>")
        else:
            lines.append(f"{head}><failure message={quoteattr(g['message'])}/></testcase>")
    lines += ["</testsuite></testsuites>", ""]
    return "\n".join(lines)


def write_results(
    out_dir: Path, summary: dict[str, Any], records: dict[int, dict[str, Any]]
) -> dict[str, Path]:
    """summary.json, samples.csv and junit.xml beside the run's results.jsonl."""
    return {
        "json": write_json_atomic(out_dir / "summary.json", summary),
        "csv": write_text_atomic(out_dir / "samples.csv", to_csv(records)),
        "junit": write_text_atomic(out_dir / "junit.xml", to_junit(summary)),
    }
