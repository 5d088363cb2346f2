"""fus.kernels.cem43 (kernels/dose.cu) against constant-T closed form and Gauss-Legendre quadrature."""

from __future__ import annotations

import numpy as np
import pytest

import fus
from fus.errors import InvalidParameterError
from fus.kernels import cem43

GL_X, GL_W = np.polynomial.legendre.leggauss(40)


def rate(t):
    """R^(43 - T) in float64, R = 0.5 at and above 43 C, 0.25 below (Sapareto & Dewey 1984)."""
    t = np.asarray(t, dtype=np.float64)
    return np.where(t >= 43.0, 0.5, 0.25) ** (43.0 - t)


def quad_step(t0, t1, dt_s):
    """CEM43 minutes over a step with T linear t0 -> t1, by 40-point Gauss-Legendre on each side of 43 C."""
    t0 = np.asarray(t0, np.float32).astype(np.float64)
    t1 = np.asarray(t1, np.float32).astype(np.float64)
    out = np.zeros(np.broadcast(t0, t1).shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where((t0 >= 43) != (t1 >= 43), (43.0 - t0) / (t1 - t0), 1.0)
    for lo, hi in ((np.zeros_like(cross), cross), (cross, np.ones_like(cross))):
        half = (hi - lo) / 2
        mid = (hi + lo) / 2
        s = mid[..., None] + half[..., None] * GL_X  # fraction of the step
        temp = t0[..., None] + (t1 - t0)[..., None] * s
        out += (half[..., None] * GL_W * rate(temp)).sum(-1)
    return out * dt_s / 60.0


def test_constant_temperature_closed_form(cpu_backend):
    temps = np.array([30.0, 37.0, 42.0, 42.99, 43.0, 43.5, 47.0, 50.0, 55.0, 60.0, 70.0], np.float32)
    dose = np.zeros(temps.shape)
    cem43(dose, temps, temps, 60.0)
    expect = rate(temps.astype(np.float64))  # 1 minute
    np.testing.assert_allclose(dose, expect, rtol=2e-6)
    # 240 CEM43 is 15 min at 47 C (16 equivalent minutes per minute)
    d = np.zeros(1)
    cem43(d, [47.0], [47.0], 900.0)
    assert abs(d[0] - 240.0) < 240.0 * 2e-6


def test_linear_steps_match_quadrature(cpu_backend, rng):
    n = 5000
    t0 = rng.uniform(30, 65, n).astype(np.float32)
    t1 = (t0 + rng.normal(0, 4, n)).astype(np.float32)
    t1[:50] = t0[:50]  # some constant steps
    t0[50:80], t1[50:80] = 43.0, rng.uniform(38, 48, 30)  # steps starting exactly at 43
    dt = 2.5
    dose = np.zeros(n)
    cem43(dose, t0, t1, dt)
    ref = quad_step(t0, t1, dt)
    np.testing.assert_allclose(dose, ref, rtol=3e-6, atol=1e-300)


def test_linear_step_matches_fine_sum(cpu_backend):
    """A ramp 40 -> 50 C in one step equals the fine-step sum (1e6 substeps, midpoint rule)."""
    dose = np.zeros(1)
    cem43(dose, [40.0], [50.0], 30.0)
    m = 1_000_000
    s = (np.arange(m) + 0.5) / m
    fine = rate(40.0 + 10.0 * s).sum() * (30.0 / m) / 60.0
    assert abs(dose[0] - fine) <= 2e-6 * fine


def test_accumulates_in_float64(cpu_backend):
    """100 000 small steps at 43 C sum to 100 s = 1.6667 min without float32 stalling."""
    dose = np.zeros(3)
    t = np.full(3, 43.0, np.float32)
    for _ in range(100_000):
        cem43(dose, t, t, 1e-3)
    np.testing.assert_allclose(dose, 100.0 / 60.0, rtol=1e-6)


def test_nan_temperature_gives_nan_dose(cpu_backend):
    dose = np.zeros(4)
    cem43(dose, [50, np.nan, 44, 40], [50, 45, np.nan, 40], 10.0)
    assert np.isfinite(dose[[0, 3]]).all()
    assert np.isnan(dose[1]) and np.isnan(dose[2])
    cem43(dose, [50, 50, 50, 50], [50, 50, 50, 50], 10.0)
    assert np.isnan(dose[1]) and np.isnan(dose[2])  # stays unknown


def test_zero_step_adds_nothing(cpu_backend):
    dose = np.full(2, 5.0)
    cem43(dose, [60, 60], [60, 60], 0.0)
    np.testing.assert_array_equal(dose, 5.0)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(dose=np.zeros(3, np.float32)), "dose"),
        (dict(dose=[0.0, 0.0, 0.0]), "dose"),
        (dict(dose=np.zeros((3, 2))[:, 0]), "dose"),
        (dict(temp_start=np.zeros(4)), "temp_start"),
        (dict(temp_end=np.zeros((3, 1))), "temp_end"),
        (dict(temp_end=np.array(["a", "b", "c"])), "temp_end"),
        (dict(dt=-1.0), "dt"),
        (dict(dt=np.inf), "dt"),
        (dict(dt="ten"), "dt"),
    ],
)
def test_bad_input(cpu_backend, kwargs, name):
    args = dict(dose=np.zeros(3), temp_start=np.full(3, 45.0), temp_end=np.full(3, 45.0), dt=1.0)
    args.update(kwargs)
    with pytest.raises(InvalidParameterError) as info:
        cem43(**args)
    assert info.value.name == name


@pytest.mark.cuda
def test_gpu_matches_cpu(cuda_backend, rng):
    cupy = cuda_backend.xp  # real CuPy, or its strict stand-in on the emulated device

    t0 = rng.uniform(30, 65, 100_003).astype(np.float32)
    t1 = (t0 + rng.normal(0, 4, t0.size)).astype(np.float32)
    d_gpu = cupy.zeros(t0.size)
    cem43(d_gpu, t0, t1, 3.0)
    with fus.use("cpu"):
        d_cpu = np.zeros(t0.size)
        cem43(d_cpu, t0, t1, 3.0)
    np.testing.assert_allclose(fus.asnumpy(d_gpu), d_cpu, rtol=3e-6)
    np.testing.assert_allclose(d_cpu, quad_step(t0, t1, 3.0), rtol=3e-6)
