"""The harness library for the user's own firmware (``mcudeploy harness-lib``).

The device side of the protocol lives in ``firmware_templates/harness/`` and is the very code every
generated firmware serves through (its port is ``protocol/mcd_protocol.c``). This module writes it,
with its README and an example port, into a folder of the user's project; with a model it also
writes ``mcd_harness_model.h`` (sha256, I/O string, sizes) so the values HELLO must carry need not be
typed by hand.
"""

from __future__ import annotations

from pathlib import Path

from ..ml.model import Model
from ..protocol import io_info
from .cnames import c_comment_text
from .header import commit_files
from .templating import template_bytes

LIBRARY_FILES = ("mcd_harness.h", "mcd_harness.c", "README.md", "mcd_harness_port_example.c")
MODEL_HEADER = "mcd_harness_model.h"


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_model_header(model: Model) -> bytes:
    """#defines for ``mcd_harness_info``: what the host checks in HELLO for this model."""
    ins = sum(t.nbytes for t in model.inputs)
    outs = sum(t.nbytes for t in model.outputs)
    lines = [
        f"/* HELLO values for {c_comment_text(model.source)}, written by `mcudeploy harness-lib --model`. */",
        "#ifndef MCD_HARNESS_MODEL_H",
        "#define MCD_HARNESS_MODEL_H",
        "",
        f"#define MCD_HARNESS_MODEL_SHA256 {_c_string(model.sha256)}",
        f"#define MCD_HARNESS_MODEL_IO {_c_string(io_info(model))}",
        f"#define MCD_HARNESS_MODEL_INPUT_BYTES {ins}u",
        f"#define MCD_HARNESS_MODEL_OUTPUT_BYTES {outs}u",
        "",
        "#endif /* MCD_HARNESS_MODEL_H */",
        "",
    ]
    return "\n".join(lines).encode("ascii")


def write_harness_lib(out_dir: str | Path, model: Model | None = None, *, force: bool = False) -> list[Path]:
    """Write the library (all files or none) into ``out_dir``; other files there are left alone."""
    files = {name: template_bytes(f"harness/{name}") for name in LIBRARY_FILES}
    if model is not None:
        files[MODEL_HEADER] = render_model_header(model)
    return commit_files(Path(out_dir), files, force=force)
