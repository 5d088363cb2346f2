"""Thermometry benchmark: one 8 x 256 x 256 dynamic, complex difference + polynomial drift + mask +
sigma_T + CEM43 dose, fus (PRF kernels: phase, fit sums, fused temperature + drift + dose; numpy
solve) vs the same algorithm in plain vectorised numpy, same run.

Run: ``pytest benchmarks/bench_thermometry.py`` (rates and the ratio are printed at the end).
"""

from __future__ import annotations

import numpy as np
import pytest

import fus
from fus.mr.baseline import Baseline
from fus.mr.drift import poly_basis
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


def numpy_drift(dphi, weight, exclude, basis, stride=2, image=True):
    """The polynomial drift fit in plain numpy: every ``stride``-th row outside ``exclude``, slice
    constant as a weighted complex mean, weighted least squares on the wrapped residual; the drift
    image (``image``) or the coefficients (slices, terms), constant included."""
    ns = dphi.shape[0]
    w = np.where(exclude, np.float32(0), weight)[:, ::stride].reshape(ns, -1)
    d = dphi[:, ::stride].reshape(ns, -1)
    c0 = np.arctan2((w * np.sin(d)).sum(1), (w * np.cos(d)).sum(1)).astype(np.float32)
    resid = d - c0[:, None]
    resid -= np.float32(2 * np.pi) * np.rint(resid / np.float32(2 * np.pi))
    bs = basis[:, ::stride].reshape(basis.shape[0], -1)
    bw = w[:, None, :] * bs[None]
    coef = np.linalg.solve((bw @ bs.T).astype(np.float64), (bw @ resid[:, :, None]).astype(np.float64))[..., 0]
    if not image:
        coef[:, 0] += c0
        return coef
    return (coef.astype(np.float32) @ basis.reshape(basis.shape[0], -1)).reshape(dphi.shape) + c0[:, None, None]


def numpy_dynamic(zb, z, exclude, state):
    """The same algorithm in plain numpy: complex difference, mask, inverse-variance weights, the
    same polynomial drift fit (numpy linear algebra), wrap and scale, CEM43 by the closed form for
    a linear temperature (vectorised numpy, float64)."""
    scale = prf_scale(B0, TE)
    prod = z * np.conj(zb)
    dphi = np.angle(prod).astype(np.float32)
    m2, r2 = np.abs(z) ** 2, np.abs(zb) ** 2
    mask = (m2 >= (5 * NOISE) ** 2) & (r2 >= (5 * NOISE) ** 2)
    weight = np.where(mask, 1.0 / (NOISE**2 / m2 + NOISE**2 / r2), 0).astype(np.float32)
    dphi = np.where(mask, dphi, np.float32(0))
    drift = numpy_drift(dphi, weight, exclude, state["basis"])
    d = dphi - drift
    d -= np.float32(2 * np.pi) * np.rint(d / np.float32(2 * np.pi))
    dT = np.where(mask, scale * d, np.nan).astype(np.float32)
    sigma_t = np.where(mask, abs(scale) / np.sqrt(weight), np.nan).astype(np.float32)
    temp = (37.0 + dT).astype(np.float64)
    t0, t1 = state["prev"], temp
    # CEM43 of a linear ramp t0 -> t1 over 5 s, split at 43 C
    ln = lambda t: np.where(t >= 43, np.log(0.5), np.log(0.25))  # noqa: E731
    cross = (t0 >= 43) != (t1 >= 43)
    with np.errstate(all="ignore"):
        frac = np.where(cross, (43 - t0) / (t1 - t0), 1.0)
        end_a = np.where(cross, 43.0, t1)
        xa = -(end_a - t0) * ln(t0)
        seg_a = frac * np.exp((43 - t0) * ln(t0)) * np.where(np.abs(xa) < 1e-6, 1.0, np.expm1(xa) / xa)
        xb = -(t1 - 43) * ln(t1)
        seg_b = (1 - frac) * np.where(np.abs(xb) < 1e-6, 1.0, np.expm1(xb) / xb)
    state["dose"] += (5.0 / 60.0) * np.where(cross, seg_a + seg_b, seg_a)
    state["prev"] = temp
    state["tmax"] = np.fmax(state["tmax"], temp)
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
    state = {"dose": np.zeros(SHAPE), "prev": np.full(SHAPE, 37.0), "tmax": np.full(SHAPE, -np.inf), "basis": poly_basis(256, 256, 1)}
    dT, _ = rate("thermometry 8x256x256", "numpy", 1, "dynamics", numpy_dynamic, zb, z, exclude, state, rounds=5)
    assert abs(np.nanmedian(dT[:, 110:146, 110:146]) - 15.0) < 0.5


def _phase(zb, z):
    from fus.kernels import prf_phase

    with fus.use("cpu"):
        dphi, weight, _ = prf_phase(z, zb, noise=NOISE, mag_min=5 * NOISE)
    return dphi, weight


def test_drift_fit_fus_cpu(rate, data):
    """The drift fit alone, coefficients only (both sides): fit sums in the kernel + numpy solve."""
    from fus.mr.drift import drift_poly_fit

    zb, z, exclude = data
    dphi, weight = _phase(zb, z)
    with fus.use("cpu"):
        coef = rate("drift fit order 1", "fus-cpu", 1, "dynamics", drift_poly_fit, dphi, weight, order=1, exclude=exclude, rounds=20)
    # the drift put in: 0.4 + 0.2 u - 0.1 v (u along columns); the heated square is excluded
    np.testing.assert_allclose(coef[:, 1:], np.broadcast_to([0.2, -0.1], (8, 2)), atol=5e-3)


def test_drift_fit_numpy(rate, data):
    zb, z, exclude = data
    dphi, weight = _phase(zb, z)
    coef = rate("drift fit order 1", "numpy", 1, "dynamics", numpy_drift, dphi, weight, exclude, poly_basis(256, 256, 1), image=False, rounds=5)
    np.testing.assert_allclose(coef[:, 1:], np.broadcast_to([0.2, -0.1], (8, 2)), atol=5e-3)
