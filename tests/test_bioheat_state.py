"""The kept bioheat state (``BioheatState.advance``): against a float64 matrix form of the Pennes
step written here, against ``simulate`` on the same cut points, linearity in power, heat sources
keyed by target, energy bookkeeping, a phantom-built state, bad input, and GPU vs CPU.

The Gaussian-diffusion analytic check of the same loop is ``test_green_function_in_fourier_space``
in tests/test_bioheat.py (``simulate`` is a user of ``BioheatState``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fus
from fus.errors import InvalidParameterError
from fus.physics.bioheat import BioheatState, Schedule, simulate, simulate_phantom, state_for_phantom
from fus.physics.phantom import build_phantom

pytestmark = pytest.mark.usefixtures("cpu_backend")

#: (duration [s], power [W], duty cycle) of the uneven pieces used throughout
PIECES = [(0.7, 8.0, 1.0), (3.1, 3.0, 0.5), (1.2, 0.0, 1.0)]


# ------------------------------------------------------------------------------------------------
# float64 references written here: the finite-volume Pennes operator as a dense matrix
# ------------------------------------------------------------------------------------------------
def pennes_matrix(rc, k, w, h, ta, faces):
    """``(M, b)`` with ``rho c dT/dt = M T + b + Q`` (flattened C order), float64.

    Voxels ``i``, ``j`` sharing a face along axis ``a`` exchange ``2 k_i k_j / (k_i + k_j) / h_a^2
    (T_j - T_i)``; a fixed-temperature grid face (``faces[2 a + high]`` not None) adds
    ``2 k_i / h_a^2 (T_fix - T_i)`` to its boundary voxels; perfusion adds ``-w (T - T_a)``.
    """
    shape = rc.shape
    n = rc.size
    idx = np.arange(n).reshape(shape)
    kf, wf = k.ravel(), w.ravel()
    m = np.zeros((n, n))
    b = wf * ta
    m[np.arange(n), np.arange(n)] -= wf
    for ax in range(3):
        for i in range(n):
            pos = np.unravel_index(i, shape)
            if pos[ax] + 1 < shape[ax]:
                nb = list(pos)
                nb[ax] += 1
                j = idx[tuple(nb)]
                g = 2 * kf[i] * kf[j] / (kf[i] + kf[j]) / h[ax] ** 2
                m[i, j] += g
                m[j, i] += g
                m[i, i] -= g
                m[j, j] -= g
            for high, edge in ((0, 0), (1, shape[ax] - 1)):
                tb = faces[2 * ax + high]
                if tb is not None and pos[ax] == edge:
                    g = 2 * kf[i] / h[ax] ** 2
                    m[i, i] -= g
                    b[i] += g * tb
    return m, b


def cem43_linear(t0, t1, dt):
    """CEM43 [min] of a temperature linear in time from ``t0`` to ``t1`` over ``dt`` [s]
    (float64, exact; R = 0.5 at and above 43 C, 0.25 below, split where the ramp crosses 43 C)."""

    def part(a, c, frac):
        r = np.where(0.5 * (a + c) >= 43.0, 0.5, 0.25)
        x = -(c - a) * np.log(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x))
        return frac * dt / 60.0 * r ** (43.0 - a) * f

    t0, t1 = np.asarray(t0, np.float64), np.asarray(t1, np.float64)
    cross = (t0 - 43.0) * (t1 - 43.0) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(cross, (43.0 - t0) / np.where(cross, t1 - t0, 1.0), 1.0)
    first = part(t0, np.where(cross, 43.0, t1), frac)
    return first + np.where(cross, part(np.full_like(t0, 43.0), t1, 1.0 - frac), 0.0)


def euler_reference(rc, k, w, h, q, t_init, ta, faces, pieces, p_ref, safety=0.5):
    """Forward Euler in float64 with the step rule of the solver, written from its statement:
    ``dt_max = min rho c / (sum of conductances + w)``, each piece cut into
    ``ceil(L / (safety dt_max))`` equal steps. Returns (T, dose, T_max, steps used)."""
    m, b = pennes_matrix(rc, k, w, h, ta, faces)
    dt_max = float(np.min(rc.ravel() / -np.diag(m)))
    t = t_init.astype(np.float64).ravel()
    dose = np.zeros_like(t)
    tmax = t.copy()
    dts = set()
    for length, power, duty in pieces:
        n = math.ceil(length / (safety * dt_max) - 1e-9)
        dt = length / n
        dts.add(round(dt, 9))
        src = q.ravel() * power * duty / p_ref
        for _ in range(n):
            new = t + dt / rc.ravel() * (m @ t + b + src)
            dose += cem43_linear(t, new, dt)
            t = new
            tmax = np.maximum(tmax, t)
    return t.reshape(rc.shape), dose.reshape(rc.shape), tmax.reshape(rc.shape), dts, dt_max


def small_problem(rng, shape=(5, 6, 7)):
    """A heterogeneous perfused medium, a focal source heating past 43 C, two fixed faces."""
    h = (0.8e-3, 0.7e-3, 0.9e-3)
    rc = rng.uniform(2.5e6, 4.0e6, shape)
    k = rng.uniform(0.2, 0.6, shape)
    w = rng.uniform(0.0, 8000.0, shape)
    c = [(np.arange(n) - (n - 1) / 2) for n in shape]
    x, y, z = np.meshgrid(*c, indexing="ij")
    q = 3e7 * np.exp(-(x**2 + y**2 + z**2) / 4.0) + rng.uniform(0, 1e4, shape)
    t_init = rng.uniform(36.0, 38.0, shape).astype(np.float32)
    faces = [20.0, None, None, None, None, 30.0]
    return dict(rho_c=rc, conductivity=k, perfusion=w, spacing=h, source=q, initial_temperature=t_init,
                arterial_temperature=37.0, boundary=faces)


def advanced(problem, pieces, **kw):
    state = BioheatState(**problem, reference_power=2.0, **kw)
    for length, power, duty in pieces:
        state.advance(length, power, duty_cycle=duty)
    return state


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def test_uneven_pieces_match_float64_euler(rng):
    p = small_problem(rng)
    state = advanced(p, PIECES)
    t_ref, d_ref, m_ref, dts, dt_max = euler_reference(
        p["rho_c"], p["conductivity"], p["perfusion"], p["spacing"], p["source"], p["initial_temperature"],
        37.0, p["boundary"], PIECES, p_ref=2.0,
    )
    assert state.dt_max == pytest.approx(dt_max, rel=1e-9)
    assert state.time_steps == dts
    assert state.n_steps == sum(math.ceil(d / (0.5 * dt_max) - 1e-9) for d, _, _ in PIECES)
    assert state.time == pytest.approx(5.0, abs=1e-12)
    snap = state.snapshot()
    assert float(m_ref.max()) > 45.0 and float(t_ref.min()) < 30.0  # crosses 43 C; the cold faces pull
    err = np.abs(snap["temperature"] - t_ref).max()
    print(f"{state.n_steps} steps: max |T - T_float64| = {err:.2e} C")
    assert err < 2e-5 * (1 + 0.1 * state.n_steps)
    np.testing.assert_allclose(snap["max_temperature"], m_ref, atol=2e-5 * (1 + 0.1 * state.n_steps), rtol=0)
    # float32 temperatures (~1e-5 C) move R^(43 - T) by ~1e-5 relative
    np.testing.assert_allclose(snap["dose"], d_ref, rtol=1e-4)
    assert snap["dose"].dtype == np.float64 and snap["temperature"].dtype == np.float32


@pytest.mark.parametrize("dose_interval", [None, 0.5])
def test_uneven_pieces_equal_simulate_at_the_same_cuts(rng, dose_interval):
    p = small_problem(rng)
    state = advanced(p, PIECES, dose_interval=dose_interval)
    sched = Schedule(PIECES)
    frames = []
    r = simulate(**p, schedule=sched, reference_power=2.0, output_interval=100.0, dose_interval=dose_interval,
                 callback=lambda t, temp, dose: frames.append(t))
    assert frames == [0.0, pytest.approx(5.0)]  # outputs only at 0 and the end: the cuts are the pieces'
    snap = state.snapshot()
    np.testing.assert_allclose(snap["temperature"], r.final_temperature, atol=1e-6, rtol=0)
    np.testing.assert_allclose(snap["max_temperature"], r.max_temperature, atol=1e-6, rtol=0)
    np.testing.assert_allclose(snap["dose"], r.final_dose, rtol=1e-6)
    assert r.info["n_steps"] == state.n_steps and r.info["time_steps_s"] == sorted(state.time_steps)
    assert r.info["dt_max_s"] == state.dt_max and r.info["dose_every_substep"] == (dose_interval is None)


def test_linear_in_power_and_no_rise_without_power(rng):
    """T0 = T_a = every face's fixed temperature: the rise is linear in the source."""
    shape = (6, 7, 8)
    q = np.zeros(shape)
    q[2:4, 3:5, 3:6] = rng.uniform(2e7, 4e7, (2, 2, 3))
    kw = dict(rho_c=rng.uniform(3e6, 4e6, shape), conductivity=rng.uniform(0.3, 0.6, shape),
              perfusion=rng.uniform(0, 5000, shape), spacing=1e-3, source=q, boundary=[37.0] * 6,
              initial_temperature=37.0, arterial_temperature=37.0)
    rises = {}
    for power in (0.0, 5.0, 10.0):
        state = BioheatState(**kw, reference_power=5.0)
        state.advance(2.3, power)
        state.advance(1.9, power, duty_cycle=0.4)
        rises[power] = state.snapshot()["temperature"].astype(np.float64) - 37.0
    peak = float(rises[5.0].max())
    assert peak > 5.0  # float32 T resolves the rise to ~1e-6 of it
    np.testing.assert_allclose(rises[10.0], 2 * rises[5.0], rtol=1e-5, atol=1e-5 * peak)
    assert float(np.abs(rises[0.0]).max()) <= 1e-5  # a few float32 ulps of 37 C at most


def test_sources_keyed_by_target(rng):
    shape = (8, 8, 16)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    spots = {"a": (3, 3, 3), 1: (4, 4, 12)}
    qs = {key: 1e6 * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 2.0) for key, c in spots.items()}
    medium = dict(rho_c=np.full(shape, 3.7e6), conductivity=0.5, perfusion=1000.0, spacing=1e-3, boundary=[37.0] * 6)
    multi = BioheatState(**medium, source=qs)
    assert multi.targets == ("a", 1)
    multi.advance(3.0, 2.0, target=1)
    t = multi.snapshot()["temperature"]
    assert t[spots[1]] - 37.0 > 1.0
    assert t[spots[1]] - 37.0 > 50 * (t[spots["a"]] - 37.0)
    assert int(np.argmax(t)) == int(np.ravel_multi_index(spots[1], shape))
    # the same as a state with that source alone; target None is the first source
    alone = BioheatState(**medium, source=qs[1])
    alone.advance(3.0, 2.0)
    np.testing.assert_array_equal(t, alone.snapshot()["temperature"])
    first = BioheatState(**medium, source=qs)
    first.advance(3.0, 2.0)
    t_first = first.snapshot()["temperature"]
    assert int(np.argmax(t_first)) == int(np.ravel_multi_index(spots["a"], shape))
    with pytest.raises(InvalidParameterError, match=r"target=2: .*keys: 'a', 1"):
        multi.advance(1.0, 1.0, target=2)
    with pytest.raises(InvalidParameterError, match="target='1'"):
        multi.advance(1.0, 1.0, target="1")


def test_energy_bookkeeping_time_and_snapshots(rng):
    """Zero-flux walls, no perfusion: the heat stored is the energy delivered times the fraction of
    the drive power the source absorbs (integral of Q_ref dV / P_ref)."""
    shape = (10, 9, 12)
    q = np.zeros(shape)
    q[3:7, 3:6, 4:9] = rng.uniform(1e5, 5e5, (4, 3, 5))
    h = 0.6e-3
    rc = rng.uniform(3e6, 4e6, shape)
    state = BioheatState(rc, rng.uniform(0.3, 0.6, shape), 0.0, h, q, reference_power=4.0)
    before = state.snapshot()
    state.advance(2.0, 10.0, duty_cycle=0.5)
    mid = state.snapshot()
    steps = state.n_steps
    state.advance(0.0, 100.0)  # nothing happens
    assert state.n_steps == steps and state.energy == pytest.approx(10.0)
    np.testing.assert_array_equal(state.temperature, mid["temperature"])
    state.advance(3.0, 4.0)
    state.advance(1.5, 0.0)
    assert state.energy == pytest.approx(10.0 * 0.5 * 2.0 + 4.0 * 3.0, rel=1e-12)
    assert state.time == pytest.approx(6.5, rel=1e-12)
    absorbed = float(q.sum()) * h**3 / 4.0
    stored = float((rc * (state.snapshot()["temperature"].astype(np.float64) - 37.0)).sum()) * h**3
    assert stored == pytest.approx(state.energy * absorbed, rel=5e-3)
    # snapshots are copies: advancing changed the state, not what was taken before
    assert before["time"] == 0.0 and mid["time"] == pytest.approx(2.0)
    assert np.all(before["temperature"] == 37.0) and np.all(before["dose"] == 0.0)
    assert mid["temperature"].max() > 37.1
    assert float(state.snapshot()["dose"].max()) > float(mid["dose"].max())


def test_state_for_phantom_matches_simulate_phantom():
    spec = {
        "name": "t",
        "grid": {"shape": [10, 10, 24], "spacing_mm": 1.0, "centre_mm": [0, 0, 0]},
        "bath": {"temperature_c": 22.0},
        "body": {"skin_z_mm": -8.0},
        "layers": [{"tissue": "skin", "thickness_mm": 2}, {"tissue": "fat", "thickness_mm": 3}, {"tissue": "muscle"}],
        "rois": {"target": {"centre_mm": [0, 0, 0], "radius_mm": 2.0}},
    }
    ph = build_phantom(spec)
    x, y, z = np.meshgrid(*ph.grid.axes(), indexing="ij")
    q = 3e6 * np.exp(-(x**2 + y**2 + z**2) / (2 * 2e-3**2))
    state = state_for_phantom(ph, q, reference_power=10.0)
    assert state.shape == ph.shape
    np.testing.assert_array_equal(state.snapshot()["temperature"], ph.initial_temperature())
    state.advance(2.5, 10.0)
    state.advance(1.5, 0.0)
    r = simulate_phantom(ph, q, Schedule([(2.5, 10.0), (1.5, 0.0)]), reference_power=10.0, output_interval=10.0)
    np.testing.assert_allclose(state.snapshot()["temperature"], r.final_temperature, atol=1e-6, rtol=0)
    assert float(r.final_temperature.min()) < 30.0  # the bath face was kept


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((-1.0, 1.0), {}, r"duration=-1\.0"),
        ((math.nan, 1.0), {}, "duration=nan"),
        ((1.0, -2.0), {}, r"power=-2\.0"),
        ((1.0, math.inf), {}, "power=inf"),
        ((1.0, 1.0), {"duty_cycle": 0.0}, r"duty_cycle=0\.0"),
        ((1.0, 1.0), {"duty_cycle": 1.5}, r"duty_cycle=1\.5"),
        ((1.0, 1.0), {"target": 3}, r"target=3: .*keys: 0"),
        ((1.0, 1.0), {"target": [0]}, r"target=\[0\]"),
    ],
)
def test_bad_advance_arguments(args, kwargs, match):
    state = BioheatState(np.full((3, 3, 3), 3.6e6), 0.5, 0.0, 1e-3, np.ones((3, 3, 3)))
    with pytest.raises(InvalidParameterError, match=match):
        state.advance(*args, **kwargs)
    assert state.time == 0.0 and state.n_steps == 0 and state.energy == 0.0


def test_no_source_has_no_target():
    state = BioheatState(np.full((3, 3, 3), 3.6e6), 0.5, 0.0, 1e-3, None)
    state.advance(1.0, 50.0)
    assert np.all(state.snapshot()["temperature"] == np.float32(37.0)) and state.energy == pytest.approx(50.0)
    with pytest.raises(InvalidParameterError, match=r"target=0: .*no heat source"):
        state.advance(1.0, 1.0, target=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(source=np.ones((3, 3, 2))), r"source=.*shape \(3, 3, 2\)"),
        (dict(source={"a": np.ones((3, 3, 3)), "b": np.ones((2, 3, 3))}), r"source\['b'\]=.*shape \(2, 3, 3\)"),
        (dict(source=np.full((3, 3, 3), np.nan)), "source=.*non-finite"),
        (dict(source={(1, 2): np.ones((3, 3, 3))}), r"source=.*key \(1, 2\)"),
        (dict(source={}), "source=.*empty"),
        (dict(initial_temperature=310.15), r"initial_temperature=310\.15.*kelvin"),
        (dict(initial_temperature=np.full((3, 3, 3), np.nan)), "initial_temperature=nan"),
        (dict(initial_temperature=np.full((2, 3, 3), 37.0)), "initial_temperature=.*shape"),
        (dict(safety=1.5), r"safety=1\.5"),
        (dict(safety=0.0), r"safety=0\.0"),
        (dict(reference_power=0.0), r"reference_power=0\.0"),
        (dict(dose_interval=-1.0), r"dose_interval=-1\.0"),
        (dict(conductivity=-0.5), "conductivity"),
    ],
)
def test_bad_state_arguments(kwargs, match):
    args = dict(rho_c=np.full((3, 3, 3), 3.6e6), conductivity=0.5, perfusion=0.0, spacing=1e-3)
    args.update(kwargs)
    with pytest.raises(InvalidParameterError, match=match):
        BioheatState(**args)


# ------------------------------------------------------------------------------------------------
# GPU vs CPU (run where CuPy sees a device, and on the emulated one)
# ------------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dose_interval", [None, 1.0])
def test_gpu_state_matches_cpu(rng, dose_interval, cuda_backend):
    cupy = cuda_backend.xp  # real CuPy, or its strict stand-in on the emulated device
    p = small_problem(rng, shape=(6, 9, 33))
    sources = {0: p["source"], "edge": np.roll(p["source"], 2, axis=2)}
    steps = [(0.7, 8.0, 1.0, 0), (3.1, 6.0, 0.5, "edge"), (1.2, 0.0, 1.0, None)]

    def run(xp):
        kw = {**p, "source": {key: xp.asarray(v) for key, v in sources.items()}}
        for name in ("rho_c", "conductivity", "perfusion", "initial_temperature"):
            kw[name] = xp.asarray(kw[name])
        state = BioheatState(**kw, reference_power=2.0, dose_interval=dose_interval)
        for length, power, duty, target in steps:
            state.advance(length, power, duty_cycle=duty, target=target)
        return state

    with fus.use("cpu"):
        ref = run(np).snapshot()
    gpu = run(cupy)
    assert isinstance(gpu.temperature, cupy.ndarray) and isinstance(gpu.dose, cupy.ndarray)
    got = gpu.snapshot()
    assert float(ref["max_temperature"].max()) > 43.0
    tol = 2e-5 * (1 + 0.1 * gpu.n_steps)
    np.testing.assert_allclose(got["temperature"], ref["temperature"], atol=tol, rtol=0)
    np.testing.assert_allclose(got["max_temperature"], ref["max_temperature"], atol=tol, rtol=0)
    np.testing.assert_allclose(got["dose"], ref["dose"], rtol=1e-4)
    assert got["time"] == ref["time"]
