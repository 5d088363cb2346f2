"""PID control of the target temperature: the textbook loop, made safe for MR thermometry.

The power for the next dynamic is

``u = kp * (w * r - y) + I + D + FF``,  ``I += ki * (r - y) * dt`` (with anti-windup),
``D = -kd * d/dt y`` through a first-order filter, ``FF = ff_rate * dr/dt + ff_static * (r - r0)``

where ``y`` is the ROI statistic of the measured temperature [C], ``r`` the reference of the
trajectory [C], ``r0`` its baseline, ``w`` the set-point weight. The derivative acts on the
measurement, not on the error (a ramp's kink or a step of the reference gives no derivative
kick), and is low-pass filtered (thermometry noise of ~0.2 C on the ROI statistic would otherwise
reach the power amplified by ``kd / dt``). ``u`` is limited to ``[0, p_max]`` and by the slew
rate; the integrator does not wind up while the command is limited (back-calculation, or
conditional integration).

Tuning
------
For a plant with steady-state gain ``K`` [C/W], time constant ``tau`` [s] and dead time
``theta`` [s] (one dynamic of latency plus half a dynamic of sample-and-hold: ``~1.5 * dt``), the
SIMC rules (Skogestad, J. Process Control 13, 291-309, 2003) with a closed-loop time constant
``tau_c`` (>= ``theta``; larger is calmer) give::

    kp = tau / (K * (tau_c + theta))        [W/C]
    ki = kp / min(tau, 4 * (tau_c + theta))  [W/(C s)]
    kd = 0                                   (a first-order plant needs none)

The defaults (``kp = 8 W/C``, ``ki = 0.35 W/(C s)``) are those rules for a bone-surface target of
``K = 0.2 C/W``, ``tau = 20 s``, ``dt = 2.5 s`` (``theta ~ 3.75 s``) and ``tau_c ~ 6 s``; they are
stable (if slow) for ``K`` from 0.05 to ~0.5 C/W and ``tau`` from 10 to 60 s. A feed-forward from a
nominal model (``ff_rate = 1 / a``, ``ff_static = 1 / K``) speeds up ramps; leave it at 0 when the
gain is unknown. Measure a plant first with a small power step (``K`` is the rise over the power,
``tau`` the time to 63 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fus.control.trajectory import Trajectory, TrajectoryFollower, check_power_limit
from fus.control.types import LoopSettings, Measurement, check_range, check_statistic
from fus.errors import InvalidParameterError

__all__ = ["PIDSettings", "PIDController", "ANTI_WINDUP"]

ANTI_WINDUP = ("back_calculation", "conditional", "none")


@dataclass
class PIDSettings(LoopSettings):
    """Settings of :class:`PIDController`.

    Attributes
    ----------
    kp : float
        Proportional gain [W/C] (>= 0).
    ki : float
        Integral gain [W/(C s)] (>= 0).
    kd : float
        Derivative gain [W s/C] (>= 0), on the measurement.
    derivative_filter_s : float
        Time constant of the first-order filter of the derivative [s] (> 0).
    setpoint_weight : float
        Weight ``w`` of the reference in the proportional term (0..1; < 1 softens the response
        to the ramp's start and end).
    statistic : str
        ROI statistic followed: ``mean``, ``median``, ``max`` or ``pNN``.
    p_max, slew, dynamic_period
        As in :class:`~fus.control.types.LoopSettings` (``slew = 10 W/s``: 25 W per 2.5 s dynamic).
    """

    section = "pid"

    kp: float = 8.0
    ki: float = 0.35
    kd: float = 0.0
    derivative_filter_s: float = 5.0
    setpoint_weight: float = 1.0
    statistic: str = "mean"
    anti_windup: str = "back_calculation"
    tracking_time_s: float | None = None
    feedforward_rate: float = 0.0
    feedforward_static: float = 0.0

    def validate(self) -> "PIDSettings":
        """Check every field; raise :class:`InvalidParameterError` naming the first bad one."""
        for name in ("kp", "ki", "kd", "feedforward_rate", "feedforward_static"):
            check_range(f"pid.{name}", getattr(self, name), 0.0)
        check_range("pid.derivative_filter_s", self.derivative_filter_s, 0.0, open_low=True)
        check_range("pid.setpoint_weight", self.setpoint_weight, 0.0, 1.0)
        check_statistic("pid.statistic", self.statistic)
        if self.anti_windup not in ANTI_WINDUP:
            raise InvalidParameterError("pid.anti_windup", self.anti_windup, f"must be one of {', '.join(ANTI_WINDUP)}")
        check_range("pid.tracking_time_s", self.tracking_time_s, 0.0, optional=True, open_low=True)
        self.validate_loop()
        if self.kp == 0 and self.ki == 0 and self.kd == 0:
            raise InvalidParameterError("pid.kp", self.kp, "kp, ki and kd are all 0: no feedback")
        return self


class PIDController(TrajectoryFollower):
    """PID tracking of a :class:`~fus.control.trajectory.Trajectory` by the target ROI statistic.

    Parameters
    ----------
    settings : PIDSettings
    target_roi : bool array (slices, rows, cols)
        The target region in image space.
    p_max : float
        Largest power the system may deliver [W] (``settings.p_max`` may lower it).
    trajectory : Trajectory or mapping
        The reference.
    """

    name = "pid"

    def __init__(self, settings: PIDSettings, target_roi: Any, *, p_max: float, trajectory: Trajectory | Mapping[str, Any]) -> None:
        self.settings = settings.validate()
        s = settings
        tt = s.tracking_time_s if s.tracking_time_s is not None else (s.kp / s.ki if s.ki > 0 and s.kp > 0 else 10.0)
        self._tracking_time = float(tt)
        super().__init__(trajectory, target_roi, p_max=check_power_limit("p_max", p_max, s.p_max), statistic=s.statistic, slew=s.slew, dynamic_period=s.dynamic_period)

    def _reset_law(self) -> None:
        self.integral = 0.0
        self.derivative = 0.0
        self._y_prev: float | None = None

    def _on_wait(self, m: Measurement) -> None:
        self._y_prev = None  # no derivative across a gap in the thermometry

    def _control(self, m: Measurement, t: float, stat: float, ref: float, lo: float, hi: float, dt: float) -> tuple[float, dict]:
        s = self.settings
        traj = self.bound
        assert traj is not None  # set by the loop before the first call
        err = ref - stat
        prop = s.kp * (s.setpoint_weight * ref - stat) + s.kp * (1.0 - s.setpoint_weight) * float(traj.baseline_C)
        if s.kd > 0.0 and self._y_prev is not None:
            tf = s.derivative_filter_s
            self.derivative = (tf * self.derivative - s.kd * (stat - self._y_prev)) / (tf + dt)
        self._y_prev = stat
        ff = s.feedforward_rate * traj.slope(t) + s.feedforward_static * (ref - float(traj.baseline_C))
        u = prop + self.integral + self.derivative + ff
        limited = min(max(u, lo), hi)
        if s.anti_windup == "back_calculation":
            self.integral += s.ki * err * dt + (limited - u) * dt / self._tracking_time
        elif s.anti_windup == "conditional":
            if not ((u > hi and err > 0.0) or (u < lo and err < 0.0)):
                self.integral += s.ki * err * dt
        else:
            self.integral += s.ki * err * dt
        state = {"p_W": prop, "i_W": self.integral, "d_W": self.derivative, "ff_W": ff, "u_W": u}
        return limited, state
