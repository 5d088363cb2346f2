"""The emulated CUDA device: the kernels' GPU branches compiled by the host compiler.

``FUS_GPU_EMULATION=1`` makes the CUDA backend run on this device instead of a GPU. The library
``fus/_gpu_emulation*.so`` (built by ``pip install`` from ``kernels/*.cu`` with
``kernels/host/gpu_emulation.hpp``) executes each launch with the grid, block and arguments the
CUDA backend computed: every GPU thread a fiber, ``__shared__`` memory per block, ``__syncthreads``
a real barrier (a barrier that not every thread reaches is an error), several blocks at once
(``FUS_GPU_EMULATION_BLOCKS``, default 2). ``FUS_GPU_EMULATION=tsan`` loads the ThreadSanitizer
build instead (run Python with ``LD_PRELOAD`` set to the compiler's ``libtsan``).

The array side is :mod:`fus.backend.emulated_cupy`, a strict numpy-backed stand-in for the part
of CuPy fus uses.
"""

from __future__ import annotations

import ctypes
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from fus.backend.sources import built_library, package_dir, source_hash
from fus.errors import BackendUnavailableError, KernelBuildError, KernelLaunchError

__all__ = ["emulation_requested", "emulation_library", "EmulatedDevice"]

_ERR_LEN = 1024


def emulation_requested() -> str | None:
    """``"fibers"`` or ``"tsan"`` when ``FUS_GPU_EMULATION`` asks for the emulated device, else None.

    Raises
    ------
    BackendUnavailableError
        For a value other than ``0``, ``1``, ``tsan`` or empty.
    """
    value = os.environ.get("FUS_GPU_EMULATION", "").strip().lower()
    if value in ("", "0", "no", "false"):
        return None
    if value in ("1", "yes", "true"):
        return "fibers"
    if value == "tsan":
        return "tsan"
    raise BackendUnavailableError(f"FUS_GPU_EMULATION={value!r}: use 1 (emulated device), tsan (its ThreadSanitizer build) or 0")


def _library_path(variant: str) -> Path:
    stem = "_gpu_emulation_tsan" if variant == "tsan" else "_gpu_emulation"
    p = built_library(stem)
    if p is not None:
        return p
    raise BackendUnavailableError(
        f"the emulated GPU library ({stem}*.so) was not found in {package_dir()}: reinstall fus "
        "(`pip install .`); the ThreadSanitizer build needs a compiler with -fsanitize=thread"
    )


@lru_cache(maxsize=None)
def emulation_library(variant: str = "fibers") -> "EmulatedDevice":
    """The loaded emulation library of ``variant`` (``"fibers"`` or ``"tsan"``), once per process."""
    return EmulatedDevice(_library_path(variant), variant)


class EmulatedDevice:
    """ctypes front of the emulation library: one launcher per kernel of the launch table."""

    def __init__(self, path: Path, variant: str, check_sources: bool = True) -> None:
        try:
            self._lib = ctypes.CDLL(str(path))
        except OSError as exc:
            hint = " (the tsan build needs LD_PRELOAD of libtsan)" if variant == "tsan" else ""
            raise BackendUnavailableError(f"cannot load the emulated GPU library {path}{hint}: {exc}") from exc
        self.path = path
        self.variant = variant
        self._lib.fus_emu_build.restype = ctypes.c_char_p
        self.build = self._lib.fus_emu_build().decode()
        self._launchers: dict[str, Any] = {}
        self._lock = threading.Lock()
        if check_sources:
            self._check_sources(path)

    def _check_sources(self, path: Path) -> None:
        want = source_hash()
        for p in sorted(path.parent.joinpath("_kernels").glob("*.cu")):
            fn = getattr(self._lib, f"fus_emu_source_hash_{p.stem}", None)
            if fn is None:
                raise KernelBuildError(f"the emulated GPU library {path} lacks kernel source {p.name}: reinstall fus")
            fn.restype = ctypes.c_char_p
            if fn().decode() != want:
                raise KernelBuildError(
                    f"the emulated GPU library {path} was built from other kernel sources than the ones "
                    "in the package (kernels/ edited since the last build?): rebuild with `pip install -e .`"
                )

    def has_kernel(self, name: str) -> bool:
        """True when the library exports kernel ``name``."""
        return hasattr(self._lib, f"fus_emu_launch_{name}")

    def _text(self, prefix: str, name: str) -> str:
        fn = getattr(self._lib, f"{prefix}{name}", None)
        if fn is None:
            raise KernelLaunchError(f"emulated GPU: no kernel named {name} in {self.path}")
        fn.restype = ctypes.c_char_p
        fn.argtypes = []
        return fn().decode()

    def signature(self, name: str) -> tuple[str, ...]:
        """Parameter types of kernel ``name``'s GPU branch, e.g. ``("float32*", "int32")``."""
        return tuple(self._text("fus_emu_signature_", name).split(","))

    def source(self, name: str) -> str:
        """Kernel source file that defines kernel ``name``."""
        return self._text("fus_emu_source_", name)

    def launch(self, name: str, grid: Sequence[int], block: Sequence[int], params: Sequence[Any]) -> None:
        """Run kernel ``name`` on ``grid`` x ``block`` with ``params`` (ctypes values, in order).

        Raises
        ------
        KernelLaunchError
            An invalid configuration, a broken barrier, ``__trap``, or a wait that never ends.
        """
        fn = self._launchers.get(name)
        if fn is None:
            with self._lock:
                fn = getattr(self._lib, f"fus_emu_launch_{name}", None)
                if fn is None:
                    raise KernelLaunchError(f"emulated GPU: no kernel named {name} in {self.path}")
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.POINTER(ctypes.c_uint)] * 2 + [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int]
                self._launchers[name] = fn
        g = (ctypes.c_uint * 3)(*_dim3(grid))
        b = (ctypes.c_uint * 3)(*_dim3(block))
        argv = (ctypes.c_void_p * max(1, len(params)))(*[ctypes.cast(ctypes.pointer(p), ctypes.c_void_p) for p in params])
        err = ctypes.create_string_buffer(_ERR_LEN)
        rc = fn(g, b, argv, err, _ERR_LEN)
        if rc != 0:
            raise KernelLaunchError(f"kernel {name}: {err.value.decode(errors='replace')}")


def _dim3(v: Sequence[int]) -> tuple[int, int, int]:
    t = tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v,)))
    if not 1 <= len(t) <= 3 or any(x < 0 or x >= 2**32 for x in t):
        raise KernelLaunchError(f"emulated GPU: invalid launch dimension {v!r}")
    return (t + (1, 1))[:3]  # type: ignore[return-value]


def as_ctypes(value: Any, param: str) -> Any:
    """A launch argument as the ctypes value the driver would copy: numpy scalars by their type.

    ``param`` is the kernel's parameter type (``"float32"``, ``"int32"``, ``"float32*"``, ...).
    """
    if param.endswith("*"):
        return ctypes.c_void_p(value)
    if param == "float32":
        return ctypes.c_float(value)
    if param == "int32":
        return ctypes.c_int32(value)
    if param == "float64":
        return ctypes.c_double(value)
    raise KernelLaunchError(f"emulated GPU: parameter type {param} is not supported")


