"""Thermometry benchmark: one 8 x 256 x 256 dynamic, complex difference + polynomial drift + mask +
sigma_T + CEM43 dose, fus (PRF and dose kernels + array linear algebra) vs plain numpy, same run.

Run: ``pytest benchmarks/bench_thermometry.py`` (rates and the ratio are printed at the end).
"""

from __future__ import annotations

import numpy as np
import pytest

import fus
from fus.mr.baseline import Baseline
from fus.mr.prf import prf_scale
from fus.mr.thermometry import Thermometry, ThermometrySettings

SHAPE = (8, 256, 256)
B0, TE, NOISE = 2.895, 0.012, 2.0


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    mag = rng.uniform(50, 150, SHAPE).astype(np.float32)
    phi0 = rng.uniform(-np.pi, np.pi, SHAPE).astype(np.float32)
    zb = (mag * np.exp(1j * phi0)).astype(np.complex64)
    heat = np.zeros(SHAPE, np.float32)
    heat[:, 110:146, 110:146] = 15.0
    yy, xx = np.meshgrid(np.linspace(-1, 1, 256), np.linspace(-1, 1, 256), indexing="ij")
    drift = (0.4 + 0.2 * xx - 0.1 * yy).astype(np.float32)
    z = (mag * np.exp(1j * (phi0 + heat / prf_scale(B0, TE) + drift))).astype(np.complex64)
    z += (rng.normal(0, NOISE, SHAPE) + 1j * rng.normal(0, NOISE, SHAPE)).astype(np.complex64)
    exclude = np.zeros(SHAPE[1:], bool)
    exclude[100:156, 100:156] = True
    return zb, z, exclude


def numpy_dynamic(zb, z, exclude, state):
    """The plain numpy way: angle of the complex product, per-slice weighted lstsq, CEM43 by formula."""
    scale = prf_scale(B0, TE)
    dphi = np.angle(z * np.conj(zb))
    mz, mb = np.abs(z), np.abs(zb)
    mask = (mz >= 5 * NOISE) & (mb >= 5 * NOISE)
    sigma_phi = np.sqrt((NOISE / mz) ** 2 + (NOISE / mb) ** 2)
    ny, nx = SHAPE[1:]
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    drift = np.empty(SHAPE, np.float32)
    for s in range(SHAPE[0]):
        use = mask[s] & ~exclude
        c0 = np.angle(np.sum(np.exp(1j * dphi[s][use]) / sigma_phi[s][use] ** 2))
        r = np.angle(np.exp(1j * (dphi[s] - c0)))
        a = np.column_stack([np.ones(use.sum()), xx[use], yy[use]])
        w = 1 / sigma_phi[s][use]
        coef = np.linalg.lstsq(a * w[:, None], r[use] * w, rcond=None)[0]
        drift[s] = c0 + coef[0] + coef[1] * xx + coef[2] * yy
    dT = np.where(mask, scale * np.angle(np.exp(1j * (dphi - drift))), np.nan)
    sigma_t = np.where(mask, abs(scale) * sigma_phi, np.nan)
    temp = 37.0 + dT
    r43 = np.where(temp >= 43, 0.5, 0.25)
    state["dose"] += (5.0 / 60.0) * r43 ** (43.0 - temp)  # rectangle rule, 5 s per dynamic
    return dT, sigma_t


def test_thermometry_fus_cpu(rate, data):
    zb, z, exclude = data
    with fus.use("cpu"):
        th = Thermometry(Baseline(zb, NOISE), B0, TE, ThermometrySettings(drift="poly", drift_order=1, exclude=exclude))
        clock = iter(np.arange(1, 10_000) * 5.0)
        r = rate("thermometry 8x256x256", "fus-cpu", 1, "dynamics", lambda: th.process(z, next(clock), NOISE), rounds=20)
    inside = ~np.isnan(r.delta_t[:, 110:146, 110:146])
    assert abs(np.median(r.delta_t[:, 110:146, 110:146][inside]) - 15.0) < 0.5


def test_thermometry_numpy(rate, data):
    zb, z, exclude = data
    state = {"dose": np.zeros(SHAPE)}
    dT, _ = rate("thermometry 8x256x256", "numpy", 1, "dynamics", numpy_dynamic, zb, z, exclude, state, rounds=5)
    assert abs(np.nanmedian(dT[:, 110:146, 110:146]) - 15.0) < 0.5
