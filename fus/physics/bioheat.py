r"""Pennes bioheat solver: sonication schedules, automatic stable time steps, CEM43 dose alongside.

.. math::

    \rho c \, \partial_t T = \nabla \cdot (k \nabla T) - w_b c_b (T - T_a) + Q(x, t)

(H. H. Pennes, J. Appl. Physiol. 1, 93-122 (1948)), advanced by the explicit finite-volume steps
of :func:`fus.kernels.bioheat_step` (harmonic-mean face conductances; fixed-temperature or
zero-flux grid faces: :mod:`fus.physics.bioheat_grid`). The heat source is the absorbed acoustic power density at a reference
drive power, scaled by the schedule:

.. math::

    Q(x, t) = Q_{ref}(x) \, \frac{P(t) \, d(t)}{P_{ref}},

``P`` the drive power and ``d`` the duty cycle of the interval containing ``t``: a pulsed
interval is represented by its time-averaged power (the thermal time constants of tissue,
seconds, are long against the pulse periods of MRgFUS, milliseconds to ~1 s; to resolve slow
pulsing, give the on and off parts as separate intervals).

Time stepping is :class:`~fus.physics.bioheat_state.BioheatState`'s, the one loop of fus: the
run is cut at every interval boundary and every output time, and each piece is one
:meth:`BioheatState.advance <fus.physics.bioheat_state.BioheatState.advance>` at the interval's
time-averaged power (``ceil(L / (safety * dt_max))`` equal stable sub-steps for a piece of
length ``L``, CEM43 dose and maximum temperature after each). :func:`state_for_phantom` builds
such a state on a phantom for callers that choose the power as they go (the closed-loop twin).
"""

from __future__ import annotations

import logging
import math
import time as _time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fus.backend.memory import available_memory, gib
from fus.backend import asnumpy, get_backend
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.physics.bioheat_state import DEFAULT_SAFETY, BioheatState

__all__ = [
    "Interval",
    "Schedule",
    "BioheatResult",
    "BioheatState",
    "simulate",
    "simulate_phantom",
    "state_for_phantom",
    "DEFAULT_SAFETY",
]

log = logging.getLogger("fus.physics.bioheat")


@dataclass(frozen=True)
class Interval:
    """One interval of a sonication schedule.

    Parameters
    ----------
    duration : float
        [s], > 0.
    power : float
        Drive power during the interval [W], >= 0 (0: cooling).
    duty_cycle : float
        Fraction of the interval the drive is on, in (0, 1]; the source uses the time-averaged
        power ``power * duty_cycle``.
    """

    duration: float
    power: float
    duty_cycle: float = 1.0

    @property
    def mean_power(self) -> float:
        """Time-averaged power [W]."""
        return self.power * self.duty_cycle


class Schedule:
    """A sequence of :class:`Interval` (power on / off, duty cycles), starting at t = 0.

    Parameters
    ----------
    intervals : sequence of Interval or (duration, power[, duty_cycle]) tuples or mappings

    Raises
    ------
    InvalidParameterError
        No interval, a negative or zero duration, a negative power, a duty cycle outside (0, 1];
        the message names the interval (``schedule[i].duration`` ...).
    """

    def __init__(self, intervals: Sequence[Any]) -> None:
        items = list(intervals)
        if not items:
            raise InvalidParameterError("schedule", intervals, "needs at least one interval")
        out: list[Interval] = []
        for i, it in enumerate(items):
            if isinstance(it, Interval):
                d, p, dc = it.duration, it.power, it.duty_cycle
            elif isinstance(it, Mapping):
                d, p, dc = it.get("duration"), it.get("power"), it.get("duty_cycle", 1.0)
            else:
                try:
                    vals = tuple(it)
                except TypeError:
                    raise InvalidParameterError(f"schedule[{i}]", it, "must be an Interval or (duration, power[, duty_cycle])") from None
                if len(vals) not in (2, 3):
                    raise InvalidParameterError(f"schedule[{i}]", it, "must be (duration, power[, duty_cycle])")
                d, p = vals[0], vals[1]
                dc = vals[2] if len(vals) == 3 else 1.0
            d = finite_scalar(f"schedule[{i}].duration", d)
            if d <= 0:
                raise InvalidParameterError(f"schedule[{i}].duration", d, "must be > 0 [s] (a negative or zero duration)")
            p = finite_scalar(f"schedule[{i}].power", p, nonnegative=True)
            dc = finite_scalar(f"schedule[{i}].duty_cycle", dc)
            if not 0 < dc <= 1:
                raise InvalidParameterError(f"schedule[{i}].duty_cycle", dc, "must be in (0, 1]")
            out.append(Interval(d, p, dc))
        self.intervals: tuple[Interval, ...] = tuple(out)

    @classmethod
    def sonication(cls, power: float, duration: float, cooling: float = 0.0, duty_cycle: float = 1.0) -> "Schedule":
        """``duration`` s at ``power`` W (with ``duty_cycle``), then ``cooling`` s at zero power."""
        c = finite_scalar("cooling", cooling)
        if c < 0:
            raise InvalidParameterError("cooling", cooling, "must be >= 0 [s]")
        d = finite_scalar("duration", duration)
        if d <= 0:
            raise InvalidParameterError("duration", duration, "must be > 0 [s]")
        items: list[Any] = [(d, power, duty_cycle)]
        if c > 0:
            items.append((c, 0.0, 1.0))
        return cls(items)

    @property
    def total_duration(self) -> float:
        """[s]."""
        return float(sum(i.duration for i in self.intervals))

    def boundaries(self) -> np.ndarray:
        """Start of each interval and the end of the last [s], shape (n + 1,)."""
        return np.concatenate([[0.0], np.cumsum([i.duration for i in self.intervals])])

    def mean_power_at(self, t: float) -> float:
        """Time-averaged power [W] of the interval containing ``t`` (0 after the end)."""
        b = self.boundaries()
        k = int(np.searchsorted(b, t, side="right")) - 1
        return self.intervals[k].mean_power if 0 <= k < len(self.intervals) else 0.0

    def describe(self) -> list[dict[str, float]]:
        """The intervals as dicts (for JSON sidecars)."""
        return [{"duration_s": i.duration, "power_w": i.power, "duty_cycle": i.duty_cycle} for i in self.intervals]

    def __repr__(self) -> str:
        return f"Schedule({', '.join(f'{i.duration:g} s @ {i.power:g} W x{i.duty_cycle:g}' for i in self.intervals)})"


@dataclass
class BioheatResult:
    """What :func:`simulate` returns (host numpy arrays).

    Attributes
    ----------
    times : ndarray, shape (n_out,)
        Output times [s] (0 first).
    power : ndarray, shape (n_out,)
        Time-averaged drive power of the interval ending at each output time [W].
    temperature : ndarray (n_out, *shape) float32 or None
        Temperature frames [C] (``keep_frames``).
    dose : ndarray (n_out, *shape) float32 or None
        CEM43 frames [min] (``keep_frames``).
    final_temperature : ndarray float32
    final_dose : ndarray float64
        [CEM43 min].
    max_temperature : ndarray float32
        Maximum over all sub-steps [C].
    roi_curves : dict
        Per ROI: ``mean_temperature``, ``max_temperature``, ``max_dose`` arrays over ``times``.
    info : dict
        Time steps, step counts, timings.
    """

    times: np.ndarray
    power: np.ndarray
    temperature: np.ndarray | None
    dose: np.ndarray | None
    final_temperature: np.ndarray
    final_dose: np.ndarray
    max_temperature: np.ndarray
    roi_curves: dict[str, dict[str, np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)


def _output_times(total: float, interval: float) -> np.ndarray:
    n = int(math.floor(total / interval + 1e-9))
    t = interval * np.arange(n + 1)
    if total - t[-1] > 1e-9 * max(total, 1.0):
        t = np.append(t, total)
    return t


def simulate(
    rho_c: Any,
    conductivity: Any,
    perfusion: Any,
    spacing: Any,
    source: Any,
    schedule: Schedule,
    *,
    reference_power: float = 1.0,
    initial_temperature: Any = 37.0,
    arterial_temperature: float = 37.0,
    boundary: Any = None,
    output_interval: float = 1.0,
    safety: float = DEFAULT_SAFETY,
    rois: Mapping[str, Any] | None = None,
    keep_frames: bool = True,
    dose_interval: float | None = None,
    progress: bool = False,
    callback: Callable[[float, Any, Any], None] | None = None,
) -> BioheatResult:
    """Run a sonication schedule through the Pennes equation, with CEM43 dose.

    A thin user of :class:`~fus.physics.bioheat_state.BioheatState`: the run is cut at every
    interval boundary and output time, and each piece is one :meth:`BioheatState.advance` at the
    interval's time-averaged power.

    Parameters
    ----------
    rho_c, conductivity, perfusion : array_like, shape (n0, n1, n2) (or float)
        rho c [J/m^3/K] (> 0), k [W/m/K] (>= 0), w_b c_b [W/m^3/K] (>= 0).
    spacing : float or (h0, h1, h2)
        [m].
    source : array_like, same shape, or None
        Absorbed power density Q_ref [W/m^3] at ``reference_power``; None for no heating.
    schedule : Schedule
        Power per interval.
    reference_power : float
        Drive power [W] at which ``source`` was computed, > 0.
    initial_temperature : float or array_like
        T at t = 0 [C].
    arterial_temperature : float
        T_a [C].
    boundary : mapping or sequence, optional
        Per grid face: zero flux or a fixed temperature (see :func:`fus.physics.bioheat_grid.bioheat_coefficients`).
    output_interval : float
        Time between output frames and ROI samples [s], > 0 (the last frame is at the end).
    safety : float
        Fraction of the monotone step limit used, in (0, 1].
    rois : mapping of str -> bool array, optional
        Regions for the ROI curves (shape of the grid).
    keep_frames : bool
        Keep temperature and dose frames at the output times (host memory: 8 bytes per voxel per
        frame).
    dose_interval : float, optional
        Accrue dose every ``dose_interval`` s (multiple sub-steps per kernel call: faster, the
        temperature is then taken as linear over that time); default every sub-step.
    progress : bool
        tqdm progress bar over simulated time.
    callback : callable, optional
        ``callback(time, temperature, dose)`` at every output time (the state's live arrays of
        the backend: copy what you keep).

    Returns
    -------
    BioheatResult

    Raises
    ------
    InvalidParameterError
        Bad medium, source, ROI (shape, empty), schedule or step parameters (named).
    """
    wall0 = _time.perf_counter()
    if not isinstance(schedule, Schedule):
        raise InvalidParameterError("schedule", type(schedule).__name__, "must be a Schedule")
    out_dt = finite_scalar("output_interval", output_interval, positive=True)
    state = BioheatState(
        rho_c, conductivity, perfusion, spacing, source, reference_power=reference_power,
        initial_temperature=initial_temperature, arterial_temperature=arterial_temperature,
        boundary=boundary, safety=safety, dose_interval=dose_interval,
    )
    backend = get_backend()
    xp = backend.xp
    shape = state.shape

    roi_masks: dict[str, Any] = {}
    for name, m in (rois or {}).items():
        arr = xp.asarray(m)
        if tuple(arr.shape) != shape:
            raise InvalidParameterError(f"rois[{name}]", f"array of shape {tuple(arr.shape)}", f"must have the grid's shape {shape}")
        if arr.dtype != bool:
            raise InvalidParameterError(f"rois[{name}]", f"dtype {arr.dtype}", "must be a boolean mask")
        if not bool(arr.any()):
            raise InvalidParameterError(f"rois[{name}]", "empty mask", "selects no voxel of the grid")
        roi_masks[str(name)] = arr

    total = schedule.total_duration
    outputs = _output_times(total, out_dt)
    if keep_frames:  # every output frame is kept: temperature and dose, float32, on the host
        need = 2 * 4 * int(np.prod(shape)) * len(outputs)
        have = available_memory()
        if need > 0.5 * have:
            raise InvalidParameterError(
                "output_interval", out_dt,
                f"keeps {len(outputs)} frames of temperature and dose ({'x'.join(map(str, shape))} voxels): {gib(need)}, "
                f"but only {gib(have)} of memory is available (half may be used): a longer output interval")
    cuts = np.unique(np.concatenate([outputs, schedule.boundaries()]))
    cuts = cuts[cuts <= total + 1e-12]

    frames_t: list[np.ndarray] = []
    frames_d: list[np.ndarray] = []
    curves: dict[str, dict[str, list[float]]] = {k: {"mean_temperature": [], "max_temperature": [], "max_dose": []} for k in roi_masks}
    powers: list[float] = []
    out_times: list[float] = []

    def record(t: float, p_now: float) -> None:
        temp, dose = state.temperature, state.dose
        out_times.append(t)
        powers.append(p_now)
        for k, m in roi_masks.items():
            vals = temp[m]
            curves[k]["mean_temperature"].append(float(vals.mean()))
            curves[k]["max_temperature"].append(float(vals.max()))
            curves[k]["max_dose"].append(float(dose[m].max()))
        if keep_frames:
            frames_t.append(asnumpy(temp).astype(np.float32, copy=True))
            frames_d.append(asnumpy(dose).astype(np.float32))
        if callback is not None:
            callback(t, temp, dose)

    record(0.0, schedule.mean_power_at(0.0))
    out_set = set(np.round(outputs[1:], 9).tolist())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="s", desc="bioheat", bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        length = float(t1 - t0)
        if length <= 1e-12:
            continue
        p_mean = schedule.mean_power_at(0.5 * (t0 + t1))
        state.advance(length, p_mean)
        if bar is not None:
            bar.update(length)
        if round(float(t1), 9) in out_set:
            record(float(t1), p_mean)
    if bar is not None:
        bar.close()

    wall = _time.perf_counter() - wall0
    voxels = int(np.prod(shape))
    n_steps = state.n_steps
    dts = sorted(state.time_steps)
    info = {
        "dt_max_s": state.dt_max,
        "safety": state.safety,
        "time_steps_s": dts,
        "n_steps": n_steps,
        "voxels": voxels,
        "wall_time_s": wall,
        "voxel_steps_per_s": voxels * n_steps / wall if wall > 0 else float("nan"),
        "backend": getattr(backend, "name", "?"),
        "dose_every_substep": dose_interval is None,
    }
    log.info("bioheat: %d steps of %s s on %s voxels in %.2f s", n_steps, dts, shape, wall)
    final = state.snapshot()
    return BioheatResult(
        times=np.asarray(out_times),
        power=np.asarray(powers),
        temperature=np.stack(frames_t) if keep_frames else None,
        dose=np.stack(frames_d) if keep_frames else None,
        final_temperature=final["temperature"],
        final_dose=final["dose"],
        max_temperature=final["max_temperature"],
        roi_curves={k: {kk: np.asarray(vv) for kk, vv in v.items()} for k, v in curves.items()},
        info=info,
    )


def _phantom_defaults(phantom: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The phantom's thermal volumes and spacing (the medium arguments) and its initial
    temperatures (bath / body), bath boundary and arterial (body) temperature."""
    th = phantom.thermal()
    medium = {"rho_c": th["rho_c"], "conductivity": th["conductivity"], "perfusion": th["perfusion"], "spacing": phantom.spacing}
    kw = {
        "initial_temperature": phantom.initial_temperature(),
        "arterial_temperature": phantom.body_temperature,
        "boundary": phantom.boundary(),
    }
    return medium, kw


def simulate_phantom(phantom: Any, source: Any, schedule: Schedule, **kwargs: Any) -> BioheatResult:
    """:func:`simulate` on a :class:`fus.physics.phantom.Phantom`: its thermal volumes, spacing,
    initial temperatures (bath / body), bath boundary, arterial temperature and ROIs.

    Keyword arguments are passed on to :func:`simulate` (they override the phantom's).
    """
    medium, kw = _phantom_defaults(phantom)
    kw["rois"] = phantom.rois
    kw.update(kwargs)
    return simulate(source=source, schedule=schedule, **medium, **kw)


def state_for_phantom(phantom: Any, source: Any, **kwargs: Any) -> BioheatState:
    """A :class:`~fus.physics.bioheat_state.BioheatState` on a
    :class:`fus.physics.phantom.Phantom`, with the defaults :func:`simulate_phantom` uses.

    Parameters
    ----------
    phantom : Phantom
        Gives the thermal volumes, spacing [m], initial temperatures (bath / body) [C], bath
        boundary and arterial (body) temperature [C].
    source : None, array_like or mapping of (int or str) -> array_like
        Heat source(s) Q_ref [W/m^3] at ``reference_power`` (see :class:`BioheatState`).
    **kwargs
        Passed on to :class:`BioheatState` (``reference_power``, ``safety``, ``dose_interval``;
        ``initial_temperature``, ``arterial_temperature`` and ``boundary`` override the
        phantom's).

    Returns
    -------
    BioheatState
        At t = 0, on the active backend.
    """
    medium, kw = _phantom_defaults(phantom)
    kw.update(kwargs)
    return BioheatState(source=source, **medium, **kw)
