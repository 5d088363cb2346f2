"""CPU backend: the kernels compiled by the host C++ compiler, called through ctypes."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from typing import Any, Mapping

import numpy as np

from fus.backend.signatures import KERNELS, KernelSignature, check_arguments
from fus.backend.sources import cpu_library_path, source_hash
from fus.errors import InvalidParameterError, KernelBuildError

__all__ = ["CpuBackend"]

log = logging.getLogger(__name__)

_CTYPES = {"float32": ctypes.c_float, "int32": ctypes.c_int32}


#: The most CPU threads fus will start (a larger request is clamped, with a warning): libgomp
#: crashes when asked for ~1e5 threads.
MAX_THREADS = max(64, 8 * (os.cpu_count() or 1))


def thread_request(env: Mapping[str, str]) -> int | None:
    """CPU threads asked for by ``FUS_NUM_THREADS`` (else ``OMP_NUM_THREADS``), validated.

    Returns None when neither is set (OpenMP's default). A value above :data:`MAX_THREADS` is
    clamped with a warning.

    Raises
    ------
    InvalidParameterError
        ``FUS_NUM_THREADS`` that is not an integer >= 1 (``OMP_NUM_THREADS`` lists such as
        ``"4,2"`` are OpenMP's own: only a plain integer is checked and clamped).
    """
    for name in ("FUS_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            n = int(raw)
        except ValueError:
            if name == "OMP_NUM_THREADS":
                return None
            raise InvalidParameterError(name, raw, "must be an integer number of CPU threads >= 1") from None
        if n < 1:
            raise InvalidParameterError(name, raw, "must be an integer number of CPU threads >= 1")
        if n > MAX_THREADS:
            log.warning("%s=%d is more threads than fus starts; using %d", name, n, MAX_THREADS)
            return MAX_THREADS
        return n
    return None


class CpuBackend:
    """Runs kernels from the CPU shared library built at install time.

    The library holds the same ``extern "C"`` names as the GPU module; arguments are checked
    against :data:`fus.backend.signatures.KERNELS` before every call.
    """

    name = "cpu"
    xp = np

    def __init__(self) -> None:
        path = cpu_library_path()
        try:
            self._lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise KernelBuildError(f"cannot load the CPU kernel library {path}: {exc}") from exc
        self.library_path = path
        self._funcs: dict[str, Any] = {}
        self._lock = threading.Lock()
        for fname, restype in [
            ("fus_build_flags", ctypes.c_char_p),
            ("fus_source_hash", ctypes.c_char_p),
            ("fus_simd_isa", ctypes.c_char_p),
            ("fus_openmp", ctypes.c_int32),
            ("fus_max_threads", ctypes.c_int32),
            ("fus_simd_lanes", ctypes.c_int32),
        ]:
            getattr(self._lib, fname).restype = restype
            getattr(self._lib, fname).argtypes = []
        self._lib.fus_set_threads.argtypes = [ctypes.c_int32]
        self._lib.fus_set_threads.restype = None
        built_from = self._lib.fus_source_hash().decode()
        if built_from != source_hash():
            raise KernelBuildError(
                f"the CPU kernel library {path} was built from other kernel sources than the ones in "
                "the package (kernels/ edited since the last build?): rebuild it with `pip install -e .` "
                "(or `pip install .`)"
            )
        n = thread_request(os.environ)
        if n is not None:
            self.set_threads(n)

    # ---- facts for `fus info` -------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Build facts of the CPU library: flags, OpenMP, threads, SIMD width."""
        return {
            "library": str(self.library_path),
            "build_flags": self._lib.fus_build_flags().decode(),
            "openmp": bool(self._lib.fus_openmp()),
            "threads": int(self._lib.fus_max_threads()),
            "simd_isa": self._lib.fus_simd_isa().decode(),
            "simd_lanes_float32": int(self._lib.fus_simd_lanes()),
        }

    def set_threads(self, n: int) -> None:
        """Use ``n`` OpenMP threads for later kernel calls (no effect in a single-threaded build)."""
        self._lib.fus_set_threads(ctypes.c_int32(int(n)))

    # ---- launching ------------------------------------------------------------------------
    def _function(self, sig: KernelSignature) -> Any:
        fn = self._funcs.get(sig.name)
        if fn is None:
            with self._lock:
                try:
                    fn = getattr(self._lib, sig.name)
                except AttributeError as exc:
                    raise KernelBuildError(
                        f"kernel {sig.name} is missing from the CPU library {self.library_path}: "
                        "the library is older than the package; reinstall fus"
                    ) from exc
                fn.argtypes = [ctypes.c_void_p if a.is_array else _CTYPES[a.dtype] for a in sig.args]
                fn.restype = None
                self._funcs[sig.name] = fn
        return fn

    def launch(self, name: str, *args: Any) -> None:
        """Run kernel ``name`` on ``args`` (numpy arrays and numpy 32-bit scalars), in place."""
        sig = KERNELS[name]
        check_arguments(sig, args, np.ndarray)
        fn = self._function(sig)
        cargs = [a.ctypes.data if isinstance(a, np.ndarray) else a for a in args]
        if sig.count(args) > 0:
            fn(*cargs)

    @staticmethod
    def asarray(x: Any, dtype: Any = None) -> np.ndarray:
        """Array of this backend (numpy), moving CuPy arrays to the host."""
        if hasattr(x, "__cuda_array_interface__") and hasattr(x, "get"):
            x = x.get()
        return np.ascontiguousarray(x, dtype=dtype)
