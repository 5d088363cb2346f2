"""Locate the kernel sources and the CPU library that ``pip install`` put inside the package."""

from __future__ import annotations

import hashlib
import importlib.machinery
import re
from functools import lru_cache
from pathlib import Path

from fus.errors import KernelBuildError

__all__ = ["package_dir", "kernel_dir", "kernel_source", "source_hash", "built_library", "cpu_library_path"]

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.MULTILINE)


def package_dir() -> Path:
    """Directory of the installed ``fus`` package."""
    return Path(__file__).resolve().parent.parent


def kernel_dir() -> Path:
    """Directory of the kernel sources shipped with the package (``fus/_kernels``)."""
    d = package_dir() / "_kernels"
    if not d.is_dir():
        raise KernelBuildError(
            f"kernel sources not found in {d}: fus was not built. Install it with "
            "`pip install .` (or `pip install -e .` for development) from the repository root"
        )
    return d


@lru_cache(maxsize=None)
def kernel_source(name: str) -> str:
    """Text of kernel source ``name`` with its local ``#include "..."`` lines inlined.

    Inlining makes the text self-contained, so NVRTC needs no include path and CuPy's compile
    cache key covers the header too.

    Parameters
    ----------
    name : str
        File name in ``kernels/``, e.g. ``"rayleigh.cu"``.
    """
    root = kernel_dir()

    def expand(path: Path, seen: tuple[str, ...]) -> str:
        if not path.is_file():
            raise KernelBuildError(f"kernel source {path} is missing from the installed package")
        text = path.read_text()

        def repl(m: re.Match[str]) -> str:
            inc = m.group(1)
            if inc in seen:
                return f"// (already included: {inc})"
            return f"// ---- begin {inc}\n{expand(root / inc, seen + (inc,))}\n// ---- end {inc}"

        return _INCLUDE.sub(repl, text)

    return expand(root / name, (name,))


def source_hash() -> str:
    """sha256 over the shipped kernel sources (names and contents), as the build computes it."""
    h = hashlib.sha256()
    for p in sorted(kernel_dir().iterdir()):
        if p.suffix in {".cu", ".cuh"}:
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def built_library(stem: str) -> Path | None:
    """Path of the library ``fus/<stem><extension suffix>`` the build made, or None."""
    pkg = package_dir()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = pkg / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def cpu_library_path() -> Path:
    """Path of the compiled CPU kernel library ``fus/_kernels_cpu<suffix>``."""
    p = built_library("_kernels_cpu")
    if p is not None:
        return p
    pkg = package_dir()
    raise KernelBuildError(
        f"the CPU kernel library (_kernels_cpu*.so) was not found in {pkg}: fus was not built for this "
        "Python. Install it with `pip install .` (or `pip install -e .`) from the repository root; "
        "it needs a C++ compiler"
    )
