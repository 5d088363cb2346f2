"""PRF thermometry layer: scale, noise, drift correction, baselines, streaming, dose, sigma_T."""

from __future__ import annotations

import math

import numpy as np

import fus
import pytest

from fus.errors import DataError, InvalidParameterError
from fus.kernels import prf_phase
from fus.mr.baseline import Baseline, BaselineLibrary
from fus.mr.drift import drift_poly, drift_roi, poly_basis
from fus.mr.prf import b0_from_frequency, estimate_noise, prf_scale
from fus.mr.thermometry import Thermometry, ThermometrySettings
from fus.physics.dose import DoseAccumulator, lesion_mask

SHAPE = (3, 64, 72)


def test_scale_and_b0_independent_arithmetic():
    # Siemens Prisma: 123.25 MHz -> 2.8947 T (not 3.0)
    assert abs(b0_from_frequency(123.25e6) - 123.25 / 42.577478518) < 1e-12
    # dT per radian at 2.895 T, TE 10 ms, alpha -0.01 ppm/C: 1 / (2 pi 42.577 MHz/T * -1e-8 * 2.895 T * 0.01 s)
    expect = 1.0 / (2 * math.pi * 42.577478518e6 * -0.01e-6 * 2.895 * 0.010)
    assert abs(prf_scale(2.895, 0.010) - expect) < 1e-12 * abs(expect)
    assert abs(expect + 12.91) < 0.01
    assert prf_scale(2.895, 0.010, phase_sign=-1) == -prf_scale(2.895, 0.010)
    for bad in [dict(b0=0), dict(te=-1), dict(alpha_ppm=0), dict(phase_sign=2)]:
        args = dict(b0=2.895, te=0.01, alpha_ppm=-0.01, phase_sign=1)
        args.update(bad)
        with pytest.raises(InvalidParameterError):
            prf_scale(**args)


def test_noise_estimates(rng):
    sigma = 3.0
    obj = rng.uniform(100, 200, (200, 200))  # ~20 000 voxels above the median: MAD error ~1 %
    obj[:, :40] = 0  # background columns
    def mag():
        return np.abs(obj + rng.normal(0, sigma, obj.shape) + 1j * rng.normal(0, sigma, obj.shape))
    s2, _ = estimate_noise([mag(), mag()])
    assert abs(s2 - sigma) < 0.05 * sigma, s2
    with pytest.raises(InvalidParameterError, match="two images"):
        estimate_noise([mag()])


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


@pytest.mark.parametrize("order", [0, 1, 2])
def test_poly_drift_recovered_outside_heated_region(cpu_backend, rng, order):
    ns, ny, nx = SHAPE
    basis = poly_basis(ny, nx, order)
    coef = rng.uniform(-0.8, 0.8, (ns, basis.shape[0]))
    coef[:, 0] = [3.0, -2.9, 0.5]  # constants that make the phase wrap
    truth = np.tensordot(coef, basis, axes=(1, 0))
    heat = np.zeros((ny, nx), bool)
    heat[20:40, 25:45] = True
    dphi = _wrap(truth + np.where(heat, 1.2, 0.0)).astype(np.float32)
    weight = np.ones(SHAPE, np.float32)
    drift, got = drift_poly(dphi, weight, order=order, exclude=heat)
    assert np.abs(_wrap(drift - truth)).max() < 2e-4
    np.testing.assert_allclose(_wrap(got[:, 0] - coef[:, 0]), 0, atol=2e-4)
    np.testing.assert_allclose(got[:, 1:], coef[:, 1:], atol=2e-4)


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 3])
def test_poly_drift_fit_equals_weighted_least_squares(cpu_backend, rng, order, stride):
    """Noisy phase with random inverse-variance weights and a per-slice (3-D) exclusion: the
    coefficients equal float64 weighted least squares (numpy lstsq) on the same voxels."""
    from fus.mr.drift import drift_poly_fit, poly_terms

    ns, ny, nx = SHAPE
    v, u = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    terms = poly_terms(order)
    basis = np.stack([u**i * v**j for i, j in terms])
    coef = rng.uniform(-0.6, 0.6, (ns, len(terms)))
    dphi = (np.tensordot(coef, basis, axes=(1, 0)) + rng.normal(0, 0.2, SHAPE)).astype(np.float32)
    weight = rng.uniform(0.2, 5.0, SHAPE).astype(np.float32)
    weight[rng.uniform(size=SHAPE) < 0.1] = 0
    exclude = rng.uniform(size=SHAPE) < 0.3
    got = drift_poly_fit(dphi, weight, order=order, exclude=exclude, stride=stride)
    for s in range(ns):
        rows = np.zeros((ny, nx), bool)
        rows[::stride] = True
        use = rows & ~exclude[s] & (weight[s] > 0)
        sw = np.sqrt(weight[s][use].astype(np.float64))
        ref = np.linalg.lstsq(basis[:, use].T * sw[:, None], dphi[s][use] * sw, rcond=None)[0]
        np.testing.assert_allclose(got[s], ref, atol=2e-6)


def test_poly_drift_refuses_non_finite_and_clamps_stride(cpu_backend, rng):
    from fus.mr.drift import drift_poly_fit

    dphi = rng.normal(0, 0.1, SHAPE).astype(np.float32)
    w = np.ones(SHAPE, np.float32)
    # a stride past the last row fits row 0 only: a constant, never a crash
    c = drift_poly_fit(dphi, w, order=0, stride=2**31 - 1, min_voxels=5)
    np.testing.assert_allclose(c[:, 0], dphi[:, 0].astype(np.float64).mean(-1), atol=1e-6)  # least squares on row 0
    for arr in (dphi, w):
        bad = arr.copy()
        bad[1, 10, 10] = np.inf
        with pytest.raises(InvalidParameterError, match=r"slices \[1\]"):
            drift_poly_fit(bad if arr is dphi else dphi, bad if arr is w else w, order=1)


def test_stream_recovers_known_heating_with_roi_drift(cpu_backend, rng):
    """A spatially constant drift per dynamic, removed by the reference-ROI method."""
    images, truth, b0, te = _series(rng, 5, drift=False)
    images = [(z * np.exp(1j * 0.7 * k)).astype(np.complex64) for k, z in enumerate(images)]  # wraps by dynamic 5
    roi = np.zeros(SHAPE[1:], bool)
    roi[2:15, 2:20] = True
    th = Thermometry(Baseline(images[0], noise=1.0), b0, te, ThermometrySettings(drift="roi", drift_roi=roi))
    for k, z in enumerate(images[1:], start=1):
        r = th.process(z, 5.0 * k, noise=1.0)
        assert np.nanmax(np.abs(r.delta_t - truth[k])) < 2e-3
        np.testing.assert_allclose(np.angle(np.exp(1j * (r.drift_coef[:, 0] - 0.7 * k))), 0, atol=1e-5)
        assert r.drift.shape == SHAPE


def test_poly_drift_refuses_too_few_voxels(cpu_backend):
    dphi = np.zeros(SHAPE, np.float32)
    w = np.ones(SHAPE, np.float32)
    w[1] = 0
    with pytest.raises(InvalidParameterError, match=r"slices \[1\]"):
        drift_poly(dphi, w, order=1)


def test_poly_drift_refuses_undetermined_fit(cpu_backend, rng):
    """Usable voxels all in one column: the slope along the rows is known, the one along the
    columns is not (a singular system is an error, never a silent garbage plane)."""
    dphi = rng.normal(0, 0.1, SHAPE).astype(np.float32)
    w = np.zeros(SHAPE, np.float32)
    w[:, :, 7] = 1.0
    drift_poly(dphi, w, order=0, min_voxels=5, stride=1)  # a constant is determined
    with pytest.raises(DataError, match=r"undetermined in slices \[0, 1, 2\]"):
        drift_poly(dphi, w, order=1, min_voxels=5, stride=1)


def test_roi_drift_is_complex_mean(cpu_backend, rng):
    c = np.array([3.1, -3.1, 0.2])
    dphi = _wrap(c[:, None, None] + rng.normal(0, 0.05, SHAPE)).astype(np.float32)
    roi = np.zeros(SHAPE[1:], bool)
    roi[5:15, 5:15] = True
    mask = np.ones(SHAPE, np.uint8)
    d = drift_roi(dphi, mask, roi)
    assert d.shape == (3,)
    assert np.abs(_wrap(d - c)).max() < 0.02  # a plain mean would fail across the wrap
    mask[2, 5:15, 5:15] = 0
    with pytest.raises(InvalidParameterError, match=r"slices \[2\]"):
        drift_roi(dphi, mask, roi)
    # a reference region of pure noise (uniform phase) has no drift to tell: refused
    noisy = dphi.copy()
    noisy[1, 5:15, 5:15] = rng.uniform(-np.pi, np.pi, (10, 10))
    with pytest.raises(InvalidParameterError, match=r"slices \[1\] \(phase coherence"):
        drift_roi(noisy, np.ones(SHAPE, np.uint8), roi)


def _series(rng, n_dyn, noise=0.0, drift=True):
    """Synthetic complex dynamics with known heating and drift; returns (images, dT truth, b0, te)."""
    b0, te = 2.895, 0.012
    scale = prf_scale(b0, te)
    mag = rng.uniform(80, 120, SHAPE)
    phi0 = rng.uniform(-np.pi, np.pi, SHAPE)
    yy, xx = np.meshgrid(np.linspace(-1, 1, SHAPE[1]), np.linspace(-1, 1, SHAPE[2]), indexing="ij")
    images, truth = [], []
    for k in range(n_dyn):
        heat = np.zeros(SHAPE)
        amp = 0.0 if k < 2 else 5.0 * (k - 1)  # up to 20 C: inside the +-pi PRF range at TE 12 ms
        heat[:, 25:35, 30:40] = amp
        dr = (0.05 * k + 0.03 * k * xx - 0.02 * k * yy)[None] if drift else 0.0
        z = mag * np.exp(1j * (phi0 + heat / scale + dr))
        z = z + noise * (rng.normal(size=SHAPE) + 1j * rng.normal(size=SHAPE))
        images.append(z.astype(np.complex64))
        truth.append(heat)
    return images, truth, b0, te


def test_stream_recovers_known_heating_with_poly_drift(cpu_backend, rng):
    images, truth, b0, te = _series(rng, 6)
    exclude = np.zeros(SHAPE[1:], bool)
    exclude[20:40, 25:45] = True
    th = Thermometry(Baseline.average(images[:2], noise=1.0), b0, te, ThermometrySettings(drift="poly", exclude=exclude), t0=0.0)
    for k, z in enumerate(images):
        r = th.process(z, 5.0 * (k + 1), noise=1.0)
        assert np.nanmax(np.abs(r.delta_t - truth[k])) < 2e-3
        np.testing.assert_allclose(r.temperature, 37.0 + r.delta_t)
    # without drift correction the same data is wrong by the drift
    th0 = Thermometry(Baseline.average(images[:2], noise=1.0), b0, te, ThermometrySettings(drift="none"))
    r0 = th0.process(images[-1], 1.0, noise=1.0)
    assert np.nanmax(np.abs(r0.delta_t - truth[-1])) > 1.0


def test_sigma_t_matches_monte_carlo(cpu_backend, rng):
    """The uncertainty map predicts the scatter of dT over noise realisations (within 10%)."""
    b0, te, noise = 2.895, 0.012, 4.0
    mag = np.full((1, 16, 16), 60.0)
    base = Baseline((mag * np.exp(0.3j)).astype(np.complex64), noise=1e-6)
    th = Thermometry(base, b0, te, ThermometrySettings(snr_min=0))
    samples, sig = [], None
    for k in range(300):
        z = mag * np.exp(0.3j) + noise * (rng.normal(size=mag.shape) + 1j * rng.normal(size=mag.shape))
        r = th.process(z.astype(np.complex64), float(k + 1), noise=noise)
        samples.append(r.delta_t)
        sig = r.sigma_t
    empirical = np.std(np.stack(samples), axis=0).mean()
    predicted = float(np.mean(sig))
    assert abs(empirical - predicted) < 0.1 * predicted, (empirical, predicted)


def test_low_snr_voxels_are_nan_not_numbers(cpu_backend, rng):
    images, _, b0, te = _series(rng, 3, drift=False)
    images[2][0, :4, :4] = 0.01
    th = Thermometry(Baseline(images[0], 1.0), b0, te, ThermometrySettings(snr_min=5))
    r = th.process(images[2], 1.0, noise=1.0)
    assert np.isnan(r.delta_t[0, :4, :4]).all() and not r.mask[0, :4, :4].any()
    assert np.isnan(th.dose.dose[0, :4, :4]).all()


def test_baseline_library_picks_matching_phase(cpu_backend, rng):
    mag = rng.uniform(80, 120, SHAPE)
    phases = [rng.uniform(-np.pi, np.pi, SHAPE) for _ in range(3)]
    lib = BaselineLibrary([Baseline((mag * np.exp(1j * p)).astype(np.complex64), 1.0) for p in phases])
    z = (mag * np.exp(1j * (phases[1] + 0.4))).astype(np.complex64)
    i, _ = lib.select(z)
    assert i == 1
    assert lib.scores(z)[1] > 0.99


def test_dose_accumulator_constant_temperature(cpu_backend):
    acc = DoseAccumulator((2,), t0=0.0)
    for k in range(11):
        acc.update(np.array([47.0, 40.0], np.float32), 6.0 * k)  # 60 s in 10 steps
    np.testing.assert_allclose(acc.dose, [16.0, 0.25**3], rtol=1e-6)
    np.testing.assert_array_equal(lesion_mask(acc.dose, acc.max_temperature()), [False, False])
    assert lesion_mask(np.array([240.0, 10.0]), np.array([40.0, 56.0])).all()
    with pytest.raises(InvalidParameterError):
        acc.update(np.array([47.0, 40.0], np.float32), 60.0)  # not after the previous map


def test_settings_validation():
    for bad in [dict(drift="spline"), dict(drift="roi"), dict(drift_order=3), dict(phase_sign=0), dict(snr_min=-1)]:
        with pytest.raises(InvalidParameterError):
            ThermometrySettings(**bad).validate()


def test_prf_phase_contract_zero_where_unmeasured(cpu_backend):
    z = np.array([1 + 1j, 0, np.nan], np.complex64)
    dphi, w, m = prf_phase(z, np.ones(3, np.complex64), noise=0.1)
    assert list(m) == [1, 0, 0] and dphi[1] == 0 and dphi[2] == 0 and w[1] == 0 and w[2] == 0


@pytest.mark.cuda
@pytest.mark.parametrize("drift", ["poly", "roi"])
def test_gpu_stream_matches_cpu(cuda_backend, rng, drift):
    """Thermometry.process on CuPy (fit sums, host solve, fused kernel) equals the CPU run."""
    images, _, b0, te = _series(rng, 4, noise=0.5)
    exclude = np.zeros(SHAPE[1:], bool)
    exclude[20:40, 25:45] = True
    settings = dict(drift=drift, exclude=exclude, drift_roi=~exclude)

    def run():
        th = Thermometry(Baseline(images[0], noise=0.5), b0, te, ThermometrySettings(**settings))
        out = [th.process(z, 5.0 * k, noise=0.5) for k, z in enumerate(images[1:], start=1)]
        return [fus.asnumpy(a) for a in (out[-1].delta_t, out[-1].sigma_t, out[-1].drift_coef, th.dose.dose)]

    g = run()
    with fus.use("cpu"):
        c = run()
    for a, b in zip(g, c):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_thermometry_refuses_bad_api_input(cpu_backend, rng):
    """Mistakes a caller makes are InvalidParameterErrors naming the parameter, at construction
    where possible: a region of the wrong shape, a non-numeric or absurd setting, a real image
    given as a dynamic or baseline, a noise outside float32, a non-numeric time."""
    images, _, b0, te = _series(rng, 2, drift=False)
    base = Baseline(images[0], noise=1.0)
    cases = [
        (dict(drift="poly", exclude=np.zeros((5, 5), bool)), "exclude"),
        (dict(drift="roi", drift_roi=np.zeros((2, 5, 5), bool)), "drift_roi"),
        (dict(body_temp="abc"), "body_temp"),
        (dict(body_temp=1e39), "body_temp"),
        (dict(snr_min=None), "snr_min"),
    ]
    for kw, name in cases:
        with pytest.raises(InvalidParameterError) as exc:
            Thermometry(base, b0, te, ThermometrySettings(**kw))
        assert exc.value.name == name
    with pytest.raises(InvalidParameterError) as exc:
        Thermometry(Baseline(np.abs(images[0]), noise=1.0), b0, te)
    assert exc.value.name == "baseline"
    th = Thermometry(base, b0, te)
    for args, name in [((np.abs(images[1]), 5.0, 1.0), "dynamic"), ((images[1], "a", 1.0), "time"), ((images[1], 5.0, 1e-300), "noise")]:
        with pytest.raises(InvalidParameterError) as exc:
            th.process(*args)
        assert exc.value.name == name


def test_drift_failure_names_the_dynamic(cpu_backend, rng):
    images, _, b0, te = _series(rng, 3, drift=False)
    th = Thermometry(Baseline(images[0], noise=1.0), b0, te, ThermometrySettings(drift="poly"))
    th.process(images[1], 5.0, noise=1.0)
    dead = images[2].copy()
    dead[1] = 0  # one slice with no signal: no drift estimate there
    with pytest.raises(InvalidParameterError, match=r"dynamic 2 \(t = 10 s\): slices \[1\]"):
        th.process(dead, 10.0, noise=1.0)
