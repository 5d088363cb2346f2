"""Simulated MR thermometry scanner, quality measures and its DICOM writer.

References are independent of the code under test: scipy's map_coordinates for the
interpolation, the PRF arithmetic written out for the drift, Thermometry for the round trip,
fus's DICOM reader and the replay pipeline for the written files.
"""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage

from fus.cli.main import main
from fus.errors import InvalidParameterError
from fus.mr.baseline import Baseline
from fus.mr.dicom import load_series
from fus.mr.dicom_write import write_series
from fus.mr.prf import GAMMA_BAR
from fus.mr.quality import magnitude_correlation, nan_fraction, repeated_frame
from fus.mr.scanner_sim import ImagePlan, ImageSlice, ScannerSettings, SimulatedScanner
from fus.mr.thermometry import Thermometry, ThermometrySettings
from fus.physics.grid import Grid
from fus.physics.phantom import load_phantom
from fus.physics.tissues import TISSUES

PHANTOM = Path(__file__).resolve().parents[1] / "sample_data" / "phantom_bone.toml"
HOT_CENTRE = np.array([0.0, 0.0, -0.010])  # in the muscle, 10 mm before the bone surface
N_BASE = 10


@pytest.fixture(scope="module")
def phantom():
    return load_phantom(PHANTOM)


def hot_spot(grid: Grid, amplitude: float = 10.0, width: float = 4e-3) -> np.ndarray:
    """37 C plus a Gaussian hot spot [C] on the grid."""
    x, y, z = np.meshgrid(*grid.axes(), indexing="ij")
    r2 = (x - HOT_CENTRE[0]) ** 2 + (y - HOT_CENTRE[1]) ** 2 + (z - HOT_CENTRE[2]) ** 2
    return 37.0 + amplitude * np.exp(-r2 / (2 * width**2))


def make_scanner(phantom, **kw) -> SimulatedScanner:
    plan = ImagePlan.standard(phantom.grid, phantom.target)
    return SimulatedScanner(phantom.grid, phantom.labels, plan, ScannerSettings(**kw))


def pure(scanner: SimulatedScanner, phantom, tissue: str) -> np.ndarray:
    """Image voxels whose every sample lies in ``tissue`` (interpolated indicator ~1)."""
    return scanner.resample(phantom.labels == TISSUES[tissue].label) > 0.999


# ------------------------------------------------------------------ settings and geometry
@pytest.mark.parametrize("field,value", [("b0", 123.2e6), ("te", 10.0), ("sigma_t", 0.0), ("phase_sign", 0), ("seed", -1),
                                         ("dynamic_period", -3.0), ("alpha_ppm", -1e-8), ("drift_rate", math.nan)])
def test_settings_validate_names_field(field, value):
    with pytest.raises(InvalidParameterError) as exc:
        ScannerSettings(**{field: value}).validate()
    assert exc.value.name == field


def test_plan_geometry(phantom):
    plan = ImagePlan.standard(phantom.grid, phantom.target)
    assert plan.shape == (3, 128, 128)
    assert [s.orientation for s in plan.slices] == ["coronal", "sagittal", "axial"]
    coords = plan.coordinates()
    aff = plan.affines()
    for s, (row, col) in enumerate([(5, 17), (90, 3), (127, 127)]):
        np.testing.assert_allclose(aff[s] @ [col, row, 0, 1], np.r_[coords[s, row, col], 1.0], atol=1e-12)
    # coronal: constant y = target y, columns along +x, rows along +z; sagittal: x constant
    np.testing.assert_allclose(coords[0, ..., 1], phantom.target[1])
    np.testing.assert_allclose(coords[1, ..., 0], phantom.target[0])
    dx = np.diff(coords[0, 0, :, 0])
    dz = np.diff(coords[0, :, 0, 2])
    np.testing.assert_allclose(dx, plan.slices[0].spacing[1])
    np.testing.assert_allclose(dz, plan.slices[0].spacing[0])
    # axial one thickness proximal of the target; all planes cover the grid's z extent
    np.testing.assert_allclose(coords[2, ..., 2], phantom.target[2] - 3e-3)
    assert coords[0, 0, 0, 2] <= phantom.grid.origin[2] and coords[0, -1, 0, 2] >= phantom.grid.origin[2] + phantom.grid.extent[2]
    with pytest.raises(InvalidParameterError):
        ImageSlice("oblique", 0.0)
    with pytest.raises(InvalidParameterError, match="wholly outside"):
        SimulatedScanner(phantom.grid, phantom.labels, ImagePlan((ImageSlice("axial", 0.5),), 16, 16))


def test_resample_matches_map_coordinates(rng):
    grid = Grid.centred((30, 26, 34), 1e-3)
    labels = np.full(grid.shape, TISSUES["muscle"].label, np.uint8)
    sl = ImageSlice("sagittal", 0.7e-3, (1.3e-3, -2.1e-3), spacing=(0.8e-3, 0.9e-3), thickness=2.5e-3, sub_planes=3)
    plan = ImagePlan((sl, ImageSlice("axial", -3.3e-3, (0.0, 0.0), spacing=1.1e-3)), 40, 36)
    scanner = SimulatedScanner(grid, labels, plan)
    vol = rng.normal(size=grid.shape)
    mask = vol > 0.3
    got = scanner.resample(vol)
    origin, spacing = np.asarray(grid.origin), np.asarray(grid.spacing)
    ref = np.zeros(plan.shape)
    ref_m = np.zeros(plan.shape)
    inside = np.ones(plan.shape, bool)
    outside = np.ones(plan.shape, bool)
    for s, slc in enumerate(plan.slices):
        axis = np.eye(3)[{"sagittal": 0, "axial": 2}[slc.orientation]]
        n = slc.sub_planes
        for j in range(n):
            depth = (j - (n - 1) / 2) * slc.thickness / n
            pts = plan.coordinates()[s] + depth * axis
            idx = ((pts - origin) / spacing).reshape(-1, 3).T
            for out, v in ((ref, vol), (ref_m, mask.astype(np.float64))):
                out[s] += scipy.ndimage.map_coordinates(v, idx, order=1, mode="constant", cval=0.0).reshape(plan.rows, plan.cols) / n
            ok = np.all((idx >= 0) & (idx <= np.asarray(grid.shape)[:, None] - 1), axis=0).reshape(plan.rows, plan.cols)
            inside[s] &= ok
            outside[s] &= ~ok
    assert inside.sum() > 500 and outside.sum() > 100
    np.testing.assert_allclose(got[inside], ref[inside], rtol=1e-10, atol=1e-10)
    assert np.all(got[outside] == 0)
    # no signal outside the grid; masks follow the >= 0.5 rule
    assert np.all(scanner.magnitude[outside] == 0)
    np.testing.assert_allclose(scanner.magnitude[inside], 1.0, rtol=1e-12)
    near = np.abs(ref_m - 0.5) < 1e-9  # ties at exactly 0.5 are rounding-sensitive
    np.testing.assert_array_equal(scanner.resample_mask(mask)[inside & ~near], (ref_m >= 0.5)[inside & ~near])
    assert scanner.resample_mask(mask)[inside].any()


# ------------------------------------------------------------------ PRF round trip
def test_prf_round_trip(phantom, rng):
    settings = {"drift_rate": 0.0, "drift_gradient": 0.0, "seed": int(rng.integers(2**31))}
    scanner = make_scanner(phantom, **settings)
    s = scanner.settings
    assert abs(scanner.scale - 1.0 / (2 * math.pi * GAMMA_BAR * -0.01e-6 * s.b0 * s.te)) < 1e-9
    assert abs(scanner.noise - s.sigma_t / abs(scanner.scale)) < 1e-12  # muscle magnitude 1
    base = Baseline.average(scanner.baseline(N_BASE), scanner.noise)
    thermo = Thermometry(base, s.b0, s.te, ThermometrySettings())
    temp = hot_spot(phantom.grid)
    truth = scanner.resample(temp)
    muscle = pure(scanner, phantom, "muscle")
    assert muscle.sum() > 5000 and truth[muscle].max() > 45.0
    errors, sigmas = [], []
    for k in range(4):
        r = thermo.process(scanner.acquire(temp, 30.0 + 3 * k), 30.0 + 3 * k, scanner.noise)
        err = (r.temperature - truth)[muscle]
        assert np.all(np.isfinite(err))
        z = np.abs(err) / r.sigma_t[muscle]
        assert np.mean(z > 4) < 1e-3 and z.max() < 5.5  # 4 sigma per voxel (P ~ 6e-5 each)
        errors.append(err)
        sigmas.append(r.sigma_t[muscle])
    err = np.concatenate(errors)
    expected = s.sigma_t * math.sqrt(1 + 1 / N_BASE)  # one image against an N-average baseline
    assert abs(err.std() / expected - 1) < 0.1
    assert abs(err.mean()) < 0.05
    assert abs(np.median(np.concatenate(sigmas)) / expected - 1) < 0.1  # the thermometry's own estimate


def test_magnitude_weighted_temperature(phantom):
    """A fat / muscle boundary voxel reports the muscle's temperature (fat is suppressed)."""
    scanner = make_scanner(phantom)
    fat = phantom.labels == TISSUES["fat"].label
    temp = np.where(fat, 60.0, 37.0)
    img = scanner.image_temperature(temp)
    frac = scanner.resample(fat)
    mixed = (frac > 0.02) & (frac < 0.98) & pure_or(scanner, phantom, ("fat", "muscle"))
    assert mixed.sum() > 100
    # independent: weights magnitude x fraction (fat 0.04, muscle 1) -> 37 + 23 * 0.04 f / (0.04 f + 1 - f)
    f = frac[mixed]
    expect = 37.0 + 23.0 * 0.04 * f / (0.04 * f + 1.0 - f)
    np.testing.assert_allclose(img[mixed], expect, atol=1e-9)
    assert np.all(img[mixed] < scanner.resample(temp)[mixed])  # below the plain (unweighted) mean


def pure_or(scanner, phantom, tissues) -> np.ndarray:
    m = np.isin(phantom.labels, [TISSUES[t].label for t in tissues])
    return scanner.resample(m) > 0.999


# ------------------------------------------------------------------ drift
def test_drift_poly_removes_it(phantom, rng):
    scanner = make_scanner(phantom, drift_rate=4e-3, drift_gradient=0.05, seed=int(rng.integers(2**31)))
    s = scanner.settings
    base_imgs = scanner.baseline(N_BASE)
    t_base = np.mean([k * s.dynamic_period for k in range(N_BASE)])
    base = Baseline.average(base_imgs, scanner.noise)
    temp = hot_spot(phantom.grid)
    hot = scanner.resample(temp) > 37.2
    exclude = scipy.ndimage.binary_dilation(hot, iterations=3)
    plain = Thermometry(base, s.b0, s.te, ThermometrySettings())
    poly = Thermometry(base, s.b0, s.te, ThermometrySettings(drift="poly", drift_order=1, exclude=exclude))
    truth = scanner.image_temperature(temp)
    muscle = pure(scanner, phantom, "muscle")
    coords = scanner.plan.coordinates() - phantom.grid.centre
    g = coords @ (np.ones(3) / math.sqrt(3))  # the documented drift direction
    mean_err = []
    for t in (60.0, 300.0):
        z = scanner.acquire(temp, t)
        e_plain = (plain.process(z, t, scanner.noise).temperature - truth)[muscle]
        e_poly = (poly.process(z, t, scanner.noise).temperature - truth)[muscle]
        # independent expectation of the uncorrected error: scale * drift phase since the baseline
        expect = (scanner.scale * (t - t_base) * (s.drift_rate + s.drift_gradient * g))[muscle]
        assert abs(np.mean(e_plain - expect)) < 0.05
        mean_err.append(abs(np.mean(e_plain)))
        assert abs(np.mean(e_poly)) < 0.1 and np.std(e_poly) < 1.15 * s.sigma_t * math.sqrt(1 + 1 / N_BASE)
    assert mean_err[1] > 3 * mean_err[0] > 1.0  # grows with time: several C at 5 min


# ------------------------------------------------------------------ masking, noise, faults
def test_fat_and_cortical_bone_are_masked(phantom):
    scanner = make_scanner(phantom, drift_rate=0.0, drift_gradient=0.0, seed=3)
    s = scanner.settings
    thermo = Thermometry(Baseline.average(scanner.baseline(4), scanner.noise), s.b0, s.te, ThermometrySettings(snr_min=5.0))
    r = thermo.process(scanner.acquire(37.0, 20.0), 20.0, scanner.noise)
    for tissue in ("fat", "cortical_bone"):
        m = pure(scanner, phantom, tissue)
        assert m.sum() > 200, tissue
        assert nan_fraction(r.temperature, m) == 1.0, tissue
    assert nan_fraction(r.temperature, pure(scanner, phantom, "muscle")) < 1e-3


def test_determinism_and_noise(phantom):
    temp = hot_spot(phantom.grid)
    a = make_scanner(phantom, seed=11)
    b = make_scanner(phantom, seed=11)
    c = make_scanner(phantom, seed=12)
    za = [a.acquire(temp, t) for t in (0.0, 3.0)]
    zb = [b.acquire(temp, t) for t in (0.0, 3.0)]
    zc = c.acquire(temp, 0.0)
    for x, y in zip(za, zb):
        assert x.dtype == np.complex64 and x.shape == a.shape
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(za[0], za[1]) and not np.array_equal(za[0], zc)
    clean = a.acquire(temp, 0.0, noise_scale=0.0)
    diff = (za[0] - clean).ravel()
    for part in (diff.real, diff.imag):
        assert abs(part.std() / a.noise - 1) < 0.02 and abs(part.mean()) < 0.02 * a.noise
    assert abs(a.acquire(temp, 0.0, noise_scale=3.0) - clean).std() > 2.5 * abs(diff).std()


def test_signal_loss_is_masked(phantom):
    scanner = make_scanner(phantom, seed=5)
    s = scanner.settings
    thermo = Thermometry(Baseline.average(scanner.baseline(4), scanner.noise), s.b0, s.te)
    loss = np.zeros(scanner.shape, bool)
    loss[0, 40:60, 50:70] = True
    z = scanner.acquire(37.0, 15.0, signal_loss=loss)
    assert np.abs(z[loss]).max() < 6 * scanner.noise  # only noise remains
    r = thermo.process(z, 15.0, scanner.noise)
    assert nan_fraction(r.temperature, loss) > 0.99
    with pytest.raises(InvalidParameterError):
        scanner.acquire(37.0, 15.0, signal_loss=loss[0])


def test_motion_and_quality_measures(phantom):
    scanner = make_scanner(phantom, seed=8)
    base = Baseline.average(scanner.baseline(N_BASE), scanner.noise).image
    still = scanner.acquire(37.0, 40.0)
    assert magnitude_correlation(still, base) > 0.98
    for shift in ((3e-3, 0.0), (0.0, -3e-3)):
        assert magnitude_correlation(scanner.acquire(37.0, 43.0, shift=shift), base) < 0.9
    # an independent Pearson correlation with a mask and NaNs excluded
    mask = scanner.magnitude > 0.5
    a, b = np.abs(still).astype(np.float64), np.abs(base).astype(np.float64)
    a_nan = a.copy()
    a_nan[0, :5] = np.nan
    use = mask & np.isfinite(a_nan)
    assert abs(magnitude_correlation(a_nan, base, mask) - np.corrcoef(a[use], b[use])[0, 1]) < 1e-12
    assert math.isnan(magnitude_correlation(a, b, np.zeros_like(mask)))
    # repeated frames
    assert repeated_frame(still.copy(), still)
    assert not repeated_frame(scanner.acquire(37.0, 46.0), still)
    assert not repeated_frame(still.astype(np.complex128), still) and not repeated_frame(still, None)
    n = np.full((2, 3), np.nan, np.float32)
    assert repeated_frame(n, n.copy())
    # NaN fraction
    v = np.zeros((4, 5))
    v[0, :3] = np.nan
    v[1, 0] = np.inf
    roi = np.zeros((4, 5), bool)
    roi[:2] = True
    assert nan_fraction(v, roi) == 4 / 10
    assert math.isnan(nan_fraction(v, np.zeros_like(roi)))


# ------------------------------------------------------------------ DICOM
def test_dicom_round_trip_and_replay(phantom, tmp_path):
    scanner = make_scanner(phantom, seed=21)
    s, plan = scanner.settings, scanner.plan
    n_base, period = 4, s.dynamic_period
    base_imgs = scanner.baseline(n_base)
    times = [n_base * period + k * period for k in range(3)]
    temps = [hot_spot(phantom.grid, amp) for amp in (4.0, 9.0, 14.0)]
    dyn = [scanner.acquire(T, t) for T, t in zip(temps, times)]
    stacks = write_series(tmp_path / "dicom", dyn, times, plan, s, baseline=base_imgs)
    assert len(stacks) == 3 and sorted(k for st in stacks for k in st.slices) == [0, 1, 2]
    assert len(list((tmp_path / "dicom").iterdir())) == sum(st.files for st in stacks) == 3 * 2 * (n_base + 3)

    # in-memory thermometry of the same images
    ref = Thermometry(Baseline.average(base_imgs, scanner.noise), s.b0, s.te)
    ref_t = [ref.process(z, t, scanner.noise).temperature for z, t in zip(base_imgs + dyn, [k * period for k in range(n_base)] + times)]
    # phase quantisation: pi / 4096 rad per image, so <= 2 pi / 4096 rad in a dynamic - baseline
    # difference (+10 % for the averaging of the baseline's phasors): ~0.022 C
    bound = 1.1 * abs(scanner.scale) * 2 * math.pi / 4096

    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    mm = np.diag([1e3, 1e3, 1e3, 1.0])
    for st in stacks:
        (k,) = st.slices
        phase = load_series(tmp_path / "dicom", st.phase_series)
        mag = load_series(tmp_path / "dicom", st.magnitude_series)
        np.testing.assert_allclose(phase.affine, lps_to_ras @ mm @ plan.affines()[k], atol=1e-4)
        np.testing.assert_allclose(mag.affine, phase.affine, atol=1e-6)
        assert phase.shape == (n_base + 3, 1, plan.rows, plan.cols)
        assert phase.vendor == "siemens" and abs(phase.b0 - s.b0) < 1e-6 and abs(phase.echo_time(1) - s.te) < 1e-9
        np.testing.assert_allclose(phase.times, np.arange(n_base + 3) * period, atol=1e-5)
        # decoded phase within half a step of the written one
        ph = phase.image("phase")[:, 0]
        written = np.angle(np.stack(base_imgs + dyn)[:, k])
        dphi = np.angle(np.exp(1j * (ph - written)))
        assert np.abs(dphi).max() <= math.pi / 4096 + 1e-6
        # the replay pipeline on the written stack, via the CLI
        out = tmp_path / f"replay{k}"
        rc = main(["replay", str(tmp_path / "dicom"), "-o", str(out), "--series", str(st.phase_series),
                   "--magnitude-series", str(st.magnitude_series), "--baseline", str(st.n_baseline),
                   "--noise", repr(scanner.noise * st.gain), "--no-progress"])
        assert rc == 0
        got = np.asarray(nib.load(out / "temperature.nii.gz").dataobj).transpose(3, 2, 1, 0)[:, 0]  # (dyn, row, col)
        want = np.stack([r[k] for r in ref_t])
        both = np.isfinite(got) & np.isfinite(want)
        assert np.mean(np.isfinite(got) == np.isfinite(want)) > 0.999 and both[-1].sum() > 2000
        assert np.abs(got - want)[both].max() <= bound
        # the heated dynamics show the heating
        hot = scanner.resample(temps[-1])[k] > 45.0
        if hot.any():
            assert np.nanmean(got[-1][hot]) > 44.0


@pytest.mark.cuda
def test_quality_measures_on_the_device(cuda_backend, rng):
    """The interlocks run the measures on device arrays: same values as on the host."""
    xp = cuda_backend.xp
    a = (rng.normal(size=(2, 16, 16)) + 1j * rng.normal(size=(2, 16, 16))).astype(np.complex64)
    b = (a + 0.2 * rng.normal(size=a.shape)).astype(np.complex64)
    m = np.abs(a) > 0.5
    t = np.where(m, np.nan, 1.0).astype(np.float32)
    assert abs(magnitude_correlation(xp.asarray(a), xp.asarray(b), xp.asarray(m)) - magnitude_correlation(a, b, m)) < 1e-12
    assert repeated_frame(xp.asarray(a), xp.asarray(a.copy())) and not repeated_frame(xp.asarray(a), xp.asarray(b))
    assert nan_fraction(xp.asarray(t), xp.asarray(np.ones_like(m))) == nan_fraction(t, np.ones_like(m)) == m.mean()
