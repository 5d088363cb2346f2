"""Every kernel of the launch table on small inputs, on the ThreadSanitizer build of the emulated GPU.

Run by tests/test_gpu_emulation.py in a subprocess with ``LD_PRELOAD`` set to libtsan and
``FUS_GPU_EMULATION=tsan``; ThreadSanitizer writes any race it sees to stderr. Each result is also
compared with the CPU backend (a race that changes a number fails here even if TSan missed it).

Usage: ``python tsan_run.py kernels`` or ``python tsan_run.py faults LIBRARY KERNEL``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _close(name: str, gpu, cpu, tol: float) -> None:
    import fus

    g, c = fus.asnumpy(gpu), fus.asnumpy(cpu)
    scale = max(float(np.nanmax(np.abs(c))), 1e-30)
    err = float(np.nanmax(np.abs(g - c))) / scale
    if not (err <= tol and np.array_equal(np.isnan(g), np.isnan(c))):
        raise SystemExit(f"{name}: emulated GPU differs from the CPU build (max rel {err:.2e})")
    print(f"{name}: ok (max rel diff {err:.1e})")


def kernels() -> set[str]:
    import fus
    from fus.kernels import bioheat_step, cem43, prf_phase, prf_row_phase_sums, prf_row_poly_sums, prf_temperature, prf_temperature_dose, rayleigh, rayleigh_far, rayleigh_layered
    from fus.physics.bioheat_grid import bioheat_coefficients, stable_time_step
    from test_bioheat import random_medium
    from test_prf_kernel import random_images
    from test_rayleigh import K, far_case, layered_case, random_case

    rng = np.random.default_rng(7)

    def both(name, fn, tol):
        gpu = fn()
        with fus.use("cpu"):
            cpu = fn()
        for k, (g, c) in enumerate(zip(gpu if isinstance(gpu, tuple) else (gpu,), cpu if isinstance(cpu, tuple) else (cpu,))):
            _close(f"{name}[{k}]", g, c, tol)

    src, w, pts = random_case(rng, 200, 300)
    both("rayleigh", lambda: rayleigh(src, w, pts, K - 8j), 1e-4)
    s2, w2, p2, g2, c2 = layered_case(rng, 200, 300)
    both("rayleigh_layered", lambda: rayleigh_layered(s2, w2, p2, g2, c2), 1e-4)
    s3, w3, n3, r3, p3, k3, g3, c3 = far_case(rng, 100, 300, layered=True)
    both("rayleigh_far", lambda: rayleigh_far(s3, w3, n3, r3, p3, k3, g3, c3), 1e-4)
    z, zr = random_images(rng, (2, 16, 24))
    both("prf_phase", lambda: prf_phase(z, zr, noise=2.0, mag_min=20.0), 1e-5)
    dphi, wt, m = (fus.asnumpy(a) for a in prf_phase(z, zr, noise=2.0, mag_min=20.0))
    both("prf_temperature", lambda: prf_temperature(dphi, 0.1, wt, m, -10.0), 1e-5)
    use = rng.uniform(size=(16, 24)) > 0.3
    both("prf_row_phase_sums", lambda: prf_row_phase_sums(dphi, wt, use, stride=2), 1e-5)
    c0 = rng.uniform(-3, 3, 2).astype(np.float32)
    both("prf_row_poly_sums", lambda: prf_row_poly_sums(dphi, wt, use, c0, stride=2), 1e-5)
    coef = rng.uniform(-0.5, 0.5, (2, 6))

    def fused():
        xp = fus.backend.get_backend().xp
        tp, dose, tmax = (xp.asarray(a) for a in (np.full(dphi.shape, 40, np.float32), np.zeros(dphi.shape), np.full(dphi.shape, 40, np.float32)))
        out = prf_temperature_dose(dphi, wt, m, -8.0, drift=coef, body_temp=37.0, dt=5.0, first=False, t_prev=tp, dose=dose, tmax=tmax)
        return (*out, dose)

    both("prf_temperature_dose", fused, 1e-4)
    t0 = rng.uniform(30, 65, 700).astype(np.float32)
    t1 = (t0 + rng.normal(0, 4, t0.size)).astype(np.float32)

    def dose():
        d = fus.backend.get_backend().xp.zeros(t0.size)
        cem43(d, t0, t1, 3.0)
        return d

    both("cem43", dose, 1e-5)
    shape = (5, 9, 20)
    rc, k, wb, q = random_medium(rng, shape)
    h = (0.5e-3, 0.6e-3, 0.4e-3)
    temp = rng.uniform(25, 50, shape).astype(np.float32)
    with fus.use("cpu"):
        dt = 0.9 * stable_time_step(rc, k, wb, h)

    def heat():
        c = bioheat_coefficients(rc, k, wb, h, dt, source=q)
        return bioheat_step(temp, c, steps=5)

    both("bioheat_steps", heat, 1e-5)
    return set(fus.backend.get_backend().launched)


def faults(library: str, name: str) -> None:
    import ctypes

    from fus.backend.emulation import EmulatedDevice

    dev = EmulatedDevice(Path(library), "tsan", check_sources=False)
    out = np.zeros(512, np.float32)
    dev.launch(name, (2,), (256,), [ctypes.c_void_p(out.ctypes.data), ctypes.c_int32(out.size)])
    print(f"{name}: launched")


if __name__ == "__main__":
    if sys.argv[1] == "kernels":
        os.environ.setdefault("FUS_BIOHEAT_GPU_WAVEFRONT", "1")
        import fus

        fus.set_backend("cuda")
        done = kernels()
        from fus.backend.signatures import KERNELS

        missing = sorted(set(KERNELS) - done)
        if missing:
            raise SystemExit(f"kernels not run under ThreadSanitizer: {missing}")
        print(f"all {len(done)} kernels ran")
    else:
        faults(sys.argv[2], sys.argv[3])
