"""Readable views of a model and of an evaluation: rich tables for people, dicts for ``--json``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .evaluate import Evaluation, rungs_table
from .model import Model, QuantParams, Tensor


def _quant(q: QuantParams | None) -> str:
    if q is None:
        return "-"
    if q.per_channel:
        return f"per-channel x{len(q.scale)} (axis {q.axis})"
    return f"{q.scale[0]:.6g} @ {q.zero_point[0]}"


def _shape(t: Tensor) -> str:
    return "x".join(str(d) for d in t.shape) if t.shape else "scalar"


def _options(opts: dict[str, Any]) -> str:
    keep = ("stride_w", "stride_h", "padding", "filter_width", "filter_height", "depth_multiplier")
    parts = []
    for k in keep:
        if k in opts:
            v = opts[k]
            parts.append(f"{k}={'SAME' if v == 0 else 'VALID'}" if k == "padding" else f"{k}={v}")
    act = opts.get("fused_activation_function")
    if act:
        names = {1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
        parts.append(f"act={names.get(act, act)}")
    return " ".join(parts)


def inspection_dict(model: Model) -> dict[str, Any]:
    """Everything the table shows, as plain data (``mcudeploy inspect --json``)."""
    d = model.to_dict()
    d["description"] = model.description
    d["op_counts"] = {name: sum(op.opcode == name for op in model.operators) for name in model.op_names()}
    d["activation_bytes"] = sum(t.nbytes for t in model.tensors if not t.is_constant)
    return d


def summary_table(model: Model) -> Table:
    t = Table(title=f"{model.source}", show_header=False, title_justify="left")
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    rows = [
        ("sha256", model.sha256),
        ("size", f"{model.size:,} B"),
        ("schema", str(model.version)),
        ("weights", f"{model.weight_bytes():,} B"),
        ("MACs", f"{model.total_macs():,}"),
        ("operators", f"{len(model.operators)} ({', '.join(model.op_names())})"),
        ("subgraphs", str(len(model.subgraphs))),
    ]
    for role, tensors in (("input", model.inputs), ("output", model.outputs)):
        for x in tensors:
            rows.append((role, f"{x.name}  {_shape(x)} {x.dtype}  q={_quant(x.quant)}"))
    for k, v in rows:
        t.add_row(k, v)
    return t


def operators_table(model: Model) -> Table:
    t = Table(title="operators", title_justify="left")
    for col, just in (("#", "right"), ("op", "left"), ("inputs", "left"), ("output", "left")):
        t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    t.add_column("MACs", justify="right")
    t.add_column("options", overflow="fold")
    for op in model.operators:
        out = model.tensors[op.outputs[0]]
        t.add_row(
            str(op.index),
            op.opcode,
            ",".join(str(i) for i in op.inputs),
            f"{op.outputs[0]} {_shape(out)} {out.dtype}",
            f"{model.macs(op):,}",
            _options(op.options),
        )
    return t


def tensors_table(model: Model) -> Table:
    t = Table(title="tensors", title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("name", overflow="fold")
    t.add_column("shape")
    t.add_column("dtype")
    t.add_column("bytes", justify="right")
    t.add_column("kind")
    t.add_column("quantization (scale @ zero point)", overflow="fold")
    for x in model.tensors:
        t.add_row(
            str(x.index),
            x.name,
            _shape(x),
            x.dtype,
            f"{x.nbytes:,}",
            "const" if x.is_constant else "act",
            _quant(x.quant),
        )
    return t


def print_inspection(model: Model, console: Console | None = None) -> None:
    from ..console import console as default

    c = console or default
    for table in (summary_table(model), operators_table(model), tensors_table(model)):
        c.print(table)


def evaluation_table(ev: Evaluation) -> Table:
    t = Table(title=f"{ev.model} on {ev.dataset} ({ev.samples} samples)", title_justify="left")
    t.add_column("rung")
    t.add_column("runtime")
    t.add_column("top-1", justify="right")
    t.add_column("drop", justify="right")
    for row in rungs_table(ev):
        t.add_row(*row)
    return t


def agreement_table(ev: Evaluation) -> Table:
    t = Table(title="TFLite int8 vs host TFLM (the bit-exact reference)", title_justify="left")
    for col in ("TFLite kernels", "byte-identical", "top-1 agreement", "max diff", "mean |diff|"):
        t.add_column(col, justify="left" if col == "TFLite kernels" else "right")
    for a in ev.agreement:
        t.add_row(
            a.kernels,
            f"{a.byte_identical_pct:.2f} %",
            f"{a.top1_agreement_pct:.2f} %",
            f"{a.max_lsb_diff} LSB",
            f"{a.mean_abs_lsb_diff:.4f} LSB",
        )
    return t


def print_evaluation(ev: Evaluation, console: Console | None = None) -> None:
    from ..console import console as default

    c = console or default
    c.print(evaluation_table(ev))
    c.print(agreement_table(ev))
    sizes = f"int8 .tflite {ev.int8_bytes:,} B"
    if ev.float_bytes:
        sizes += f", float .tflite {ev.float_bytes:,} B (ratio {ev.size_ratio:.2f}x)"
    c.print(sizes)
    c.print(f"TFLM arena needed (measured on the host interpreter): {ev.arena_bytes:,} B")
    if ev.int8_drop_pp is not None:
        c.print(f"int8 drop vs float: {ev.int8_drop_pp:.2f} pp")


def print_layer_errors(rows: list[dict[str, Any]], samples: int, console: Console | None = None) -> None:
    """The per-layer int8 error table (worst first) and what to try for the ops that need it."""
    from ..console import console as default
    from .layer_error import TABLE_COLUMNS, LayerError, table_rows

    c = console or default
    errors = [LayerError(**{**r, "layers": tuple(r["layers"])}) for r in rows]
    t = Table(title=f"per-layer int8 error vs float ({samples} samples), worst first", title_justify="left")
    for col in TABLE_COLUMNS:
        t.add_column(col, justify="left" if col in ("op", "layer") else "right")
    for row in table_rows(errors):
        t.add_row(*row)
    c.print(t)
    advised = [(i, e) for i, e in enumerate(errors, 1) if e.advice][:3]
    for rank, e in advised:
        c.print(f"{rank}. {', '.join(e.layers) or e.tensor} (#{e.op_index} {e.op}): {e.advice}")
    if not advised:
        c.print("every op's error is what int8 rounding explains: nothing to fix per layer")
