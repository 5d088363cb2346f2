"""Binary (on/off) feedback for ablation: full power until the sub-target is treated, then next.

After the volumetric ablation feedback of the Philips Sonalleve (Köhler et al., "Volumetric HIFU
ablation under 3D guidance of rapid MRI thermometry", Med. Phys. 36(8), 3521-3535, 2009): the
sonication runs at a fixed power on sub-target ``i`` (a focus point or trajectory cell, each with
its ROI in image space) until that ROI reaches its goal, then moves to sub-target ``i + 1``
(``Command.target``), and stops after the last (``Reason.GOAL_REACHED``, ``stop=True``).

The goal of a sub-target: at least ``dose_fraction`` of its measured voxels at ``>= dose_goal``
CEM43 minutes (240: thermal necrosis, Sapareto & Dewey 1984), or -- when ``temperature_goal`` is
set -- its ``statistic`` at ``>= temperature_goal`` [C], whichever comes first.

A sub-target that has not reached its goal after ``max_time_s`` of sonication (counted from its
first usable dynamic) ends the sonication with ``Reason.TRAJECTORY_END`` (``on_timeout = "stop"``,
the default: a target that does not heat as planned is a reason to look, not to push on), or with
``on_timeout = "next"`` the controller moves on to the next sub-target (and ends with
``TRAJECTORY_END`` after the last).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fus.control.trajectory import check_power_limit, check_roi
from fus.control.types import Command, LoopSettings, Measurement, Reason, check_range, check_statistic, power_limits, roi_statistic
from fus.errors import InvalidParameterError

__all__ = ["BinarySettings", "BinaryController", "ON_TIMEOUT"]

log = logging.getLogger(__name__)

ON_TIMEOUT = ("stop", "next")


@dataclass
class BinarySettings(LoopSettings):
    """Settings of :class:`BinaryController`.

    Attributes
    ----------
    power : float or None
        Sonication power [W]; ``None``: ``p_max``.
    dose_goal : float
        Thermal dose a voxel must reach [CEM43 min] (240: necrosis).
    dose_fraction : float
        Fraction of the sub-target's measured voxels that must reach ``dose_goal`` (0 < f <= 1).
    temperature_goal : float or None
        Alternatively, the ROI ``statistic`` [C] that ends the sub-target (e.g. 55 C for
        periosteal ablation); ``None``: the dose alone decides.
    statistic : str
        ROI statistic compared with ``temperature_goal``.
    max_time_s : float
        Longest sonication of one sub-target [s].
    on_timeout : str
        ``stop`` (end the sonication, ``TRAJECTORY_END``) or ``next`` (move on).
    p_max, slew, dynamic_period
        As in :class:`~fus.control.types.LoopSettings` (here ``slew = inf``: the power is
        switched on at once).
    """

    section = "binary"

    power: float | None = None
    dose_goal: float = 240.0
    dose_fraction: float = 1.0
    temperature_goal: float | None = None
    statistic: str = "mean"
    max_time_s: float = 60.0
    on_timeout: str = "stop"
    slew: float = math.inf  # replaces LoopSettings.slew

    def validate(self) -> "BinarySettings":
        """Check every field; raise :class:`InvalidParameterError` naming the first bad one."""
        check_range("binary.power", self.power, 0.0, optional=True, open_low=True)
        check_range("binary.dose_goal", self.dose_goal, 0.0, open_low=True)
        check_range("binary.dose_fraction", self.dose_fraction, 0.0, 1.0, open_low=True)
        check_range("binary.temperature_goal", self.temperature_goal, 37.0, 100.0, optional=True)
        check_statistic("binary.statistic", self.statistic)
        check_range("binary.max_time_s", self.max_time_s, 0.0, open_low=True)
        if self.on_timeout not in ON_TIMEOUT:
            raise InvalidParameterError("binary.on_timeout", self.on_timeout, f"must be one of {', '.join(ON_TIMEOUT)}")
        self.validate_loop()
        return self


def dose_fraction(dose: Any, roi: Any, goal: float, mask: Any = None) -> float:
    """Fraction of the measured voxels of ``roi`` whose ``dose`` is ``>= goal``; NaN when none is
    measured (``dose`` of the array module of the maps; NaN dose: not measured)."""
    sel = roi & (dose == dose)  # finite or inf, not NaN
    if mask is not None:
        sel = sel & mask.astype(bool)
    n = int(sel.sum())
    if n == 0:
        return float("nan")
    return float(int((dose[sel] >= goal).sum())) / n


class BinaryController:
    """Fixed-power sonication of a sequence of sub-targets, each until its goal.

    Parameters
    ----------
    settings : BinarySettings
    target_roi : bool array (slices, rows, cols)
        The target in image space: the only sub-target when ``sub_targets`` is None.
    p_max : float
        Largest power the system may deliver [W].
    sub_targets : sequence of bool arrays, optional
        The sub-targets' ROIs in order (``Command.target`` is the index), each of the shape of
        ``target_roi``.
    """

    name = "binary"

    def __init__(self, settings: BinarySettings, target_roi: Any, *, p_max: float, sub_targets: Sequence[Any] | None = None) -> None:
        self.settings = settings.validate()
        self.roi = check_roi("target_roi", target_roi)
        if sub_targets is None:
            self.sub_targets = [self.roi]
        else:
            if isinstance(sub_targets, np.ndarray) and sub_targets.ndim == 3:
                raise InvalidParameterError("sub_targets", f"array of shape {sub_targets.shape}", "must be a sequence of ROIs (a 4-D array or a list of 3-D masks)")
            self.sub_targets = [check_roi(f"sub_targets[{i}]", r, self.roi.shape) for i, r in enumerate(sub_targets)]
            if not self.sub_targets:
                raise InvalidParameterError("sub_targets", "[]", "must hold at least one ROI (or be None)")
        self.p_max = check_power_limit("p_max", p_max, settings.p_max)
        self.power = min(settings.power, self.p_max) if settings.power is not None else self.p_max
        self._cache: dict[tuple[int, int], Any] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the first sub-target, nothing sonicated."""
        self.index = 0
        self.last_power = 0.0
        self._started: float | None = None
        self._prev_time: float | None = None
        self._stopped: Command | None = None

    def _roi(self, i: int, xp: Any) -> Any:
        key = (i, id(xp))
        if key not in self._cache:
            self._cache[key] = xp.asarray(self.sub_targets[i])
        return self._cache[key]

    def _stop(self, reason: Reason, detail: str, state: dict) -> Command:
        self.last_power = 0.0
        self._stopped = Command(0.0, reason, stop=True, target=self.index, state=state, detail=detail)
        log.info("binary: %s (%s)", reason, detail)
        return self._stopped

    def update(self, measurement: Measurement) -> Command:
        """The command until the next measurement (see the module docstring for the rules)."""
        m = measurement
        s = self.settings
        if self._stopped is not None:
            return self._stopped
        prev, self._prev_time = self._prev_time, float(m.time)
        dt = float(m.time) - prev if prev is not None and float(m.time) > prev else s.dynamic_period
        xp = m.xp
        roi = self._roi(self.index, xp)
        stat = roi_statistic(m.temperature, roi, s.statistic, mask=m.mask)
        frac = dose_fraction(m.dose, roi, s.dose_goal, m.mask)
        state = {"sub_target": float(self.index), "statistic_C": stat, "dose_fraction": frac}
        if not math.isfinite(stat):
            self.last_power = 0.0
            return Command(0.0, Reason.WAIT, target=self.index, state=state, detail=f"no measured voxel in sub-target {self.index}")
        if self._started is None:
            self._started = float(m.time)
        t = float(m.time) - self._started
        state["t_s"] = t
        reached = (math.isfinite(frac) and frac >= s.dose_fraction) or (s.temperature_goal is not None and stat >= s.temperature_goal)
        last = self.index == len(self.sub_targets) - 1
        detail = ""
        if reached or t >= s.max_time_s:
            why = f"goal reached (dose fraction {frac:.3f}, {s.statistic} {stat:.2f} C)" if reached else f"not reached in {s.max_time_s:g} s"
            if last or (not reached and s.on_timeout == "stop"):
                return self._stop(Reason.GOAL_REACHED if reached else Reason.TRAJECTORY_END, f"sub-target {self.index}: {why}", state)
            detail = f"sub-target {self.index}: {why}; moving to {self.index + 1}"
            log.info("binary: %s", detail)
            self.index += 1
            self._started = float(m.time)
            state["sub_target"] = float(self.index)
        lo, hi = power_limits(self.last_power, self.p_max, s.slew, dt)
        self.last_power = float(min(max(self.power, lo), hi))
        return Command(self.last_power, Reason.CONTROL, target=self.index, state=state, detail=detail)
