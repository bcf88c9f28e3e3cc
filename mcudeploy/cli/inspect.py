"""``mcudeploy inspect``: what is inside a .tflite — ops, tensors, sizes, quant params, MACs."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import emit_json, json_option


@click.command("inspect")
@click.argument("model_path", metavar="MODEL_TFLITE", type=click.Path(path_type=Path))
@json_option("Write the inspection as JSON to a file, or to stdout with a bare --json.", bare=True)
def command(model_path: Path, json_out: Path | None) -> None:
    """Validate MODEL_TFLITE and show its operators, tensors, sizes, quantization and MACs."""
    from ..ml.inspection import inspection_dict, print_inspection
    from ..ml.model import read_tflite

    model = read_tflite(model_path)
    if json_out is not None and emit_json(json_out, inspection_dict(model)):
        return
    print_inspection(model)
