"""Media: homogeneous power-law attenuation, planar layers, the TOML layer file and its errors."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from fus.errors import DataError, InvalidParameterError
from fus.physics.media import (
    HomogeneousMedium,
    LayeredMedium,
    as_medium,
    load_medium,
    medium_from_spec,
    soft_tissue,
    transmission_coefficient,
    water,
)
from fus.physics.tissues import get_tissue

NP_PER_DB = math.log(10) / 20


def test_homogeneous_power_law_and_wavenumber():
    f = 1.2e6
    m = soft_tissue()
    # 0.5 dB/cm/MHz, y = 1 (the table's source), written here from the definition
    assert m.attenuation(f) == pytest.approx(0.5 * 100 * NP_PER_DB * 1.2, rel=1e-12)
    assert m.absorption(f) == pytest.approx(m.attenuation(f), rel=1e-12)  # absorption fraction 1
    assert m.kappa(f) == pytest.approx(complex(2 * math.pi * f / 1540.0, -m.attenuation(f)), rel=1e-12)
    w = water()
    # 2.17e-3 dB/cm/MHz^2, y = 2 -> at 1.2 MHz: 2.17e-3 * 100 * 0.1151 * 1.44 Np/m
    assert w.attenuation(f) == pytest.approx(2.17e-3 * 100 * NP_PER_DB * 1.44, rel=1e-9)
    assert w.impedance == pytest.approx(w.density * w.sound_speed)
    bone = HomogeneousMedium("bone")
    t = get_tissue("cortical_bone")
    assert bone.absorption(2e6) == pytest.approx(t.absorption_fraction * t.alpha0 * 2.0**t.alpha_power)
    assert bone.absorption(2e6) < bone.attenuation(2e6)  # scattering part is not heat
    with pytest.raises(InvalidParameterError, match="frequency"):
        w.attenuation(-1.0)


def test_unknown_tissue_and_spec_words():
    with pytest.raises(InvalidParameterError, match="unobtainium"):
        HomogeneousMedium("unobtainium")
    with pytest.raises(InvalidParameterError, match="medium"):
        medium_from_spec("jelly")
    assert medium_from_spec("water").name == "water"
    assert medium_from_spec("tissue").name == "soft_tissue"
    assert medium_from_spec("fat").name == "fat"
    assert as_medium(None).name == "water"
    with pytest.raises(InvalidParameterError, match="medium"):
        as_medium(3.0)


def test_layered_geometry_transmission_and_crossing():
    med = LayeredMedium([("water", None), ("skin", 2e-3), ("fat", 10e-3), ("muscle", None)], -0.04)
    np.testing.assert_allclose(med.interfaces, [-0.040, -0.038, -0.028], atol=1e-15)
    z = np.array([-0.05, -0.040, -0.039, -0.038, -0.030, -0.028, 0.0])
    # a point on an interface belongs to the deeper layer
    np.testing.assert_array_equal(med.layer_index(z), [0, 1, 1, 2, 2, 3, 3])
    zs = [m.impedance for m in med.layers]
    t = [1.0]
    for a, b in zip(zs[:-1], zs[1:]):
        t.append(t[-1] * 2 * b / (a + b))
    np.testing.assert_allclose(med.transmission(), t, rtol=1e-14)
    assert transmission_coefficient(1.0, 3.0) == pytest.approx(1.5)
    f = 1e6
    k = med.kappas(f)
    np.testing.assert_allclose(med.crossing_phase(f), [0, 0, k[1] * 2e-3, k[1] * 2e-3 + k[2] * 10e-3], rtol=1e-14)
    d = med.describe(f)
    assert [layer["tissue"] for layer in d["layers"]] == ["water", "skin", "fat", "muscle"]
    assert d["layers"][2]["thickness_mm"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    "layers, match",
    [
        ([("water", None)], "at least two"),
        ([("water", 1e-3), ("fat", None)], r"layers\[0\].thickness"),
        ([("water", None), ("fat", 1e-3)], r"layers\[1\].thickness"),
        ([("water", None), ("fat", -1e-3), ("muscle", None)], r"layers\[1\].thickness"),
        ([("water", None), ("fat", None), ("muscle", None)], r"layers\[1\].thickness"),
        ([("water", None), ("kryptonite", 1e-3), ("muscle", None)], "kryptonite"),
    ],
)
def test_layered_bad_layers(layers, match):
    with pytest.raises(InvalidParameterError, match=match):
        LayeredMedium(layers, -0.01)


GOOD = """
name = "thigh over femur"
first_interface_mm = -40.0

[[layers]]
tissue = "water"

[[layers]]
tissue = "skin"
thickness_mm = 2.0

[[layers]]
tissue = "fat"
thickness_mm = 8

[[layers]]
tissue = "bone"
thickness_mm = 4.0

[[layers]]
tissue = "marrow"
"""


def _write(tmp_path, text, name="wall.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_toml_round_trip(tmp_path):
    med = load_medium(_write(tmp_path, GOOD))
    assert isinstance(med, LayeredMedium) and med.name == "thigh over femur"
    assert [m.name for m in med.layers] == ["water", "skin", "fat", "cortical_bone", "marrow_red"]
    np.testing.assert_allclose(med.interfaces, [-0.040, -0.038, -0.030, -0.026], atol=1e-15)
    assert medium_from_spec(str(tmp_path / "wall.toml")).interfaces.size == 4
    single = load_medium(_write(tmp_path, '[[layers]]\ntissue = "muscle"\n', "one.toml"))
    assert isinstance(single, HomogeneousMedium) and single.name == "muscle"


@pytest.mark.parametrize(
    "text, tag, match",
    [
        ("first_interface_mm = -40\n[[layers]\ntissue='water'\n", None, "malformed TOML"),
        (GOOD.replace('"fat"', '"blubber"'), r"layers\[2\].tissue", "blubber"),
        (GOOD.replace("thickness_mm = 8", "thickness_mm = -8"), r"layers\[2\].thickness_mm", "-8"),
        (GOOD.replace("thickness_mm = 8", 'thickness_mm = "8"'), r"layers\[2\].thickness_mm", "'8'"),
        (GOOD.replace("thickness_mm = 8\n", ""), r"layers\[2\].thickness_mm", "missing"),
        (GOOD.replace('tissue = "water"', 'tissue = "water"\nthickness_mm = 3'), r"layers\[0\].thickness_mm", "coupling"),
        (GOOD + "thickness_mm = 9\n", r"layers\[4\].thickness_mm", "infinity"),
        (GOOD.replace("first_interface_mm = -40.0", ""), "first_interface_mm", "None"),
        (GOOD.replace("first_interface_mm", "first_interface_cm"), "first_interface_cm", "unknown key"),
        (GOOD.replace('tissue = "skin"', 'tissue = "skin"\ncolour = "pink"'), r"layers\[1\]", "colour"),
        ('name = "x"\n', "layers", "layers"),
        ('first_interface_mm = 3\n[[layers]]\ntissue = "fat"\n', "first_interface_mm", "single layer"),
    ],
)
def test_toml_errors_name_file_field_and_value(tmp_path, text, tag, match):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=match) as err:
        load_medium(path)
    assert str(path) in str(err.value)
    if tag is not None:
        assert err.value.tag is not None and __import__("re").fullmatch(tag, err.value.tag)


def test_toml_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_medium(tmp_path / "nope.toml")
