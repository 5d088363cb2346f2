"""The limits of the safety interlocks (:mod:`fus.control.interlocks`), with their clinical reasons.

Every default below is a limit for MRgFUS palliation of painful bone metastases: the beam crosses
skin, fat and muscle (the near field) and heats the bone surface; thermometry watches the skin, the
near field and the spinal cord (the organ at risk). Temperatures are absolute [C], read from PRF
thermometry as ``baseline + dT`` (unheated tissue reads the baseline, 37 C); dose is CEM43 [min].

References
----------
.. [YA11] Yarmolenko P. S. et al., "Thresholds for thermal damage to normal tissues: an update",
   Int. J. Hyperthermia 27(4), 320-343 (2011).
.. [SD84] Sapareto S. A., Dewey W. C., "Thermal dose determination in cancer therapy", Int. J.
   Radiat. Oncol. Biol. Phys. 10(6), 787-800 (1984).
.. [TC07] ter Haar G., Coussios C., "High intensity focused ultrasound: physical principles and
   devices", Int. J. Hyperthermia 23(2), 89-104 (2007).
.. [RB08] Rieke V., Butts Pauly K., "MR thermometry", J. Magn. Reson. Imaging 27(2), 376-390
   (2008).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fus.errors import InvalidParameterError

__all__ = ["InterlockLimits", "ROLE_LIMITS", "DISABLED"]

#: Which limits need which ROI role: a limit given for a role whose ROI is missing is refused.
ROLE_LIMITS: dict[str, tuple[str, ...]] = {
    "skin": ("skin_max_C",),
    "near_field": ("near_field_max_C", "cooling_margin_C"),
    "cord": ("cord_max_C", "cord_dose_max_CEM43"),
}

#: The values that switch an optional limit off in a TOML table (TOML has no null).
DISABLED = (None, False, "off", "none")

#: Absolute temperature limits must lie in this open interval [C]: below it the number is
#: probably a rise (``5`` for "+5 C"), at or above 100 C water boils.
_TEMPERATURE_RANGE_C = (25.0, 100.0)
#: CEM43 [min] at which muscle and bone are ablated: a cord limit there protects nothing.
_ABLATION_DOSE_CEM43 = 240.0

_TEMPERATURES = ("max_temperature_C", "skin_max_C", "near_field_max_C", "cord_max_C")
_OPTIONAL = ("skin_max_C", "near_field_max_C", "cord_max_C", "cord_dose_max_CEM43", "energy_budget_J", "sonication_budget_s", "cooling_margin_C")


@dataclass(frozen=True)
class InterlockLimits:
    """Limits of the always-on safety interlocks of the closed loop.

    A limit set to ``None`` switches its check off (the role limits and the budgets only; the
    thermometry-quality and watchdog checks cannot be switched off). The defaults:

    Attributes
    ----------
    max_temperature_C : float
        90 C. Maximum temperature anywhere in the measured body (or the ``body`` ROI). Ablation of
        the periosteum is complete at 55-60 C; above ~90 C tissue water approaches boiling and
        boiling / cavitation bubbles distort the focus and make the lesion unpredictable [TC07]:
        the upper bound of thermal ablation.
    skin_max_C : float or None
        42 C. Maximum skin temperature (a rise of 5 C over 37 C). Below 43 C CEM43 accrues at
        0.25^(43-T) min per min [SD84]: 42 C gives 1 CEM43 per 4 min, far from the skin damage
        thresholds collected in [YA11] (tens of CEM43); the skin is also cooled by the degassed
        water of the coupling, so a skin at 42 C means the near field is heating fast. Near-field
        skin burns are the main complication of the treatment.
    near_field_max_C : float or None
        45 C. Maximum temperature of the near field (fat and muscle in the beam path, between skin
        and bone). At 45 C CEM43 accrues 4 min per min: a 20-30 s sonication adds under 2 CEM43,
        below the acute muscle and fat thresholds in [YA11]; higher means energy is being
        absorbed before the focus (scar, air, bone in the path, a misplaced focus).
    cord_max_C : float or None
        41 C. Maximum spinal-cord temperature: a rise of 4 C over 37 C. Nervous tissue is the most
        heat-sensitive of [YA11]; 41 C is the usual hyperthermia bound for nerve and it sits
        about four thermometry standard deviations (~1 C, [RB08]) above 37 C, so noise alone
        rarely trips it.
    cord_dose_max_CEM43 : float or None
        2 CEM43 [min]. Maximum thermal dose in the spinal cord: the lowest nerve and spinal cord
        damage thresholds in [YA11] are a few CEM43, and 2 keeps below them. Must be below 240
        (the ablation dose).
    nan_fraction_max : float
        0.3. Largest fraction of a watched ROI that may be unmeasured (masked or NaN) in one
        dynamic. Beyond a third of an ROI missing, its maximum is no longer representative (a
        hot spot may be in the hole). A fully unmeasured skin / near-field / cord ROI trips
        whatever this value: an organ at risk that cannot be seen cannot be protected.
    sigma_t_median_max_C : float
        3 C. Largest median temperature standard deviation (from the image noise) over a
        watched ROI. PRF thermometry at 1.5-3 T reaches ~1 C [RB08]; at 3 C the ROI maxima the
        interlocks use are dominated by noise (engineering choice).
    magnitude_correlation_min : float
        0.9. Smallest correlation of the dynamic's magnitude with the baseline's (1 = no motion).
        PRF needs the baseline phase of the same voxel: motion (breathing, patient movement)
        shifts both anatomy and field and makes the temperature wrong (engineering choice; the
        check is skipped when the scanner does not compute the correlation, NaN).
    stuck_frame : bool
        True. Trip on a repeated dynamic: flagged by the scanner (``Measurement.repeated``), the
        same dynamic index again, or a temperature map bitwise identical to the previous one
        (real thermometry always carries noise; a frozen frame hides heating).
    watchdog_factor : float
        1.5. No new dynamic within ``watchdog_factor`` x the dynamic period of the previous one (or
        of the start) trips the watchdog: one dynamic of jitter allowed, then the loop is blind.
    latency_factor : float
        1.0. A dynamic whose latency (``available_time - time``) exceeds ``latency_factor`` x the
        dynamic period is late: the command would act on a state more than a dynamic old.
    energy_budget_J : float or None
        None (off). Acoustic energy allowed for the treatment [J], from the treatment plan.
    sonication_budget_s : float or None
        None (off). Total sonication time (power > 0) allowed [s], from the treatment plan.
    cooling_margin_C : float or None
        1 C. A sonication may start only when the near field (ROI maximum) is within this margin
        of its baseline: near-field heat adds up over sonications (the cause of most skin burns),
        so each sonication waits for the previous one's heat to clear. A hold, not a trip. Judged
        on the 95th percentile of the (smoothed) near-field map: its maximum over hundreds of
        voxels sits ~1 C above baseline from noise alone and would hold for ever.
    smoothing_px : int
        3. The temperature limits (maximum, skin, near field, cord) are judged on the map after an
        in-plane ``smoothing_px`` x ``smoothing_px`` mean over measured voxels (1: none). The
        maximum of a raw map over ~10^4 voxel-dynamics at sigma_T = 1 C exceeds +4 C from noise
        alone (a false cord trip per treatment); a 3 x 3 mean divides sigma_T by 3, and a real
        hot spot of a focused beam (several mm) is hardly lowered.
    """

    max_temperature_C: float = 90.0
    skin_max_C: float | None = 42.0
    near_field_max_C: float | None = 45.0
    cord_max_C: float | None = 41.0
    cord_dose_max_CEM43: float | None = 2.0
    nan_fraction_max: float = 0.3
    sigma_t_median_max_C: float = 3.0
    magnitude_correlation_min: float = 0.9
    stuck_frame: bool = True
    watchdog_factor: float = 1.5
    latency_factor: float = 1.0
    energy_budget_J: float | None = None
    sonication_budget_s: float | None = None
    cooling_margin_C: float | None = 1.0
    smoothing_px: int = 3
    #: names set explicitly by :meth:`from_mapping` (even to their default value)
    _explicit: frozenset = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names of the limits (the keys a TOML table may hold)."""
        return tuple(f.name for f in fields(cls) if f.init)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> "InterlockLimits":
        """Limits from a TOML table (``[interlocks]``): unknown keys refused.

        Parameters
        ----------
        table : mapping
            Limit name -> value. An optional limit is switched off by ``false`` or ``"off"``.

        Raises
        ------
        InvalidParameterError
            An unknown key (naming it, the keys allowed, and the nearest one) or a bad value.
        """
        if not isinstance(table, Mapping):
            raise InvalidParameterError("interlocks", type(table).__name__, "must be a table of limits")
        allowed = cls.names()
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in allowed:
                near = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise InvalidParameterError(str(key), value, f"unknown interlock limit (allowed: {', '.join(allowed)}){hint}")
            if key in _OPTIONAL and (value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none"))):
                value = None
            values[key] = value
        out = cls(**values)
        object.__setattr__(out, "_explicit", frozenset(values))
        return out

    def is_given(self, name: str) -> bool:
        """True when limit ``name`` is switched on and was set explicitly (a value other than the
        default, or any value named in :meth:`from_mapping`'s table)."""
        value = getattr(self, name)
        if value is None:
            return False
        default = {f.name: f.default for f in fields(self)}[name]
        return name in self._explicit or value != default

    # ------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every limit.

        Raises
        ------
        InvalidParameterError
            Naming the field and the value found, and what is allowed.
        """
        lo, hi = _TEMPERATURE_RANGE_C
        for name in _TEMPERATURES:
            value = self._number(name)
            if value is not None and not lo < value < hi:
                raise InvalidParameterError(name, value, f"must be an absolute temperature in ({lo:g}, {hi:g}) C (a rise? give baseline + rise)")
        dose = self._number("cord_dose_max_CEM43")
        if dose is not None and not 0.0 < dose < _ABLATION_DOSE_CEM43:
            raise InvalidParameterError("cord_dose_max_CEM43", dose, f"must be > 0 and below the ablation dose {_ABLATION_DOSE_CEM43:g} CEM43 [min]")
        frac = self._number("nan_fraction_max")
        if not 0.0 <= frac < 1.0:
            raise InvalidParameterError("nan_fraction_max", frac, "must be in [0, 1) (a fraction of the ROI's voxels)")
        corr = self._number("magnitude_correlation_min")
        if not 0.0 <= corr <= 1.0:
            raise InvalidParameterError("magnitude_correlation_min", corr, "must be in [0, 1]")
        if self._number("watchdog_factor") < 1.0:
            raise InvalidParameterError("watchdog_factor", self.watchdog_factor, "must be >= 1 (a multiple of the dynamic period)")
        for name in ("sigma_t_median_max_C", "latency_factor", "energy_budget_J", "sonication_budget_s", "cooling_margin_C"):
            value = self._number(name)
            if value is not None and value <= 0.0:
                raise InvalidParameterError(name, value, "must be > 0")
        if not isinstance(self.stuck_frame, bool):
            raise InvalidParameterError("stuck_frame", self.stuck_frame, "must be true or false")

    def _number(self, name: str) -> Any:
        """The value of limit ``name`` as a finite float (None where optional and off)."""
        value = getattr(self, name)
        if value is None and name in _OPTIONAL:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise InvalidParameterError(name, value, "must be a finite number" + (" (or off)" if name in _OPTIONAL else ""))
        object.__setattr__(self, name, float(value))
        return float(value)

    def as_dict(self) -> dict[str, Any]:
        """The limits as a JSON-ready dict (None = off)."""
        return {name: getattr(self, name) for name in self.names()}
