"""Acoustic fields against analytic solutions and float64 references written here.

Every assertion prints the measured error (``-s`` shows them); the README lists the figures.
References: O'Neil, J. Acoust. Soc. Am. 21, 516 (1949) (focused bowl, on axis and focal plane);
the exact on-axis field of a baffled piston (Kinsler et al., Fundamentals of Acoustics, eq. 7.4.6);
the far-field piston directivity 2 J1(ka sin t) / (ka sin t).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.special import j1

import fus
from fus.errors import InvalidParameterError
from fus.physics.drive import acoustic_power, ebbini_cain, focus_phases, scale_to_power
from fus.physics.field import (
    DEFAULT_FAR_FIELD_TOLERANCE,
    DEFAULT_POINTS_PER_WAVELENGTH,
    far_field_distance,
    focus_phases_in_medium,
    heat_source,
    heat_source_labels,
    piston_far_field,
    pressure,
    transfer_matrix,
)
from fus.physics.grid import Grid
from fus.physics.media import HomogeneousMedium, LayeredMedium, soft_tissue, water
from fus.physics.tissues import get_tissue
from fus.physics.transducer import bowl, cap256, discretise, piston, spherical_cap_array

LOSSLESS = HomogeneousMedium(dataclasses.replace(get_tissue("water"), alpha0=0.0))
R_BOWL, AP_BOWL, F_BOWL = 0.140, 0.064, 1.2e6


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, dtype=np.complex128), np.asarray(b, dtype=np.complex128)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def report(name: str, value: float, limit: float) -> None:
    print(f"{name}: {value:.3g} (limit {limit:.3g})")
    assert value <= limit, f"{name} = {value:.4g} > {limit:.4g}"


def oneil_axis(medium, u0, z):
    """O'Neil's exact on-axis pressure of a bowl, z from the apex [m] (complex, with attenuation).

    P = rho c u0 (k / kappa) (exp(-i kappa z) - exp(-i kappa r_e)) / (1 - z / R),
    r_e = sqrt((z - h)^2 + a^2): the Rayleigh integral over the spherical cap done in closed form
    (distance to an axis point is a function of the polar angle alone).
    """
    a = AP_BOWL / 2
    h = R_BOWL - math.sqrt(R_BOWL**2 - a * a)
    kap = medium.kappa(F_BOWL)
    k = kap.real
    re = np.sqrt((z - h) ** 2 + a * a)
    return medium.density * medium.sound_speed * u0 * (k / kap) * (np.exp(-1j * kap * z) - np.exp(-1j * kap * re)) / (1 - z / R_BOWL)


def axis_points(z_from_apex):
    return np.stack([0 * z_from_apex, 0 * z_from_apex, z_from_apex - R_BOWL], axis=1)


# --------------------------------------------------------------------------------- grid
def test_grid_geometry_points_affine_bounds():
    g = Grid.centred((4, 5, 6), (1e-3, 2e-3, 0.5e-3), (0.01, 0, -0.02))
    np.testing.assert_allclose(g.centre, [0.01, 0, -0.02], atol=1e-15)
    pts = g.points(xp=np, dtype=np.float64)
    assert pts.shape == (120, 3)
    ijk = np.c_[g.indices(), np.ones(120)]
    np.testing.assert_allclose((g.affine() @ ijk.T).T[:, :3] * 1e-3, pts, atol=1e-12)
    t = np.eye(4)
    t[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    t[:3, 3] = [0.1, 0.2, 0.3]
    world = (g.affine(t) @ ijk.T).T[:, :3] * 1e-3
    np.testing.assert_allclose(world, pts @ t[:3, :3].T + t[:3, 3], atol=1e-12)
    for s, e in [(0, 120), (3, 7), (5, 40), (29, 31), (30, 61), (119, 120)]:
        lo, hi = g.bounds(s, e)
        assert np.all(pts[s:e] >= lo - 1e-15) and np.all(pts[s:e] <= hi + 1e-15)
    chunks = list(g.chunks(50))
    assert chunks == [(0, 50), (50, 100), (100, 120)]
    np.testing.assert_allclose(np.concatenate([g.points(s, e) for s, e in chunks]), pts, atol=1e-8)
    assert Grid.from_origin((2, 2, 2), 1e-3, (0, 0, 0.01)).points()[-1].tolist() == pytest.approx([1e-3, 1e-3, 0.011])


@pytest.mark.parametrize(
    "shape, spacing, match",
    [((0, 4, 4), 1e-3, "shape"), ((4, -1, 4), 1e-3, "shape"), ((4, 4), 1e-3, "shape"), ((4, 4, 4.5), 1e-3, "shape"),
     ((4, 4, 4), 0.0, "spacing"), ((4, 4, 4), (1e-3, -1e-3, 1e-3), "spacing"), ((4, 4, 4), math.nan, "spacing")],
)
def test_grid_rejects_bad_sizes(shape, spacing, match):
    with pytest.raises(InvalidParameterError, match=match):
        Grid.centred(shape, spacing)


# --------------------------------------------------------------------------------- O'Neil
def test_oneil_on_axis_bowl_and_focal_pressure():
    t = bowl(R_BOWL, AP_BOWL, F_BOWL)
    u0 = 0.05
    med = water()  # attenuating bath: the reference carries kappa = k - i alpha
    z = np.linspace(0.5 * R_BOWL, 1.5 * R_BOWL, 400)  # even count: the focus itself is not sampled
    p = fus.asnumpy(pressure(t, [u0], axis_points(z), med))
    report("O'Neil on-axis rel L2 (complex, 0.5R..1.5R)", rel_l2(p, oneil_axis(med, u0, z)), 1e-3)
    a = AP_BOWL / 2
    h = R_BOWL - math.sqrt(R_BOWL**2 - a * a)
    k = LOSSLESS.wavenumber(F_BOWL)
    pf = complex(fus.asnumpy(pressure(t, [u0], np.zeros((1, 3)), LOSSLESS))[0])
    p0 = LOSSLESS.density * LOSSLESS.sound_speed * u0
    report("focal |p| / (rho c u0 k h) - 1 (lossless)", abs(abs(pf) / (p0 * k * h) - 1), 5e-3)
    pa = complex(fus.asnumpy(pressure(t, [u0], np.zeros((1, 3)), med))[0])
    expect = med.density * med.sound_speed * u0 * med.wavenumber(F_BOWL) * h * math.exp(-med.attenuation(F_BOWL) * R_BOWL)
    report("focal |p| / (rho c u0 k h exp(-alpha R)) - 1 (water)", abs(abs(pa) / expect - 1), 5e-3)


def test_oneil_focal_plane_profile():
    t = bowl(R_BOWL, AP_BOWL, F_BOWL)
    u0 = 0.05
    a = AP_BOWL / 2
    h = R_BOWL - math.sqrt(R_BOWL**2 - a * a)
    k = LOSSLESS.wavenumber(F_BOWL)
    x_arg = np.linspace(1e-6, 7.0156, 160)  # main lobe + first side lobe (second zero of J1)
    r = x_arg * R_BOWL / (k * a)
    p = fus.asnumpy(pressure(t, [u0], np.stack([r, 0 * r, 0 * r], axis=1), LOSSLESS))
    ref = LOSSLESS.density * LOSSLESS.sound_speed * u0 * k * h * np.abs(2 * j1(x_arg) / x_arg)
    report("O'Neil focal-plane |p| rel L2", rel_l2(np.abs(p), ref), 5e-3)


def test_discretisation_convergence_picks_the_default():
    """Bowl on-axis error falls as patches shrink; the default N is the smallest that meets the
    1e-3 O'Neil tolerance."""
    t = bowl(R_BOWL, AP_BOWL, F_BOWL)
    z = np.linspace(0.5 * R_BOWL, 1.5 * R_BOWL, 200)
    ref = oneil_axis(LOSSLESS, 1.0, z)
    errs = {n: rel_l2(fus.asnumpy(pressure(t, [1.0], axis_points(z), LOSSLESS, points_per_wavelength=n)), ref) for n in (1.5, 2, 3, 6)}
    print("bowl on-axis rel L2 by points per wavelength:", {n: f"{e:.2e}" for n, e in errs.items()})
    ns = sorted(errs)
    assert all(errs[a] > errs[b] for a, b in zip(ns[:-1], ns[1:]))  # monotone convergence
    assert errs[6] < errs[3] / 3  # ~ second order
    assert min(n for n in ns if errs[n] <= 1e-3) == DEFAULT_POINTS_PER_WAVELENGTH


# --------------------------------------------------------------------------------- piston
def test_piston_exact_on_axis():
    f, a = 1e6, 5e-3
    t = piston(a, f)
    c, rho = LOSSLESS.sound_speed, LOSSLESS.density
    k = 2 * math.pi * f / c
    lam = c / f

    def exact(z):  # |p| = 2 p0 |sin(k (sqrt(z^2 + a^2) - z) / 2)|, here in complex form
        return rho * c * (np.exp(-1j * k * z) - np.exp(-1j * k * np.sqrt(z * z + a * a)))

    z_far = np.linspace(a * a / lam, 20 * a, 200)  # beyond the last axial maximum
    p = fus.asnumpy(pressure(t, [1.0], np.stack([0 * z_far, 0 * z_far, z_far], 1), LOSSLESS))
    report("piston on-axis rel L2, z = a^2/lambda..20a", rel_l2(p, exact(z_far)), 5e-3)
    mag = np.abs(p)
    report("piston |p| vs 2 p0 |sin(k(sqrt(z^2+a^2)-z)/2)|", rel_l2(mag, 2 * rho * c * np.abs(np.sin(k * (np.sqrt(z_far**2 + a * a) - z_far) / 2))), 5e-3)
    # the near field converges more slowly (phase changes by up to 2 pi / N per ring near the rim)
    z_near = np.linspace(a, 20 * a, 300)
    pts = np.stack([0 * z_near, 0 * z_near, z_near], 1)
    e3 = rel_l2(fus.asnumpy(pressure(t, [1.0], pts, LOSSLESS, points_per_wavelength=3)), exact(z_near))
    e6 = rel_l2(fus.asnumpy(pressure(t, [1.0], pts, LOSSLESS, points_per_wavelength=6)), exact(z_near))
    print(f"piston near field z = a..20a rel L2: N=3 {e3:.2e}, N=6 {e6:.2e}")
    report("piston near-field rel L2 at N=3", e3, 1.5e-2)
    report("piston near-field rel L2 at N=6", e6, 4e-3)


def test_piston_far_field_directivity_both_paths():
    f, a, r = 1e6, 5e-3, 1.0
    t = piston(a, f)
    k = LOSSLESS.wavenumber(f)
    th = np.radians(np.linspace(0, 40, 121))
    pts = np.stack([r * np.sin(th), 0 * th, r * np.cos(th)], 1)
    x = np.maximum(k * a * np.sin(th), 1e-12)
    d = np.abs(2 * j1(x) / x)
    on_axis = LOSSLESS.density * LOSSLESS.sound_speed * k * a * a / (2 * r)
    pf, info = pressure(t, [1.0], pts, LOSSLESS, chunk=1, return_info=True)
    assert info["pairs_far_field"] == len(th) and info["pairs_patch"] == 0  # far-field path used
    pn, info = pressure(t, [1.0], pts, LOSSLESS, far_field=False, return_info=True)
    assert info["pairs_far_field"] == 0
    report("far-field path: |p| / p_axis vs 2 J1(x)/x rel L2", rel_l2(np.abs(fus.asnumpy(pf)) / on_axis, d), 2e-3)
    report("patch path: |p| / p_axis vs 2 J1(x)/x rel L2", rel_l2(np.abs(fus.asnumpy(pn)) / on_axis, d), 5e-3)
    report("on-axis |p| vs rho c u k a^2 / (2 r)", abs(abs(complex(fus.asnumpy(pf)[0])) / on_axis - 1), 1e-3)


# --------------------------------------------------------------------------------- far field
@pytest.mark.parametrize("ka", [4.0, 16.8, 32.0])
@pytest.mark.parametrize("tol", [DEFAULT_FAR_FIELD_TOLERANCE, 2e-2])
def test_far_field_element_matches_patches_at_switch_distance(ka, tol):
    f = 1.2e6
    k = LOSSLESS.wavenumber(f)
    a = ka / k
    t = piston(a, f)
    r = far_field_distance(a, k, tol) * (1 + 1e-9)  # just beyond the switch distance
    th = np.radians(np.linspace(0, 85, 35))
    pts = np.stack([r * np.sin(th), 0 * th, r * np.cos(th)], 1)
    pf, info = pressure(t, [1.0], pts, LOSSLESS, far_field_tolerance=tol, chunk=1, return_info=True)
    assert info["pairs_patch"] == 0
    ref = fus.asnumpy(pressure(t, [1.0], pts, LOSSLESS, far_field=False, points_per_wavelength=20))
    err = float(np.max(np.abs(fus.asnumpy(pf) - ref)) / abs(ref[0]))
    report(f"far-field vs patches, ka={ka}, r={r * 1e3:.1f} mm, max err / |p_axis|", err, tol)
    # the float64 form of the model agrees with the float32 rayleigh_far kernel
    model = 1j * f * LOSSLESS.density * math.pi * a * a * np.exp(-1j * k * r) / r * piston_far_field(a, k, r, np.sin(th))
    # float32: phase k r carries ~1e-7 k r rad, the angular series ~1e-6
    report("far-field float32 vs float64 model, max err / |p_axis|", float(np.max(np.abs(fus.asnumpy(pf) - model)) / abs(model[0])), 5e-5 + 3e-7 * k * r)


def test_far_field_and_patch_paths_agree_for_cap256():
    t = cap256()
    med = water()
    u = scale_to_power(t, focus_phases(t, (0, 0, 0), med.sound_speed), 50.0, med.density, med.sound_speed)
    g = Grid.centred((7, 7, 7), 1.5e-3)
    pf, info = pressure(t, u, g, med, return_info=True)
    assert info["pairs_patch"] == 0 and info["pairs_far_field"] == g.size * 256
    pn = pressure(t, u, g, med, far_field=False)
    report("cap256 focal region: far-field vs patches rel L2", rel_l2(fus.asnumpy(pf), fus.asnumpy(pn)), 2e-3)
    # pre-focal plane 114-133 mm from the elements (x = k a^2 / 4r up to 0.14, oblique rays):
    # the far-field error is of the order of its tolerance; the reference uses N = 6 patches
    # (N = 3 patches are themselves ~1e-3 off at these angles)
    plane = Grid.centred((9, 9, 1), 3e-3, (0, 0, -0.02))
    ref = fus.asnumpy(pressure(t, u, plane, med, far_field=False, points_per_wavelength=6))
    pf, info = pressure(t, u, plane, med, return_info=True)
    assert info["pairs_patch"] == 0
    report("cap256 pre-focal plane: far-field vs patches (N=6) rel L2", rel_l2(fus.asnumpy(pf), ref), DEFAULT_FAR_FIELD_TOLERANCE)
    report("cap256 pre-focal plane: patches N=3 vs N=6 rel L2", rel_l2(fus.asnumpy(pressure(t, u, plane, med, far_field=False)), ref), 2e-3)


# --------------------------------------------------------------------------------- arrays
def test_array_focus_matches_closed_form_with_attenuation():
    t = cap256()
    med = soft_tissue()  # 0.5 dB/cm/MHz: exp(-alpha R) = 0.38 at 140 mm
    f = t.frequency
    u = scale_to_power(t, focus_phases(t, (0, 0, 0), med.sound_speed), 10.0, med.density, med.sound_speed)
    kap = med.kappa(f)
    k, alpha = kap.real, -kap.imag
    rr = np.linalg.norm(t.centres, axis=1)
    area, a = t.element_areas, t.diameters / 2
    rho_c = med.density * med.sound_speed
    closed = 1j * k * rho_c / (2 * math.pi) * np.sum(u * area * np.exp(-alpha * rr) * np.exp(-1j * k * rr) / rr)
    # each flat element has the focus on its axis: its exact on-axis field (kappa complex)
    exact = np.sum(rho_c * u * (k / kap) * (np.exp(-1j * kap * rr) - np.exp(-1j * kap * np.sqrt(rr**2 + a * a))))
    for ff in (True, False):
        p = complex(fus.asnumpy(pressure(t, u, np.zeros((1, 3)), med, far_field=ff))[0])
        path = "far-field" if ff else "patches"
        report(f"cap256 focus ({path}) |p| vs closed form i k rho c/(2 pi) sum u A exp(-alpha R)/R", abs(abs(p) / abs(closed) - 1), 5e-3)
        report(f"cap256 focus ({path}) vs exact on-axis disc sum (complex)", abs(p - exact) / abs(exact), 1e-3)


def test_transfer_matrix_is_the_field_model():
    t = cap256()
    rng = np.random.default_rng(7)
    pts = np.c_[rng.uniform(-4e-3, 4e-3, (6, 2)), rng.uniform(-30e-3, 5e-3, 6)]
    u = rng.normal(size=256) + 1j * rng.normal(size=256)
    for ff in (True, False):
        h = transfer_matrix(t, pts, "water", far_field=ff)
        p = fus.asnumpy(pressure(t, u, pts, "water", far_field=ff))
        report(f"H @ u vs pressure (far_field={ff})", float(np.max(np.abs(h @ u - p)) / np.max(np.abs(p))), 5e-5)


def test_ebbini_cain_control_points_through_the_field():
    t = cap256()
    med = water()
    cp = np.array([[3e-3, 0, 0], [-3e-3, 0, 0], [0, 2e-3, 6e-3]])
    want = np.array([1.0e6, 0.8e6 * np.exp(1j), 0.6e6 * np.exp(-2j)])
    h = transfer_matrix(t, cp, med)
    u = ebbini_cain(t, cp, want, transfer=h)
    got = fus.asnumpy(pressure(t, u, cp, med))
    report("Ebbini-Cain with the field transfer matrix: max |p - p_req| / |p_req|", float(np.max(np.abs(got / want - 1))), 1e-2)
    # the point-source synthesis of fus.physics.drive: magnitudes hold within 1 %; all control
    # points share the element's on-axis Fresnel phase -k a^2 / (4 R) ~ -0.1 rad
    u_ps = ebbini_cain(t, cp, want, med.sound_speed, med.density, element_directivity=True)
    ratio = fus.asnumpy(pressure(t, u_ps, cp, med)) / want
    report("Ebbini-Cain point-source model: max ||p|/|p_req| - 1|", float(np.max(np.abs(np.abs(ratio) - 1))), 1e-2)
    rel_phase = np.angle(ratio * np.conj(ratio[0]))
    report("Ebbini-Cain point-source model: relative phase error [rad]", float(np.max(np.abs(rel_phase))), 1e-2)
    with pytest.raises(InvalidParameterError, match="transfer"):
        ebbini_cain(t, cp, want, transfer=h[:2])
    with pytest.raises(InvalidParameterError, match="transfer"):
        ebbini_cain(t, cp, want, transfer=np.full_like(h, np.nan))


def test_power_balance_over_a_plane():
    """Normal intensity Re{p v_z*}/2 over a plane 30 mm in front of the bowl = radiated power."""
    t = bowl(R_BOWL, AP_BOWL, F_BOWL)
    med = LOSSLESS
    u = np.array([0.05])
    lam = med.sound_speed / F_BOWL
    k = 2 * math.pi / lam
    dx, n = lam / 2, 129
    delta = lam / 40
    planes = [fus.asnumpy(pressure(t, u, Grid.centred((n, n, 1), dx, (0, 0, -R_BOWL + 0.03 + s)), med))[:, :, 0] for s in (-delta, 0.0, delta)]
    dpdz = (planes[2] - planes[0]) / (2 * delta) / (math.sin(k * delta) / (k * delta))  # central difference, sinc-corrected
    vz = 1j * dpdz / (2 * math.pi * F_BOWL * med.density)  # i w rho v = -grad p, exp(+i w t)
    power = float(np.sum(0.5 * np.real(planes[1] * np.conj(vz))) * dx * dx)
    radiated = acoustic_power(t, u, med.density, med.sound_speed)
    report("power balance |P_plane / P_radiated - 1|", abs(power / radiated - 1), 2e-2)


# --------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("tissue", ["muscle", "cortical_bone"])
def test_layered_one_interface_transmission_attenuation_and_phase(tissue):
    """A point-like source in water, one interface: p_layered / p_water = T exp(-i (kappa1 - kappa0) d)."""
    f = 1e6
    src = piston(0.15e-3, f)  # ka = 0.6: a point source
    z_i = 0.02
    med = LayeredMedium([("water", None), (tissue, None)], z_i)
    w, m1 = med.layers
    z = np.linspace(z_i + 1e-4, 0.05, 120)
    pts = np.stack([0 * z, 0 * z, z], 1)
    ratio = fus.asnumpy(pressure(src, [1.0], pts, med)) / fus.asnumpy(pressure(src, [1.0], pts, w))
    t_coef = 2 * m1.impedance / (w.impedance + m1.impedance)
    d = z - z_i
    expect_mag = t_coef * np.exp(-(m1.attenuation(f) - w.attenuation(f)) * d)
    report(f"water|{tissue}: |ratio| vs T exp(-(a1-a0) d), max rel", float(np.max(np.abs(np.abs(ratio) / expect_mag - 1))), 1e-4)
    phase = np.unwrap(np.angle(ratio))
    slope = np.polyfit(d, phase, 1)[0]  # = -(k1 - k0)
    c1 = 2 * math.pi * f / (w.wavenumber(f) - slope)
    report(f"water|{tissue}: sound speed from the phase slope, rel err", abs(c1 / m1.sound_speed - 1), 1e-4)
    report(
        f"water|{tissue}: phase vs -(k1 - k0) d, max [rad]",
        float(np.max(np.abs(phase - phase[0] + (m1.wavenumber(f) - w.wavenumber(f)) * (d - d[0])))),
        2e-3,
    )


def _layered_reference(t, u, pts, med, f):
    """float64 straight rays: explicit segment / plane intersections per patch-point pair."""
    pat = discretise(t, DEFAULT_POINTS_PER_WAVELENGTH, med.layers[0].sound_speed)
    w = 1j * f * med.layers[0].density * pat.areas * u[pat.element_index]
    zi = med.interfaces
    edges = np.concatenate([[-np.inf], zi, [np.inf]])
    kap = med.kappas(f)
    imp = med.impedances()
    out = np.zeros(len(pts), dtype=np.complex128)
    for i, x in enumerate(pts):
        dvec = x[None, :] - pat.centres
        r = np.linalg.norm(dvec, axis=1)
        phase = np.zeros(len(r), dtype=np.complex128)
        for layer in range(len(kap)):
            s0 = np.clip((edges[layer] - pat.centres[:, 2]) / dvec[:, 2], 0, 1)
            s1 = np.clip((edges[layer + 1] - pat.centres[:, 2]) / dvec[:, 2], 0, 1)
            phase += kap[layer] * r * np.abs(s1 - s0)
        j = int(np.searchsorted(zi, x[2], side="right"))
        trans = np.prod([2 * imp[q + 1] / (imp[q] + imp[q + 1]) for q in range(j)])
        out[i] = np.sum(w * trans * np.exp(-1j * phase) / r)
    return out


def test_layered_body_wall_vs_float64_rays_and_far_field():
    f = 1e6
    t = spherical_cap_array(16, 0.03, 0.03, 4e-3, f)
    med = LayeredMedium([("water", None), ("skin", 2e-3), ("fat", 5e-3), ("cortical_bone", None)], -0.012)
    rng = np.random.default_rng(3)
    pts = np.c_[rng.uniform(-5e-3, 5e-3, (60, 2)), rng.uniform(-0.02, 0.005, 60)]
    u = 0.1 * np.exp(1j * rng.uniform(0, 2 * np.pi, 16))
    p = fus.asnumpy(pressure(t, u, pts, med, far_field=False))
    layer = np.asarray(med.layer_index(pts[:, 2]))
    assert set(layer.tolist()) == {0, 1, 2, 3}
    report("layered (4 layers) vs float64 straight-ray reference, rel L2", rel_l2(p, _layered_reference(t, u, pts, med, f)), 1e-4)
    shallow = layer == 0
    report("layered, points in the coupling layer vs homogeneous water", rel_l2(p[shallow], fus.asnumpy(pressure(t, u, pts[shallow], "water", far_field=False))), 1e-6)
    # far-field element sources through soft-tissue layers vs patches (N = 8), beyond the switch
    # distance; with 55 mm of cortical bone in the path the two differ by ~6e-3 (the effective
    # wavenumber then varies strongly across an element's rays)
    soft = LayeredMedium([("water", None), ("skin", 2e-3), ("fat", 5e-3), ("muscle", None)], -0.012)
    r_sw = far_field_distance(2e-3, soft.layers[0].wavenumber(f))
    deep = Grid.centred((5, 5, 5), 1e-3, (0, 0, 0.05))
    assert np.min(np.linalg.norm(t.centres - [0, 0, 0.048], axis=1)) > r_sw
    pf, info = pressure(t, u, deep, soft, return_info=True)
    assert info["pairs_patch"] == 0
    ref = fus.asnumpy(pressure(t, u, deep, soft, far_field=False, points_per_wavelength=8))
    report("layered far-field vs layered patches (N=8) rel L2", rel_l2(fus.asnumpy(pf), ref), DEFAULT_FAR_FIELD_TOLERANCE)


def test_focusing_through_layers_aligns_element_phases():
    t = cap256()
    med = LayeredMedium([("water", None), ("skin", 2e-3), ("fat", 10e-3), ("muscle", None)], -0.04)
    target = np.zeros(3)
    w = focus_phases_in_medium(t, target, med)
    h = transfer_matrix(t, target[None, :], med)[0]
    contrib = h * w
    spread = np.angle(contrib * np.conj(contrib.sum()))
    report("layered focusing: spread of element phases at the target [rad]", float(np.max(np.abs(spread))), 1e-3)
    # phases computed for water alone arrive spread by the layers' sound speeds
    w_water = focus_phases(t, target, med.layers[0].sound_speed)
    spread_water = np.angle(h * w_water * np.conj(np.sum(h * w_water)))
    print(f"water phases through the layers: spread {np.ptp(spread_water):.2f} rad, focal gain "
          f"{abs(np.sum(h * w_water)) / abs(contrib.sum()):.3f} of the layered phases")
    assert np.ptp(spread_water) > 0.5 and abs(np.sum(h * w_water)) < abs(contrib.sum())


# --------------------------------------------------------------------------------- heat
def test_heat_source_homogeneous_layered_and_labels():
    f = 1.2e6
    p = np.array([1e6, 2e6 + 1e6j, 0.0], dtype=np.complex64)
    st = soft_tissue()
    q = heat_source(p, st, frequency=f)
    alpha = 0.5 * 100 * math.log(10) / 20 * 1.2  # 0.5 dB/cm/MHz at 1.2 MHz [Np/m]
    np.testing.assert_allclose(q, alpha * np.abs(p) ** 2 / (1050.0 * 1540.0), rtol=1e-5)
    # Q = 2 alpha I with the plane-wave intensity I = |p|^2 / (2 rho c)
    np.testing.assert_allclose(q, 2 * alpha * np.abs(p) ** 2 / (2 * st.density * st.sound_speed), rtol=1e-5)
    med = LayeredMedium([("water", None), ("fat", 5e-3), ("cortical_bone", None)], 0.0)
    pts = np.array([[0, 0, -1e-3], [0, 0, 1e-3], [0, 0, 6e-3]])
    ql = heat_source(p, med, pts, frequency=f)
    for i, m in enumerate(med.layers):
        assert ql[i] == pytest.approx(m.absorption(f) * abs(p[i]) ** 2 / m.impedance, rel=1e-5)
    g = Grid.centred((1, 1, 3), (1e-3, 1e-3, 6e-3), (0, 0, 2e-3))  # z = -4, 2, 8 mm
    qg = heat_source(p.reshape(1, 1, 3), med, g, frequency=f)
    assert qg[0, 0, 2] == pytest.approx(med.layers[2].absorption(f) * abs(p[2]) ** 2 / med.layers[2].impedance, rel=1e-5)
    assert qg[0, 0, 1] == pytest.approx(med.layers[1].absorption(f) * abs(p[1]) ** 2 / med.layers[1].impedance, rel=1e-5)
    labels = np.array([get_tissue("skin").label, get_tissue("cortical_bone").label, 0])
    qlab = heat_source_labels(p, labels, frequency=f)
    bone = HomogeneousMedium("cortical_bone")
    assert qlab[1] == pytest.approx(bone.absorption(f) * abs(p[1]) ** 2 / bone.impedance, rel=1e-5)
    with pytest.raises(InvalidParameterError, match="labels"):
        heat_source_labels(p, np.array([0, 1, 99]), frequency=f)
    with pytest.raises(InvalidParameterError, match="where"):
        heat_source(p, med, frequency=f)


# --------------------------------------------------------------------------------- bad input
def test_bad_inputs_are_named():
    t = cap256()
    u = focus_phases(t, (0, 0, 0))
    with pytest.raises(InvalidParameterError, match="target") as err:
        focus_phases_in_medium(t, (0, 0, -0.2), "water")  # focus behind the transducer
    assert "behind" in str(err.value)
    with pytest.raises(InvalidParameterError, match="points") as err:
        pressure(t, u, np.array([[0, 0, -0.15]]))
    assert "behind" in str(err.value)
    with pytest.raises(InvalidParameterError, match="grid"):
        pressure(t, u, Grid.centred((8, 8, 8), 1e-3, (0, 0, -0.14)))
    with pytest.raises(InvalidParameterError, match="drive"):
        pressure(t, u[:10], np.zeros((1, 3)))
    with pytest.raises(InvalidParameterError, match="far_field_tolerance"):
        pressure(t, u, np.zeros((1, 3)), far_field_tolerance=0.0)
    with pytest.raises(InvalidParameterError, match="points_per_wavelength"):
        pressure(t, u, np.zeros((1, 3)), points_per_wavelength=-3)
    with pytest.raises(InvalidParameterError, match="medium") as err:  # interface cuts the transducer
        pressure(t, u, np.zeros((1, 3)), LayeredMedium([("water", None), ("fat", None)], -0.13))
    assert "first interface" in str(err.value)
    with pytest.raises(InvalidParameterError, match="tissue"):
        pressure(t, u, np.zeros((1, 3)), "adamantium")


def test_grid_too_large_for_memory_says_how_large_and_what_to_change():
    t = cap256()
    g = Grid.centred((20000, 20000, 20000), 1e-5)
    with pytest.raises(InvalidParameterError, match="grid") as err:
        pressure(t, focus_phases(t, (0, 0, 0)), g)
    msg = str(err.value)
    assert "20000x20000x20000" in msg and "GiB" in msg and "coarser spacing" in msg
    print(msg)


# --------------------------------------------------------------------------------- CLI
def test_cli_field_writes_nifti_and_sidecar(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    from fus.cli.main import main

    toml = tmp_path / "wall.toml"
    toml.write_text('first_interface_mm = -30\n[[layers]]\ntissue = "water"\n[[layers]]\ntissue = "skin"\n'
                    'thickness_mm = 2\n[[layers]]\ntissue = "muscle"\n')
    out = tmp_path / "res" / "bowl.nii.gz"
    rc = main(["field", "--transducer", "bowl", "--roc", "140", "--aperture", "64", "--frequency", "1.2",
               "--power", "20", "--grid", "6x5x4", "--spacing", "1,1,2", "--center", "0,0,-1",
               "--medium", str(toml), "--phase", "--heat", "-o", str(out)])
    assert rc == 0
    img = nib.load(str(out))
    assert img.shape == (6, 5, 4)
    np.testing.assert_allclose(img.affine[:3, :3], np.diag([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(img.affine[:3, 3], [-2.5, -2.0, -4.0])
    side = json.loads((tmp_path / "res" / "bowl.json").read_text())
    assert side["frequency_MHz"] == pytest.approx(1.2) and side["acoustic_power_W"] == pytest.approx(20.0)
    assert side["medium"]["layers"][1]["tissue"] == "skin" and side["transducer"]["name"] == "bowl"
    assert {"backend", "run_time_s", "surface_velocity_m_s", "peak_pressure_Pa", "grid"} <= set(side)
    assert set(side["files"]) == {"magnitude", "phase", "heat"}
    mag = np.asarray(img.dataobj)
    assert side["peak_pressure_Pa"] == pytest.approx(float(mag.max()), rel=1e-6)
    heat = np.asarray(nib.load(str(tmp_path / "res" / "bowl_heat.nii.gz")).dataobj)
    muscle = HomogeneousMedium("muscle")
    assert heat[3, 2, 2] == pytest.approx(muscle.absorption(1.2e6) * mag[3, 2, 2] ** 2 / muscle.impedance, rel=1e-4)



def test_field_pipeline_from_python_matches_the_cli(tmp_path):
    """The pipeline the CLI calls, called in SI units by a library user: the same volume, no CLI
    arguments in the sidecar, and the same refusals by parameter name."""
    nib = pytest.importorskip("nibabel")
    from fus.cli.main import main
    from fus.pipelines.field import compute_field, run_field

    t = bowl(0.14, 0.064, 1.2e6)
    res = run_field(tmp_path / "lib.nii", t, (6, 5, 4), (1e-3, 1e-3, 2e-3), centre=(0, 0, -1e-3), power=20.0,
                    heat=True, progress=False)
    assert main(["field", "--transducer", "bowl", "--grid", "6x5x4", "--spacing", "1,1,2", "--center", "0,0,-1",
                 "--power", "20", "--heat", "--no-progress", "-o", str(tmp_path / "cli.nii")]) == 0
    for kind in ("", "_heat"):
        a = np.asarray(nib.load(str(tmp_path / f"lib{kind}.nii")).dataobj)
        b = np.asarray(nib.load(str(tmp_path / f"cli{kind}.nii")).dataobj)
        np.testing.assert_array_equal(a, b)
    side = json.loads((tmp_path / "lib.json").read_text())
    assert "arguments" not in side and side["files"] == {"magnitude": "lib.nii", "heat": "lib_heat.nii"}
    assert res.pressure is None and res.sidecar["peak_pressure_Pa"] == pytest.approx(float(res.magnitude.max()))
    with pytest.raises(InvalidParameterError, match="power/velocity"):
        compute_field(t, (2, 2, 2), 1e-3, power=1.0, velocity=0.1, progress=False)
    with pytest.raises(InvalidParameterError, match="spacing"):
        compute_field(t, (2, 2, 2), 0.0, progress=False)

@pytest.mark.parametrize(
    "args, match",
    [
        (["--power", "-1"], "--power"),
        (["--grid", "8x8"], "--grid"),
        (["--medium", "plasma"], "medium"),
        (["--transducer", "nothere.csv"], "not found"),
        (["--focus", "0,0,-300"], "behind"),
        (["--spacing", "0"], "--spacing"),
    ],
)
def test_cli_field_errors_exit_1_with_a_message(tmp_path, capsys, args, match):
    from fus.cli.main import main

    base = {"--transducer": "cap256", "--grid": "4x4x4", "--spacing": "1", "--power": "1"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    argv = ["field", "--no-progress", "-o", str(tmp_path / "x.nii.gz")] + [x for kv in base.items() for x in kv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "error" in err and match in err


# --------------------------------------------------------------------------------- GPU
@pytest.mark.cuda
def test_cuda_matches_cpu(cuda_backend):
    cupy = cuda_backend.xp  # real CuPy, or its strict stand-in on the emulated device

    t = cap256()
    u = scale_to_power(t, focus_phases(t, (0, 0, 0)), 30.0)
    med = LayeredMedium([("water", None), ("skin", 2e-3), ("fat", 10e-3), ("muscle", None)], -0.04)
    g = Grid.centred((8, 8, 8), 2e-3, (0, 0, -0.03))
    res = {}
    for name in ("cuda", "cpu"):
        with fus.use(name):
            res[name] = [fus.asnumpy(pressure(t, u, g, m, far_field=ff)) for m in ("water", med) for ff in (True, False)]
    for a, b in zip(res["cuda"], res["cpu"]):
        report("CUDA vs CPU rel L2", rel_l2(a, b), 1e-4)
    with fus.use("cuda"):
        p = pressure(t, u, cupy.asarray(g.points()), "water")
        assert isinstance(p, cupy.ndarray)
        assert isinstance(heat_source(p, "water", frequency=t.frequency), cupy.ndarray)
