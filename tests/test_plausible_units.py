"""Unit mix-ups (Hz for tesla, ms for s, MHz for Hz, kelvin or Fahrenheit for C) get an error naming them."""

import numpy as np
import pytest

from fus.errors import InvalidParameterError
from fus.mr.prf import GAMMA, prf_scale


def test_prf_scale_matches_the_formula_at_plausible_values():
    # independent reference: dT/dphi = 1 / (gamma * alpha * B0 * TE)
    expected = 1.0 / (GAMMA * -0.01e-6 * 2.89 * 0.012)
    assert prf_scale(2.89, 0.012, -0.01) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "b0, te, alpha, name, words",
    [
        (123.2e6, 0.012, -0.01, "B0", "frequency in Hz"),
        (0.0, 0.012, -0.01, "B0", "plausible range"),
        (3.0, 12.0, -0.01, "TE", "milliseconds"),
        (3.0, 0.012, -0.01e-6, "alpha", "ppm/C"),
        (3.0, 0.012, -1.0, "alpha", "plausible range"),
        (3.0, float("nan"), -0.01, "TE", "finite"),
        (True, 0.012, -0.01, "B0", "number"),
    ],
)
def test_prf_scale_names_the_unit_mix_up(b0, te, alpha, name, words):
    with pytest.raises(InvalidParameterError) as e:
        prf_scale(b0, te, alpha)
    assert name in str(e.value) and words in str(e.value)


def test_frequency_in_mhz_is_named():
    from fus.physics.transducer_geometry import piston

    with pytest.raises(InvalidParameterError, match="MHz given as Hz"):
        piston(0.01, 1.0)
    with pytest.raises(InvalidParameterError, match="above 20 MHz"):
        piston(0.01, 1e9)
    assert piston(0.01, 1.0e6).frequency == 1.0e6


def test_initial_temperature_in_kelvin_is_named():
    from fus.physics.bioheat import Schedule, simulate

    n = (6, 6, 6)
    args = (np.full(n, 1050.0 * 3600.0), np.full(n, 0.5), np.zeros(n), 1e-3, np.zeros(n))
    with pytest.raises(InvalidParameterError, match="kelvin") as e:
        simulate(*args, Schedule([(1.0, 0.0)]), initial_temperature=310.15)
    assert "initial_temperature" in str(e.value) and "310.15" in str(e.value)
    with pytest.raises(InvalidParameterError, match="initial_temperature"):
        simulate(*args, Schedule([(1.0, 0.0)]), initial_temperature=np.full(n, np.nan))


def test_body_temperature_in_fahrenheit_is_named(tmp_path):
    from fus.physics.phantom import load_phantom

    f = tmp_path / "f.toml"
    f.write_text('[grid]\nshape = [4, 4, 8]\nspacing_mm = 1.0\n[body]\nskin_z_mm = -2\ntemperature_c = 98.6\n[[layers]]\ntissue = "muscle"\n')
    from fus.errors import DataError

    with pytest.raises(DataError, match="Fahrenheit") as e:
        load_phantom(f)
    assert "body.temperature_c" in str(e.value) and "f.toml" in str(e.value)


def test_thermometry_refuses_wrong_argument_types_by_name():
    """An ndarray for the baseline, a dict for the settings, a string noise: named errors, not
    AttributeError / TypeError tracebacks."""
    from fus.errors import InvalidParameterError
    from fus.mr.baseline import Baseline
    from fus.mr.thermometry import Thermometry

    img = np.ones((1, 4, 4), np.complex64)
    with pytest.raises(InvalidParameterError, match="baseline.*ndarray"):
        Thermometry(img, 3.0, 0.01)
    with pytest.raises(InvalidParameterError, match="settings.*dict"):
        Thermometry(Baseline(img, 1.0), 3.0, 0.01, settings={"drift": "poly"})
    with pytest.raises(InvalidParameterError, match="noise.*0.1"):
        Baseline.average([img], "0.1")
