"""Values for JSON sidecars, shared by every layer that writes one: numpy -> plain Python, one rule
for non-finite numbers (JSON has no NaN or infinity)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from fus.errors import DataError

__all__ = ["jsonable"]


def jsonable(value: Any, *, non_finite: Literal["raise", "null"] = "raise", where: str = "sidecar") -> Any:
    """``value`` made of JSON types only.

    numpy scalars and arrays become numbers and lists, tuples and sets lists, mapping keys
    strings, paths and any other object their text.

    Parameters
    ----------
    value : any
    non_finite : {"raise", "null"}
        A NaN or infinity raises (a run's results: a non-finite number there is a bug or a value
        to saturate and report), or becomes ``null`` (provenance, where it means "unknown").
    where : str
        Name of ``value`` in the error message; nested keys and indices are appended.

    Raises
    ------
    DataError
        With ``non_finite="raise"``: a non-finite number, naming its key path.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, non_finite=non_finite, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), non_finite=non_finite, where=where)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, non_finite=non_finite, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return jsonable(value.item(), non_finite=non_finite, where=where)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if non_finite == "null":
            return None
        raise DataError(f"the sidecar value {where} is {value}: fus never writes a non-finite number to JSON")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
