"""Backend layer: chooses CUDA or CPU, loads the kernels, launches them from one table.

Selection, in order of precedence:

1. :func:`set_backend` / :func:`use` in code;
2. the ``FUS_BACKEND`` environment variable: ``auto`` (default), ``cpu`` or ``cuda``;
3. ``auto``: CUDA when CuPy imports and sees a device, else the CPU.

Asking for ``cuda`` where it cannot run raises :class:`~fus.errors.BackendUnavailableError` that
says why (CuPy missing, no device, driver too old). Only this layer knows which device is in use;
the layers above ask :func:`get_backend` for the array module (``backend.xp``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Iterator, Union

import numpy as np

from fus.backend.cpu import CpuBackend
from fus.backend.cuda import CudaBackend, cuda_status, cupy_module
from fus.errors import InvalidParameterError

__all__ = [
    "Backend",
    "get_backend",
    "set_backend",
    "use",
    "auto_choice",
    "asnumpy",
    "array_module",
    "cuda_status",
    "writeable",
]

log = logging.getLogger(__name__)

Backend = Union[CpuBackend, CudaBackend]

_CHOICES = ("auto", "cpu", "cuda")
_lock = threading.RLock()
_instances: dict[str, Backend] = {}
_active: Backend | None = None


def _instance(name: str) -> Backend:
    with _lock:
        b = _instances.get(name)
        if b is None:
            b = CpuBackend() if name == "cpu" else CudaBackend()
            _instances[name] = b
            log.debug("backend %s initialised", name)
        return b


def auto_choice() -> tuple[str, str]:
    """What ``auto`` picks here, and why.

    Returns
    -------
    name : str
        ``"cuda"`` or ``"cpu"``.
    reason : str
        One line of explanation.
    """
    ok, reason, _ = cuda_status()
    if ok:
        return "cuda", reason
    return "cpu", f"CUDA not used: {reason}"


def _resolve(name: str, source: str) -> str:
    key = str(name).strip().lower()
    if key not in _CHOICES:
        raise InvalidParameterError(source, name, f"must be one of {', '.join(_CHOICES)}")
    if key == "auto":
        key, why = auto_choice()
        log.info("backend auto -> %s (%s)", key, why)
    return key


def set_backend(name: str) -> Backend:
    """Make ``name`` (``"auto"``, ``"cpu"`` or ``"cuda"``) the active backend and return it.

    Raises
    ------
    InvalidParameterError
        For an unknown name.
    BackendUnavailableError
        When ``"cuda"`` is asked for and cannot run here; the message says why.
    """
    global _active
    b = _instance(_resolve(name, "backend"))
    with _lock:
        _active = b
    return b


def get_backend() -> Backend:
    """The active backend, chosen from ``FUS_BACKEND`` (default ``auto``) on first use."""
    global _active
    with _lock:
        if _active is None:
            _active = _instance(_resolve(os.environ.get("FUS_BACKEND", "auto"), "FUS_BACKEND"))
        return _active


@contextlib.contextmanager
def use(name: str) -> Iterator[Backend]:
    """Context manager: run the enclosed code on backend ``name``, then restore the previous one."""
    global _active
    with _lock:
        previous = _active
    b = set_backend(name)
    try:
        yield b
    finally:
        with _lock:
            _active = previous


def asnumpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array, copying it from the GPU if it is a CuPy array."""
    if hasattr(x, "__cuda_array_interface__") and hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def array_module(x: Any) -> Any:
    """``cupy`` if ``x`` is a CuPy array, else ``numpy`` (write array code once for both).

    On the emulated device (``FUS_GPU_EMULATION=1``) its stand-in for ``cupy``.
    """
    if hasattr(x, "__cuda_array_interface__") and hasattr(x, "get"):
        return cupy_module()
    return np


def writeable(x: Any) -> bool:
    """True when a kernel may write into array ``x``.

    numpy arrays say so in ``flags.writeable``; CuPy arrays have no such flag (``cupy``'s
    ``ndarray.flags`` holds only ``c_contiguous``, ``f_contiguous`` and ``owndata``) because device
    memory is always writeable.
    """
    if isinstance(x, np.ndarray):
        return bool(x.flags.writeable)
    return hasattr(x, "__cuda_array_interface__")
