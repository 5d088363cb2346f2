"""Public low-level functions for ``kernels/prf.cu`` (PRF thermometry)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fus.backend import get_backend, writeable
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.kernels._validate import complex_array, count, real_array

__all__ = ["prf_phase", "prf_temperature", "prf_temperature_dose", "prf_row_phase_sums", "prf_row_poly_sums"]


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
    for name, v in (("noise", s), ("noise_ref", s_ref)):
        if not 1e-18 <= v <= 1e18:  # noise^2 and 1/noise^2 stay normal float32 numbers
            raise InvalidParameterError(name, v, "is outside the float32 range the kernel computes in (1e-18 .. 1e18)")
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


def _flags(name: str, arr: Any, backend: Any, meaning: str) -> Any:
    """A boolean/integer array as the kernels' uint8 flags (nonzero -> 1)."""
    a = backend.asarray(arr)
    if a.dtype.kind not in "biu":
        raise InvalidParameterError(name, f"array of dtype {a.dtype}", f"must be boolean or integer ({meaning})")
    return a if a.dtype == np.uint8 else backend.asarray(a != 0, dtype=np.uint8)


def _temperature_inputs(backend: Any, dphi: Any, drift: Any, weight: Any, mask: Any, scale: float) -> tuple[Any, ...]:
    """Validated (dphi, drift, weight, mask, scale, n) for the temperature kernels."""
    xp = backend.xp
    d = real_array("dphi", dphi, backend)
    sp = real_array("weight", weight, backend)
    _same_shape("weight", sp, d.shape)
    if drift is None:  # the caller handles the drift itself
        dr = None
    elif np.ndim(drift) == 0 and not hasattr(drift, "shape"):
        dr = xp.full(d.shape, finite_scalar("drift", drift), np.float32)
    else:
        dr = real_array("drift", drift, backend)
        if dr.ndim == 0:
            dr = xp.full(d.shape, dr, np.float32)
        _same_shape("drift", dr, d.shape)
    m = _flags("mask", mask, backend, "1 = measured")
    _same_shape("mask", m, d.shape)
    sc = finite_scalar("scale", scale)
    if sc == 0:
        raise InvalidParameterError("scale", scale, "must be non-zero [C/rad]")
    n = count("dphi", int(d.size))
    return d, dr, sp, m, sc, n


def _state(name: str, arr: Any, xp: Any, dtype: Any, shape: tuple[int, ...], need_write: bool = True) -> Any:
    if not isinstance(arr, xp.ndarray):
        raise InvalidParameterError(name, type(arr).__name__, f"must be a {xp.__name__} array (the kernel's state)")
    if arr.dtype != np.dtype(dtype) or not arr.flags.c_contiguous or (need_write and not writeable(arr)):
        need = "writeable, C-contiguous" if need_write else "C-contiguous"
        raise InvalidParameterError(name, f"array of dtype {arr.dtype}", f"must be a {need} {np.dtype(dtype)} array")
    _same_shape(name, arr, shape)
    return arr


def _coefficients(backend: Any, drift: Any, ns: int) -> Any:
    """Drift as 6 float32 polynomial coefficients per slice (kernel layout), from a scalar, a
    (slices,) constant per slice, or (slices, terms) coefficients with terms 1, 3 or 6."""
    xp = backend.xp
    if np.ndim(drift) == 0 and not hasattr(drift, "shape"):
        c = np.zeros((ns, 6), np.float32)
        c[:, 0] = finite_scalar("drift", drift)
        return backend.asarray(c)
    d = backend.asarray(drift)
    if d.dtype.kind not in "fiu":
        raise InvalidParameterError("drift", f"array of dtype {d.dtype}", "must be real")
    if d.ndim == 0:
        d = d.reshape(1, 1) * xp.ones((ns, 1), d.dtype)
    elif d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[0] != ns or d.shape[1] not in (1, 3, 6):
        raise InvalidParameterError(
            "drift", f"array of shape {tuple(d.shape)}", f"must be a scalar, ({ns},) or ({ns}, 1|3|6) polynomial coefficients"
        )
    if not bool(xp.isfinite(d).all()):
        raise InvalidParameterError("drift", "non-finite coefficients", "drift coefficients must be finite")
    c = xp.zeros((ns, 6), np.float32)
    c[:, : d.shape[1]] = d
    return c


def prf_temperature_dose(
    dphi: Any,
    weight: Any,
    mask: Any,
    scale: float,
    *,
    drift: Any = 0.0,
    body_temp: float,
    dt: float,
    first: bool,
    t_prev: Any,
    dose: Any,
    tmax: Any,
) -> tuple[Any, Any, Any]:
    r""":func:`prf_temperature` with a per-slice polynomial drift, fused with the streaming CEM43
    state (one pass over memory; no drift image is formed).

    The drift of slice ``s`` at in-plane coordinates ``u`` (columns) and ``v`` (rows), both
    spanning [-1, 1] as in :func:`fus.mr.drift.poly_basis`, is

    .. math::

        \phi_{drift} = c_0 + c_1 u + c_2 v + c_3 u^2 + c_4 u v + c_5 v^2 .

    ``T = body_temp + dT``; unless ``first``, ``dose`` gains the CEM43 of a temperature linear
    from ``t_prev`` to ``T`` over ``dt`` (the dose kernel's exact integral); on the first dynamic
    a voxel with NaN ``T`` gets a NaN dose. Then ``tmax = fmax(tmax, T)``. ``t_prev`` is only
    read: the returned ``temperature`` is the next call's ``t_prev`` (the state is not copied).

    Parameters
    ----------
    dphi, weight, mask : arrays (slices, rows, cols)
        Output of :func:`prf_phase` [rad], [1/rad^2], 1 = measured.
    scale : float
        [C/rad], finite and non-zero (:func:`fus.mr.prf.prf_scale`).
    drift : float, array (slices,) or array (slices, terms)
        Drift phase [rad]: one constant, one constant per slice, or polynomial coefficients per
        slice with 1, 3 or 6 terms in :func:`fus.mr.drift.poly_basis` order (orders 0, 1, 2).
    body_temp : float
        Baseline temperature [C].
    dt : float
        Time since the previous dynamic [s], >= 0 (ignored when ``first``).
    first : bool
        This is the first dynamic of the stream.
    t_prev : float32 array
        Temperature of the previous dynamic [C] (read only; any values when ``first``).
    dose : float64 array, tmax : float32 array
        State of the active backend, same shape as ``dphi``, updated in place.

    Returns
    -------
    dT, sigma_T, temperature : float32 arrays [C]
    """
    backend = get_backend()
    d, _, sp, m, sc, n = _temperature_inputs(backend, dphi, None, weight, mask, scale)
    if d.ndim != 3:
        raise InvalidParameterError("dphi", f"array of shape {tuple(d.shape)}", "must be (slices, rows, cols)")
    ns, ny, nx = (int(v) for v in d.shape)
    coef = _coefficients(backend, drift, ns)
    xp = backend.xp
    tp = _state("t_prev", t_prev, xp, np.float32, d.shape, need_write=False)
    ds = _state("dose", dose, xp, np.float64, d.shape)
    tx = _state("tmax", tmax, xp, np.float32, d.shape)
    bt = finite_scalar("body_temp", body_temp)
    step = finite_scalar("dt", dt, nonnegative=True)
    dT = xp.empty(d.shape, np.float32)
    sT = xp.empty(d.shape, np.float32)
    temp = xp.empty(d.shape, np.float32)
    backend.launch(
        "prf_temperature_dose", d, sp, m, coef, np.float32(_step(nx)), np.float32(_step(ny)), np.float32(sc),
        np.float32(bt), np.float32(step / 60.0), np.int32(1 if first else 0), np.int32(ns), np.int32(ny), np.int32(nx), np.int32(n),
        dT, sT, temp, tp, ds, tx,
    )
    return dT, sT, temp


def _step(n: int) -> float:
    """Spacing of ``n`` coordinates spanning [-1, 1] (as numpy.linspace; 0 for one point)."""
    return 2.0 / (n - 1) if n > 1 else 0.0


def _fit_inputs(backend: Any, dphi: Any, weight: Any, use: Any, stride: int) -> tuple[Any, ...]:
    """Validated (dphi, weight, use, use_per_slice, stride, n_rows) for the fit-sum kernels."""
    d = real_array("dphi", dphi, backend)
    if d.ndim != 3:
        raise InvalidParameterError("dphi", f"array of shape {tuple(d.shape)}", "must be (slices, rows, cols)")
    w = real_array("weight", weight, backend)
    _same_shape("weight", w, d.shape)
    u = _flags("use", use, backend, "nonzero = use")
    if tuple(u.shape) == tuple(d.shape):
        per_slice = 1
    elif tuple(u.shape) == tuple(d.shape[1:]):
        per_slice = 0
    else:
        raise InvalidParameterError("use", f"array of shape {tuple(u.shape)}", f"must have shape {tuple(d.shape)} or {tuple(d.shape[1:])}")
    if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 1:
        raise InvalidParameterError("stride", stride, "must be an integer >= 1")
    ns, ny, _ = (int(v) for v in d.shape)
    st = max(1, min(int(stride), ny))  # a stride past the last row visits row 0 only, as ny does
    n_rows = count("dphi", ns * -(-ny // st))
    count("dphi", int(d.size))
    return d, w, u, per_slice, st, n_rows


def prf_row_phase_sums(dphi: Any, weight: Any, use: Any, *, stride: int = 1, unit_weight: bool = False) -> Any:
    r"""Per-row sums for a slice's mean complex phase: :math:`\sum w \cos\phi`, :math:`\sum w \sin\phi`
    and the number of voxels used.

    Rows ``0, stride, ...`` of every slice, every column of each; a voxel is used where
    ``weight > 0``, ``dphi`` is not NaN and ``use`` is nonzero.

    Parameters
    ----------
    dphi, weight : float32 arrays (slices, rows, cols)
        Phase difference [rad] and its weight (e.g. :func:`prf_phase`'s inverse variance).
    use : bool/uint8 array (slices, rows, cols) or (rows, cols)
        Region to use (the same in-plane region for every slice when 2-D).
    stride : int
        Subsampling of rows (1 = every row).
    unit_weight : bool
        Weight every used voxel by 1 (an unweighted complex mean).

    Returns
    -------
    sums : float64 array (slices, ceil(rows / stride), 3)
    """
    backend = get_backend()
    d, w, u, per_slice, st, n_rows = _fit_inputs(backend, dphi, weight, use, stride)
    out = backend.xp.empty(n_rows * 3, np.float64)
    ns, ny, nx = (int(v) for v in d.shape)
    backend.launch(
        "prf_row_phase_sums", d, w, u, np.int32(per_slice), np.int32(1 if unit_weight else 0), np.int32(st),
        np.int32(ns), np.int32(ny), np.int32(nx), np.int32(n_rows), out,
    )
    return out.reshape(ns, -1, 3)


def prf_row_poly_sums(dphi: Any, weight: Any, use: Any, c0: Any, *, stride: int = 1) -> Any:
    r"""Per-row moments for a weighted polynomial fit (order <= 2) of the phase residual.

    With ``e = wrap(dphi - c0[slice])`` and the column coordinate ``u`` in [-1, 1]: for each
    visited row, :math:`S_k = \sum w u^k` (k = 0..4) and :math:`R_k = \sum w e u^k` (k = 0..2).
    Voxels, rows and columns as for :func:`prf_row_phase_sums`.

    Parameters
    ----------
    dphi, weight, use, stride
        As for :func:`prf_row_phase_sums`.
    c0 : array (slices,) [rad]
        Per-slice constant removed (and the residual wrapped) before the moments.

    Returns
    -------
    sums : float64 array (slices, ceil(rows / stride), 8): S_0..S_4, R_0..R_2
    """
    backend = get_backend()
    d, w, u, per_slice, st, n_rows = _fit_inputs(backend, dphi, weight, use, stride)
    ns, ny, nx = (int(v) for v in d.shape)
    c = real_array("c0", c0, backend)
    if tuple(c.shape) != (ns,):
        raise InvalidParameterError("c0", f"array of shape {tuple(c.shape)}", f"must have shape ({ns},)")
    out = backend.xp.empty(n_rows * 8, np.float64)
    backend.launch(
        "prf_row_poly_sums", d, w, u, np.int32(per_slice), c, np.float32(_step(nx)), np.int32(st),
        np.int32(ns), np.int32(ny), np.int32(nx), np.int32(n_rows), out,
    )
    return out.reshape(ns, -1, 8)
