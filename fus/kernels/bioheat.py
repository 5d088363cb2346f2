r"""Public low-level function for ``kernels/bioheat.cu``: explicit steps of the Pennes equation.

One step of the finite-volume scheme (forward Euler) in every voxel ``i``:

.. math::

    T_i' = T_i (1 - p_i) + a_i \sum_j G_{ij} (T_j - T_i) + s_i,

with the face conductances ``G`` (``g0, g1, g2``: to the +1 neighbour along each axis) and the
per-voxel ``a = dt / (rho c)``, ``p = a (w_b c_b + G_fix)``, ``s = a (w_b c_b T_a + G_fix T_fix + Q)``
folded once by :func:`fus.physics.bioheat_grid.bioheat_coefficients` (harmonic-mean faces,
fixed-temperature faces, the stable step limit: the discretisation lives there). This module only
validates those arrays and the temperature, and launches the kernel.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence

import numpy as np

from fus.backend import get_backend, writeable
from fus.backend.signatures import KERNELS
from fus.errors import InvalidParameterError
from fus.kernels._validate import count, host_or_device_dtype

__all__ = ["StepCoefficients", "bioheat_buffer", "bioheat_step"]

_GPU_ITEM = 4096  # voxels per GPU work item (one block)
_MAX_STEPS_PER_LAUNCH = 32

#: The arrays of a coefficient set that one step reads (see :class:`fus.physics.bioheat_grid.BioheatCoefficients`).
_COEFFICIENT_ARRAYS = ("g0", "g1", "g2", "a", "p", "s")


class StepCoefficients(Protocol):
    """What :func:`bioheat_step` reads: :class:`fus.physics.bioheat_grid.BioheatCoefficients`."""

    shape: tuple[int, ...]
    dt: float
    g0: Any
    g1: Any
    g2: Any
    a: Any
    p: Any
    s: Any


def _empty(shape: tuple[int, ...], xp: Any) -> Any:
    """float32 C-contiguous array whose first element is 64-byte aligned (full-width SIMD loads on
    the CPU do not straddle cache lines; device allocations are aligned already)."""
    n = int(np.prod(shape, dtype=np.int64))
    if xp is not np:
        return xp.empty(shape, dtype=np.float32)
    buf = np.empty(n + 16, dtype=np.float32)
    off = (-buf.ctypes.data % 64) // 4
    return buf[off : off + n].reshape(shape)


def bioheat_buffer(shape: Sequence[int]) -> Any:
    """An uninitialised float32 array of the active backend for the ``out`` / ``work`` arguments
    of :func:`bioheat_step` (64-byte aligned on the CPU, so full-width SIMD loads stay inside
    cache lines)."""
    return _empty(tuple(int(n) for n in shape), get_backend().xp)


def _buffer(name: str, x: Any, xp: Any, shape: tuple[int, ...]) -> Any:
    if not isinstance(x, xp.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous or not writeable(x):
        raise InvalidParameterError(
            name, type(x).__name__, f"must be a writeable C-contiguous float32 {xp.__name__} array"
        )
    if tuple(x.shape) != tuple(shape):
        raise InvalidParameterError(name, f"array of shape {tuple(x.shape)}", f"must have the grid's shape {tuple(shape)}")
    return x


def bioheat_step(
    temperature: Any,
    coefficients: StepCoefficients,
    *,
    steps: int = 1,
    out: Any = None,
    work: Any = None,
) -> Any:
    """Advance the temperature by ``steps`` explicit steps of ``coefficients.dt``.

    One launch advances up to 32 steps, ping-ponging between ``out`` and ``work``. On the CPU,
    blocks of 3-7 steps run without synchronisation on overlapping strips of rows, one per
    thread, with the planes in flight kept in cache (temporal blocking); on the GPU, blocks take
    (step, plane, rows) work items in a dependency-ordered wavefront within one launch (see
    ``kernels/bioheat.cu``). The result does not depend on the number of threads.

    Parameters
    ----------
    temperature : array_like, shape ``coefficients.shape``
        Temperature T [C] (cast to float32). NaN propagates to the voxels it reaches.
    coefficients : BioheatCoefficients
        From :func:`fus.physics.bioheat_grid.bioheat_coefficients` (with the source from
        :meth:`~fus.physics.bioheat_grid.BioheatCoefficients.with_source`): its ``shape``, ``dt``
        and the float32 arrays ``g0, g1, g2, a, p, s`` of the active backend.
    steps : int
        Number of steps, >= 0.
    out : array, optional
        Writeable C-contiguous float32 array of the active backend with the grid's shape, for the
        result (may be ``temperature`` itself). Allocated when omitted.
    work : array, optional
        Scratch array like ``out`` (a different array); may be ``temperature`` itself, which is
        then overwritten. Allocated when omitted.

    Returns
    -------
    array of float32, shape ``coefficients.shape``
        T after ``steps * dt`` seconds (``out`` if given), of the active backend.

    Raises
    ------
    InvalidParameterError
        Coefficients of another type or backend, a temperature of another shape or non-numeric,
        negative ``steps``, unusable ``out`` / ``work``.
    """
    if not all(hasattr(coefficients, n) for n in ("shape",) + _COEFFICIENT_ARRAYS):
        raise InvalidParameterError(
            "coefficients", type(coefficients).__name__,
            "must be a BioheatCoefficients from fus.physics.bioheat_grid.bioheat_coefficients()",
        )
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)):
        raise InvalidParameterError("steps", steps, "must be an integer >= 0")
    steps = int(steps)
    if steps < 0:
        raise InvalidParameterError("steps", steps, "must be >= 0")
    backend = get_backend()
    xp = backend.xp
    c = coefficients
    if not all(isinstance(getattr(c, n), xp.ndarray) for n in _COEFFICIENT_ARRAYS):
        raise InvalidParameterError(
            "coefficients", "arrays of another backend", "were built on another backend; rebuild them on this one"
        )
    dtype = host_or_device_dtype("temperature", temperature)
    if dtype.kind not in "fiu":
        raise InvalidParameterError("temperature", f"dtype {dtype}", "must be a real numeric array [C]")
    t = backend.asarray(temperature, dtype=np.float32)
    if tuple(t.shape) != c.shape:
        raise InvalidParameterError(
            "temperature", f"array of shape {tuple(t.shape)}", f"must have the grid's shape {c.shape}"
        )
    final = _empty(c.shape, xp) if out is None else _buffer("out", out, xp, c.shape)
    scratch = _empty(c.shape, xp) if work is None else _buffer("work", work, xp, c.shape)
    if scratch is final:
        raise InvalidParameterError("work", "the out array", "must be a different array from out")
    n0, n1, n2 = c.shape
    n = count("temperature", n0 * n1 * n2)
    # the kernel leaves step m in buffer m & 1 of (first, second): start where the parity ends in `final`
    bufs = [final, scratch] if steps % 2 == 0 else [scratch, final]
    if bufs[0] is not t:
        bufs[0][...] = t
    # GPU work items: ~_GPU_ITEM voxels of one plane each (whole rows along axis 2)
    rows = max(1, min(n1, _GPU_ITEM // max(n2, 1)))
    n_chunks = -(-n1 // rows)
    done = 0
    per_launch = _MAX_STEPS_PER_LAUNCH
    if backend.name == "cuda" and os.environ.get("FUS_BIOHEAT_GPU_WAVEFRONT") != "1":
        # The multi-step wavefront (blocks waiting on other blocks within one launch) has been
        # compiled but never run on a GPU: until it is validated there, the GPU runs one step per
        # launch, where no block ever waits (the kernel's math is the same).
        per_launch = 1
    while done < steps:
        k = min(per_launch, steps - done)
        n_work = count("work items", k * n0 * n_chunks * KERNELS["bioheat_steps"].block)
        sync = xp.zeros(1 + k * n0, dtype=np.int32)
        backend.launch(
            "bioheat_steps", bufs[0], bufs[1], c.g0, c.g1, c.g2, c.a, c.p, c.s, sync,
            np.int32(n0), np.int32(n1), np.int32(n2), np.int32(n), np.int32(k),
            np.int32(n_chunks), np.int32(n_work),
        )
        if k % 2 == 1:
            bufs.reverse()
        done += k
    return final
