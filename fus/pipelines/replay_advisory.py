"""What fus's controller and safety interlocks would have commanded at each dynamic of a replayed series.

A replayed series was acquired without fus in the loop; :class:`Advisory` runs, on each measured
dynamic as if fus had been in the loop, the ablation controller
(:class:`fus.control.binary.BinaryController`: a fixed power until every measured voxel of the
``target`` ROI has 240 CEM43, at most 60 s; only where a ``target`` ROI is given) and then fus's
:class:`fus.control.interlocks.Interlocks` (default :class:`fus.control.limits.InterlockLimits`
unless given), and writes ``advisory.csv``:

``dynamic, time_s, command, power_W, reason, detail``

``command`` is ``allow`` (every interlock check passed: ``power_W`` is what the controller asked
for, ``reason`` its reason: ``control`` while sonicating, ``goal_reached`` once the target has
its dose, ``wait`` when the target is not measured) or ``stop`` (power 0 W: ``reason`` names the
interlock, and a trip latches, as it does in treatment, so every later dynamic reads ``stop``
too). Without a ``target`` ROI there is no controller and ``power_W`` is 0. The power is the
nominal ``controller_power`` (default 30 W, the shipped ablation scenario's): the replay does not
know the device, so read it as "on" / "off"; the energy budget is charged with it. ROIs named ``skin``, ``near_field``,
``cord`` or ``body`` (``fus replay --roi skin=sphere:...``) take those roles; without ROIs the
maximum-temperature check watches every measured voxel and the thermometry-quality checks
(unmeasured fraction, median sigma_T) are off, since they need an ROI to be meaningful.

The dynamics arrive without a latency (their acquisition time is when they would have been
available) and without the magnitude correlation, so the latency and motion checks are not
part of the advice; the watchdog and stuck-frame (a map identical to the previous one) checks are.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fus.control.binary import BinaryController, BinarySettings
from fus.control.interlocks import Interlocks
from fus.control.limits import InterlockLimits
from fus.control.types import Command, Measurement, Reason

__all__ = ["Advisory", "ADVISORY_COLUMNS"]

log = logging.getLogger(__name__)

ADVISORY_COLUMNS = ("dynamic", "time_s", "command", "power_W", "reason", "detail")
# reasons of a command the interlocks let through (the controller's own, or a cooling wait)
_CONTROLLER_REASONS = (Reason.CONTROL, Reason.WAIT, Reason.GOAL_REACHED, Reason.TRAJECTORY_END, Reason.COOLING)


class Advisory:
    """Interlock advice per dynamic (see the module docstring).

    Parameters
    ----------
    shape : tuple of int
        (slices, rows, cols) of the thermometry.
    rois : dict str -> bool array (slices, rows, cols)
        The replay's ROIs (may be empty).
    dynamic_period : float
        Time between dynamics [s].
    baseline_temperature : float
        Body temperature of the thermometry [C].
    limits : InterlockLimits, optional
        Default: ``InterlockLimits()``.
    controller_power : float
        Power the ablation controller asks for while sonicating [W] (default 30).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        rois: Mapping[str, Any],
        dynamic_period: float,
        baseline_temperature: float = 37.0,
        limits: InterlockLimits | None = None,
        controller_power: float = 30.0,
    ) -> None:
        roi = {str(k): np.asarray(v, dtype=bool) for k, v in rois.items() if np.asarray(v).any()}
        watched: list[str] | None = None
        if not roi:
            roi = {"body": np.ones(shape, dtype=bool)}
            watched = []
        self.interlocks = Interlocks(
            limits or InterlockLimits(), roi, dynamic_period=dynamic_period,
            baseline_temperature=baseline_temperature, watched=watched,
        )
        self.controller = None
        if "target" in roi:
            self.controller = BinaryController(BinarySettings(power=controller_power, dynamic_period=dynamic_period), roi["target"],
                                               p_max=controller_power)
        self.rows: list[list[Any]] = []
        self._started = False

    def step(self, index: int, time_s: float, temperature: np.ndarray, sigma_t: np.ndarray, mask: np.ndarray, dose: np.ndarray) -> str:
        """Advise on one dynamic; returns ``"allow"`` or ``"stop"``."""
        if not self._started:
            self.interlocks.start(float(time_s))
            self._started = True
        m = Measurement(index=int(index), time=float(time_s), temperature=temperature, sigma_t=sigma_t, mask=mask,
                        dose=dose, available_time=float(time_s))
        asked = self.controller.update(m) if self.controller is not None else Command(power=0.0, reason=Reason.CONTROL)
        out = self.interlocks.check(m, asked, float(time_s))
        command = "allow" if out.reason in _CONTROLLER_REASONS else "stop"
        if out.power > 0.0:
            self.interlocks.account(out.power, self.interlocks.dynamic_period, float(time_s))
        self.rows.append([int(index), f"{float(time_s):.3f}", command, f"{out.power:g}", str(out.reason), out.detail])
        return command

    @property
    def first_stop(self) -> list[Any] | None:
        """The first ``stop`` row, or None."""
        return next((r for r in self.rows if r[2] == "stop"), None)

    def write(self, path: str | Path) -> Path:
        """Write ``advisory.csv``."""
        p = Path(path)
        with open(p, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(ADVISORY_COLUMNS)
            w.writerows(self.rows)
        return p
