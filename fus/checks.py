"""Checks of scalar parameters shared by every layer: one wording for one kind of mistake.

Each check returns the cleaned value or raises :class:`fus.errors.InvalidParameterError` naming
the parameter and the value found.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fus.errors import InvalidParameterError

__all__ = ["finite_scalar", "check_keys"]


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


def check_keys(where: str, table: Any, allowed: Any) -> None:
    """Refuse a key of the mapping ``table`` that is not in ``allowed``, naming it (as
    ``where.key``), the keys allowed there and the nearest one (a misspelt setting must not be
    ignored silently)."""
    import difflib

    allowed = sorted(allowed)
    for key in table:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            name = f"{where}.{key}" if where else str(key)
            raise InvalidParameterError(name, table[key], f"unknown key (allowed here: {', '.join(allowed)}){hint}")
