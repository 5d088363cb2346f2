"""CUDA backend: the kernel sources compiled by NVRTC through CuPy ``RawModule``.

CuPy is optional. :func:`cuda_status` says whether a device can be used and, if not, exactly why
(CuPy missing, no device, driver too old, ...); :class:`CudaBackend` raises
:class:`~fus.errors.BackendUnavailableError` with that reason.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fus.backend.signatures import KERNELS, check_arguments
from fus.backend.sources import kernel_source
from fus.backend.emulation import emulation_requested
from fus.errors import BackendError, BackendUnavailableError, KernelBuildError

__all__ = ["CudaBackend", "cuda_status", "cupy_module", "NVRTC_OPTIONS", "CUPY_ADDED_OPTIONS", "nvrtc_options"]

log = logging.getLogger(__name__)

#: Options fus passes to ``cupy.RawModule``. IEEE division and square root are kept (no
#: ``--use_fast_math``): the Rayleigh phase k*r needs a correctly rounded sqrt.
NVRTC_OPTIONS: tuple[str, ...] = ("--std=c++17",)

#: Options CuPy itself appends when it compiles a RawModule with NVRTC
#: (``cupy/cuda/compiler.py``: ``_compile_with_cache_cuda`` and ``compile_using_nvrtc``), plus the
#: architecture option it derives from the device.
CUPY_ADDED_OPTIONS: tuple[str, ...] = ("-ftz=true", "--device-as-default-execution-space")


def nvrtc_options(arch: str) -> tuple[str, ...]:
    """The full NVRTC option list a GPU of architecture ``arch`` (e.g. ``"sm_90"``) compiles with.

    Used by the NVRTC compile test so that CI compiles the kernels exactly as a GPU user's CuPy
    will.
    """
    return NVRTC_OPTIONS + CUPY_ADDED_OPTIONS + (f"--gpu-architecture={arch}",)


def cupy_module() -> Any:
    """The CUDA backend's array module: ``cupy``, or its stand-in on the emulated device.

    ``FUS_GPU_EMULATION=1`` selects :mod:`fus.backend.emulated_cupy` (see
    :mod:`fus.backend.emulation`). Raises ImportError (or BackendUnavailableError on the emulated
    device) when neither can be had.
    """
    if emulation_requested():
        from fus.backend.emulated_cupy import load

        return load()
    import cupy

    return cupy


def _emulated_status() -> tuple[bool, str, dict[str, Any]]:
    from fus.backend.emulation import emulation_library

    info: dict[str, Any] = {"emulated": True}
    try:
        variant = emulation_requested() or "fibers"
        dev = emulation_library(variant)
        xp = cupy_module()
    except BackendError as exc:
        return False, f"FUS_GPU_EMULATION is set but the emulated device cannot run: {exc}", info
    info["cupy"] = xp.__version__
    info["device"] = "fus emulated CUDA device (CPU)"
    info["compute_capability"] = "emulated"
    info["emulation"] = f"{dev.build}; {dev.path.name}"
    return True, f"cuda (emulated on CPU: {dev.build}); the CUDA backend's code runs on it up to the driver call", info


def cuda_status() -> tuple[bool, str, dict[str, Any]]:
    """Can the CUDA backend run here?

    Returns
    -------
    ok : bool
        True when CuPy imports and sees at least one device.
    reason : str
        Why (or why not), in words.
    info : dict
        CuPy, CUDA runtime/driver and NVRTC versions and device name, as far as they are known.
    """
    try:
        if emulation_requested():
            return _emulated_status()
    except BackendError as exc:
        return False, str(exc), {}
    info: dict[str, Any] = {}
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA installation raising on import
        return False, f"CuPy is not installed or does not import ({exc.__class__.__name__}: {exc}); install fus[cuda]", info
    info["cupy"] = cupy.__version__
    try:
        from cupy_backends.cuda.libs import nvrtc

        major, minor = nvrtc.getVersion()
        info["nvrtc"] = f"{major}.{minor}"
    except Exception as exc:
        info["nvrtc"] = f"unavailable ({exc.__class__.__name__}: {exc})"
    try:
        info["cuda_runtime"] = _version(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as exc:
        info["cuda_runtime"] = f"unavailable ({exc.__class__.__name__})"
    try:
        info["cuda_driver"] = _version(cupy.cuda.runtime.driverGetVersion())
    except Exception as exc:
        info["cuda_driver"] = f"unavailable ({exc.__class__.__name__})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy imports but CUDA cannot be used: {exc.__class__.__name__}: {exc}", info
    if count < 1:
        return False, "CuPy imports but no CUDA device is present", info
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        info["device"] = name.decode() if isinstance(name, bytes) else str(name)
        info["compute_capability"] = f"{props['major']}.{props['minor']}"
    except Exception as exc:
        return False, f"CUDA device query failed: {exc.__class__.__name__}: {exc}", info
    return True, f"CuPy {cupy.__version__} sees {count} CUDA device(s)", info


def _version(v: int) -> str:
    if v <= 0:
        return "none"
    return f"{v // 1000}.{(v % 1000) // 10}"


class CudaBackend:
    """Runs kernels on the current CuPy device; each source is compiled once per device."""

    name = "cuda"

    def __init__(self) -> None:
        ok, reason, info = cuda_status()
        if not ok:
            raise BackendUnavailableError(f"the CUDA backend is not available: {reason}")
        self.xp = cupy_module()
        self.emulated = bool(info.get("emulated"))
        self.info = info
        self._modules: dict[tuple[int, str], Any] = {}
        #: names of the kernels launched so far (CI checks that every kernel of the table ran)
        self.launched: set[str] = set()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Versions and device of the CUDA backend."""
        return dict(self.info)

    def _function(self, name: str) -> Any:
        sig = KERNELS[name]
        dev = self.xp.cuda.Device().id
        key = (dev, sig.source)
        mod = self._modules.get(key)
        if mod is None:
            with self._lock:
                mod = self._modules.get(key)
                if mod is None:
                    try:
                        mod = self.xp.RawModule(code=kernel_source(sig.source), options=NVRTC_OPTIONS)
                        mod.compile()
                    except Exception as exc:
                        raise KernelBuildError(f"NVRTC failed to compile {sig.source} for device {dev}: {exc}") from exc
                    self._modules[key] = mod
        return mod.get_function(sig.name)

    def launch(self, name: str, *args: Any) -> None:
        """Run kernel ``name`` on ``args`` (CuPy arrays and numpy 32-bit scalars)."""
        sig = KERNELS[name]
        check_arguments(sig, args, self.xp.ndarray)
        n = sig.count(args)
        if n == 0:
            return
        grid = (n + sig.block - 1) // sig.block
        self._function(name)((grid,), (sig.block,), tuple(args))
        self.launched.add(name)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Array of this backend (CuPy on the current device), C-contiguous."""
        return self.xp.ascontiguousarray(self.xp.asarray(x, dtype=dtype))
