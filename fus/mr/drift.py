"""Drift correction of PRF phase differences, per slice and dynamic.

Two methods, both working on the phase difference ``dphi`` [rad] (slices, rows, cols) of one
dynamic against its baseline, and returning the drift phase to subtract:

* ``roi``: the mean *complex* phase in a reference region (unheated tissue):
  ``angle(sum(m * exp(i dphi)))`` per slice, immune to wrapping.
* ``poly``: a weighted least-squares 2-D polynomial of order 0-2 in the in-plane coordinates,
  fitted to the phase outside the heated region (referenceless / background-field style;
  Rieke et al., Magn. Reson. Med. 51, 1223-1231 (2004), simplified). The per-slice constant is
  first removed as a complex mean, so the fit sees a small, unwrapped residual. Weights are
  ``1 / sigma_phi^2`` (inverse variance). Solved per slice with the array module's linear algebra
  (batched normal equations, ``xp.linalg.solve``).

All functions take and return arrays of the input's backend (numpy or cupy).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fus.backend import array_module, asnumpy
from fus.errors import InvalidParameterError

__all__ = ["poly_basis", "drift_roi", "drift_poly", "DRIFT_METHODS"]

log = logging.getLogger(__name__)

DRIFT_METHODS = ("none", "roi", "poly")


def poly_basis(ny: int, nx: int, order: int, xp: Any = np) -> Any:
    """2-D polynomial basis (n_terms, ny, nx) in coordinates normalised to [-1, 1].

    Terms u^i v^j with i + j <= order (u along columns, v along rows): 1, 3 or 6 terms.
    """
    if order not in (0, 1, 2):
        raise InvalidParameterError("order", order, "polynomial drift order must be 0, 1 or 2")
    v, u = xp.meshgrid(xp.linspace(-1.0, 1.0, ny, dtype=np.float32), xp.linspace(-1.0, 1.0, nx, dtype=np.float32), indexing="ij")
    terms = [(i, j) for total in range(order + 1) for j in range(total + 1) for i in [total - j]]
    return xp.stack([u**i * v**j for i, j in terms])


def _slice_mean_phase(dphi: Any, weight: Any) -> Any:
    """Per-slice angle of the weighted complex mean sum(w exp(i dphi)); NaN for a slice with no weight."""
    xp = array_module(dphi)
    ns = dphi.shape[0]
    w = weight.reshape(ns, -1)
    d = xp.where(w > 0, dphi.reshape(ns, -1), np.float32(0))
    re = xp.einsum("sp,sp->s", w, xp.cos(d))
    im = xp.einsum("sp,sp->s", w, xp.sin(d))
    total = w.sum(axis=1)
    ang = xp.arctan2(im, re).astype(np.float32)
    return xp.where(total > 0, ang, np.float32(np.nan))


def _check(dphi: Any, region: Any, name: str) -> Any:
    xp = array_module(dphi)
    if dphi.ndim != 3:
        raise InvalidParameterError("dphi", f"array of shape {tuple(dphi.shape)}", "must be (slices, rows, cols)")
    r = xp.asarray(region)
    if r.shape != dphi.shape:
        if r.ndim == 2 and r.shape == dphi.shape[1:]:
            r = xp.broadcast_to(r, dphi.shape)
        else:
            raise InvalidParameterError(name, f"array of shape {tuple(r.shape)}", f"must have shape {tuple(dphi.shape)} or {tuple(dphi.shape[1:])}")
    return r.astype(bool, copy=False)


def drift_roi(dphi: Any, mask: Any, roi: Any) -> Any:
    """Per-slice drift = mean complex phase over ``roi & mask``; returned as (slices, 1, 1) [rad].

    Raises
    ------
    InvalidParameterError
        When the reference region holds no measured voxel in some slice (the drift there is unknown;
        no silent zero).
    """
    xp = array_module(dphi)
    region = _check(dphi, roi, "drift_roi") & _check(dphi, mask, "mask")
    c = _slice_mean_phase(dphi, region.astype(np.float32))
    empty = xp.isnan(c)
    if bool(empty.any()):
        bad = np.nonzero(asnumpy(empty))[0].tolist()
        raise InvalidParameterError("drift_roi", f"slices {bad}", "the reference region has no measured voxel there")
    return c[:, None, None]


def drift_poly(
    dphi: Any,
    weight: Any,
    *,
    order: int = 1,
    exclude: Any | None = None,
    basis: Any | None = None,
    min_voxels: int = 50,
    stride: int = 2,
) -> tuple[Any, Any]:
    """Weighted 2-D polynomial drift per slice, fitted outside the heated region.

    The fit uses every ``stride``-th row and column (default 2: a quarter of the voxels, which for
    a polynomial of order <= 2 over thousands of voxels costs nothing in accuracy and saves 4x
    the work); the drift is then evaluated on the full grid.

    Parameters
    ----------
    dphi : array (slices, rows, cols) [rad]
        Phase difference, finite everywhere (as :func:`fus.kernels.prf_phase` returns it: 0 where
        not measured).
    weight : array, same shape [1/rad^2]
        Inverse variance of ``dphi``, 0 where not measured (from :func:`fus.kernels.prf_phase`).
    order : {0, 1, 2}
    exclude : array, optional
        Nonzero where the phase must not be used (heated region); (slices, rows, cols) or (rows, cols).
    basis : array (terms, rows, cols), optional
        Precomputed :func:`poly_basis` (saves work per dynamic).
    min_voxels : int
        A slice with fewer usable voxels than this is an error (the fit would be meaningless).
    stride : int
        Subsampling of rows and columns for the fit (1 = every voxel).

    Returns
    -------
    drift : array (slices, rows, cols) float32 [rad]
    coefficients : array (slices, terms) float64, including the slice constant
    """
    xp = array_module(dphi)
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise InvalidParameterError("stride", stride, "must be an integer >= 1")
    if dphi.ndim != 3:
        raise InvalidParameterError("dphi", f"array of shape {tuple(dphi.shape)}", "must be (slices, rows, cols)")
    ns, ny, nx = dphi.shape
    b = poly_basis(ny, nx, order, xp) if basis is None else basis
    if b.shape[1:] != (ny, nx):
        raise InvalidParameterError("basis", f"array of shape {tuple(b.shape)}", f"must be (terms, {ny}, {nx})")
    w = xp.asarray(weight, dtype=np.float32)
    if w.shape != dphi.shape:
        raise InvalidParameterError("weight", f"array of shape {tuple(w.shape)}", f"must have shape {tuple(dphi.shape)}")
    sub = (slice(None), slice(None, None, stride), slice(None, None, stride))
    w = w[sub]
    if exclude is not None:
        w = xp.where(_check(dphi, exclude, "exclude")[sub], np.float32(0), w)
    w = w.reshape(ns, -1)
    counts = (w > 0).sum(axis=1)
    need = max(min_voxels, b.shape[0])
    if bool((counts < need).any()):
        bad = np.nonzero(asnumpy(counts) < need)[0].tolist()
        raise InvalidParameterError(
            "drift", f"slices {bad}", f"fewer than {need} measured voxels outside the heated region for the polynomial fit"
        )
    d = dphi[sub].reshape(ns, -1)
    # slice constant: angle of the weighted complex mean (immune to wrapping)
    c0 = xp.arctan2(xp.einsum("sp,sp->s", w, xp.sin(d)), xp.einsum("sp,sp->s", w, xp.cos(d))).astype(np.float32)
    two_pi = np.float32(2 * np.pi)
    resid = d - c0[:, None]
    resid -= two_pi * xp.rint(resid / two_pi)
    bs = b[:, ::stride, ::stride].reshape(b.shape[0], -1).astype(np.float32, copy=False)  # (terms, P')
    # normal equations per slice: (B W B^T) c = B W r, assembled in float32, solved in float64
    bw = w[:, None, :] * bs[None, :, :]  # (ns, terms, P')
    gram = xp.matmul(bw, bs.T).astype(np.float64)
    rhs = xp.matmul(bw, resid[:, :, None])[..., 0].astype(np.float64)
    coef = xp.linalg.solve(gram, rhs[..., None])[..., 0]  # (ns, terms)
    bf = b.reshape(b.shape[0], -1).astype(np.float32, copy=False)  # (terms, P)
    drift = (coef.astype(np.float32) @ bf).reshape(ns, ny, nx)
    drift += c0[:, None, None]
    coef[:, 0] += c0.astype(np.float64)
    return drift, coef
