"""What flows through the closed loop: a thermometry measurement in, a power command out.

A :class:`Measurement` is one dynamic of MR thermometry as the controller sees it (arrays of the
array module of the thermometry, numpy or cupy, shape (slices, rows, cols)); a :class:`Command` is
what the controller (and then the interlocks) decide for the time until the next dynamic. Every
command carries a :class:`Reason` code, so a log says why the power is what it is.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fus.backend import array_module
from fus.errors import InvalidParameterError

__all__ = [
    "Reason",
    "Measurement",
    "Command",
    "Controller",
    "roi_statistic",
    "STATISTICS",
    "check_statistic",
    "check_range",
    "power_limits",
    "settings_from_mapping",
    "LoopSettings",
]


class Reason(str, enum.Enum):
    """Why a command has the power it has (controller decisions and interlock trips)."""

    #: the controller's own decision (tracking the reference)
    CONTROL = "control"
    #: before the first usable dynamic, or during a cooling wait: no power asked yet
    WAIT = "wait"
    #: the goal of the treatment (dose or temperature) is reached: sonication ends
    GOAL_REACHED = "goal_reached"
    #: the reference trajectory has ended
    TRAJECTORY_END = "trajectory_end"
    # ---- interlock trips (power zero at once)
    MAX_TEMPERATURE = "max_temperature"
    SKIN_TEMPERATURE = "skin_temperature"
    NEAR_FIELD_TEMPERATURE = "near_field_temperature"
    CORD_TEMPERATURE = "cord_temperature"
    CORD_DOSE = "cord_dose"
    THERMOMETRY_NAN = "thermometry_nan"
    THERMOMETRY_NOISE = "thermometry_noise"
    MOTION = "motion"
    STUCK_FRAME = "stuck_frame"
    WATCHDOG = "watchdog"
    ENERGY_BUDGET = "energy_budget"
    DURATION_BUDGET = "duration_budget"
    COOLING = "cooling"
    CONTROLLER_EXCEPTION = "controller_exception"
    LOOP_EXCEPTION = "loop_exception"

    def __str__(self) -> str:  # "skin_temperature", not "Reason.SKIN_TEMPERATURE"
        return self.value


@dataclass
class Measurement:
    """One dynamic of thermometry, as the controller sees it.

    Attributes
    ----------
    index : int
        Dynamic number (0-based).
    time : float
        Acquisition time [s] (centre of the acquisition, treatment clock).
    temperature : array (slices, rows, cols) float32
        Absolute temperature [C], NaN where not measured.
    sigma_t : array, same shape
        Standard deviation of the temperature from the image noise [C].
    mask : array, same shape
        1 / True where measured.
    dose : array, same shape
        CEM43 accumulated so far [min] (NaN where never measured).
    applied_power : float
        Mean acoustic power actually applied since the previous measurement [W] (after the
        interlocks), for controllers that learn the plant.
    available_time : float
        When the images reached the controller [s] (>= ``time``; the difference is the latency).
    magnitude_correlation : float
        Correlation of this dynamic's magnitude with the baseline's over the body (1 = no motion);
        NaN when not computed.
    repeated : bool
        The scanner delivered the very same images as the previous dynamic (a stuck frame).
    """

    index: int
    time: float
    temperature: Any
    sigma_t: Any
    mask: Any
    dose: Any
    applied_power: float = 0.0
    available_time: float | None = None
    magnitude_correlation: float = float("nan")
    repeated: bool = False

    @property
    def xp(self) -> Any:
        """The array module of the maps (numpy or cupy)."""
        return array_module(self.temperature)


@dataclass(frozen=True)
class Command:
    """The power to apply until the next dynamic, and why.

    Attributes
    ----------
    power : float
        Acoustic power [W], >= 0.
    reason : Reason
    stop : bool
        End the sonication (the goal is met, or an interlock tripped): the loop stops asking
        the controller and holds the power at zero.
    target : int
        Index of the sub-target (focus point) to sonicate.
    drive : array or None
        Optional per-element complex drive (overrides the focusing of ``target``).
    state : dict
        Controller state for the log (numbers only: reference, error, gain estimate, ...).
    detail : str
        Free text for the log (an interlock's ROI, value and limit).
    """

    power: float
    reason: Reason = Reason.CONTROL
    stop: bool = False
    target: int = 0
    drive: Any = None
    state: dict = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        p = float(self.power)
        if not math.isfinite(p) or p < 0:
            raise InvalidParameterError("Command.power", self.power, "must be finite and >= 0 [W]")
        object.__setattr__(self, "power", p)
        object.__setattr__(self, "reason", Reason(self.reason))

    def zero(self, reason: Reason, detail: str = "", *, stop: bool = True) -> "Command":
        """This command with the power set to zero for ``reason``."""
        return replace(self, power=0.0, reason=Reason(reason), stop=stop, detail=detail, drive=None)


@runtime_checkable
class Controller(Protocol):
    """What the loop asks of a controller: one command per measurement."""

    def update(self, measurement: Measurement) -> Command:  # pragma: no cover - protocol
        ...

    def reset(self) -> None:  # pragma: no cover - protocol
        ...


#: ROI statistics a controller can follow: the mean, or a percentile written ``pNN`` (p90 ...), or max.
STATISTICS = ("mean", "median", "max", "p90", "p95")


def _percentile_of(stat: str) -> float | None:
    if stat == "median":
        return 50.0
    if stat.startswith("p"):
        try:
            q = float(stat[1:])
        except ValueError:
            return None
        return q if 0.0 < q < 100.0 else None
    return None


def roi_statistic(values: Any, roi: Any, stat: str = "mean", *, mask: Any = None) -> float:
    """A statistic of ``values`` over the measured voxels of ``roi``; NaN when none is measured.

    Parameters
    ----------
    values : array
        A map (temperature [C], dose [min], ...), NaN where not measured.
    roi : bool array, same shape
        The region.
    stat : str
        ``mean``, ``median``, ``max``, ``min`` or a percentile ``pNN`` (``p90``: 90th percentile).
    mask : array, optional
        Measured voxels (1 / True); combined with ``roi`` and with ``isfinite(values)``.

    Returns
    -------
    float
        The statistic, or NaN when no voxel of the ROI is measured (the caller must treat that
        as a missing measurement, never as a temperature).
    """
    xp = array_module(values)
    sel = xp.asarray(roi, dtype=bool) & xp.isfinite(values)
    if mask is not None:
        sel &= xp.asarray(mask).astype(bool)
    v = values[sel]
    if int(v.size) == 0:
        return float("nan")
    if stat == "mean":
        return float(v.astype(np.float64).mean())
    if stat == "max":
        return float(v.max())
    if stat == "min":
        return float(v.min())
    q = _percentile_of(stat)
    if q is None:
        raise InvalidParameterError("statistic", stat, "must be mean, median, max, min or a percentile pNN (e.g. p90)")
    return float(xp.percentile(v.astype(np.float64), q))


# ---------------------------------------------------------------------------------------------- shared by the controllers
def check_statistic(name: str, stat: Any) -> str:
    """``stat`` if :func:`roi_statistic` knows it (``mean``, ``median``, ``max``, ``min``, ``pNN``)."""
    if not isinstance(stat, str) or not (stat in ("mean", "max", "min") or _percentile_of(stat) is not None):
        raise InvalidParameterError(name, stat, "must be mean, median, max, min or a percentile pNN (e.g. p90)")
    return stat


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None, *, optional: bool = False, open_low: bool = False) -> float | None:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``open_low``).

    ``None`` passes when ``optional``. Raises :class:`InvalidParameterError` naming ``name`` and
    the value found otherwise.
    """
    if value is None and optional:
        return None
    from fus.checks import finite_scalar

    v = finite_scalar(name, value)
    if low is not None and (v < low or (open_low and v == low)):
        raise InvalidParameterError(name, value, f"must be {'>' if open_low else '>='} {low:g}")
    if high is not None and v > high:
        raise InvalidParameterError(name, value, f"must be <= {high:g}")
    return v


def power_limits(previous: float, p_max: float, slew: float, dt: float) -> tuple[float, float]:
    """The interval a command may take after ``previous`` [W]: ``[0, p_max]`` and within
    ``slew * dt`` [W/s * s] of ``previous`` (a power above ``p_max`` is brought down at once)."""
    step = slew * dt if math.isfinite(slew) else math.inf
    hi = min(p_max, previous + step)
    lo = min(max(0.0, previous - step), hi)
    return lo, hi


def settings_from_mapping(cls: Any, mapping: Any, section: str) -> Any:
    """A settings dataclass ``cls`` from a mapping (a TOML table), validated.

    Lists become tuples (TOML has no tuple). An unknown key raises
    :class:`InvalidParameterError` naming ``section.key`` and the keys allowed.
    """
    import dataclasses
    from collections.abc import Mapping

    from fus.checks import check_keys

    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise InvalidParameterError(section, mapping, "must be a table (mapping of setting names to values)")
    check_keys(section, mapping, [f.name for f in dataclasses.fields(cls)])
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()}
    out = cls(**kw)
    out.validate()
    return out


@dataclass
class LoopSettings:
    """The settings every controller has (subclasses add theirs; ``section`` names the TOML table).

    Attributes
    ----------
    p_max : float or None
        A lower power ceiling for this controller [W]; ``None``: the system's ``p_max``.
    slew : float
        Largest change of the power [W/s] between dynamics (``inf``: none).
    dynamic_period : float
        Interval between dynamics [s] used before two measurements have been seen.
    """

    section = "controller"

    p_max: float | None = None
    slew: float = 10.0
    dynamic_period: float = 2.5

    @classmethod
    def from_mapping(cls, mapping: Any) -> Any:
        """From a TOML table; an unknown key raises, naming it and the keys allowed."""
        return settings_from_mapping(cls, mapping, cls.section)

    def validate_loop(self) -> None:
        """Check ``p_max``, ``slew`` and ``dynamic_period``."""
        check_range(f"{self.section}.p_max", self.p_max, 0.0, optional=True, open_low=True)
        if self.slew != math.inf:
            check_range(f"{self.section}.slew", self.slew, 0.0, open_low=True)
        check_range(f"{self.section}.dynamic_period", self.dynamic_period, 0.0, 60.0, open_low=True)
