"""Checks of scalar parameters shared by every layer: one wording for one kind of mistake.

Each check returns the cleaned value or raises :class:`fus.errors.InvalidParameterError` naming
the parameter and the value found.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fus.errors import InvalidParameterError

__all__ = ["finite_scalar"]


def finite_scalar(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False) -> float:
    """``value`` as a finite float (not a boolean); optionally > 0 or >= 0."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(name, value, "must be a real number, not a boolean")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(name, value, "must be a real number") from exc
    if not math.isfinite(v):
        raise InvalidParameterError(name, value, "must be finite")
    if positive and v <= 0:
        raise InvalidParameterError(name, value, "must be > 0")
    if nonnegative and v < 0:
        raise InvalidParameterError(name, value, "must be >= 0")
    return v
