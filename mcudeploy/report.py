"""Stage ``report``: results → one self-contained HTML file with plots, plus a Markdown summary.

The input is a plain dict (``ReportData``) assembled from the other stages' summaries, so the report
can be rebuilt from the JSON files on disk. Plots are matplotlib PNGs embedded as base64; the file
needs no network and no other files. Output is deterministic (no timestamps; fixed plot metadata).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._io import write_text_atomic

ReportData = dict[str, Any]
"""Keys (all optional but ``title``):

- ``title``: str
- ``facts``: list of (label, value) pairs shown as a table (model, board, runtime, sha256 ...)
- ``accuracy``: list of {"rung": str, "top1": float in [0, 1]} in ladder order
- ``agreement``: {"label": str, "byte_identical": float, "max_lsb": int}
- ``latency``: {"unit": str, "values": [numbers], "clock_hz": int | None}
- ``memory``: list of {"region": str, "size": int, "used": {part: bytes}}
- ``npu_layers``: list of {"name": str, "npu_cycles": int}; ``cpu_ops``: list of {"op": str, "reason": str}
- ``device_layers``: a per-layer profile document (mcudeploy.device.profile.build_profile): device time per
  layer, MACs per cycle (instruction) and Vela's estimate where joined
- ``layer_error``: the worst ops by int8 error vs float (``mcudeploy.ml.layer_error.LayerError`` dicts)
"""


def layer_error_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[str, ...]]]:
    """Header and rows of the per-layer int8 error table (worst first), advice in the last column."""
    from .ml.layer_error import TABLE_COLUMNS, LayerError, table_rows

    errors = [LayerError(**{**r, "layers": tuple(r["layers"])}) for r in rows]
    return [*TABLE_COLUMNS, "what to try"], [
        (*row, e.advice or "-") for row, e in zip(table_rows(errors), errors, strict=True)
    ]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float = 6.4, h: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "mcudeploy"
    return plt.subplots(figsize=(w, h))


def plot_accuracy(ladder: Sequence[dict[str, Any]]) -> str:
    fig, ax = _figure()
    names = [r["rung"] for r in ladder]
    vals = [100.0 * float(r["top1"]) for r in ladder]
    bars = ax.bar(names, vals, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974"][: len(vals)])
    lo = max(0.0, min(vals) - 5.0) if vals else 0.0
    ax.set_ylim(lo, 100.0)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy ladder")
    for b, v in zip(bars, vals, strict=True):
        ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    return _png(fig)


def plot_latency(values: Sequence[float], unit: str) -> str:
    fig, ax = _figure()
    bins = max(5, min(50, int(math.sqrt(len(values))) + 1))
    ax.hist(values, bins=bins, color="#4c72b0")
    ax.set_xlabel(unit)
    ax.set_ylabel("inferences")
    ax.set_title("Latency per inference")
    return _png(fig)


def plot_memory(regions: Sequence[dict[str, Any]]) -> str:
    fig, ax = _figure(6.4, 0.6 + 0.5 * len(regions))
    parts = sorted({p for r in regions for p in r["used"]})
    colors = dict(
        zip(parts, ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd"] * 4, strict=False)
    )
    labelled: set[str] = set()
    for i, r in enumerate(regions):
        left = 0.0
        for p in parts:
            kib = r["used"].get(p, 0) / 1024
            if kib:
                ax.barh(i, kib, left=left, color=colors[p], label=None if p in labelled else p)
                labelled.add(p)
                left += kib
        ax.barh(i, r["size"] / 1024, fill=False, edgecolor="#333333")
    ax.set_yticks(range(len(regions)), [r["region"] for r in regions])
    ax.set_xscale("symlog", linthresh=64)
    ax.set_xlabel("KiB (outline: region size)")
    ax.set_title("Memory map of the image")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="lower right")
    return _png(fig)


def plot_npu_layers(layers: Sequence[dict[str, Any]]) -> str:
    fig, ax = _figure(6.4, 0.8 + 0.25 * len(layers))
    ax.barh(range(len(layers)), [int(layer["npu_cycles"]) for layer in layers], color="#55a868")
    ax.set_yticks(range(len(layers)), [str(layer["name"])[:40] for layer in layers], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("NPU cycles")
    ax.set_title("Per-layer NPU cycles (Vela estimate)")
    return _png(fig)


def plot_device_layers(prof: dict[str, Any]) -> str:
    """Device time per layer | Vela's estimate (when any layer has one) | MACs per timer unit."""
    rows = prof["layers"]
    has_vela = any(r.get("vela_cycles") is not None for r in rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 3 if has_vela else 2
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 0.9 + 0.22 * len(rows)), sharey=True)
    y = range(len(rows))
    unit = prof["unit"]
    axes[0].barh(y, [r["elapsed"] for r in rows], color="#4c72b0")
    axes[0].set_xlabel(f"device {unit}")
    axes[0].set_yticks(list(y), [f"{r['layer']} {r['opcode']}"[:32] for r in rows], fontsize=7)
    axes[0].invert_yaxis()
    if has_vela:
        axes[1].barh(y, [r.get("vela_cycles") or 0 for r in rows], color="#55a868")
        axes[1].set_xlabel("Vela estimate (cycles)")
    axes[-1].barh(y, [r["macs_per_unit"] for r in rows], color="#c44e52")
    axes[-1].set_xlabel(f"MACs per {unit.rstrip('s')}")
    fig.suptitle(f"Per-layer profile on the device ({prof['device'].get('runtime')}, {unit})", fontsize=9)
    return _png(fig)


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}
h1{margin-bottom:0}.fig{margin:1rem 0}img{max-width:100%}"""


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _min_median_max(values: Sequence[Any]) -> tuple[str, str, str]:
    v = sorted(values)
    return f"{v[0]:,}", f"{v[len(v) // 2]:,}", f"{v[-1]:,}"


def render_html(data: ReportData) -> str:
    title = html.escape(str(data.get("title", "mcudeploy report")))
    body = [f"<h1>{title}</h1>"]
    if data.get("facts"):
        body.append(_table(data["facts"]))

    def fig(name: str, png: str) -> None:
        img = f"<img alt='{name}' src='data:image/png;base64,{png}'>"
        body.append(f"<div class='fig' id='fig-{name}'>{img}</div>")

    if data.get("accuracy"):
        body.append("<h2>Accuracy</h2>")
        body.append(
            _table([(r["rung"], f"{100 * r['top1']:.2f} %") for r in data["accuracy"]], ["rung", "top-1"])
        )
        fig("accuracy", plot_accuracy(data["accuracy"]))
    if data.get("agreement"):
        a = data["agreement"]
        body.append(
            f"<p>{html.escape(a['label'])}: {100 * a['byte_identical']:.2f} % byte-identical, "
            f"max difference {a['max_lsb']} LSB.</p>"
        )
    if data.get("latency") and data["latency"].get("values"):
        lat = data["latency"]
        body.append("<h2>Latency</h2>")
        body.append(
            _table(
                [(lat["unit"], *_min_median_max(lat["values"]), len(lat["values"]))],
                ["unit", "min", "median", "max", "samples"],
            )
        )
        fig("latency", plot_latency(lat["values"], lat["unit"]))
    if data.get("memory"):
        body.append("<h2>Memory</h2>")
        body.append(
            _table(
                [
                    (
                        r["region"],
                        f"{r['size']:,}",
                        ", ".join(f"{k} {v:,}" for k, v in sorted(r["used"].items())),
                    )
                    for r in data["memory"]
                ],
                ["region", "size (B)", "used (B)"],
            )
        )
        fig("memory", plot_memory(data["memory"]))
    if data.get("npu_layers"):
        body.append("<h2>Ethos-U NPU</h2>")
        fig("npu", plot_npu_layers(data["npu_layers"]))
    if data.get("device_layers"):
        prof = data["device_layers"]
        body.append("<h2>Per-layer profile</h2>")
        body.append(
            f"<p>{prof['layers_sum']:,} of {prof['elapsed']:,} {html.escape(prof['unit'])} in layers "
            f"({100 * prof['coverage']:.1f} %); stack high-water {prof['stack_used']:,} of "
            f"{prof['stack_size']:,} B.</p>"
        )
        fig("layers", plot_device_layers(prof))
        body.append(_table(_layer_rows(prof), _LAYER_HEADER))
    if data.get("cpu_ops") is not None and (data.get("npu_layers") or data.get("cpu_ops")):
        body.append("<h2>CPU-fallback operators</h2>")
        ops = data["cpu_ops"]
        body.append(
            _table([(o["op"], o["reason"]) for o in ops], ["op", "reason"]) if ops else "<p>None.</p>"
        )
    if data.get("layer_error"):
        body.append("<h2>Per-layer int8 error (worst first)</h2>")
        header, rows = layer_error_rows(data["layer_error"])
        body.append(_table(rows, header))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


_LAYER_HEADER = ("layer", "op", "output", "MACs", "device", "share", "MACs/unit", "Vela")


def _layer_rows(prof: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r["layer"],
            f"{r['op_index']} {r['opcode']}",
            r["output"],
            f"{r['macs']:,}",
            f"{r['elapsed']:,}",
            f"{100 * r['share']:.1f} %",
            f"{r['macs_per_unit']:.3f}",
            "" if r.get("vela_cycles") is None else f"{r['vela_cycles']:,.0f}",
        )
        for r in prof["layers"]
    ]


def render_markdown(data: ReportData) -> str:
    lines = [f"# {data.get('title', 'mcudeploy report')}", ""]
    for label, value in data.get("facts", []):
        lines.append(f"- **{label}**: {value}")
    if data.get("accuracy"):
        lines += ["", "| rung | top-1 |", "|---|---|"]
        lines += [f"| {r['rung']} | {100 * r['top1']:.2f} % |" for r in data["accuracy"]]
    if data.get("agreement"):
        a = data["agreement"]
        lines += [
            "",
            f"{a['label']}: {100 * a['byte_identical']:.2f} % byte-identical, max {a['max_lsb']} LSB",
        ]
    lat = data.get("latency") or {}
    if lat.get("values"):
        lo, mid, hi = _min_median_max(lat["values"])
        lines += ["", f"Latency ({lat['unit']}): min {lo}, median {mid}, max {hi}"]
    prof = data.get("device_layers")
    if prof:
        lines += ["", f"Per-layer profile ({prof['unit']}):", "", "| " + " | ".join(_LAYER_HEADER) + " |"]
        lines.append("|" + "---|" * len(_LAYER_HEADER))
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in _layer_rows(prof)]
    if data.get("layer_error"):
        header, rows = layer_error_rows(data["layer_error"])
        lines += ["", "Per-layer int8 error (worst first):", "", "| " + " | ".join(header) + " |"]
        lines += ["|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(data: ReportData, out_dir: Path) -> tuple[Path, Path]:
    html_path = write_text_atomic(out_dir / "report.html", render_html(data))
    md_path = write_text_atomic(out_dir / "report.md", render_markdown(data))
    return html_path, md_path
