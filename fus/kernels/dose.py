"""Public low-level function for ``kernels/dose.cu`` (CEM43 thermal dose)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fus.backend import get_backend, writeable
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.kernels._validate import count, real_array

__all__ = ["cem43"]


def cem43(dose: Any, temp_start: Any, temp_end: Any, dt: float) -> Any:
    r"""Add one time step's CEM43 thermal dose to ``dose``, in place.

    .. math::

        \mathrm{CEM43} \mathrel{+}= \int_0^{\Delta t} R^{43 - T(t)} \, dt, \qquad
        R = 0.5 \ (T \ge 43\,^\circ C), \ 0.25 \ (T < 43\,^\circ C)

    (Sapareto & Dewey 1984), integrated exactly for a temperature linear in time from
    ``temp_start`` to ``temp_end`` within the step (a step crossing 43 C is split there).

    Parameters
    ----------
    dose : array, float64, C-contiguous, of the active backend
        Accumulated dose [CEM43 minutes]; updated in place.
    temp_start, temp_end : array_like, same shape as ``dose``
        Absolute temperature at the start and end of the step [C] (cast to float32).
    dt : float
        Step length [s], >= 0.

    Returns
    -------
    dose : the same array, for chaining.

    Notes
    -----
    A NaN temperature makes that voxel's dose NaN from then on: an unknown dose is not reported as
    a number. Temperatures above ~170 C overflow the float32 increment to +inf.
    """
    backend = get_backend()
    xp = backend.xp
    if not isinstance(dose, xp.ndarray):
        raise InvalidParameterError(
            "dose", type(dose).__name__, f"must be a {xp.__name__} array (the active backend's), updated in place"
        )
    if dose.dtype != np.float64 or not dose.flags.c_contiguous or not writeable(dose):
        raise InvalidParameterError(
            "dose", f"array of dtype {dose.dtype}", "must be a writeable, C-contiguous float64 array (dose accumulates in float64)"
        )
    t0 = real_array("temp_start", temp_start, backend)
    t1 = real_array("temp_end", temp_end, backend)
    for name, arr in (("temp_start", t0), ("temp_end", t1)):
        if tuple(arr.shape) != tuple(dose.shape):
            raise InvalidParameterError(name, f"array of shape {tuple(arr.shape)}", f"must have the dose's shape {tuple(dose.shape)}")
    step = finite_scalar("dt", dt, nonnegative=True)
    n = count("dose", int(dose.size))
    backend.launch("cem43", dose, t0, t1, np.float32(step / 60.0), np.int32(n))
    return dose
