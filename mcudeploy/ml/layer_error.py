"""Per-layer int8 error: which op of an int8 .tflite loses the most against the float model.

Both networks run on the same samples in the TFLite interpreter (reference kernels) with every
intermediate tensor kept; each int8 op output is dequantized and compared with the float tensor of
the same name (the converter names them alike; graph inputs and outputs are paired by position).

The error at a tensor accumulates everything upstream, so the ranking uses what each op *adds*:
``lost_db``, the signal-to-quantization-noise ratio (SNR) of its worst activation input minus that
of its output. SNR is taken per channel (last axis) and the median reported, because a per-tensor
int8 scale is shared by all channels: one channel with a huge range leaves the others a handful of
levels, and a whole-tensor SNR would be dominated by that one loud channel and hide it.

Columns, per op output: RMSE and mean error in units of the tensor's scale (LSB; rounding alone
gives an RMSE of about 0.29), cosine similarity of the flattened tensors, median channel SNR, what
the op loses, and the range spread (largest channel range / median channel range).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..console import progress
from ..errors import UnsupportedError
from .model import Model, Tensor

SNR_CAP_DB = 99.0  # an exact channel (no error) would be +inf dB
ROUNDING_RMSE_LSB = 1 / math.sqrt(12)  # uniform rounding error of one LSB step
DEFAULT_SAMPLES = 200
LOST_DB_ADVICE = 6.0  # an op losing this much SNR (a quarter of the signal-to-noise power) is advised on


@dataclass(frozen=True)
class LayerError:
    op_index: int
    op: str
    tensor: str
    layers: tuple[str, ...]  # Keras/ONNX layers fused into this op, from the tensor name
    scale: float
    rmse_lsb: float
    mean_error_lsb: float
    cosine: float
    snr_db: float  # median over channels
    lost_db: float | None  # SNR lost in this op (worst input's SNR minus the output's); None if unknown
    range_spread: float  # largest channel's max |x| over the median channel's
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d


def layers_of(tensor_name: str) -> tuple[str, ...]:
    """Every Keras layer named in a fused TFLite tensor name, in order (``hot_relu``, ``hot``)."""
    from .gates import layer_name

    found: list[str] = []
    for part in tensor_name.split(";"):
        name = layer_name(part)
        if name and name not in found:
            found.append(name)
    # "hot/BiasAdd" (from "model/hot/BiasAdd/ReadVariableOp") is a part of layer "hot", in any order
    return tuple(n for n in found if not any(n.startswith(f + "/") for f in found))


class _Stats:
    """Streaming sums for one tensor pair, per channel (last axis)."""

    def __init__(self, channels: int) -> None:
        self.f2 = np.zeros(channels)
        self.e2 = np.zeros(channels)
        self.e = np.zeros(channels)
        self.fmax = np.zeros(channels)
        self.qf = 0.0
        self.q2 = 0.0
        self.n = 0

    def add(self, q: np.ndarray, f: np.ndarray) -> None:
        c = self.f2.shape[0]
        q, f = q.reshape(-1, c).astype(np.float64), f.reshape(-1, c).astype(np.float64)
        err = q - f
        self.f2 += (f * f).sum(0)
        self.e2 += (err * err).sum(0)
        self.e += err.sum(0)
        self.fmax = np.maximum(self.fmax, np.abs(f).max(0))
        self.qf += float((q * f).sum())
        self.q2 += float((q * q).sum())
        self.n += q.size

    def snr_per_channel(self) -> np.ndarray:
        live = self.f2 > 0
        with np.errstate(divide="ignore"):
            snr = 10 * np.log10(self.f2[live] / self.e2[live])
        return np.clip(snr, -SNR_CAP_DB, SNR_CAP_DB)

    def snr_db(self) -> float:
        snr = self.snr_per_channel()
        if snr.size == 0:  # the float tensor is all zeros
            return SNR_CAP_DB if not self.e2.any() else -SNR_CAP_DB
        return float(np.median(snr))

    def cosine(self) -> float:
        f2 = float(self.f2.sum())
        if f2 == 0 or self.q2 == 0:
            return 1.0 if f2 == self.q2 else 0.0
        return self.qf / math.sqrt(f2 * self.q2)

    def spread(self) -> float:
        live = self.fmax[self.fmax > 0]
        return float(live.max() / np.median(live)) if live.size else 1.0


def advice_for(e: LayerError) -> str:
    """What to try for one op, from its numbers (empty when rounding explains the error).

    Only an op that itself loses a clear share of the signal (``LOST_DB_ADVICE``) gets advice: its
    RMSE and bias also carry what upstream ops lost, so on their own they would blame innocent ops.
    """
    if e.lost_db is not None and e.lost_db < LOST_DB_ADVICE:
        return ""
    tips: list[str] = []
    if e.range_spread >= 8:
        tips.append(
            f"one channel's range is {e.range_spread:.0f}x the median channel's and sets the shared int8 "
            "scale: bound the activation (ReLU6, BatchNormalization, clipping) or retrain with "
            "quantization-aware training (`mcudeploy optimize --recipe qat`); 16x8 quantization "
            "(`mcudeploy quantize --mode 16x8`) gives it 256x more levels"
        )
    if e.rmse_lsb > 0.7:
        tips.append(
            f"error of {e.rmse_lsb:.2f} LSB is beyond rounding (about {ROUNDING_RMSE_LSB:.2f}): values "
            "clip at the calibrated range; calibrate on more, more representative samples "
            "(`mcudeploy quantize --samples N`) or use QAT"
        )
    if abs(e.mean_error_lsb) > 0.3:
        tips.append(
            f"biased by {e.mean_error_lsb:+.2f} LSB on average: per-channel weights (the default) and QAT "
            "remove most bias"
        )
    if not tips:
        tips.append("loses more than rounding explains: more calibration data, QAT, or 16x8 for the model")
    return "; ".join(tips)


def _pairs(int8: Model, flt: Model) -> dict[int, int]:
    """int8 tensor index -> float tensor index, for every int8 activation with a float twin."""
    by_name = {t.name: t.index for t in flt.tensors if not t.is_constant}
    pairs: dict[int, int] = {}
    for a, b in zip(int8.main.inputs, flt.main.inputs, strict=False):
        pairs[a] = b
    for a, b in zip(int8.main.outputs, flt.main.outputs, strict=False):
        pairs[a] = b
    for op in int8.operators:
        for i in op.outputs:
            if i < 0 or i in pairs:
                continue
            if int8.tensors[i].name in by_name:
                pairs[i] = by_name[int8.tensors[i].name]
            elif op.opcode == "QUANTIZE" and op.inputs[0] in pairs:  # float input quantized in-graph
                pairs[i] = pairs[op.inputs[0]]
    for op in int8.operators:  # an int8 output dequantized in-graph: its twin is the float output
        if op.opcode == "DEQUANTIZE" and op.outputs[0] in pairs and op.inputs[0] not in pairs:
            pairs[op.inputs[0]] = pairs[op.outputs[0]]
    # A twin must hold the same values: same shape (an unrelated float model shares no names).
    return {i: j for i, j in pairs.items() if int8.tensors[i].shape == flt.tensors[j].shape}


def _dequantized(t: Tensor, raw: np.ndarray) -> np.ndarray | None:
    if t.dtype == "float32":
        return raw
    if t.quant is None or t.quant.per_channel:
        return None
    return (raw.astype(np.float64) - t.quant.zero_point[0]) * t.quant.scale[0]


def per_layer_error(
    int8: Model,
    flt: Model,
    x: np.ndarray,
    *,
    samples: int | None = DEFAULT_SAMPLES,
    output_layers: Sequence[str] = (),
) -> list[LayerError]:
    """Per-op int8 error against the float .tflite on real-valued samples ``x``, worst first.

    ``output_layers`` names the layers behind the graph outputs (their tensors carry no layer name).
    """
    from ._tf import tflite_interpreter
    from .quantio import dequantize, fit_samples, quantize_input

    if len(int8.inputs) != 1 or len(flt.inputs) != 1:
        raise UnsupportedError(f"{int8.source}: per-layer error needs a model with one input")
    if samples is not None:
        x = x[:samples]
    x = fit_samples(np.asarray(x), int8.inputs[0], "data")
    xq = quantize_input(x, int8.inputs[0])  # real values, or raw values already in the input's dtype
    xf = x.astype(np.float32) if x.dtype.kind == "f" else dequantize(xq, int8.inputs[0])
    pairs = _pairs(int8, flt)
    watched = {
        i: j
        for i, j in pairs.items()
        if int8.tensors[i].dtype != "float32" and _dequantized(int8.tensors[i], np.zeros(1)) is not None
    }
    if not any(int8.producer(i) is not None for i in watched):
        raise UnsupportedError(
            f"{int8.source}: no op output matches a tensor of the float model by name",
            hint="give the float model this int8 model was converted from",
        )
    qi, fi = (tflite_interpreter(m.data, m.source, reference=True, preserve_all=True) for m in (int8, flt))
    in_q, in_f = int8.main.inputs[0], flt.main.inputs[0]
    stats = {i: _Stats(int8.tensors[i].shape[-1] if int8.tensors[i].shape else 1) for i in watched}
    for sq, sf in progress(zip(xq, xf, strict=True), "per-layer error", total=len(xq)):
        qi.set_tensor(in_q, sq.reshape(int8.inputs[0].shape))
        fi.set_tensor(in_f, sf.reshape(flt.inputs[0].shape))
        qi.invoke()
        fi.invoke()
        for i, j in watched.items():
            q = _dequantized(int8.tensors[i], qi.get_tensor(i))
            assert q is not None
            stats[i].add(q, fi.get_tensor(j))
    snr = {i: s.snr_db() for i, s in stats.items()}
    rows = []
    for op in int8.operators:
        outs = [i for i in op.outputs if i in stats]
        if not outs:
            continue
        i = outs[0]
        t, s = int8.tensors[i], stats[i]
        scale = t.quant.scale[0] if t.quant else 1.0
        ins = [snr[k] for k in op.inputs if k in snr]
        e = LayerError(
            op_index=op.index,
            op=op.opcode,
            tensor=t.name,
            layers=layers_of(t.name) or _output_layer(int8, i, output_layers),
            scale=float(scale),
            rmse_lsb=math.sqrt(float(s.e2.sum()) / s.n) / scale,
            mean_error_lsb=float(s.e.sum()) / s.n / scale,
            cosine=s.cosine(),
            snr_db=snr[i],
            lost_db=(min(ins) - snr[i]) if ins else None,
            range_spread=s.spread(),
        )
        rows.append(e)
    rows = [_with_advice(e) for e in rows]
    return sorted(rows, key=_rank_key)


def _output_layer(model: Model, tensor: int, names: Sequence[str]) -> tuple[str, ...]:
    outs = list(model.main.outputs)
    return (names[outs.index(tensor)],) if tensor in outs and outs.index(tensor) < len(names) else ()


def _with_advice(e: LayerError) -> LayerError:
    from dataclasses import replace

    return replace(e, advice=advice_for(e))


def _rank_key(e: LayerError) -> tuple[float, int]:
    # What an op adds ranks it; an op whose inputs were not measured falls back to its own SNR loss
    # from a perfect signal, which can only make it look worse, never hide it.
    lost = e.lost_db if e.lost_db is not None else SNR_CAP_DB - e.snr_db
    return (-round(lost, 6), e.op_index)


def table_rows(errors: Sequence[LayerError], top: int | None = None) -> list[tuple[str, ...]]:
    """Printable rows: rank, op, Keras layers, lost dB, SNR dB, RMSE/scale, mean err/scale, cosine."""
    out = []
    for rank, e in enumerate(errors[:top] if top else errors, 1):
        out.append(
            (
                str(rank),
                f"#{e.op_index} {e.op}",
                ", ".join(e.layers) or e.tensor,
                "-" if e.lost_db is None else f"{e.lost_db:.1f}",
                f"{e.snr_db:.1f}",
                f"{e.rmse_lsb:.2f}",
                f"{e.mean_error_lsb:+.2f}",
                f"{e.cosine:.4f}",
                f"{e.range_spread:.1f}",
            )
        )
    return out


TABLE_COLUMNS = (
    "rank",
    "op",
    "layer",
    "SNR lost here dB",
    "SNR dB",
    "RMSE/scale",
    "mean err/scale",
    "cosine",
    "range spread",
)
