"""A hardware-in-the-loop test written with mcudeploy's pytest plugin.

Build protocol-mode firmware, then point pytest at it — on QEMU:

    mcudeploy deploy -c examples/mcudeploy.toml -o build/demo
    pytest examples/hil --mcu-board qemu-an547 \
        --mcu-firmware build/demo/build-c/app.elf \
        --mcu-model build/demo/quantize/digits_int8.tflite

or on a flashed board: --mcu-board BOARD --mcu-port /dev/ttyACM0 --mcu-model model.tflite.
``mcu_target`` is a connected DeviceLink whose HELLO was checked against --mcu-model.
"""

from __future__ import annotations

import numpy as np

from mcudeploy.ml.tflm_host import run_tflm


def test_device_agrees_with_host_tflm(mcu_target, mcu_model) -> None:
    t = mcu_model.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, size=(4, *t.shape[1:]), dtype=np.int8)
    host = run_tflm(mcu_model, x).astype(np.int8).reshape(len(x), -1)
    for sample, expected in zip(x, host, strict=True):
        result = mcu_target.infer(sample.tobytes())
        assert result.status == 0
        assert result.output == expected.tobytes()


def test_latency_budget(mcu_target, mcu_model, mcu_hello) -> None:
    bench = mcu_target.bench(5, bytes(mcu_model.inputs[0].nbytes))
    assert bench.status == 0
    assert bench.max < 5_000_000, f"{bench.max} {mcu_hello.timer} per inference"
