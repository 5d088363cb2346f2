"""Array-module (numpy / cupy) parts of the field model: far-field element sources and layers.

The plain homogeneous patch sum runs in the Rayleigh kernel (:func:`fus.kernels.rayleigh`), the
layered patch sum (straight rays through planar layers, :class:`fus.physics.media.LayeredMedium`)
in its layered variant (:func:`fus.kernels.rayleigh_layered`, prepared by
:func:`_layered_patch_sum`), and the far-field element sources, homogeneous and layered, in
:func:`fus.kernels.rayleigh_far` (prepared by :func:`_far_field_sum`):

* the far-field element source: one point per flat disc element with the far-field piston
  directivity ``2 J1(k a sin t) / (k a sin t)`` and the first Fresnel corrections (see
  :func:`piston_far_field`, its float64 reference form, and the module docstring of
  :mod:`fus.physics.field`);
* in layered media the straight-ray phase of the patch sum, with the directivity argument taken
  from the gradient of that phase over the element: the phase of a patch at ``y`` is
  ``Phi(y) = (r / dz) g``; its gradient, ``-k_eff e + beta z_hat`` with ``k_eff = Phi / r`` and
  ``beta = (k_eff - k0) r / dz`` (``e`` the unit vector source -> point), replaces ``k e`` in the
  directivity: ``z = a |grad Phi projected on the element plane|``, ``sin t = z / (k_eff a)``,
  ``x = k_eff a^2 / (4 r)``.

This module forms the per-source and per-point phases (float64) and the per-point transmission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fus.errors import InvalidParameterError
from fus.kernels import piston_angular_functions, rayleigh_far, rayleigh_layered
from fus.physics.media import LayeredMedium
from fus.physics.transducer_geometry import _positive_finite

__all__ = [
    "far_field_distance",
    "piston_far_field",
    "DEFAULT_FAR_FIELD_TOLERANCE",
    "FAR_FIELD_ERROR_COEFFICIENTS",
]

#: Default accuracy target of the far-field element model, relative to the element's on-axis
#: pressure at the same distance (see :func:`far_field_distance`).
DEFAULT_FAR_FIELD_TOLERANCE: float = 5e-3

#: ``(c_x, c_a)`` of the error bound ``c_x x^2 + c_a (a / r)^2`` of the far-field model that sets
#: the switch distance (measured: 0.3 and 0.25; c_a is rounded up for margin).
FAR_FIELD_ERROR_COEFFICIENTS: tuple[float, float] = (0.3, 0.3)

# ------------------------------------------------------------------------------ far field
def far_field_distance(
    radius: float, wavenumber: float, tolerance: float = DEFAULT_FAR_FIELD_TOLERANCE
) -> float:
    """Distance beyond which a disc element may be one far-field source.

    Solves ``c_x x^2 + c_a (a / r)^2 = tolerance`` with ``x = k a^2 / (4 r)`` and
    ``(c_x, c_a)`` = :data:`FAR_FIELD_ERROR_COEFFICIENTS`:
    ``r = a sqrt((c_x (k a)^2 / 16 + c_a) / tolerance)``.

    Parameters
    ----------
    radius : float
        Element radius a [m].
    wavenumber : float
        k [rad/m].
    tolerance : float
        Accepted error relative to the element's on-axis pressure at the same distance, in (0, 1).

    Returns
    -------
    float
        Switch distance [m].
    """
    a = _positive_finite("radius", radius)
    k = _positive_finite("wavenumber", wavenumber)
    tol = _positive_finite("far_field_tolerance", tolerance)
    if tol >= 1.0:
        raise InvalidParameterError("far_field_tolerance", tolerance, "must be in (0, 1)")
    cx, ca = FAR_FIELD_ERROR_COEFFICIENTS
    return a * math.sqrt((cx * (k * a) ** 2 / 16.0 + ca) / tol)


def piston_far_field(
    radius: float, wavenumber: float, r: Any, sin_theta: Any
) -> np.ndarray:
    """Bracket of the far-field element model (float64 reference form, numpy).

    Returns ``D F(x_e) - i x (G - D) + i sin(t) (a / r) H`` (see the module docstring): multiply
    by ``i omega rho u A exp(-i kappa r) / (2 pi r)`` for the element's pressure.

    Parameters
    ----------
    radius : float
        Element radius a [m].
    wavenumber : float
        k [rad/m].
    r : array_like
        Distance from the element centre [m], > 0.
    sin_theta : array_like
        Sine of the angle from the element normal, in [0, 1].

    Returns
    -------
    ndarray of complex128
    """
    a, k = float(radius), float(wavenumber)
    r = np.asarray(r, dtype=np.float64)
    s = np.asarray(sin_theta, dtype=np.float64)
    d, g0, g2, h = piston_angular_functions(k * a * s)
    g = g0 - s * s * g2
    x = k * a * a / (4.0 * r)
    xe = 0.5 * k * a * a / (np.sqrt(r * r + a * a) + r)
    f = np.exp(-1j * xe) * np.sin(xe) / xe
    return d * f - 1j * x * (g - d) + 1j * s * (a / r) * h


# ------------------------------------------------------------------------------ layered media
@dataclass
class _Layers:
    """Per-layer constants of a layered medium (host float64 / complex128)."""

    z_interfaces: np.ndarray  # (L-1,)
    z_start: np.ndarray  # (L,) start of each layer (layer 0: -inf, unused)
    kappa: np.ndarray  # (L,) complex
    crossing: np.ndarray  # (L,) complex C_j
    transmission: np.ndarray  # (L,)

    @classmethod
    def of(cls, medium: LayeredMedium, frequency: float) -> "_Layers":
        zi = medium.interfaces
        return cls(
            z_interfaces=zi,
            z_start=np.concatenate([[0.0], zi]),
            kappa=medium.kappas(frequency),
            crossing=medium.crossing_phase(frequency),
            transmission=medium.transmission(),
        )


def _ray_terms(xp: Any, pts: Any, src: Any, kappa0: complex, layers: "_Layers", layer_of_pts: Any) -> tuple[Any, Any, Any]:
    """Straight-ray terms of the layered kernels, in float64: per source ``g_m = kappa0 (z_1 -
    z_m)``, per point ``C_n = C_j + kappa_j (z_n - z_start_j)`` and transmission ``T_n = T_j``
    (``j`` the point's layer)."""
    f64 = xp.float64
    z1 = float(layers.z_interfaces[0])
    g = complex(kappa0) * (z1 - src[:, 2].astype(f64))
    j = layer_of_pts
    zp = pts[:, 2].astype(f64)
    kap = xp.asarray(layers.kappa, dtype=xp.complex128)
    cross = xp.asarray(layers.crossing, dtype=xp.complex128)
    z_start = xp.asarray(layers.z_start, dtype=f64)
    c = cross[j] + kap[j] * (zp - z_start[j])
    t = xp.asarray(layers.transmission, dtype=xp.float32)[j]
    return g, c, t


def _layered_patch_sum(
    xp: Any, pts: Any, src: Any, weights: Any, kappa0: complex, layers: _Layers, layer_of_pts: Any
) -> Any:
    """Straight-ray layered pressure of point sources in layer 0 at points in layers >= 1.

    ``P_n = T_n sum_m w_m exp(-i (r / dz) (g_m + C_n)) / r`` (straight rays, see the module docstring),
    evaluated by the kernel :func:`fus.kernels.rayleigh_layered`; the per-source phase
    ``g_m = kappa0 (z_1 - z_m)``, the per-point phase ``C_n = C_j + kappa_j (z_n - z_start_j)``
    and transmission ``T_n = T_j`` of the point's layer ``j`` are formed here in float64.

    Parameters
    ----------
    xp : module
        numpy or cupy (the active backend's).
    pts : array, shape (n, 3)
        float32 field points [m], transducer frame, each beyond the first interface.
    src : array, shape (M, 3)
        float32 source positions [m], all before the first interface.
    weights : array, shape (M,)
        complex64 source weights [Pa m].
    kappa0 : complex
        ``k0 - i alpha0`` of layer 0 [1/m].
    layers : _Layers
        The medium's per-layer tables.
    layer_of_pts : array, shape (n,)
        int layer index of each point (>= 1).

    Returns
    -------
    array of complex64, shape (n,)
        Pressure [Pa].
    """
    n = int(pts.shape[0])
    if n == 0 or int(src.shape[0]) == 0:
        return xp.zeros(n, dtype=xp.complex64)
    g, c, t = _ray_terms(xp, pts, src, kappa0, layers, layer_of_pts)
    out = rayleigh_layered(src, weights, pts, g, c)
    out *= t
    return out


def _far_field_sum(
    xp: Any,
    pts: Any,
    src: Any,
    weights: Any,
    normals: Any,
    radii: Any,
    kappa0: complex,
    *,
    layers: _Layers | None = None,
    layer_of_pts: Any = None,
) -> Any:
    """Far-field element sources (one per disc element) at float32 points, by the kernel.

    Homogeneous (``layers`` None): :func:`fus.kernels.rayleigh_far` with ``exp(-i kappa0 r)``.
    Layered (every point in a layer >= 1, given by ``layer_of_pts``; every element in layer 0):
    the straight-ray phase with ``g_m = kappa0 (z_1 - z_m)``, ``C_n = C_j + kappa_j (z_n -
    z_start_j)`` and transmission ``T_n = T_j`` (formed here in float64, as in
    :func:`_layered_patch_sum`), the directivity from the gradient of the layered phase.

    Parameters
    ----------
    xp : module
        numpy or cupy.
    pts : array, shape (n, 3)
        float32 field points [m], transducer frame.
    src, normals : array, shape (M, 3)
        Element centres [m] and unit normals.
    weights : array, shape (M,)
        complex64 element weights ``i omega rho u_e A_e / (2 pi)`` [Pa m].
    radii : array, shape (M,)
        Element radii [m].
    kappa0 : complex
        ``k0 - i alpha0`` of layer 0 [1/m].
    layers : _Layers, optional
        The medium's per-layer tables (layered media).
    layer_of_pts : array, shape (n,), optional
        int layer index of each point (>= 1), with ``layers``.

    Returns
    -------
    array of complex64, shape (n,)
        Pressure [Pa].
    """
    n = int(pts.shape[0])
    if n == 0 or int(src.shape[0]) == 0:
        return xp.zeros(n, dtype=xp.complex64)
    if layers is None:
        return rayleigh_far(src, weights, normals, radii, pts, kappa0)
    g, c, t = _ray_terms(xp, pts, src, kappa0, layers, layer_of_pts)
    out = rayleigh_far(src, weights, normals, radii, pts, kappa0, g, c)
    out *= t
    return out
