"""PyTorch in (the ``torch`` extra): an ExportedProgram file (``torch.export.save``, ``.pt2``) goes
through ONNX (``torch.onnx.export``, TorchScript exporter: the dynamo one needs onnxscript) into
:mod:`mcudeploy.ml.onnx_import`. The example input saved with the program fixes the input shape; the
float rung of ``evaluate`` runs the program itself in torch.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ToolMissingError, UnsupportedError


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ToolMissingError(
            "reading PyTorch models needs torch", hint="pip install 'mcudeploy[torch]'"
        ) from None
    return torch


def load_torch(path: str | os.PathLike[str]) -> Any:
    """The ExportedProgram at ``path`` as an NHWC tf.keras model (through ONNX, checked there)."""
    from .onnx_import import load_onnx

    torch = _torch()
    p = Path(path)
    try:
        program = torch.export.load(str(p))
    except Exception as e:  # torch raises many types for a file that is not an ExportedProgram
        raise InputError(f"{p}: not a PyTorch ExportedProgram (torch.export.save) file ({e})") from None
    args = tuple(program.example_inputs[0]) if program.example_inputs else ()
    if len(args) != 1 or program.example_inputs[1]:
        raise UnsupportedError(
            f"{p}: the program was exported with {len(args)} positional inputs; mcudeploy takes one",
            hint="torch.export.export(model, (example_input,)) with a single [1, C, H, W] tensor",
        )
    module = program.module()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{p.stem}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
            try:
                torch.onnx.export(
                    module, args, str(onnx_path), dynamo=False, input_names=["input"],
                    output_names=["output"], opset_version=17,
                    # an exported program's module cannot be switched to eval: it already is
                    training=torch.onnx.TrainingMode.PRESERVE,
                )  # fmt: skip
            except Exception as e:
                raise UnsupportedError(f"{p}: torch.onnx.export could not export it ({e})") from None
        keras = load_onnx(onnx_path)
    keras.mcudeploy_onnx_path = None
    keras.mcudeploy_torch_module = module
    return keras


def run_torch(module: Any, x_nhwc: np.ndarray) -> np.ndarray:
    """Outputs of the PyTorch module for NHWC (or flat) samples, one row per sample."""
    torch = _torch()
    x = np.asarray(x_nhwc, np.float32)
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    with torch.no_grad():
        return np.concatenate(
            [module(torch.from_numpy(np.ascontiguousarray(s[None]))).numpy().reshape(1, -1) for s in x]
        )
