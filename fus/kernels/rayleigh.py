"""Public low-level function for ``kernels/rayleigh.cu``."""

from __future__ import annotations

from typing import Any

import numpy as np

from fus.backend import get_backend
from fus.errors import InvalidParameterError
from fus.kernels._validate import complex_array, complex_scalar, count, real_array

__all__ = ["rayleigh", "rayleigh_far", "rayleigh_layered", "piston_angular_functions"]


def rayleigh(sources: Any, weights: Any, points: Any, wavenumber: complex | float) -> Any:
    r"""Complex pressure of M monopole point sources at N field points.

    .. math::

        P(x_n) = \sum_m w_m \frac{\exp(-i \kappa r_{nm})}{r_{nm}}, \qquad
        r_{nm} = |x_n - y_m|, \qquad \kappa = k - i\alpha,

    the outgoing wave of the time convention :math:`p(x, t) = \mathrm{Re}\{P(x) e^{i \omega t}\}`.
    This is the discrete form of the Rayleigh integral: with patch areas :math:`A_m` and normal
    velocities :math:`u_m`, weights :math:`w_m = i \omega \rho A_m u_m / (2\pi)` give the pressure
    of a baffled radiator (Rayleigh 1896; O'Neil 1949). Arithmetic is float32 (relative L2 error
    against float64 below 1e-4 for phases k r up to ~2000 rad).

    Parameters
    ----------
    sources : array_like, shape (M, 3)
        Source positions y_m [m]; real, cast to float32. M >= 1.
    weights : array_like, shape (M,)
        Complex source weights w_m [Pa m]; cast to complex64.
    points : array_like, shape (..., 3)
        Field points x_n [m]; any leading shape, cast to float32.
    wavenumber : complex or float
        kappa = k - i alpha [1/m]: k >= 0 is the wavenumber [rad/m] and alpha >= 0 the amplitude
        attenuation [Np/m] (so the imaginary part must be <= 0).

    Returns
    -------
    ndarray of complex64, shape points.shape[:-1]
        P(x_n) as an array of the active backend (numpy or cupy).

    Notes
    -----
    A field point that coincides with a source (r = 0 in float32) gets no contribution from that
    source: its term is excluded instead of returning inf (the singular self term of a surface
    integral is the caller's to integrate). NaN in a position or weight gives NaN in the outputs
    it reaches.

    Raises
    ------
    InvalidParameterError
        Wrong shapes, non-numeric dtypes, M = 0, a non-finite wavenumber, k < 0 or alpha < 0.
    """
    backend = get_backend()
    src = real_array("sources", sources, backend, ndim=2, last_dim=3)
    pts = real_array("points", points, backend, last_dim=3)
    w = complex_array("weights", weights, backend, ndim=1)
    m = count("sources", int(src.shape[0]), minimum=1)
    if int(w.shape[0]) != m:
        raise InvalidParameterError(
            "weights", f"array of shape {tuple(w.shape)}", f"must have one weight per source ({m})"
        )
    kappa = complex_scalar("wavenumber", wavenumber)
    k, alpha = kappa.real, -kappa.imag
    if k < 0:
        raise InvalidParameterError("wavenumber", wavenumber, "real part k must be >= 0 [rad/m]")
    if alpha < 0:
        raise InvalidParameterError(
            "wavenumber", wavenumber, "imaginary part must be <= 0 (kappa = k - i*alpha, attenuation alpha >= 0 Np/m)"
        )
    out_shape = tuple(pts.shape[:-1])
    n = count("points", int(np.prod(out_shape, dtype=np.int64)))
    xp = backend.xp
    src_soa = xp.ascontiguousarray(src.T)  # (3, M): x..., y..., z...
    w_soa = xp.ascontiguousarray(xp.stack([w.real, w.imag]))  # (2, M)
    out = xp.empty(out_shape, dtype=np.complex64)
    backend.launch(
        "rayleigh",
        src_soa,
        w_soa,
        pts,
        np.float32(k),
        np.float32(alpha),
        np.int32(m),
        np.int32(n),
        out,
    )
    return out


def _complex_per(name: str, x: Any, backend: Any, shape: tuple[int, ...], what: str) -> Any:
    """``x`` as complex64 of ``shape`` with a non-positive imaginary part (NaN passes through)."""
    arr = complex_array(name, x, backend)
    if tuple(arr.shape) != shape:
        raise InvalidParameterError(
            name, f"array of shape {tuple(arr.shape)}", f"must have shape {shape} (one value per {what})"
        )
    if arr.size and bool((arr.imag > 0).any()):
        raise InvalidParameterError(
            name,
            f"array of shape {tuple(arr.shape)}",
            "imaginary part must be <= 0 (kappa = k - i*alpha with attenuation alpha >= 0 Np/m)",
        )
    if arr.size and bool(backend.xp.isinf(arr).any()):
        raise InvalidParameterError(name, f"array of shape {tuple(arr.shape)}", "must not contain inf")
    return arr


def rayleigh_layered(sources: Any, weights: Any, points: Any, g: Any, c: Any) -> Any:
    r"""Complex pressure of M monopole point sources at N field points through planar layers.

    Straight-ray model of :class:`fus.physics.media.LayeredMedium`: every source y_m lies in
    layer 0 (wavenumber :math:`\kappa_0`), every field point x_n beyond the first interface
    :math:`z_1` (layers are planes perpendicular to z), and the complex phase along the ray is
    the path integral of :math:`\kappa`:

    .. math::

        P(x_n) = \sum_m w_m \frac{\exp(-i \Phi_{nm})}{r_{nm}}, \qquad
        \Phi_{nm} = \frac{r_{nm}}{z_n - z_m} (g_m + C_n), \qquad
        g_m = \kappa_0 (z_1 - z_m), \qquad C_n = \int_{z_1}^{z_n} \kappa(z)\, dz,

    with :math:`r_{nm} = |x_n - y_m|` and :math:`\kappa = k - i\alpha` in every layer. Per-point
    factors (the interface transmission product) are the caller's. Arithmetic is float32 with
    the phase compensated for rounding (relative L2 error against float64 below 1e-4 for phases
    up to ~1000 rad).

    Parameters
    ----------
    sources : array_like, shape (M, 3)
        Source positions y_m [m]; real, cast to float32. M >= 1.
    weights : array_like, shape (M,)
        Complex source weights w_m [Pa m]; cast to complex64.
    points : array_like, shape (..., 3)
        Field points x_n [m]; any leading shape, cast to float32. Each must satisfy
        z_n > z_m for every source (else its output is NaN).
    g : array_like, shape (M,)
        Complex phase of each source's path to the first interface at normal incidence,
        :math:`\kappa_0 (z_1 - z_m)` [rad + i Np]; imaginary part <= 0.
    c : array_like, shape points.shape[:-1]
        Complex phase from the first interface to each point at normal incidence,
        :math:`\int_{z_1}^{z_n} \kappa\, dz` [rad + i Np]; imaginary part <= 0.

    Returns
    -------
    ndarray of complex64, shape points.shape[:-1]
        P(x_n) [Pa when w is in Pa m] as an array of the active backend (numpy or cupy).

    Notes
    -----
    A pair with :math:`z_n - z_m \le 0` lies outside the model: it makes that point's output NaN
    (never inf). NaN in a position, weight, g or c gives NaN in the outputs it reaches.

    Raises
    ------
    InvalidParameterError
        Wrong shapes, non-numeric dtypes, M = 0, g or c with a positive imaginary part (growth)
        or an infinite value.
    """
    backend = get_backend()
    xp = backend.xp
    src = real_array("sources", sources, backend, ndim=2, last_dim=3)
    pts = real_array("points", points, backend, last_dim=3)
    w = complex_array("weights", weights, backend, ndim=1)
    m = count("sources", int(src.shape[0]), minimum=1)
    if int(w.shape[0]) != m:
        raise InvalidParameterError(
            "weights", f"array of shape {tuple(w.shape)}", f"must have one weight per source ({m})"
        )
    out_shape = tuple(pts.shape[:-1])
    gg = _complex_per("g", g, backend, (m,), "source")
    cc = _complex_per("c", c, backend, out_shape, "field point")
    n = count("points", int(np.prod(out_shape, dtype=np.int64)))
    src_soa = xp.ascontiguousarray(src.T)  # (3, M): x..., y..., z...
    w_soa = xp.ascontiguousarray(xp.stack([w.real, w.imag]))  # (2, M)
    g_soa = xp.ascontiguousarray(xp.stack([gg.real, -gg.imag]))  # (2, M): phase [rad], attenuation [Np]
    pts5 = xp.empty((n, 5), dtype=np.float32)
    pts5[:, :3] = pts.reshape(n, 3)
    ccf = cc.reshape(n)
    pts5[:, 3] = ccf.real
    pts5[:, 4] = -ccf.imag
    out = xp.empty(out_shape, dtype=np.complex64)
    backend.launch("rayleigh_layered", src_soa, w_soa, g_soa, pts5, np.int32(m), np.int32(n), out)
    return out


def piston_angular_functions(z: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Angular functions of the far-field piston model at ``z = k a sin(t) >= 0`` (float64, numpy).

    ``D = 2 J1(z)/z`` (Fraunhofer directivity), ``G0 = 4 g1``, ``G2 = 2 (g1 - g3)`` (quadratic-phase
    term) and ``H = 2 J2(z)/z`` (``1/R`` amplitude term), with ``g1 = J1/z - 2 J2/z^2`` and
    ``g3 = J3/z``; power series below ``z = 1e-3`` (relative error < 1e-7 there). See the module
    docstring of :mod:`fus.physics.field`.

    Parameters
    ----------
    z : array_like
        Argument ``k a sin(t)`` [rad], >= 0.

    Returns
    -------
    tuple of ndarray (float64)
        ``(D, G0, G2, H)``, dimensionless.
    """
    from scipy.special import jv

    z = np.asarray(z, dtype=np.float64)
    zs = np.where(z > 0, z, 1.0)
    j1, j2, j3 = jv(1, zs), jv(2, zs), jv(3, zs)
    small = z < 1e-3
    z2 = z * z
    d = np.where(small, 1.0 - z2 / 8.0, 2.0 * j1 / zs)
    g1 = np.where(small, 0.25 - z2 / 24.0, j1 / zs - 2.0 * j2 / (zs * zs))
    g3 = np.where(small, z2 / 48.0, j3 / zs)
    h = np.where(small, z / 4.0, 2.0 * j2 / zs)
    return d, 4.0 * g1, 2.0 * (g1 - g3), h


def rayleigh_far(
    sources: Any,
    weights: Any,
    normals: Any,
    radii: Any,
    points: Any,
    wavenumber: complex | float,
    g: Any = None,
    c: Any = None,
) -> Any:
    r"""Complex pressure of M far-field disc-element sources at N field points.

    Each flat disc element (centre :math:`y_m`, unit normal :math:`n_m`, radius :math:`a_m`) is
    one source with the far-field piston directivity and the first Fresnel corrections (the model
    of :func:`fus.physics.field_array.piston_far_field`; derivation in :mod:`fus.physics.field`):

    .. math::

        P(x_n) = \sum_m w_m \frac{e^{-i \Phi_{nm}}}{r_{nm}}
            \Big[ D(z) F(x_e) + i \frac{a}{r} s H(z) - i x \big(G_0(z) - s^2 G_2(z) - D(z)\big) \Big],

    with :math:`F = e^{-i x_e} \sin(x_e) / x_e`, :math:`x = k_e a^2 / (4 r)`,
    :math:`x_e = x (1 - (a/r)^2 / 4)`, :math:`z = a |\nabla \Phi|_\parallel` (the gradient of
    the phase over the element, projected on its plane) and :math:`s = z / (k_e a)`.

    * Homogeneous (``g`` and ``c`` None): :math:`\Phi = \kappa_0 r`, :math:`k_e = k_0`,
      :math:`z = k_0 a \sin t`, :math:`\cos t = n_m \cdot (x_n - y_m) / r`.
    * Layered (``g`` and ``c`` given): the straight-ray phase of :func:`rayleigh_layered`,
      :math:`\Phi = (r / dz)(g_m + C_n)`, :math:`k_e = \mathrm{Re}\,\Phi / r` and
      :math:`\nabla_y \Phi = -k_e e + \beta \hat z`, :math:`\beta = (k_e - k_0) r / dz`.

    ``D, G0, G2, H`` (:func:`piston_angular_functions`) come from straight-line float32
    approximations in the kernel (Chebyshev series below z = 8, Hankel amplitude-phase forms
    above; absolute error < 1e-6); the rest is float32 with the phase compensated for rounding as
    in :func:`rayleigh` (relative L2 error against float64 below ~1e-4).

    Parameters
    ----------
    sources : array_like, shape (M, 3)
        Element centres y_m [m]; cast to float32. M >= 1.
    weights : array_like, shape (M,)
        Complex weights w_m [Pa m] (``i omega rho u_e A_e / (2 pi)``); cast to complex64.
    normals : array_like, shape (M, 3)
        Unit element normals (norm within 1e-3 of 1).
    radii : array_like, shape (M,)
        Element radii a_m [m], finite and > 0.
    points : array_like, shape (..., 3)
        Field points x_n [m]; any leading shape.
    wavenumber : complex or float
        :math:`\kappa_0 = k_0 - i \alpha_0` of the medium at the elements [1/m]: k0 > 0 [rad/m],
        alpha0 >= 0 [Np/m] (layered: only k0 is used; the attenuation is in g and c).
    g : array_like, shape (M,), optional
        Layered only: :math:`\kappa_0 (z_1 - z_m)` [rad + i Np], imaginary part <= 0.
    c : array_like, shape points.shape[:-1], optional
        Layered only: :math:`\int_{z_1}^{z_n} \kappa\, dz` [rad + i Np], imaginary part <= 0.

    Returns
    -------
    ndarray of complex64, shape points.shape[:-1]
        P(x_n) [Pa when w is in Pa m] as an array of the active backend.

    Notes
    -----
    r = 0, and in layered media :math:`z_n - z_m \le 0`, lie outside the model and make that
    point's output NaN (never inf). NaN in a position, normal, weight, g or c gives NaN in the
    outputs it reaches. The per-point transmission of layered media is the caller's.

    Raises
    ------
    InvalidParameterError
        Wrong shapes or dtypes, M = 0, non-unit normals, non-positive or non-finite radii or
        wavenumber, only one of g and c, g or c growing or infinite.
    """
    backend = get_backend()
    xp = backend.xp
    src = real_array("sources", sources, backend, ndim=2, last_dim=3)
    pts = real_array("points", points, backend, last_dim=3)
    w = complex_array("weights", weights, backend, ndim=1)
    nrm = real_array("normals", normals, backend, ndim=2, last_dim=3)
    rad = real_array("radii", radii, backend, ndim=1)
    m = count("sources", int(src.shape[0]), minimum=1)
    for name, arr in (("weights", w), ("normals", nrm), ("radii", rad)):
        if int(arr.shape[0]) != m:
            raise InvalidParameterError(
                name, f"array of shape {tuple(arr.shape)}", f"must have one entry per source ({m})"
            )
    norm = xp.sqrt((nrm.astype(np.float64) ** 2).sum(axis=1))
    if bool((xp.abs(norm - 1.0) > 1e-3).any()):
        raise InvalidParameterError("normals", f"array of shape {tuple(nrm.shape)}", "must be unit vectors")
    if not bool((rad > 0).all()) or not bool(xp.isfinite(rad).all()):
        raise InvalidParameterError("radii", f"array of shape {tuple(rad.shape)}", "must be finite and > 0 [m]")
    kappa = complex_scalar("wavenumber", wavenumber)
    k0, alpha0 = kappa.real, -kappa.imag
    if not k0 > 0:
        raise InvalidParameterError("wavenumber", wavenumber, "real part k0 must be > 0 [rad/m]")
    if alpha0 < 0:
        raise InvalidParameterError(
            "wavenumber", wavenumber, "imaginary part must be <= 0 (kappa = k - i*alpha, attenuation alpha >= 0 Np/m)"
        )
    if (g is None) != (c is None):
        raise InvalidParameterError("g" if g is None else "c", None, "g and c must be given together (layered) or not at all")
    layered = g is not None
    out_shape = tuple(pts.shape[:-1])
    n = count("points", int(np.prod(out_shape, dtype=np.int64)))
    elem = xp.zeros((6, m), dtype=np.float32)
    elem[:3] = nrm.T
    elem[3] = rad
    pts5 = xp.zeros((n, 5), dtype=np.float32)
    pts5[:, :3] = pts.reshape(n, 3)
    if layered:
        gg = _complex_per("g", g, backend, (m,), "source")
        cc = _complex_per("c", c, backend, out_shape, "field point")
        elem[4] = gg.real
        elem[5] = -gg.imag
        ccf = cc.reshape(n)
        pts5[:, 3] = ccf.real
        pts5[:, 4] = -ccf.imag
    src_soa = xp.ascontiguousarray(src.T)
    w_soa = xp.ascontiguousarray(xp.stack([w.real, w.imag]))
    out = xp.empty(out_shape, dtype=np.complex64)
    backend.launch(
        "rayleigh_far",
        src_soa,
        w_soa,
        elem,
        pts5,
        np.float32(k0),
        np.float32(alpha0),
        np.int32(1 if layered else 0),
        np.int32(m),
        np.int32(n),
        out,
    )
    return out
