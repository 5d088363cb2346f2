"""fus.kernels.rayleigh (kernels/rayleigh.cu) against a float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

import fus
from fus.errors import InvalidParameterError
from fus.kernels import rayleigh
from reference import rayleigh_ref, rel_l2

TOL = 1e-4  # relative L2 against float64 (the accuracy target)
F = 1.2e6
C = 1500.0
K = 2 * np.pi * F / C  # 5027 rad/m


def random_case(rng, m, n, *, spread=0.07, z_pts=0.14):
    """Sources on a plane patch, field points in a box in front of it [m], random complex weights.

    With fewer than 64 field points the relative L2 error is one or a few samples of a sum whose
    random-phase terms may cancel by chance (|P| << sum |terms|), which measures the conditioning
    of the sum, not the kernel. There the weights get random amplitudes but phases focused on the
    first point (the physical use: a focused array), so the test stays a test of the arithmetic.
    """
    src = np.column_stack([rng.uniform(-spread, spread, (m, 2)), rng.uniform(-0.005, 0.005, m)])
    pts = rng.uniform(-0.02, 0.02, (n, 3)) + [0.0, 0.0, z_pts]
    if n >= 64:
        w = rng.normal(size=m) + 1j * rng.normal(size=m)
    else:
        r0 = np.linalg.norm(pts[0] - src, axis=1)
        w = rng.uniform(0.2, 1.0, m) * np.exp(1j * K * r0)
    return src, w, pts


SIZES = [(1, 1), (1, 37), (17, 1), (16, 16), (255, 1001), (257, 333), (1000, 50), (3, 4099)]


@pytest.mark.parametrize("m,n", SIZES)
@pytest.mark.parametrize("alpha", [0.0, 8.6], ids=["lossless", "attenuating"])
def test_matches_float64(cpu_backend, rng, m, n, alpha):
    src, w, pts = random_case(rng, m, n)
    got = fus.asnumpy(rayleigh(src, w, pts, K - 1j * alpha))
    ref = rayleigh_ref(src, w, pts, K, alpha)
    assert got.shape == (n,) and got.dtype == np.complex64
    err = rel_l2(got, ref)
    assert err <= TOL, f"M={m} N={n} alpha={alpha}: relative L2 {err:.2e} > {TOL}"


@pytest.mark.parametrize("kr_max", [50.0, 700.0, 2000.0])
@pytest.mark.parametrize("alpha", [0.0, 15.0], ids=["lossless", "attenuating"])
def test_large_phase(cpu_backend, rng, kr_max, alpha):
    """|k r| up to ~2000 rad: the range reduction and phase compensation hold the error."""
    src, w, pts = random_case(rng, 301, 777)
    r = np.linalg.norm(pts[:, None, :] - src[None, :, :], axis=-1)
    k = kr_max / r.max()
    got = fus.asnumpy(rayleigh(src, w, pts, complex(k, -alpha)))
    err = rel_l2(got, rayleigh_ref(src, w, pts, k, alpha))
    assert err <= TOL, f"k r up to {kr_max}: relative L2 {err:.2e}"


def test_attenuation_is_exp_minus_alpha_r(cpu_backend):
    """One source: |P| = exp(-alpha r) / r exactly in shape, phase -k r."""
    r = np.linspace(0.01, 0.2, 50)
    pts = np.column_stack([np.zeros_like(r), np.zeros_like(r), r])
    alpha = 10.0
    got = fus.asnumpy(rayleigh([[0.0, 0.0, 0.0]], [1.0], pts, K - 1j * alpha)).astype(np.complex128)
    r32 = r.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(np.abs(got), np.exp(-alpha * r32) / r32, rtol=2e-6)
    np.testing.assert_allclose(np.angle(got * np.exp(1j * K * r32)), 0.0, atol=1e-4)


def test_real_wavenumber_and_numpy_scalars(cpu_backend, rng):
    src, w, pts = random_case(rng, 10, 20)
    a = fus.asnumpy(rayleigh(src, w, pts, K))
    b = fus.asnumpy(rayleigh(src, w, pts, np.float64(K)))
    c = fus.asnumpy(rayleigh(src, w, pts, np.array(K + 0j)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_leading_point_dimensions(cpu_backend, rng):
    src, w, _ = random_case(rng, 7, 1)
    grid = rng.uniform(-0.01, 0.01, (4, 5, 6, 3)) + [0, 0, 0.1]
    got = fus.asnumpy(rayleigh(src, w, grid, K))
    assert got.shape == (4, 5, 6)
    flat = fus.asnumpy(rayleigh(src, w, grid.reshape(-1, 3), K))
    np.testing.assert_array_equal(got.reshape(-1), flat)


def test_no_points_gives_empty(cpu_backend):
    got = rayleigh([[0.0, 0.0, 0.0]], [1.0], np.zeros((0, 3)), K)
    assert got.shape == (0,)


def test_coincident_point_excludes_that_source(cpu_backend, rng):
    """r = 0: no inf; the coincident source contributes exactly nothing."""
    src, w, pts = random_case(rng, 9, 5)
    pts[2] = src[4]
    got = fus.asnumpy(rayleigh(src, w, pts, K - 2j))
    assert np.all(np.isfinite(got))
    others = np.delete(np.arange(9), 4)
    expect = rayleigh_ref(src[others], w[others], pts[2:3], K, 2.0)[0]
    # float32 error scales with the terms, not with their (possibly cancelling) sum
    scale = np.sum(np.abs(w[others]) / np.linalg.norm(src[others] - pts[2], axis=1))
    assert abs(got[2] - expect) <= TOL * scale
    # only one source, at the point itself: exactly zero
    alone = fus.asnumpy(rayleigh(src[:1], w[:1], src[:1], K))
    assert alone[0] == 0


def test_nan_propagates(cpu_backend, rng):
    src, w, pts = random_case(rng, 33, 40)
    p = pts.copy()
    p[5, 1] = np.nan
    got = fus.asnumpy(rayleigh(src, w, p, K - 1j))
    assert np.isnan(got[5].real) and np.isnan(got[5].imag)
    assert np.all(np.isfinite(np.delete(got, 5)))
    s = src.copy()
    s[3, 2] = np.nan
    assert np.all(np.isnan(fus.asnumpy(rayleigh(s, w, pts, K))))
    ww = w.copy()
    ww[0] = complex(np.nan, 0)
    assert np.all(np.isnan(fus.asnumpy(rayleigh(src, ww, pts, K - 3j)).real))


BAD_INPUTS = [
    ("sources", dict(sources=np.zeros((4, 2))), "last axis"),
    ("sources", dict(sources=np.zeros(3)), "dimension"),
    ("sources", dict(sources=np.zeros((0, 3)), weights=np.zeros(0)), "at least 1"),
    ("sources", dict(sources=np.zeros((4, 3), dtype=complex)), "real numeric"),
    ("sources", dict(sources=np.zeros((4, 3), dtype=bool)), "real numeric"),
    ("sources", dict(sources=[[0, 0, "a"]] * 4), "real numeric"),
    ("sources", dict(sources=[[0, 0, 0], [0, 0]] + [[0, 0, 0]] * 2), "not convertible"),
    ("points", dict(points=np.zeros((5, 4))), "last axis"),
    ("points", dict(points=np.zeros((5, 3), dtype=object)), "real numeric"),
    ("weights", dict(weights=np.ones(5)), "one weight per source"),
    ("weights", dict(weights=np.ones((4, 1))), "dimension"),
    ("weights", dict(weights=np.array(["x"] * 4)), "numeric"),
    ("wavenumber", dict(wavenumber=np.nan), "finite"),
    ("wavenumber", dict(wavenumber=complex(K, np.inf)), "finite"),
    ("wavenumber", dict(wavenumber=-K), "k must be >= 0"),
    ("wavenumber", dict(wavenumber=K + 1j), "<= 0"),
    ("wavenumber", dict(wavenumber=np.array([K, K])), "number"),
    ("wavenumber", dict(wavenumber=True), "boolean"),
    ("wavenumber", dict(wavenumber="5000"), "number"),
]


@pytest.mark.parametrize("name,override,needle", BAD_INPUTS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_names_parameter(cpu_backend, name, override, needle):
    args = dict(sources=np.zeros((4, 3)), weights=np.ones(4), points=np.ones((5, 3)), wavenumber=K)
    args.update(override)
    with pytest.raises(InvalidParameterError) as info:
        rayleigh(**args)
    assert info.value.name == name
    assert needle in str(info.value), str(info.value)
    assert name in str(info.value)


@pytest.mark.cuda
@pytest.mark.parametrize("alpha", [0.0, 8.6])
def test_gpu_matches_cpu(cuda_backend, rng, alpha):
    """The GPU build of rayleigh.cu against the CPU build on the same inputs, and float64."""
    src, w, pts = random_case(rng, 1031, 20011)
    gpu = fus.asnumpy(rayleigh(src, w, pts, K - 1j * alpha))
    with fus.use("cpu"):
        cpu = fus.asnumpy(rayleigh(src, w, pts, K - 1j * alpha))
    ref = rayleigh_ref(src, w, pts, K, alpha)
    assert rel_l2(gpu, ref) <= TOL
    assert rel_l2(gpu, cpu) <= TOL


@pytest.mark.cuda
def test_gpu_accepts_numpy_and_returns_cupy(cuda_backend, rng):
    cupy = cuda_backend.xp  # real CuPy, or its strict stand-in on the emulated device

    src, w, pts = random_case(rng, 5, 6)
    out = rayleigh(src, w, pts, K)
    assert isinstance(out, cupy.ndarray)
    assert isinstance(fus.asnumpy(out), np.ndarray)


# ------------------------------------------------------------------ rayleigh_layered
from fus.kernels import rayleigh_layered  # noqa: E402

Z1 = -0.04  # first interface [m]: sources before it, points beyond it
KAPPA0 = K - 0.3j  # water-like layer 0 [1/m]


def layered_case(rng, m, n, *, phase_max=1000.0, atten=True):
    """Sources near z = -0.12 m, points in a box around z = 0 (beyond Z1), random g and C.

    g and C are scaled so that the largest |Re Phi| = (r / dz) Re(g + C) is about ``phase_max``
    rad; the attenuation parts are up to a few Np (or 0).
    """
    src = np.column_stack([rng.uniform(-0.05, 0.05, (m, 2)), rng.uniform(-0.125, -0.115, m)])
    pts = rng.uniform(-0.02, 0.02, (n, 3))
    g_depth = Z1 - src[:, 2]
    c_depth = pts[:, 2] - Z1
    k_eff = rng.uniform(0.8, 1.2)
    kc = k_eff * rng.uniform(0.9, 1.3, n)  # a different mean wavenumber per point
    g = g_depth * (1.0 - (1j * 2.0 if atten else 0))
    c = c_depth * (kc - (1j * rng.uniform(0.0, 40.0, n) if atten else 0))
    d = pts[:, None, :] - src[None, :, :]
    q = np.linalg.norm(d, axis=-1) / d[..., 2]
    scale = phase_max / (q * (g.real[None, :] + c.real[:, None])).max()
    g = g.real * scale + 1j * g.imag
    c = c.real * scale + 1j * c.imag
    w = rng.normal(size=m) + 1j * rng.normal(size=m)
    return src, w, pts, g, c


def rayleigh_layered_ref(sources, weights, points, g, c):
    """float64 sum_m w_m exp(-i (r / dz) (g_m + C_n)) / r of the float32 / complex64-rounded inputs."""
    s = np.asarray(sources, dtype=np.float32).astype(np.float64)
    p = np.asarray(points, dtype=np.float32).astype(np.float64).reshape(-1, 3)
    w = np.asarray(weights, dtype=np.complex64).astype(np.complex128)
    g = np.asarray(g, dtype=np.complex64).astype(np.complex128)
    c = np.asarray(c, dtype=np.complex64).astype(np.complex128).reshape(-1)
    out = np.empty(p.shape[0], dtype=np.complex128)
    for start in range(0, p.shape[0], 1024):
        d = p[start : start + 1024, None, :] - s[None, :, :]
        r = np.linalg.norm(d, axis=-1)
        phi = r / d[..., 2] * (g[None, :] + c[start : start + 1024, None])
        out[start : start + 1024] = (w[None, :] * np.exp(-1j * phi) / r).sum(axis=1)
    return out


@pytest.mark.parametrize("m,n", [(1, 70), (64, 64), (255, 1001), (257, 333), (1000, 80)])
@pytest.mark.parametrize("phase_max", [30.0, 1000.0])
@pytest.mark.parametrize("atten", [False, True], ids=["lossless", "attenuating"])
def test_layered_matches_float64(cpu_backend, rng, m, n, phase_max, atten):
    src, w, pts, g, c = layered_case(rng, m, n, phase_max=phase_max, atten=atten)
    got = fus.asnumpy(rayleigh_layered(src, w, pts, g, c))
    assert got.shape == (n,) and got.dtype == np.complex64
    err = rel_l2(got, rayleigh_layered_ref(src, w, pts, g, c))
    assert err <= TOL, f"M={m} N={n} phase up to {phase_max}: relative L2 {err:.2e} > {TOL}"


def test_layered_single_source_amplitude_and_phase(cpu_backend):
    """One source on the axis: |P| = exp(-(ga + ca)) / r and phase -(gr + cr) (q = 1)."""
    z = np.linspace(0.0, 0.1, 41)
    pts = np.column_stack([np.zeros_like(z), np.zeros_like(z), z])
    g = np.array([300.0 - 0.5j])
    c = (z - Z1) * (6000.0 - 20.0j)
    got = fus.asnumpy(rayleigh_layered([[0.0, 0.0, -0.1]], [1.0], pts, g, c)).astype(np.complex128)
    r = z.astype(np.float32).astype(np.float64) + 0.1
    phi = g.astype(np.complex64)[0] + c.astype(np.complex64)
    np.testing.assert_allclose(np.abs(got), np.exp(phi.imag) / r, rtol=2e-6)
    np.testing.assert_allclose(np.angle(got * np.exp(1j * phi.real)), 0.0, atol=1e-4)


def test_layered_water_layer_equals_rayleigh(cpu_backend, rng):
    """A 'layer' with layer 0's own kappa: Phi = kappa0 r, so the layered sum is rayleigh's."""
    src, w, pts, _, _ = layered_case(rng, 300, 500)
    g = KAPPA0 * (Z1 - src[:, 2])
    c = KAPPA0 * (pts[:, 2] - Z1)
    got = fus.asnumpy(rayleigh_layered(src, w, pts, g, c))
    plain = fus.asnumpy(rayleigh(src, w, pts, KAPPA0))
    assert rel_l2(got, plain) <= TOL
    # and a different layer really changes the field (the check above can fail)
    other = fus.asnumpy(rayleigh_layered(src, w, pts, g, c * 1.05))
    assert rel_l2(other, plain) > 0.1


def test_layered_leading_point_dimensions(cpu_backend, rng):
    src, w, pts, g, c = layered_case(rng, 7, 60)
    got = fus.asnumpy(rayleigh_layered(src, w, pts.reshape(3, 4, 5, 3), g, c.reshape(3, 4, 5)))
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got.reshape(-1), fus.asnumpy(rayleigh_layered(src, w, pts, g, c)))


def test_layered_no_points_gives_empty(cpu_backend):
    got = rayleigh_layered([[0.0, 0.0, -0.1]], [1.0], np.zeros((0, 3)), [1.0], np.zeros(0))
    assert got.shape == (0,)


def test_layered_nan_propagates(cpu_backend, rng):
    src, w, pts, g, c = layered_case(rng, 33, 40)
    p = pts.copy()
    p[5, 0] = np.nan
    got = fus.asnumpy(rayleigh_layered(src, w, p, g, c))
    assert np.isnan(got[5].real) and np.isnan(got[5].imag)
    assert np.all(np.isfinite(np.delete(got, 5)))
    cc = c.copy()
    cc[7] = complex(np.nan, 0.0)
    got = fus.asnumpy(rayleigh_layered(src, w, pts, g, cc))
    assert np.isnan(got[7].real) and np.all(np.isfinite(np.delete(got, 7)))
    cc = c.copy()
    cc[8] = complex(1.0, np.nan)  # NaN attenuation
    assert np.isnan(fus.asnumpy(rayleigh_layered(src, w, pts, g, cc))[8].real)
    gg = g.copy()
    gg[3] = complex(np.nan, -1.0)
    assert np.all(np.isnan(fus.asnumpy(rayleigh_layered(src, w, pts, gg, c)).real))
    s = src.copy()
    s[2, 2] = np.nan
    assert np.all(np.isnan(fus.asnumpy(rayleigh_layered(s, w, pts, g, c)).real))
    ww = w.copy()
    ww[0] = complex(np.nan, 0)
    assert np.all(np.isnan(fus.asnumpy(rayleigh_layered(src, ww, pts, g, c)).real))


@pytest.mark.parametrize("dz", [0.0, -0.01], ids=["dz=0", "dz<0"])
def test_layered_point_not_beyond_source_gives_nan(cpu_backend, rng, dz):
    """dz <= 0 is outside the model: NaN (never inf) in that point only."""
    src, w, pts, g, c = layered_case(rng, 9, 6)
    pts[2] = src[4] + [0.003, 0.0, dz]
    got = fus.asnumpy(rayleigh_layered(src, w, pts, g, c))
    assert np.isnan(got[2].real) and np.isnan(got[2].imag)
    assert np.all(np.isfinite(np.delete(got, 2)))


LAYERED_BAD = [
    ("sources", dict(sources=np.zeros((4, 2))), "last axis"),
    ("sources", dict(sources=np.zeros((0, 3)), weights=np.zeros(0), g=np.zeros(0)), "at least 1"),
    ("sources", dict(sources=np.zeros((4, 3), dtype=complex)), "real numeric"),
    ("points", dict(points=np.zeros((5, 4))), "last axis"),
    ("weights", dict(weights=np.ones(5)), "one weight per source"),
    ("g", dict(g=np.ones(5)), "shape (4,)"),
    ("g", dict(g=np.ones((4, 1))), "shape (4,)"),
    ("g", dict(g=np.array(["x"] * 4)), "numeric"),
    ("g", dict(g=np.full(4, 1 + 1j)), "<= 0"),
    ("g", dict(g=np.full(4, np.inf)), "inf"),
    ("c", dict(c=np.ones(4)), "shape (5,)"),
    ("c", dict(c=np.ones((5, 1))), "shape (5,)"),
    ("c", dict(c=np.full(5, 2 + 0.5j)), "<= 0"),
    ("c", dict(c=np.full(5, complex(1, -np.inf))), "inf"),
]


@pytest.mark.parametrize("name,override,needle", LAYERED_BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(LAYERED_BAD)])
def test_layered_bad_input_names_parameter(cpu_backend, name, override, needle):
    args = dict(
        sources=np.full((4, 3), -0.1), weights=np.ones(4), points=np.ones((5, 3)), g=np.ones(4), c=np.ones(5)
    )
    args.update(override)
    with pytest.raises(InvalidParameterError) as info:
        rayleigh_layered(**args)
    assert info.value.name == name
    assert needle in str(info.value), str(info.value)


@pytest.mark.cuda
@pytest.mark.parametrize("atten", [False, True], ids=["lossless", "attenuating"])
def test_layered_gpu_matches_cpu(cuda_backend, rng, atten):
    """The GPU build of rayleigh_layered against the CPU build on the same inputs, and float64."""
    src, w, pts, g, c = layered_case(rng, 1031, 20011, atten=atten)
    gpu = fus.asnumpy(rayleigh_layered(src, w, pts, g, c))
    with fus.use("cpu"):
        cpu = fus.asnumpy(rayleigh_layered(src, w, pts, g, c))
    ref = rayleigh_layered_ref(src, w, pts, g, c)
    assert rel_l2(gpu, ref) <= TOL
    assert rel_l2(gpu, cpu) <= TOL
    # NaN outside the model on the GPU too
    p = pts[:300].copy()
    p[17, 2] = src[0, 2] - 0.001
    out = fus.asnumpy(rayleigh_layered(src, w, p, g, c[:300]))
    assert np.isnan(out[17].real) and np.all(np.isfinite(np.delete(out, 17)))


# ------------------------------------------------------------------ rayleigh_far
from fus.kernels import piston_angular_functions, rayleigh_far  # noqa: E402
from fus.physics.field_array import piston_far_field  # noqa: E402

A_EL = 3.3e-3  # element radius [m] (cap256)


def far_case(rng, m, n, *, layered=False, atten=True, radius=(2e-3, 5e-3)):
    """Disc elements on a cap of radius 0.14 m around the origin (normals towards it, tilted by up
    to ~0.2 rad), points in a box around the origin, random complex weights; layered: a second
    medium beyond Z1 with a different wavenumber per point (as for a point in one of several
    layers)."""
    theta = rng.uniform(0.0, 0.45, m)
    phi = rng.uniform(0.0, 2 * np.pi, m)
    dirs = np.column_stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    src = -0.14 * dirs
    nrm = dirs + rng.normal(scale=0.1, size=(m, 3))
    nrm /= np.linalg.norm(nrm, axis=1)[:, None]
    rad = rng.uniform(*radius, m)
    pts = rng.uniform(-0.02, 0.02, (n, 3))
    w = rng.normal(size=m) + 1j * rng.normal(size=m)
    kappa0 = K - (1j * 2.0 if atten else 0)
    r0 = np.linalg.norm(pts[0] - src, axis=1)
    if not layered:
        if n < 64:  # focused on the first point: see random_case (a cancelling sum tests nothing)
            w = rng.uniform(0.2, 1.0, m) * np.exp(1j * K * r0)
        return src, w, nrm, rad, pts, kappa0, None, None
    g = kappa0 * (Z1 - src[:, 2])
    k1 = K * rng.uniform(0.9, 1.3, n) - (1j * rng.uniform(0.0, 40.0, n) if atten else 0)
    c = k1 * (pts[:, 2] - Z1)
    if n < 64:
        w = rng.uniform(0.2, 1.0, m) * np.exp(1j * np.real(r0 / (pts[0, 2] - src[:, 2]) * (g + c[0])))
    return src, w, nrm, rad, pts, kappa0, g, c


def rayleigh_far_ref(sources, weights, normals, radii, points, kappa0, g=None, c=None, on_axis=False):
    """float64 evaluation of the far-field element model (the formula of rayleigh_far) on the
    float32 / complex64-rounded inputs (``on_axis``: with the directivity bracket of sin t = 0)."""
    s = np.asarray(sources, dtype=np.float32).astype(np.float64)
    nr = np.asarray(normals, dtype=np.float32).astype(np.float64)
    a = np.asarray(radii, dtype=np.float32).astype(np.float64)[None, :]
    p = np.asarray(points, dtype=np.float32).astype(np.float64).reshape(-1, 3)
    w = np.asarray(weights, dtype=np.complex64).astype(np.complex128)
    k0 = float(np.float32(complex(kappa0).real))
    kap = complex(np.complex64(kappa0))
    d = p[:, None, :] - s[None, :, :]
    r = np.linalg.norm(d, axis=-1)
    dz = d[..., 2]
    cos_t = (d * nr[None]).sum(-1) / r
    if g is None:
        phase = kap * r
        keff = np.full_like(r, k0)
        vp2 = keff**2 * (1 - cos_t**2)
    else:
        gg = np.asarray(g, dtype=np.complex64).astype(np.complex128)
        cc = np.asarray(c, dtype=np.complex64).astype(np.complex128).reshape(-1)
        phase = r / dz * (gg[None, :] + cc[:, None])
        keff = phase.real / r
        beta = (keff - k0) * r / dz
        nz = nr[None, :, 2]
        vp2 = keff**2 * (1 - cos_t**2) - 2 * keff * beta * (dz / r - cos_t * nz) + beta**2 * (1 - nz**2)
    z = a * np.sqrt(np.maximum(vp2, 0.0)) * (0.0 if on_axis else 1.0)
    sin_t = z / (keff * a)
    dd, g0, g2, h = piston_angular_functions(z)
    x = keff * a * a / (4 * r)
    xe = x * (1 - (a / r) ** 2 / 4)
    bracket = dd * np.exp(-1j * xe) * np.sin(xe) / xe + 1j * ((a / r) * sin_t * h - x * (g0 - sin_t**2 * g2 - dd))
    return (w[None, :] * np.exp(-1j * phase) / r * bracket).sum(axis=1)


@pytest.mark.parametrize("m,n", [(1, 70), (17, 1), (64, 64), (255, 1001), (257, 333)])
@pytest.mark.parametrize("layered", [False, True], ids=["homogeneous", "layered"])
@pytest.mark.parametrize("atten", [False, True], ids=["lossless", "attenuating"])
def test_far_matches_float64(cpu_backend, rng, m, n, layered, atten):
    src, w, nrm, rad, pts, kappa0, g, c = far_case(rng, m, n, layered=layered, atten=atten)
    got = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts, kappa0, g, c))
    assert got.shape == (n,) and got.dtype == np.complex64
    err = rel_l2(got, rayleigh_far_ref(src, w, nrm, rad, pts, kappa0, g, c))
    assert err <= TOL, f"M={m} N={n}: relative L2 {err:.2e} > {TOL}"


def test_far_homogeneous_matches_piston_far_field(cpu_backend, rng):
    """Homogeneous kernel against the independent float64 bracket of field_array.piston_far_field."""
    src, w, nrm, rad, pts, kappa0, _, _ = far_case(rng, 40, 300)
    rad = np.full(40, A_EL)
    got = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts, kappa0))
    d = pts[:, None, :] - src[None]
    r = np.linalg.norm(d, axis=-1)
    sin_t = np.sqrt(np.clip(1 - ((d * nrm[None]).sum(-1) / r) ** 2, 0, None))
    ref = (w[None] * np.exp(-1j * kappa0 * r) / r * piston_far_field(A_EL, K, r, sin_t)).sum(axis=1)
    assert rel_l2(got, ref) <= TOL


def test_far_directivity_over_wide_angles(cpu_backend, rng):
    """One large element, points at every angle: the angular functions for z = k a sin t from 0
    to ~60 (both branches of the kernel's approximation), each point to 2e-5 of the on-axis
    amplitude."""
    a = 12e-3  # k a ~ 60
    th = np.linspace(0.0, 1.5, 400)
    ph = rng.uniform(0, 2 * np.pi, 400)
    r = rng.uniform(0.3, 0.5, 400)
    pts = r[:, None] * np.column_stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])
    for layered in (False, True):
        g = c = None
        src = np.zeros((1, 3))
        if layered:
            pts_l = pts + [0.0, 0.0, 0.05]
            g = np.array([K * 0.01])
            c = (K * 1.1 - 3j) * (pts_l[:, 2] - 0.01)
        else:
            pts_l = pts
        got = fus.asnumpy(rayleigh_far(src, [1.0], [[0, 0, 1.0]], [a], pts_l, K, g, c))
        ref = rayleigh_far_ref(src, [1.0], [[0, 0, 1.0]], [a], pts_l, K, g, c)
        # One source: |P| = |B| exp(-Im Phi) / r does not see the float32 error of the large phase
        # Re Phi (~1e-7 Re Phi, checked separately), so |P| tests the angular functions alone.
        onaxis = np.abs(rayleigh_far_ref(src, [1.0], [[0, 0, 1.0]], [a], pts_l, K, g, c, on_axis=True))
        err = np.max(np.abs(np.abs(got) - np.abs(ref)) / onaxis)
        assert err < 3e-6, f"layered={layered}: |P| error {err:.2e} of the on-axis amplitude"
        # the complex value also carries the float32 rounding of r in the phase: ~1 ulp of Re Phi
        phi_max = 1.1 * K * np.linalg.norm(pts_l, axis=1).max()
        assert np.max(np.abs(got - ref) / onaxis) < 1.5e-7 * phi_max


def test_piston_angular_functions_reference():
    """The float64 reference: series at small z, D(0) = 1, G0(0) = 1, G2(0) = 0.5, H(0) = 0."""
    d, g0, g2, h = piston_angular_functions(np.array([0.0, 5e-4, 2e-3, 3.8317059702]))
    np.testing.assert_allclose([d[0], g0[0], g2[0], h[0]], [1.0, 1.0, 0.5, 0.0], atol=1e-12)
    assert abs(d[3]) < 1e-9  # first zero of J1
    np.testing.assert_allclose(d[1], 1 - 5e-4**2 / 8, rtol=1e-12)


def test_far_leading_point_dimensions_and_empty(cpu_backend, rng):
    src, w, nrm, rad, pts, kappa0, _, _ = far_case(rng, 5, 12)
    flat = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts, kappa0))
    shaped = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts.reshape(3, 4, 3), kappa0))
    assert shaped.shape == (3, 4)
    np.testing.assert_array_equal(shaped.reshape(-1), flat)
    assert fus.asnumpy(rayleigh_far(src, w, nrm, rad, np.zeros((0, 3)), kappa0)).shape == (0,)


@pytest.mark.parametrize("layered", [False, True], ids=["homogeneous", "layered"])
def test_far_nan_propagates(cpu_backend, rng, layered):
    src, w, nrm, rad, pts, kappa0, g, c = far_case(rng, 9, 20, layered=layered)

    def run(**kw):
        args = dict(sources=src, weights=w, normals=nrm, radii=rad, points=pts, wavenumber=kappa0, g=g, c=c)
        args.update(kw)
        return fus.asnumpy(rayleigh_far(**args))

    p = pts.copy()
    p[5, 0] = np.nan
    got = run(points=p)
    assert np.isnan(got[5].real) and np.isnan(got[5].imag)
    assert np.all(np.isfinite(np.delete(got, 5)))
    s = src.copy()
    s[3, 1] = np.nan
    assert np.all(np.isnan(run(sources=s).real))
    nn = nrm.copy()
    nn[2] = np.nan
    assert np.all(np.isnan(run(normals=nn).real))
    ww = w.copy()
    ww[0] = complex(np.nan, 0)
    assert np.all(np.isnan(run(weights=ww).real))
    if layered:
        gg = g.copy()
        gg[1] = np.nan
        assert np.all(np.isnan(run(g=gg).real))
        cc = c.copy()
        cc[7] = np.nan
        got = run(c=cc)
        assert np.isnan(got[7].real) and np.all(np.isfinite(np.delete(got, 7)))


@pytest.mark.parametrize("layered", [False, True], ids=["homogeneous", "layered"])
def test_far_outside_model_gives_nan(cpu_backend, rng, layered):
    """r == 0 (and, layered, dz <= 0) is outside the model: NaN, never inf, in that point only."""
    src, w, nrm, rad, pts, kappa0, g, c = far_case(rng, 9, 6, layered=layered)
    pts[2] = src[4]
    if layered:
        pts[4] = src[1] + [0.003, 0.0, -0.001]
    got = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts, kappa0, g, c))
    bad = [2, 4] if layered else [2]
    assert np.all(np.isnan(got[bad].real)) and np.all(np.isnan(got[bad].imag))
    assert np.all(np.isfinite(np.delete(got, bad)))


FAR_BAD = [
    ("sources", dict(sources=np.zeros((4, 2))), "last axis"),
    ("sources", dict(sources=np.zeros((0, 3)), weights=np.zeros(0), normals=np.zeros((0, 3)), radii=np.zeros(0)), "at least 1"),
    ("sources", dict(sources=np.zeros((4, 3), dtype=complex)), "real numeric"),
    ("points", dict(points=np.zeros((5, 4))), "last axis"),
    ("weights", dict(weights=np.ones(5)), "one entry per source"),
    ("normals", dict(normals=np.ones((4, 3))), "unit"),
    ("normals", dict(normals=np.ones((3, 3)) / np.sqrt(3)), "one entry per source"),
    ("normals", dict(normals=np.ones((4, 2))), "last axis"),
    ("radii", dict(radii=np.zeros(4)), "> 0"),
    ("radii", dict(radii=np.full(4, np.inf)), "finite"),
    ("radii", dict(radii=np.full(4, np.nan)), "finite"),
    ("radii", dict(radii=np.ones(3)), "one entry per source"),
    ("wavenumber", dict(wavenumber=0.0), "k0 must be > 0"),
    ("wavenumber", dict(wavenumber=K + 1j), "<= 0"),
    ("wavenumber", dict(wavenumber=np.nan), "finite"),
    ("g", dict(c=np.ones(5)), "together"),
    ("c", dict(g=np.ones(4)), "together"),
    ("g", dict(g=np.ones(5), c=np.ones(5)), "shape (4,)"),
    ("g", dict(g=np.full(4, 1 + 1j), c=np.ones(5)), "<= 0"),
    ("c", dict(g=np.ones(4), c=np.ones(4)), "shape (5,)"),
    ("c", dict(g=np.ones(4), c=np.full(5, complex(1, -np.inf))), "inf"),
]


@pytest.mark.parametrize("name,override,needle", FAR_BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(FAR_BAD)])
def test_far_bad_input_names_parameter(cpu_backend, name, override, needle):
    args = dict(
        sources=np.full((4, 3), -0.1), weights=np.ones(4), normals=np.tile([0.0, 0.0, 1.0], (4, 1)),
        radii=np.full(4, A_EL), points=np.ones((5, 3)), wavenumber=K,
    )
    args.update(override)
    with pytest.raises(InvalidParameterError) as info:
        rayleigh_far(**args)
    assert info.value.name == name
    assert needle in str(info.value), str(info.value)


@pytest.mark.cuda
@pytest.mark.parametrize("layered", [False, True], ids=["homogeneous", "layered"])
def test_far_gpu_matches_cpu(cuda_backend, rng, layered):
    """The GPU build of rayleigh_far against the CPU build on the same inputs, and float64."""
    src, w, nrm, rad, pts, kappa0, g, c = far_case(rng, 300, 5003, layered=layered)
    gpu = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts, kappa0, g, c))
    with fus.use("cpu"):
        cpu = fus.asnumpy(rayleigh_far(src, w, nrm, rad, pts, kappa0, g, c))
    ref = rayleigh_far_ref(src, w, nrm, rad, pts, kappa0, g, c)
    assert rel_l2(gpu, ref) <= TOL
    assert rel_l2(gpu, cpu) <= TOL
    p = pts[:300].copy()
    p[17] = src[0]
    out = fus.asnumpy(rayleigh_far(src, w, nrm, rad, p, kappa0, g, None if c is None else c[:300]))
    assert np.isnan(out[17].real) and np.all(np.isfinite(np.delete(out, 17)))
