"""Independent float64 numpy references for the kernels (written from the formulas, not the code)."""

from __future__ import annotations

import numpy as np


def rayleigh_ref(sources, weights, points, k: float, alpha: float) -> np.ndarray:
    """float64 sum_m w_m exp(-(alpha + i k) r) / r, excluding r == 0 terms.

    Inputs are first rounded to what the kernel receives (float32 / complex64), so the comparison
    measures the kernel's arithmetic, not the input rounding.
    """
    s = np.asarray(sources, dtype=np.float32).astype(np.float64)
    p = np.asarray(points, dtype=np.float32).astype(np.float64).reshape(-1, 3)
    w = np.asarray(weights, dtype=np.complex64).astype(np.complex128)
    k = float(np.float32(k))
    alpha = float(np.float32(alpha))
    out = np.empty(p.shape[0], dtype=np.complex128)
    for start in range(0, p.shape[0], 2048):
        d = p[start : start + 2048, None, :] - s[None, :, :]
        r = np.sqrt(np.einsum("nmi,nmi->nm", d, d))
        with np.errstate(divide="ignore", invalid="ignore"):
            term = w[None, :] * np.exp(-(alpha + 1j * k) * r) / r
        term[r == 0] = 0
        out[start : start + 2048] = term.sum(axis=1)
    return out.reshape(np.asarray(points).shape[:-1])


def rel_l2(a, b) -> float:
    """Relative L2 error ||a - b|| / ||b||."""
    a = np.asarray(a, dtype=np.complex128)
    b = np.asarray(b, dtype=np.complex128)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
