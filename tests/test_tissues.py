"""The tissue table: physical ranges, lookup errors, derived quantities computed independently."""

from __future__ import annotations

import dataclasses
import math

import pytest

from fus.errors import InvalidParameterError
from fus.physics import tissues
from fus.physics.tissues import (
    BLOOD_DENSITY,
    BLOOD_SPECIFIC_HEAT,
    TISSUES,
    Tissue,
    absorption,
    acoustic_impedance,
    attenuation,
    get_tissue,
    perfusion_coefficient,
)

REQUIRED = [
    "water", "skin", "fat", "muscle", "cortical_bone", "marrow_red", "spinal_cord", "lesion",
    "soft_tissue", "blood",
]


def test_required_tissues_present():
    assert set(REQUIRED) <= set(TISSUES)


def test_labels_unique_and_water_is_zero():
    labels = [t.label for t in TISSUES.values()]
    assert len(set(labels)) == len(labels)
    assert TISSUES["water"].label == 0
    assert all(isinstance(t.label, int) and t.label >= 0 for t in TISSUES.values())


@pytest.mark.parametrize("name", REQUIRED)
def test_values_in_physical_range(name):
    t = TISSUES[name]
    assert t.name == name
    assert 850 <= t.density <= 2100, t.density
    bone = name == "cortical_bone"
    assert (2500 <= t.sound_speed <= 4200) if bone else (1400 <= t.sound_speed <= 1700), t.sound_speed
    # alpha0 in Np/m/MHz^y: water ~0.025, soft tissue 1..25, cortical bone 20..250
    assert 0.01 <= t.alpha0 <= 250, t.alpha0
    assert 0.9 <= t.alpha_power <= 2.0
    assert 0 < t.absorption_fraction <= 1
    assert 0.15 <= t.conductivity <= 0.7
    assert 1000 <= t.specific_heat <= 4300
    assert 0 <= t.perfusion <= 1000  # ml/min/kg
    assert t.source.strip()


def test_bone_is_the_strong_reflector_and_absorber():
    bone = TISSUES["cortical_bone"]
    for name in ("fat", "muscle", "soft_tissue", "lesion"):
        assert absorption(bone, 1e6) > 2 * absorption(name, 1e6)
        assert acoustic_impedance(bone) > 3 * acoustic_impedance(name)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TISSUES["muscle"].density = 1.0  # type: ignore[misc]


def test_unknown_name_names_it_and_the_known_ones():
    with pytest.raises(InvalidParameterError) as exc:
        get_tissue("liverr")
    msg = str(exc.value)
    assert "liverr" in msg
    for name in REQUIRED:
        assert name in msg
    with pytest.raises(InvalidParameterError):
        get_tissue(3)  # type: ignore[arg-type]


def test_lookup_aliases_and_case():
    assert get_tissue("Cortical Bone") is TISSUES["cortical_bone"]
    assert get_tissue("spinal-cord") is TISSUES["spinal_cord"]
    assert get_tissue("bone") is TISSUES["cortical_bone"]
    t = TISSUES["fat"]
    assert get_tissue(t) is t


def test_attenuation_power_law():
    m = TISSUES["muscle"]
    assert attenuation(m, 1e6) == pytest.approx(m.alpha0)
    assert attenuation("muscle", 2e6) == pytest.approx(m.alpha0 * 2.0**m.alpha_power, rel=1e-12)
    # water: 2.17e-3 dB/cm/MHz^2 at 1.5 MHz, converted by hand: dB -> Np is ln(10)/20
    assert attenuation("water", 1.5e6) == pytest.approx(2.17e-3 * 1.5**2 * 100 * 0.11512925, rel=1e-6)
    b = TISSUES["cortical_bone"]
    assert absorption(b, 1e6) == pytest.approx(b.absorption_fraction * b.alpha0)
    assert absorption("skin", 1e6) == pytest.approx(attenuation("skin", 1e6))


@pytest.mark.parametrize("bad", [0.0, -1e6, float("nan"), float("inf"), "one MHz"])
def test_bad_frequency(bad):
    with pytest.raises(InvalidParameterError, match="frequency_hz"):
        attenuation("muscle", bad)


def test_derived_quantities():
    m = TISSUES["muscle"]
    assert acoustic_impedance("muscle") == pytest.approx(1090.0 * 1588.4)
    assert m.heat_capacity == pytest.approx(1090.0 * 3421.0)
    assert m.diffusivity == pytest.approx(0.49 / (1090.0 * 3421.0))
    # 37 ml/min/kg -> volumetric flow 37e-6/60 * 1090 per s, times rho_b c_b
    expected = 37.0 * 1e-6 / 60.0 * 1090.0 * 1050.0 * 3617.0
    assert perfusion_coefficient("muscle") == pytest.approx(expected, rel=1e-12)
    assert m.perfusion_coefficient == pytest.approx(expected, rel=1e-12)
    assert 1500 < expected < 4000  # W/m^3/K: the textbook range for resting muscle
    assert BLOOD_DENSITY == TISSUES["blood"].density
    assert BLOOD_SPECIFIC_HEAT == TISSUES["blood"].specific_heat
    assert perfusion_coefficient("water") == 0.0


def test_tissue_is_constructible_for_custom_media():
    t = Tissue("gel", 42, 1000.0, 1500.0, 1.0, 1.0, 1.0, 0.5, 4000.0, 0.0, "test")
    assert acoustic_impedance(t) == pytest.approx(1.5e6)
    assert math.isclose(attenuation(t, 3e6), 3.0)
    assert tissues.tissue_names()[0] == "water"
