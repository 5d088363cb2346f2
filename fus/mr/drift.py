"""Drift correction of PRF phase differences, per slice and dynamic.

Two methods, both working on the phase difference ``dphi`` [rad] (slices, rows, cols) of one
dynamic against its baseline, and returning the drift phase to subtract:

* ``roi``: the mean *complex* phase in a reference region (unheated tissue):
  ``angle(sum(m * exp(i dphi)))`` per slice, immune to wrapping.
* ``poly``: a weighted least-squares 2-D polynomial of order 0-2 in the in-plane coordinates,
  fitted to the phase outside the heated region (referenceless / background-field style;
  Rieke et al., Magn. Reson. Med. 51, 1223-1231 (2004), simplified). The per-slice constant is
  first removed as a complex mean, so the fit sees a small, unwrapped residual. Weights are
  ``1 / sigma_phi^2`` (inverse variance). The normal equations are assembled from per-row sums
  computed by the PRF kernels (:func:`fus.kernels.prf_row_poly_sums`: one pass over the data, no
  basis images); the few kB of sums come back to the host, where the normal equations are
  assembled and solved per slice in float64 with numpy's linear algebra (``np.linalg.solve``,
  batched), so both backends solve the same system the same way.

Both return per-slice polynomial coefficients, which :func:`fus.kernels.prf_temperature_dose`
evaluates voxel by voxel; :func:`poly_eval` forms the drift image when one is wanted.

All functions take and return arrays of the input's backend (numpy or cupy).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from fus.backend import array_module, asnumpy
from fus.errors import DataError, InvalidParameterError
from fus.kernels import prf_row_phase_sums, prf_row_poly_sums

__all__ = ["poly_terms", "poly_basis", "poly_eval", "drift_roi", "drift_poly", "drift_poly_fit", "DRIFT_METHODS"]

log = logging.getLogger(__name__)

DRIFT_METHODS = ("none", "roi", "poly")

# smallest resultant length |mean exp(i dphi)| accepted for a drift reference region: tissue at
# SNR 5 gives ~0.96, a uniform field step of pi/2 across it ~0.9, pure noise ~1/sqrt(N)
MIN_ROI_COHERENCE = 0.3


def poly_terms(order: int) -> list[tuple[int, int]]:
    """Exponents (i, j) of the terms u^i v^j of a 2-D polynomial of ``order`` (0, 1 or 2), in the
    order used everywhere in fus: 1; u, v; u^2, u v, v^2."""
    if order not in (0, 1, 2):
        raise InvalidParameterError("order", order, "polynomial drift order must be 0, 1 or 2")
    return [(total - j, j) for total in range(order + 1) for j in range(total + 1)]


def _coords(n: int, xp: Any) -> Any:
    return xp.linspace(-1.0, 1.0, n, dtype=np.float32)


def poly_basis(ny: int, nx: int, order: int, xp: Any = np) -> Any:
    """2-D polynomial basis (n_terms, ny, nx) in coordinates normalised to [-1, 1].

    Terms u^i v^j with i + j <= order (u along columns, v along rows): 1, 3 or 6 terms, in
    :func:`poly_terms` order.
    """
    terms = poly_terms(order)
    v, u = xp.meshgrid(_coords(ny, xp), _coords(nx, xp), indexing="ij")
    return xp.stack([u**i * v**j for i, j in terms])


def poly_eval(coef: Any, ny: int, nx: int) -> Any:
    """Drift image (slices, ny, nx) float32 [rad] of per-slice polynomial coefficients.

    Parameters
    ----------
    coef : array (slices, terms), terms 1, 3 or 6 in :func:`poly_terms` order [rad]
    ny, nx : int
        Rows and columns of the image.
    """
    xp = array_module(coef)
    c = xp.asarray(coef)
    order = {1: 0, 3: 1, 6: 2}.get(int(c.shape[-1]) if c.ndim == 2 else -1)
    if order is None:
        raise InvalidParameterError("coef", f"array of shape {tuple(c.shape)}", "must be (slices, 1|3|6)")
    b = poly_basis(ny, nx, order, xp)
    return xp.tensordot(c.astype(np.float32), b, axes=(1, 0)).astype(np.float32, copy=False)


def _region(dphi: Any, region: Any, name: str) -> Any:
    """``region`` checked against ``dphi`` (slices, rows, cols): a bool array of that shape or (rows, cols)."""
    xp = array_module(dphi)
    if dphi.ndim != 3:
        raise InvalidParameterError("dphi", f"array of shape {tuple(dphi.shape)}", "must be (slices, rows, cols)")
    r = xp.asarray(region)
    if tuple(r.shape) not in (tuple(dphi.shape), tuple(dphi.shape[1:])):
        raise InvalidParameterError(name, f"array of shape {tuple(r.shape)}", f"must have shape {tuple(dphi.shape)} or {tuple(dphi.shape[1:])}")
    return r


def drift_roi(dphi: Any, mask: Any, roi: Any) -> Any:
    """Per-slice drift = mean complex phase over ``roi`` and the measured voxels [rad], (slices,).

    ``angle(sum exp(i dphi))`` over the region (an unweighted complex mean, immune to wrapping).

    Parameters
    ----------
    dphi : array (slices, rows, cols) [rad]
    mask : array, same shape
        Nonzero where measured (:func:`fus.kernels.prf_phase`'s mask, or its weight).
    roi : bool array (slices, rows, cols) or (rows, cols)
        Reference region (unheated tissue).

    Raises
    ------
    InvalidParameterError
        When the reference region holds no measured voxel in some slice (the drift there is unknown;
        no silent zero), or its phase is incoherent (resultant length below
        :data:`MIN_ROI_COHERENCE`: the region is noise or the field varies across it).
    """
    xp = array_module(dphi)
    r = _region(dphi, roi, "drift_roi")
    m = xp.asarray(mask)
    if tuple(m.shape) != tuple(dphi.shape):
        raise InvalidParameterError("mask", f"array of shape {tuple(m.shape)}", f"must have shape {tuple(dphi.shape)}")
    w = m if m.dtype == np.float32 else (m != 0).astype(np.float32)
    sums = prf_row_phase_sums(dphi, w, r, unit_weight=True).sum(axis=1)
    host = asnumpy(sums)
    empty = host[:, 2] == 0
    if empty.any():
        raise InvalidParameterError("drift_roi", f"slices {np.nonzero(empty)[0].tolist()}", "the reference region has no measured voxel there")
    # resultant length of the unit phasors: ~1 for a coherent reference, ~1/sqrt(N) for noise
    coherence = np.hypot(host[:, 0], host[:, 1]) / host[:, 2]
    low = coherence < MIN_ROI_COHERENCE
    if low.any():
        bad = np.nonzero(low)[0].tolist()
        raise InvalidParameterError(
            "drift_roi", f"slices {bad} (phase coherence {np.round(coherence[low], 3).tolist()})",
            f"the reference region's phase is incoherent (< {MIN_ROI_COHERENCE}: noise, or a field that varies "
            "across it), so its mean phase is no drift estimate",
        )
    return xp.arctan2(sums[:, 1], sums[:, 0])


def _finite(sums: np.ndarray, what: str) -> None:
    """Refuse non-finite fit sums (an infinite phase or weight among the used voxels)."""
    with np.errstate(all="ignore"):
        if np.isfinite(sums.sum()):  # fast path: the total is finite only if every sum is
            return
    bad = ~np.isfinite(sums).reshape(sums.shape[0], -1).all(axis=1)
    if bad.any():
        raise InvalidParameterError(
            "dphi/weight", f"slices {np.nonzero(bad)[0].tolist()}", f"{what} are not finite: an infinite phase or weight is among the used voxels"
        )


@functools.lru_cache(maxsize=32)
def _fit_layout(ny: int, stride: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Powers v^p (p = 0..2 order) of the visited rows' coordinates, (p, rows'), and the indices
    that place sum_rows v^p S_k / v^p R_k into the normal equations of :func:`poly_terms`."""
    v = np.linspace(-1.0, 1.0, ny)[::stride]
    vp = v[None, :] ** np.arange(2 * order + 1)[:, None]
    terms = poly_terms(order)
    ii = np.array([[a[0] + b[0] for b in terms] for a in terms])
    jj = np.array([[a[1] + b[1] for b in terms] for a in terms])
    ti = np.array([5 + t[0] for t in terms])
    tj = np.array([t[1] for t in terms])
    for a in (vp, ii, jj, ti, tj):
        a.flags.writeable = False
    return vp, ii, jj, ti, tj


def _normal_equations(mom: np.ndarray, ny: int, stride: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrices (ns, T, T) and right-hand sides (ns, T) from the per-row moments (ns, rows', 8):
    entry (u^i1 v^j1, u^i2 v^j2) = sum_rows v^(j1+j2) S_(i1+i2); rhs (u^i v^j) = sum_rows v^j R_i."""
    vp, ii, jj, ti, tj = _fit_layout(ny, stride, order)
    m = np.matmul(vp, mom)  # (ns, p, 8): sum over rows of v^p times each moment
    return m[:, jj, ii], m[:, tj, ti]


def drift_poly_fit(
    dphi: Any,
    weight: Any,
    *,
    order: int = 1,
    use: Any | None = None,
    exclude: Any | None = None,
    min_voxels: int = 50,
    stride: int = 2,
) -> Any:
    """Weighted 2-D polynomial drift per slice, fitted outside the heated region: coefficients.

    The slice constant ``c0`` is first taken as the angle of the weighted complex mean (immune to
    wrapping); the polynomial is then fitted by weighted least squares to the wrapped residual
    ``wrap(dphi - c0)``, and ``c0`` is added to the constant term. The fit uses every
    ``stride``-th row, all of its columns (default 2: half the voxels, which for a polynomial of
    order <= 2 over thousands of voxels costs nothing in accuracy and halves the work).

    Parameters
    ----------
    dphi : array (slices, rows, cols) [rad]
        Phase difference (as :func:`fus.kernels.prf_phase` returns it: 0 where not measured).
    weight : array, same shape [1/rad^2]
        Inverse variance of ``dphi``, 0 where not measured.
    order : {0, 1, 2}
    use : array, optional
        Nonzero where the phase may be used; (slices, rows, cols) or (rows, cols). Precompute it
        once for a stream (uint8) and pass it instead of ``exclude``.
    exclude : array, optional
        Nonzero where the phase must not be used (heated region); the complement of ``use``.
    min_voxels : int
        A slice with fewer usable voxels than this is an error (the fit would be meaningless).
    stride : int
        Subsampling of rows for the fit (1 = every voxel).

    Returns
    -------
    coefficients : array (slices, terms) float64 [rad], :func:`poly_terms` order, including the
        slice constant

    Raises
    ------
    InvalidParameterError
        A slice with too few usable voxels, or bad arguments.
    DataError
        The usable voxels of a slice cannot determine the polynomial (e.g. all in one row).
    """
    xp = array_module(dphi)
    terms = poly_terms(order)
    if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 1:
        raise InvalidParameterError("stride", stride, "must be an integer >= 1")
    if use is not None and exclude is not None:
        raise InvalidParameterError("exclude", "given with use", "give either use or exclude")
    if dphi.ndim != 3:
        raise InvalidParameterError("dphi", f"array of shape {tuple(dphi.shape)}", "must be (slices, rows, cols)")
    ns, ny, nx = (int(v) for v in dphi.shape)
    if use is None:
        use = xp.ones((ny, nx), np.uint8) if exclude is None else _region(dphi, exclude, "exclude") == 0
    else:
        use = _region(dphi, use, "use")
    # the per-row sums come back to the host (a few kB); the normal equations are assembled and
    # solved there in float64, the same on both backends
    stride = max(1, min(int(stride), ny))
    first = asnumpy(prf_row_phase_sums(dphi, weight, use, stride=stride).sum(axis=1))  # (ns, 3)
    _finite(first, "the phase sums")
    need = max(int(min_voxels), len(terms))
    few = first[:, 2] < need
    if few.any():
        raise InvalidParameterError(
            "drift", f"slices {np.nonzero(few)[0].tolist()}", f"fewer than {need} measured voxels outside the heated region for the polynomial fit"
        )
    c0 = np.arctan2(first[:, 1], first[:, 0]).astype(np.float32)  # the kernel subtracts exactly this
    mom = asnumpy(prf_row_poly_sums(dphi, weight, use, c0, stride=stride))  # (ns, rows', 8)
    _finite(mom, "the fit moments")
    gram, rhs = _normal_equations(mom, ny, stride, order)
    # a slice whose usable voxels do not span the plane (e.g. all in one row) has a singular
    # system: the eigenvalues of the unit-diagonal Gram matrix tell (condition number > 1e8)
    scale = np.sqrt(np.einsum("stt->st", gram))
    with np.errstate(all="ignore"):
        ev = np.linalg.eigvalsh(gram / scale[:, :, None] / scale[:, None, :])
        bad = ~(ev[:, 0] * 1e8 > ev[:, -1])
    if bad.any():
        raise DataError(
            f"the drift polynomial of order {order} is undetermined in slices {np.nonzero(bad)[0].tolist()}: "
            f"the usable voxels of the fitted rows (every {stride}) do not span the image plane"
        )
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    coef[:, 0] += c0.astype(np.float64)
    return xp.asarray(coef)


def drift_poly(
    dphi: Any,
    weight: Any,
    *,
    order: int = 1,
    exclude: Any | None = None,
    min_voxels: int = 50,
    stride: int = 2,
) -> tuple[Any, Any]:
    """:func:`drift_poly_fit`, and the drift image it describes.

    Returns
    -------
    drift : array (slices, rows, cols) float32 [rad]
    coefficients : array (slices, terms) float64 [rad]
    """
    coef = drift_poly_fit(dphi, weight, order=order, exclude=exclude, min_voxels=min_voxels, stride=stride)
    return poly_eval(coef, int(dphi.shape[1]), int(dphi.shape[2])), coef
