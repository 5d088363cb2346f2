"""Reference trajectories of the closed loop, and the loop that PID and MPC controllers share.

A :class:`Trajectory` is the reference temperature of the target ROI statistic against time: a
ramp from the baseline (the statistic at the first usable dynamic, or ``baseline_C``) to the
target temperature (``target_C``, or ``rise_C`` above the baseline) over ``ramp_s`` seconds or at
``rate_C_per_s``, then a hold for ``hold_s`` seconds; optionally the sonication ends earlier when
a thermal-dose statistic of the ROI reaches ``dose_goal`` [CEM43 min]. Time ``t`` [s] counts from
the trajectory start: the time of the controller's first usable measurement, or ``start_s`` on the
treatment clock when given.

From a TOML table::

    [control.trajectory]
    kind = "ramp_hold"
    target_C = 43.0     # or rise_C = 6.0
    ramp_s = 30         # or rate_C_per_s = 0.2; neither: a step
    hold_s = 120
    dose_goal = 30.0    # optional, CEM43 min, of the ROI's dose_statistic ("mean" by default)

:class:`TrajectoryFollower` is the part of a controller that does not depend on its control law:
the ROI statistic of each measurement (numpy or cupy maps), the wait on a NaN statistic, the start
of the trajectory, its end and the dose goal, the power and slew limits, the log state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fus.control.types import (
    Command,
    Measurement,
    Reason,
    check_range,
    check_statistic,
    power_limits,
    roi_statistic,
    settings_from_mapping,
)
from fus.errors import InvalidParameterError

__all__ = ["Trajectory", "TrajectoryFollower", "as_trajectory", "check_roi"]

log = logging.getLogger(__name__)

KINDS = ("ramp_hold",)


@dataclass(frozen=True)
class Trajectory:
    """A ramp-and-hold reference temperature [C] of the target ROI statistic.

    Attributes
    ----------
    kind : str
        ``"ramp_hold"`` (the only kind so far).
    target_C : float or None
        Hold temperature [C] (absolute). Exactly one of ``target_C`` and ``rise_C``.
    rise_C : float or None
        Hold temperature as a rise above the baseline [C].
    ramp_s : float or None
        Duration of the ramp [s] (>= 0; 0 is a step).
    rate_C_per_s : float or None
        Ramp rate [C/s] (> 0), instead of ``ramp_s``. Neither given: a step (ramp of 0 s).
    hold_s : float
        Duration of the hold [s] (>= 0, ``inf`` allowed: hold until the dose goal or a stop).
    baseline_C : float or None
        Temperature the ramp starts from [C]; ``None``: the statistic of the first usable
        measurement (see :meth:`bind`).
    start_s : float or None
        Treatment-clock time of ``t = 0`` [s]; ``None``: the first usable measurement's time.
    dose_goal : float or None
        End the sonication (goal reached) when the ROI's ``dose_statistic`` of CEM43 reaches this
        many minutes.
    dose_statistic : str
        ROI statistic of the dose map compared with ``dose_goal`` (``mean``, ``median``, ``min``,
        ``pNN``).
    """

    kind: str = "ramp_hold"
    target_C: float | None = None
    rise_C: float | None = None
    ramp_s: float | None = None
    rate_C_per_s: float | None = None
    hold_s: float = 0.0
    baseline_C: float | None = None
    start_s: float | None = None
    dose_goal: float | None = None
    dose_statistic: str = "mean"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "Trajectory":
        """Build from a mapping (a TOML table); an unknown key raises, naming it."""
        return settings_from_mapping(cls, mapping, "trajectory")

    def validate(self) -> None:
        """Check every field; raise :class:`InvalidParameterError` naming the first bad one."""
        if self.kind not in KINDS:
            raise InvalidParameterError("trajectory.kind", self.kind, f"must be one of {', '.join(KINDS)}")
        if (self.target_C is None) == (self.rise_C is None):
            raise InvalidParameterError("trajectory.target_C", self.target_C, f"give exactly one of target_C and rise_C (rise_C={self.rise_C!r})")
        check_range("trajectory.target_C", self.target_C, 0.0, 100.0, optional=True)
        check_range("trajectory.rise_C", self.rise_C, -30.0, 60.0, optional=True)
        check_range("trajectory.baseline_C", self.baseline_C, 0.0, 100.0, optional=True)
        check_range("trajectory.start_s", self.start_s, optional=True)
        if self.ramp_s is not None and self.rate_C_per_s is not None:
            raise InvalidParameterError("trajectory.rate_C_per_s", self.rate_C_per_s, f"give ramp_s or rate_C_per_s, not both (ramp_s={self.ramp_s!r})")
        check_range("trajectory.ramp_s", self.ramp_s, 0.0, optional=True)
        check_range("trajectory.rate_C_per_s", self.rate_C_per_s, 0.0, 10.0, optional=True, open_low=True)
        if not (isinstance(self.hold_s, (int, float)) and not isinstance(self.hold_s, bool) and self.hold_s == math.inf):
            check_range("trajectory.hold_s", self.hold_s, 0.0)
        check_range("trajectory.dose_goal", self.dose_goal, 0.0, optional=True, open_low=True)
        check_statistic("trajectory.dose_statistic", self.dose_statistic)

    def bind(self, baseline_C: float, start_s: float) -> "Trajectory":
        """This trajectory with its baseline [C] and start time [s] set where they were not."""
        return replace(
            self,
            baseline_C=float(baseline_C) if self.baseline_C is None else self.baseline_C,
            start_s=float(start_s) if self.start_s is None else self.start_s,
        )

    # ------------------------------------------------------------------ values
    def _baseline(self) -> float:
        if self.baseline_C is None:
            raise InvalidParameterError("trajectory.baseline_C", None, "unknown until the trajectory is bound to its first measurement (Trajectory.bind)")
        return float(self.baseline_C)

    @property
    def hold_C(self) -> float:
        """The hold temperature [C] (needs the baseline when given as ``rise_C``)."""
        if self.target_C is not None:
            return float(self.target_C)
        return self._baseline() + float(self.rise_C)  # type: ignore[arg-type]

    @property
    def ramp_duration(self) -> float | None:
        """Duration of the ramp [s]; ``None`` while a rate-defined ramp has no baseline yet."""
        if self.ramp_s is not None:
            return float(self.ramp_s)
        if self.rate_C_per_s is None:
            return 0.0
        if self.target_C is not None and self.baseline_C is None:
            return None
        rise = self.hold_C - self._baseline()
        return abs(rise) / float(self.rate_C_per_s)

    @property
    def end_time(self) -> float | None:
        """End of the hold [s from the start]; ``inf`` for an endless hold, ``None`` while unknown."""
        ramp = self.ramp_duration
        return None if ramp is None else ramp + float(self.hold_s)

    def value(self, t: float) -> float:
        """Reference temperature [C] at ``t`` [s from the start] (the baseline before 0)."""
        base = self._baseline()
        hold = self.hold_C
        ramp = self.ramp_duration or 0.0
        if t <= 0.0:
            return base if ramp > 0.0 else (hold if t == 0.0 else base)
        if t >= ramp:
            return hold
        return base + (hold - base) * (t / ramp)

    def slope(self, t: float) -> float:
        """Rate of change of the reference [C/s] at ``t`` [s] (0 outside the ramp)."""
        ramp = self.ramp_duration or 0.0
        if ramp <= 0.0 or t < 0.0 or t >= ramp:
            return 0.0
        return (self.hold_C - self._baseline()) / ramp

    def describe(self) -> str:
        """One line for a log or a report."""
        hold = f"{self.target_C:g} C" if self.target_C is not None else f"baseline + {self.rise_C:g} C"
        if self.ramp_s is not None:
            ramp = f"ramp over {self.ramp_s:g} s"
        elif self.rate_C_per_s is not None:
            ramp = f"ramp at {self.rate_C_per_s:g} C/s"
        else:
            ramp = "step"
        base = "the first measurement" if self.baseline_C is None else f"{self.baseline_C:g} C"
        text = f"{ramp} from {base} to {hold}, hold {self.hold_s:g} s"
        if self.dose_goal is not None:
            text += f", or until the ROI {self.dose_statistic} dose reaches {self.dose_goal:g} CEM43 min"
        return text


def as_trajectory(trajectory: Any) -> Trajectory:
    """``trajectory`` as a :class:`Trajectory` (a mapping is built with :meth:`Trajectory.from_mapping`)."""
    if isinstance(trajectory, Trajectory):
        return trajectory
    if isinstance(trajectory, Mapping):
        return Trajectory.from_mapping(trajectory)
    raise InvalidParameterError("trajectory", trajectory, "a tracking controller needs a Trajectory or a trajectory table (mapping)")


def check_roi(name: str, roi: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``roi`` as a host bool array (slices, rows, cols) with at least one voxel."""
    from fus.backend import asnumpy

    a = asnumpy(roi)
    if a.ndim != 3:
        raise InvalidParameterError(name, f"shape {a.shape}", "must be a 3-D (slices, rows, cols) mask")
    if shape is not None and a.shape != tuple(shape):
        raise InvalidParameterError(name, f"shape {a.shape}", f"must have the shape of the target ROI {tuple(shape)}")
    a = a.astype(bool)
    if not a.any():
        raise InvalidParameterError(name, "no voxel", "must select at least one voxel")
    return a


def check_power_limit(name: str, p_max: Any, limit: float | None) -> float:
    """The power ceiling [W]: ``p_max`` (> 0), lowered to a settings ``limit`` when one is given."""
    p = check_range(name, p_max, 0.0, open_low=True)
    return min(p, limit) if limit is not None else p  # type: ignore[type-var]


class TrajectoryFollower:
    """The loop of a controller that tracks a :class:`Trajectory` with the ROI statistic.

    Subclasses implement :meth:`_control` (the control law) and may extend :meth:`_reset_law`,
    :meth:`_on_start` and :meth:`_on_wait`.

    Parameters
    ----------
    trajectory : Trajectory or mapping
    target_roi : bool array (slices, rows, cols)
    p_max : float
        Power ceiling [W] (the lower of the system's and the settings').
    statistic : str
        ROI statistic of the temperature the loop follows.
    slew : float
        Largest change of the commanded power [W/s] (``inf``: none). A command to zero (wait,
        stop) is never delayed by it.
    dynamic_period : float
        Interval [s] assumed before two measurements have been seen.
    """

    name = "controller"

    def __init__(self, trajectory: Any, target_roi: Any, *, p_max: float, statistic: str, slew: float, dynamic_period: float) -> None:
        self.trajectory = as_trajectory(trajectory)
        self.roi = check_roi("target_roi", target_roi)
        self.p_max = float(p_max)
        self.statistic = statistic
        self.slew = float(slew)
        self.dynamic_period = float(dynamic_period)
        self._roi_cache: dict[int, Any] = {}
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything learnt: the next measurement starts the trajectory again."""
        self.bound: Trajectory | None = None
        self.last_power = 0.0
        self._prev_time: float | None = None
        self._stopped: Command | None = None
        self._reset_law()

    def _reset_law(self) -> None:
        """Reset the control law's own state (subclasses)."""

    def _on_start(self, stat: float, m: Measurement) -> None:
        """Called at the first usable measurement (subclasses)."""

    def _on_wait(self, m: Measurement) -> None:
        """Called for a measurement without a usable statistic (subclasses)."""

    def _control(self, m: Measurement, t: float, stat: float, ref: float, lo: float, hi: float, dt: float) -> tuple[float, dict]:
        raise NotImplementedError

    def roi_on(self, xp: Any) -> Any:
        """The target ROI as an array of module ``xp`` (copied to the device once)."""
        key = id(xp)
        if key not in self._roi_cache:
            self._roi_cache[key] = xp.asarray(self.roi)
        return self._roi_cache[key]

    # ------------------------------------------------------------------ the loop
    def _interval(self, time: float) -> float:
        prev, self._prev_time = self._prev_time, float(time)
        if prev is None or not math.isfinite(time - prev) or time - prev <= 0.0:
            return self.dynamic_period
        return float(time) - prev

    def _stop(self, reason: Reason, detail: str, state: dict) -> Command:
        self.last_power = 0.0
        self._stopped = Command(0.0, reason, stop=True, state=state, detail=detail)
        log.info("%s: %s (%s)", self.name, reason, detail)
        return self._stopped

    def update(self, measurement: Measurement) -> Command:
        """The command for the time until the next measurement.

        Parameters
        ----------
        measurement : Measurement
            One dynamic (numpy or cupy maps).

        Returns
        -------
        Command
            ``WAIT`` with zero power when the ROI has no measured voxel; ``TRAJECTORY_END`` or
            ``GOAL_REACHED`` (stop) at the end; else ``CONTROL`` with a power in the limits.
        """
        m = measurement
        if self._stopped is not None:
            return self._stopped
        dt = self._interval(m.time)
        roi = self.roi_on(m.xp)
        stat = roi_statistic(m.temperature, roi, self.statistic, mask=m.mask)
        if not math.isfinite(stat):
            self.last_power = 0.0
            self._on_wait(m)
            return Command(0.0, Reason.WAIT, state={"statistic_C": float("nan")}, detail="no measured voxel in the target ROI")
        if self.bound is None:
            self.bound = self.trajectory.bind(stat, m.time)
            self._on_start(stat, m)
            log.info("%s: trajectory %s (baseline %.2f C)", self.name, self.bound.describe(), self.bound.baseline_C)
        traj = self.bound
        t = float(m.time) - float(traj.start_s)  # type: ignore[arg-type]
        state = {"t_s": t, "statistic_C": stat}
        end = traj.end_time
        if end is not None and t >= end:
            return self._stop(Reason.TRAJECTORY_END, f"trajectory ended at {end:g} s", state)
        if traj.dose_goal is not None:
            dose = roi_statistic(m.dose, roi, traj.dose_statistic, mask=m.mask)
            state["dose_cem43"] = dose
            if math.isfinite(dose) and dose >= traj.dose_goal:
                return self._stop(Reason.GOAL_REACHED, f"ROI {traj.dose_statistic} dose {dose:.4g} >= {traj.dose_goal:g} CEM43 min", state)
        ref = traj.value(t)
        lo, hi = power_limits(self.last_power, self.p_max, self.slew, dt)
        power, law_state = self._control(m, t, stat, ref, lo, hi, dt)
        if math.isfinite(power):
            power = float(min(max(power, lo), hi))
        else:  # fail safe: a broken law never drives the transducer
            log.warning("%s: non-finite power %r from the control law; power 0", self.name, power)
            power = 0.0
        self.last_power = power
        state.update(reference_C=ref, error_C=ref - stat)
        state.update({k: float(v) for k, v in law_state.items()})
        return Command(power, Reason.CONTROL, state=state)
