"""fus.kernels.prf_phase / prf_temperature (kernels/prf.cu) against float64 numpy."""

from __future__ import annotations

import numpy as np
import pytest

import fus
from fus.errors import InvalidParameterError
from fus.kernels import prf_phase, prf_temperature

GAMMA = 2 * np.pi * 42.577478e6  # rad/s/T


def wrapped(a):
    return (np.asarray(a, np.float64) + np.pi) % (2 * np.pi) - np.pi


def random_images(rng, shape, mag=100.0):
    z = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * mag
    zr = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * mag
    return z.astype(np.complex64), zr.astype(np.complex64)


def test_phase_matches_complex_difference(cpu_backend, rng):
    z, zr = random_images(rng, (3, 37, 41))
    z[0, 0, :8] = [1, -1, 1j, -1j, 1 + 1j, -1 - 1j, 1e-3, -3]  # axes and octant boundaries
    dphi, weight, mask = prf_phase(z, zr, noise=2.0, noise_ref=1.0, mag_min=0.0)
    ref = np.angle(z.astype(np.complex128) * np.conj(zr.astype(np.complex128)))
    assert dphi.dtype == np.float32 and dphi.shape == z.shape
    assert np.abs(wrapped(dphi - ref)).max() < 4e-7
    assert np.all(np.abs(dphi) <= np.float32(np.pi))
    ref_sigma = np.sqrt((2.0 / np.abs(z.astype(np.complex128))) ** 2 + (1.0 / np.abs(zr.astype(np.complex128))) ** 2)
    np.testing.assert_allclose(weight, 1 / ref_sigma**2, rtol=2e-6)
    assert mask.all()


def test_mask_threshold_and_bad_voxels(cpu_backend, rng):
    z, zr = random_images(rng, (500,))
    z[0] = 0
    zr[1] = 0
    z[2] = complex(np.nan, 1)
    zr[3] = complex(1, np.inf)
    dphi, sigma, mask = prf_phase(z, zr, noise=1.0, mag_min=30.0)
    expect = (np.abs(z) >= 30) & (np.abs(zr) >= 30) & np.isfinite(z) & np.isfinite(zr)
    # with no threshold, zero and underflowing (|z|^2 < 1e-38) magnitudes are still not measured
    z[4] = 1e-30
    _, _, mask0 = prf_phase(z, zr, noise=1.0, mag_min=0.0)
    assert not mask0[[0, 1, 2, 3, 4]].any() and mask0[5:].all()
    np.testing.assert_array_equal(mask.astype(bool), expect)
    dT, sT = prf_temperature(dphi, 0.0, sigma, mask, scale=-10.0)
    assert np.isnan(dT[~expect]).all() and np.isnan(sT[~expect]).all()
    assert np.isfinite(dT[expect]).all()
    assert (dphi[~expect] == 0).all() and (sigma[~expect] == 0).all()  # no NaN for the drift fit


def test_temperature_wraps_after_drift(cpu_backend, rng):
    dphi = rng.uniform(-np.pi, np.pi, 10_000).astype(np.float32)
    drift = rng.uniform(-3, 3, 10_000).astype(np.float32)
    sigma = rng.uniform(0.01, 0.1, 10_000).astype(np.float32)
    weight = (1 / sigma.astype(np.float64) ** 2).astype(np.float32)
    mask = np.ones(10_000, np.uint8)
    scale = -1.0 / (GAMMA * -0.01e-6 * 2.895 * 0.01)  # +-: C per rad at 3 T, TE 10 ms
    dT, sT = prf_temperature(dphi, drift, weight, mask, scale)
    ref = scale * wrapped(dphi.astype(np.float64) - drift.astype(np.float64))
    np.testing.assert_allclose(dT, ref, atol=abs(scale) * 1e-6)
    np.testing.assert_allclose(sT, abs(scale) * sigma.astype(np.float64), rtol=1e-6)


def test_round_trip_known_temperature(cpu_backend, rng):
    """Known dT -> phase -> complex images -> dT, with alpha = -0.01 ppm/C, B0 = 2.895 T, TE = 10 ms."""
    b0, te, alpha = 2.895, 0.010, -0.01e-6
    scale = 1.0 / (GAMMA * alpha * b0 * te)
    dT_true = rng.uniform(-5, 25, (4, 64, 64))  # within the +-pi range at this TE (~ +-41 C)
    phi0 = rng.uniform(-np.pi, np.pi, dT_true.shape)
    mag = rng.uniform(50, 200, dT_true.shape)
    zr = mag * np.exp(1j * phi0)
    z = mag * np.exp(1j * (phi0 + dT_true / scale))
    dphi, sigma, mask = prf_phase(z, zr, noise=1.0)
    dT, _ = prf_temperature(dphi, 0.0, sigma, mask, scale)
    assert np.abs(dT - dT_true).max() < 2e-4


def test_backend_arrays_returned(cpu_backend, rng):
    z, zr = random_images(rng, (2, 3))
    out = prf_phase(z, zr, noise=1.0)
    assert all(isinstance(a, np.ndarray) for a in out)


@pytest.mark.parametrize(
    "fn,kwargs,name",
    [
        ("phase", dict(z_ref=np.ones((4, 4), np.complex64)), "z_ref"),
        ("phase", dict(noise=0.0), "noise"),
        ("phase", dict(noise=np.nan), "noise"),
        ("phase", dict(noise_ref=-1.0), "noise_ref"),
        ("phase", dict(mag_min=-1.0), "mag_min"),
        ("phase", dict(z=np.array(["a"] * 9).reshape(3, 3)), "z"),
        ("temp", dict(scale=0.0), "scale"),
        ("temp", dict(scale=np.inf), "scale"),
        ("temp", dict(drift=np.zeros((2, 2))), "drift"),
        ("temp", dict(mask=np.ones((3, 3), np.float32)), "mask"),
        ("temp", dict(weight=np.zeros(9)), "weight"),
        ("temp", dict(dphi=np.zeros((3, 3), complex)), "dphi"),
    ],
)
def test_bad_input(cpu_backend, fn, kwargs, name):
    if fn == "phase":
        args = dict(z=np.ones((3, 3), np.complex64), z_ref=np.ones((3, 3), np.complex64), noise=1.0)
        args.update(kwargs)
        call = lambda: prf_phase(args.pop("z"), args.pop("z_ref"), **args)  # noqa: E731
    else:
        args = dict(dphi=np.zeros((3, 3)), drift=0.0, weight=np.ones((3, 3)), mask=np.ones((3, 3), np.uint8), scale=-10.0)
        args.update(kwargs)
        call = lambda: prf_temperature(**args)  # noqa: E731
    with pytest.raises(InvalidParameterError) as info:
        call()
    assert info.value.name == name


@pytest.mark.cuda
def test_gpu_matches_cpu(cuda_backend, rng):
    z, zr = random_images(rng, (8, 64, 64))
    g = [fus.asnumpy(a) for a in prf_phase(z, zr, noise=2.0, mag_min=20.0)]
    with fus.use("cpu"):
        c = prf_phase(z, zr, noise=2.0, mag_min=20.0)
    np.testing.assert_array_equal(g[2], c[2])
    assert np.abs(wrapped(g[0] - c[0])).max() < 1e-6
    np.testing.assert_allclose(g[1], c[1], rtol=1e-6)
    gt = [fus.asnumpy(a) for a in prf_temperature(g[0], 0.1, g[1], g[2], -10.0)]
    with fus.use("cpu"):
        ct = prf_temperature(c[0], 0.1, c[1], c[2], -10.0)
    np.testing.assert_allclose(gt[0], ct[0], atol=1e-5, equal_nan=True)


def _poly64(coef, ny, nx):
    """float64 drift image of per-slice coefficients (1, u, v, u^2, u v, v^2), u, v in [-1, 1]."""
    v, u = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    basis = [np.ones_like(u), u, v, u * u, u * v, v * v][: coef.shape[1]]
    return np.einsum("st,tyx->syx", coef.astype(np.float64), np.array(basis))


def test_fused_temperature_dose_matches_separate_steps(cpu_backend, rng):
    """prf_temperature_dose == the polynomial drift (float64) removed by prf_temperature, then
    T = 37 + dT, CEM43 (Gauss-Legendre), fmax."""
    from fus.kernels import prf_temperature_dose
    from test_dose import quad_step

    shape = (3, 29, 37)
    dphi = rng.uniform(-np.pi, np.pi, shape).astype(np.float32)
    coef = rng.uniform(-0.8, 0.8, (3, 6))
    coef[:, 0] = [3.0, -3.1, 0.2]
    drift64 = _poly64(coef, *shape[1:])
    weight = rng.uniform(10, 1000, shape).astype(np.float32)
    mask = (rng.uniform(size=shape) > 0.1).astype(np.uint8)
    scale = -4.0  # C/rad: dT within +-13 C
    t_prev = rng.uniform(36, 60, shape).astype(np.float32)
    dose0 = rng.uniform(0, 100, shape)
    tmax0 = rng.uniform(36, 60, shape).astype(np.float32)
    tp, dose, tmax = t_prev.copy(), dose0.copy(), tmax0.copy()
    dT, sT, temp = prf_temperature_dose(dphi, weight, mask, scale, drift=coef, body_temp=37.0, dt=4.0, first=False,
                                        t_prev=tp, dose=dose, tmax=tmax)
    ok = mask.astype(bool)
    ref = scale * wrapped(dphi.astype(np.float64) - drift64)
    # compared modulo one wrap of the phase (a voxel within 1e-6 rad of +-pi may wrap either way)
    assert np.abs(wrapped((dT[ok] - ref[ok]) / scale)).max() < 2e-6
    assert np.isnan(dT[~ok]).all() and np.isnan(sT[~ok]).all()
    np.testing.assert_allclose(sT[ok], abs(scale) / np.sqrt(weight[ok].astype(np.float64)), rtol=1e-6)
    np.testing.assert_array_equal(temp, np.float32(37.0) + dT)
    np.testing.assert_array_equal(tp, t_prev)  # only read: the caller keeps temp as the next t_prev
    np.testing.assert_allclose(dose[ok], dose0[ok] + quad_step(t_prev[ok], temp[ok], 4.0), rtol=1e-6)
    assert np.isnan(dose[~ok]).all()
    np.testing.assert_array_equal(tmax, np.where(ok, np.fmax(tmax0, temp), tmax0))
    # lower orders and constants are the same polynomial padded with zeros
    for drift in (coef[:, :3], coef[:, :1], coef[:, 0], 0.7):
        c = np.zeros((3, 6))
        given = np.broadcast_to(np.reshape(drift, (3, -1)) if np.ndim(drift) else drift, (3, 1)) if np.ndim(drift) < 2 else drift
        c[:, : given.shape[1]] = given
        d2, _, _ = prf_temperature_dose(dphi, weight, mask, scale, drift=drift, body_temp=37.0, dt=4.0, first=False,
                                        t_prev=t_prev.copy(), dose=dose0.copy(), tmax=tmax0.copy())
        ref2 = scale * wrapped(dphi.astype(np.float64) - _poly64(c, *shape[1:]))
        assert np.abs(wrapped((d2[ok] - ref2[ok]) / scale)).max() < 2e-6
    # first dynamic: no dose accrues; unmeasured voxels get an unknown (NaN) dose
    tp2, dose2, tmax2 = np.zeros(shape, np.float32), np.zeros(shape), np.full(shape, -np.inf, np.float32)
    _, _, temp2 = prf_temperature_dose(dphi, weight, mask, scale, drift=coef, body_temp=37.0, dt=0.0, first=True,
                                       t_prev=tp2, dose=dose2, tmax=tmax2)
    assert (dose2[ok] == 0).all() and np.isnan(dose2[~ok]).all()
    np.testing.assert_array_equal(tmax2[ok], temp2[ok])
    for bad in (np.zeros((2, 3)), np.zeros((3, 4)), np.full((3, 3), np.nan)):
        with pytest.raises(InvalidParameterError) as info:
            prf_temperature_dose(dphi, weight, mask, scale, drift=bad, body_temp=37.0, dt=1.0, first=False,
                                 t_prev=tp, dose=dose, tmax=tmax)
        assert info.value.name == "drift"
    with pytest.raises(InvalidParameterError) as info:
        prf_temperature_dose(dphi, weight, mask, scale, drift=coef, body_temp=37.0, dt=1.0, first=False,
                             t_prev=tp, dose=dose.astype(np.float32), tmax=tmax)
    assert info.value.name == "dose"


def _fit_sums64(dphi, weight, use, c0, stride, unit_weight=False):
    """float64 numpy reference of prf_row_phase_sums and prf_row_poly_sums."""
    ns, ny, nx = dphi.shape
    use3 = np.broadcast_to(use, dphi.shape).astype(bool)
    ok = (weight > 0) & ~np.isnan(dphi) & use3
    w = np.where(ok, 1.0 if unit_weight else weight.astype(np.float64), 0.0)[:, ::stride]
    d = np.where(ok, dphi, 0.0).astype(np.float64)[:, ::stride]
    phase = np.stack([(w * np.cos(d)).sum(-1), (w * np.sin(d)).sum(-1), ok[:, ::stride].sum(-1)], -1)
    u = np.linspace(-1, 1, nx)
    e = wrapped(d - c0[:, None, None])
    poly = np.stack([(w * u**k).sum(-1) for k in range(5)] + [(w * e * u**k).sum(-1) for k in range(3)], -1)
    return phase, poly


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_fit_sums_match_float64(cpu_backend, rng, stride):
    from fus.kernels import prf_row_phase_sums, prf_row_poly_sums

    shape = (3, 31, 45)
    dphi = rng.uniform(-np.pi, np.pi, shape).astype(np.float32)
    weight = rng.uniform(0, 500, shape).astype(np.float32)
    weight[rng.uniform(size=shape) < 0.2] = 0
    dphi[0, 4, :] = np.nan  # NaN phase is never used, whatever its weight
    c0 = np.array([3.1, -0.4, 0.0], np.float32)
    for use in (rng.uniform(size=shape[1:]) > 0.3, rng.uniform(size=shape) > 0.3):
        for unit in (False, True):
            ph = prf_row_phase_sums(dphi, weight, use, stride=stride, unit_weight=unit)
            ref_ph, _ = _fit_sums64(dphi, weight, use, c0, stride, unit)
            assert ph.shape == (3, -(-31 // stride), 3)
            np.testing.assert_allclose(ph, ref_ph, rtol=1e-5, atol=1e-6 * np.abs(ref_ph).max())
        po = prf_row_poly_sums(dphi, weight, use, c0, stride=stride)
        _, ref_po = _fit_sums64(dphi, weight, use, c0, stride)
        assert po.shape == (3, -(-31 // stride), 8)
        np.testing.assert_allclose(po, ref_po, rtol=1e-5, atol=1e-5 * np.abs(ref_po).max())
    with pytest.raises(InvalidParameterError) as info:
        prf_row_phase_sums(dphi, weight, np.ones((31, 44), bool))
    assert info.value.name == "use"
    with pytest.raises(InvalidParameterError) as info:
        prf_row_poly_sums(dphi, weight, np.ones((31, 45), bool), c0[:2])
    assert info.value.name == "c0"
    with pytest.raises(InvalidParameterError) as info:
        prf_row_phase_sums(dphi, weight, np.ones((31, 45), bool), stride=0)
    assert info.value.name == "stride"


@pytest.mark.cuda
def test_gpu_fit_sums_and_fused_match_cpu(cuda_backend, rng):
    from fus.kernels import prf_row_phase_sums, prf_row_poly_sums, prf_temperature_dose

    shape = (4, 64, 80)
    dphi = rng.uniform(-np.pi, np.pi, shape).astype(np.float32)
    weight = rng.uniform(0, 500, shape).astype(np.float32)
    use = rng.uniform(size=shape[1:]) > 0.3
    c0 = rng.uniform(-3, 3, 4).astype(np.float32)
    g = [fus.asnumpy(prf_row_phase_sums(dphi, weight, use, stride=2)), fus.asnumpy(prf_row_poly_sums(dphi, weight, use, c0, stride=2))]
    with fus.use("cpu"):
        c = [prf_row_phase_sums(dphi, weight, use, stride=2), prf_row_poly_sums(dphi, weight, use, c0, stride=2)]
    for a, b in zip(g, c):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
    coef = rng.uniform(-0.5, 0.5, (4, 6))
    mask = (weight > 50).astype(np.uint8)

    def run():
        tp, dose, tmax = (fus.backend.get_backend().xp.asarray(a) for a in (np.full(shape, 40, np.float32), np.zeros(shape), np.full(shape, 40, np.float32)))
        out = prf_temperature_dose(dphi, weight, mask, -8.0, drift=coef, body_temp=37.0, dt=5.0, first=False, t_prev=tp, dose=dose, tmax=tmax)
        return [fus.asnumpy(a) for a in (*out, dose)]

    g = run()
    with fus.use("cpu"):
        c = run()
    for a, b in zip(g, c):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-4, equal_nan=True)


def test_launch_table_refuses_inconsistent_fit_geometry(cpu_backend):
    """Scalars that would make the kernels read past a buffer or divide by zero are refused
    before the launch (BackendError), whatever the arrays hold."""
    from fus.errors import BackendError

    d = np.zeros((1, 4, 5), np.float32)
    use = np.ones((4, 5), np.uint8)
    i32 = np.int32
    for stride, ns, ny, n_rows in [(2, 1, 4, 3), (0, 1, 4, 4), (1, 1, 0, 4), (2, 2, 4, 4)]:
        with pytest.raises(BackendError):
            cpu_backend.launch("prf_row_phase_sums", d, d, use, i32(0), i32(0), i32(stride), i32(ns), i32(ny), i32(5), i32(n_rows), np.zeros(3 * n_rows))
    z = np.zeros(21, np.float32)
    with pytest.raises(BackendError):  # 21 voxels are not 1 x 4 x 5
        cpu_backend.launch("prf_temperature_dose", z, z, z.astype(np.uint8), np.zeros(6, np.float32), np.float32(0), np.float32(0),
                           np.float32(1), np.float32(37), np.float32(1), i32(0), i32(1), i32(4), i32(5), i32(21),
                           z.copy(), z.copy(), z.copy(), z.copy(), np.zeros(21), z.copy())


def test_fused_kernel_accepts_an_empty_volume(cpu_backend):
    from fus.kernels import prf_temperature_dose

    shape = (2, 0, 5)
    e = np.zeros(shape, np.float32)
    dT, sT, temp = prf_temperature_dose(e, e, e.astype(np.uint8), -8.0, drift=np.zeros((2, 3)), body_temp=37.0, dt=1.0,
                                        first=True, t_prev=e.copy(), dose=np.zeros(shape), tmax=e.copy())
    assert dT.shape == shape and temp.size == 0
