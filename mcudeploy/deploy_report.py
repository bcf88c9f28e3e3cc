"""The deploy report's data, assembled from the pipeline's stage summaries alone (so a report can be
rebuilt from a finished output folder): accuracy ladder, Vela, memory map, runs, profiles."""

from __future__ import annotations

from typing import Any

# -- the report -------------------------------------------------------------------------------
_RUNG_LABELS = {"float": "float", "tflite-int8": "int8 TFLite", "tflm-int8": "int8 host TFLM"}


def _drop_pp(ev: dict[str, Any]) -> float:
    """Accuracy lost from the first rung (float, or the int8 model) to host TFLM, in percentage points."""
    rungs = ev.get("rungs", [])
    return rungs[0]["accuracy"] - rungs[-1]["accuracy"] if rungs else 0.0


def report_data(options: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report's :data:`mcudeploy.report.ReportData`, assembled from the stage summaries alone."""
    from .boards import get_board
    from .device.profile import join_vela

    rts = sorted(n[len("run-") :] for n in summaries if n.startswith("run-"))
    built = sorted(n[len("build-") :] for n in summaries if n.startswith("build-"))
    ev = summaries.get("evaluate", {})
    board = options["firmware"]["board"]
    facts: list[tuple[str, Any]] = [("model", ev.get("model", summaries.get("model", {}).get("model", "?")))]
    if ev:
        facts += [
            ("sha256", ev["sha256"]),
            ("int8 size", f"{ev['int8_bytes']:,} B"),
            *(
                [
                    (
                        "int8 / float .tflite",
                        f"{ev['int8_bytes'] / ev['float_bytes']:.3f}× ({ev['float_bytes']:,} B float)",
                    )
                ]
                if ev.get("float_bytes")
                else []
            ),
            ("int8 drop (float → host TFLM)", f"{_drop_pp(ev):.2f} pp"),
            *[
                (
                    f"TFLite ({a['kernels']} kernels) vs host TFLM",
                    f"{a['byte_identical_pct']:.2f} % byte-identical, top-1 agreeing on "
                    f"{a['top1_agreement_pct']:.2f} %, max {a['max_lsb_diff']} LSB",
                )
                for a in ev.get("agreement", [])
            ],
            ("evaluation data", f"{ev['dataset']} ({ev['samples']} samples)"),
            ("host TFLM arena", f"{ev['arena_bytes']:,} B"),
        ]
    if "optimize" in summaries:
        facts.append(("optimization", summaries["optimize"]["recipe"].get("name", "?")))
    layer_error = ev.get("per_layer") or []
    facts.append(("firmware board", board))
    accuracy = [
        {"rung": _RUNG_LABELS.get(r["name"], r["name"]), "top1": r["accuracy"] / 100.0}
        for r in ev.get("rungs", [])
    ]
    data: dict[str, Any] = {"title": options["report"]["title"], "facts": facts, "accuracy": accuracy}
    if layer_error:
        data["layer_error"] = layer_error[:5]
    for rt in rts:
        run = summaries[f"run-{rt}"]
        dev = run.get("device", {})
        # each runtime's own agreement and median latency: the sections below show the first one only
        extra = ""
        if run.get("bit_exact_fraction") is not None:
            frac, lsb = 100 * run["bit_exact_fraction"], run["max_lsb"]
            extra += f", {frac:.2f} % byte-identical to host TFLM (max {lsb} LSB)"
        if run.get("latency_values"):
            v = sorted(run["latency_values"])
            extra += f", median {v[len(v) // 2]:,} {run['latency']['unit']}"
        facts.append(
            (
                f"device ({rt})",
                f"{run['where']}: {dev.get('timer', '?')}, arena used "
                f"{dev.get('arena_used', 0):,} B, {run['measured']}/{run['samples']} samples{extra}",
            )
        )
        if run.get("accuracy") is not None:
            subset = (
                f" ({run['samples']} of {ev['samples']})" if ev and run["samples"] != ev["samples"] else ""
            )
            accuracy.append({"rung": f"device {rt}{subset}", "top1": float(run["accuracy"])})
        if run.get("bit_exact_fraction") is not None and "agreement" not in data:
            data["agreement"] = {
                "label": f"device ({rt}) vs host TFLM",
                "byte_identical": float(run["bit_exact_fraction"]),
                "max_lsb": run["max_lsb"],
            }
        prof = run.get("profile") or {}
        if prof.get("layers") and "device_layers" not in data:
            data["device_layers"] = join_vela(prof, (summaries.get("vela") or {}).get("per_layer"))
        if run.get("latency_values") and "latency" not in data:
            unit = run["latency"]["unit"]
            data["latency"] = {
                "unit": f"{unit} per inference ({rt}, {run['where']})",
                "values": run["latency_values"],
                "clock_hz": dev.get("clock_hz"),
            }
    if built:
        data["memory"] = memory_map(
            get_board(board), summaries[f"build-{built[0]}"], summaries.get(f"generate-{built[0]}", {})
        )
        facts.append(
            ("image", ", ".join(f"{rt}: {summaries[f'build-{rt}']['text_bytes']:,} B text" for rt in built))
        )
    vela = summaries.get("vela")
    if vela:
        facts.append(
            (
                "Vela",
                f"{vela['accelerator']} ({vela.get('board') or 'no board'}): "
                f"{vela['npu_ops']} NPU ops, {len(vela['cpu_ops'])} CPU ops, "
                f"{vela['npu_cycles']:,} NPU cycles, {vela['total_cycles']:,} total cycles, "
                f"{vela['inference_time_s'] * 1e3:.3f} ms/inference estimated"
                + (" for the NPU part only (CPU ops not estimated)" if vela["cpu_ops"] else ""),
            )
        )
        data["npu_layers"] = vela["per_layer"]
        data["cpu_ops"] = [{"op": c["op"], "reason": c["reason"]} for c in vela["cpu_ops"]]
    return data


def _section_part(name: str) -> str:
    if name == ".mcd_model":
        return "model"
    if name == ".mcd_arena":
        return "arena"
    if name in (".stack", ".heap"):
        return "stack+heap"
    return "app"


def memory_map(board: Any, build: dict[str, Any], generate: dict[str, Any]) -> list[dict[str, Any]]:
    """Bytes per region of the linked image, split into model / arena / stack+heap / app.

    Runtimes that compile the weights into their code (the C runtime) have no model section: the
    weight bytes the generator planned are moved from "app" to "model" in the code region.
    """
    used: dict[str, dict[str, int]] = {name: {} for name in board.memory}
    for sec, size in build["sections"].items():
        addr = int(build["addresses"][sec], 16)
        region = next((r for r in board.memory.values() if r.origin <= addr < r.origin + r.length), None)
        if region is not None and size:
            part = _section_part(sec)
            used[region.name][part] = used[region.name].get(part, 0) + int(size)
    for reg in generate.get("memory", {}).get("regions", []):
        weights = sum(dm["bytes"] for dm in reg["demands"] if "weights" in dm["what"])
        app = used.get(reg["name"], {}).get("app", 0)
        if weights and app >= weights:
            used[reg["name"]]["app"] = app - weights
            used[reg["name"]]["model"] = used[reg["name"]].get("model", 0) + weights
    regions = sorted(board.memory.values(), key=lambda r: r.origin)
    return [{"region": r.name, "size": r.length, "used": used[r.name]} for r in regions if used[r.name]]
