"""Safety interlocks of the closed loop: separate from the controller, always on, latching.

Every command of the controller passes :meth:`Interlocks.check` with the measurement it was
made from. A check that fails sets the power to zero at once (``Command.zero``), records a
:class:`Trip`, and latches: every later command is zero with the first trip's reason until the
operator calls :meth:`Interlocks.reset`. No controller can override an interlock: the loop calls

- :meth:`Interlocks.start` when the treatment clock starts (arms the watchdog);
- :meth:`Interlocks.guard` (or :meth:`Interlocks.check` with the controller's command) at each
  dynamic;
- :meth:`Interlocks.watchdog` (or :meth:`Interlocks.check_timeout`) at every decision point, also
  while no dynamic arrives;
- :meth:`Interlocks.account` with the power actually applied and for how long (the budgets);
- :meth:`Interlocks.end_sonication` when a sonication ends other than by a command with
  ``stop=True`` (the cooling wait before the next one).

What is checked (limits and their clinical reasons: :class:`fus.control.limits.InterlockLimits`):
temperatures (maximum over the measured body or the ``body`` ROI, skin, near field, spinal cord,
cord CEM43 dose), thermometry quality over the watched ROIs (unmeasured fraction, median
sigma_T, magnitude correlation against the baseline, a stuck frame), the watchdog (no dynamic,
or a late one) and the energy / sonication-time budgets. The cooling condition (a sonication
starts only when the near field is back within a margin of its baseline) is a :class:`Hold`,
not a trip: it blocks power without latching.

NaN is never compared silently: a statistic that is NaN fails its check, and an organ at risk
with no measured voxel trips ``THERMOMETRY_NAN`` (what cannot be seen cannot be protected).
An exception inside the checks themselves trips ``LOOP_EXCEPTION``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fus.backend import array_module, asnumpy
from fus.control.limits import ROLE_LIMITS, InterlockLimits
from fus.control.types import Command, Measurement, Reason, roi_statistic
from fus.errors import InvalidParameterError

__all__ = ["Trip", "Hold", "Interlocks", "InterlockLimits"]

log = logging.getLogger(__name__)

_NAN = float("nan")
#: relative slack of the budget comparisons (float sums of many dynamics)
_BUDGET_RTOL = 1e-9
#: the roles an ROI name may have beyond "watched" (all others are only watched)
_ROLES = ("body", "skin", "near_field", "cord")


def _json(x: Any) -> Any:
    """``x`` for JSON: a non-finite float becomes None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class Trip:
    """One interlock trip: why the power went to zero.

    Attributes
    ----------
    time_s : float
        When it tripped [s] (treatment clock, the ``now`` of the call).
    reason : Reason
    roi : str or None
        The ROI concerned (None for the whole map, the watchdog, budgets, exceptions).
    value : float
        The value found (in the limit's unit: C, CEM43 min, fraction, s, J); NaN if none.
    limit : float
        The limit it broke (NaN where there is none, e.g. an exception).
    dynamic : int or None
        Index of the dynamic concerned (None when no dynamic was seen yet).
    detail : str
        One line for the log.
    """

    time_s: float
    reason: Reason
    roi: str | None
    value: float
    limit: float
    dynamic: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN / inf -> None, the reason as its string)."""
        d = {k: _json(v) for k, v in asdict(self).items()}
        d["reason"] = str(self.reason)
        return d


@dataclass
class Hold:
    """A cooling hold: power blocked (not latched) until the near field is back near baseline.

    Attributes
    ----------
    start_s : float
        When a command with power > 0 was first blocked [s].
    dynamic : int or None
        The dynamic at the start.
    value : float
        Near-field maximum at the start [C].
    limit : float
        Baseline + cooling margin [C].
    detail : str
    end_s : float or None
        When the near field was back within the margin [s] (None while holding).
    end_dynamic : int or None
    reason : Reason
        Always ``Reason.COOLING``.
    """

    start_s: float
    dynamic: int | None
    value: float
    limit: float
    detail: str
    end_s: float | None = None
    end_dynamic: int | None = None
    reason: Reason = Reason.COOLING

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None)."""
        d = {k: _json(v) for k, v in asdict(self).items()}
        d["reason"] = str(self.reason)
        return d


def _worse(a: tuple[float, str | None], b: tuple[float, str | None]) -> tuple[float, str | None]:
    """The worse of two (value, ROI) pairs: the larger value, NaN (unknown) worst of all."""
    if a[1] is None:
        return b
    if math.isnan(a[0]):
        return a
    return b if math.isnan(b[0]) or b[0] > a[0] else a


def _finite(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidParameterError(name, value, "must be a finite number")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0.0):
        raise InvalidParameterError(name, value, "must be finite" + (" and > 0" if positive else ""))
    return v


def _checked_rois(rois: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The ROIs as host bool arrays of one 3-D shape, none empty."""
    if not isinstance(rois, Mapping) or not rois:
        raise InvalidParameterError("rois", rois if not isinstance(rois, Mapping) else "{}", "must be a non-empty dict name -> bool array (slices, rows, cols)")
    out: dict[str, np.ndarray] = {}
    shape = None
    for name, roi in rois.items():
        a = asnumpy(roi)
        if a.dtype != bool:
            if a.dtype.kind not in "biu" or not np.isin(a, (0, 1)).all():
                raise InvalidParameterError(f"rois[{name!r}]", f"dtype {a.dtype}", "must be a bool (or 0 / 1) array")
            a = a.astype(bool)
        if a.ndim != 3:
            raise InvalidParameterError(f"rois[{name!r}]", f"shape {a.shape}", "must be 3-D (slices, rows, cols)")
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise InvalidParameterError(f"rois[{name!r}]", f"shape {a.shape}", f"must match the other ROIs' shape {shape}")
        if not a.any():
            raise InvalidParameterError(f"rois[{name!r}]", "no voxel", "an empty ROI protects nothing")
        out[str(name)] = np.ascontiguousarray(a)
    return out


class Interlocks:
    """The always-on safety interlocks of one treatment.

    Parameters
    ----------
    limits : InterlockLimits
    rois : dict str -> bool array (slices, rows, cols)
        ROIs in image space. Roles by name: ``"skin"``, ``"near_field"``, ``"cord"`` (organ at
        risk), ``"body"`` (where the maximum temperature is taken; default: every measured voxel);
        any other name (``"target"``, ...) is only watched for thermometry quality. A missing
        role switches its checks off (logged once at INFO); a limit set explicitly for a missing
        role is refused.
    dynamic_period : float
        Time between two dynamics [s] (the watchdog, the latency and the budget look-ahead).
    baseline_temperature : float
        Body temperature the PRF thermometry is referenced to [C] (the near field's baseline for
        the cooling condition).
    watched : sequence of str, optional
        ROIs whose thermometry quality is checked (unmeasured fraction, median sigma_T); default
        every ROI given.

    Raises
    ------
    InvalidParameterError
        Bad limits, ROIs, period or baseline; a limit given for a role without an ROI.

    Notes
    -----
    Trips latch until :meth:`reset`, which is the operator's acknowledgement (after looking at
    the images): it clears the latch, re-arms the watchdog and keeps the trip history, the
    budgets spent and the cooling condition (a sonication after a reset waits for the near field
    like any other). A budget that is spent stays spent: power > 0 after a reset trips again.
    """

    def __init__(
        self,
        limits: InterlockLimits,
        rois: Mapping[str, Any],
        *,
        dynamic_period: float,
        baseline_temperature: float = 37.0,
        watched: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(limits, InterlockLimits):
            raise InvalidParameterError("limits", type(limits).__name__, "must be an InterlockLimits (InterlockLimits.from_mapping for a TOML table)")
        limits.validate()
        self.limits = limits
        self.dynamic_period = _finite("dynamic_period", dynamic_period, positive=True)
        self.baseline_temperature = _finite("baseline_temperature", baseline_temperature)
        self._rois = _checked_rois(rois)
        self.shape: tuple[int, ...] = next(iter(self._rois.values())).shape
        self._counts = {k: int(v.sum()) for k, v in self._rois.items()}
        self.watched: tuple[str, ...] = tuple(self._rois) if watched is None else tuple(str(w) for w in watched)
        for w in self.watched:
            if w not in self._rois:
                raise InvalidParameterError("watched", w, f"is not one of the ROIs given ({', '.join(self._rois)})")
        for role, names in ROLE_LIMITS.items():
            if role in self._rois:
                continue
            given = [n for n in names if limits.is_given(n)]
            if given:
                raise InvalidParameterError(given[0], getattr(limits, given[0]), f"is given but there is no {role!r} ROI (ROIs given: {', '.join(self._rois)})")
            log.info("interlocks: no %r ROI: %s check(s) off", role, ", ".join(names))
        for name in ("max_temperature_C", "skin_max_C", "near_field_max_C", "cord_max_C"):
            value = getattr(limits, name)
            if value is not None and value <= self.baseline_temperature:
                raise InvalidParameterError(name, value, f"must be above the baseline temperature {self.baseline_temperature:g} C (it would trip at once)")
        self._device: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._trips: list[Trip] = []
        self._holds: list[Hold] = []
        self.resets: list[dict[str, Any]] = []
        self._latched: Trip | None = None
        self._hold: Hold | None = None
        self._in_sonication = False
        self._ref_time: float | None = None
        self._prev_map: Any = None
        self._prev_index: int | None = None
        self.energy_J = 0.0
        self.sonication_s = 0.0
        self._values: dict[str, Any] = {}
        self._last_now = _NAN

    # ------------------------------------------------------------------------------ properties
    @property
    def tripped(self) -> bool:
        """True while a trip is latched (until :meth:`reset`)."""
        return self._latched is not None

    @property
    def first_trip(self) -> Trip | None:
        """The trip that latched (its reason is every command's reason until :meth:`reset`)."""
        return self._latched

    @property
    def trips(self) -> list[Trip]:
        """Every trip recorded, oldest first (kept across resets)."""
        return list(self._trips)

    @property
    def holds(self) -> list[Hold]:
        """Every cooling hold, oldest first (the last one has ``end_s`` None while holding)."""
        return list(self._holds)

    @property
    def holding(self) -> bool:
        """True while a cooling hold blocks power."""
        return self._hold is not None

    def _active(self, role: str, limit_name: str) -> float | None:
        """The limit of a role check, or None where the ROI is missing or the limit is off."""
        return getattr(self.limits, limit_name) if role in self._rois else None

    # ------------------------------------------------------------------------------ the loop's calls
    def start(self, now: float) -> None:
        """Arm the watchdog at ``now`` [s] (the start of the treatment clock)."""
        self._ref_time = float(now)

    def end_sonication(self, now: float) -> None:
        """Mark the current sonication as ended at ``now`` [s]: the next one waits for cooling.

        A command with ``stop=True`` and a trip end a sonication too.
        """
        if self._in_sonication:
            log.info("interlocks: sonication ended at t=%.3f s", float(now))
        self._in_sonication = False

    def reset(self, now: float, note: str = "") -> None:
        """The operator's acknowledgement of a trip: clear the latch and re-arm the watchdog.

        Parameters
        ----------
        now : float
            Time of the reset [s].
        note : str
            Who / why, for the log.
        """
        now = float(now)
        first = self._latched
        self.resets.append({"time_s": now, "cleared": None if first is None else str(first.reason), "note": str(note)})
        if first is None:
            log.info("interlocks: reset at t=%.3f s with nothing tripped", now)
        else:
            log.warning("interlocks: reset by the operator at t=%.3f s (tripped at t=%.3f s: %s: %s)%s", now, first.time_s, first.reason, first.detail, f" -- {note}" if note else "")
        self._latched = None
        self._ref_time = now

    def check(self, measurement: Measurement, command: Command, now: float) -> Command:
        """Run every check on ``measurement`` and return ``command`` or its zero-power version.

        Parameters
        ----------
        measurement : Measurement
            The dynamic the command was made from.
        command : Command
            What the controller asks for.
        now : float
            The time of the decision [s] (treatment clock).

        Returns
        -------
        Command
            ``command`` unchanged when every check passes; ``command.zero(reason, detail)`` (power
            0 at once, ``stop=True``) on a trip or while a trip is latched (with the first
            reason); power 0 with ``Reason.COOLING`` (``stop=False``) while a cooling hold blocks
            the start of a sonication.
        """
        now = float(now)
        self._last_now = now
        if self._ref_time is None:
            self._ref_time = now
        index = getattr(measurement, "index", None)
        try:
            found = self._evaluate(measurement, now)
        except Exception as exc:  # noqa: BLE001 - fail safe: the interlocks themselves failed
            log.exception("interlocks: the checks of dynamic %s failed", index)
            found = [Trip(now, Reason.LOOP_EXCEPTION, None, _NAN, _NAN, index, f"interlock checks failed: {type(exc).__name__}: {exc}")]
            self._values = {}
        if not found and self._latched is None and command.power > 0.0:
            reason = self.would_exceed(command.power, self.dynamic_period)
            if reason is not None:
                found.append(self._budget_trip(reason, now, index, command.power, self.dynamic_period))
        if found:
            self._trip(found)
        return self._decide(command, now, index)

    def guard(self, fn: Callable[[Measurement], Command], measurement: Measurement, now: float) -> Command:
        """Call the controller (``fn(measurement)``, e.g. ``controller.update``) and check its command.

        An exception inside ``fn`` (or a result that is not a :class:`Command`) trips
        ``CONTROLLER_EXCEPTION`` with the exception's type and message in the detail (logged at
        ERROR with the traceback); the measurement is checked all the same.
        """
        now = float(now)
        try:
            command = fn(measurement)
            if not isinstance(command, Command):
                raise TypeError(f"the controller returned {type(command).__name__}, not a Command")
        except Exception as exc:  # noqa: BLE001 - fail safe: any controller failure stops the power
            detail = f"{type(exc).__name__}: {exc}"
            log.error("interlocks: the controller raised at dynamic %s: %s", getattr(measurement, "index", None), detail, exc_info=True)
            self._trip([Trip(now, Reason.CONTROLLER_EXCEPTION, None, _NAN, _NAN, getattr(measurement, "index", None), detail)])
            command = Command(0.0, Reason.CONTROLLER_EXCEPTION, stop=True, detail=detail)
        return self.check(measurement, command, now)

    def check_timeout(self, now: float) -> Trip | None:
        """The watchdog: trip ``WATCHDOG`` when no dynamic arrived within ``watchdog_factor`` x the
        dynamic period of the previous one (or of :meth:`start` / :meth:`reset`; a first call
        before any of them arms the watchdog at ``now``).

        Returns
        -------
        Trip or None
            The trip made by this call (None when it passes, or when a trip is already latched).
        """
        now = float(now)
        if self._ref_time is None:
            self._ref_time = now
            return None
        gap = now - self._ref_time
        limit = self.limits.watchdog_factor * self.dynamic_period
        if gap <= limit or self._latched is not None:
            return None
        trip = Trip(now, Reason.WATCHDOG, None, gap, limit, self._prev_index, f"no new dynamic for {gap:.3g} s (limit {limit:.3g} s)")
        self._trip([trip])
        return trip

    def watchdog(self, now: float) -> Command | None:
        """:meth:`check_timeout`, as a command: a zero-power command while a trip is latched
        (by the watchdog or anything before it), else None (no objection)."""
        self.check_timeout(now)
        if self._latched is None:
            return None
        return Command(0.0, self._latched.reason, stop=True, detail=f"tripped: {self._latched.detail}")

    def would_exceed(self, power: float, duration: float) -> Reason | None:
        """The budget that ``power`` [W] for ``duration`` [s] would overshoot, or None."""
        budget = self.limits.energy_budget_J
        if budget is not None and self.energy_J + power * duration > budget * (1.0 + _BUDGET_RTOL):
            return Reason.ENERGY_BUDGET
        budget = self.limits.sonication_budget_s
        if budget is not None and power > 0.0 and self.sonication_s + duration > budget * (1.0 + _BUDGET_RTOL):
            return Reason.DURATION_BUDGET
        return None

    def account(self, power: float, duration: float, now: float | None = None) -> Trip | None:
        """Book ``power`` [W] applied for ``duration`` [s]; trip a budget that is now exceeded.

        :meth:`check` refuses a command that would overshoot a budget within one dynamic period,
        so the budget is overshot only when the power ran longer than a period (a late dynamic).

        Returns
        -------
        Trip or None
            The budget trip made by this call.
        """
        p = _finite("power", power)
        d = _finite("duration", duration)
        if p < 0.0 or d < 0.0:
            raise InvalidParameterError("power" if p < 0.0 else "duration", p if p < 0.0 else d, "must be >= 0")
        self.energy_J += p * d
        if p > 0.0:
            self.sonication_s += d
        t = float(now) if now is not None else self._last_now
        for reason, spent, budget in ((Reason.ENERGY_BUDGET, self.energy_J, self.limits.energy_budget_J), (Reason.DURATION_BUDGET, self.sonication_s, self.limits.sonication_budget_s)):
            if budget is not None and spent > budget * (1.0 + _BUDGET_RTOL) and self._latched is None:
                trip = Trip(t, reason, None, spent, budget, self._prev_index, f"{reason}: {spent:.6g} spent of {budget:.6g}")
                self._trip([trip])
                return trip
        return None

    def fail(self, reason: Reason, now: float, detail: str) -> Command:
        """Trip ``reason`` for a failure the loop itself met (bad data, an exception outside the
        controller): the power goes to zero at once and the trip is recorded like any other."""
        self._trip([Trip(float(now), Reason(reason), None, _NAN, _NAN, self._prev_index, detail)])
        return Command(0.0, Reason(reason), stop=True, detail=detail)

    # ------------------------------------------------------------------------------ internals
    def _budget_trip(self, reason: Reason, now: float, index: int | None, power: float, duration: float) -> Trip:
        if reason is Reason.ENERGY_BUDGET:
            value, limit, unit = self.energy_J + power * duration, self.limits.energy_budget_J, "J"
        else:
            value, limit, unit = self.sonication_s + duration, self.limits.sonication_budget_s, "s"
        return Trip(now, reason, None, value, float(limit), index, f"{reason}: {power:.4g} W for {duration:.4g} s would reach {value:.6g} {unit} (budget {limit:.6g} {unit})")

    def _trip(self, found: list[Trip]) -> None:
        """Record ``found`` and latch the first; while latched, only trips of the same decision
        (same time and dynamic as the latching one) are still recorded."""
        first = self._latched
        if first is not None:
            found = [t for t in found if t.time_s == first.time_s and t.dynamic == first.dynamic]
        for t in found:
            log.warning("interlock trip at t=%.3f s, dynamic %s: %s%s: %s", t.time_s, t.dynamic, t.reason, f" ({t.roi})" if t.roi else "", t.detail)
        self._trips.extend(found)
        if first is None and found:
            self._latched = found[0]
            self._in_sonication = False
            if self._hold is not None:
                self._close_hold(found[0].time_s, found[0].dynamic, "ended by a trip")

    def _close_hold(self, now: float, index: int | None, why: str) -> None:
        hold = self._hold
        assert hold is not None  # internal invariant, not user input
        hold.end_s, hold.end_dynamic = now, index
        log.info("interlocks: cooling hold from t=%.3f s %s at t=%.3f s", hold.start_s, why, now)
        self._hold = None

    def _decide(self, command: Command, now: float, index: int | None) -> Command:
        """The command after the latch and the cooling condition."""
        if self._latched is not None:
            first = self._latched
            return command.zero(first.reason, first.detail if first.time_s == now and first.dynamic == index else f"tripped: {first.detail}")
        margin = self._active("near_field", "cooling_margin_C")
        if margin is not None:
            nf = self._values.get("near_field_p95_C", _NAN)
            limit = self.baseline_temperature + margin
            cooled = nf <= limit  # False for NaN: an unseen near field is not cool
            if self._hold is not None and cooled:
                self._close_hold(now, index, "released: near field back within the margin")
            if command.power > 0.0 and not self._in_sonication and not cooled:
                detail = f"cooling: near-field p95 {nf:.2f} C > baseline {self.baseline_temperature:g} C + {margin:g} C"
                if self._hold is None:
                    self._hold = Hold(now, index, nf, limit, detail)
                    self._holds.append(self._hold)
                    log.info("interlocks: cooling hold at t=%.3f s (%s)", now, detail)
                return command.zero(Reason.COOLING, detail, stop=False)
        if command.power > 0.0 and not self._in_sonication:
            self._in_sonication = True
            log.info("interlocks: sonication started at t=%.3f s", now)
        if command.stop:
            self._in_sonication = False
        return command

    def _on(self, xp: Any) -> dict[str, Any]:
        """The ROIs (and an all-True map) as arrays of ``xp``, copied once per module."""
        cached = self._device.get(id(xp))
        if cached is None:
            rois = {k: (v if xp is np else xp.asarray(v)) for k, v in self._rois.items()}
            rois[""] = xp.ones(self.shape, dtype=bool)
            cached = (xp, rois)
            self._device[id(xp)] = cached
        return cached[1]

    def _evaluate(self, m: Measurement, now: float) -> list[Trip]:
        """Every check on ``m``; fills the status values; returns the trips found."""
        lim = self.limits
        temp = m.temperature
        xp = array_module(temp)
        for name in ("temperature", "sigma_t", "mask", "dose"):
            shape = tuple(getattr(m, name).shape)
            if shape != self.shape:
                raise InvalidParameterError(f"measurement.{name}", f"shape {shape}", f"must match the ROIs' shape {self.shape}")
        index = int(m.index)
        rois = self._on(xp)
        measured = xp.asarray(m.mask).astype(bool) & xp.isfinite(temp)
        found: list[Trip] = []
        values: dict[str, Any] = {}

        def trip(reason: Reason, roi: str | None, value: float, limit: float, detail: str) -> None:
            found.append(Trip(now, reason, roi, float(value), float(limit), index, detail))

        # -- timing: the gap since the previous dynamic, and the latency of this one
        arrival = float(m.available_time) if m.available_time is not None else now
        gap = arrival - (self._ref_time if self._ref_time is not None else arrival)
        watchdog = lim.watchdog_factor * self.dynamic_period
        if not gap <= watchdog:
            trip(Reason.WATCHDOG, None, gap, watchdog, f"dynamic {index} came {gap:.3g} s after the previous one (limit {watchdog:.3g} s)")
        latency = arrival - float(m.time)
        late = lim.latency_factor * self.dynamic_period
        if not latency <= late:
            trip(Reason.WATCHDOG, None, latency, late, f"late: dynamic {index} reached the loop {latency:.3g} s after its acquisition (limit {late:.3g} s)")
        self._ref_time = max(arrival, self._ref_time if self._ref_time is not None else arrival)
        values.update(latency_s=latency, dynamic_gap_s=gap)

        # -- a stuck frame: flagged, the same index again, or the very same map
        if lim.stuck_frame:
            if m.repeated:
                trip(Reason.STUCK_FRAME, None, 1.0, 0.0, f"the scanner flagged dynamic {index} as a repeat of the previous one")
            elif self._prev_index is not None and index == self._prev_index:
                trip(Reason.STUCK_FRAME, None, 1.0, 0.0, f"dynamic index {index} received twice")
            elif self._prev_map is not None and bool(xp.array_equal(self._prev_map, temp, equal_nan=True)):
                trip(Reason.STUCK_FRAME, None, 1.0, 0.0, f"temperature map of dynamic {index} identical to dynamic {self._prev_index} (stuck frame)")
            self._prev_map = temp.copy()
        self._prev_index = index

        # -- motion (NaN: not computed, skipped)
        corr = float(m.magnitude_correlation)
        values["magnitude_correlation"] = corr
        if not math.isnan(corr) and not corr >= lim.magnitude_correlation_min:
            trip(Reason.MOTION, None, corr, lim.magnitude_correlation_min, f"magnitude correlation {corr:.3f} with the baseline < {lim.magnitude_correlation_min:g} (motion)")

        # -- thermometry quality over the watched ROIs
        unseen: set[str] = set()
        worst_frac: tuple[float, str | None] = (_NAN, None)
        worst_sigma: tuple[float, str | None] = (_NAN, None)
        for name in self.watched:
            roi = rois[name]
            n_meas = int(xp.count_nonzero(roi & measured))
            frac = (self._counts[name] - n_meas) / self._counts[name]
            worst_frac = _worse(worst_frac, (frac, name))
            if not frac <= lim.nan_fraction_max:
                unseen.add(name)
                trip(Reason.THERMOMETRY_NAN, name, frac, lim.nan_fraction_max, f"{frac:.0%} of ROI {name!r} unmeasured (limit {lim.nan_fraction_max:.0%})")
            if n_meas == 0:
                continue  # tripped above: nothing to take a median of
            sigma = roi_statistic(m.sigma_t, roi, "median", mask=measured)
            worst_sigma = _worse(worst_sigma, (sigma, name))
            if not sigma <= lim.sigma_t_median_max_C:
                trip(Reason.THERMOMETRY_NOISE, name, sigma, lim.sigma_t_median_max_C, f"median sigma_T {sigma:.2f} C in ROI {name!r} > {lim.sigma_t_median_max_C:g} C")
        values.update(nan_fraction=worst_frac[0], nan_fraction_roi=worst_frac[1], sigma_t_median_C=worst_sigma[0], sigma_t_median_roi=worst_sigma[1])

        # -- temperatures and the cord dose (an ROI with no measured voxel trips THERMOMETRY_NAN)
        def limit_check(key: str, reason: Reason, roi_name: str, value: float, limit: float | None, what: str, unit: str) -> None:
            values[key] = value
            if limit is None:
                return
            shown = roi_name or None
            if math.isnan(value):
                if roi_name not in unseen:
                    unseen.add(roi_name)
                    trip(Reason.THERMOMETRY_NAN, shown, 1.0, lim.nan_fraction_max, f"{what}: nothing measured in {('ROI ' + repr(roi_name)) if roi_name else 'the map'}: it cannot be protected")
            elif not value <= limit:
                trip(reason, shown, value, limit, f"{what} {value:.2f} {unit} > {limit:g} {unit}")

        body = "body" if "body" in self._rois else ""
        temp = _smoothed(temp, measured, int(lim.smoothing_px), xp)
        if "near_field" in self._rois:
            values["near_field_p95_C"] = roi_statistic(temp, rois["near_field"], "p95", mask=measured)
        limit_check("max_C", Reason.MAX_TEMPERATURE, body, roi_statistic(temp, rois[body], "max", mask=measured), lim.max_temperature_C, "maximum temperature", "C")
        for key, role, reason, limit_name in (
            ("skin_max_C", "skin", Reason.SKIN_TEMPERATURE, "skin_max_C"),
            ("near_field_max_C", "near_field", Reason.NEAR_FIELD_TEMPERATURE, "near_field_max_C"),
            ("cord_max_C", "cord", Reason.CORD_TEMPERATURE, "cord_max_C"),
        ):
            if role in self._rois:
                limit_check(key, reason, role, roi_statistic(temp, rois[role], "max", mask=measured), getattr(lim, limit_name), f"{role} temperature", "C")
        if "cord" in self._rois:
            dose = roi_statistic(m.dose, rois["cord"], "max")
            limit_check("cord_dose_CEM43", Reason.CORD_DOSE, "cord", dose, lim.cord_dose_max_CEM43, "cord dose", "CEM43")
        self._values = values
        return found

    # ------------------------------------------------------------------------------ the log
    def status(self) -> dict[str, Any]:
        """Per-check current values (of the last dynamic checked) and limits, for a per-dynamic log.

        Values are plain floats ([C], [CEM43 min], fractions, [s], [J]); None where not known (no
        dynamic yet, NaN, no ROI for the role) and for a limit that is off. ``nan_fraction`` and
        ``sigma_t_median_C`` are the worst over the watched ROIs (named in ``*_roi``).
        """
        v = self._values
        lim = self.limits
        margin = self._active("near_field", "cooling_margin_C")

        def f(x: Any) -> float | None:
            return None if x is None else _json(float(x))

        return {
            "max_C": f(v.get("max_C")),
            "max_limit_C": lim.max_temperature_C,
            "skin_max_C": f(v.get("skin_max_C")),
            "skin_limit_C": self._active("skin", "skin_max_C"),
            "near_field_max_C": f(v.get("near_field_max_C")),
            "near_field_limit_C": self._active("near_field", "near_field_max_C"),
            "cord_max_C": f(v.get("cord_max_C")),
            "cord_limit_C": self._active("cord", "cord_max_C"),
            "cord_dose_CEM43": f(v.get("cord_dose_CEM43")),
            "cord_dose_limit_CEM43": self._active("cord", "cord_dose_max_CEM43"),
            "nan_fraction": f(v.get("nan_fraction")),
            "nan_fraction_roi": v.get("nan_fraction_roi"),
            "nan_fraction_limit": lim.nan_fraction_max,
            "sigma_t_median_C": f(v.get("sigma_t_median_C")),
            "sigma_t_median_roi": v.get("sigma_t_median_roi"),
            "sigma_t_median_limit_C": lim.sigma_t_median_max_C,
            "magnitude_correlation": f(v.get("magnitude_correlation")),
            "magnitude_correlation_limit": lim.magnitude_correlation_min,
            "latency_s": f(v.get("latency_s")),
            "latency_limit_s": lim.latency_factor * self.dynamic_period,
            "dynamic_gap_s": f(v.get("dynamic_gap_s")),
            "watchdog_limit_s": lim.watchdog_factor * self.dynamic_period,
            "energy_J": self.energy_J,
            "energy_budget_J": lim.energy_budget_J,
            "sonication_s": self.sonication_s,
            "sonication_budget_s": lim.sonication_budget_s,
            "cooling_limit_C": None if margin is None else self.baseline_temperature + margin,
            "holding": self.holding,
            "in_sonication": self._in_sonication,
            "tripped": self.tripped,
            "reason": None if self._latched is None else str(self._latched.reason),
        }

    def rois(self) -> dict[str, np.ndarray]:
        """The ROIs as host bool arrays (copies)."""
        return {k: v.copy() for k, v in self._rois.items()}



def _smoothed(temp: Any, measured: Any, px: int, xp: Any) -> Any:
    """In-plane ``px`` x ``px`` mean of ``temp`` over the measured voxels (NaN where none is)."""
    if px <= 1:
        return temp
    h = px // 2
    w = measured.astype(np.float32)
    v = xp.where(measured, temp, np.float32(0.0)).astype(np.float32)
    n_s, r, c = temp.shape
    acc = xp.zeros((n_s, r + 2 * h, c + 2 * h), dtype=np.float32)
    cnt = xp.zeros((n_s, r + 2 * h, c + 2 * h), dtype=np.float32)
    for di in range(px):
        for dj in range(px):
            acc[:, di : di + r, dj : dj + c] += v
            cnt[:, di : di + r, dj : dj + c] += w
    acc, cnt = acc[:, h : h + r, h : h + c], cnt[:, h : h + r, h : h + c]
    out = acc / xp.where(cnt > 0, cnt, np.float32(1.0))
    return xp.where(measured, out, np.float32(np.nan))
