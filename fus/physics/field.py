"""Acoustic pressure of a driven transducer anywhere in a homogeneous or planar layered medium.

Model
-----
Rayleigh–Sommerfeld integral over the radiating surface S with normal velocity ``u_n``
(Rayleigh, *The Theory of Sound* II, §278 (1896); O'Neil, J. Acoust. Soc. Am. 21, 516 (1949);
Kinsler et al., *Fundamentals of Acoustics*, 4th ed., eq. 7.4.3, in the ``exp(+i w t)``
convention of the package):

.. math::

    P(x) = \\frac{i \\omega \\rho}{2 \\pi} \\int_S u_n(y) \\frac{e^{-i \\kappa |x - y|}}{|x - y|} dS(y),
    \\qquad \\kappa = \\omega / c - i \\alpha(f),

``rho``, ``c`` and ``alpha`` those of the medium in front of the transducer. Each element is cut
into patches no larger than ``lambda / N`` (:func:`fus.physics.transducer.discretise`) and the
integral becomes the sum evaluated by :func:`fus.kernels.rayleigh` with weights
``w_p = i omega rho u_e A_p / (2 pi)`` (``u_e`` the element's complex velocity, ``A_p`` the patch
area). The sum converges to the integral as N grows; N = 3 (the default) gives a relative L2 error
of ~4e-4 on O'Neil's on-axis solution (see ``tests/test_field.py``).

Far-field element sources
-------------------------
Where a field point lies far enough from a flat circular element (radius ``a``), the element is
one source at its centre with the far-field piston directivity ``D = 2 J1(k a sin t) / (k a sin t)``
(exact in the Fraunhofer limit), refined by the next terms of the Fresnel expansion of the
Rayleigh integral so that the error falls as ``1 / r^2`` instead of ``1 / r``:

.. math::

    P_e(x) = \\frac{i \\omega \\rho u_e A_e}{2 \\pi} \\frac{e^{-i \\kappa r}}{r}
        \\Big[ D F(x_e) - i x (G - D) + i \\sin t \\, \\frac{a}{r} H \\Big],

with ``x = k a^2 / (4 r)``; ``F = exp(-i x_e) sin(x_e) / x_e``, ``x_e = k (sqrt(r^2 + a^2) - r) / 2``,
the exact on-axis Fresnel factor of a piston (so the model is exact on the element axis);
``G = 4 g1 - 2 sin^2 t (g1 - g3)``, ``g1 = J1(z)/z - 2 J2(z)/z^2``, ``g3 = J3(z)/z``, the first-order
quadratic-phase term; ``H = 2 J2(z) / z`` the first-order ``1/R`` amplitude term; ``z = k a sin t``,
``t`` the angle from the element normal. (Derived here by expanding
``|x - y| = r - rho' sin t cos phi + rho'^2 (1 - sin^2 t cos^2 phi) / (2 r)`` to first order and
integrating over the disc with ``int_0^a rho^3 J0(u rho) d rho = a^3 J1/u - 2 a^2 J2/u^2`` and
``int_0^a rho^3 J2(u rho) d rho = a^3 J3 / u``.) Measured against 14-points-per-wavelength patch
sums for ``ka`` = 1 to 32 and all angles, the error relative to the element's on-axis pressure at
the same distance stays below ``0.3 x^2 + 0.25 (a/r)^2`` (the pure Fraunhofer term alone is off
by ~``x``: 10 % for ``cap256`` at its focus); the switch distance of an element is where
``0.3 x^2 + 0.3 (a/r)^2`` equals ``far_field_tolerance`` (default
:data:`DEFAULT_FAR_FIELD_TOLERANCE`), see :func:`far_field_distance`. ``cap256`` (a = 3.3 mm,
1.2 MHz, water): 110 mm, so its focal region at 140 mm uses one source per element instead of
~230 patches. Bowl elements always use patches. In a layered medium the directivity argument is
taken from the gradient of the layered phase over the element (see
:mod:`fus.physics.field_array`).

The layered patch sum runs in the kernel's layered variant (:func:`fus.kernels.rayleigh_layered`,
per-source and per-point complex phases). The far-field sums (homogeneous and layered) run in
their own kernel, :func:`fus.kernels.rayleigh_far` (per-source normal and radius, the angular
functions by straight-line approximations): ~2e8 element-point pairs/s on 2 CPU cores, about a
third of the patch kernel's rate, so a far-field element costs ~1/80 of its ~230 patches.

Layered media
-------------
:class:`fus.physics.media.LayeredMedium`: straight rays from each source to each point, phase and
attenuation accumulated per layer crossed, normal-incidence transmission ``2 Z2 / (Z1 + Z2)`` at
each interface (see that module for the approximation and its limits). For a source at ``z_s`` in
layer 0 and a point at ``z_p`` in layer ``j >= 1``, the complex phase of the straight segment of
length ``r`` is ``(r / (z_p - z_s)) [kappa_0 (z_1 - z_s) + sum_{0<l<j} kappa_l t_l +
kappa_j (z_p - z_j)]`` (``z_l`` the start of layer ``l``, ``t_l`` its thickness).

Memory and progress
-------------------
Points are processed in chunks (grids are never materialised); the output (complex64, 8 bytes a
point) is the only array of the grid's size, and a grid whose output does not fit in the memory
of the active backend (host RAM or GPU memory) is refused with the sizes and what to change.
``progress=True`` shows a tqdm bar.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from fus.backend.memory import available_memory, gib
from fus.backend import array_module, asnumpy, get_backend
from fus.errors import InvalidParameterError
from fus.kernels import rayleigh
from fus.physics.drive import _drive, focus_phases
from fus.physics.field_array import (
    DEFAULT_FAR_FIELD_TOLERANCE,
    FAR_FIELD_ERROR_COEFFICIENTS,
    _far_field_sum,
    _layered_patch_sum,
    _Layers,
    far_field_distance,
    piston_far_field,
)
from fus.physics.grid import Grid
from fus.physics.media import HomogeneousMedium, LayeredMedium, Medium, as_medium
from fus.physics.tissues import TISSUES
from fus.physics.transducer_geometry import Transducer
from fus.physics.transducer_mesh import DEFAULT_POINTS_PER_WAVELENGTH, discretise

__all__ = [
    "pressure",
    "transfer_matrix",
    "heat_source",
    "heat_source_labels",
    "focus_phases_in_medium",
    "far_field_distance",
    "piston_far_field",
    "DEFAULT_POINTS_PER_WAVELENGTH",
    "DEFAULT_FAR_FIELD_TOLERANCE",
    "FAR_FIELD_ERROR_COEFFICIENTS",
]

logger = logging.getLogger("fus.physics.field")

# Kernel-path chunk: about this many source-point pairs per launch (progress granularity).
_PAIRS_PER_CHUNK = {"cpu": 1.5e9, "cuda": 4e10}
# Smallest chunk that is halved to separate far-field from near-field points.
_MIN_SPLIT = 256
# Fraction of the available memory the output may take.
_MEMORY_FRACTION = 0.8


# ------------------------------------------------------------------------------ evaluator
class _Evaluator:
    """Sources of one transducer, drive and medium on the active backend, and the chunk loop.

    The patch arrays (float32 positions, complex64 weights ``i omega rho u A_p / (2 pi)``) and the
    far-field element arrays live on the backend's device; :attr:`active` selects the elements
    that contribute (``transfer_matrix`` switches it one element at a time).
    """

    def __init__(
        self,
        transducer: Transducer,
        u: np.ndarray,
        medium: Medium,
        points_per_wavelength: float,
        far_field: bool,
        tolerance: float,
        backend: Any,
    ) -> None:
        xp = backend.xp
        self.xp = xp
        self.backend = backend
        self.medium = medium
        src = medium.source_medium
        f = transducer.frequency
        self.frequency = f
        rho0, c0 = src.density, src.sound_speed
        self.k0 = 2.0 * math.pi * f / c0
        self.kappa0 = src.kappa(f)
        self.patches = discretise(transducer, points_per_wavelength, c0)
        pref = 1j * f * rho0  # i omega rho / (2 pi)
        w = pref * u[self.patches.element_index] * self.patches.areas
        self.patch_pos = xp.asarray(self.patches.centres, dtype=xp.float32)
        self.patch_w = xp.asarray(w, dtype=xp.complex64)
        self.patch_elem = xp.asarray(self.patches.element_index, dtype=xp.int32)
        self.elem_centres = transducer.centres
        radius = 0.5 * transducer.diameters
        if far_field and transducer.element_shape == "disc":
            self.r_switch = np.array([far_field_distance(a, self.k0, tolerance) for a in radius])
        else:
            self.r_switch = np.full(transducer.n_elements, np.inf)
        self.active = u != 0
        self._mask_cache: tuple[bytes, Any, Any] | None = None
        self.dev: dict[str, Any] = {}
        if np.isfinite(self.r_switch).any():
            self.dev = {
                "normals": xp.asarray(transducer.normals, dtype=xp.float32),
                "centres": xp.asarray(transducer.centres, dtype=xp.float32),
                "radius": xp.asarray(radius, dtype=xp.float32),
                "weight": xp.asarray(pref * u * transducer.element_areas, dtype=xp.complex64),
            }
        self.layers = _Layers.of(medium, f) if isinstance(medium, LayeredMedium) else None
        if self.layers is not None:
            z_max = float(self.patches.centres[:, 2].max())
            if z_max >= self.layers.z_interfaces[0]:
                raise InvalidParameterError(
                    "medium",
                    medium.name,
                    f"the transducer reaches z = {z_max * 1e3:.4g} mm, at or beyond the first interface "
                    f"(z = {self.layers.z_interfaces[0] * 1e3:.4g} mm): it must radiate from inside layer 0 "
                    f"({medium.source_medium.name}); move first_interface_mm further along +z",
                )
        self.pairs_patch = 0.0
        self.pairs_far = 0.0

    def set_active(self, active: np.ndarray) -> None:
        """Select the contributing elements."""
        self.active = np.asarray(active, dtype=bool)
        self._mask_cache = None

    def _near_patches(self, near: np.ndarray) -> tuple[Any, Any]:
        """Patch positions and weights of the elements flagged in ``near`` (cached per set)."""
        if np.all(near):
            return self.patch_pos, self.patch_w
        key = np.packbits(near).tobytes()
        if self._mask_cache is not None and self._mask_cache[0] == key:
            return self._mask_cache[1], self._mask_cache[2]
        mask = self.xp.asarray(near)[self.patch_elem]
        pos, w = self.patch_pos[mask], self.patch_w[mask]
        self._mask_cache = (key, pos, w)
        return pos, w

    def _chunk(self, pts: Any, out: Any, lo: np.ndarray, hi: np.ndarray, far: np.ndarray, near: np.ndarray) -> None:
        """Write the pressure at the float32 points ``pts`` (n, 3) into ``out`` (n,)."""
        xp = self.xp
        piston = None
        if far.any():
            idx = xp.asarray(np.flatnonzero(far))
            piston = {k: self.dev[k][idx] for k in ("normals", "radius")}
            far_src, far_w = self.dev["centres"][idx], self.dev["weight"][idx]
        near_pos, near_w = self._near_patches(near) if near.any() else (None, None)
        if self.layers is None:
            groups: list[tuple[Any, Any]] = [(None, None)]
        else:  # points in layer 0 propagate homogeneously (kernel); deeper ones through the layers
            lay = self.medium.layer_index(pts[:, 2])
            deep = xp.nonzero(lay > 0)[0]
            groups = [(xp.nonzero(lay == 0)[0], None), (deep, lay[deep])]
        for sel, lay_sel in groups:
            p = pts if sel is None else pts[sel]
            n = int(p.shape[0])
            if n == 0:
                continue
            acc = xp.zeros(n, dtype=xp.complex64)
            if near_pos is not None:
                if lay_sel is None:
                    acc += rayleigh(near_pos, near_w, p, self.kappa0)
                else:
                    acc += _layered_patch_sum(xp, p, near_pos, near_w, self.kappa0, self.layers, lay_sel)
                self.pairs_patch += float(n) * float(near_pos.shape[0])
            if piston is not None:
                acc += _far_field_sum(
                    xp, p, far_src, far_w, piston["normals"], piston["radius"], self.kappa0,
                    layers=self.layers if lay_sel is not None else None, layer_of_pts=lay_sel,
                )
                self.pairs_far += float(n) * float(far_src.shape[0])
            if sel is None:
                out[:] = acc
            else:
                out[sel] = acc

    def run(self, n_pts: int, chunk: int, points: Any, bounds: Any, out: Any, bar: Any = None) -> None:
        """Fill ``out`` (n_pts,) chunk by chunk; ``points(s, e)`` gives float32 device points,
        ``bounds(s, e)`` their bounding box (host)."""
        for c0 in range(0, n_pts, chunk):
            # A chunk whose bounding box straddles an element's switch distance is halved (down
            # to _MIN_SPLIT points) so that the far-field model is used wherever it is valid.
            stack = [(c0, min(c0 + chunk, n_pts))]
            while stack:
                s, e = stack.pop()
                lo, hi = bounds(s, e)
                far = (_box_distance(self.elem_centres, lo, hi) >= self.r_switch) & self.active
                near = ~far & self.active
                if e - s > _MIN_SPLIT and np.any(
                    near & (_box_far_distance(self.elem_centres, lo, hi) >= self.r_switch)
                ):
                    mid = (s + e) // 2
                    stack += [(mid, e), (s, mid)]
                    continue
                self._chunk(points(s, e), out[s:e], lo, hi, far, near)
                if bar is not None:
                    bar.update(e - s)


def _check_common(transducer: Any, far_field_tolerance: Any) -> float:
    if not isinstance(transducer, Transducer):
        raise InvalidParameterError("transducer", type(transducer).__name__, "must be a Transducer")
    try:
        tol = float(far_field_tolerance)
    except (TypeError, ValueError):
        tol = math.nan
    if not (math.isfinite(tol) and 0.0 < tol < 1.0):
        raise InvalidParameterError("far_field_tolerance", far_field_tolerance, "must be in (0, 1)")
    return tol


def _chunk_size(chunk: Any, n_patches: int, backend: Any) -> int:
    if chunk is None:
        per = _PAIRS_PER_CHUNK.get(backend.name, 1.5e9)
        return int(min(1 << 22, max(1024, per // max(1, n_patches))))
    try:
        c = int(chunk)
    except (TypeError, ValueError):
        raise InvalidParameterError("chunk", chunk, "must be an integer >= 1") from None
    if c < 1:
        raise InvalidParameterError("chunk", chunk, "must be an integer >= 1")
    return c


# ------------------------------------------------------------------------------ helpers
def _available_memory(backend: Any) -> int:
    """Bytes the output of a field computation may use on the active backend."""
    return available_memory(backend)


def _gib(n: float) -> str:
    return gib(n)


def _check_memory(n_points: int, shape: tuple[int, ...], backend: Any, what: str) -> None:
    need = 8 * n_points
    have = _available_memory(backend)
    if need > _MEMORY_FRACTION * have:
        where = "GPU memory" if backend.name == "cuda" else "RAM"
        raise InvalidParameterError(
            what,
            "x".join(str(s) for s in shape) if what == "grid" else shape,
            f"{n_points:.4g} points need {_gib(need)} for the complex64 pressure alone, but only "
            f"{_gib(have)} of {where} is available ({_MEMORY_FRACTION:.0%} may be used): use a coarser "
            f"spacing or a smaller grid, or compute it as several sub-grids"
            + (" (or on the CPU backend, with more RAM)" if backend.name == "cuda" else ""),
        )


def _front_check(transducer: Transducer, pts: np.ndarray, name: str) -> None:
    """Refuse points behind (or on) the plane of any element."""
    c, nrm = transducer.centres, transducer.normals
    for s in range(0, pts.shape[0], 65536):
        blk = pts[s : s + 65536]
        ahead = blk @ nrm.T - np.sum(c * nrm, axis=1)[None, :]
        bad = ahead <= 0.0
        if np.any(bad):
            j, m = np.unravel_index(int(np.argmin(ahead)), ahead.shape)
            raise InvalidParameterError(
                name,
                (blk[j] * 1e3).round(4).tolist(),
                f"point (mm, transducer frame) is behind or on the plane of element {m} "
                f"({ahead[j, m] * 1e3:.4g} mm along its normal): the Rayleigh integral holds only in "
                f"front of the transducer; move the grid or points to z > the transducer",
            )


def _box_distance(centres: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distance from each centre to the axis-aligned box [lo, hi] (0 inside)."""
    d = np.maximum(0.0, np.maximum(lo[None, :] - centres, centres - hi[None, :]))
    return np.sqrt(np.sum(d * d, axis=1))


def _box_far_distance(centres: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distance from each centre to the farthest corner of the box [lo, hi]."""
    d = np.maximum(np.abs(centres - lo[None, :]), np.abs(centres - hi[None, :]))
    return np.sqrt(np.sum(d * d, axis=1))


def _as_points(where: Any, transducer: Transducer, frame: str, xp: Any) -> tuple[Any, np.ndarray, tuple[int, ...]]:
    """(device float32 (N, 3), host float64 (N, 3), output shape) for a point array."""
    host = asnumpy(where)
    try:
        host = host.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError("points", host.dtype, "must be real coordinates [m]") from None
    if host.ndim < 1 or host.shape[-1] != 3:
        raise InvalidParameterError("points", host.shape, "must have shape (..., 3) [m]")
    if not np.all(np.isfinite(host)):
        raise InvalidParameterError("points", "<non-finite values>", "must be finite [m]")
    out_shape = host.shape[:-1]
    host = host.reshape(-1, 3)
    if frame == "scanner":
        host = transducer.to_transducer_frame(host)
    elif frame != "transducer":
        raise InvalidParameterError("frame", frame, "must be 'transducer' or 'scanner'")
    return xp.asarray(host, dtype=xp.float32), host, out_shape


# ------------------------------------------------------------------------------ pressure
def pressure(
    transducer: Transducer,
    drive: Any,
    where: Any,
    medium: Any = None,
    *,
    points_per_wavelength: float = DEFAULT_POINTS_PER_WAVELENGTH,
    far_field: bool = True,
    far_field_tolerance: float = DEFAULT_FAR_FIELD_TOLERANCE,
    chunk: int | None = None,
    progress: bool = False,
    frame: str = "transducer",
    return_info: bool = False,
) -> Any:
    """Complex pressure amplitude of a driven transducer on a grid or at points.

    ``P(x) = (i omega rho / 2 pi) int_S u_n exp(-i kappa r) / r dS`` (Rayleigh–Sommerfeld; see the
    module docstring for the sources, the far-field element model and the layered model), time
    convention ``p(x, t) = Re{P(x) exp(i omega t)}``.

    Parameters
    ----------
    transducer : Transducer
        The transducer (its frequency is the drive frequency).
    drive : array_like, shape (M,)
        Complex normal surface velocity amplitude of each element [m/s] (e.g. from
        :func:`fus.physics.drive.scale_to_power`).
    where : Grid or array_like, shape (..., 3)
        A :class:`~fus.physics.grid.Grid` (transducer frame) or field points [m] (numpy or cupy).
    medium : HomogeneousMedium, LayeredMedium, Tissue, str or None
        Propagation medium; default water at 20 C. The transducer radiates into its first layer.
    points_per_wavelength : float
        Patch size ``lambda / N`` of the discretisation (default 3, chosen by the convergence test
        in ``tests/test_field.py``).
    far_field : bool
        Use one far-field source per disc element where the point is beyond the element's switch
        distance (:func:`far_field_distance`); ``False`` always integrates over patches.
    far_field_tolerance : float
        Accuracy target of the far-field model, relative to the element's on-axis pressure, in
        (0, 1) (default :data:`DEFAULT_FAR_FIELD_TOLERANCE`).
    chunk : int, optional
        Points per chunk (default: about 1.5e9 patch-point pairs per chunk on the CPU, 4e10 on a
        GPU, at most 4 Mi points).
    progress : bool
        Show a tqdm progress bar.
    frame : {"transducer", "scanner"}
        Frame of point arrays (grids are always in the transducer frame).
    return_info : bool
        Also return a dict of facts (sources, patches, far-field share, time, backend).

    Returns
    -------
    ndarray of complex64
        ``P`` [Pa], shape ``grid.shape`` or ``points.shape[:-1]``, array of the active backend.
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    InvalidParameterError
        Bad drive shape, points behind the transducer, a transducer reaching past the first
        interface of a layered medium, non-positive sizes, or a grid whose output does not fit in
        the available memory (the message gives the sizes and what to change).
    """
    t0 = time.perf_counter()
    tol = _check_common(transducer, far_field_tolerance)
    u = _drive(transducer, drive)
    med = as_medium(medium)
    backend = get_backend()
    xp = backend.xp

    if isinstance(where, Grid):
        grid: Grid | None = where
        n_pts = grid.size
        out_shape: tuple[int, ...] = grid.shape
        _check_memory(n_pts, grid.shape, backend, "grid")
        _front_check(transducer, grid.corners(), "grid")

        def points(s: int, e: int) -> Any:
            return grid.points(s, e, xp=xp)

        bounds = grid.bounds
    else:
        pts_dev, pts_host, out_shape = _as_points(where, transducer, frame, xp)
        n_pts = int(pts_host.shape[0])
        _check_memory(n_pts, out_shape, backend, "points")
        _front_check(transducer, pts_host, "points")

        def points(s: int, e: int) -> Any:
            return pts_dev[s:e]

        def bounds(s: int, e: int) -> tuple[np.ndarray, np.ndarray]:
            blk = pts_host[s:e]
            return blk.min(axis=0), blk.max(axis=0)

    ev = _Evaluator(transducer, u, med, points_per_wavelength, far_field, tol, backend)
    chunk_n = _chunk_size(chunk, ev.patches.n_patches, backend)
    out = xp.zeros(n_pts, dtype=xp.complex64)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_pts, unit="pt", unit_scale=True, desc=f"field {transducer.name}", leave=False)
    try:
        ev.run(n_pts, chunk_n, points, bounds, out, bar)
    finally:
        if bar is not None:
            bar.close()
    result = out.reshape(out_shape)
    elapsed = time.perf_counter() - t0
    info = {
        "backend": backend.name,
        "n_points": n_pts,
        "n_elements": transducer.n_elements,
        "n_patches": ev.patches.n_patches,
        "points_per_wavelength": float(points_per_wavelength),
        "far_field": bool(far_field),
        "far_field_tolerance": tol,
        "far_field_switch_distance_mm": None
        if not np.isfinite(ev.r_switch).any()
        else float(np.min(ev.r_switch) * 1e3),
        "pairs_patch": ev.pairs_patch,
        "pairs_far_field": ev.pairs_far,
        "chunk": chunk_n,
        "medium": med.name,
        "seconds": elapsed,
    }
    logger.info(
        "field of %s: %d points, %d patches, %.3g patch pairs + %.3g far-field pairs, %.2f s on %s",
        transducer.name, n_pts, ev.patches.n_patches, ev.pairs_patch, ev.pairs_far, elapsed, backend.name,
    )
    return (result, info) if return_info else result


def transfer_matrix(
    transducer: Transducer,
    points: Any,
    medium: Any = None,
    *,
    points_per_wavelength: float = DEFAULT_POINTS_PER_WAVELENGTH,
    far_field: bool = True,
    far_field_tolerance: float = DEFAULT_FAR_FIELD_TOLERANCE,
    frame: str = "transducer",
) -> np.ndarray:
    """Element-to-point transfer matrix of the full field model [Pa per m/s].

    ``H[j, m]`` is the pressure at point j when element m vibrates with unit normal velocity and
    the others are still, computed exactly as :func:`pressure` does (patches or far-field element
    sources, homogeneous or layered medium). ``pressure(t, u, points) == H @ u`` to float32
    rounding. Pass it to :func:`fus.physics.drive.ebbini_cain` (``transfer=``) to synthesise
    control-point pressures that hold in this model, not only in the point-source model.

    Parameters
    ----------
    transducer : Transducer
    points : array_like, shape (J, 3)
        Control points [m].
    medium, points_per_wavelength, far_field, far_field_tolerance, frame
        As in :func:`pressure`.

    Returns
    -------
    ndarray, shape (J, M), complex128 (numpy)
    """
    tol = _check_common(transducer, far_field_tolerance)
    med = as_medium(medium)
    backend = get_backend()
    xp = backend.xp
    pts_dev, pts_host, _shape = _as_points(points, transducer, frame, xp)
    if pts_host.shape[0] < 1:
        raise InvalidParameterError("points", pts_host.shape, "needs at least one point")
    _front_check(transducer, pts_host, "points")
    m = transducer.n_elements
    ev = _Evaluator(transducer, np.ones(m, dtype=np.complex128), med, points_per_wavelength, far_field, tol, backend)
    n = int(pts_host.shape[0])
    h = np.empty((n, m), dtype=np.complex128)
    col = xp.zeros(n, dtype=xp.complex64)
    chunk_n = _chunk_size(None, ev.patches.n_patches, backend)

    def bounds(s: int, e: int) -> tuple[np.ndarray, np.ndarray]:
        blk = pts_host[s:e]
        return blk.min(axis=0), blk.max(axis=0)

    onehot = np.zeros(m, dtype=bool)
    for e in range(m):
        onehot[:] = False
        onehot[e] = True
        ev.set_active(onehot)
        col[:] = 0
        ev.run(n, chunk_n, lambda s, e_: pts_dev[s:e_], bounds, col)
        h[:, e] = asnumpy(col)
    return h


# ------------------------------------------------------------------------------ focusing
def focus_phases_in_medium(transducer: Transducer, target: Any, medium: Any = None) -> np.ndarray:
    """Unit-modulus element weights focusing on ``target`` [m] through ``medium`` (its layers included).

    Homogeneous medium: :func:`fus.physics.drive.focus_phases` with the medium's sound speed
    (``exp(+i k r_m)``, r_m from the element centre). Layered medium, target beyond the first
    interface: ``exp(+i phi_m)`` with ``phi_m`` the straight-ray phase from element centre m through
    the layers (the model of :func:`pressure`), so all element contributions arrive in phase.

    Parameters
    ----------
    transducer : Transducer
    target : array_like, shape (3,)
        Focus target, transducer frame [m].
    medium : HomogeneousMedium, LayeredMedium, Tissue, str or None
        Default water at 20 C.

    Returns
    -------
    ndarray, shape (M,), complex128

    Raises
    ------
    InvalidParameterError
        A target behind (or on the plane of) any element, or a transducer beyond the first
        interface of a layered medium. A target outside the useful steering range is logged as a
        warning (see :func:`fus.physics.drive.focus_phases`).
    """
    med = as_medium(medium)
    w = focus_phases(transducer, target, med.source_medium.sound_speed)
    if not isinstance(med, LayeredMedium):
        return w
    t = np.asarray(target, dtype=np.float64).reshape(3)
    f = transducer.frequency
    lay = _Layers.of(med, f)
    j = int(med.layer_index(np.array([t[2]]))[0])
    if j == 0:
        return w
    c = transducer.centres
    if np.any(c[:, 2] >= lay.z_interfaces[0]):
        raise InvalidParameterError(
            "medium", med.name, "the transducer must lie before the first interface (layer 0)"
        )
    r = np.linalg.norm(t - c, axis=1)
    b = lay.crossing[j] + lay.kappa[j] * (t[2] - lay.z_start[j])
    phi = (r / (t[2] - c[:, 2])) * (lay.kappa[0] * (lay.z_interfaces[0] - c[:, 2]) + b)
    return np.exp(1j * phi.real)


# ------------------------------------------------------------------------------ heat
def _abs_over_z(pressure_arr: Any, alpha_abs: Any, impedance: Any) -> Any:
    xp = array_module(pressure_arr)
    p = xp.asarray(pressure_arr)
    if xp.iscomplexobj(p):
        mag2 = p.real.astype(xp.float32) ** 2 + p.imag.astype(xp.float32) ** 2
    else:
        mag2 = p.astype(xp.float32) ** 2
    return (mag2 * (alpha_abs / impedance)).astype(xp.float32)


def heat_source(pressure_field: Any, medium: Any, where: Any = None, *, frequency: float) -> Any:
    """Absorbed acoustic power density ``Q = 2 alpha_abs I = alpha_abs |p|^2 / (rho c)`` [W/m^3].

    Plane-wave intensity ``I = |p|^2 / (2 rho c)`` and the local tissue's amplitude absorption
    coefficient ``alpha_abs`` [Np/m] (:meth:`HomogeneousMedium.absorption`).

    Parameters
    ----------
    pressure_field : array_like
        Complex (or real magnitude) pressure amplitude [Pa] (numpy or cupy).
    medium : HomogeneousMedium, LayeredMedium, Tissue or str
        The medium the pressure was computed in.
    where : Grid or array_like, shape (..., 3), optional
        Where the pressure values are (needed for a layered medium): a grid of the same shape, or
        the points [m] (transducer frame).
    frequency : float
        [Hz].

    Returns
    -------
    ndarray of float32
        Q [W/m^3], same shape and array module as ``pressure_field``.
    """
    med = as_medium(medium)
    xp = array_module(pressure_field)
    p = xp.asarray(pressure_field)
    if not isinstance(med, LayeredMedium):
        return _abs_over_z(p, np.float32(med.absorption(frequency)), np.float32(med.impedance))
    if where is None:
        raise InvalidParameterError("where", None, "a layered medium needs the grid or points of the pressure")
    if isinstance(where, Grid):
        if tuple(p.shape) != where.shape:
            raise InvalidParameterError("pressure", tuple(p.shape), f"must have the grid's shape {where.shape}")
        # float32 z, as the field computation classified the points
        z = xp.asarray(where.axes()[2], dtype=xp.float32)
        idx = med.layer_index(z)[None, None, :]
    else:
        pts = xp.asarray(where, dtype=xp.float32)
        if pts.shape[:-1] != p.shape or pts.shape[-1] != 3:
            raise InvalidParameterError("where", tuple(pts.shape), f"must have shape {tuple(p.shape) + (3,)}")
        idx = med.layer_index(pts[..., 2])
    alpha = xp.asarray([m.absorption(frequency) for m in med.layers], dtype=xp.float32)[idx]
    imp = xp.asarray(med.impedances(), dtype=xp.float32)[idx]
    return _abs_over_z(p, alpha, imp)


def heat_source_labels(pressure_field: Any, labels: Any, *, frequency: float) -> Any:
    """``Q = alpha_abs |p|^2 / (rho c)`` [W/m^3] with the tissue of each voxel given by its label.

    Parameters
    ----------
    pressure_field : array_like
        Pressure amplitude [Pa] (numpy or cupy).
    labels : array_like of int, same shape
        :attr:`fus.physics.tissues.Tissue.label` of each voxel.
    frequency : float
        [Hz].

    Returns
    -------
    ndarray of float32
        Q [W/m^3].

    Raises
    ------
    InvalidParameterError
        Shape mismatch or a label that is not in the tissue table.
    """
    xp = array_module(pressure_field)
    p = xp.asarray(pressure_field)
    lab = xp.asarray(labels)
    if tuple(lab.shape) != tuple(p.shape):
        raise InvalidParameterError("labels", tuple(lab.shape), f"must have the pressure's shape {tuple(p.shape)}")
    if lab.dtype.kind not in "iu":
        raise InvalidParameterError("labels", str(lab.dtype), "must be integer tissue labels")
    tissues = {t.label: HomogeneousMedium(t) for t in TISSUES.values()}
    top = max(tissues) + 1
    present = np.unique(asnumpy(lab))
    bad = [int(v) for v in present if int(v) not in tissues]
    if bad:
        raise InvalidParameterError(
            "labels", bad[:5], f"unknown tissue label(s); known: {sorted(tissues)}"
        )
    alpha = np.zeros(top, dtype=np.float32)
    imp = np.ones(top, dtype=np.float32)
    for lbl, m in tissues.items():
        alpha[lbl] = m.absorption(frequency)
        imp[lbl] = m.impedance
    return _abs_over_z(p, xp.asarray(alpha)[lab], xp.asarray(imp)[lab])

