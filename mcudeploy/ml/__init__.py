"""The model side: load, quantize, optimize, evaluate and inspect models; host TFLM; Vela."""
