"""A transducer from a short description: a preset name or an element table, with its options.

The ``fus field`` / ``fus heat`` options (``--transducer --roc --aperture --frequency``) and the
``[transducer]`` table of a ``fus simulate`` scenario both come here, so the two read the same
presets with the same defaults and the same errors. Units at this edge: mm and MHz.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from fus.errors import DataError, InvalidParameterError
from fus.physics.transducer_geometry import Transducer, bowl, cap256, piston
from fus.physics.transducer_io import load_transducer

__all__ = ["PRESETS", "BOWL_DEFAULTS", "PISTON_DEFAULTS", "DEFAULT_FREQUENCY_MHZ", "transducer_from_spec"]

PRESETS = ("cap256", "bowl", "piston")
#: Defaults of the ``bowl`` and ``piston`` presets (mm): the O'Neil validation bowl and a 20 mm piston.
BOWL_DEFAULTS = {"roc": 140.0, "aperture": 64.0}
PISTON_DEFAULTS = {"aperture": 20.0}
DEFAULT_FREQUENCY_MHZ = 1.2


def _positive(option: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(option, value, "must be a number > 0") from None
    if not math.isfinite(v) or v <= 0:
        raise InvalidParameterError(option, value, "must be > 0")
    return v


def transducer_from_spec(
    name: str,
    *,
    roc_mm: Any = None,
    aperture_mm: Any = None,
    frequency_mhz: Any = None,
    names: tuple[str, str, str] = ("--roc", "--aperture", "--frequency"),
) -> Transducer:
    """The transducer called ``name``: a preset (``cap256``, ``bowl``, ``piston``) or a CSV / JSON
    element table, with the bowl's radius of curvature, the aperture (a piston's diameter) [mm]
    and the drive frequency [MHz] applied where given.

    ``names`` are the option names used in error messages (CLI options or scenario keys).

    Raises
    ------
    InvalidParameterError
        Unknown preset, an option that does not apply to it, a non-positive value.
    DataError
        An element table that does not exist or does not parse.
    """
    n_roc, n_ap, n_f = names
    name = str(name)
    freq = _positive(n_f, frequency_mhz)
    roc = _positive(n_roc, roc_mm)
    aperture = _positive(n_ap, aperture_mm)
    # the units these options take (a value in Hz or m is named as such, not blamed on a later step)
    if freq is not None and not 0.05 <= freq <= 20.0:
        raise InvalidParameterError(n_f, frequency_mhz, "is in MHz: focused ultrasound drives at 0.05-20 MHz (1.2, not 1200000 Hz)")
    for opt, v, low in ((n_roc, roc, 2.0), (n_ap, aperture, 0.1)):
        if v is not None and not low <= v <= 2000.0:
            raise InvalidParameterError(opt, v, f"is in mm: {low:g}-2000 mm (140, not 0.14 m)")
    f_hz = (freq if freq is not None else DEFAULT_FREQUENCY_MHZ) * 1e6
    if name == "cap256":
        if roc is not None or aperture is not None:
            raise InvalidParameterError(f"{n_roc}/{n_ap}", (roc, aperture), "cap256 is a fixed preset; they apply to bowl and piston")
        return cap256(f_hz)
    if name == "bowl":
        return bowl(
            (roc if roc is not None else BOWL_DEFAULTS["roc"]) * 1e-3,
            (aperture if aperture is not None else BOWL_DEFAULTS["aperture"]) * 1e-3,
            f_hz,
        )
    if name == "piston":
        if roc is not None:
            raise InvalidParameterError(n_roc, roc, "a piston is flat; it applies to bowl")
        return piston(0.5 * (aperture if aperture is not None else PISTON_DEFAULTS["aperture"]) * 1e-3, f_hz)
    path = Path(name)
    if not path.suffix:
        raise InvalidParameterError("transducer", name, f"must be one of {', '.join(PRESETS)} or a .csv/.json element table")
    if not path.is_file():
        raise DataError("element table not found", path=path)
    if roc is not None or aperture is not None:
        raise InvalidParameterError(f"{n_roc}/{n_ap}", (roc, aperture), "apply to the bowl and piston presets, not to an element table")
    t = load_transducer(path)
    if freq is not None:
        t = dataclasses.replace(t, frequency=f_hz)
    return t
