"""The firmware side: C sources and projects from a model (TFLM or the C runtime), and their build."""
