"""fus: MR-guided focused ultrasound research, from phased-array field to closed-loop control.

One CUDA C++ source per kernel runs on an NVIDIA GPU through CuPy and, compiled by the host C++
compiler, on the CPU. See ``fus.kernels`` for the low-level functions and ``fus.backend`` for
backend selection (``FUS_BACKEND=auto|cpu|cuda``).
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from fus import backend, kernels  # noqa: F401 - `fus.kernels.rayleigh(...)` after `import fus`
from fus.backend import asnumpy, get_backend, set_backend, use

try:
    __version__ = version("fus")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

logging.getLogger("fus").addHandler(logging.NullHandler())

__all__ = ["__version__", "asnumpy", "backend", "get_backend", "kernels", "set_backend", "use"]
