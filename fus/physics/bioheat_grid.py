r"""Finite-volume discretisation of the Pennes equation on a regular grid, for the explicit kernel.

.. math::

    \rho c \, \partial_t T = \nabla \cdot (k \nabla T) - w_b c_b (T - T_a) + Q

(Pennes 1948) on a regular 3-D grid of spacing ``(h0, h1, h2)`` [m], discretised by finite volumes:
voxel ``i`` exchanges heat with each face neighbour ``j`` through the face conductance
``G_ij = k_ij / h^2`` with the harmonic mean ``k_ij = 2 k_i k_j / (k_i + k_j)`` (the series
conductance of two half-voxels, so the flux is continuous across a tissue interface), and time is
advanced by forward Euler (:func:`fus.kernels.bioheat_step`):

.. math::

    T_i' = T_i + \frac{\Delta t}{(\rho c)_i} \Big[ \sum_j G_{ij} (T_j - T_i)
           - (w_b c_b)_i (T_i - T_a) + Q_i + G^{fix}_i (T^{fix} - T_i) \Big].

Boundary conditions, per face of the grid (:func:`parse_boundary`): *zero flux* (insulated), or a
*fixed temperature* imposed on the grid's outer face, half a voxel beyond the boundary voxel's
centre (``G^{fix} = 2 k_i / h^2``).

Stability. The step is monotone (a convex combination of the old temperatures plus sources, so it
obeys a discrete maximum principle and cannot oscillate or diverge) when, in every voxel,

.. math::

    \Delta t \le \frac{(\rho c)_i}{\sum_j G_{ij} + G^{fix}_i + (w_b c_b)_i},

which :func:`stable_time_step` returns; :func:`bioheat_coefficients` refuses a larger ``dt``.

Everything constant in time is folded once into per-face / per-voxel float32 arrays
(:class:`BioheatCoefficients`), so one kernel step reads 7 arrays and writes one.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, Union

import numpy as np

from fus.backend import get_backend
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.kernels._validate import count, host_or_device_dtype
from fus.kernels.bioheat import bioheat_buffer

__all__ = [
    "BioheatCoefficients",
    "Boundary",
    "FACES",
    "bioheat_coefficients",
    "parse_boundary",
    "stable_time_step",
]

#: Names of the six grid faces, in the order of a boundary sequence: low / high end of axes 0, 1, 2.
FACES: tuple[str, ...] = ("0-", "0+", "1-", "1+", "2-", "2+")

_ZERO_FLUX_WORDS = ("zero_flux", "zero-flux", "flux", "insulated", "neumann", "adiabatic")

#: A boundary specification: None (zero flux everywhere), a mapping face -> condition, or six conditions.
Boundary = Union[None, Mapping[str, Any], Sequence[Any]]


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _volume(name: str, x: Any, xp: Any, shape: tuple[int, ...] | None, *, allow_scalar: bool = True) -> Any:
    """``x`` as a float64 array of the backend with ``shape`` (a scalar is broadcast)."""
    dtype = host_or_device_dtype(name, x)
    if dtype.kind not in "fiu":
        raise InvalidParameterError(name, f"dtype {dtype}", "must be a real numeric array or number")
    arr = xp.asarray(x, dtype=np.float64)
    if arr.ndim == 0 and allow_scalar and shape is not None:
        return xp.full(shape, float(arr), dtype=np.float64)
    if arr.ndim != 3:
        raise InvalidParameterError(name, f"array of shape {tuple(arr.shape)}", "must be a 3-D volume")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise InvalidParameterError(name, f"array of shape {tuple(arr.shape)}", f"must have shape {tuple(shape)}")
    return arr


def _check_range(name: str, arr: Any, xp: Any, *, positive: bool, unit: str) -> None:
    finite = bool(xp.isfinite(arr).all())
    if not finite:
        bad = int((~xp.isfinite(arr)).sum())
        raise InvalidParameterError(name, f"{bad} non-finite value(s)", f"must be finite [{unit}]")
    lo = float(arr.min()) if arr.size else 0.0
    if positive and lo <= 0:
        where = tuple(int(v) for v in np.unravel_index(int(xp.argmin(arr)), arr.shape))
        raise InvalidParameterError(name, f"minimum {lo:g} at voxel {where}", f"must be > 0 everywhere [{unit}]")
    if not positive and lo < 0:
        where = tuple(int(v) for v in np.unravel_index(int(xp.argmin(arr)), arr.shape))
        raise InvalidParameterError(name, f"minimum {lo:g} at voxel {where}", f"must be >= 0 everywhere [{unit}]")


def _spacing(spacing: Any) -> tuple[float, float, float]:
    if isinstance(spacing, (int, float, np.integer, np.floating)) and not isinstance(spacing, bool):
        h = finite_scalar("spacing", spacing, positive=True)
        return (h, h, h)
    try:
        items = [float(v) for v in spacing]
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError("spacing", spacing, "must be one spacing or three (h0, h1, h2) [m]") from exc
    if len(items) != 3:
        raise InvalidParameterError("spacing", spacing, "must be one spacing or three (h0, h1, h2) [m]")
    for v in items:
        if not math.isfinite(v) or v <= 0:
            raise InvalidParameterError("spacing", spacing, "every spacing must be finite and > 0 [m]")
    return (items[0], items[1], items[2])


def parse_boundary(boundary: Boundary) -> tuple[float | None, ...]:
    """Six entries in :data:`FACES` order: None for zero flux, or the fixed temperature [C]."""
    if boundary is None:
        return (None,) * 6
    if isinstance(boundary, Mapping):
        unknown = [k for k in boundary if k not in FACES]
        if unknown:
            raise InvalidParameterError(
                "boundary", unknown, f"unknown face name(s); faces are {', '.join(FACES)}"
            )
        entries = [boundary.get(f) for f in FACES]
    elif isinstance(boundary, (str, bytes)):
        raise InvalidParameterError("boundary", boundary, f"must be a mapping face -> condition or 6 conditions ({FACES})")
    else:
        entries = list(boundary)
        if len(entries) != 6:
            raise InvalidParameterError("boundary", boundary, f"must hold 6 conditions, one per face {FACES}")
    out: list[float | None] = []
    for face, e in zip(FACES, entries):
        if e is None or (isinstance(e, str) and e.strip().lower() in _ZERO_FLUX_WORDS):
            out.append(None)
            continue
        if isinstance(e, str):
            raise InvalidParameterError(
                f"boundary[{face}]", e, "must be 'zero_flux' (or None) or a fixed temperature [C]"
            )
        t = finite_scalar(f"boundary[{face}]", e)
        if t < -50 or t > 150:
            raise InvalidParameterError(f"boundary[{face}]", e, "fixed temperature out of range [-50, 150] C")
        out.append(t)
    return tuple(out)


def _f32(x: Any) -> Any:
    """``x`` copied into a float32 buffer of the active backend (aligned, as the kernel likes it)."""
    out = bioheat_buffer(tuple(x.shape))
    out[...] = x
    return out


def _harmonic(k1: Any, k2: Any, xp: Any) -> Any:
    den = k1 + k2
    safe = xp.where(den > 0, den, 1.0)
    return xp.where(den > 0, 2.0 * k1 * k2 / safe, 0.0)


def _conductances(k: Any, h: tuple[float, float, float], xp: Any) -> tuple[Any, Any, Any, Any]:
    """Face conductances along each axis (float64; 0 on the last voxel of the axis) and their
    per-voxel sum [W/m^3/K]."""
    gs = []
    total = xp.zeros(k.shape, dtype=np.float64)
    for axis in range(3):
        g = xp.zeros(k.shape, dtype=np.float64)
        n = k.shape[axis]
        if n > 1:
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis] = slice(0, n - 1)
            hi[axis] = slice(1, n)
            g[tuple(lo)] = _harmonic(k[tuple(lo)], k[tuple(hi)], xp) / h[axis] ** 2
            total[tuple(lo)] += g[tuple(lo)]
            total[tuple(hi)] += g[tuple(lo)]
        gs.append(g)
    return gs[0], gs[1], gs[2], total


def _fixed(k: Any, h: tuple[float, float, float], bc: tuple[float | None, ...], xp: Any) -> tuple[Any, Any]:
    """Conductance to fixed-temperature faces (2 k / h^2 on the boundary voxels) and G * T_fix."""
    gfix = xp.zeros(k.shape, dtype=np.float64)
    gtfix = xp.zeros(k.shape, dtype=np.float64)
    for idx, temp in enumerate(bc):
        if temp is None:
            continue
        axis, high = divmod(idx, 2)
        sl = [slice(None)] * 3
        sl[axis] = slice(k.shape[axis] - 1, k.shape[axis]) if high else slice(0, 1)
        g = 2.0 * k[tuple(sl)] / h[axis] ** 2
        gfix[tuple(sl)] += g
        gtfix[tuple(sl)] += g * temp
    return gfix, gtfix


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
class BioheatCoefficients:
    """The time-invariant coefficient arrays of one grid, medium, boundary and time step.

    Build with :func:`bioheat_coefficients`; add a heat source with :meth:`with_source`; advance
    with :func:`fus.kernels.bioheat_step`. Arrays are float32, C-contiguous, of the backend that built them.

    Attributes
    ----------
    shape : tuple of int
        Grid shape (n0, n1, n2).
    spacing : tuple of float
        Voxel spacing (h0, h1, h2) [m].
    dt : float
        Time step [s].
    dt_max : float
        Largest monotone (stable) step for this medium and boundary [s].
    arterial_temperature : float
        T_a [C].
    boundary : tuple
        Per face (:data:`FACES` order): None (zero flux) or the fixed temperature [C].
    g0, g1, g2 : array
        Face conductances k_face / h^2 to the +1 neighbour along axes 0, 1, 2 [W/m^3/K].
    a : array
        dt / (rho c) [m^3 K / J].
    p : array
        dt (w_b c_b + G_fix) / (rho c) [1].
    s : array
        dt (w_b c_b T_a + G_fix T_fix + Q) / (rho c) [K]; without a source Q = 0.
    source_power : float
        Integral of the heat source Q over the grid [W] (0 without a source).
    """

    def __init__(self, *, shape, spacing, dt, dt_max, arterial_temperature, boundary, g0, g1, g2, a, p, s0, s=None, source_power=0.0):
        self.shape = tuple(int(n) for n in shape)
        self.spacing = tuple(float(h) for h in spacing)
        self.dt = float(dt)
        self.dt_max = float(dt_max)
        self.arterial_temperature = float(arterial_temperature)
        self.boundary = tuple(boundary)
        self.g0, self.g1, self.g2, self.a, self.p = g0, g1, g2, a, p
        self._s0 = s0
        self.s = s0 if s is None else s
        self.source_power = float(source_power)

    @property
    def size(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape, dtype=np.int64))

    def with_source(self, source: Any, scale: float = 1.0) -> "BioheatCoefficients":
        """The same coefficients with the heat source ``scale * source`` [W/m^3].

        Parameters
        ----------
        source : array_like, shape ``self.shape``, or None
            Absorbed power density Q [W/m^3]; finite. None means no source.
        scale : float
            Factor applied to ``source`` (e.g. the drive power relative to the one ``source`` was
            computed for), finite and >= 0.

        Returns
        -------
        BioheatCoefficients
            A new object sharing every array but ``s``.
        """
        backend = get_backend()
        xp = backend.xp
        f = finite_scalar("scale", scale, nonnegative=True)
        if source is None or f == 0.0:
            s = self._s0
            power = 0.0
        else:
            q = _volume("source", source, xp, self.shape, allow_scalar=True)
            if not bool(xp.isfinite(q).all()):
                raise InvalidParameterError("source", f"{int((~xp.isfinite(q)).sum())} non-finite value(s)", "must be finite [W/m^3]")
            s = _f32(self._s0 + self.a * (f * q))
            power = f * float(q.sum()) * float(np.prod(self.spacing))
        return BioheatCoefficients(
            shape=self.shape, spacing=self.spacing, dt=self.dt, dt_max=self.dt_max,
            arterial_temperature=self.arterial_temperature, boundary=self.boundary,
            g0=self.g0, g1=self.g1, g2=self.g2, a=self.a, p=self.p, s0=self._s0, s=s,
            source_power=power,
        )

    def with_dt(self, dt: float) -> "BioheatCoefficients":
        """The same medium, boundary and source with another time step ``dt`` [s].

        ``a``, ``p`` and ``s`` are proportional to dt and are rescaled; the face conductances are
        shared. Raises :class:`InvalidParameterError` for dt <= 0 or above :attr:`dt_max`.
        """
        step = finite_scalar("dt", dt, positive=True)
        if step > self.dt_max * (1 + 1e-12):
            raise InvalidParameterError("dt", dt, f"exceeds the stable (monotone) limit {self.dt_max:.6g} s of this grid and medium")
        r = step / self.dt

        def scaled(x: Any) -> Any:
            return _f32(x * np.float32(r)) if r != 1.0 else x

        s0 = scaled(self._s0)
        return BioheatCoefficients(
            shape=self.shape, spacing=self.spacing, dt=step, dt_max=self.dt_max,
            arterial_temperature=self.arterial_temperature, boundary=self.boundary,
            g0=self.g0, g1=self.g1, g2=self.g2, a=scaled(self.a), p=scaled(self.p), s0=s0,
            s=s0 if self.s is self._s0 else scaled(self.s), source_power=self.source_power,
        )

    def __repr__(self) -> str:
        return (
            f"BioheatCoefficients(shape={self.shape}, spacing={self.spacing}, dt={self.dt:g} s, "
            f"dt_max={self.dt_max:g} s, boundary={self.boundary})"
        )


def stable_time_step(
    rho_c: Any,
    conductivity: Any,
    perfusion: Any,
    spacing: Any,
    boundary: Boundary = None,
) -> float:
    """Largest monotone (stable) forward-Euler step of the discretised Pennes equation [s].

    ``min_i (rho c)_i / (sum_j G_ij + G_fix_i + (w_b c_b)_i)`` (see the module docstring); ``inf``
    when nothing couples or cools any voxel.

    Parameters
    ----------
    rho_c : array_like, 3-D
        Volumetric heat capacity rho c [J/m^3/K], > 0.
    conductivity : array_like, 3-D, or float
        Thermal conductivity k [W/m/K], >= 0.
    perfusion : array_like, 3-D, or float
        Pennes perfusion coefficient w_b c_b [W/m^3/K], >= 0.
    spacing : float or (h0, h1, h2)
        Voxel spacing [m].
    boundary : mapping or sequence, optional
        Per face: ``"zero_flux"``/None or a fixed temperature [C] (see :func:`bioheat_coefficients`).

    Returns
    -------
    float
        dt_max [s].
    """
    xp = get_backend().xp
    rc, k, w, h, bc = _validated_medium(rho_c, conductivity, perfusion, spacing, boundary, xp)
    _, _, _, gsum = _conductances(k, h, xp)
    gfix, _ = _fixed(k, h, bc, xp)
    return _dt_max(rc, gsum + gfix + w, xp)


def _dt_max(rc: Any, rate: Any, xp: Any) -> float:
    rmax = rate / rc
    worst = float(rmax.max())
    return math.inf if worst <= 0 else 1.0 / worst


def _validated_medium(rho_c, conductivity, perfusion, spacing, boundary, xp):
    rc = _volume("rho_c", rho_c, xp, None, allow_scalar=False)
    shape = tuple(int(n) for n in rc.shape)
    count("rho_c", int(np.prod(shape, dtype=np.int64)), minimum=1)
    k = _volume("conductivity", conductivity, xp, shape)
    w = _volume("perfusion", perfusion, xp, shape)
    _check_range("rho_c", rc, xp, positive=True, unit="J/m^3/K")
    _check_range("conductivity", k, xp, positive=False, unit="W/m/K")
    _check_range("perfusion", w, xp, positive=False, unit="W/m^3/K")
    return rc, k, w, _spacing(spacing), parse_boundary(boundary)


def bioheat_coefficients(
    rho_c: Any,
    conductivity: Any,
    perfusion: Any,
    spacing: Any,
    dt: float,
    *,
    arterial_temperature: float = 37.0,
    boundary: Boundary = None,
    source: Any = None,
) -> BioheatCoefficients:
    """Fold medium, grid, boundary and time step into the arrays one explicit step reads.

    Parameters
    ----------
    rho_c : array_like, shape (n0, n1, n2)
        Volumetric heat capacity rho c [J/m^3/K]; finite and > 0 everywhere.
    conductivity : array_like, same shape, or float
        Thermal conductivity k [W/m/K]; finite and >= 0.
    perfusion : array_like, same shape, or float
        Pennes perfusion coefficient w_b c_b [W/m^3/K]; finite and >= 0.
    spacing : float or (h0, h1, h2)
        Voxel spacing along the array axes [m], > 0.
    dt : float
        Time step [s]; > 0 and at most :func:`stable_time_step` (a larger step raises).
    arterial_temperature : float
        Arterial blood temperature T_a [C]. Default 37.
    boundary : mapping or sequence, optional
        Condition per grid face: a mapping with keys among :data:`FACES` (``"0-"``, ``"0+"``,
        ``"1-"``, ``"1+"``, ``"2-"``, ``"2+"``: low / high end of array axis 0, 1, 2), or a
        sequence of six in that order. Each is ``"zero_flux"`` (or None; the default) or a fixed
        temperature [C] imposed on the grid's outer face.
    source : array_like, same shape, optional
        Heat source Q [W/m^3] (see :meth:`BioheatCoefficients.with_source`).

    Returns
    -------
    BioheatCoefficients

    Raises
    ------
    InvalidParameterError
        Non-3-D or mismatched shapes, non-finite values, rho_c <= 0 (zero heat capacity),
        conductivity < 0, perfusion < 0, bad spacing or boundary, dt <= 0 or above the stable
        limit (the message gives the limit).
    """
    backend = get_backend()
    xp = backend.xp
    rc, k, w, h, bc = _validated_medium(rho_c, conductivity, perfusion, spacing, boundary, xp)
    ta = finite_scalar("arterial_temperature", arterial_temperature)
    step = finite_scalar("dt", dt, positive=True)
    g0, g1, g2, gsum = _conductances(k, h, xp)
    gfix, gtfix = _fixed(k, h, bc, xp)
    dt_max = _dt_max(rc, gsum + gfix + w, xp)
    if step > dt_max * (1 + 1e-12):
        raise InvalidParameterError(
            "dt", dt, f"exceeds the stable (monotone) limit {dt_max:.6g} s of this grid and medium"
        )
    a = step / rc

    coeffs = BioheatCoefficients(
        shape=rc.shape, spacing=h, dt=step, dt_max=dt_max, arterial_temperature=ta, boundary=bc,
        g0=_f32(g0), g1=_f32(g1), g2=_f32(g2), a=_f32(a), p=_f32(a * (w + gfix)),
        s0=_f32(a * (w * ta + gtfix)),
    )
    return coeffs if source is None else coeffs.with_source(source)
