"""The fully-int8 gate: one definition used for checking, for the error text and for the docs.

Constraints are data (as in Arm Vela's supported-operator checks): each rule is a function of
``(context, operator)`` returning the problems it finds, and its docstring is both the sentence
shown to the user when it fails and the text of the generated documentation (:func:`gate_docs`).

What "fully int8" means here: every operator is a TFLite builtin running on integer tensors, every
activation is int8 (int16 in 16x8 mode), every weight is int8, and the only wider constants are
biases (int32; int64 in 16x8 mode) and unquantized integer parameters such as shapes and axes.
Float (or uint8) tensors may only sit at the model's edges, behind a QUANTIZE/DEQUANTIZE op, and
only when the caller asked for that I/O type.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from ..errors import NotFullyInt8Error
from .model import NPU_CUSTOM_OP, Model, Operator, Subgraph, Tensor

# The Vela custom op runs int8 on the NPU; its extra inputs (command stream, weights, scratch) are
# uint8 blobs that are not model tensors in the int8 sense.
NPU_CUSTOM_OPS = frozenset({NPU_CUSTOM_OP})

# Slot of the bias among an op's inputs (the only place a quantized int32/int64 constant belongs).
BIAS_SLOT: dict[str, int] = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "CONV_3D": 2,
    "TRANSPOSE_CONV": 3,
}

FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16", "complex64", "complex128"})
PARAMETER_DTYPES = frozenset({"int32", "int64", "bool"})  # unquantized shapes, axes, indices, flags


@dataclass(frozen=True)
class Violation:
    """One offending op or tensor, with the rule it breaks and the Keras layer it came from."""

    rule: str
    constraint: str
    subgraph: int
    op_index: int
    opcode: str
    detail: str
    tensor_index: int | None = None
    tensor: str | None = None
    dtype: str | None = None
    layer: str | None = None

    def __str__(self) -> str:
        where = f"op {self.op_index} {self.opcode}"
        if self.subgraph:
            where = f"subgraph {self.subgraph} {where}"
        if self.layer:
            where += f" (layer '{self.layer}')"
        return f"{where}: {self.detail}"

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "subgraph": self.subgraph,
            "op_index": self.op_index,
            "opcode": self.opcode,
            "tensor_index": self.tensor_index,
            "tensor": self.tensor,
            "dtype": self.dtype,
            "layer": self.layer,
            "detail": self.detail,
        }


# Last path component of a TF tensor name is the TF op ("Conv2D", "Relu", "MatMul;..."); the first
# is the model scope. What sits between is the Keras layer path.
_SCOPE_NOISE = re.compile(r"^(StatefulPartitionedCall(_\d+)?|PartitionedCall(_\d+)?|serving_default.*)$")


def layer_name(tensor_name: str) -> str | None:
    """The Keras layer a TFLite tensor came from, e.g. ``"model/conv1/Relu;..."`` -> ``"conv1"``."""
    first = tensor_name.split(";", 1)[0].split(":", 1)[0]
    parts = [p for p in first.split("/") if p and not _SCOPE_NOISE.match(p)]
    if len(parts) < 3:  # "scope/op" or "op": no layer between them to name
        return None
    return "/".join(parts[1:-1])


@dataclass
class GateContext:
    """What a rule may look at: the model, the subgraph, the mode and which I/O types are allowed."""

    model: Model
    subgraph_index: int
    mode: str  # "int8" or "16x8"
    allow_float_io: bool
    allow_uint8_io: bool

    @property
    def sg(self) -> Subgraph:
        return self.model.subgraphs[self.subgraph_index]

    @property
    def activation_dtype(self) -> str:
        return "int16" if self.mode == "16x8" else "int8"

    @property
    def bias_dtypes(self) -> frozenset[str]:
        # TFLite's 16x8 kernels take int64 biases (int32 for a few ops).
        return frozenset({"int32", "int64"}) if self.mode == "16x8" else frozenset({"int32"})

    @cached_property
    def produced(self) -> frozenset[int]:
        return frozenset(t for op in self.sg.operators for t in op.outputs)

    def tensor(self, i: int) -> Tensor:
        return self.sg.tensors[i]

    def layer_of(self, op: Operator) -> str | None:
        # A QUANTIZE/DEQUANTIZE the converter inserted has a synthetic name: use its consumer's layer.
        for cand in (op, *(c for c in self.sg.operators if set(c.inputs) & set(op.outputs))):
            for i in cand.outputs:
                name = layer_name(self.tensor(i).name)
                if name:
                    return name
        return None

    def edge_io_allowed(self, op: Operator, t: Tensor, *, is_input: bool) -> bool:
        """A float/uint8 tensor at the model's edge, converted by QUANTIZE/DEQUANTIZE, when asked for."""
        edge = t.index in (self.sg.inputs if is_input else self.sg.outputs)
        if not edge:
            return False
        if t.dtype == "float32" and self.allow_float_io:
            return op.opcode == ("QUANTIZE" if is_input else "DEQUANTIZE")
        if t.dtype == "uint8" and self.allow_uint8_io:
            return op.opcode == "QUANTIZE"
        return False


Problem = tuple[Tensor | None, str]
Rule = Callable[[GateContext, Operator], list[Problem]]


def builtin_op(ctx: GateContext, op: Operator) -> list[Problem]:
    """Every operator is a TFLite builtin.

    Custom ops and TensorFlow ops kept by SELECT_TF_OPS ("Flex" ops) have no int8 kernel in
    TFLite Micro or on the NPU; rewrite the layer with builtin ops or drop it.
    """
    if op.builtin or op.opcode in NPU_CUSTOM_OPS:
        return []
    if op.opcode.startswith("Flex"):
        return [
            (None, f"TensorFlow op '{op.opcode[4:]}' kept as a Select-TF (Flex) op, which has no int8 kernel")
        ]
    return [(None, f"custom op '{op.opcode}' has no int8 builtin kernel")]


def activation_dtype(ctx: GateContext, op: Operator) -> list[Problem]:
    """Every activation tensor is int8 (int16 in 16x8 mode).

    Activations are the tensors computed at run time. The only exceptions are the model's own
    inputs and outputs when float32 (or uint8) I/O was asked for: they must then be converted by a
    QUANTIZE op at the input and a DEQUANTIZE (or QUANTIZE for uint8) op at the output.
    """
    want = ctx.activation_dtype
    out: list[Problem] = []
    npu = op.opcode in NPU_CUSTOM_OPS
    # Each tensor is judged once: at its producer, or at its consumer when it is a graph input.
    for i in op.inputs:
        if i < 0 or i in ctx.produced:
            continue
        t = ctx.tensor(i)
        if t.is_constant or (npu and i not in ctx.sg.inputs):
            continue
        if t.dtype != want and not ctx.edge_io_allowed(op, t, is_input=True):
            out.append((t, f"input '{t.name}' is {t.dtype}, expected {want}{_edge_hint(ctx, t, True)}"))
    for i in op.outputs:
        t = ctx.tensor(i)
        if t.dtype != want and not ctx.edge_io_allowed(op, t, is_input=False):
            out.append((t, f"output '{t.name}' is {t.dtype}, expected {want}{_edge_hint(ctx, t, False)}"))
    return out


def constant_dtype(ctx: GateContext, op: Operator) -> list[Problem]:
    """Every weight is int8; only biases are wider (int32, or int64 in 16x8 mode).

    Unquantized int32/int64 constants are allowed as parameters (shapes, axes, paddings, indices).
    Float constants mean the layer was left in float (or only its weights were quantized).
    """
    if op.opcode in NPU_CUSTOM_OPS:
        return []
    out: list[Problem] = []
    bias_slot = BIAS_SLOT.get(op.opcode)
    for slot, i in enumerate(op.inputs):
        if i < 0:
            continue
        t = ctx.tensor(i)
        if not t.is_constant:
            continue
        if t.dtype in FLOAT_DTYPES:
            out.append((t, f"constant '{t.name}' is {t.dtype} (float weights)"))
        elif t.dtype in ("int8", ctx.activation_dtype):
            continue
        elif t.quant is None and t.dtype in PARAMETER_DTYPES:
            continue  # shape / axis / index parameter
        elif t.dtype in ctx.bias_dtypes and (bias_slot is None or slot == bias_slot):
            continue  # quantized bias (ops outside BIAS_SLOT: any slot, as TFLite decides)
        else:
            role = "bias" if slot == bias_slot else "weight"
            out.append((t, f"{role} '{t.name}' is {t.dtype}, expected {_expected_const(ctx, role)}"))
    return out


def integer_kernel(ctx: GateContext, op: Operator) -> list[Problem]:
    """Every operator runs an integer kernel, none computes in float.

    When an op has no int8 kernel, TFLiteConverter leaves it in float between a DEQUANTIZE and a
    QUANTIZE; such an op would run on the CPU in float (or not at all) on a microcontroller.
    """
    if op.opcode in ("QUANTIZE", "DEQUANTIZE") or op.opcode in NPU_CUSTOM_OPS:
        return []
    floats = sorted({ctx.tensor(i).dtype for i in (*op.inputs, *op.outputs) if i >= 0} & FLOAT_DTYPES)
    if not floats:
        return []
    return [(None, f"{op.opcode} computes in {'/'.join(floats)}: it has no {ctx.mode} kernel here")]


RULES: tuple[Rule, ...] = (builtin_op, integer_kernel, activation_dtype, constant_dtype)


def _edge_hint(ctx: GateContext, t: Tensor, is_input: bool) -> str:
    edge = t.index in (ctx.sg.inputs if is_input else ctx.sg.outputs)
    if edge and t.dtype == "float32" and not ctx.allow_float_io:
        return " (float32 I/O was not asked for)"
    if edge and t.dtype == "uint8" and not ctx.allow_uint8_io:
        return " (uint8 I/O was not asked for)"
    return ""


def _expected_const(ctx: GateContext, role: str) -> str:
    return " or ".join(sorted(ctx.bias_dtypes)) if role == "bias" else "int8"


def _constraint(rule: Rule) -> str:
    return inspect.getdoc(rule).splitlines()[0]  # type: ignore[union-attr]


def detect_mode(model: Model) -> str:
    """``"16x8"`` when the model computes in int16 activations, else ``"int8"``."""
    produced = (sg.tensors[i] for sg in model.subgraphs for op in sg.operators for i in op.outputs)
    return "16x8" if any(t.dtype == "int16" for t in produced) else "int8"


def fully_int8_violations(
    model: Model,
    *,
    allow_float_io: bool = False,
    allow_uint8_io: bool = False,
    mode: str | None = None,
) -> list[Violation]:
    """Every rule broken by ``model``, in graph order; empty when the model is fully int8.

    ``mode`` is ``"int8"`` or ``"16x8"``; by default it is read from the model's activations.
    """
    mode = mode or detect_mode(model)
    if mode not in ("int8", "16x8"):
        raise ValueError(f"mode must be 'int8' or '16x8', not {mode!r}")
    found: list[Violation] = []
    for s in range(len(model.subgraphs)):
        ctx = GateContext(model, s, mode, allow_float_io, allow_uint8_io)
        for op in ctx.sg.operators:
            problems = [(rule, t, detail) for rule in RULES for t, detail in rule(ctx, op)]
            layer = ctx.layer_of(op) if problems else None  # a scan of the graph: only when needed
            for rule, t, detail in problems:
                found.append(
                    Violation(
                        rule=rule.__name__,
                        constraint=_constraint(rule),
                        subgraph=s,
                        op_index=op.index,
                        opcode=op.opcode,
                        detail=detail,
                        tensor_index=t.index if t else None,
                        tensor=t.name if t else None,
                        dtype=t.dtype if t else None,
                        layer=layer,
                    )
                )
    return found


def check_fully_int8(
    model: Model,
    *,
    allow_float_io: bool = False,
    allow_uint8_io: bool = False,
    mode: str | None = None,
) -> None:
    """Raise :class:`NotFullyInt8Error` listing every offending op and tensor; return if clean."""
    found = fully_int8_violations(
        model, allow_float_io=allow_float_io, allow_uint8_io=allow_uint8_io, mode=mode
    )
    if found:
        raise NotFullyInt8Error(format_violations(model, found), hint=_hint(found))


def format_violations(model: Model, found: list[Violation]) -> str:
    lines = [f"{model.source}: not fully int8 ({len(found)} problem{'s' if len(found) != 1 else ''})"]
    for rule in RULES:
        mine = [v for v in found if v.rule == rule.__name__]
        if mine:
            lines.append(f"  rule: {_constraint(rule)}")
            lines.extend(f"    - {v}" for v in mine)
    return "\n".join(lines)


def _hint(found: list[Violation]) -> str:
    layers = sorted({v.layer for v in found if v.layer})
    where = f" (layers: {', '.join(layers)})" if layers else ""
    return (
        "re-quantize with `mcudeploy quantize` (full-integer, builtin int8 ops only) and replace the "
        f"offending layers with int8-capable ones{where}; see `mcudeploy quantize --gate-docs`"
    )


def gate_docs() -> str:
    """The fully-int8 gate as Markdown, generated from the rules' docstrings."""
    out = [
        "## The fully-int8 gate",
        "",
        "A model passes when every rule below holds for every operator of every subgraph.",
        "A failure lists each offending op and tensor, and the Keras layer it came from.",
        "",
    ]
    for n, rule in enumerate(RULES, 1):
        doc = inspect.getdoc(rule) or ""
        head, _, body = doc.partition("\n")
        out.append(f"{n}. **{head}** (`{rule.__name__}`)")
        for para in body.strip().split("\n\n"):
            if para.strip():
                out.append("   " + " ".join(line.strip() for line in para.splitlines()))
        out.append("")
    return "\n".join(out)
