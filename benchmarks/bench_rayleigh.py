"""Rayleigh kernel benchmark: the standard problem, fus (active backend and CPU) vs plain numpy.

Standard problem: 256 point sources on a spherical cap (radius of curvature 140 mm, aperture
140 mm, golden-angle layout), 1.2 MHz in water (c = 1500 m/s), focused weights, field on a
64 x 64 x 64 grid with 0.5 mm spacing centred on the focus: 67.1 M element-point pairs.

The numpy baseline is the best plain formulation we know: float32 throughout, distances from one
GEMM (|x|^2 + |y|^2 - 2 x.y, 8x faster than forming the differences), numpy's SIMD cos and sin,
then two real (N, M) @ (M, 2) matrix products per chunk of points (beats complex ``exp`` by ~12x).

Run: ``pytest benchmarks/bench_rayleigh.py`` (rates and ratios are printed at the end).
"""

from __future__ import annotations

import numpy as np
import pytest

import fus
from fus.kernels import rayleigh

FREQ = 1.2e6
C = 1500.0
K = 2 * np.pi * FREQ / C
ROC = 0.140
APERTURE = 0.140
N_EL = 256


def golden_cap(n: int, roc: float, aperture: float) -> np.ndarray:
    """n points on a spherical cap (focus at the origin, apex at z = -roc), equal area each."""
    theta_max = np.arcsin(aperture / (2 * roc))
    i = np.arange(n) + 0.5
    cos_t = 1 - (1 - np.cos(theta_max)) * i / n  # equal-area rings in polar angle
    phi = i * np.pi * (3 - np.sqrt(5))  # golden angle
    sin_t = np.sqrt(1 - cos_t**2)
    return roc * np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), -cos_t])


@pytest.fixture(scope="module")
def problem():
    src = golden_cap(N_EL, ROC, APERTURE).astype(np.float32)
    w = np.exp(1j * K * np.linalg.norm(src, axis=1)).astype(np.complex64)  # focused on the origin
    ax = (np.arange(64) - 31.5) * 0.5e-3
    pts = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    return src, w, pts


def numpy_rayleigh(src, w, pts, k, chunk=4096):
    """Plain numpy float32: r from a GEMM, cos, sin, and two real (N, M) @ (M, 2) products."""
    k = np.float32(k)
    wr, wi = w.real.astype(np.float32), w.imag.astype(np.float32)
    wa = np.stack([wr, wi], axis=1)  # cos/r @ [wr, wi]
    wb = np.stack([wi, -wr], axis=1)  # sin/r @ [wi, -wr]
    s2 = (src * src).sum(1)
    src_t2 = np.ascontiguousarray(-2 * src.T)
    out = np.empty(len(pts), np.complex64)
    for s in range(0, len(pts), chunk):
        p = pts[s : s + chunk]
        r2 = (p * p).sum(1)[:, None] + s2[None, :] + p @ src_t2
        r = np.sqrt(np.maximum(r2, 0, out=r2), out=r2)
        inv = 1.0 / r
        ph = k * r
        res = (np.cos(ph) * inv) @ wa + (np.sin(ph) * inv) @ wb
        out[s : s + chunk] = res[:, 0] + 1j * res[:, 1]
    return out


def test_rayleigh_fus_cpu(rate, problem):
    src, w, pts = problem
    with fus.use("cpu"):
        out = rate("rayleigh 256 x 64^3", "fus-cpu", len(src) * len(pts), "pairs", rayleigh, src, w, pts, K, rounds=5)
    assert np.isfinite(out).all()


def test_rayleigh_fus_cuda(rate, problem):
    ok, reason, _ = fus.backend.cuda_status()
    if not ok:
        pytest.skip(f"no CUDA device: {reason}")
    import cupy

    src, w, pts = problem
    with fus.use("cuda"):
        d = [cupy.asarray(a) for a in problem]

        def run():
            out = rayleigh(*d, K)
            cupy.cuda.Device().synchronize()
            return out

        rate("rayleigh 256 x 64^3", "fus-cuda", len(src) * len(pts), "pairs", run, rounds=20)


def test_rayleigh_numpy(rate, problem):
    src, w, pts = problem
    out = rate("rayleigh 256 x 64^3", "numpy-f32-cos-sin-gemv", len(src) * len(pts), "pairs", numpy_rayleigh, src, w, pts, K)
    with fus.use("cpu"):
        ref = fus.asnumpy(rayleigh(src, w, pts, K))
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-3  # same problem, same answer
