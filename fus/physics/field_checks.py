"""Checks of a computed field that a user would otherwise not see: a grid that misses the focus,
elements too small for the plane-wave radiation approximation, patches too coarse.

:func:`focus_sampling_warning` compares the grid's peak with the pressure computed at the focus
point itself (one extra evaluation): a grid with no point near the focus (an even number of
points centred on it), or a spacing coarser than the focal spot, reports a peak below the focal
pressure, and the warning says by how much. :func:`small_element_warning` flags elements whose
``ka < 3``: their radiated power is not ``rho c S |u|^2 / 2`` (for one baffled piston it is that
times ``1 - 2 J1(2ka) / (2ka)``: 0.42 at ka = 1), so a power normalisation is off.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import j1

from fus.backend import asnumpy
from fus.errors import InvalidParameterError

__all__ = ["MIN_POINTS_PER_WAVELENGTH", "check_points_per_wavelength", "focus_pressure", "focus_sampling_warning",
           "small_element_warning", "piston_radiation_factor"]

log = logging.getLogger(__name__)

#: Fewest patches per wavelength accepted: coarser patches than lambda / 2 alias the phase across
#: a patch and move the focus (0.01 put the peak 50 mm off).
MIN_POINTS_PER_WAVELENGTH = 2.0
#: The grid's peak may fall this far below the focal pressure before it is reported.
FOCUS_SAMPLING_TOLERANCE = 0.05


def check_points_per_wavelength(value: Any, option: str = "points_per_wavelength") -> float:
    """``value`` as a float >= :data:`MIN_POINTS_PER_WAVELENGTH`, else InvalidParameterError."""
    v = float(value)
    if not np.isfinite(v) or v < MIN_POINTS_PER_WAVELENGTH:
        raise InvalidParameterError(option, value, f"must be >= {MIN_POINTS_PER_WAVELENGTH:g} (patches of lambda / N; coarser than "
                                    "lambda / 2 they alias the phase and move the focus; default 3)")
    return v


def focus_pressure(transducer: Any, u: Any, focus: Any, medium: Any, spacing: Any, **options: Any) -> float:
    """|p| [Pa] at the point ``focus`` [m] (a one-point grid), with the same field options."""
    from fus.physics.field import pressure
    from fus.physics.grid import Grid

    one = Grid.centred((1, 1, 1), tuple(np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))), tuple(np.asarray(focus, dtype=np.float64)))
    return float(np.abs(asnumpy(pressure(transducer, u, one, medium, progress=False, **options))).max())


_GRID_ADVICE = "centre an odd number of points on the focus or use a finer spacing (the focal spot is ~1 wavelength wide)"


def focus_sampling_warning(grid_peak: float, at_focus: float, spacing_mm: Any, what: str = "grid", advice: str = _GRID_ADVICE) -> str | None:
    """A warning when the ``what``'s peak |p| is more than 5 % below the pressure at the focus."""
    if not (at_focus > 0 and np.isfinite(grid_peak)) or grid_peak >= (1.0 - FOCUS_SAMPLING_TOLERANCE) * at_focus:
        return None
    sp = ", ".join(f"{v:g}" for v in np.atleast_1d(spacing_mm))
    return (f"the {what} undersamples the focus: its peak {grid_peak / 1e6:.3g} MPa is {100 * (1 - grid_peak / at_focus):.0f} % below "
            f"the pressure at the focus point itself ({at_focus / 1e6:.3g} MPa) at spacing {sp} mm: {advice}")


def piston_radiation_factor(ka: float) -> float:
    """Radiated power of a baffled circular piston over ``rho c S |u|^2 / 2``: ``1 - 2 J1(2ka) / (2ka)``."""
    x = 2.0 * float(ka)
    return 1.0 - 2.0 * float(j1(x)) / x if x > 0 else 0.0


def small_element_warning(transducer: Any, sound_speed: float) -> str | None:
    """A warning when an element's ``ka`` (k in the source medium, a its radius) is below 3."""
    d = np.asarray(getattr(transducer, "diameters", []), dtype=np.float64)
    if d.size == 0:
        return None
    ka = float(np.min(2.0 * np.pi * float(transducer.frequency) / float(sound_speed) * 0.5 * d))
    if ka >= 3.0:
        return None
    return (f"element radius {0.5e3 * float(d.min()):.3g} mm is ka = {ka:.2f} < 3 at {float(transducer.frequency) / 1e6:g} MHz: the "
            f"plane-wave radiation approximation behind the power normalisation overstates what such an element radiates "
            f"(one baffled piston radiates x{piston_radiation_factor(ka):.2f} of it): the acoustic power is not what is reported")
