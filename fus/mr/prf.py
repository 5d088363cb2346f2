"""PRF thermometry constants and conversions.

The proton resonance frequency of water shifts with temperature by ``alpha ~ -0.01 ppm/C``
(Ishihara et al., Magn. Reson. Med. 34, 814-823 (1995); Rieke & Butts Pauly, J. Magn. Reson.
Imaging 27, 376-390 (2008)). In a gradient-echo image the phase change is

    dphi = phase_sign * gamma * alpha * B0 * TE * dT,

so ``dT = dphi * scale`` with ``scale = phase_sign / (gamma alpha B0 TE)`` [C/rad]. ``gamma`` is the
proton gyromagnetic ratio (CODATA 2018: 42.577 478 518 MHz/T). B0 comes from the scanner's imaging
frequency (a "3 T" Siemens Prisma is 2.895 T), never from the nominal field strength. The phase
sign differs between vendors and sequences (the handedness of the phase and of the frequency
axis); it is a setting, +1 meaning the convention above.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from fus.backend import array_module
from fus.errors import InvalidParameterError

__all__ = [
    "GAMMA_BAR",
    "GAMMA",
    "ALPHA_PPM_PER_C",
    "b0_from_frequency",
    "prf_scale",
    "estimate_noise",
]

log = logging.getLogger(__name__)

#: Proton gyromagnetic ratio / 2 pi [Hz/T] (CODATA 2018).
GAMMA_BAR = 42.577478518e6
#: Proton gyromagnetic ratio [rad/s/T].
GAMMA = 2 * math.pi * GAMMA_BAR
#: PRF thermal coefficient [ppm/C] (Ishihara 1995; Rieke & Butts Pauly 2008).
ALPHA_PPM_PER_C = -0.01


def b0_from_frequency(f0_hz: float) -> float:
    """Main field [T] from the proton imaging frequency [Hz]: B0 = f0 / gamma_bar."""
    f = float(f0_hz)
    if not math.isfinite(f) or f <= 0:
        raise InvalidParameterError("imaging frequency", f0_hz, "must be a positive frequency in Hz")
    return f / GAMMA_BAR


def plausible(name: str, value: Any, lo: float, hi: float, unit: str, hints: dict[float, str]) -> float:
    """``value`` as a float within [lo, hi] [unit]; else InvalidParameterError naming the likely mistake.

    ``hints`` maps a threshold to the explanation given for a value above it (a unit mix-up).
    """
    if isinstance(value, bool):
        raise InvalidParameterError(name, value, f"must be a number [{unit}]")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, value, f"must be a number [{unit}]") from None
    if not math.isfinite(x):
        raise InvalidParameterError(name, value, f"must be finite [{unit}]")
    if not lo <= x <= hi:
        why = [h for t, h in sorted(hints.items()) if abs(x) > t]
        raise InvalidParameterError(name, value, f"is outside the plausible range [{lo:g}, {hi:g}] {unit}" + (f": {why[-1]}" if why else ""))
    return x


def prf_scale(b0: float, te: float, alpha_ppm: float = ALPHA_PPM_PER_C, phase_sign: int = 1) -> float:
    """Temperature change per radian of phase [C/rad]: ``phase_sign / (gamma * alpha * B0 * TE)``.

    Parameters
    ----------
    b0 : float
        Main field [T], > 0.
    te : float
        Echo time [s], > 0.
    alpha_ppm : float
        PRF coefficient [ppm/C], non-zero (default -0.01).
    phase_sign : {+1, -1}
        Phase convention of the scanner / sequence.
    """
    b0 = plausible("B0", b0, 0.05, 12.0, "T", {1e3: "it looks like the imaging frequency in Hz: give the field in tesla (a '3 T' Siemens is 2.89 T)"})
    te = plausible("TE", te, 1e-4, 0.2, "s", {0.2: "milliseconds given as seconds? (12 ms is 0.012 s)"})
    magnitude = abs(plausible("alpha", alpha_ppm, -0.05, 0.05, "ppm/C", {}))
    if magnitude < 1e-3:
        raise InvalidParameterError(
            "alpha", alpha_ppm, "is implausible: the PRF coefficient is about -0.01 ppm/C (give it in ppm/C, not as a fraction)"
        )
    if phase_sign not in (1, -1):
        raise InvalidParameterError("phase_sign", phase_sign, "must be +1 or -1")
    return phase_sign / (GAMMA * alpha_ppm * 1e-6 * b0 * te)


def estimate_noise(magnitudes: list[Any]) -> tuple[float, str]:
    """Noise standard deviation per real/imaginary channel from two magnitude images.

    Two images of the same object (e.g. the first two dynamics, before heating):
    ``sigma = 1.4826 * MAD(|z1| - |z2|) / sqrt(2)`` over the voxels above the median magnitude
    (high SNR, where the magnitude noise is Gaussian with the channel sigma). A single image gives
    no reliable estimate without knowing where its background is: pass the noise explicitly then.

    Returns
    -------
    sigma : float
        Noise standard deviation (same units as the images).
    method : str
        Which estimator was used, for provenance.
    """
    if not isinstance(magnitudes, (list, tuple)) or len(magnitudes) < 2:
        raise InvalidParameterError(
            "magnitudes", f"{len(magnitudes) if isinstance(magnitudes, (list, tuple)) else 1} image(s)",
            "the noise estimate needs two images of the same object; give the noise explicitly otherwise",
        )
    xp = array_module(magnitudes[0])
    a = xp.asarray(magnitudes[0], dtype=np.float64).ravel()
    b = xp.asarray(magnitudes[1], dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InvalidParameterError("magnitudes", f"shapes {a.shape} and {b.shape}", "must match")
    ok = xp.isfinite(a) & xp.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 16:
        raise InvalidParameterError("magnitudes", f"{int(a.size)} finite voxels", "too few to estimate the noise")
    sel = a >= xp.median(a)
    d = a[sel] - b[sel]
    sigma = 1.4826 * float(xp.median(xp.abs(d - xp.median(d)))) / math.sqrt(2)
    if not sigma > 0:
        raise InvalidParameterError("magnitudes", "identical images", "the two images have no noise difference; give the noise explicitly")
    return sigma, "MAD of the difference of two magnitude images"
