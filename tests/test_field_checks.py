"""What a field run says about itself: a grid that misses the focus, elements too small for the
plane-wave radiation approximation, patches too coarse.

References: the pressure on an odd grid centred on the focus (its centre voxel is the focus);
the radiated power of a baffled circular piston integrated from its far-field directivity
(Kinsler & Frey: I(theta) ~ [2 J1(ka sin theta) / (ka sin theta)]^2), not the closed form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import j1

from fus.cli.main import main
from fus.errors import InvalidParameterError
from fus.physics.field_checks import piston_radiation_factor
from fus.pipelines.field import compute_field
from fus.pipelines.twin_build import transducer_from_spec


@pytest.fixture(scope="module")
def cap256():
    return transducer_from_spec("cap256")


def test_an_even_grid_misses_the_focus_and_says_by_how_much(cap256):
    odd = compute_field(cap256, (33, 33, 33), 1e-3, progress=False)
    even = compute_field(cap256, (32, 32, 32), 1e-3, progress=False)
    centre = odd.magnitude[16, 16, 16]
    assert odd.sidecar["focus_pressure_Pa"] == pytest.approx(float(centre), rel=1e-4)  # the same point, computed twice
    assert odd.sidecar["warnings"] == []
    (w,) = even.sidecar["warnings"]
    low = 100 * (1 - even.sidecar["peak_pressure_Pa"] / centre)
    assert low > 5 and f"{low:.0f} % below" in w and "odd number of points" in w
    assert even.sidecar["frames"]["peak_location_mm"] == "scanner" and even.sidecar["frames"]["focus_mm"] == "transducer"


def _piston_factor_by_directivity(ka: float) -> float:
    """Radiated / (rho c S u^2 / 2) from the far field: (ka)^2 / 2 * int_0^pi/2 D(theta)^2 sin(theta) dtheta."""
    def d2(theta: float) -> float:
        x = ka * np.sin(theta)
        return (2 * j1(x) / x) ** 2 * np.sin(theta) if x > 1e-12 else np.sin(theta)

    # the power through a far hemisphere is all the piston radiates (the reactive near field
    # stores energy, it does not carry it away)
    return 0.5 * ka**2 * quad(d2, 0.0, np.pi / 2, limit=200)[0]


@pytest.mark.parametrize("ka", [0.5, 1.0, 3.0, 10.0])
def test_piston_radiation_factor(ka):
    assert piston_radiation_factor(ka) == pytest.approx(_piston_factor_by_directivity(ka), rel=1e-3)


def test_small_elements_are_reported(tmp_path, caplog):
    out = tmp_path / "piston.nii.gz"
    assert main(["field", "--transducer", "piston", "--aperture", "0.4", "--frequency", "1.2", "--grid", "5x5x5",
                 "--spacing", "0.5", "-o", str(out), "--no-progress"]) == 0
    assert any("ka = 1.0" in r.getMessage() and "x0.44" in r.getMessage() for r in caplog.records)


def test_large_elements_are_not(cap256):
    r = compute_field(cap256, (5, 5, 5), 1e-3, progress=False)
    assert not any("ka" in w for w in r.sidecar["warnings"])


def test_coarse_patches_are_refused(cap256, capsys):
    with pytest.raises(InvalidParameterError, match="points_per_wavelength"):
        compute_field(cap256, (3, 3, 3), 1e-3, points_per_wavelength=1.5, progress=False)
    assert main(["field", "--transducer", "cap256", "--grid", "3x3x3", "--spacing", "1", "--points-per-wavelength", "0.01",
                 "-o", "unused.nii.gz", "--no-progress"]) == 1
    assert "--points-per-wavelength=0.01" in capsys.readouterr().err


@pytest.mark.parametrize(
    "transducer, extra, message",
    [
        ("cap256", ["--frequency", "1200000"], "--frequency=1200000.0: is in MHz"),
        ("bowl", ["--roc", "0.14"], "--roc=0.14: is in mm"),
    ],
)
def test_options_in_the_wrong_unit_are_named(transducer, extra, message, tmp_path, capsys):
    argv = ["field", "--transducer", transducer, "--grid", "3x3x3", "--spacing", "1", "-o", str(tmp_path / "f.nii.gz"), "--no-progress"]
    assert main(argv + extra) == 1
    assert message in capsys.readouterr().err


def test_heat_refuses_bad_options_before_the_field(tmp_path, capsys, monkeypatch):
    """--safety and an -o under a file are refused before the (minutes-long) field computation."""
    import fus.pipelines.heat as heat

    def no_field(*a, **k):
        raise AssertionError("the field was computed before the options were checked")

    monkeypatch.setattr(heat, "phantom_heat_source", no_field)
    phantom = str(Path(__file__).resolve().parents[1] / "sample_data" / "phantom_bone.toml")
    common = ["heat", "--phantom", phantom, "--transducer", "cap256", "--power", "1", "--duration", "1", "--no-progress"]
    assert main(common + ["--safety", "2", "-o", str(tmp_path / "a")]) == 1
    assert "--safety=2.0" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(common + ["-o", str(blocker / "out")]) == 1
    assert "-o=" in (err := capsys.readouterr().err) and "is a file" in err
