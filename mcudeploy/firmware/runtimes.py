"""The runtime registry: what each firmware runtime is, as data, and the context its renderer gets.

Each entry names its renderer as ``"module:function"`` and is imported only when a project is
generated, so :mod:`mcudeploy.firmware.codegen` and the runtimes it renders
(``mcudeploy.firmware.runtime_c``) both depend on this module and never on each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..boards import Board
from ..errors import ConfigError
from ..ml.model import NPU_CUSTOM_OP, Model
from .cnames import c_comment_text

MODEL_SYMBOL = "mcd_model_data"


@dataclass(frozen=True)
class RuntimeParts:
    """What a runtime adds to the project."""

    files: dict[str, bytes]  # project-relative path -> content
    sources: list[str]  # project-relative sources to compile, in order
    include_dirs: list[str] = field(default_factory=list)
    defines: list[str] = field(default_factory=list)
    cmake: str = ""  # appended to CMakeLists.txt (e.g. the TFLM library target)
    arena_bytes: int = 0  # arena the runtime will ask for at run time
    arena_note: str = ""  # where that number comes from, for mcd_model_meta.h


@dataclass(frozen=True)
class Runtime:
    name: str
    summary: str
    needs_tflm: bool  # the build needs a TFLM tree (--tflm-root / MCUDEPLOY_TFLM_ROOT)
    code_bytes: int  # estimate of the runtime's code + constants, excluding the model
    renderer: str  # "module:function" taking a GenContext and returning RuntimeParts
    model_in_image: bool = True  # the .tflite flatbuffer itself goes into the image (TFLM parses it)

    def render(self, ctx: GenContext) -> RuntimeParts:
        module, _, func = self.renderer.partition(":")
        fn: Callable[[GenContext], RuntimeParts] = getattr(importlib.import_module(module), func)
        return fn(ctx)


RUNTIMES: dict[str, Runtime] = {
    rt.name: rt
    for rt in (
        Runtime(
            name="tflm",
            summary="TensorFlow Lite Micro, CMSIS-NN or reference kernels (and the Ethos-U op on NPU boards)",
            needs_tflm=True,
            # TFLM + CMSIS-NN .text, app included, measured 108-124 KB for digits/DS-CNN/VWW/ResNet-8 on
            # Cortex-M55/M7/M33/M4 (M4 the largest); with the app estimate this bounds them all
            code_bytes=116 * 1024,
            renderer="mcudeploy.firmware.codegen:render_tflm",
        ),
        Runtime(
            name="c",
            summary="standalone C: static weights and memory plan, int8 kernels bit-exact with TFLM",
            needs_tflm=False,
            code_bytes=12 * 1024,
            renderer="mcudeploy.firmware.runtime_c.codegen:render_parts",
            model_in_image=False,
        ),
    )
}


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})")
    return RUNTIMES[name]


@dataclass
class GenContext:
    """Everything a template or runtime renderer may look at."""

    model: Model
    board: Board
    runtime: Runtime
    mode: str
    target: str
    ops: list[str]

    def template_vars(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "board": self.board,
            "source": c_comment_text(self.model.source),
            "runtime": self.runtime,
            "mode": self.mode,
            "target": self.target,
            "ops": self.ops,
            "model_symbol": MODEL_SYMBOL,
            "npu": self.board.npu if self.has_npu_op else None,
        }

    @property
    def has_npu_op(self) -> bool:
        return NPU_CUSTOM_OP in self.ops
