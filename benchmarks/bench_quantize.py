"""Quantization time, size and the accuracy ladder on the digits CNN.

    .venv/bin/python benchmarks/bench_quantize.py [--samples 50,100,200,500] [--repeat 3]

For each calibration size and mode it prints the TFLiteConverter time (best of --repeat), the
.tflite size against the float .tflite, and top-1 accuracy on the held-out split: float Keras,
then each quantized model run on the host TFLite Micro interpreter (the bit-exact reference).
Then ``mcudeploy.ml.evaluate``'s ladder (float -> TFLite int8 -> host TFLM int8) for the default model.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from mcudeploy.ml.model import Model


def _accuracy_tflm(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    from mcudeploy.ml.tflm_host import run_tflm

    t = model.inputs[0]
    if t.dtype != "float32":
        info = np.iinfo(t.dtype)
        x = np.clip(np.round(x / t.quant.scale[0]) + t.quant.zero_point[0], info.min, info.max).astype(
            t.dtype
        )
    out = run_tflm(model, x)
    return float((out.reshape(len(x), -1).argmax(axis=1) == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default="50,100,200,500", help="calibration sizes, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="conversions per setting (best time is shown)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.samples.split(",")]

    from mcudeploy.ml.digits import load_digits_split, train_cnn
    from mcudeploy.ml.quantize import float_tflite, quantize

    split = load_digits_split()
    t0 = time.perf_counter()
    keras_model = train_cnn(split)
    print(f"trained digits CNN in {time.perf_counter() - t0:.1f} s")
    float_pred = keras_model.predict(split.x_test, verbose=0).argmax(axis=1)
    float_acc = float((float_pred == split.y_test).mean())
    float_size = float_tflite(keras_model).size

    head = ("mode", "io", "samples", "convert s", "bytes", "ratio", "top-1", "Δ pp")
    print("\n{:<6} {:<8} {:>7} {:>9} {:>7} {:>6} {:>7} {:>6}".format(*head))
    row = ("float", "float32", "-", "-", float_size, f"{1.0:.3f}", f"{float_acc:.2%}", f"{0.0:.2f}")
    print("{:<6} {:<8} {:>7} {:>9} {:>7} {:>6} {:>7} {:>6}".format(*row))
    for mode, io in (("int8", "int8"), ("int8", "float32"), ("16x8", "int16")):
        for n in sizes:
            best, result = float("inf"), None
            for _ in range(args.repeat):
                result = quantize(
                    keras_model, split.x_train, samples=n, mode=mode, io_dtype=io, measure_float=False
                )
                best = min(best, result.seconds)
            assert result is not None
            acc = _accuracy_tflm(result.model, split.x_test, split.y_test)
            print(
                f"{mode:<6} {io:<8} {result.samples:>7} {best:>9.2f} {result.model.size:>7} "
                f"{result.model.size / float_size:>6.3f} {acc:>7.2%} {(acc - float_acc) * 100:>6.2f}"
            )

    if importlib.util.find_spec("mcudeploy.ml.evaluate") is None:
        return
    from mcudeploy.ml.evaluate import evaluate

    print("\naccuracy ladder (mcudeploy.ml.evaluate), int8 I/O, 200 calibration samples:")
    int8 = quantize(keras_model, split.x_train, samples=200, measure_float=False).model
    ev = evaluate(
        int8, split.x_test, split.y_test, float_model=keras_model, float_tflite=float_tflite(keras_model)
    )
    for r in ev.rungs:
        drop = "" if r.drop_pp is None else f"  (-{r.drop_pp:.2f} pp)"
        print(f"  {r.name:<12} {r.runtime:<28} {r.accuracy:6.2f} %{drop}")
    for a in ev.agreement:
        print(
            f"  TFLite {a.kernels} kernels vs host TFLM: {a.byte_identical_pct:.1f} % byte-identical, "
            f"max {a.max_lsb_diff} LSB"
        )


if __name__ == "__main__":
    main()
