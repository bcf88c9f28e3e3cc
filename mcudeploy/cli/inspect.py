"""``mcudeploy inspect``: what is inside a .tflite — ops, tensors, sizes, quant params, MACs."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("inspect")
@click.argument("model_path", metavar="MODEL_TFLITE", type=click.Path(path_type=Path))
@click.option(
    "--json",
    "json_out",
    is_flag=False,
    flag_value="-",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the inspection as JSON to a file, or to stdout with a bare --json.",
)
def command(model_path: Path, json_out: Path | None) -> None:
    """Validate MODEL_TFLITE and show its operators, tensors, sizes, quantization and MACs."""
    from .._io import write_text_atomic
    from ..inspection import inspection_dict, print_inspection
    from ..model import read_tflite

    model = read_tflite(model_path)
    if json_out is not None:
        doc = json.dumps(inspection_dict(model), indent=2, sort_keys=True) + "\n"
        if str(json_out) == "-":
            click.echo(doc, nl=False)
            return
        write_text_atomic(json_out, doc)
    print_inspection(model)
