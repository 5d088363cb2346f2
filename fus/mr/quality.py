"""Thermometry image-quality measures for the safety interlocks (real and simulated data).

Each function takes arrays of either backend (numpy or cupy, :func:`fus.backend.array_module`)
and returns a Python scalar, so an interlock can compare it with its limit directly:

* :func:`magnitude_correlation`: Pearson correlation of two magnitude images; motion or a
  change of the imaged object lowers it (a reference of the same position gives ~1 at high SNR).
* :func:`repeated_frame`: a dynamic bitwise identical to the previous one (a stuck
  reconstruction or a re-sent image: its temperature would look valid but be stale).
* :func:`nan_fraction`: the fraction of an ROI that the thermometry could not measure.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fus.backend import array_module
from fus.errors import InvalidParameterError

__all__ = ["magnitude_correlation", "nan_fraction", "repeated_frame"]

log = logging.getLogger(__name__)


def _same_shape(name: str, a: Any, b: Any, what: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise InvalidParameterError(name, f"array of shape {tuple(b.shape)}", f"must match the {what}'s shape {tuple(a.shape)}")


def magnitude_correlation(image: Any, reference: Any, mask: Any = None) -> float:
    """Pearson correlation of ``|image|`` and ``|reference|`` over ``mask``.

    Parameters
    ----------
    image, reference : array (real or complex), same shape
        E.g. a dynamic and the baseline (slices, rows, cols).
    mask : bool array, optional
        Voxels to use (same shape; default all). Voxels where either magnitude is not finite are
        left out.

    Returns
    -------
    float
        Correlation in [-1, 1]; NaN when fewer than two voxels remain or either image is constant
        over them (no correlation is defined).
    """
    xp = array_module(image)
    a = xp.abs(xp.asarray(image)).astype(np.float64)
    b = xp.abs(xp.asarray(reference)).astype(np.float64)
    _same_shape("reference", a, b, "image")
    ok = xp.isfinite(a) & xp.isfinite(b)
    if mask is not None:
        m = xp.asarray(mask)
        _same_shape("mask", a, m, "image")
        if m.dtype != bool:
            raise InvalidParameterError("mask", f"array of dtype {m.dtype}", "must be a bool mask")
        ok &= m
    a, b = a[ok], b[ok]
    if int(a.size) < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    den = float(xp.sqrt(xp.sum(da * da) * xp.sum(db * db)))
    if not den > 0:
        return float("nan")
    return float(xp.sum(da * db)) / den


def repeated_frame(image: Any, previous: Any) -> bool:
    """True when ``image`` is bitwise identical to ``previous`` (a stuck frame).

    Bitwise: same shape, dtype and bytes (NaN payloads included), so a re-sent image is caught
    even where it holds NaN, and a genuinely new noisy image never is. ``previous`` None gives False.
    """
    if previous is None:
        return False
    xp = array_module(image)
    a, b = xp.asarray(image), xp.asarray(previous)
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return False
    if a.size == 0:
        return True
    ua = xp.ascontiguousarray(a).reshape(-1).view(np.uint8)
    ub = xp.ascontiguousarray(b).reshape(-1).view(np.uint8)
    return bool(xp.all(ua == ub))


def nan_fraction(values: Any, roi: Any) -> float:
    """Fraction of the ``roi`` voxels of ``values`` that are not finite (NaN or inf).

    Parameters
    ----------
    values : array
        E.g. a temperature map (slices, rows, cols), NaN where not measured.
    roi : bool array, same shape

    Returns
    -------
    float
        In [0, 1]; NaN for an empty ROI (nothing to judge).
    """
    xp = array_module(values)
    v = xp.asarray(values)
    r = xp.asarray(roi)
    _same_shape("roi", v, r, "values")
    if r.dtype != bool:
        raise InvalidParameterError("roi", f"array of dtype {r.dtype}", "must be a bool mask")
    n = int(xp.count_nonzero(r))
    if n == 0:
        return float("nan")
    return int(xp.count_nonzero(~xp.isfinite(v[r]))) / n
