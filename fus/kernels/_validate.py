"""Input validation shared by the public kernel functions: clear errors, safe casts only."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fus.errors import InvalidParameterError

INT32_MAX = 2**31 - 1


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__}"


def host_or_device_dtype(name: str, x: Any) -> np.dtype:
    """dtype of an array-like without copying device arrays; errors for non-numeric input."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(x).dtype
        except Exception as exc:  # ragged lists and the like
            raise InvalidParameterError(name, _describe(x), f"not convertible to an array ({exc})") from exc
    return np.dtype(dtype)


def real_array(name: str, x: Any, backend: Any, *, last_dim: int | None = None, ndim: int | None = None) -> Any:
    """``x`` as a C-contiguous float32 array of ``backend``.

    Accepts real floating and integer input (float64 coordinates are rounded to float32, the
    kernels' documented precision); refuses complex, boolean, string and object input.
    """
    dtype = host_or_device_dtype(name, x)
    if dtype.kind not in "fiu":
        raise InvalidParameterError(name, _describe(x), f"must be a real numeric array, got dtype {dtype}")
    arr = backend.asarray(x, dtype=np.float32)
    if ndim is not None and arr.ndim != ndim:
        raise InvalidParameterError(name, _describe(x), f"must have {ndim} dimension(s)")
    if last_dim is not None and (arr.ndim < 1 or arr.shape[-1] != last_dim):
        raise InvalidParameterError(name, _describe(x), f"last axis must have length {last_dim}")
    return arr


def complex_array(name: str, x: Any, backend: Any, *, ndim: int | None = None) -> Any:
    """``x`` as a C-contiguous complex64 array of ``backend`` (real input is accepted)."""
    dtype = host_or_device_dtype(name, x)
    if dtype.kind not in "fiuc":
        raise InvalidParameterError(name, _describe(x), f"must be a numeric array, got dtype {dtype}")
    arr = backend.asarray(x, dtype=np.complex64)
    if ndim is not None and arr.ndim != ndim:
        raise InvalidParameterError(name, _describe(x), f"must have {ndim} dimension(s)")
    return arr


def complex_scalar(name: str, x: Any) -> complex:
    """A finite Python complex from a number or a size-1 array."""
    if isinstance(x, (bool, np.bool_)):
        raise InvalidParameterError(name, x, "must be a number, not a boolean")
    if not isinstance(x, numbers.Number):
        dtype = getattr(x, "dtype", None)
        size = getattr(x, "size", None)
        if dtype is None or size != 1 or np.dtype(dtype).kind not in "fiuc":
            raise InvalidParameterError(name, _describe(x), "must be a real or complex number")
        x = complex(x.reshape(()).item()) if hasattr(x, "reshape") else complex(x)
    try:
        z = complex(x)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(name, x, "must be a real or complex number") from exc
    if not (np.isfinite(z.real) and np.isfinite(z.imag)):
        raise InvalidParameterError(name, x, "must be finite")
    return z


def count(name: str, n: int, *, minimum: int = 0) -> int:
    """Check an element count fits the kernels' int32 indexing."""
    if n < minimum:
        raise InvalidParameterError(name, n, f"needs at least {minimum} element(s)")
    if n > INT32_MAX:
        raise InvalidParameterError(name, n, f"more than {INT32_MAX} elements; split the work into chunks")
    return n
