"""mcudeploy: from a trained model to a measured int8 deployment on microcontrollers and Ethos-U NPUs.

The package is a set of pipeline stages, one module each, every stage taking one artifact and
returning the next (see README). The CLI (``mcudeploy``) is a thin layer over these functions.
"""

from __future__ import annotations

import os

# tfmot needs the Keras 2 API (tf-keras); set this before anything imports tensorflow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .errors import ExitCode, MCUDeployError

__version__ = "0.1.0"
__all__ = ["ExitCode", "MCUDeployError", "__version__"]
