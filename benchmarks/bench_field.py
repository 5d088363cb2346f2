"""Field benchmark: cap256 on a 64^3 grid at 0.5 mm, lambda/3 patches, fus vs plain numpy.

Problem (issue 3): the ``cap256`` preset (256 elements of 6.6 mm, R = A = 140 mm, 1.2 MHz) focused
on its geometric focus, in the standard lossless medium of ``bench_rayleigh.py`` (water density,
c = 1500 m/s, no attenuation: the numpy baseline has none, and the attenuating kernel path costs
~1.5x more per pair), patches no larger than lambda/3 (the default discretisation: 228 patches per
element, 58 368 patches; the issue's estimate was ~208; with water at 20 C, c = 1482 m/s, a/h
crosses 8 and it is 256), the field on a 64 x 64 x 64 grid with 0.5 mm spacing centred on the
focus: 15.3 G patch-point pairs.

Implementations, timed in the same run:

``fus-cpu-patches``
    :func:`fus.physics.field.pressure` with ``far_field=False``: every pair through the Rayleigh
    kernel on the CPU (the full 64^3 grid).
``fus-cpu-default``
    the same call with the default far-field switch: at 112-168 mm from the focus region every
    element is one far-field source (67 M element-point pairs of the rayleigh_far kernel). Its rate is
    given in *equivalent* patch pairs (the work of the patch sum it replaces), so its ratio is a
    ratio of times.
``numpy-f32-cos-sin-gemv``
    the plain numpy way (``numpy_rayleigh`` of ``bench_rayleigh.py``: float32 distances from a GEMM,
    numpy cos/sin, two real GEMVs), timed on a **subset** of 2048 grid points and extrapolated to the
    full grid by its rate (pairs/s): running it on the whole grid would take ~2 minutes.
``fus-cuda-patches``
    the patch sum on the GPU (skipped without one).

Run: ``pytest benchmarks/bench_field.py`` (rates, times and ratios are printed at the end).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fus
from fus.kernels import rayleigh
from fus.physics.drive import focus_phases, scale_to_power
from fus.physics.field import pressure
from fus.physics.grid import Grid
from fus.physics.media import HomogeneousMedium
from fus.physics.tissues import get_tissue
from fus.physics.transducer import cap256, discretise

from bench_rayleigh import numpy_rayleigh  # noqa: E402  (benchmarks/ is on sys.path under pytest)

GROUP = "field cap256 lambda/3 64^3"
N_SUBSET = 2048


@pytest.fixture(scope="module")
def problem():
    t = cap256()
    med = HomogeneousMedium(dataclasses.replace(get_tissue("water"), sound_speed=1500.0, alpha0=0.0))
    u = scale_to_power(t, focus_phases(t, (0, 0, 0), med.sound_speed), 100.0, med.density, med.sound_speed)
    grid = Grid.centred((64, 64, 64), 0.5e-3)
    patches = discretise(t, 3, med.sound_speed)  # what pressure() does
    pairs = float(patches.n_patches) * grid.size
    print(f"\ncap256: {patches.n_patches} patches ({patches.n_patches / 256:.0f} per element), "
          f"{grid.size} points, {pairs / 1e9:.2f} G pairs")
    return t, med, u, grid, patches, pairs


def test_field_fus_cpu_patches(rate, problem):
    t, med, u, grid, _, pairs = problem
    with fus.use("cpu"):
        p = rate(GROUP, "fus-cpu-patches", pairs, "pairs", pressure, t, u, grid, med, far_field=False, rounds=1)
    peak = float(np.abs(p).max())
    assert np.isfinite(peak) and abs(p[31:33, 31:33, 31:33]).max() == pytest.approx(peak, rel=0.05)


def test_field_fus_cpu_default_far_field(rate, problem):
    t, med, u, grid, _, pairs = problem
    with fus.use("cpu"):
        p_far = rate(GROUP, "fus-cpu-default", pairs, "pairs", pressure, t, u, grid, med, rounds=1)
        sub = Grid.centred((16, 16, 16), 2e-3)  # same box, coarser: check the two paths agree
        a = fus.asnumpy(pressure(t, u, sub, med))
        b = fus.asnumpy(pressure(t, u, sub, med, far_field=False))
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 5e-3
    assert np.isfinite(np.abs(p_far)).all()


def test_field_numpy_subset(rate, problem):
    t, med, u, grid, patches, _ = problem
    k = med.wavenumber(t.frequency)
    src = patches.centres.astype(np.float32)
    w = (1j * t.frequency * med.density * patches.areas * u[patches.element_index]).astype(np.complex64)
    start = grid.size // 2 - N_SUBSET // 2
    pts = grid.points(start, start + N_SUBSET)
    work = float(len(src)) * N_SUBSET
    out = rate(GROUP, "numpy-f32-cos-sin-gemv", work, "pairs", numpy_rayleigh, src, w, pts, k, rounds=3)
    # lossless kernel on the same subset: the two ways compute the same thing
    with fus.use("cpu"):
        ref = fus.asnumpy(rayleigh(src, w, pts, k))
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-3


def test_field_fus_cuda_patches(rate, problem):
    ok, reason, _ = fus.backend.cuda_status()
    if not ok:
        pytest.skip(f"no CUDA device: {reason}")
    import cupy

    t, med, u, grid, _, pairs = problem

    def run():
        out = pressure(t, u, grid, med, far_field=False)
        cupy.cuda.Device().synchronize()
        return out

    with fus.use("cuda"):
        rate(GROUP, "fus-cuda-patches", pairs, "pairs", run, rounds=3)
