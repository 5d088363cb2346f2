"""Drives: focusing phases, Ebbini–Cain synthesis and power normalisation, against float64 sums
written here."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy.special import j1

from fus.errors import InvalidParameterError
from fus.physics.constants import (
    WATER_DENSITY_20C,
    WATER_DENSITY_37C,
    WATER_SOUND_SPEED_20C,
    water_density,
    water_sound_speed,
)
from fus.physics.drive import (
    acoustic_power,
    ebbini_cain,
    focus_phases,
    point_source_transfer_matrix,
    scale_to_power,
    scale_to_velocity,
    steering_report,
)
from fus.physics.transducer import bowl, cap256, piston, spherical_cap_array

C = 1500.0
RHO = 1000.0


def _h_reference(centres, normals, diameters, freq, points, c=C, rho=RHO, directivity=False):
    """H[j, m] = i k rho c A_m exp(-i k r) / (2 pi r), loops over control points (float64)."""
    k = 2 * math.pi * freq / c
    area = math.pi * (diameters / 2) ** 2
    rows = []
    for x in np.atleast_2d(points):
        d = x - centres
        r = np.sqrt(np.sum(d * d, axis=1))
        row = 1j * k * rho * c * area * np.exp(-1j * k * r) / (2 * math.pi * r)
        if directivity:
            s = np.sqrt(1 - (np.sum(d * normals, axis=1) / r) ** 2)
            arg = k * diameters / 2 * s
            row = row * np.where(arg > 0, 2 * j1(arg) / np.where(arg > 0, arg, 1), 1.0)
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize(
    "target", [(0, 0, 0), (4e-3, -3e-3, 0), (0, 0, 8e-3), (2e-3, 1e-3, -6e-3)]
)
def test_focus_phases_add_coherently_at_target(target, caplog):
    t = cap256()
    with caplog.at_level(logging.WARNING, logger="fus"):
        w, report = focus_phases(t, target, sound_speed=C, return_report=True)
    assert report.in_range and not caplog.records
    np.testing.assert_allclose(np.abs(w), 1.0, rtol=1e-15)
    # point-source sum written here: terms w_m exp(-i k r_m) / r_m
    k = 2 * math.pi * 1.2e6 / C
    r = np.sqrt(np.sum((np.asarray(target) - t.centres) ** 2, axis=1))
    terms = w * np.exp(-1j * k * r) / r
    total = terms.sum()
    assert abs(abs(total) / np.abs(terms).sum() - 1) < 1e-12
    assert abs(np.angle(total)) < 1e-12 and total.real > 0
    # off the geometric focus (unequal r_m) the opposite sign convention would not focus
    if np.ptp(r) > 0.5 * C / 1.2e6:
        wrong = np.conj(w) * np.exp(-1j * k * r) / r
        assert abs(wrong.sum()) < 0.5 * np.abs(terms).sum()


def test_focus_phases_warn_outside_steering_range(caplog):
    t = cap256()
    with caplog.at_level(logging.WARNING, logger="fus"):
        w, report = focus_phases(t, (20e-3, 0, 0), sound_speed=C, return_report=True)
    assert not report.in_range and report.gain_db < -3
    assert report.steering_distance == pytest.approx(20e-3)
    assert any("steering range" in rec.getMessage() for rec in caplog.records)
    # the criterion, recomputed here: area-weighted mean of |2 J1(k a sin t) / (k a sin t)|
    k = 2 * math.pi * 1.2e6 / C
    for x in (5e-3, 20e-3):
        d = np.array([x, 0, 0]) - t.centres
        cos_t = np.sum(d * t.normals, axis=1) / np.linalg.norm(d, axis=1)
        arg = k * 3.3e-3 * np.sqrt(1 - cos_t**2)
        mean = np.mean(np.abs(2 * j1(arg) / arg))
        rep = steering_report(t, (x, 0, 0), C)
        assert rep.gain == pytest.approx(mean, rel=1e-12)
        assert rep.in_range == (20 * math.log10(mean) >= -3)
    # a single bowl cannot steer: 3 mm off its focus is outside the focal spot, 0.5 mm is not
    b = bowl(0.14, 0.064, 1.2e6)
    assert steering_report(b, (0.5e-3, 0, 0), C).in_range
    assert not steering_report(b, (3e-3, 0, 0), C).in_range
    assert steering_report(b, (0, 0, 0), C).gain == pytest.approx(1.0)


def test_focus_behind_transducer_is_refused():
    with pytest.raises(InvalidParameterError, match="behind"):
        focus_phases(cap256(), (0, 0, -0.15))
    with pytest.raises(InvalidParameterError, match="behind"):
        focus_phases(piston(0.01, 1e6), (0, 0, -0.01))
    with pytest.raises(InvalidParameterError, match="target"):
        focus_phases(cap256(), (0, float("nan"), 0))


@pytest.mark.parametrize("n_ctrl", [2, 3, 4])
def test_ebbini_cain_reproduces_control_pressures(n_ctrl):
    t = cap256()
    rng = np.random.default_rng(n_ctrl)
    pts = np.column_stack([
        rng.uniform(-6e-3, 6e-3, n_ctrl),
        rng.uniform(-6e-3, 6e-3, n_ctrl),
        rng.uniform(-5e-3, 5e-3, n_ctrl),
    ])
    want = rng.uniform(0.5e6, 2e6, n_ctrl) * np.exp(1j * rng.uniform(-np.pi, np.pi, n_ctrl))
    u = ebbini_cain(t, pts, want, sound_speed=C, density=RHO)
    h = _h_reference(t.centres, t.normals, t.diameters, 1.2e6, pts)
    got = h @ u
    rel = np.abs(got - want) / np.abs(want)
    print(f"Ebbini-Cain J={n_ctrl}: max relative error {rel.max():.2e}")
    assert rel.max() < 1e-2
    # minimum norm: equal to the pseudo-inverse solution computed here
    np.testing.assert_allclose(u, np.linalg.pinv(h) @ want, rtol=1e-8, atol=1e-10 * np.abs(u).max())
    # with directivity in H, against the reference H with directivity
    u_d = ebbini_cain(t, pts, want, sound_speed=C, density=RHO, element_directivity=True)
    h_d = _h_reference(t.centres, t.normals, t.diameters, 1.2e6, pts, directivity=True)
    assert (np.abs(h_d @ u_d - want) / np.abs(want)).max() < 1e-2


def test_ebbini_cain_regularisation_and_bad_input():
    t = spherical_cap_array(32, 0.1, 0.1, 6e-3, 1e6, layout="rings")
    pts = np.array([[0, 0, 0], [3e-3, 0, 0]])
    want = np.array([1e6, 1e6 * 1j])
    u0 = ebbini_cain(t, pts, want, sound_speed=C, density=RHO)
    u1 = ebbini_cain(t, pts, want, sound_speed=C, density=RHO, regularization=0.1)
    assert np.linalg.norm(u1) < np.linalg.norm(u0)  # Tikhonov shrinks the solution
    with pytest.raises(InvalidParameterError, match="singular"):
        ebbini_cain(t, [[0, 0, 0], [0, 0, 0]], [1e6, 1e6], sound_speed=C)
    with pytest.raises(InvalidParameterError, match="more control points"):
        ebbini_cain(t, np.zeros((33, 3)) + [0, 0, 1e-3], np.ones(33))
    with pytest.raises(InvalidParameterError, match="pressures"):
        ebbini_cain(t, pts, [1e6])
    with pytest.raises(InvalidParameterError, match="regularization"):
        ebbini_cain(t, pts, want, regularization=-1)


def test_transfer_matrix_in_scanner_frame():
    t = cap256()
    tr = np.eye(4)
    tr[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    tr[:3, 3] = [0.1, 0.2, 0.3]
    ts = t.with_transform(tr)
    pts = np.array([[1e-3, 2e-3, 3e-3], [-2e-3, 0, 1e-3]])
    h_t = point_source_transfer_matrix(ts, pts, C, RHO)
    h_s = point_source_transfer_matrix(ts, pts @ tr[:3, :3].T + tr[:3, 3], C, RHO, frame="scanner")
    np.testing.assert_allclose(h_s, h_t, rtol=1e-12)
    h_ref = _h_reference(t.centres, t.normals, t.diameters, 1.2e6, pts)
    np.testing.assert_allclose(h_t, h_ref, rtol=1e-12)


def test_power_and_velocity_normalisation():
    t = cap256()
    w = focus_phases(t, (2e-3, 0, 1e-3), sound_speed=C)
    w = w * np.linspace(0.5, 1.0, t.n_elements)  # unequal amplitudes
    for power in (1.0, 150.0):
        u = scale_to_power(t, w, power, density=RHO, sound_speed=C)
        area = math.pi * (3.3e-3) ** 2
        p_here = math.fsum((area * np.abs(u) ** 2 * RHO * C / 2).tolist())
        assert abs(p_here / power - 1) < 1e-12
        np.testing.assert_allclose(np.angle(u), np.angle(w), atol=1e-12)
        assert acoustic_power(t, u, RHO, C) == pytest.approx(power, rel=1e-12)
    u = scale_to_velocity(t, w, 0.2)
    assert np.abs(u).max() == pytest.approx(0.2, rel=1e-15)
    # the bowl's area is 2 pi R h
    b = bowl(0.14, 0.064, 1.2e6)
    ub = scale_to_power(b, [1.0], 10.0, density=RHO, sound_speed=C)
    h = 0.14 - math.sqrt(0.14**2 - 0.032**2)
    assert 2 * math.pi * 0.14 * h * abs(ub[0]) ** 2 * RHO * C / 2 == pytest.approx(10.0, rel=1e-12)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(InvalidParameterError, match="power"):
            scale_to_power(t, w, bad)
        with pytest.raises(InvalidParameterError, match="velocity"):
            scale_to_velocity(t, w, bad)
    with pytest.raises(InvalidParameterError, match="drive"):
        scale_to_power(t, np.zeros(t.n_elements), 1.0)
    with pytest.raises(InvalidParameterError, match="drive"):
        scale_to_velocity(t, w[:10], 1.0)


def test_water_constants_match_tabulated_values():
    # Del Grosso & Mader (1972): 1482.34 m/s at 20 C; Kell (1975): 998.20 / 993.33 kg/m^3 at
    # 20 / 37 C, maximum density 999.97 kg/m^3 near 4 C.
    assert WATER_SOUND_SPEED_20C == pytest.approx(1482.34, abs=0.1)
    assert WATER_DENSITY_20C == pytest.approx(998.20, abs=0.02)
    assert WATER_DENSITY_37C == pytest.approx(993.33, abs=0.02)
    assert water_density(4.0) == pytest.approx(999.97, abs=0.01)
    assert water_sound_speed(37.0) > water_sound_speed(20.0)
    with pytest.raises(InvalidParameterError, match="temperature"):
        water_sound_speed(120.0)
