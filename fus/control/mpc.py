"""Model-predictive temperature control with an online model of the target (hyperthermia hold).

The target ROI statistic ``T`` [C] is modelled as one lumped node heated by the acoustic power
``P`` [W] and cooled towards the baseline ``T_base`` by conduction and perfusion::

    dT/dt = a * P - b * (T - T_base) + d

with the local heating gain ``a`` [C/(W s)] (absorption), the cooling rate ``b`` [1/s]
(conduction + perfusion; ``a / b`` [C/W] is the steady-state gain) and a slowly varying
disturbance ``d`` [C/s] that takes up what the model misses (a slow conduction pole, a drifting
baseline, a gain error) and gives the loop integral action (offset-free MPC).

Each dynamic, the controller

1. **learns** ``(a, b)`` by recursive least squares with exponential forgetting on the exact
   discretisation ``T_k - T_{k-1} = s * (a * P_k - b * (T_{k-1} - T_base))``, ``s = (1 - exp(-b dt)) / b``,
   from the measured statistics and ``Measurement.applied_power`` (the power actually applied
   over the interval, after the interlocks). The priors (``gain_prior``, ``cooling_prior``) start
   it with a covariance from ``gain_prior_sd`` / ``cooling_prior_sd``; the covariance is capped at
   the prior's (so forgetting cannot blow it up while the hold gives no excitation), innovations
   are clipped at ``innovation_clip`` standard deviations (one bad dynamic cannot throw the model
   away) and the estimates are clamped to the physical ranges ``gain_range`` / ``cooling_range``;
2. **filters** the state ``(T - T_base, d)`` with a Kalman filter on the current model (the ROI
   statistic's noise, ~0.2 C for 20-60 voxels at sigma_T = 1 C, is not chased);
3. **predicts** through the ``delay_dynamics`` commands already on their way to the transducer,
   and **chooses** one power held over the next ``horizon`` dynamics (move blocking) that
   minimises ``sum_j (T_j - T_ref,j)^2 + effort_weight * (P - P_prev)^2``. The cost is a quadratic in
   one variable, so its minimiser in the interval allowed by ``[0, p_max]`` and the slew limit is
   the unconstrained one clipped: the exact constrained optimum. ``horizon = 1`` is the one-step
   predictive law of Salomir et al.

References
----------
Salomir R., Vimeux F. C., de Zwart J. A., Grenier N., Moonen C. T. W., "Hyperthermia by MR-guided
focused ultrasound: accurate temperature control based on fast MRI and a physical model of local
energy deposition and heat conduction", Magn. Reson. Med. 43(3), 342-347 (2000).
de Bever J., Todd N., Payne A., Christensen D. A., Roemer R. B., "Adaptive model-predictive
controller for magnetic resonance guided focused ultrasound therapy", Int. J. Hyperthermia 30(7),
456-470 (2014).
Pannocchia G., Rawlings J. B., "Disturbance models for offset-free model-predictive control",
AIChE J. 49(2), 426-437 (2003).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fus.control.trajectory import Trajectory, TrajectoryFollower, check_power_limit
from fus.control.types import LoopSettings, Measurement, check_range, check_statistic
from fus.errors import InvalidParameterError

__all__ = ["MPCSettings", "MPCController"]


@dataclass
class MPCSettings(LoopSettings):
    """Settings of :class:`MPCController`.

    Attributes
    ----------
    statistic : str
        ROI statistic followed (``mean``: the least noisy; the model is of a mean).
    gain_prior : float
        Prior heating gain ``a`` [C/(W s)] (0.01: 0.2 C/W at a 20 s time constant).
    cooling_prior : float
        Prior cooling rate ``b`` [1/s] (0.05: a 20 s time constant).
    gain_prior_sd, cooling_prior_sd : float
        Prior standard deviations, relative to the priors (0.5 and 1.0: the absorption is known to
        +-50 %, the perfusion to a factor 2).
    gain_range : (float, float)
        Physical range of ``a`` [C/(W s)] the estimate is clamped to.
    cooling_range : (float, float)
        Physical range of ``b`` [1/s] (1/600 to 1/2: time constants 2 s to 10 min).
    estimate : bool
        Learn ``(a, b)`` online (False: keep the priors; ``d`` still corrects).
    forgetting : float
        RLS forgetting factor per dynamic (0.98: a memory of ~50 dynamics).
    estimator_window : int
        Dynamics summed in one RLS equation (the noise enters only through the window's two end
        points). 1 (one dynamic per equation) is the default: overlapping windows of 4-6 dynamics
        made the estimator overconfident and the loop overshoot more in closed-loop tests.
    innovation_clip : float
        Clip RLS and Kalman innovations at this many standard deviations.
    noise_C : float
        Standard deviation of the ROI statistic [C] (sigma_T / sqrt(voxels) for the mean).
    process_sd_C : float
        Process noise of the temperature per dynamic [C] (what the model misses at random).
    disturbance_sd : float
        Random-walk step of the disturbance ``d`` per dynamic [C/s] (larger: faster integral
        action, more noise in the power).
    horizon : int
        Prediction horizon [dynamics] over which one power level is held (8: 20 s at 2.5 s, about
        the target's time constant; shorter horizons overshoot the end of a ramp more, and free
        power moves over the horizon instead of one held level made the loop more aggressive in
        the noise).
    delay_dynamics : int
        Dynamics between a measurement and the application of the power computed from it
        (1: the command from dynamic k is applied from dynamic k+1 on; 0: at once).
    effort_weight : float
        Weight of ``(P - P_prev)^2`` in the cost [C^2/W^2] (damps the power's response to noise).
    p_max, slew, dynamic_period
        As in :class:`~fus.control.types.LoopSettings` (``slew = 10 W/s``: 25 W per 2.5 s dynamic).
    """

    section = "mpc"

    statistic: str = "mean"
    gain_prior: float = 0.01
    cooling_prior: float = 0.05
    gain_prior_sd: float = 0.5
    cooling_prior_sd: float = 1.0
    gain_range: tuple[float, float] = (1e-4, 0.2)
    cooling_range: tuple[float, float] = (1.0 / 600.0, 0.5)
    estimate: bool = True
    forgetting: float = 0.98
    estimator_window: int = 1
    innovation_clip: float = 4.0
    noise_C: float = 0.2
    process_sd_C: float = 0.1
    disturbance_sd: float = 0.002
    horizon: int = 8
    delay_dynamics: int = 1
    effort_weight: float = 1e-3

    def validate(self) -> "MPCSettings":
        """Check every field; raise :class:`InvalidParameterError` naming the first bad one."""
        check_statistic("mpc.statistic", self.statistic)
        for name, rng_name in (("gain_prior", "gain_range"), ("cooling_prior", "cooling_range")):
            rng = getattr(self, rng_name)
            if not (isinstance(rng, (tuple, list)) and len(rng) == 2):
                raise InvalidParameterError(f"mpc.{rng_name}", rng, "must be a pair (low, high)")
            low = check_range(f"mpc.{rng_name}", rng[0], 0.0, open_low=True)
            check_range(f"mpc.{rng_name}", rng[1], low, open_low=True)
            check_range(f"mpc.{name}", getattr(self, name), rng[0], rng[1])
        for name in ("gain_prior_sd", "cooling_prior_sd", "noise_C", "process_sd_C", "disturbance_sd", "innovation_clip"):
            check_range(f"mpc.{name}", getattr(self, name), 0.0, open_low=True)
        if not isinstance(self.estimate, (bool, np.bool_)):
            raise InvalidParameterError("mpc.estimate", self.estimate, "must be true or false")
        check_range("mpc.forgetting", self.forgetting, 0.5, 1.0)
        for name, high in (("horizon", 50), ("delay_dynamics", 5), ("estimator_window", 20)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not (name == "delay_dynamics" or v >= 1) or v < 0 or v > high:
                raise InvalidParameterError(f"mpc.{name}", v, f"must be an integer in [{0 if name == 'delay_dynamics' else 1}, {high}]")
        check_range("mpc.effort_weight", self.effort_weight, 0.0)
        self.validate_loop()
        return self


def _effective_time(b: float, dt: float) -> float:
    """``(1 - exp(-b dt)) / b`` [s]: the exact weight of a constant rate over ``dt``."""
    return -math.expm1(-b * dt) / b


class MPCController(TrajectoryFollower):
    """Adaptive model-predictive tracking of a trajectory by the target ROI statistic.

    Parameters
    ----------
    settings : MPCSettings
    target_roi, p_max, trajectory
        As for :class:`~fus.control.pid.PIDController`: the target region (bool, image space),
        the system's power ceiling [W] and the reference.

    Attributes
    ----------
    gain, cooling : float
        Current estimates of ``a`` [C/(W s)] and ``b`` [1/s].
    disturbance : float
        Current estimate of ``d`` [C/s].
    """

    name = "mpc"

    def __init__(self, settings: MPCSettings, target_roi: Any, *, p_max: float, trajectory: Trajectory | Mapping[str, Any]) -> None:
        self.settings = settings.validate()
        s = settings
        self._cov0 = np.diag([(s.gain_prior_sd * s.gain_prior) ** 2, (s.cooling_prior_sd * s.cooling_prior) ** 2])
        super().__init__(trajectory, target_roi, p_max=check_power_limit("p_max", p_max, s.p_max), statistic=s.statistic, slew=s.slew, dynamic_period=s.dynamic_period)

    # ------------------------------------------------------------------ state
    def _reset_law(self) -> None:
        s = self.settings
        self.theta = np.array([s.gain_prior, s.cooling_prior], dtype=np.float64)
        self.cov = self._cov0.copy()
        self.z = np.zeros(2)  # (T - T_base [C], d [C/s])
        self.zcov = np.diag([s.noise_C**2, (5.0 * s.disturbance_sd) ** 2])
        self.t_base = float("nan")
        self._n_base = 0
        self._heated = False
        self._prev: tuple[float, float] | None = None  # (time, statistic) of the last usable dynamic
        self._window: deque[tuple[float, float, float]] = deque(maxlen=s.estimator_window)  # (x_prev, P, dt)
        self._commands: deque[float] = deque([0.0] * s.delay_dynamics, maxlen=max(s.delay_dynamics, 1))
        self._period = s.dynamic_period

    @property
    def gain(self) -> float:
        return float(self.theta[0])

    @property
    def cooling(self) -> float:
        return float(self.theta[1])

    @property
    def disturbance(self) -> float:
        return float(self.z[1])

    def _on_start(self, stat: float, m: Measurement) -> None:
        self.t_base = stat
        self._n_base = 1

    def _on_wait(self, m: Measurement) -> None:
        self._prev = None  # the next usable dynamic restarts the filter from its measurement
        self._window.clear()
        self._push(0.0)

    def _push(self, power: float) -> None:
        if self.settings.delay_dynamics > 0:
            self._commands.append(power)

    # ------------------------------------------------------------------ estimation
    def _clamp(self) -> None:
        s = self.settings
        self.theta[0] = min(max(self.theta[0], s.gain_range[0]), s.gain_range[1])
        self.theta[1] = min(max(self.theta[1], s.cooling_range[0]), s.cooling_range[1])

    def _learn(self, x_now: float) -> None:
        """One RLS step on the window of the last intervals (x relative to the baseline):
        ``x_k - x_(k-m) = sum_i s_i (a P_i - b x_(i-1))``, exact for the true temperatures; the
        measurement noise of the end points telescopes to ``2 noise_C^2`` whatever ``m``."""
        s = self.settings
        b = self.theta[1]
        h = np.zeros(2)
        for x_prev, power, dt in self._window:
            eff = _effective_time(b, dt)
            h += (eff * power, -eff * x_prev)
        y = x_now - self._window[0][0]
        var = 2.0 * s.noise_C**2 + len(self._window) * s.process_sd_C**2
        ph = self.cov @ h
        sv = float(h @ ph) + var
        e = y - float(h @ self.theta)
        lim = s.innovation_clip * math.sqrt(sv)
        e = min(max(e, -lim), lim)
        k = ph / sv
        self.theta = self.theta + k * e
        self.cov = (self.cov - np.outer(k, ph)) / s.forgetting
        self.cov = 0.5 * (self.cov + self.cov.T)
        # cap the covariance at the prior's: no windup while the hold does not excite the model
        scale = np.sqrt(np.minimum(1.0, np.diag(self._cov0) / np.maximum(np.diag(self.cov), 1e-300)))
        self.cov = self.cov * np.outer(scale, scale)
        self._clamp()

    def _transition(self, dt: float) -> tuple[float, float]:
        """``(phi, s)`` of the current model over ``dt``: ``x' = phi x + s (a P + d)``."""
        b = self.theta[1]
        return math.exp(-b * dt), _effective_time(b, dt)

    def _filter(self, x_meas: float, power: float, dt: float) -> None:
        """Kalman predict (with the applied power) and update (with the measurement)."""
        s = self.settings
        phi, eff = self._transition(dt)
        f = np.array([[phi, eff], [0.0, 1.0]])
        self.z = f @ self.z + np.array([eff * self.theta[0] * power, 0.0])
        self.zcov = f @ self.zcov @ f.T + np.diag([s.process_sd_C**2, s.disturbance_sd**2])
        sv = self.zcov[0, 0] + s.noise_C**2
        nu = x_meas - self.z[0]
        lim = s.innovation_clip * math.sqrt(sv)
        nu = min(max(nu, -lim), lim)
        k = self.zcov[:, 0] / sv
        self.z = self.z + k * nu
        self.zcov = self.zcov - np.outer(k, self.zcov[0, :])

    # ------------------------------------------------------------------ control
    def _control(self, m: Measurement, t: float, stat: float, ref: float, lo: float, hi: float, dt: float) -> tuple[float, dict]:
        s = self.settings
        applied = float(m.applied_power) if math.isfinite(float(m.applied_power)) and m.applied_power >= 0.0 else None
        if not self._heated and self._prev is not None and applied == 0.0:
            # nothing applied yet: the baseline is the mean of the measurements so far
            self._n_base += 1
            self.t_base += (stat - self.t_base) / self._n_base
        elif applied is not None and applied > 0.0:
            self._heated = True
        x_now = stat - self.t_base
        if self._prev is None or applied is None:
            self.z = np.array([x_now, self.z[1]])
            self.zcov = np.diag([s.noise_C**2, max(self.zcov[1, 1], s.disturbance_sd**2)])
        else:
            t_prev, stat_prev = self._prev
            interval = float(m.time) - t_prev
            if interval > 0.0:
                self._period = interval
                self._window.append((stat_prev - self.t_base, applied, interval))
                if s.estimate and self._heated:
                    self._learn(x_now)
                self._filter(x_now, applied, interval)
        self._prev = (float(m.time), stat)
        power = self._choose(t, lo, hi)
        self._push(power)
        state = {
            "gain_C_per_Ws": self.gain,
            "cooling_per_s": self.cooling,
            "disturbance_C_per_s": self.disturbance,
            "filtered_C": float(self.z[0]) + self.t_base,
            "baseline_C": self.t_base,
        }
        return power, state

    def _choose(self, t: float, lo: float, hi: float) -> float:
        """The power held over the horizon that minimises the tracking cost, within [lo, hi].

        With one level ``P`` held, every predicted ``x_j = alpha_j + beta_j P`` is affine in
        ``P``; the cost is a parabola in ``P``, whose minimiser over an interval is the vertex
        clipped to it.
        """
        s = self.settings
        a = float(self.theta[0])
        d = float(self.z[1])
        step = self._period
        phi, eff = self._transition(step)
        x = float(self.z[0])
        for p in list(self._commands)[-s.delay_dynamics:] if s.delay_dynamics else []:
            x = phi * x + eff * (a * p + d)
        num = s.effort_weight * self.last_power
        den = s.effort_weight
        acc = 0.0  # sum_{i<j} phi^i
        phij = 1.0
        for j in range(1, s.horizon + 1):
            acc += phij
            phij *= phi
            alpha = phij * x + acc * eff * d
            beta = acc * eff * a
            r = self.bound.value(t + (s.delay_dynamics + j) * step) - self.t_base  # type: ignore[union-attr]
            num += beta * (r - alpha)
            den += beta * beta
        power = num / den if den > 0.0 else 0.0
        return float(min(max(power, lo), hi))
