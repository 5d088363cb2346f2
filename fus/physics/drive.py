"""Element drives: focusing phases, Ebbini–Cain multi-focus synthesis, power normalisation.

A *drive* is a complex128 numpy array ``u`` of shape (M,): the complex normal surface velocity
amplitude of each element [m/s] (dimensionless unit-modulus weights before normalisation), with
the time convention ``v(t) = Re{u exp(i w t)}`` of the package (an outgoing wave is
``exp(-i k r) / r``).

Element point-source model
--------------------------
For drive synthesis each element is one point source at its centre carrying its whole area
``A_m``, i.e. the Rayleigh integral (see :mod:`fus.physics.transducer_mesh`) with a single patch:

    p(x_j) = sum_m H[j, m] u_m,    H[j, m] = i k rho c A_m exp(-i k r_jm) / (2 pi r_jm),

``r_jm = |x_j - c_m|``, ``k = w / c`` (``i w rho = i k rho c``). Optionally the far-field piston
directivity ``2 J1(k a sin t) / (k a sin t)`` of a disc of radius ``a`` is applied, ``t`` being
the angle between the element normal and ``x_j - c_m``.

Drives are small host-side problems: inputs are converted to numpy float64/complex128 (CuPy
arrays are copied to the host) and results are numpy arrays.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import j1

from fus.backend import asnumpy
from fus.errors import InvalidParameterError
from fus.physics.constants import DEFAULT_DENSITY, DEFAULT_SOUND_SPEED
from fus.physics.transducer_geometry import Transducer, _positive_finite, bowl_depth

__all__ = [
    "SteeringReport",
    "focus_phases",
    "steering_report",
    "point_source_transfer_matrix",
    "ebbini_cain",
    "acoustic_power",
    "scale_to_power",
    "scale_to_velocity",
    "piston_directivity",
    "STEERING_LIMIT_DB",
    "MAX_CONDITION_NUMBER",
]

logger = logging.getLogger("fus.physics.drive")

#: A target is inside the useful steering range while the steering gain (see
#: :func:`steering_report`) is at least this many dB.
STEERING_LIMIT_DB: float = -3.0

#: Ebbini–Cain refuses a control-point system whose Gram matrix H H^H is worse conditioned than
#: this (without regularisation): the requested pressures could not be trusted.
MAX_CONDITION_NUMBER: float = 1e12

Frame = Literal["transducer", "scanner"]


def _points(transducer: Transducer, points: Any, name: str, frame: Frame) -> np.ndarray:
    try:
        p = np.asarray(asnumpy(points), dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, points, "must be real coordinates [m]") from None
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 1:
        raise InvalidParameterError(name, p.shape, "must have shape (3,) or (J, 3) [m]")
    if not np.all(np.isfinite(p)):
        raise InvalidParameterError(name, p.tolist(), "must be finite")
    if frame == "scanner":
        p = transducer.to_transducer_frame(p)
    elif frame != "transducer":
        raise InvalidParameterError("frame", frame, "must be 'transducer' or 'scanner'")
    # Every point must be in front of every element: the baffled-element model holds only in the
    # half-space the element radiates into.
    d = p[:, None, :] - transducer.centres[None, :, :]
    ahead = np.einsum("jmx,mx->jm", d, transducer.normals)
    if np.any(ahead <= 0.0):
        j, m = np.unravel_index(int(np.argmin(ahead)), ahead.shape)
        raise InvalidParameterError(
            name,
            (p[j] * 1e3).round(6).tolist(),
            f"point {j} (mm, transducer frame) is behind or on the plane of element {m} "
            f"({ahead[j, m] * 1e3:.4g} mm along its normal); points must lie in front of the "
            f"transducer",
        )
    return p


def _drive(transducer: Transducer, drive: Any) -> np.ndarray:
    try:
        u = np.asarray(asnumpy(drive), dtype=np.complex128)
    except (TypeError, ValueError):
        raise InvalidParameterError("drive", drive, "must be complex amplitudes") from None
    if u.shape != (transducer.n_elements,):
        raise InvalidParameterError(
            "drive", u.shape, f"must have shape ({transducer.n_elements},), one value per element"
        )
    if not np.all(np.isfinite(u)):
        raise InvalidParameterError("drive", "<non-finite values>", "must be finite")
    return u


def piston_directivity(ka_sin_theta: np.ndarray) -> np.ndarray:
    """Far-field directivity ``2 J1(x) / x`` of a baffled circular piston (1 at x = 0).

    Parameters
    ----------
    ka_sin_theta : ndarray
        ``x = k a sin(theta)`` (dimensionless).

    Returns
    -------
    ndarray
        The (signed) directivity, same shape.
    """
    x = np.asarray(ka_sin_theta, dtype=np.float64)
    small = np.abs(x) < 1e-8
    xs = np.where(small, 1.0, x)
    return np.where(small, 1.0 - x * x / 8.0, 2.0 * j1(xs) / xs)


# ---------------------------------------------------------------------------- steering
@dataclass(frozen=True)
class SteeringReport:
    """Whether a focus target is within the useful range of a transducer.

    Attributes
    ----------
    target : ndarray, shape (3,)
        Target in the transducer frame [m].
    steering_distance : float or None
        Distance from the geometric focus [m]; ``None`` when the transducer has none.
    max_element_angle : float
        Largest angle between an element normal and the direction element -> target [rad].
    gain : float
        Steering gain (amplitude, 1 at the geometric focus); see :func:`steering_report`.
    gain_db : float
        ``20 log10(gain)`` [dB].
    in_range : bool
        ``gain_db >= STEERING_LIMIT_DB``.
    criterion : str
        The criterion used, in words.
    """

    target: np.ndarray
    steering_distance: float | None
    max_element_angle: float
    gain: float
    gain_db: float
    in_range: bool
    criterion: str


def steering_report(
    transducer: Transducer,
    target: Any,
    sound_speed: float = DEFAULT_SOUND_SPEED,
    *,
    frame: Frame = "transducer",
) -> SteeringReport:
    """Judge whether a focus target is within the transducer's useful steering range.

    Criterion (threshold :data:`STEERING_LIMIT_DB` = -3 dB):

    * disc elements (phased arrays, piston): the area-weighted mean over elements of the far-field
      piston directivity ``|2 J1(k a sin t_m) / (k a sin t_m)|``, ``t_m`` the angle between element
      m's normal and the direction from its centre to the target. Below -3 dB the elements
      radiate too little toward the target for the array to focus there. For ``cap256``
      (k a ~ 16.8 in water at 20 C) the limit is about 14 mm of lateral steering at the 140 mm
      focus.
    * a focused bowl (a single element cannot steer): the bowl's own relative gain at the target,
      modelled as separable: O'Neil's exact on-axis pressure at the target's axial position
      divided by its focal value ``k h``, times the focal-plane pattern ``|2 J1(X) / X|``,
      ``X = k a rho / R``, at the target's lateral offset ``rho``. Below -3 dB the target is
      outside the focal spot.

    Grating lobes are not used as a criterion: the golden and random layouts are aperiodic, and
    with element pitches of several wavelengths (cap256: ~5.9 lambda) a periodic-array grating-lobe
    rule would flag every steering position; element directivity is what bounds the useful range.

    Parameters
    ----------
    transducer : Transducer
    target : array_like, shape (3,)
        Focus target [m].
    sound_speed : float
        Sound speed [m/s].
    frame : {"transducer", "scanner"}
        Frame of ``target``.

    Returns
    -------
    SteeringReport
    """
    t = _points(transducer, target, "target", frame)[0]
    k = transducer.wavenumber(sound_speed)
    c, n = transducer.centres, transducer.normals
    a = 0.5 * transducer.diameters
    d = t - c
    r = np.linalg.norm(d, axis=1)
    cos_t = np.clip(np.sum(d * n, axis=1) / r, -1.0, 1.0)
    angles = np.arccos(cos_t)
    areas = transducer.element_areas
    if transducer.element_shape == "disc":
        sin_t = np.sqrt(np.maximum(0.0, 1.0 - cos_t * cos_t))
        per = np.abs(piston_directivity(k * a * sin_t))
        criterion = "area-weighted mean element directivity toward the target >= -3 dB"
    else:
        rc = float(transducer.element_radius_of_curvature)  # type: ignore[arg-type]
        h = bowl_depth(rc, a)
        centre = c + rc * n
        dz = np.sum((t - centre) * n, axis=1)  # axial offset from the centre of curvature
        lateral = np.linalg.norm((t - centre) - dz[:, None] * n, axis=1)
        z = rc + dz  # axial distance from the apex
        r_e = np.sqrt((z - h) ** 2 + a * a)
        denom = 0.5 * k * h * (1.0 - z / rc)
        with np.errstate(divide="ignore", invalid="ignore"):
            axial = np.where(
                np.abs(1.0 - z / rc) < 1e-12, 1.0, np.abs(np.sin(0.5 * k * (r_e - z)) / denom)
            )
        per = axial * np.abs(piston_directivity(k * a * lateral / rc))
        criterion = (
            "single focused element: O'Neil on-axis gain times focal-plane pattern at the target "
            ">= -3 dB"
        )
    gain = float(np.sum(areas * per) / np.sum(areas))
    gain_db = 20.0 * math.log10(gain) if gain > 0.0 else -math.inf
    return SteeringReport(
        target=t,
        steering_distance=None
        if transducer.radius_of_curvature is None
        else float(np.linalg.norm(t)),
        max_element_angle=float(angles.max()),
        gain=gain,
        gain_db=gain_db,
        in_range=bool(gain_db >= STEERING_LIMIT_DB),
        criterion=criterion,
    )


def focus_phases(
    transducer: Transducer,
    target: Any,
    sound_speed: float = DEFAULT_SOUND_SPEED,
    *,
    frame: Frame = "transducer",
    return_report: bool = False,
) -> np.ndarray | tuple[np.ndarray, SteeringReport]:
    """Unit-modulus element weights that focus on a target in a homogeneous medium (one sound speed).

    ``w_m = exp(+i k r_m)`` with ``r_m`` the distance from element centre m to the target: with the
    outgoing wave ``exp(-i k r) / r`` each element's contribution ``w_m exp(-i k r_m) / r_m``
    arrives at the target with zero phase, so all add coherently (real and positive). Through a
    layered medium: :func:`fus.physics.field.focus_phases_in_medium`.

    A warning is logged (logger ``fus.physics.drive``) when the target is outside the useful
    steering range (see :func:`steering_report`); pass ``return_report=True`` to get the verdict.

    Parameters
    ----------
    transducer : Transducer
    target : array_like, shape (3,)
        Focus target [m].
    sound_speed : float
        Sound speed of the propagation medium [m/s] (default water at 20 C).
    frame : {"transducer", "scanner"}
        Frame of ``target``.
    return_report : bool
        Also return the :class:`SteeringReport`.

    Returns
    -------
    weights : ndarray, shape (M,), complex128
        Unit-modulus weights (scale with :func:`scale_to_power` or :func:`scale_to_velocity`).
    report : SteeringReport
        Only with ``return_report=True``.

    Raises
    ------
    InvalidParameterError
        A non-finite target or one behind (or on the plane of) any element.
    """
    t = _points(transducer, target, "target", frame)[0]
    k = transducer.wavenumber(sound_speed)
    r = np.linalg.norm(t - transducer.centres, axis=1)
    weights = np.exp(1j * k * r)
    report = steering_report(transducer, t, sound_speed)
    if not report.in_range:
        dist = (
            "" if report.steering_distance is None
            else f" {report.steering_distance * 1e3:.3g} mm from the geometric focus"
        )
        logger.warning(
            "focus target %s mm%s is outside the useful steering range of %s: gain %.1f dB < "
            "%.1f dB (%s)",
            np.round(t * 1e3, 3).tolist(),
            dist,
            transducer.name,
            report.gain_db,
            STEERING_LIMIT_DB,
            report.criterion,
        )
    return (weights, report) if return_report else weights


# ---------------------------------------------------------------------------- Ebbini–Cain
def point_source_transfer_matrix(
    transducer: Transducer,
    points: Any,
    sound_speed: float = DEFAULT_SOUND_SPEED,
    density: float = DEFAULT_DENSITY,
    *,
    frame: Frame = "transducer",
    element_directivity: bool = False,
) -> np.ndarray:
    """Element-to-point transfer matrix of the point-source model (see the module docstring).

    ``H[j, m] = i k rho c A_m exp(-i k r_jm) / (2 pi r_jm)`` [Pa per m/s], optionally times the
    piston directivity of disc elements: one source per element in a homogeneous medium, cheap,
    for drive synthesis. The full field model (patches, far-field element sources, layered media)
    is :func:`fus.physics.field.transfer_matrix`.

    Parameters
    ----------
    transducer : Transducer
    points : array_like, shape (J, 3)
        Field points [m], in front of every element.
    sound_speed : float
        [m/s].
    density : float
        [kg/m^3].
    frame : {"transducer", "scanner"}
        Frame of ``points``.
    element_directivity : bool
        Multiply by ``2 J1(k a sin t) / (k a sin t)`` (disc elements only).

    Returns
    -------
    ndarray, shape (J, M), complex128
    """
    p = _points(transducer, points, "points", frame)
    c = _positive_finite("sound_speed", sound_speed)
    rho = _positive_finite("density", density)
    k = transducer.wavenumber(c)
    d = p[:, None, :] - transducer.centres[None, :, :]
    r = np.linalg.norm(d, axis=2)
    prefactor = 1j * k * rho * c / (2.0 * np.pi)
    h = prefactor * transducer.element_areas[None, :] * np.exp(-1j * k * r) / r
    if element_directivity:
        if transducer.element_shape != "disc":
            raise InvalidParameterError(
                "element_directivity", True, "is defined for disc elements only"
            )
        cos_t = np.clip(np.einsum("jmx,mx->jm", d, transducer.normals) / r, -1.0, 1.0)
        sin_t = np.sqrt(np.maximum(0.0, 1.0 - cos_t * cos_t))
        h = h * piston_directivity(k * 0.5 * transducer.diameters[None, :] * sin_t)
    return h


def ebbini_cain(
    transducer: Transducer,
    control_points: Any,
    pressures: Any,
    sound_speed: float = DEFAULT_SOUND_SPEED,
    density: float = DEFAULT_DENSITY,
    *,
    regularization: float = 0.0,
    frame: Frame = "transducer",
    element_directivity: bool = False,
    transfer: Any = None,
) -> np.ndarray:
    """Minimum-norm element velocities producing requested pressures at control points.

    Ebbini & Cain, "Multiple-focus ultrasound phased-array pattern synthesis: optimal
    driving-signal distributions for hyperthermia", IEEE Trans. UFFC 36(5), 540-548 (1989):

        u = H^H (H H^H + beta_eff I)^-1 p,    beta_eff = beta * trace(H H^H) / J,

    with ``H`` from :func:`point_source_transfer_matrix`; ``beta = 0`` gives the exact minimum-norm
    pseudo-inverse solution of ``H u = p`` (J <= M). The J x J system is solved with
    ``numpy.linalg.solve`` in complex128.

    Parameters
    ----------
    transducer : Transducer
    control_points : array_like, shape (J, 3)
        Control points [m], in front of every element.
    pressures : array_like, shape (J,)
        Requested complex pressure amplitudes [Pa].
    sound_speed : float
        [m/s].
    density : float
        [kg/m^3].
    regularization : float
        Dimensionless Tikhonov weight ``beta >= 0`` (relative to the mean diagonal of H H^H).
    frame : {"transducer", "scanner"}
        Frame of ``control_points``.
    element_directivity : bool
        Include the disc directivity in ``H`` (default False: plain point sources).
    transfer : array_like, shape (J, M), optional
        A transfer matrix [Pa per m/s] to use instead of the point-source model, e.g.
        :func:`fus.physics.field.transfer_matrix` (patches / far-field sources, layered media),
        so that the requested pressures hold in the full field model. ``sound_speed``,
        ``density`` and ``element_directivity`` are then not used.

    Returns
    -------
    ndarray, shape (M,), complex128
        Element normal velocity amplitudes [m/s].

    Raises
    ------
    InvalidParameterError
        Bad shapes, points behind the transducer, more control points than elements without
        regularisation, or a (nearly) singular system (duplicate or too-close control points).
    """
    if transfer is None:
        h = point_source_transfer_matrix(
            transducer, control_points, sound_speed, density,
            frame=frame, element_directivity=element_directivity,
        )
    else:
        n_pts = _points(transducer, control_points, "control_points", frame).shape[0]
        try:
            h = np.asarray(asnumpy(transfer), dtype=np.complex128)
        except (TypeError, ValueError):
            raise InvalidParameterError("transfer", transfer, "must be a complex matrix") from None
        if h.shape != (n_pts, transducer.n_elements):
            raise InvalidParameterError(
                "transfer", h.shape, f"must have shape ({n_pts}, {transducer.n_elements}): control points x elements"
            )
        if not np.all(np.isfinite(h)):
            raise InvalidParameterError("transfer", "<non-finite values>", "must be finite")
    n_ctrl = h.shape[0]
    try:
        p = np.asarray(asnumpy(pressures), dtype=np.complex128).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            "pressures", pressures, "must be complex pressures [Pa]"
        ) from None
    if p.shape != (n_ctrl,):
        raise InvalidParameterError(
            "pressures", p.shape, f"must have one value per control point ({n_ctrl})"
        )
    if not np.all(np.isfinite(p)):
        raise InvalidParameterError("pressures", p.tolist(), "must be finite")
    try:
        beta = float(regularization)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            "regularization", regularization, "must be a number >= 0"
        ) from None
    if not math.isfinite(beta) or beta < 0.0:
        raise InvalidParameterError("regularization", regularization, "must be finite and >= 0")
    if beta == 0.0 and n_ctrl > transducer.n_elements:
        raise InvalidParameterError(
            "control_points",
            n_ctrl,
            f"more control points than elements ({transducer.n_elements}) has no exact solution; "
            f"use fewer points or regularization > 0",
        )
    gram = h @ h.conj().T
    if beta > 0.0:
        gram = gram + beta * (np.trace(gram).real / n_ctrl) * np.eye(n_ctrl)
    else:
        cond = float(np.linalg.cond(gram))
        if not cond < MAX_CONDITION_NUMBER:
            raise InvalidParameterError(
                "control_points",
                f"<{n_ctrl} points>",
                f"the control-point system is (nearly) singular (condition number {cond:.3g}); "
                f"control points are duplicated or too close together; separate them or use "
                f"regularization > 0",
            )
    try:
        y = np.linalg.solve(gram, p)
    except np.linalg.LinAlgError as exc:
        raise InvalidParameterError(
            "control_points", f"<{n_ctrl} points>", f"singular control-point system: {exc}"
        ) from exc
    return h.conj().T @ y


# ---------------------------------------------------------------------------- normalisation
def acoustic_power(
    transducer: Transducer,
    drive: Any,
    density: float = DEFAULT_DENSITY,
    sound_speed: float = DEFAULT_SOUND_SPEED,
) -> float:
    """Total radiated acoustic power of a drive, plane-wave approximation per element [W].

    ``P = sum_m A_m |u_m|^2 rho c / 2`` (time-averaged intensity ``rho c |u|^2 / 2`` of a plane
    wave of velocity amplitude ``|u|`` over each element's area ``A_m``).

    Parameters
    ----------
    transducer : Transducer
    drive : array_like, shape (M,)
        Complex element velocity amplitudes [m/s].
    density : float
        [kg/m^3].
    sound_speed : float
        [m/s].

    Returns
    -------
    float
        Power [W].
    """
    u = _drive(transducer, drive)
    rho = _positive_finite("density", density)
    c = _positive_finite("sound_speed", sound_speed)
    return float(0.5 * rho * c * np.sum(transducer.element_areas * (u.real**2 + u.imag**2)))


def scale_to_power(
    transducer: Transducer,
    drive: Any,
    power: float,
    density: float = DEFAULT_DENSITY,
    sound_speed: float = DEFAULT_SOUND_SPEED,
) -> np.ndarray:
    """Scale a drive (phases and relative amplitudes kept) to a total acoustic power.

    Parameters
    ----------
    transducer : Transducer
    drive : array_like, shape (M,)
        Complex element amplitudes (any scale), not all zero.
    power : float
        Target total acoustic power [W], > 0 (see :func:`acoustic_power`).
    density, sound_speed : float
        [kg/m^3], [m/s].

    Returns
    -------
    ndarray, shape (M,), complex128
        Element velocity amplitudes [m/s] whose :func:`acoustic_power` is ``power``.
    """
    target = _positive_finite("power", power)
    u = _drive(transducer, drive)
    p0 = acoustic_power(transducer, u, density, sound_speed)
    if not p0 > 0.0:
        raise InvalidParameterError("drive", "<all zero>", "cannot scale a zero drive to a power")
    return u * math.sqrt(target / p0)


def scale_to_velocity(transducer: Transducer, drive: Any, velocity: float) -> np.ndarray:
    """Scale a drive so that its peak element surface velocity amplitude is ``velocity``.

    Parameters
    ----------
    transducer : Transducer
    drive : array_like, shape (M,)
        Complex element amplitudes (any scale), not all zero.
    velocity : float
        Peak normal surface velocity amplitude ``max_m |u_m|`` [m/s], > 0.

    Returns
    -------
    ndarray, shape (M,), complex128
        Element velocity amplitudes [m/s].
    """
    v = _positive_finite("velocity", velocity)
    u = _drive(transducer, drive)
    peak = float(np.max(np.abs(u)))
    if not peak > 0.0:
        raise InvalidParameterError(
            "drive", "<all zero>", "cannot scale a zero drive to a velocity"
        )
    return u * (v / peak)
