"""A coarse field grid and the focal region: interpolating |p|^2 from a grid coarser than the focal
spot misplaces the focal heating; ``refine_focus`` recomputes the focal region on the phantom's
voxels. Reference: the field computed at the phantom's own spacing (no interpolation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fus.pipelines.scenario import load_scenario
from fus.pipelines.twin_build import _phantom, transducer_from_spec
from fus.physics.heat_source import phantom_heat_source

SCENARIO = Path(__file__).resolve().parents[1] / "sample_data" / "scenario_ablation.toml"


@pytest.fixture(scope="module")
def setup():
    sc = load_scenario(SCENARIO, ["phantom.grid={shape=[32,32,78],spacing_mm=1.0,centre_mm=[0.0,0.0,-7.5]}"])
    ph = _phantom(sc)
    tr = transducer_from_spec("cap256")
    focus = np.array([0.0, 0.0, -1.0e-3])
    exact, _ = phantom_heat_source(ph, tr, focus, 1.0, progress=False)
    return ph, tr, focus, exact


def test_refined_focus_matches_the_full_resolution_field(setup):
    ph, tr, focus, exact = setup
    dv = float(np.prod(ph.grid.spacing))
    coarse, info_c = phantom_heat_source(ph, tr, focus, 1.0, progress=False, field_spacing=2e-3)
    # the interpolated field is reported, with the way out
    assert any("interpolated from a coarser grid" in w and "--refine-focus" in w for w in info_c["warnings"])
    refined, info = phantom_heat_source(ph, tr, focus, 1.0, progress=False, field_spacing=2e-3, refine_focus=True)
    assert "focal_box_voxels" in info and np.prod(info["focal_box_voxels"]) < 0.5 * exact.size  # a box, not the grid
    assert not any("interpolated" in w for w in info["warnings"])
    low = info["voxel_peak_pressure_Pa"] < 0.95 * info["focus_pressure_Pa"]  # the 1 mm phantom grid itself
    assert low == any("phantom grid undersamples the focus" in w for w in info["warnings"])
    # interpolation alone: the focal peak is off by more than 10 % (what the refinement is for)
    assert abs(coarse.max() / exact.max() - 1.0) > 0.10
    # refined: the focal peak and its place as at full resolution, the absorbed power within 5 %
    assert refined.max() == pytest.approx(exact.max(), rel=0.01)
    assert np.unravel_index(np.argmax(refined), refined.shape) == np.unravel_index(np.argmax(exact), exact.shape)
    assert refined.sum() * dv == pytest.approx(exact.sum() * dv, rel=0.05)
    box = tuple(slice(0, n) for n in exact.shape)
    assert np.array_equal(refined[box] > 0, exact[box] > 0)  # the same tissues absorb


def test_a_field_spacing_coarser_than_the_phantom_is_refused(setup):
    from fus.errors import InvalidParameterError

    ph, tr, focus, _ = setup
    with pytest.raises(InvalidParameterError, match=r"field_spacing='1000 mm'.*2x2x2 points.*at least 4 along every axis"):
        phantom_heat_source(ph, tr, focus, 1.0, progress=False, field_spacing=1.0)
