"""The one table of kernel signatures that both backends launch from.

Every kernel in ``kernels/*.cu`` has one entry here: its ``extern "C"`` name (the same symbol in the
CPU library and in the NVRTC module), the source file, its arguments in order with their dtypes
and, for arrays, the number of elements each must hold, and the launch shape on the GPU.

:func:`check_arguments` is called by *both* backends before a launch, so the CPU path checks exactly
the arguments the GPU receives: array dtype, contiguity and element count, and scalars that are
already explicit ``numpy.float32`` / ``numpy.int32`` (CuPy would pass a Python float as a double
without complaint and the kernel would read garbage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np

from fus.errors import BackendError

__all__ = ["Arg", "KernelSignature", "KERNELS", "check_arguments"]


@dataclass(frozen=True)
class Arg:
    """One kernel argument.

    Parameters
    ----------
    name : str
        Argument name, as in the kernel source.
    dtype : str
        numpy dtype name (``float32``, ``float64``, ``int32``, ``uint8``, ``complex64``); scalars
        are ``float32`` or ``int32``.
    size : callable, optional
        For arrays: ``size(scalars) -> int``, the number of elements the array must hold, given the
        kernel's scalar arguments by name. ``None`` marks a scalar.
    output : bool
        True for arrays the kernel writes.
    """

    name: str
    dtype: str
    size: Callable[[Mapping[str, Any]], int] | None = None
    output: bool = False

    @property
    def is_array(self) -> bool:
        return self.size is not None


@dataclass(frozen=True)
class KernelSignature:
    """A kernel's entry in the launch table.

    Parameters
    ----------
    name : str
        ``extern "C"`` symbol, identical in the CPU library and the GPU module.
    source : str
        File in ``kernels/`` that defines it.
    args : tuple of Arg
        Arguments in call order.
    elements : str
        Name of the int32 argument that counts the elements (threads) of the launch.
    block_macro : str, optional
        For kernels whose shared-memory tiles are sized for one block size: the ``#define`` in the
        kernel source that holds it (the one place it is written; the kernel traps on any other).
        Without it, :data:`DEFAULT_BLOCK` (the kernel is a grid-stride loop that takes any size).
    """

    name: str
    source: str
    args: tuple[Arg, ...]
    elements: str
    block_macro: str | None = None
    scalars: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scalars", tuple(a.name for a in self.args if not a.is_array))

    @property
    def block(self) -> int:
        """GPU threads per block of every launch of this kernel."""
        if self.block_macro is None:
            return DEFAULT_BLOCK
        return _defined_int(self.source, self.block_macro)

    def count(self, args: tuple[Any, ...]) -> int:
        """Number of elements (GPU threads) of a launch with these arguments."""
        names = [a.name for a in self.args]
        return int(args[names.index(self.elements)])


#: Threads per block of the grid-stride kernels (any size works for them).
DEFAULT_BLOCK = 256

#: The kernels index with 32-bit integers: no array may hold 2^31 or more 32-bit values.
MAX_VALUES = 2**31 - 1


@lru_cache(maxsize=None)
def _defined_int(source: str, macro: str) -> int:
    from fus.backend.sources import kernel_source

    m = re.search(rf"^[ \t]*#[ \t]*define[ \t]+{re.escape(macro)}[ \t]+(\d+)[ \t]*$", kernel_source(source), re.MULTILINE)
    if m is None:
        raise BackendError(f"kernel source {source} defines no {macro} (the block size its kernels need)")
    return int(m.group(1))


def _n(name: str, factor: int = 1) -> Callable[[Mapping[str, Any]], int]:
    return lambda s: factor * int(s[name])


# Drift-fit sums (prf_row_*_sums): ns slices of ny x nx voxels, n_rows = ns * ceil(ny / stride)
# row items. An inconsistent set of scalars (which would make the kernel read out of bounds or
# divide by zero) needs -1 elements, so no array passes the check.
def _fit_ok(s: Mapping[str, Any]) -> bool:
    ns, ny, nx, st, rows = (int(s[k]) for k in ("ns", "ny", "nx", "stride", "n_rows"))
    return ns >= 0 and ny >= 1 and nx >= 1 and st >= 1 and rows == ns * -(-ny // st)


def _fit_volume(s: Mapping[str, Any]) -> int:
    return int(s["ns"]) * int(s["ny"]) * int(s["nx"]) if _fit_ok(s) else -1


def _fit_use(s: Mapping[str, Any]) -> int:
    return (int(s["ns"]) if int(s["use_per_slice"]) else 1) * int(s["ny"]) * int(s["nx"]) if _fit_ok(s) else -1


def _fit_slices(s: Mapping[str, Any]) -> int:
    return int(s["ns"]) if _fit_ok(s) else -1


def _volume(s: Mapping[str, Any]) -> int:
    """Elements of an (ns, ny, nx) volume whose count n must equal ns * ny * nx (else -1)."""
    n = int(s["ns"]) * int(s["ny"]) * int(s["nx"])
    return n if n == int(s["n"]) and min(int(s["ns"]), int(s["ny"]), int(s["nx"])) >= 0 else -1


_FIT_HEAD = (
    Arg("dphi", "float32", _fit_volume),
    Arg("weight", "float32", _fit_volume),
    Arg("use", "uint8", _fit_use),
    Arg("use_per_slice", "int32"),
)
_FIT_TAIL = (Arg("stride", "int32"), Arg("ns", "int32"), Arg("ny", "int32"), Arg("nx", "int32"), Arg("n_rows", "int32"))


KERNELS: dict[str, KernelSignature] = {
    sig.name: sig
    for sig in [
        KernelSignature(
            name="rayleigh",
            source="rayleigh.cu",
            args=(
                Arg("src", "float32", _n("n_src", 3)),
                Arg("w", "float32", _n("n_src", 2)),
                Arg("pts", "float32", _n("n_pts", 3)),
                Arg("k", "float32"),
                Arg("alpha", "float32"),
                Arg("n_src", "int32"),
                Arg("n_pts", "int32"),
                Arg("out", "complex64", _n("n_pts"), output=True),
            ),
            elements="n_pts",
            block_macro="RAYLEIGH_BLOCK",  # the shared-memory source tile
        ),
        KernelSignature(
            name="rayleigh_layered",
            source="rayleigh.cu",
            args=(
                Arg("src", "float32", _n("n_src", 3)),
                Arg("w", "float32", _n("n_src", 2)),
                Arg("g", "float32", _n("n_src", 2)),
                Arg("pts", "float32", _n("n_pts", 5)),
                Arg("n_src", "int32"),
                Arg("n_pts", "int32"),
                Arg("out", "complex64", _n("n_pts"), output=True),
            ),
            elements="n_pts",
            block_macro="RAYLEIGH_BLOCK",  # the shared-memory source tile
        ),
        KernelSignature(
            name="rayleigh_far",
            source="rayleigh.cu",
            args=(
                Arg("src", "float32", _n("n_src", 3)),
                Arg("w", "float32", _n("n_src", 2)),
                Arg("elem", "float32", _n("n_src", 6)),
                Arg("pts", "float32", _n("n_pts", 5)),
                Arg("k0", "float32"),
                Arg("alpha0", "float32"),
                Arg("layered", "int32"),
                Arg("n_src", "int32"),
                Arg("n_pts", "int32"),
                Arg("out", "complex64", _n("n_pts"), output=True),
            ),
            elements="n_pts",
            block_macro="RAYLEIGH_BLOCK",  # the shared-memory source tile
        ),
        # -- thermometry entries (prf.cu, dose.cu) --
        KernelSignature(
            name="prf_phase",
            source="prf.cu",
            args=(
                Arg("z", "complex64", _n("n")),
                Arg("z_ref", "complex64", _n("n")),
                Arg("noise", "float32"),
                Arg("noise_ref", "float32"),
                Arg("mag_min", "float32"),
                Arg("n", "int32"),
                Arg("dphi", "float32", _n("n"), output=True),
                Arg("weight", "float32", _n("n"), output=True),
                Arg("mask", "uint8", _n("n"), output=True),
            ),
            elements="n",
        ),
        KernelSignature(
            name="prf_temperature",
            source="prf.cu",
            args=(
                Arg("dphi", "float32", _n("n")),
                Arg("drift", "float32", _n("n")),
                Arg("weight", "float32", _n("n")),
                Arg("mask", "uint8", _n("n")),
                Arg("scale", "float32"),
                Arg("n", "int32"),
                Arg("dT", "float32", _n("n"), output=True),
                Arg("sigma_T", "float32", _n("n"), output=True),
            ),
            elements="n",
        ),
        KernelSignature(
            name="prf_temperature_dose",
            source="prf.cu",
            args=(
                Arg("dphi", "float32", _volume),
                Arg("weight", "float32", _volume),
                Arg("mask", "uint8", _volume),
                Arg("coef", "float32", lambda s: 6 * int(s["ns"]) if _volume(s) >= 0 else -1),
                Arg("du", "float32"),
                Arg("dv", "float32"),
                Arg("scale", "float32"),
                Arg("body_temp", "float32"),
                Arg("dt_min", "float32"),
                Arg("first", "int32"),
                Arg("ns", "int32"),
                Arg("ny", "int32"),
                Arg("nx", "int32"),
                Arg("n", "int32"),
                Arg("dT", "float32", _volume, output=True),
                Arg("sigma_T", "float32", _volume, output=True),
                Arg("temp", "float32", _volume, output=True),
                Arg("t_prev", "float32", _volume),
                Arg("dose", "float64", _volume, output=True),
                Arg("tmax", "float32", _volume, output=True),
            ),
            elements="n",
        ),
        KernelSignature(
            name="prf_row_phase_sums",
            source="prf.cu",
            args=(*_FIT_HEAD, Arg("unit_weight", "int32"), *_FIT_TAIL, Arg("out", "float64", _n("n_rows", 3), output=True)),
            elements="n_rows",
        ),
        KernelSignature(
            name="prf_row_poly_sums",
            source="prf.cu",
            args=(
                *_FIT_HEAD,
                Arg("c0", "float32", _fit_slices),
                Arg("du", "float32"),
                *_FIT_TAIL,
                Arg("out", "float64", _n("n_rows", 8), output=True),
            ),
            elements="n_rows",
        ),
        KernelSignature(
            name="cem43",
            source="dose.cu",
            args=(
                Arg("dose", "float64", _n("n"), output=True),
                Arg("t0", "float32", _n("n")),
                Arg("t1", "float32", _n("n")),
                Arg("dt_min", "float32"),
                Arg("n", "int32"),
            ),
            elements="n",
        ),
        # -- bioheat entries (bioheat.cu) --
        KernelSignature(
            name="bioheat_steps",
            source="bioheat.cu",
            args=(
                Arg("t", "float32", _n("n"), output=True),
                Arg("tmp", "float32", _n("n"), output=True),
                Arg("g0", "float32", _n("n")),
                Arg("g1", "float32", _n("n")),
                Arg("g2", "float32", _n("n")),
                Arg("a", "float32", _n("n")),
                Arg("p", "float32", _n("n")),
                Arg("s", "float32", _n("n")),
                Arg("sync", "int32", lambda s: 1 + int(s["n_steps"]) * int(s["n0"]), output=True),
                Arg("n0", "int32"),
                Arg("n1", "int32"),
                Arg("n2", "int32"),
                Arg("n", "int32"),
                Arg("n_steps", "int32"),
                Arg("n_chunks", "int32"),
                Arg("n_work", "int32"),
            ),
            elements="n_work",
            block_macro="BIOHEAT_BLOCK",  # one work item per block
        ),
    ]
}


def check_arguments(sig: KernelSignature, args: tuple[Any, ...], array_type: type) -> None:
    """Check launch arguments against the signature; raise :class:`BackendError` on mismatch.

    Mismatches here are bugs in fus (the public functions in :mod:`fus.kernels` validate user
    input first), so the error says which kernel and argument were wrong.

    Parameters
    ----------
    sig : KernelSignature
        The kernel's table entry.
    args : tuple
        The launch arguments in order.
    array_type : type
        ``numpy.ndarray`` for the CPU backend, ``cupy.ndarray`` for CUDA.
    """
    if len(args) != len(sig.args):
        raise BackendError(f"kernel {sig.name}: {len(args)} arguments given, signature has {len(sig.args)}")
    scalars: dict[str, Any] = {}
    for spec, value in zip(sig.args, args):
        if spec.is_array:
            continue
        expected = np.dtype(spec.dtype).type
        if type(value) is not expected:
            raise BackendError(
                f"kernel {sig.name}: scalar {spec.name} must be numpy.{spec.dtype}, got {type(value).__name__}"
            )
        scalars[spec.name] = value
    for spec, value in zip(sig.args, args):
        if not spec.is_array:
            continue
        if not isinstance(value, array_type):
            raise BackendError(
                f"kernel {sig.name}: array {spec.name} must be {array_type.__module__}.{array_type.__name__}, "
                f"got {type(value).__module__}.{type(value).__name__}"
            )
        if value.dtype != np.dtype(spec.dtype):
            raise BackendError(f"kernel {sig.name}: array {spec.name} must be {spec.dtype}, got {value.dtype}")
        if not value.flags.c_contiguous:
            raise BackendError(f"kernel {sig.name}: array {spec.name} must be C-contiguous")
        need = spec.size(scalars)  # type: ignore[misc]
        if value.size != need:
            raise BackendError(f"kernel {sig.name}: array {spec.name} holds {value.size} elements, needs {need}")
        values = value.size * (2 if value.dtype.kind == "c" else 1)
        if values > MAX_VALUES:
            raise BackendError(
                f"kernel {sig.name}: array {spec.name} holds {values} values; the kernels index with 32-bit "
                f"integers (at most {MAX_VALUES}): split the work into smaller calls"
            )
        if spec.output and isinstance(value, np.ndarray) and not value.flags.writeable:
            raise BackendError(f"kernel {sig.name}: output array {spec.name} is read-only")
