"""Public low-level functions for ``kernels/prf.cu`` (PRF thermometry)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fus.backend import get_backend
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.kernels._validate import complex_array, count, real_array

__all__ = ["prf_phase", "prf_temperature", "prf_temperature_dose"]


def _same_shape(name: str, arr: Any, shape: tuple[int, ...]) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise InvalidParameterError(name, f"array of shape {tuple(arr.shape)}", f"must have shape {tuple(shape)}")


def prf_phase(z: Any, z_ref: Any, *, noise: float, noise_ref: float | None = None, mag_min: float = 0.0) -> tuple[Any, Any, Any]:
    r"""Complex phase difference of a dynamic against its baseline, its weight, and a mask.

    .. math::

        \Delta\phi = \arg(z \, \overline{z_{ref}}), \qquad
        w = 1 / \sigma_\phi^2, \qquad
        \sigma_\phi^2 = (\sigma / |z|)^2 + (\sigma_{ref} / |z_{ref}|)^2

    Parameters
    ----------
    z, z_ref : array_like, complex, same shape
        Complex image of the dynamic and of the baseline (any shape, e.g. (slices, rows, cols)).
    noise : float
        Standard deviation of the noise in each of the real and imaginary channels of ``z``
        (same units as ``z``), > 0.
    noise_ref : float, optional
        The same for ``z_ref`` (smaller for an average of baselines). Default: ``noise``.
    mag_min : float
        Voxels with ``|z|`` or ``|z_ref|`` below this are masked out. Default 0.

    Returns
    -------
    dphi : float32 array [rad], in (-pi, pi]; 0 where not measured
    weight : float32 array [1/rad^2], inverse variance of ``dphi``; 0 where not measured
    mask : uint8 array, 1 where the voxel is measured (both magnitudes >= ``mag_min`` and
        non-zero, finite phase)
    """
    backend = get_backend()
    zc = complex_array("z", z, backend)
    zr = complex_array("z_ref", z_ref, backend)
    _same_shape("z_ref", zr, zc.shape)
    s = finite_scalar("noise", noise, positive=True)
    s_ref = s if noise_ref is None else finite_scalar("noise_ref", noise_ref, positive=True)
    mmin = finite_scalar("mag_min", mag_min, nonnegative=True)
    n = count("z", int(zc.size))
    xp = backend.xp
    dphi = xp.empty(zc.shape, np.float32)
    weight = xp.empty(zc.shape, np.float32)
    mask = xp.empty(zc.shape, np.uint8)
    backend.launch(
        "prf_phase", zc, zr, np.float32(s), np.float32(s_ref), np.float32(mmin), np.int32(n), dphi, weight, mask
    )
    return dphi, weight, mask


def prf_temperature(dphi: Any, drift: Any, weight: Any, mask: Any, scale: float) -> tuple[Any, Any]:
    r"""Temperature change from a phase difference after subtracting a drift phase.

    .. math::

        \Delta T = s \, \mathrm{wrap}(\Delta\phi - \phi_{drift}), \qquad \sigma_T = |s| / \sqrt{w}

    with ``s = phase_sign / (gamma * alpha * B0 * TE)`` [C/rad] (see
    :func:`fus.mr.prf.prf_scale`). Masked-out voxels get NaN.

    Parameters
    ----------
    dphi, weight : array_like, float
        Output of :func:`prf_phase` [rad], [1/rad^2].
    drift : array_like or float
        Drift phase to subtract [rad], same shape as ``dphi`` or a scalar (0 for none).
    mask : array_like, uint8 or bool
        1 / True where measured.
    scale : float
        [C/rad], finite and non-zero.

    Returns
    -------
    dT : float32 array [C]
    sigma_T : float32 array [C]
    """
    backend = get_backend()
    d, dr, sp, m, sc, n = _temperature_inputs(backend, dphi, drift, weight, mask, scale)
    xp = backend.xp
    dT = xp.empty(d.shape, np.float32)
    sT = xp.empty(d.shape, np.float32)
    backend.launch("prf_temperature", d, dr, sp, m, np.float32(sc), np.int32(n), dT, sT)
    return dT, sT


def _temperature_inputs(backend: Any, dphi: Any, drift: Any, weight: Any, mask: Any, scale: float) -> tuple[Any, ...]:
    """Validated (dphi, drift, weight, mask, scale, n) for the temperature kernels."""
    xp = backend.xp
    d = real_array("dphi", dphi, backend)
    sp = real_array("weight", weight, backend)
    _same_shape("weight", sp, d.shape)
    if np.ndim(drift) == 0 and not hasattr(drift, "shape"):
        dr = xp.full(d.shape, finite_scalar("drift", drift), np.float32)
    else:
        dr = real_array("drift", drift, backend)
        if dr.ndim == 0:
            dr = xp.full(d.shape, dr, np.float32)
        _same_shape("drift", dr, d.shape)
    m = backend.asarray(mask)
    if m.dtype.kind not in "biu":
        raise InvalidParameterError("mask", f"array of dtype {m.dtype}", "must be boolean or integer (1 = measured)")
    if m.dtype != np.uint8:
        m = backend.asarray(m != 0, dtype=np.uint8)
    _same_shape("mask", m, d.shape)
    sc = finite_scalar("scale", scale)
    if sc == 0:
        raise InvalidParameterError("scale", scale, "must be non-zero [C/rad]")
    n = count("dphi", int(d.size))
    return d, dr, sp, m, sc, n


def _state(name: str, arr: Any, xp: Any, dtype: Any, shape: tuple[int, ...]) -> Any:
    if not isinstance(arr, xp.ndarray):
        raise InvalidParameterError(name, type(arr).__name__, f"must be a {xp.__name__} array (state updated in place)")
    if arr.dtype != np.dtype(dtype) or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise InvalidParameterError(name, f"array of dtype {arr.dtype}", f"must be a writeable, C-contiguous {np.dtype(dtype)} array")
    _same_shape(name, arr, shape)
    return arr


def prf_temperature_dose(
    dphi: Any,
    drift: Any,
    weight: Any,
    mask: Any,
    scale: float,
    *,
    body_temp: float,
    dt: float,
    first: bool,
    t_prev: Any,
    dose: Any,
    tmax: Any,
) -> tuple[Any, Any, Any]:
    """:func:`prf_temperature` fused with the streaming CEM43 state (one pass over memory).

    ``T = body_temp + dT``; unless ``first``, ``dose`` gains the CEM43 of a temperature linear
    from ``t_prev`` to ``T`` over ``dt`` (the dose kernel's exact integral); on the first dynamic
    a voxel with NaN ``T`` gets a NaN dose. Then ``t_prev = T`` and ``tmax = fmax(tmax, T)``.

    Parameters
    ----------
    dphi, drift, weight, mask, scale
        As for :func:`prf_temperature`.
    body_temp : float
        Baseline temperature [C].
    dt : float
        Time since the previous dynamic [s], >= 0 (ignored when ``first``).
    first : bool
        This is the first dynamic of the stream.
    t_prev, tmax : float32 arrays, dose : float64 array
        State of the active backend, same shape as ``dphi``, updated in place.

    Returns
    -------
    dT, sigma_T, temperature : float32 arrays [C]
    """
    backend = get_backend()
    d, dr, sp, m, sc, n = _temperature_inputs(backend, dphi, drift, weight, mask, scale)
    xp = backend.xp
    tp = _state("t_prev", t_prev, xp, np.float32, d.shape)
    ds = _state("dose", dose, xp, np.float64, d.shape)
    tx = _state("tmax", tmax, xp, np.float32, d.shape)
    bt = finite_scalar("body_temp", body_temp)
    step = finite_scalar("dt", dt, nonnegative=True)
    dT = xp.empty(d.shape, np.float32)
    sT = xp.empty(d.shape, np.float32)
    temp = xp.empty(d.shape, np.float32)
    backend.launch(
        "prf_temperature_dose", d, dr, sp, m, np.float32(sc), np.float32(bt), np.float32(step / 60.0),
        np.int32(1 if first else 0), np.int32(n), dT, sT, temp, tp, ds, tx,
    )
    return dT, sT, temp
