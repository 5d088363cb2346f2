"""Pennes bioheat benchmark: fus (CPU, and CUDA where present) vs a vectorised numpy step, same run.

Standard problem: a 128^3 heterogeneous grid (random rho c, k, w_b c_b and Q per voxel, 0.5 mm,
fixed-temperature face on one side), 100 explicit steps at 0.9 of the stable limit:
209.7 M voxel-steps. The numpy baseline is the same finite-volume step in float32 with the
coefficient arrays precomputed the same way (face conductances, dt / rho c, ...): per step six
shifted differences multiplied by the face conductances, accumulated in place, then the
perfusion / source update (no temporary beyond two work arrays).

Second problem: the shipped bone phantom (sample_data/phantom_bone.toml, 128 x 128 x 160 at
0.5 mm) through a 60 s sonication and 60 s of cooling with CEM43 after every sub-step, the way
``fus heat`` runs it (heat source: a focal Gaussian standing in for the field).

Run: ``pytest benchmarks/bench_bioheat.py`` (rates and ratios are printed at the end).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fus
from fus.kernels import bioheat_step
from fus.physics.bioheat_grid import bioheat_coefficients, stable_time_step

N = 128
STEPS = 100
H = 0.5e-3
PHANTOM = Path(__file__).resolve().parents[1] / "sample_data" / "phantom_bone.toml"


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(20240601)
    shape = (N, N, N)
    rc = rng.uniform(2.1e6, 4.2e6, shape)
    k = rng.uniform(0.2, 0.6, shape)
    w = rng.uniform(0.0, 10000.0, shape)
    q = rng.uniform(0.0, 1e6, shape)
    bc = {"2-": 20.0}
    dt = 0.9 * stable_time_step(rc, k, w, H, boundary=bc)
    with fus.use("cpu"):
        c = bioheat_coefficients(rc, k, w, H, dt, boundary=bc, source=q)
    t0 = rng.uniform(36.0, 38.0, shape).astype(np.float32)
    return c, t0, (rc, k, w, q, bc, dt)


def numpy_steps(c, t0, steps):
    """The same scheme as the kernel, vectorised numpy float32, two work arrays."""
    t = t0.copy()
    flux = np.empty_like(t)
    d = np.empty_like(t)
    g = (c.g0, c.g1, c.g2)
    for _ in range(steps):
        flux[...] = 0.0
        for ax in range(3):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[ax], hi[ax] = slice(0, -1), slice(1, None)
            lo, hi = tuple(lo), tuple(hi)
            np.subtract(t[hi], t[lo], out=d[lo])
            d[lo] *= g[ax][lo]
            flux[lo] += d[lo]
            flux[hi] -= d[lo]
        flux *= c.a
        flux += c.s
        np.multiply(c.p, t, out=d)
        flux -= d
        t += flux
    return t


def test_bioheat_fus_cpu(rate, problem):
    c, t0, _ = problem
    with fus.use("cpu"):
        out = rate(f"bioheat {N}^3 x {STEPS}", "fus-cpu", N**3 * STEPS, "voxel-steps", bioheat_step, t0, c, steps=STEPS, rounds=5)
    assert np.isfinite(out).all()


def test_bioheat_fus_cuda(rate, problem):
    ok, reason, _ = fus.backend.cuda_status()
    if not ok:
        pytest.skip(f"no CUDA device: {reason}")
    import cupy

    _, t0, (rc, k, w, q, bc, dt) = problem
    with fus.use("cuda"):
        c = bioheat_coefficients(
            cupy.asarray(rc), cupy.asarray(k), cupy.asarray(w), H, dt, boundary=bc, source=cupy.asarray(q)
        )
        td = cupy.asarray(t0)

        def run():
            out = bioheat_step(td, c, steps=STEPS)
            cupy.cuda.Device().synchronize()
            return out

        rate(f"bioheat {N}^3 x {STEPS}", "fus-cuda", N**3 * STEPS, "voxel-steps", run, rounds=10)


def test_bioheat_numpy(rate, problem):
    c, t0, _ = problem
    out = rate(f"bioheat {N}^3 x {STEPS}", "numpy-f32-step", N**3 * STEPS, "voxel-steps", numpy_steps, c, t0, STEPS, rounds=2)
    with fus.use("cpu"):
        ref = fus.asnumpy(bioheat_step(t0, c, steps=STEPS))
    assert np.abs(out - ref).max() < 1e-3  # same problem, same answer


def test_bone_phantom_60s_plus_60s_cooling(rate):
    from fus.physics.bioheat import Schedule, simulate_phantom
    from fus.physics.phantom import load_phantom

    ph = load_phantom(PHANTOM)
    x, y, z = np.meshgrid(*ph.grid.axes(), indexing="ij")
    q = 4e6 * np.exp(-(x**2 + y**2) / (2 * 1.2e-3**2) - z**2 / (2 * 4e-3**2))  # W/m^3 at 1 W
    sched = Schedule.sonication(power=5.0, duration=60.0, cooling=60.0)

    def run():
        with fus.use("cpu"):
            return simulate_phantom(ph, q, sched, reference_power=1.0, output_interval=5.0, keep_frames=False)

    r = rate("bone phantom 60 s + 60 s", "fus-cpu", 1.0, "runs", run, rounds=1)
    print(f"\nbone phantom {ph.shape}: {r.info['n_steps']} steps of {r.info['time_steps_s']} s, "
          f"{r.info['wall_time_s']:.1f} s wall, target max {r.roi_curves['target']['max_temperature'].max():.1f} C")
    assert np.isfinite(r.final_temperature).all()
