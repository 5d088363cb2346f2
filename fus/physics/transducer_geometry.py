"""Transducer geometry: the :class:`Transducer` container and its builders.

Frames
------
Transducer frame: origin at the geometric focus, +z along the beam. A spherical cap of radius of
curvature ``R`` therefore has its elements on the sphere ``|x| = R`` with ``z < 0``, its apex at
``(0, 0, -R)``, and element normals pointing toward the origin. The 4x4 rigid transform
``Transducer.to_scanner`` maps transducer-frame coordinates [m] to the scanner (patient) frame
[m]: ``x_scanner = T[:3, :3] @ x + T[:3, 3]``.

Elements
--------
Two element shapes are modelled:

``"disc"``
    A flat circular disc of diameter ``d`` centred on its element centre, lying in the plane
    normal to its element normal (for a cap array: the plane tangent to the cap at the centre).
    Area ``pi d^2 / 4``.
``"bowl"``
    A spherical bowl (a single focused element). Its element *centre* is the bowl's apex, its
    normal points from the apex to the centre of curvature (at distance
    ``element_radius_of_curvature``), and its *diameter* is the diameter of its projected rim
    (the aperture). Area ``2 pi R h`` with the bowl depth ``h = R - sqrt(R^2 - (d/2)^2)``.

All lengths are in metres and frequencies in hertz.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.spatial import cKDTree

from fus.errors import InvalidParameterError

__all__ = [
    "Transducer",
    "spherical_cap_array",
    "cap256",
    "bowl",
    "piston",
    "check_overlap",
    "GOLDEN_ANGLE",
    "CAP256_N_ELEMENTS",
    "CAP256_ELEMENT_DIAMETER",
    "CAP256_RADIUS_OF_CURVATURE",
    "CAP256_APERTURE",
    "CAP256_FREQUENCY",
]

logger = logging.getLogger("fus.physics.transducer")

#: Golden angle [rad], pi (3 - sqrt 5) ~ 137.5 degrees, the azimuth increment of the Vogel spiral.
GOLDEN_ANGLE: float = math.pi * (3.0 - math.sqrt(5.0))

# The cap256 preset. These are *assumed* round numbers for a Sonalleve-class (Philips / Profound
# Medical) 256-element spherical-cap array, not a vendor's drawing: 256 circular elements of
# 6.6 mm diameter on a cap of 140 mm radius of curvature and 140 mm projected aperture, driven at
# 1.2 MHz, laid out on the golden-angle spiral of this module.
CAP256_N_ELEMENTS: int = 256
CAP256_ELEMENT_DIAMETER: float = 6.6e-3
CAP256_RADIUS_OF_CURVATURE: float = 140e-3
CAP256_APERTURE: float = 140e-3
CAP256_FREQUENCY: float = 1.2e6

# Normals must have unit length to this tolerance; rigid transforms must be orthonormal to it.
_UNIT_TOL = 1e-9

ElementShape = Literal["disc", "bowl"]


def _positive_finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, value, "must be a real number") from None
    if not math.isfinite(v) or v <= 0.0:
        raise InvalidParameterError(name, value, "must be finite and > 0")
    return v


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def check_overlap(
    centres: np.ndarray, diameters: np.ndarray, *, name: str = "centres"
) -> None:
    """Refuse elements whose centres are closer than their diameter.

    Two circular elements ``i`` and ``j`` overlap when the (straight-line) distance between their
    centres is smaller than ``(d_i + d_j) / 2``. For discs tangent to a common sphere this
    criterion is sufficient for non-intersection: a disc of radius ``a`` on a sphere of radius
    ``R`` stays inside the cone of half-angle ``atan(a / R)`` around its centre, and a chord of
    ``2 a`` subtends more than twice that angle.

    Parameters
    ----------
    centres : ndarray, shape (M, 3)
        Element centres [m].
    diameters : ndarray, shape (M,)
        Element diameters [m].
    name : str
        Parameter name used in the error message.

    Raises
    ------
    InvalidParameterError
        When any pair overlaps; the message names the closest pair (relative to its diameter),
        its distance and the number of overlapping pairs.
    """
    centres = np.asarray(centres, dtype=np.float64)
    diameters = np.asarray(diameters, dtype=np.float64)
    m = centres.shape[0]
    if m < 2:
        return
    tree = cKDTree(centres)
    pairs = tree.query_pairs(float(diameters.max()), output_type="ndarray")
    if pairs.size == 0:
        return
    i, j = pairs[:, 0], pairs[:, 1]
    dist = np.linalg.norm(centres[i] - centres[j], axis=1)
    need = 0.5 * (diameters[i] + diameters[j])
    bad = dist < need * (1.0 - 1e-12)
    if not np.any(bad):
        return
    ratio = np.where(bad, dist / need, np.inf)
    k = int(np.argmin(ratio))
    a, b = int(min(i[k], j[k])), int(max(i[k], j[k]))
    raise InvalidParameterError(
        name,
        f"<{m} elements>",
        f"elements {a} and {b} overlap: centre distance {dist[k] * 1e3:.4g} mm < element "
        f"diameter {need[k] * 1e3:.4g} mm ({int(bad.sum())} overlapping pair(s)); use fewer or "
        f"smaller elements, or a larger aperture",
    )


@dataclass(frozen=True, eq=False)
class Transducer:
    """An ultrasound transducer: a set of circular elements and a drive frequency.

    Instances are immutable: the arrays are copied and marked read-only. Use
    :meth:`with_transform` to place a transducer in the scanner frame.

    Parameters
    ----------
    centres : array_like, shape (M, 3)
        Element centres in the transducer frame [m] (for a ``"bowl"`` element: its apex).
    normals : array_like, shape (M, 3)
        Unit element normals, pointing into the propagation medium (toward the focus).
    diameters : array_like, shape (M,) or scalar
        Element diameters [m] (for a ``"bowl"`` element: the diameter of its projected rim).
    frequency : float
        Drive frequency [Hz].
    name : str
        A label used in reports and file headers.
    element_shape : {"disc", "bowl"}
        Shape of every element (see the module docstring).
    element_radius_of_curvature : float, optional
        Radius of curvature of each ``"bowl"`` element [m]; must be ``None`` for discs.
    radius_of_curvature : float, optional
        Radius of curvature of the array [m] when it has a geometric focus (the origin of the
        transducer frame); ``None`` for unfocused transducers (piston).
    aperture : float, optional
        Projected rim diameter of the array [m], when known.
    to_scanner : array_like, shape (4, 4)
        Rigid transform from the transducer frame to the scanner frame [m]. Default identity.

    Raises
    ------
    InvalidParameterError
        On inconsistent shapes, non-finite values, non-unit normals, non-positive sizes or
        frequency, a non-rigid ``to_scanner``, or overlapping elements.
    """

    centres: np.ndarray
    normals: np.ndarray
    diameters: np.ndarray
    frequency: float
    name: str = "transducer"
    element_shape: ElementShape = "disc"
    element_radius_of_curvature: float | None = None
    radius_of_curvature: float | None = None
    aperture: float | None = None
    to_scanner: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)

        centres = np.asarray(self.centres, dtype=np.float64)
        if centres.ndim != 2 or centres.shape[1] != 3 or centres.shape[0] < 1:
            raise InvalidParameterError("centres", centres.shape, "must have shape (M, 3), M >= 1")
        if not np.all(np.isfinite(centres)):
            raise InvalidParameterError("centres", "<non-finite values>", "must be finite")
        m = centres.shape[0]

        normals = np.asarray(self.normals, dtype=np.float64)
        if normals.shape != (m, 3):
            raise InvalidParameterError("normals", normals.shape, f"must have shape ({m}, 3)")
        if not np.all(np.isfinite(normals)):
            raise InvalidParameterError("normals", "<non-finite values>", "must be finite")
        norm_err = np.abs(np.linalg.norm(normals, axis=1) - 1.0)
        if np.any(norm_err > _UNIT_TOL):
            k = int(np.argmax(norm_err))
            raise InvalidParameterError(
                "normals", normals[k].tolist(), f"element {k}: normal must have unit length"
            )

        diameters = np.asarray(self.diameters, dtype=np.float64)
        if diameters.ndim == 0:
            diameters = np.full(m, float(diameters))
        if diameters.shape != (m,):
            raise InvalidParameterError("diameters", diameters.shape, f"must have shape ({m},)")
        bad = ~np.isfinite(diameters) | (diameters <= 0.0)
        if np.any(bad):
            k = int(np.argmax(bad))
            raise InvalidParameterError(
                "diameters", float(diameters[k]), f"element {k}: diameter must be finite and > 0"
            )

        frequency = _plausible_frequency(self.frequency)

        if self.element_shape not in ("disc", "bowl"):
            raise InvalidParameterError(
                "element_shape", self.element_shape, "must be 'disc' or 'bowl'"
            )
        erc = self.element_radius_of_curvature
        if self.element_shape == "bowl":
            if erc is None:
                raise InvalidParameterError(
                    "element_radius_of_curvature", None, "is required for 'bowl' elements"
                )
            erc = _positive_finite("element_radius_of_curvature", erc)
            if np.any(diameters > 2.0 * erc * (1.0 + 1e-12)):
                raise InvalidParameterError(
                    "diameters",
                    float(diameters.max()),
                    f"a bowl's aperture cannot exceed twice its radius of curvature ({2 * erc} m)",
                )
        elif erc is not None:
            raise InvalidParameterError(
                "element_radius_of_curvature", erc, "must be None for 'disc' elements"
            )

        roc = None if self.radius_of_curvature is None else _positive_finite(
            "radius_of_curvature", self.radius_of_curvature
        )
        aperture = None if self.aperture is None else _positive_finite("aperture", self.aperture)

        t = np.asarray(self.to_scanner, dtype=np.float64)
        if t.shape != (4, 4) or not np.all(np.isfinite(t)):
            raise InvalidParameterError("to_scanner", t.shape, "must be a finite 4x4 matrix")
        if not np.array_equal(t[3], [0.0, 0.0, 0.0, 1.0]):
            raise InvalidParameterError(
                "to_scanner", t[3].tolist(), "last row must be [0, 0, 0, 1]"
            )
        rot = t[:3, :3]
        if (
            np.max(np.abs(rot.T @ rot - np.eye(3))) > _UNIT_TOL
            or np.linalg.det(rot) <= 0.0
        ):
            raise InvalidParameterError(
                "to_scanner",
                rot.tolist(),
                "upper-left 3x3 block must be a proper rotation (rigid transform, no scaling)",
            )

        check_overlap(centres, diameters, name="centres")

        set_("centres", _readonly(centres))
        set_("normals", _readonly(normals))
        set_("diameters", _readonly(diameters))
        set_("frequency", frequency)
        set_("name", str(self.name))
        set_("element_radius_of_curvature", erc)
        set_("radius_of_curvature", roc)
        set_("aperture", aperture)
        set_("to_scanner", _readonly(t))

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_elements(self) -> int:
        """Number of elements M."""
        return int(self.centres.shape[0])

    @property
    def element_areas(self) -> np.ndarray:
        """Exact radiating area of each element [m^2], shape (M,).

        Disc: ``pi a^2``; bowl: ``2 pi R h`` with ``h = R - sqrt(R^2 - a^2)``, ``a = d / 2``.
        """
        a = 0.5 * self.diameters
        if self.element_shape == "disc":
            return np.pi * a * a
        r = float(self.element_radius_of_curvature)  # type: ignore[arg-type]
        return 2.0 * np.pi * r * bowl_depth(r, a)

    @property
    def geometric_focus(self) -> np.ndarray | None:
        """The geometric focus in the transducer frame (the origin) [m], or ``None``."""
        return None if self.radius_of_curvature is None else np.zeros(3)

    def wavelength(self, sound_speed: float) -> float:
        """Wavelength ``c / f`` [m] in a medium of the given sound speed [m/s]."""
        return _positive_finite("sound_speed", sound_speed) / self.frequency

    def wavenumber(self, sound_speed: float) -> float:
        """Wavenumber ``2 pi f / c`` [rad/m]."""
        return 2.0 * np.pi / self.wavelength(sound_speed)

    @property
    def scanner_centres(self) -> np.ndarray:
        """Element centres in the scanner frame [m], shape (M, 3)."""
        t = self.to_scanner
        return self.centres @ t[:3, :3].T + t[:3, 3]

    @property
    def scanner_normals(self) -> np.ndarray:
        """Element normals in the scanner frame, shape (M, 3)."""
        return self.normals @ self.to_scanner[:3, :3].T

    def to_transducer_frame(self, points_scanner: np.ndarray) -> np.ndarray:
        """Map points from the scanner frame to the transducer frame [m], shape (..., 3)."""
        p = np.asarray(points_scanner, dtype=np.float64)
        t = self.to_scanner
        return (p - t[:3, 3]) @ t[:3, :3]

    def with_transform(self, to_scanner: np.ndarray) -> "Transducer":
        """Return a copy placed in the scanner frame by the rigid 4x4 ``to_scanner`` [m]."""
        return dataclasses.replace(self, to_scanner=np.asarray(to_scanner, dtype=np.float64))

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable description (mm, MHz) for reports and sidecars."""
        d = np.unique(self.diameters)
        out: dict[str, Any] = {
            "name": self.name,
            "n_elements": self.n_elements,
            "frequency_MHz": self.frequency * 1e-6,
            "element_shape": self.element_shape,
            "element_diameter_mm": (d * 1e3).tolist() if d.size > 1 else float(d[0] * 1e3),
            "total_area_mm2": float(self.element_areas.sum() * 1e6),
            "radius_of_curvature_mm": None
            if self.radius_of_curvature is None
            else self.radius_of_curvature * 1e3,
            "aperture_mm": None if self.aperture is None else self.aperture * 1e3,
        }
        if self.element_shape == "bowl":
            erc = float(self.element_radius_of_curvature)  # type: ignore[arg-type]
            out["element_radius_of_curvature_mm"] = erc * 1e3
        t = self.to_scanner.copy()
        t[:3, 3] *= 1e3
        out["to_scanner_mm"] = t.tolist()
        return out

    def __repr__(self) -> str:
        roc = (
            ""
            if self.radius_of_curvature is None
            else f", R={self.radius_of_curvature * 1e3:g} mm"
        )
        return (
            f"Transducer(name={self.name!r}, M={self.n_elements}, shape={self.element_shape!r}, "
            f"f={self.frequency * 1e-6:g} MHz{roc})"
        )


def bowl_depth(radius_of_curvature: float, rim_radius: np.ndarray | float) -> np.ndarray:
    """Depth ``h = R - sqrt(R^2 - a^2)`` of a spherical bowl [m], computed without cancellation.

    Uses ``h = a^2 / (R + sqrt(R^2 - a^2))``, exact in exact arithmetic and accurate to a few ulp
    for shallow bowls.
    """
    a = np.asarray(rim_radius, dtype=np.float64)
    r = float(radius_of_curvature)
    return a * a / (r + np.sqrt(np.maximum(r * r - a * a, 0.0)))


# ---------------------------------------------------------------------------- builders
def _cap_points(radius: float, theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on the sphere |x| = R at polar angle theta from -z, and inward normals."""
    st = np.sin(theta)
    u = np.stack([st * np.cos(phi), st * np.sin(phi), -np.cos(theta)], axis=1)
    return radius * u, -u


def _golden_layout(n: int, theta_eff: float) -> tuple[np.ndarray, np.ndarray]:
    # Equal cap area per element: element i sits at the area-midpoint of the i-th of n equal-area
    # zones of the usable cap, 1 - cos(theta_i) = (i + 1/2) / n * (1 - cos(theta_eff)).
    i = np.arange(n, dtype=np.float64)
    one_minus_cos = (i + 0.5) / n * (1.0 - math.cos(theta_eff))
    theta = np.arccos(1.0 - one_minus_cos)
    phi = np.mod(i * GOLDEN_ANGLE, 2.0 * np.pi)
    return theta, phi


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    w = weights / weights.sum() * total
    counts = np.floor(w).astype(np.int64)
    order = np.argsort(-(w - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def _min_chord(radius: float, theta: np.ndarray, phi: np.ndarray) -> float:
    pts, _ = _cap_points(radius, theta, phi)
    if pts.shape[0] < 2:
        return math.inf
    d, _ = cKDTree(pts).query(pts, k=2)
    return float(d[:, 1].min())


def _rings_layout(n: int, theta_eff: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    # Concentric rings, equally spaced in polar angle, outermost ring at theta_eff; either a
    # centre element plus n_r rings, or n_r rings without a centre element. Elements are shared
    # between rings in proportion to ring circumference (largest remainder); alternate rings are
    # rotated by half an element pitch. The configuration with the largest minimum
    # centre-to-centre distance wins (ties: fewer rings).
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    max_rings = min(n, 2 * int(math.ceil(math.sqrt(n))) + 2)
    for with_centre in (True, False):
        n_ring_elems = n - 1 if with_centre else n
        if n_ring_elems == 0:
            cand = (math.inf, np.zeros(1), np.zeros(1))
            if best is None or cand[0] > best[0]:
                best = cand
            continue
        for n_r in range(1, min(max_rings, n_ring_elems) + 1):
            if with_centre:
                th = theta_eff * np.arange(1, n_r + 1) / n_r
            else:
                th = theta_eff * (np.arange(1, n_r + 1) - 0.5) / (n_r - 0.5)
            counts = _largest_remainder(np.sin(th), n_ring_elems)
            if np.any(counts == 0):
                continue
            thetas = [np.zeros(1)] if with_centre else []
            phis = [np.zeros(1)] if with_centre else []
            for j, (t, c) in enumerate(zip(th, counts)):
                thetas.append(np.full(c, t))
                phis.append(2.0 * np.pi * (np.arange(c) + 0.5 * (j % 2)) / c)
            theta = np.concatenate(thetas)
            phi = np.concatenate(phis)
            dmin = _min_chord(radius, theta, phi)
            if best is None or dmin > best[0] * (1.0 + 1e-12):
                best = (dmin, theta, phi)
    assert best is not None
    return best[1], best[2]


def _random_layout(
    n: int, theta_eff: float, radius: float, min_spacing: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    # Sequential random addition: candidates uniform in area on the usable cap, accepted when at
    # least min_spacing (chord) from every accepted centre.
    rng = np.random.default_rng(seed)
    cos_eff = math.cos(theta_eff)
    accepted = np.empty((n, 3))
    thetas = np.empty(n)
    phis = np.empty(n)
    count = 0
    attempts = 0
    max_attempts = 500 * n
    batch = 256
    while count < n and attempts < max_attempts:
        ct = rng.uniform(cos_eff, 1.0, batch)
        th = np.arccos(ct)
        ph = rng.uniform(0.0, 2.0 * np.pi, batch)
        pts, _ = _cap_points(radius, th, ph)
        for k in range(batch):
            attempts += 1
            if count:
                d2 = np.sum((accepted[:count] - pts[k]) ** 2, axis=1)
                if d2.min() < min_spacing * min_spacing:
                    continue
            accepted[count] = pts[k]
            thetas[count] = th[k]
            phis[count] = ph[k]
            count += 1
            if count == n:
                break
    if count < n:
        raise InvalidParameterError(
            "n_elements",
            n,
            f"random layout placed only {count} elements {min_spacing * 1e3:.4g} mm apart in "
            f"{attempts} attempts; use fewer elements, a smaller min_spacing or a larger aperture",
        )
    return thetas, phis


def spherical_cap_array(
    n_elements: int,
    radius_of_curvature: float,
    aperture: float,
    element_diameter: float,
    frequency: float,
    layout: Literal["golden", "rings", "random"] = "golden",
    seed: int | None = None,
    *,
    min_spacing: float | None = None,
    name: str | None = None,
) -> Transducer:
    """A phased array of flat circular elements on a spherical cap.

    Element centres lie on the sphere of radius ``R`` centred at the geometric focus (the origin),
    on the side ``z < 0``; normals point to the focus. An element of radius ``a`` fits when it lies
    inside the cone subtended at the focus by the rim, i.e. when its polar angle (from -z) is at
    most ``theta_eff = theta_max - atan(a / R)`` with ``theta_max = asin(aperture / (2 R))``.

    Layouts
    -------
    ``"golden"``
        Golden-angle (Vogel / Fibonacci) spiral with *equal cap surface area per element*: the
        usable cap (polar angle <= theta_eff, area ``2 pi R^2 (1 - cos theta_eff)``) is cut into
        ``n`` equal-area zones and element ``i`` sits at the area-midpoint of zone ``i``,
        ``1 - cos(theta_i) = (i + 1/2) / n * (1 - cos theta_eff)``, at azimuth
        ``i * pi (3 - sqrt 5)``. Aperiodic: no grating lobes from a regular pitch.
    ``"rings"``
        Concentric rings equally spaced in polar angle up to theta_eff, with elements shared in
        proportion to ring circumference; the ring count (and whether a centre element is used)
        maximising the minimum element spacing is chosen.
    ``"random"``
        Uniform-by-area random positions (``numpy.random.default_rng(seed)``), each at least
        ``min_spacing`` (default: ``element_diameter``) from the others.

    Parameters
    ----------
    n_elements : int
        Number of elements M >= 1.
    radius_of_curvature : float
        Radius of curvature R of the cap [m] (= focal distance).
    aperture : float
        Diameter of the cap's projected rim [m], at most 2 R.
    element_diameter : float
        Diameter of each circular element [m].
    frequency : float
        Drive frequency [Hz].
    layout : {"golden", "rings", "random"}
        Element layout (see above).
    seed : int, optional
        Seed of the ``"random"`` layout.
    min_spacing : float, optional
        Minimum centre-to-centre distance of the ``"random"`` layout [m]; >= element_diameter.
    name : str, optional
        Label; default ``"cap{M}-{layout}"``.

    Returns
    -------
    Transducer

    Raises
    ------
    InvalidParameterError
        Non-positive sizes, aperture > 2 R, elements that do not fit inside the aperture, or
        overlapping elements (the message names the pair and their distance).
    """
    if (
        isinstance(n_elements, bool)
        or not isinstance(n_elements, (int, np.integer))
        or n_elements < 1
    ):
        raise InvalidParameterError("n_elements", n_elements, "must be an integer >= 1")
    n = int(n_elements)
    r = _positive_finite("radius_of_curvature", radius_of_curvature)
    ap = _positive_finite("aperture", aperture)
    d = _positive_finite("element_diameter", element_diameter)
    f = _plausible_frequency(frequency)
    if ap > 2.0 * r:
        raise InvalidParameterError(
            "aperture", aperture, f"cannot exceed twice the radius of curvature ({2 * r} m)"
        )
    theta_max = math.asin(min(ap / (2.0 * r), 1.0))
    theta_eff = theta_max - math.atan(0.5 * d / r)
    if theta_eff < 0.0 or (n > 1 and theta_eff <= 0.0):
        raise InvalidParameterError(
            "element_diameter",
            element_diameter,
            f"an element of this size does not fit inside the aperture {ap * 1e3:.4g} mm on a cap "
            f"of radius {r * 1e3:.4g} mm",
        )
    usable_area = 2.0 * np.pi * r * r * (1.0 - math.cos(theta_eff))
    element_area = np.pi * 0.25 * d * d
    if n > 1 and n * element_area > usable_area:
        raise InvalidParameterError(
            "n_elements",
            n,
            f"{n} elements of {d * 1e3:.4g} mm ({n * element_area * 1e6:.4g} mm^2) do not fit on "
            f"the usable cap area {usable_area * 1e6:.4g} mm^2",
        )

    if n == 1 and layout in ("golden", "rings", "random"):
        theta, phi = np.zeros(1), np.zeros(1)  # a single element sits at the apex
    elif layout == "golden":
        theta, phi = _golden_layout(n, theta_eff)
    elif layout == "rings":
        theta, phi = _rings_layout(n, theta_eff, r)
    elif layout == "random":
        sp = d if min_spacing is None else _positive_finite("min_spacing", min_spacing)
        if sp < d:
            raise InvalidParameterError(
                "min_spacing", min_spacing, f"must be >= element_diameter ({d} m)"
            )
        theta, phi = _random_layout(n, theta_eff, r, sp, seed)
    else:
        raise InvalidParameterError("layout", layout, "must be 'golden', 'rings' or 'random'")

    centres, normals = _cap_points(r, theta, phi)
    logger.debug("spherical cap: %d elements, layout %s, theta_eff %.4g rad", n, layout, theta_eff)
    return Transducer(
        centres=centres,
        normals=normals,
        diameters=np.full(n, d),
        frequency=f,
        name=name if name is not None else f"cap{n}-{layout}",
        element_shape="disc",
        radius_of_curvature=r,
        aperture=ap,
    )


def cap256(
    frequency: float = CAP256_FREQUENCY,
    layout: Literal["golden", "rings", "random"] = "golden",
    seed: int | None = None,
) -> Transducer:
    """Sonalleve-class 256-element spherical-cap array (a preset with *assumed* dimensions).

    Assumption: 256 circular elements of 6.6 mm diameter, radius of curvature 140 mm, projected
    aperture 140 mm, 1.2 MHz, golden-angle layout with equal cap area per element (see
    :func:`spherical_cap_array`). These are round numbers typical of the class, not a vendor
    specification. The golden layout then has a minimum centre spacing of 6.69 mm (a gap of at
    least 0.09 mm between elements) and covers ~53 % of the cap.

    Parameters
    ----------
    frequency : float
        Drive frequency [Hz]; default 1.2e6.
    layout, seed
        As in :func:`spherical_cap_array`.

    Returns
    -------
    Transducer
    """
    return spherical_cap_array(
        CAP256_N_ELEMENTS,
        CAP256_RADIUS_OF_CURVATURE,
        CAP256_APERTURE,
        CAP256_ELEMENT_DIAMETER,
        frequency,
        layout=layout,
        seed=seed,
        name="cap256",
    )


def bowl(
    radius_of_curvature: float, aperture: float, frequency: float, *, name: str = "bowl"
) -> Transducer:
    """A single spherically focused element (for validation against O'Neil's solution).

    The bowl is the part of the sphere of radius ``R`` about the origin with polar angle (from
    -z) up to ``asin(aperture / (2 R))``; its apex is at ``(0, 0, -R)`` and it radiates toward +z.
    Its one element centre is the apex, its normal ``+z``, its diameter the aperture.

    Parameters
    ----------
    radius_of_curvature : float
        Radius of curvature R [m] (focal distance).
    aperture : float
        Diameter of the projected rim [m], ``0 < aperture <= 2 R``.
    frequency : float
        Drive frequency [Hz].

    Returns
    -------
    Transducer
        With ``element_shape="bowl"``; element area ``2 pi R h``.
    """
    r = _positive_finite("radius_of_curvature", radius_of_curvature)
    ap = _positive_finite("aperture", aperture)
    if ap > 2.0 * r:
        raise InvalidParameterError(
            "aperture", aperture, f"cannot exceed twice the radius of curvature ({2 * r} m)"
        )
    return Transducer(
        centres=np.array([[0.0, 0.0, -r]]),
        normals=np.array([[0.0, 0.0, 1.0]]),
        diameters=np.array([ap]),
        frequency=frequency,
        name=name,
        element_shape="bowl",
        element_radius_of_curvature=r,
        radius_of_curvature=r,
        aperture=ap,
    )


def _plausible_frequency(value: Any) -> float:
    """Frequency [Hz] of a therapeutic transducer: 20 kHz to 20 MHz; a value in MHz is named as such."""
    f = _positive_finite("frequency", value)
    if f < 2e4:
        hint = f" (MHz given as Hz? {f:g} MHz is {f * 1e6:g} Hz)" if f <= 20 else ""
        raise InvalidParameterError("frequency", value, f"is below 20 kHz, implausible for a focused-ultrasound transducer [Hz]{hint}")
    if f > 2e7:
        raise InvalidParameterError("frequency", value, "is above 20 MHz, implausible for a focused-ultrasound transducer [Hz]")
    return f


def piston(radius: float, frequency: float, *, name: str = "piston") -> Transducer:
    """A flat circular piston, centred at the origin of its own frame and radiating toward +z.

    A piston has no geometric focus (``radius_of_curvature is None``), so its frame's origin is
    the piston centre rather than a focus; on-axis points are ``(0, 0, z)``, ``z > 0``.

    Parameters
    ----------
    radius : float
        Piston radius a [m].
    frequency : float
        Drive frequency [Hz].

    Returns
    -------
    Transducer
    """
    a = _positive_finite("radius", radius)
    return Transducer(
        centres=np.zeros((1, 3)),
        normals=np.array([[0.0, 0.0, 1.0]]),
        diameters=np.array([2.0 * a]),
        frequency=frequency,
        name=name,
        element_shape="disc",
        aperture=2.0 * a,
    )
