"""Pennes bioheat: kernel vs a float64 numpy step, the solver vs independent analytic references
(Fourier-space Green's function, 1-D perfused steady state, composite slab, energy balance),
stability on the shipped phantom, the phantom builder, the CLI, and bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

import fus
from fus.errors import DataError, InvalidParameterError
from fus.kernels import bioheat_step
from fus.physics.bioheat import Interval, Schedule, simulate, simulate_phantom
from fus.physics.bioheat_grid import bioheat_coefficients, stable_time_step
from fus.physics.phantom import build_phantom, load_phantom, property_volumes, thermal_volumes
from fus.physics.tissues import TISSUES

REPO = Path(__file__).resolve().parents[1]
BONE_PHANTOM = REPO / "sample_data" / "phantom_bone.toml"

pytestmark = pytest.mark.usefixtures("cpu_backend")


# ------------------------------------------------------------------------------------------------
# float64 references written here
# ------------------------------------------------------------------------------------------------
def numpy_step(T, rc, k, w, q, h, dt, ta, bc):
    """One forward-Euler step of the finite-volume Pennes scheme in float64 (harmonic-mean faces;
    fixed-temperature faces at half a voxel with conductance 2 k / h^2)."""
    T = np.asarray(T, dtype=np.float64)
    flux = np.zeros_like(T)
    for ax in range(3):
        if T.shape[ax] < 2:
            continue
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        kf = 2 * k[lo] * k[hi] / (k[lo] + k[hi])
        f = kf / h[ax] ** 2 * (T[hi] - T[lo])
        flux[lo] += f
        flux[hi] -= f
    for idx, tb in enumerate(bc):
        if tb is None:
            continue
        ax, high = divmod(idx, 2)
        sl = [slice(None)] * 3
        sl[ax] = slice(-1, None) if high else slice(0, 1)
        sl = tuple(sl)
        flux[sl] += 2 * k[sl] / h[ax] ** 2 * (tb - T[sl])
    return T + dt / rc * (flux - w * (T - ta) + q)


def green_reference(q, rc, k, w, h, t_on, times):
    """Pennes in Fourier space (Gao, Langer & Corry 1995; k-Wave bioheatExact), float64.

    ``rho c dT/dt = k lap T - w T + Q`` for a source on during [0, t_on], continuous symbol
    ``lambda = (k |kappa|^2 + w) / rho c``. Zero-flux walls = the periodic problem on the grid
    mirrored about its faces, so the transform runs on the 2n-periodic even extension.
    """
    n = q.shape
    big = q
    for ax in range(3):
        big = np.concatenate([big, np.flip(big, axis=ax)], axis=ax)
    qh = np.fft.fftn(big)
    ks = [2 * np.pi * np.fft.fftfreq(2 * m, d=h) for m in n]
    k2 = ks[0][:, None, None] ** 2 + ks[1][None, :, None] ** 2 + ks[2][None, None, :] ** 2
    lam = (k * k2 + w) / rc
    out = []
    for t in times:
        if t <= t_on:
            g = -np.expm1(-lam * t) / (lam * rc)
        else:
            g = -np.expm1(-lam * t_on) * np.exp(-lam * (t - t_on)) / (lam * rc)
        out.append(np.fft.ifftn(qh * g).real[: n[0], : n[1], : n[2]])
    return out


def random_medium(rng, shape):
    rc = rng.uniform(1.5e6, 4.2e6, shape)
    k = rng.uniform(0.15, 0.65, shape)
    w = rng.uniform(0.0, 12000.0, shape)
    q = rng.uniform(0.0, 2e6, shape)
    return rc, k, w, q


# ------------------------------------------------------------------------------------------------
# kernel
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 9, 37), (12, 20, 48), (1, 6, 33), (5, 1, 1), (3, 4, 1), (16, 16, 16)])
def test_kernel_matches_float64_step(rng, shape):
    rc, k, w, q = random_medium(rng, shape)
    h = tuple(rng.uniform(0.3e-3, 1.0e-3, 3))
    faces = [None, None, None, None, None, None]
    for i in range(6):
        if rng.random() < 0.5:
            faces[i] = float(rng.uniform(15, 45))
    dt_max = stable_time_step(rc, k, w, h, boundary=faces)
    dt = float(rng.uniform(0.3, 1.0)) * dt_max
    c = bioheat_coefficients(rc, k, w, h, dt, boundary=faces, source=q, arterial_temperature=37.0)
    t0 = rng.uniform(25, 50, shape).astype(np.float32)
    errs = []
    for steps in (1, 2, 5, 33):
        ref = t0.astype(np.float64)
        for _ in range(steps):
            ref = numpy_step(ref, rc, k, w, q, h, dt, 37.0, faces)
        got = bioheat_step(t0, c, steps=steps)
        assert got.dtype == np.float32 and got.shape == shape
        errs.append(float(np.abs(got - ref).max()))
    # float32 state: ~1 ulp of 50 C (3.8e-6) per step at worst, far below any physical scale
    assert max(errs) < 2e-5 * (1 + 0.1 * 33), errs


def test_kernel_out_and_work_buffers(rng):
    shape = (6, 7, 40)
    rc, k, w, q = random_medium(rng, shape)
    c = bioheat_coefficients(rc, k, w, 0.5e-3, 0.5 * stable_time_step(rc, k, w, 0.5e-3), source=q)
    t0 = rng.uniform(30, 40, shape).astype(np.float32)
    ref = bioheat_step(t0, c, steps=3)
    a = fus.kernels.bioheat.bioheat_buffer(shape)
    b = fus.kernels.bioheat.bioheat_buffer(shape)
    a[...] = t0
    out = bioheat_step(a, c, steps=3, out=b, work=a)
    assert out is b
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(bioheat_step(t0, c, steps=0), t0)
    with pytest.raises(InvalidParameterError, match="work"):
        bioheat_step(t0, c, out=b, work=b)


def test_thread_count_does_not_change_the_result(rng, cpu_backend):
    """The CPU blocks of several steps split rows between threads with overlapping halos: any
    team size must give bit-identical temperatures (the per-voxel arithmetic is the same)."""
    shape = (10, 37, 40)
    rc, k, w, q = random_medium(rng, shape)
    c = bioheat_coefficients(rc, k, w, 0.5e-3, 0.9 * stable_time_step(rc, k, w, 0.5e-3), source=q)
    t0 = rng.uniform(30, 45, shape).astype(np.float32)
    before = cpu_backend.describe()["threads"]
    try:
        results = []
        for n in (1, 2, 3, 5):
            cpu_backend.set_threads(n)
            results.append(bioheat_step(t0, c, steps=17))
    finally:
        cpu_backend.set_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_nan_propagates_to_neighbours_only():
    shape = (5, 6, 20)
    c = bioheat_coefficients(np.full(shape, 3.7e6), 0.5, 1000.0, 1e-3, 1.0)
    t = np.full(shape, 37.0, dtype=np.float32)
    t[2, 3, 19] = np.nan  # last voxel of a row: the next row's first voxel is no neighbour
    out = bioheat_step(t, c)
    nan = np.isnan(out)
    expected = np.zeros(shape, bool)
    for d in [(0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, -1)]:
        expected[2 + d[0], 3 + d[1], 19 + d[2]] = True
    np.testing.assert_array_equal(nan, expected)
    assert not np.isnan(out[2, 4, 0])


def test_dt_above_the_limit_is_refused(rng):
    shape = (4, 4, 4)
    rc, k, w, _ = random_medium(rng, shape)
    lim = stable_time_step(rc, k, w, 1e-3)
    expected = 1.0 / np.max((w + _gsum(k, 1e-3)) / rc)
    assert lim == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InvalidParameterError, match="stable"):
        bioheat_coefficients(rc, k, w, 1e-3, 1.01 * lim)


def _gsum(k, h):
    g = np.zeros_like(k)
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        kf = 2 * k[tuple(lo)] * k[tuple(hi)] / (k[tuple(lo)] + k[tuple(hi)]) / h**2
        g[tuple(lo)] += kf
        g[tuple(hi)] += kf
    return g


# ------------------------------------------------------------------------------------------------
# solver vs analytic references
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def green_case():
    n, h, sig = 64, 0.5e-3, 8
    ax = (np.arange(n) - n / 2 + 0.5) * h
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    q = np.exp(-(x**2 + y**2 + z**2) / (2 * (sig * h) ** 2))
    rc, k, w = 3.7e6, 0.5, 2500.0  # muscle-like, perfused
    t_on, times = 10.0, [5.0, 10.0, 15.0, 20.0]
    ref = green_reference(q, rc, k, w, h, t_on, times)
    scale = 1.0 / ref[1].max()  # ~1 C rise at the end of the sonication
    return dict(q=q * scale, rc=rc, k=k, w=w, h=h, t_on=t_on, times=times, ref=[r * scale for r in ref])


@pytest.mark.parametrize("safety, tol", [(None, 2e-3), (0.3, 2e-3), (0.9, 4e-3)])
def test_green_function_in_fourier_space(green_case, safety, tol):
    """Heating 10 s then cooling 10 s; max error over the grid at 5, 10, 15, 20 s.

    The default step (0.5 dt_max) meets the issue's 2e-3 C on a 1 C rise; forward Euler's O(dt)
    error grows to ~0.3 % of the rise at 0.9 dt_max for this 4 mm Gaussian (3.0e-3 C measured)."""
    g = green_case
    shape = g["q"].shape
    kw = {} if safety is None else {"safety": safety}
    r = simulate(
        np.full(shape, g["rc"]), g["k"], g["w"], g["h"], g["q"],
        Schedule([(g["t_on"], 1.0), (10.0, 0.0)]), output_interval=5.0, dose_interval=5.0, **kw,
    )
    assert list(r.times) == [0.0, 5.0, 10.0, 15.0, 20.0]
    errs = [float(np.abs(r.temperature[i + 1] - 37.0 - g["ref"][i]).max()) for i in range(4)]
    print(f"safety {safety}: max |T - T_green| at 5/10/15/20 s: {['%.2e' % e for e in errs]} C")
    assert 0.9 < float(r.temperature[2].max() - 37.0) < 1.1
    assert max(errs) <= tol


def test_steady_state_with_perfusion_1d():
    """T - Ta = (Tb - Ta) cosh(m (L - x)) / cosh(m L), m = sqrt(w_b c_b / k): fixed Tb at x = 0,
    zero flux at x = L."""
    n, h = 200, 0.25e-3
    k, rc, w, ta, tb = 0.5, 3.7e6, 20000.0, 37.0, 20.0
    shape = (n, 1, 1)
    dt = 0.9 * stable_time_step(np.full(shape, rc), k, w, h, boundary={"0-": tb})
    c = bioheat_coefficients(np.full(shape, rc), k, w, h, dt, boundary={"0-": tb}, arterial_temperature=ta)
    steps = int(12 * rc / w / dt)  # 12 perfusion time constants: converged to ~1e-5
    t = bioheat_step(np.full(shape, ta, np.float32), c, steps=steps)
    x = (np.arange(n) + 0.5) * h
    m, L = math.sqrt(w / k), n * h
    exact = ta + (tb - ta) * np.cosh(m * (L - x)) / np.cosh(m * L)
    err = np.abs(t[:, 0, 0] - exact).max() / abs(tb - ta)
    print(f"1-D perfused steady state: 1/m = {1e3 / m:.2f} mm, h = {h * 1e3} mm, max error {err:.2e} of Tb - Ta")
    assert err < 2e-3


def test_two_tissue_interface_flux_continuity_and_composite_slab():
    """Fat | muscle slab along the contiguous axis between fixed 20 C and 40 C faces: piecewise
    linear steady state, one flux q = (T_L - T_R) / (L1 / k1 + L2 / k2) through every face."""
    n1, n2, h = 24, 40, 0.5e-3
    fat, mus = TISSUES["fat"], TISSUES["muscle"]
    shape = (1, 1, n1 + n2)
    k = np.r_[np.full(n1, fat.conductivity), np.full(n2, mus.conductivity)].reshape(shape)
    rc = np.r_[np.full(n1, fat.heat_capacity), np.full(n2, mus.heat_capacity)].reshape(shape)
    tl, tr = 20.0, 40.0
    bc = {"2-": tl, "2+": tr}
    dt = 0.9 * stable_time_step(rc, k, 0.0, h, boundary=bc)
    c = bioheat_coefficients(rc, k, 0.0, h, dt, boundary=bc)
    diff_time = ((n1 + n2) * h) ** 2 / min(fat.diffusivity, mus.diffusivity)
    t = bioheat_step(np.full(shape, 30.0, np.float32), c, steps=int(2.0 * diff_time / dt)).astype(np.float64)[0, 0]
    l1, l2 = n1 * h, n2 * h
    q = (tl - tr) / (l1 / fat.conductivity + l2 / mus.conductivity)  # W/m^2, along +x
    x = (np.arange(n1 + n2) + 0.5) * h
    t_int = tl - q * l1 / fat.conductivity
    exact = np.where(x < l1, tl - q * x / fat.conductivity, t_int - q * (x - l1) / mus.conductivity)
    kk = k[0, 0]
    kf = 2 * kk[:-1] * kk[1:] / (kk[:-1] + kk[1:])
    flux = -kf * np.diff(t) / h
    flux_err = np.abs(flux - q).max() / abs(q)
    t_err = np.abs(t - exact).max()
    print(f"composite slab: interface {t_int:.4f} C, max |T - exact| {t_err:.2e} C, flux spread {flux_err:.2e}")
    assert flux_err < 2e-3
    assert t_err < 5e-3


def test_energy_conservation_without_perfusion(rng):
    """Zero-flux walls, no perfusion: sum rho c (T_end - T_0) V = integral of Q dt V (0.5 %)."""
    shape = (24, 20, 32)
    rc, k, _, _ = random_medium(rng, shape)
    h = 0.5e-3
    q = np.zeros(shape)
    q[8:16, 6:14, 10:22] = rng.uniform(1e5, 1e6, (8, 8, 12))
    sched = Schedule([(3.0, 10.0), (2.0, 0.0), (2.5, 4.0, 0.5)])
    r = simulate(rc, k, 0.0, h, q, sched, reference_power=10.0, initial_temperature=37.0, output_interval=2.5, keep_frames=False)
    energy_in = float(q.sum()) * h**3 * (3.0 * 1.0 + 2.5 * 0.4 * 0.5)
    stored = float((rc * (r.final_temperature.astype(np.float64) - 37.0)).sum()) * h**3
    rel = abs(stored - energy_in) / energy_in
    print(f"energy: in {energy_in:.6g} J, stored {stored:.6g} J, relative error {rel:.2e}")
    assert rel < 5e-3


# ------------------------------------------------------------------------------------------------
# schedule, dose and the shipped phantom
# ------------------------------------------------------------------------------------------------
def test_schedule_sub_steps_and_dose():
    shape = (4, 4, 4)
    q = np.full(shape, 1e5)
    sched = Schedule.sonication(power=2.0, duration=7.3, cooling=2.2, duty_cycle=0.5)
    assert sched.total_duration == pytest.approx(9.5)
    assert sched.mean_power_at(1.0) == pytest.approx(1.0) and sched.mean_power_at(8.0) == 0.0
    r = simulate(np.full(shape, 3.6e6), 0.5, 0.0, 1e-3, q, sched, reference_power=1.0, output_interval=2.0)
    np.testing.assert_allclose(r.times, [0.0, 2.0, 4.0, 6.0, 8.0, 9.5])
    assert all(dt <= r.info["dt_max_s"] * 0.5 + 1e-12 for dt in r.info["time_steps_s"])
    # uniform heating: T rises by Q P/P_ref duty t / rho c exactly, then stays
    rise = 1e5 * 2.0 * 0.5 * 7.3 / 3.6e6
    np.testing.assert_allclose(r.final_temperature, 37.0 + rise, atol=2e-5)
    # dose: the same kernel on the exact piecewise-linear history, computed here in float64
    def cem(t0, t1, dt):
        # constant R within: both ends below 43 C here
        assert max(t0, t1) < 43
        lnr = math.log(0.25)
        x = -(t1 - t0) * lnr
        return dt / 60 * 0.25 ** (43 - t0) * (math.expm1(x) / x if x else 1.0)
    expected = cem(37.0, 37.0 + rise, 7.3)
    np.testing.assert_allclose(r.final_dose, expected + cem(37 + rise, 37 + rise, 2.2), rtol=1e-5)


def test_bad_schedule_and_solver_inputs():
    with pytest.raises(InvalidParameterError, match=r"schedule\[1\]\.duration"):
        Schedule([(5.0, 10.0), (-2.0, 0.0)])
    with pytest.raises(InvalidParameterError, match=r"schedule\[0\]\.duty_cycle"):
        Schedule([Interval(5.0, 10.0, 1.5)])
    with pytest.raises(InvalidParameterError, match=r"schedule\[0\]\.power"):
        Schedule([(5.0, -1.0)])
    with pytest.raises(InvalidParameterError, match="cooling"):
        Schedule.sonication(10.0, 5.0, cooling=-1.0)
    with pytest.raises(InvalidParameterError, match="schedule"):
        Schedule([])
    shape = (3, 3, 3)
    good = dict(rho_c=np.full(shape, 3.6e6), conductivity=0.5, perfusion=0.0, spacing=1e-3)
    s = Schedule.sonication(1.0, 1.0)
    with pytest.raises(InvalidParameterError, match="safety"):
        simulate(**good, source=None, schedule=s, safety=1.5)
    with pytest.raises(InvalidParameterError, match=r"rois\[cord\]"):
        simulate(**good, source=None, schedule=s, rois={"cord": np.zeros((2, 2, 2), bool)})
    with pytest.raises(InvalidParameterError, match=r"rois\[cord\]"):
        simulate(**good, source=None, schedule=s, rois={"cord": np.zeros(shape, bool)})
    with pytest.raises(InvalidParameterError, match="source"):
        simulate(**good, source=np.full((3, 3, 2), 1.0), schedule=s)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(conductivity=-0.1), "conductivity"),
        (dict(rho_c=0.0), "rho_c"),
        (dict(perfusion=-1.0), "perfusion"),
        (dict(conductivity=np.nan), "conductivity"),
        (dict(spacing=0.0), "spacing"),
        (dict(spacing=(1e-3, 1e-3)), "spacing"),
        (dict(boundary={"3+": 20.0}), "boundary"),
        (dict(boundary={"0-": "hot"}), r"boundary\[0-\]"),
        (dict(dt=-1.0), "dt"),
    ],
)
def test_bad_medium_errors(kwargs, match):
    shape = (4, 5, 6)
    args = dict(rho_c=np.full(shape, 3.6e6), conductivity=np.full(shape, 0.5), perfusion=0.0, spacing=1e-3, dt=0.1)
    for key, v in kwargs.items():
        if key in ("conductivity", "rho_c", "perfusion"):
            arr = np.full(shape, 3.6e6 if key == "rho_c" else 0.5)
            arr.flat[7] = v  # voxel (0, 1, 1)
            v = arr
        args[key] = v
    with pytest.raises(InvalidParameterError, match=match) as exc:
        bioheat_coefficients(**args)
    if match in ("conductivity", "rho_c", "perfusion") and np.isfinite(kwargs[match]):
        assert "(0, 1, 1)" in str(exc.value)  # names the voxel of the bad value


def test_bone_phantom_layers_rois_and_properties():
    ph = load_phantom(BONE_PHANTOM)
    assert "bone" in BONE_PHANTOM.name
    h = ph.spacing[2]
    axis = ph.labels[64, 64, :]
    counts = {t: int((axis == TISSUES[t].label).sum()) for t in ("skin", "fat", "muscle")}
    assert counts == {"skin": round(2e-3 / h), "fat": round(10e-3 / h), "muscle": round(30e-3 / h)}
    # off the lesion, the cortex is 5 mm thick and the marrow follows it
    edge = ph.labels[5, 5, :]
    assert int((edge == TISSUES["cortical_bone"].label).sum()) == round(5e-3 / h)
    assert (edge[-1] == TISSUES["marrow_red"].label) and (axis[0] == TISSUES["water"].label)
    assert (ph.labels == TISSUES["lesion"].label).any() and (ph.labels == TISSUES["spinal_cord"].label).any()
    assert set(ph.rois) >= {"target", "skin", "cord"}
    np.testing.assert_allclose(ph.target, [0.0, 0.0, 0.0], atol=1e-12)  # bone surface on the beam axis
    z = ph.grid.axes()[2]
    iz = np.nonzero(ph.rois["target"].any(axis=(0, 1)))[0]
    assert abs(z[iz].mean()) < h  # the target ROI straddles the muscle / bone interface
    assert (ph.labels[ph.rois["skin"]] == TISSUES["skin"].label).all()
    assert (ph.labels[ph.rois["cord"]] == TISSUES["spinal_cord"].label).all()
    props = ph.properties(1.2e6)
    bone = ph.labels == TISSUES["cortical_bone"].label
    assert np.all(props["sound_speed"][bone] == TISSUES["cortical_bone"].sound_speed)
    assert np.all(props["absorption"][bone] > props["absorption"][ph.labels == TISSUES["muscle"].label].max())
    med = ph.layered_medium()
    assert med.n_layers == 6


def test_stability_on_the_shipped_phantom():
    """The automatic step on the bone phantom: without a source the monotone scheme keeps every
    voxel within [bath, body] temperature; with a strong focal source nothing diverges and the
    temperatures stay below the adiabatic bound."""
    ph = load_phantom(BONE_PHANTOM)
    th = ph.thermal()
    r0 = simulate_phantom(ph, None, Schedule([(4.0, 0.0)]), output_interval=4.0, keep_frames=False, dose_interval=4.0)
    assert np.isfinite(r0.final_temperature).all()
    assert r0.final_temperature.min() >= ph.bath_temperature - 1e-4
    assert r0.final_temperature.max() <= ph.body_temperature + 1e-4
    x, y, z = np.meshgrid(*ph.grid.axes(), indexing="ij")
    q = 2e7 * np.exp(-(x**2 + y**2) / (2 * 1e-3**2) - z**2 / (2 * 3e-3**2))
    sched = Schedule.sonication(1.0, 3.0, 1.0)
    r = simulate_phantom(ph, q, sched, output_interval=2.0, keep_frames=False, dose_interval=1.0)
    assert np.isfinite(r.final_temperature).all() and np.isfinite(r.final_dose).all()
    bound = ph.body_temperature + float((q / th["rho_c"]).max()) * 3.0
    assert r.max_temperature.max() <= bound
    assert r.roi_curves["target"]["max_temperature"].max() > 45.0
    assert r.final_temperature.min() >= ph.bath_temperature - 1e-4
    assert r.info["time_steps_s"][0] <= 0.5 * r.info["dt_max_s"] + 1e-12


def _spec(**over):
    spec = {
        "name": "t",
        "grid": {"shape": [12, 12, 40], "spacing_mm": 1.0, "centre_mm": [0, 0, 0]},
        "body": {"skin_z_mm": -15.0},
        "layers": [
            {"tissue": "skin", "thickness_mm": 2},
            {"tissue": "fat", "thickness_mm": 3},
            {"tissue": "muscle", "thickness_mm": 8},
            {"tissue": "bone", "thickness_mm": 4},
            {"tissue": "marrow"},
        ],
        "cord": {"centre_mm": [0, 0, 12], "radius_mm": 2, "axis": "y"},
    }
    for key, v in over.items():
        spec[key] = v
    return spec


def test_phantom_builder_errors(tmp_path):
    ph = build_phantom(_spec())
    np.testing.assert_allclose(ph.target, [0, 0, -2e-3])  # bone surface: -15 + 2 + 3 + 8 mm
    with pytest.raises(InvalidParameterError, match=r"layers\[1\]\.tissue.*liverr"):
        build_phantom(_spec(layers=[{"tissue": "skin", "thickness_mm": 2}, {"tissue": "liverr"}]))
    with pytest.raises(InvalidParameterError, match=r"layers\[0\]\.thickness_mm"):
        build_phantom(_spec(layers=[{"tissue": "skin", "thickness_mm": -2}, {"tissue": "fat"}]))
    with pytest.raises(InvalidParameterError, match="rois.target"):
        build_phantom(_spec(rois={"target": {"centre_mm": [0, 0, 30], "radius_mm": 2}}))
    with pytest.raises(InvalidParameterError, match="cord"):
        build_phantom(_spec(cord={"centre_mm": [0, 0, 19], "radius_mm": 3, "axis": "y"}))
    with pytest.raises(InvalidParameterError, match="rois.hotspot"):
        build_phantom(_spec(rois={"hotspot": {"centre_mm": [9, 0, 0], "radius_mm": 1}}))
    with pytest.raises(InvalidParameterError, match="skin_z_mm"):
        build_phantom(_spec(body={"skin_z_mm": -50}))
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\nshape = 3")
    with pytest.raises(DataError, match="bad.toml"):
        load_phantom(bad)
    with pytest.raises(DataError, match="missing.toml"):
        load_phantom(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[grid]\nshape = [4, 4, 4]\nspacing_mm = 1\n[body]\nskin_z_mm = 0\n[[layers]]\ntissue = "unobtainium"\n')
    with pytest.raises(DataError, match=r"wrong.toml.*layers\[0\]\.tissue"):
        load_phantom(wrong)


def test_unknown_labels_are_named():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[1, 1, 1] = 99
    with pytest.raises(InvalidParameterError, match="99"):
        thermal_volumes(labels)
    with pytest.raises(InvalidParameterError, match="labels"):
        property_volumes(labels.astype(np.float32))
    vols = thermal_volumes(np.array([[[0, 3]]], np.uint8))
    assert vols["rho_c"][0, 0, 1] == TISSUES["muscle"].heat_capacity
    assert vols["perfusion"][0, 0, 0] == 0.0


def test_cli_heat_writes_series_csv_and_sidecar(tmp_path, monkeypatch):
    """`fus heat` end to end on a small phantom, with the field step replaced by a Gaussian source
    (the field code has its own tests; this checks the pipeline and the files)."""
    import nibabel as nib

    from fus.cli.main import main
    from fus.pipelines import heat as heat_pipeline

    spec_file = tmp_path / "small_bone.toml"
    spec_file.write_text(
        '[grid]\nshape = [10, 10, 36]\nspacing_mm = 1.0\ncentre_mm = [0, 0, 0]\n'
        '[bath]\ntemperature_c = 20\n[body]\nskin_z_mm = -15\n'
        '[[layers]]\ntissue = "skin"\nthickness_mm = 2\n[[layers]]\ntissue = "fat"\nthickness_mm = 3\n'
        '[[layers]]\ntissue = "muscle"\nthickness_mm = 8\n[[layers]]\ntissue = "cortical_bone"\nthickness_mm = 4\n'
        '[[layers]]\ntissue = "marrow_red"\n[cord]\ncentre_mm = [0, 0, 12]\nradius_mm = 2\naxis = "y"\n'
    )
    seen = {}

    def fake_source(phantom, transducer, focus, power, progress=True, field_spacing=None, refine_focus=False):
        seen["focus"], seen["power"] = focus, power
        x, y, z = np.meshgrid(*phantom.grid.axes(), indexing="ij")
        f = np.asarray(focus)
        return power * 5e5 * np.exp(-((x - f[0]) ** 2 + (y - f[1]) ** 2 + (z - f[2]) ** 2) / (2 * 2e-3**2)), {"fake": True}

    monkeypatch.setattr(heat_pipeline, "phantom_heat_source", fake_source)
    out = tmp_path / "run"
    rc = main([
        "heat", "--phantom", str(spec_file), "--transducer", "cap256", "--power", "20", "--duration", "6",
        "--cooling", "4", "--output-interval", "2", "--no-progress", "-o", str(out),
    ])
    assert rc == 0
    np.testing.assert_allclose(seen["focus"], [0, 0, -2e-3])  # default focus: the phantom's target
    assert seen["power"] == 20.0
    t_img = nib.load(str(out / "temperature.nii"))
    assert t_img.shape == (10, 10, 36, 6)
    assert t_img.header.get_zooms()[3] == pytest.approx(2.0)
    d_img = nib.load(str(out / "dose.nii"))
    assert d_img.shape == (10, 10, 36, 6)
    with open(out / "rois.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["time_s"]) for r in rows] == [0, 2, 4, 6, 8, 10]
    assert float(rows[3]["target_max_temperature_C"]) > float(rows[0]["target_max_temperature_C"]) + 1
    assert {"skin_max_temperature_C", "cord_max_dose_CEM43_min"} <= set(rows[0])
    side = json.loads((out / "heat.json").read_text())
    assert side["units"]["temperature"] == "C" and side["schedule"][0]["power_w"] == 20.0
    assert side["bioheat"]["n_steps"] > 0 and side["phantom"]["rois_voxels"]["target"] > 0
    # bad input at the edge: negative cooling
    assert main(["heat", "--phantom", str(spec_file), "--transducer", "cap256", "--power", "20",
                 "--duration", "6", "--cooling", "-4", "-o", str(tmp_path / "x")]) == 1



def test_heat_pipeline_on_a_phantom_object(tmp_path, monkeypatch):
    """`fus heat`'s pipeline called from Python with a built phantom (no file): results first,
    files on request, the same files the CLI writes."""
    from fus.pipelines import heat as heat_pipeline

    ph = build_phantom(_spec())

    def fake_source(phantom, transducer, focus, power, progress=True, field_spacing=None, refine_focus=False):
        x, y, z = np.meshgrid(*phantom.grid.axes(), indexing="ij")
        f = np.asarray(focus)
        return power * 5e5 * np.exp(-((x - f[0]) ** 2 + (y - f[1]) ** 2 + (z - f[2]) ** 2) / (2 * 2e-3**2)), {"fake": True}

    monkeypatch.setattr(heat_pipeline, "phantom_heat_source", fake_source)
    from fus.physics.transducer import cap256

    run = heat_pipeline.compute_heat(ph, cap256(), power=10.0, duration=2.0, output_interval=1.0, progress=False)
    assert run.sidecar["phantom"]["file"] == "built" and "files" not in run.sidecar
    assert run.dose.shape == (3, 12, 12, 40) and len(run.table[1]) == 3
    assert run.sidecar["roi_peaks"]["target"]["max_temperature_C"] > ph.body_temperature
    files = heat_pipeline.write_heat(run, tmp_path / "out", gzip=True)
    assert files["temperature"] == "temperature.nii.gz"
    assert {p.name for p in (tmp_path / "out").iterdir()} == set(files.values())
    with pytest.raises(InvalidParameterError, match="duration"):
        heat_pipeline.compute_heat(ph, cap256(), power=10.0, duration=0.0, progress=False)

# ------------------------------------------------------------------------------------------------
# GPU vs CPU (run where CuPy sees a device)
# ------------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("shape, steps", [((9, 17, 40), 1), ((33, 20, 64), 7), ((64, 64, 64), 40)])
def test_gpu_matches_cpu(rng, shape, steps, cuda_backend):
    cupy = cuda_backend.xp  # real CuPy, or its strict stand-in on the emulated device

    rc, k, w, q = random_medium(rng, shape)
    h = (0.5e-3, 0.6e-3, 0.4e-3)
    bc = {"0-": 20.0, "2+": 30.0}
    t0 = rng.uniform(25, 50, shape).astype(np.float32)
    with fus.use("cpu"):
        dt = 0.9 * stable_time_step(rc, k, w, h, boundary=bc)
        c_cpu = bioheat_coefficients(rc, k, w, h, dt, boundary=bc, source=q)
        ref = bioheat_step(t0, c_cpu, steps=steps)
    c_gpu = bioheat_coefficients(cupy.asarray(rc), cupy.asarray(k), cupy.asarray(w), h, dt, boundary=bc, source=cupy.asarray(q))
    got = cupy.asnumpy(bioheat_step(cupy.asarray(t0), c_gpu, steps=steps))
    assert np.abs(got - ref).max() < 2e-5 * (1 + 0.1 * steps)
