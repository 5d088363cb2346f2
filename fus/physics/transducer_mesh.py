"""Discretisation of transducer elements into small area-weighted patches.

The Rayleigh–Sommerfeld integral over the radiating surface S (Kinsler et al., *Fundamentals of
Acoustics*, 4th ed., eq. 7.4.3, written for the ``exp(+i w t)`` convention),

    P(x) = (i w rho / (2 pi)) * integral_S u_n(y) exp(-i k |x - y|) / |x - y| dS(y),

is evaluated by the field module as a sum over patches, ``sum_p A_p u_n(p) exp(-i k r_p) / r_p``.
This module produces those patches.

Patch rule
----------
Each element is cut, in its own polar coordinates, into rings and equal-angle sectors:

* flat disc of radius ``a`` (in the element's plane): ``n_r = ceil(a / h)`` rings of equal
  radial width ``a / n_r``; ring ``j`` with outer radius ``r_o`` has ``ceil(2 pi r_o / h)``
  sectors. Each patch is an annular sector; its point is the sector's area centroid (in the
  plane), its area ``dphi (r_o^2 - r_i^2) / 2``.
* spherical bowl of radius of curvature ``R`` and rim radius ``a`` (on the sphere itself):
  ``n_r = ceil(R theta_max / h)`` rings of equal polar-angle width, ``theta_max = asin(a / R)``;
  ring ``j`` has ``ceil(2 pi R sin(theta_o) / h)`` sectors. Each patch's point is on the sphere at
  the ring's area-midpoint polar angle (``cos theta_c = (cos theta_i + cos theta_o) / 2``) and the
  sector's mid azimuth; its area ``dphi R^2 (cos theta_i - cos theta_o)``; its normal points to the
  centre of curvature.

``h = lambda / N`` with ``lambda = c / f`` and N the points per wavelength. A patch's *size*
(reported in :attr:`Patches.sizes`) is the larger of its radial extent (along the surface) and its
outer arc length; every size is ``<= h``, so each patch fits in an ``h x h`` cell of its local polar
grid (its diameter is at most ``sqrt(2) h``). For ``cap256`` at N = 3 this gives about 230
patches per element. Patch areas are finally rescaled per element so that they sum to the exact
element area (``pi a^2`` or ``2 pi R h_bowl``) to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fus.errors import InvalidParameterError
from fus.physics.constants import DEFAULT_SOUND_SPEED
from fus.physics.transducer_geometry import Transducer, _positive_finite

__all__ = ["Patches", "discretise", "element_basis", "DEFAULT_POINTS_PER_WAVELENGTH", "MAX_PATCHES"]

#: Default number of patches per wavelength (patch size <= lambda / N), picked by the
#: discretisation convergence test of tests/test_field.py: the smallest N of (1.5, 2, 3, 6) whose
#: O'Neil on-axis error is <= 1e-3 (N = 2: 1.1e-3, N = 3: 5.1e-4, N = 6: 1.3e-4).
DEFAULT_POINTS_PER_WAVELENGTH: float = 3.0

#: Refuse discretisations with more patches than this (memory guard, ~2 GB of float64 arrays).
MAX_PATCHES: int = 50_000_000


@dataclass(frozen=True, eq=False)
class Patches:
    """Area-weighted surface patches of a transducer (numpy float64 arrays).

    Attributes
    ----------
    centres : ndarray, shape (P, 3)
        Patch points [m] (on the radiating surface), in the frame named by ``frame``.
    areas : ndarray, shape (P,)
        Patch areas [m^2]; per element they sum to the element's exact area.
    normals : ndarray, shape (P, 3)
        Unit surface normals at the patch points, pointing into the medium.
    element_index : ndarray, shape (P,), int64
        Index of the element each patch belongs to (non-decreasing).
    sizes : ndarray, shape (P,)
        Patch size [m]: max(radial extent along the surface, outer arc length); all ``<= h``.
    patch_size : float
        The target size ``h = lambda / N`` [m].
    wavelength : float
        ``c / f`` [m] used to size the patches.
    points_per_wavelength : float
        N.
    n_elements : int
        Number of elements M of the transducer.
    frame : {"transducer", "scanner"}
        Frame of ``centres`` and ``normals``.
    """

    centres: np.ndarray
    areas: np.ndarray
    normals: np.ndarray
    element_index: np.ndarray
    sizes: np.ndarray
    patch_size: float
    wavelength: float
    points_per_wavelength: float
    n_elements: int
    frame: str = "transducer"

    @property
    def n_patches(self) -> int:
        """Number of patches P."""
        return int(self.areas.shape[0])

    def element_areas(self) -> np.ndarray:
        """Sum of patch areas per element [m^2], shape (M,), accumulated with ``math.fsum``."""
        bounds = np.searchsorted(self.element_index, np.arange(1, self.n_elements))
        return np.array([math.fsum(a) for a in np.split(self.areas, bounds)])

    def patches_per_element(self) -> np.ndarray:
        """Number of patches of each element, shape (M,)."""
        return np.bincount(self.element_index, minlength=self.n_elements)


def element_basis(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangent vectors completing each normal to a right-handed orthonormal basis.

    Parameters
    ----------
    normals : ndarray, shape (M, 3)
        Unit normals.

    Returns
    -------
    e1, e2 : ndarray, shape (M, 3)
        With ``e1 x e2 = n``.
    """
    n = np.asarray(normals, dtype=np.float64)
    helper = np.zeros_like(n)
    use_y = np.abs(n[:, 0]) > 0.9
    helper[~use_y, 0] = 1.0
    helper[use_y, 1] = 1.0
    e1 = helper - np.sum(helper * n, axis=1, keepdims=True) * n
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(n, e1)
    return e1, e2


def _disc_pattern(a: float, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local patches of a flat disc: (points (p,3), normals (p,3), areas (p,), sizes (p,))."""
    n_r = max(1, math.ceil(a / h))
    edges = a * np.arange(n_r + 1) / n_r
    pts, areas, sizes = [], [], []
    for r_i, r_o in zip(edges[:-1], edges[1:]):
        n_s = max(1, math.ceil(2.0 * math.pi * r_o / h))
        dphi = 2.0 * math.pi / n_s
        phi = (np.arange(n_s) + 0.5) * dphi
        half = 0.5 * dphi
        sinc = math.sin(half) / half
        rho = (2.0 / 3.0) * (r_o**3 - r_i**3) / (r_o**2 - r_i**2) * sinc
        pts.append(np.stack([rho * np.cos(phi), rho * np.sin(phi), np.zeros(n_s)], axis=1))
        areas.append(np.full(n_s, 0.5 * dphi * (r_o - r_i) * (r_o + r_i)))
        sizes.append(np.full(n_s, max(r_o - r_i, r_o * dphi)))
    p = np.concatenate(pts)
    nrm = np.zeros_like(p)
    nrm[:, 2] = 1.0
    return p, nrm, np.concatenate(areas), np.concatenate(sizes)


def _bowl_pattern(
    a: float, radius: float, h: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local patches of a spherical bowl with apex at the origin, centre at (0, 0, R)."""
    theta_max = math.asin(min(a / radius, 1.0))
    n_r = max(1, math.ceil(radius * theta_max / h))
    edges = theta_max * np.arange(n_r + 1) / n_r
    pts, nrms, areas, sizes = [], [], [], []
    for t_i, t_o in zip(edges[:-1], edges[1:]):
        n_s = max(1, math.ceil(2.0 * math.pi * radius * math.sin(t_o) / h))
        dphi = 2.0 * math.pi / n_s
        phi = (np.arange(n_s) + 0.5) * dphi
        # cos(t_i) - cos(t_o) without cancellation
        dcos = 2.0 * math.sin(0.5 * (t_o + t_i)) * math.sin(0.5 * (t_o - t_i))
        cos_c = 0.5 * (math.cos(t_i) + math.cos(t_o))
        t_c = math.acos(cos_c)
        s, c = math.sin(t_c), math.cos(t_c)
        u = np.stack([s * np.cos(phi), s * np.sin(phi), np.full(n_s, -c)], axis=1)
        # point = centre + R u, centre = (0, 0, R); normal toward the centre = -u
        p = radius * u
        p[:, 2] += radius
        pts.append(p)
        nrms.append(-u)
        areas.append(np.full(n_s, dphi * radius * radius * dcos))
        sizes.append(np.full(n_s, max(radius * (t_o - t_i), radius * math.sin(t_o) * dphi)))
    return np.concatenate(pts), np.concatenate(nrms), np.concatenate(areas), np.concatenate(sizes)


def _estimate_patches(transducer: Transducer, h: float) -> float:
    a = 0.5 * transducer.diameters
    # each ring has <= 2 pi r_o / h + 1 sectors; ring count ~ a / h (bowl: arc / h)
    if transducer.element_shape == "bowl":
        r = float(transducer.element_radius_of_curvature)  # type: ignore[arg-type]
        a = r * np.arcsin(np.minimum(a / r, 1.0))
    n_r = np.ceil(a / h)
    return float(np.sum(np.pi * (n_r + 1) * (n_r + 2) + n_r))


def discretise(
    transducer: Transducer,
    points_per_wavelength: float = DEFAULT_POINTS_PER_WAVELENGTH,
    sound_speed: float = DEFAULT_SOUND_SPEED,
    *,
    frame: Literal["transducer", "scanner"] = "transducer",
) -> Patches:
    """Cut every element of a transducer into area-weighted patches no larger than lambda / N.

    See the module docstring for the patch rule and the Rayleigh–Sommerfeld form the patches are
    meant for.

    Parameters
    ----------
    transducer : Transducer
        The transducer.
    points_per_wavelength : float
        N > 0; patches are no larger than ``lambda / N`` (default
        :data:`DEFAULT_POINTS_PER_WAVELENGTH`).
    sound_speed : float
        Sound speed of the medium in front of the transducer [m/s] (default: water at 20 C),
        giving ``lambda = c / f``.
    frame : {"transducer", "scanner"}
        Frame of the returned points and normals.

    Returns
    -------
    Patches
        numpy float64 arrays, element-major (``element_index`` non-decreasing).

    Raises
    ------
    InvalidParameterError
        Non-positive N or sound speed, an unknown frame, or more than :data:`MAX_PATCHES` patches.
    """
    if not isinstance(transducer, Transducer):
        raise InvalidParameterError("transducer", type(transducer).__name__, "must be a Transducer")
    n_ppw = _positive_finite("points_per_wavelength", points_per_wavelength)
    lam = transducer.wavelength(sound_speed)
    h = lam / n_ppw
    if frame not in ("transducer", "scanner"):
        raise InvalidParameterError("frame", frame, "must be 'transducer' or 'scanner'")
    est = _estimate_patches(transducer, h)
    if est > MAX_PATCHES:
        raise InvalidParameterError(
            "points_per_wavelength",
            points_per_wavelength,
            f"would give about {est:.3g} patches (limit {MAX_PATCHES}); use fewer points per "
            f"wavelength",
        )

    m = transducer.n_elements
    e1, e2 = element_basis(transducer.normals)
    basis = np.stack([e1, e2, transducer.normals], axis=1)  # (M, 3 local axes, 3 xyz)
    exact = transducer.element_areas

    chunks_c, chunks_n, chunks_a, chunks_s, chunks_i = [], [], [], [], []
    diam_unique, inverse = np.unique(transducer.diameters, return_inverse=True)
    for g, d in enumerate(diam_unique):
        idx = np.flatnonzero(inverse == g)
        if transducer.element_shape == "disc":
            lp, ln, la, ls = _disc_pattern(0.5 * float(d), h)
        else:
            erc = float(transducer.element_radius_of_curvature)  # type: ignore[arg-type]
            lp, ln, la, ls = _bowl_pattern(0.5 * float(d), erc, h)
        # rescale so the pattern's area equals the exact element area
        la = la * (exact[idx[0]] / math.fsum(la))
        b = basis[idx]  # (E, 3, 3)
        pts = transducer.centres[idx, None, :] + np.einsum("pk,ekx->epx", lp, b)
        nrm = np.einsum("pk,ekx->epx", ln, b)
        p = lp.shape[0]
        chunks_c.append(pts.reshape(-1, 3))
        chunks_n.append(nrm.reshape(-1, 3))
        chunks_a.append(np.tile(la, idx.size))
        chunks_s.append(np.tile(ls, idx.size))
        chunks_i.append(np.repeat(idx, p))

    element_index = np.concatenate(chunks_i).astype(np.int64)
    order = np.argsort(element_index, kind="stable")
    centres = np.concatenate(chunks_c)[order]
    normals = np.concatenate(chunks_n)[order]
    if frame == "scanner":
        t = transducer.to_scanner
        centres = centres @ t[:3, :3].T + t[:3, 3]
        normals = normals @ t[:3, :3].T
    return Patches(
        centres=centres,
        areas=np.concatenate(chunks_a)[order],
        normals=normals,
        element_index=element_index[order],
        sizes=np.concatenate(chunks_s)[order],
        patch_size=h,
        wavelength=lam,
        points_per_wavelength=n_ppw,
        n_elements=m,
        frame=frame,
    )
