"""Thermal dose: CEM43 accumulation over a temperature time series, and lesion maps.

The per-voxel math is the dose kernel (``kernels/dose.cu``, :func:`fus.kernels.cem43`); this
module keeps the running state (dose, previous temperature, running maximum) so that a stream of
temperature maps, from the bioheat solver or from thermometry, accrues dose the same way.

References
----------
Sapareto S. A., Dewey W. C., "Thermal dose determination in cancer therapy", Int. J. Radiat.
Oncol. Biol. Phys. 10(6), 787-800 (1984): CEM43 with R = 0.5 above 43 C and 0.25 below.
240 CEM43: the usual threshold for thermal necrosis in muscle and bone (e.g. Dewhirst et al.,
Int. J. Hyperthermia 19(3), 267-294 (2003)); 55 C: the periosteal ablation temperature used in
MRgFUS of bone metastases.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fus.backend import array_module, get_backend
from fus.errors import InvalidParameterError
from fus.kernels import cem43

__all__ = ["LESION_DOSE", "LESION_TEMPERATURE_BONE", "DoseAccumulator", "lesion_mask"]

#: CEM43 minutes above which tissue is counted as ablated.
LESION_DOSE = 240.0
#: Temperature [C] above which bone / periosteum is counted as ablated.
LESION_TEMPERATURE_BONE = 55.0


class DoseAccumulator:
    """Running CEM43 dose and maximum temperature of a stream of temperature maps.

    Parameters
    ----------
    shape : tuple of int
        Shape of the temperature maps.
    t0 : float
        Time of the first map [s] (later maps must come at increasing times).

    Notes
    -----
    Between two maps the temperature is taken as linear in time, which the kernel integrates
    exactly. The first map only sets the starting temperature. A NaN voxel (not measured) makes
    that voxel's dose NaN from then on, so an unknown dose is never reported as a number; its
    maximum temperature ignores NaN maps (``nan`` if never measured).
    """

    def __init__(self, shape: tuple[int, ...], t0: float = 0.0) -> None:
        xp = get_backend().xp
        self.dose = xp.zeros(tuple(shape), dtype=np.float64)
        self.tmax = xp.full(tuple(shape), -np.inf, dtype=np.float32)
        self._prev: Any = None
        self._time = float(t0)
        self.n_updates = 0

    @property
    def time(self) -> float:
        """Time of the last map [s]."""
        return self._time

    def update(self, temperature: Any, time: float) -> Any:
        """Accrue dose up to ``time`` [s] with ``temperature`` [C] the map at that time.

        Returns
        -------
        The dose array [CEM43 min] (of the active backend), updated in place.
        """
        xp = get_backend().xp
        temp = xp.asarray(temperature, dtype=np.float32)
        if tuple(temp.shape) != tuple(self.dose.shape):
            raise InvalidParameterError(
                "temperature", f"array of shape {tuple(temp.shape)}", f"must have shape {tuple(self.dose.shape)}"
            )
        dt, first = self.begin(time)
        if first:
            self.dose[xp.isnan(temp)] = np.nan  # never measured: the dose is unknown, not 0
        else:
            cem43(self.dose, self._prev, temp, dt)
        xp.fmax(self.tmax, temp, out=self.tmax)
        self.end(time, prev=xp.array(temp, dtype=np.float32, copy=True))
        return self.dose

    def begin(self, time: float) -> tuple[float, bool]:
        """Start an update at ``time`` [s] done by a fused kernel on :attr:`dose`, :attr:`tmax` and
        :attr:`prev` (e.g. :func:`fus.kernels.prf_temperature_dose`); call :meth:`end` after it.

        Returns
        -------
        dt : float
            Seconds since the previous map (0 for the first).
        first : bool
            True for the first map (the kernel then only sets the state).
        """
        t = float(time)
        if not math.isfinite(t):
            raise InvalidParameterError("time", time, "must be finite [s]")
        if self._prev is None:
            if t < self._time:
                raise InvalidParameterError("time", time, f"is before the start time {self._time} s")
            self._prev = get_backend().xp.full(self.dose.shape, np.nan, dtype=np.float32)  # read, not used
            return 0.0, True
        if t <= self._time:
            raise InvalidParameterError("time", time, f"must be after the previous map's time {self._time} s")
        return t - self._time, False

    def end(self, time: float, prev: Any) -> None:
        """Finish an update started with :meth:`begin`; ``prev`` is the map at ``time`` [C]
        (float32, kept by reference as :attr:`prev`, the start of the next step's ramp)."""
        self._time = float(time)
        self._prev = prev
        self.n_updates += 1

    @property
    def prev(self) -> Any:
        """Temperature of the last map [C] (float32), the start of the next step's ramp."""
        return self._prev

    def max_temperature(self) -> Any:
        """Maximum temperature seen per voxel [C]; NaN where never measured."""
        xp = array_module(self.tmax)
        return xp.where(xp.isneginf(self.tmax), np.float32(np.nan), self.tmax)


def lesion_mask(
    dose: Any,
    max_temperature: Any | None = None,
    *,
    dose_threshold: float = LESION_DOSE,
    temperature_threshold: float | None = LESION_TEMPERATURE_BONE,
) -> Any:
    """Voxels counted as ablated: dose >= ``dose_threshold`` or max temperature >= the threshold.

    NaN (unknown) voxels are never counted as ablated; check them separately.

    Parameters
    ----------
    dose : array [CEM43 min]
    max_temperature : array [C], optional
    dose_threshold : float
        Default 240 CEM43.
    temperature_threshold : float or None
        Default 55 C (bone); None to use dose only.

    Returns
    -------
    bool array of the input's backend.
    """
    xp = array_module(dose)
    for name, v in (("dose_threshold", dose_threshold), ("temperature_threshold", temperature_threshold)):
        if v is not None and not math.isfinite(float(v)):
            raise InvalidParameterError(name, v, "must be finite")
    mask = xp.asarray(dose) >= dose_threshold
    if max_temperature is not None and temperature_threshold is not None:
        mask |= xp.asarray(max_temperature) >= temperature_threshold
    return mask
