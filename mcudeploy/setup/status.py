"""What the setup cache holds, for ``mcudeploy setup status`` (plain data, also its --json shape)."""

from __future__ import annotations

import os
from typing import Any

from .cache import cache_root, current, installed


def status() -> dict[str, Any]:
    root = cache_root()
    default = current("tflm")
    items = []
    for item in installed():
        m = item.manifest
        version = str(m.get("version", ""))
        opts = m.get("options", {})
        entry: dict[str, Any] = {
            "kind": item.kind,
            "name": item.name,
            "version": version[:12] if item.kind == "tflm" else version,
            "path": str(item.path / m["tree"]) if item.kind == "tflm" and "tree" in m else str(item.path),
            "unlocks": m.get("unlocks", ""),
        }
        if opts:
            entry["options"] = opts
            entry["name"] = f"{item.name} ({opts.get('kernels')}, {opts.get('cpu')}" + (
                f", {opts['npu']})" if opts.get("npu") else ")"
            )
        if item.kind == "tflm-lib":  # its "tree" is the tree it was compiled from
            entry["unlocks"] = (
                f"projects built against {m.get('tree', '?')} with these CPU flags link in seconds"
            )
        if default is not None and item.path == default.path:
            entry["default"] = True
        items.append(entry)
    env = [
        f"{var} is set: it wins over the cache ({os.environ[var]})"
        for var in ("MCUDEPLOY_TFLM_ROOT", "MCUDEPLOY_FVP")
        if os.environ.get(var)
    ]
    return {"cache": str(root), "items": items, "environment": env}
