"""Array-module (numpy / cupy) parts of the field model: far-field element sources and layers.

The plain homogeneous patch sum runs in the Rayleigh kernel (:func:`fus.kernels.rayleigh`) and the
layered patch sum (straight rays through planar layers, :class:`fus.physics.media.LayeredMedium`)
in its layered variant (:func:`fus.kernels.rayleigh_layered`, prepared by
:func:`_layered_patch_sum`). The far-field element source, which plain monopoles cannot express,
runs here as float32 array code, written once for numpy and cupy, in a homogeneous medium and
through the layers:

* the far-field element source: one point per flat disc element with the far-field piston
  directivity ``2 J1(k a sin t) / (k a sin t)`` and the first Fresnel corrections (see
  :func:`piston_far_field` and the module docstring of :mod:`fus.physics.field`);
* straight-ray propagation through planar layers (:class:`fus.physics.media.LayeredMedium`), for
  the far-field element source (and, in :func:`_array_sum`, for plain point sources too, which
  :func:`_layered_patch_sum` supersedes).

Distances come from one GEMM (``|p|^2 + |s|^2 - 2 p.s`` after shifting both by the chunk centre,
which keeps float32 cancellation small), the element sum from two real GEMMs, and the work is cut
into blocks of bounded memory (a few MB on the CPU, so the temporaries stay in cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import jv

from fus.errors import InvalidParameterError
from fus.kernels import rayleigh_layered
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

# Lookup tables of the far-field angular functions: step in z = k a sin(t). Linear interpolation
# error <= step^2 / 8 * max|f''| ~ 1e-5.
_TABLE_STEP = 1.0 / 64.0
# Bytes of float32 temporaries per source-point pair in the array code (upper bound).
_BYTES_PER_PAIR = 4 * 20
# float32 rounding to an integer by adding and subtracting 1.5 * 2^23 (|u| < 2^22).
_MAGIC = np.float32(12582912.0)


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


def _angular_functions(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """D = 2 J1/z, G0 = 4 g1, G2 = 2 (g1 - g3), H = 2 J2/z at z >= 0 (float64)."""
    z = np.asarray(z, dtype=np.float64)
    zs = np.where(z > 0, z, 1.0)
    j1, j2, j3 = jv(1, zs), jv(2, zs), jv(3, zs)
    small = z < 1e-3  # series (relative error < 1e-7 there)
    z2 = z * z
    d = np.where(small, 1.0 - z2 / 8.0, 2.0 * j1 / zs)
    g1 = np.where(small, 0.25 - z2 / 24.0, j1 / zs - 2.0 * j2 / (zs * zs))
    g3 = np.where(small, z2 / 48.0, j3 / zs)
    h = np.where(small, z / 4.0, 2.0 * j2 / zs)
    return d, 4.0 * g1, 2.0 * (g1 - g3), h


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
    d, g0, g2, h = _angular_functions(k * a * s)
    g = g0 - s * s * g2
    x = k * a * a / (4.0 * r)
    xe = 0.5 * k * a * a / (np.sqrt(r * r + a * a) + r)
    f = np.exp(-1j * xe) * np.sin(xe) / xe
    return d * f - 1j * x * (g - d) + 1j * s * (a / r) * h


def _correction_function(z: np.ndarray, ka: float) -> tuple[np.ndarray, np.ndarray]:
    """``D(z)`` and ``E(z) = (z/ka) H - (ka/4) (G0 - (z/ka)^2 G2 - D)`` for one element size.

    With ``x = (ka / 4) (a / r)`` and ``sin t = z / ka`` the bracket of :func:`piston_far_field`
    is ``D F(x_e) + i (a / r) E(z)``: one table per distinct ``ka`` instead of four.
    """
    d, g0, g2, h = _angular_functions(z)
    s = z / ka
    return d, s * h - 0.25 * ka * (g0 - s * s * g2 - d)


@dataclass
class _FarTables:
    """Device lookup tables of the far-field angular functions at ``z = i * step``.

    ``d, dd, e, de``: ``D`` and ``E`` (value, slope to the next entry), one block per distinct
    element ``ka`` (homogeneous media; ``offset[m]`` is element m's first entry). ``generic``:
    ``[D, dD, G0, dG0, G2, dG2, H, dH]`` independent of ``ka`` (layered media, where the
    effective wavenumber varies from ray to ray), ``n_generic`` entries.
    """

    inv_step: float
    d: Any
    dd: Any
    e: Any
    de: Any
    offset: np.ndarray  # (M,) int, host
    generic: list[Any]
    n_generic: int


def _far_tables(xp: Any, ka: np.ndarray, z_generic: float) -> _FarTables:
    uniq, inverse = np.unique(np.round(ka, 12), return_inverse=True)
    cols: list[list[np.ndarray]] = [[], [], [], []]
    starts = []
    start = 0
    for kav in uniq:
        n = int(math.ceil(kav * 1.001 / _TABLE_STEP)) + 2
        z = np.arange(n + 1) * _TABLE_STEP
        d, e = _correction_function(z, float(kav))
        for c, v in zip(cols, (d[:-1], np.diff(d), e[:-1], np.diff(e))):
            c.append(v)
        starts.append(start)
        start += n
    arrs = [xp.asarray(np.concatenate(c), dtype=xp.float32) for c in cols]
    n_gen = int(math.ceil(z_generic / _TABLE_STEP)) + 2
    zg = np.arange(n_gen + 1) * _TABLE_STEP
    generic = []
    for f in _angular_functions(zg):
        generic += [xp.asarray(f[:-1], dtype=xp.float32), xp.asarray(np.diff(f), dtype=xp.float32)]
    return _FarTables(
        1.0 / _TABLE_STEP, *arrs, offset=np.asarray(starts, dtype=np.int64)[inverse], generic=generic, n_generic=n_gen
    )


def _lookup(xp: Any, u: Any, n_max: int) -> tuple[Any, Any]:
    """Integer index and fraction of ``u >= 0`` (table coordinate), index clamped to ``n_max - 1``."""
    fl = u - np.float32(0.5)
    fl += _MAGIC
    fl -= _MAGIC  # floor(u) as float32
    xp.clip(fl, 0, n_max - 1, out=fl)
    frac = u - fl  # in [0, 1) inside the table
    return fl.astype(xp.int32), frac


# ------------------------------------------------------------------------------ array code
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


def _layered_patch_sum(
    xp: Any, pts: Any, src: Any, weights: Any, kappa0: complex, layers: _Layers, layer_of_pts: Any
) -> Any:
    """Straight-ray layered pressure of point sources in layer 0 at points in layers >= 1.

    ``P_n = T_n sum_m w_m exp(-i (r / dz) (g_m + C_n)) / r`` (the model of :func:`_array_sum`),
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
    out = rayleigh_layered(src, weights, pts, g, c)
    out *= t
    return out


def _array_sum(
    xp: Any,
    pts: Any,
    src: Any,
    weights: Any,
    kappa0: complex,
    *,
    shift: np.ndarray,
    layers: _Layers | None = None,
    layer_of_pts: Any = None,
    piston: dict[str, Any] | None = None,
    tables: _FarTables | None = None,
    block_bytes: int,
) -> Any:
    """``sum_s w_s G(s, p) [B(s, p)]`` for float32 points (n, 3) and sources (S, 3), complex64 (n,).

    ``G`` is ``exp(-i kappa0 r) / r`` (homogeneous) or the straight-ray layered propagator (every
    point in a layer >= 1, given by ``layer_of_pts``; every source in layer 0). ``B`` is the
    far-field element bracket (``piston``: element normals, ``ka``, radius, table offsets), else 1.
    ``shift`` is subtracted from points and sources (float32 precision of the GEMM distance).

    Layered far field: the phase of a patch at ``y`` is ``Phi(y) = (r / dz) g``; its gradient over
    the element, ``-k_eff e + beta z_hat`` with ``k_eff = Phi / r`` and
    ``beta = (k_eff - k0) r / dz`` (``e`` the unit vector source -> point), replaces ``k e`` in
    the directivity: ``z = a |grad Phi projected on the element plane|``, ``sin t = z / (k_eff a)``,
    ``x = k_eff a^2 / (4 r)``.
    """
    n, n_src = int(pts.shape[0]), int(src.shape[0])
    out = xp.zeros(n, dtype=xp.complex64)
    if n == 0 or n_src == 0:
        return out
    f32 = xp.float32
    c = xp.asarray(shift, dtype=f32)
    sp = src - c[None, :]
    s2 = (sp * sp).sum(axis=1)
    src_t = xp.ascontiguousarray((-2.0 * sp).T)
    w = weights.astype(xp.complex64)
    wa = xp.stack([w.real, w.imag], axis=1).astype(f32)
    wb = xp.stack([-w.imag, w.real], axis=1).astype(f32)
    k0, a0 = np.float32(kappa0.real), np.float32(-kappa0.imag)
    if layers is not None:
        z_src = src[:, 2]
        z1 = np.float32(layers.z_interfaces[0])
        a_re = (k0 * (z1 - z_src)).astype(f32)  # Re kappa_0 (z_1 - z_s)
        a_im = (a0 * (z1 - z_src)).astype(f32)  # -Im
        lt = {
            "z_start": xp.asarray(layers.z_start, dtype=f32),
            "c_re": xp.asarray(layers.crossing.real, dtype=f32),
            "c_at": xp.asarray(-layers.crossing.imag, dtype=f32),
            "k": xp.asarray(layers.kappa.real, dtype=f32),
            "alpha": xp.asarray(-layers.kappa.imag, dtype=f32),
            "t": xp.asarray(layers.transmission, dtype=f32),
        }
    if piston is not None:
        normals = piston["normals"]
        sn = (sp * normals).sum(axis=1)
        n_t = xp.ascontiguousarray(normals.T)
        rad = piston["radius"][None, :]
        if layers is None:
            zscale = (piston["ka"] * np.float32(tables.inv_step))[None, :]
            offset = piston["offset"][None, :]
            quarter_ka = (piston["ka"] * np.float32(0.25))[None, :]
            n_tab = int(tables.d.shape[0])
        else:
            nz = normals[:, 2][None, :]
            one_m_nz2 = 1.0 - nz * nz
            a_step = rad * np.float32(tables.inv_step)
    block = max(1, int(block_bytes // (_BYTES_PER_PAIR * n_src)))
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        p = pts[b0:b1] - c[None, :]
        r = p @ src_t
        r += (p * p).sum(axis=1)[:, None]
        r += s2[None, :]
        xp.maximum(r, 0, out=r)
        xp.sqrt(r, out=r)
        inv = 1.0 / r
        if layers is None:
            phase = k0 * r
            if a0 == 0:
                amp = inv
            else:
                ar0 = a0 * r
                if float(ar0.max()) < 0.05:  # exp(-y) by Taylor to y^4 (error < 3e-9), 5x cheaper
                    amp = ar0 * np.float32(-1.0 / 24.0)
                    for coef in (1.0 / 6.0, -0.5, 1.0, -1.0):
                        amp += np.float32(coef)
                        amp *= ar0
                    amp += 1.0
                else:
                    amp = xp.exp(-ar0)
                amp *= inv
                del ar0
        else:
            j = layer_of_pts[b0:b1]
            zp = pts[b0:b1, 2]
            dzp = zp - lt["z_start"][j]  # depth inside the point's layer
            b_re = lt["c_re"][j] + lt["k"][j] * dzp  # Re(C_j + kappa_j dz): phase [rad]
            b_im = lt["c_at"][j] + lt["alpha"][j] * dzp  # -Im(...): attenuation [Np]
            q = r / (zp[:, None] - z_src[None, :])  # r / (z_p - z_s) > 0
            phase = q * (a_re[None, :] + b_re[:, None])
            amp = q * (a_im[None, :] + b_im[:, None])
            xp.exp(-amp, out=amp)
            amp *= inv
            amp *= lt["t"][j][:, None]
        cph = xp.cos(phase)
        sph = xp.sin(phase)
        if piston is None:
            tr = amp * cph
            ti = amp * sph
            ti *= -1.0
        else:
            cos_t = p @ n_t
            cos_t -= sn[None, :]
            cos_t *= inv
            ar = rad * inv  # a / r
            if layers is None:
                # bracket D F(x_e) + i (a/r) E(z), z = ka sin(t)  (see piston_far_field)
                u = cos_t * cos_t
                xp.subtract(1.0, u, out=u)
                xp.maximum(u, 0, out=u)
                xp.sqrt(u, out=u)  # sin(t)
                u *= zscale  # z / step
                i0, u = _lookup(xp, u, n_tab)
                i0 += offset
                d = xp.take(tables.dd, i0)
                d *= u
                d += xp.take(tables.d, i0)
                e = xp.take(tables.de, i0)
                e *= u
                e += xp.take(tables.e, i0)
                del i0, u
                e *= ar  # (a/r) E
                x = ar * quarter_ka  # k a^2 / (4 r)
            else:
                keff = phase * inv
                beta = keff - k0
                beta *= q
                ez = 1.0 / q
                vp = keff * keff * (1.0 - cos_t * cos_t)
                vp -= 2.0 * keff * beta * (ez - cos_t * nz)
                vp += beta * beta * one_m_nz2
                xp.maximum(vp, 0, out=vp)
                xp.sqrt(vp, out=vp)  # |grad Phi| in the element plane
                del beta, ez
                s_eff = vp / keff
                vp *= a_step
                i0, u = _lookup(xp, vp, tables.n_generic)
                g = tables.generic
                d, g0, g2, h = (xp.take(g[2 * m], i0) + u * xp.take(g[2 * m + 1], i0) for m in range(4))
                del i0, u, vp
                x = keff * ar * rad * np.float32(0.25)
                e = s_eff * ar * h - x * (g0 - s_eff * s_eff * g2 - d)
                del g0, g2, h, s_eff, keff
            del cos_t
            xe = ar * ar
            xe *= np.float32(-0.25)
            xe += 1.0
            xe *= x  # x_e = x (1 - (a/r)^2 / 4)
            del ar, x
            sx = xp.sin(xe)
            cx = xp.cos(xe)
            cx *= sx
            sx *= sx
            cx /= xe  # Re F = sin(x_e) cos(x_e) / x_e
            sx /= xe  # -Im F = sin^2(x_e) / x_e
            del xe
            vr = d * cx
            vi = d * sx
            xp.subtract(e, vi, out=vi)  # Im = D Im F + (a/r) E
            del d, e, sx, cx
            tr = vr * cph
            tr += vi * sph
            tr *= amp
            ti = vi * cph
            ti -= vr * sph
            ti *= amp
            del vr, vi
        del cph, sph, amp, inv, r, phase
        res = tr @ wa + ti @ wb
        out[b0:b1] = res[:, 0] + 1j * res[:, 1]
    return out
