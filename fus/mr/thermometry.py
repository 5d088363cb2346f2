"""Streaming PRF thermometry: one dynamic at a time, from complex images to temperature and dose.

:class:`Thermometry` holds what persists between dynamics (baseline or baseline library, drift
basis, dose accumulator) and turns each complex dynamic (slices, rows, cols) into a
:class:`DynamicResult`, so a long series never has to be in memory at once. The voxel math is the
PRF kernels (``kernels/prf.cu``) and the dose kernel (``kernels/dose.cu``); the drift fit is array
linear algebra (:mod:`fus.mr.drift`). Runs on the active backend (numpy or cupy inputs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fus.backend import get_backend
from fus.checks import finite_scalar
from fus.errors import DataError, InvalidParameterError
from fus.kernels import prf_phase, prf_temperature_dose
from fus.mr.baseline import Baseline, BaselineLibrary
from fus.mr.drift import DRIFT_METHODS, drift_poly_fit, drift_roi, poly_eval
from fus.mr.prf import ALPHA_PPM_PER_C, prf_scale
from fus.physics.dose import LESION_DOSE, LESION_TEMPERATURE_BONE, DoseAccumulator, lesion_mask

__all__ = ["ThermometrySettings", "DynamicResult", "Thermometry"]

log = logging.getLogger(__name__)


@dataclass
class ThermometrySettings:
    """Settings of PRF thermometry.

    Attributes
    ----------
    alpha_ppm : float
        PRF coefficient [ppm/C] (default -0.01).
    phase_sign : {+1, -1}
        Scanner / sequence phase convention.
    body_temp : float
        Temperature of the baseline [C] (default 37); absolute T = body_temp + dT.
    drift : {"none", "roi", "poly"}
    drift_order : {0, 1, 2}
        Polynomial order for ``poly``.
    drift_roi : bool array or None
        Reference region (unheated) for ``roi``; (slices, rows, cols) or (rows, cols).
    exclude : bool array or None
        Heated region, left out of the ``poly`` fit (and of baseline-library matching).
    snr_min : float
        Voxels whose magnitude is below ``snr_min * noise`` in the dynamic or the baseline are
        not measured (NaN).
    dose_threshold, temperature_threshold : float
        Lesion criteria (240 CEM43, 55 C).
    """

    alpha_ppm: float = ALPHA_PPM_PER_C
    phase_sign: int = 1
    body_temp: float = 37.0
    drift: str = "none"
    drift_order: int = 1
    drift_roi: Any = None
    exclude: Any = None
    snr_min: float = 5.0
    dose_threshold: float = LESION_DOSE
    temperature_threshold: float = LESION_TEMPERATURE_BONE

    def validate(self) -> None:
        if self.drift not in DRIFT_METHODS:
            raise InvalidParameterError("drift", self.drift, f"must be one of {', '.join(DRIFT_METHODS)}")
        if self.drift == "roi" and self.drift_roi is None:
            raise InvalidParameterError("drift_roi", None, "drift 'roi' needs a reference region")
        if self.drift_order not in (0, 1, 2):
            raise InvalidParameterError("drift_order", self.drift_order, "must be 0, 1 or 2")
        if self.phase_sign not in (1, -1):
            raise InvalidParameterError("phase_sign", self.phase_sign, "must be +1 or -1")
        for name in ("body_temp", "snr_min", "alpha_ppm", "dose_threshold", "temperature_threshold"):
            finite_scalar(name, getattr(self, name))
        if self.snr_min < 0:
            raise InvalidParameterError("snr_min", self.snr_min, "must be >= 0")
        if self.alpha_ppm == 0:
            raise InvalidParameterError("alpha_ppm", self.alpha_ppm, "must be non-zero")
        if not -20.0 <= float(self.body_temp) <= 100.0:
            raise InvalidParameterError("body_temp", self.body_temp, "must be a tissue or phantom temperature in [-20, 100] C")


@dataclass
class DynamicResult:
    """Thermometry of one dynamic (arrays of the active backend, (slices, rows, cols)).

    Attributes
    ----------
    index : int
    time : float [s]
    delta_t : float32 [C], NaN where not measured
    temperature : float32 [C], body_temp + delta_t
    sigma_t : float32 [C], standard deviation of delta_t from the image noise
    mask : uint8, 1 where measured
    drift_coef : float (slices, terms) [rad], the drift removed, as per-slice polynomial
        coefficients (:func:`fus.mr.drift.poly_terms` order; one term for ``roi`` and ``none``)
    baseline_index : int, which baseline of the library was used
    """

    index: int
    time: float
    delta_t: Any
    temperature: Any
    sigma_t: Any
    mask: Any
    drift_coef: Any
    baseline_index: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def drift(self) -> Any:
        """The drift phase removed, as an image (slices, rows, cols) float32 [rad] (formed on request)."""
        return poly_eval(self.drift_coef, int(self.delta_t.shape[1]), int(self.delta_t.shape[2]))


class Thermometry:
    """PRF thermometry of a stream of complex dynamics against a baseline (or a library).

    Parameters
    ----------
    baseline : Baseline or BaselineLibrary
    b0 : float
        Main field [T] (from the imaging frequency).
    te : float
        Echo time [s].
    settings : ThermometrySettings
    t0 : float
        Time of the baseline [s]; the dose starts accruing at the first processed dynamic.
    """

    def __init__(self, baseline: Baseline | BaselineLibrary, b0: float, te: float, settings: ThermometrySettings | None = None, t0: float = 0.0) -> None:
        if settings is not None and not isinstance(settings, ThermometrySettings):
            raise InvalidParameterError("settings", type(settings).__name__, "must be a ThermometrySettings (ThermometrySettings(**mapping) from a dict)")
        self.settings = settings or ThermometrySettings()
        self.settings.validate()
        if not isinstance(baseline, (Baseline, BaselineLibrary)):
            raise InvalidParameterError("baseline", type(baseline).__name__, "must be a Baseline (Baseline(image, noise) or Baseline.average(images, noise)) or a BaselineLibrary")
        self.library = baseline if isinstance(baseline, BaselineLibrary) else BaselineLibrary([baseline])
        self.shape = tuple(self.library.baselines[0].image.shape)
        for b in self.library.baselines:
            if np.dtype(b.image.dtype).kind != "c":
                raise InvalidParameterError("baseline", f"image of dtype {b.image.dtype}", "must be complex (magnitude and phase)")
        if len(self.shape) != 3:
            raise InvalidParameterError("baseline", f"image of shape {self.shape}", "must be (slices, rows, cols)")
        self.scale = prf_scale(b0, te, self.settings.alpha_ppm, self.settings.phase_sign)  # checks ranges and units
        self.b0 = float(b0)
        self.te = float(te)
        xp = get_backend().xp
        self.xp = xp
        for name in ("exclude", "drift_roi"):
            region = getattr(self.settings, name)
            if region is not None and tuple(np.shape(region)) not in (self.shape, self.shape[1:]):
                raise InvalidParameterError(
                    name, f"array of shape {tuple(np.shape(region))}", f"must have shape {self.shape} or {self.shape[1:]}"
                )
        self._exclude = None if self.settings.exclude is None else xp.asarray(self.settings.exclude, dtype=bool)
        # the drift fit's region, as the kernels take it (uint8, in-plane or per slice), made once
        self._use = None if self._exclude is None else xp.ascontiguousarray(~self._exclude, dtype=np.uint8)
        self._roi = None if self.settings.drift_roi is None else xp.ascontiguousarray(xp.asarray(self.settings.drift_roi, dtype=bool), dtype=np.uint8)
        self.dose = DoseAccumulator(self.shape, t0)
        self._n = 0
        log.info("PRF thermometry: B0 %.4f T, TE %.2f ms, %.3f C/rad, drift %s", self.b0, self.te * 1e3, self.scale, self.settings.drift)

    def process(self, z: Any, time: float, noise: float) -> DynamicResult:
        """Thermometry of one complex dynamic ``z`` (slices, rows, cols) acquired at ``time`` [s].

        ``noise`` is the per-channel noise standard deviation of ``z``.
        """
        xp = self.xp
        z = xp.asarray(z)
        time = finite_scalar("time", time)
        noise = finite_scalar("noise", noise, positive=True)
        if z.dtype.kind != "c":
            raise InvalidParameterError("dynamic", f"array of dtype {z.dtype}", "must be complex (magnitude and phase); a real image has no phase")
        if tuple(z.shape) != self.shape:
            raise InvalidParameterError("dynamic", f"image of shape {tuple(z.shape)}", f"must match the baseline's {self.shape}")
        # the library matches outside the heated region: the drift fit's region, made once
        bi, base = (0, self.library.baselines[0]) if len(self.library) == 1 else self.library.select(z, self._use)
        mag_min = self.settings.snr_min * noise
        dphi, weight, mask = prf_phase(z, base.image, noise=noise, noise_ref=base.noise, mag_min=mag_min)
        s = self.settings
        try:
            if s.drift == "roi":
                coef = drift_roi(dphi, weight, self._roi)[:, None]
            elif s.drift == "poly":
                coef = drift_poly_fit(dphi, weight, order=s.drift_order, use=self._use)
            else:
                coef = xp.zeros((self.shape[0], 1))
        except InvalidParameterError as exc:  # say which dynamic could not be drift-corrected
            raise InvalidParameterError(exc.name, f"dynamic {self._n + 1} (t = {time:g} s): {exc.value}", exc.reason) from None
        except DataError as exc:
            raise DataError(f"dynamic {self._n + 1} (t = {time:g} s): {exc}") from None
        acc = self.dose
        dt, first = acc.begin(time)
        dT, sT, temp = prf_temperature_dose(
            dphi, weight, mask, self.scale, drift=coef, body_temp=s.body_temp, dt=dt, first=first,
            t_prev=acc.prev, dose=acc.dose, tmax=acc.tmax,
        )
        acc.end(time, prev=temp)  # the new map is the next ramp's start: kept, not copied
        if isinstance(temp, np.ndarray):
            temp.flags.writeable = False  # shared with the dose state
        res = DynamicResult(self._n, float(time), dT, temp, sT, mask, coef, bi)
        self._n += 1
        return res

    def lesion(self) -> Any:
        """Lesion mask so far: dose >= threshold or max temperature >= threshold."""
        s = self.settings
        return lesion_mask(self.dose.dose, self.dose.max_temperature(), dose_threshold=s.dose_threshold, temperature_threshold=s.temperature_threshold)
