"""The shipped sample series (``sample_data/series``): it replays to its true temperature, its two
storages agree, and the generator still writes it.

References: the twin's true temperature on the images (``true_temperature.nii.gz``, noise-free);
the noise the scanner simulated (``series.json``: sigma_T 1 C per muscle voxel, more in fat and
skin, and ``sqrt(1 + 1/4)`` against the average of 4 baselines); the classic series for the
enhanced file; and a fresh run of :func:`fus.pipelines.sample_series.make_sample_series`.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from fus.pipelines.demo import sample_replay_options
from fus.pipelines.replay import replay
from fus.pipelines.sample_series import TRUE_T_STEP, make_sample_series, sample_data_dir

SERIES = sample_data_dir() / "series"


@pytest.fixture(scope="module")
def info() -> dict:
    return json.loads((SERIES / "series.json").read_text())


@pytest.fixture(scope="module")
def replayed(info, tmp_path_factory):
    out = tmp_path_factory.mktemp("sample_replay")
    classic = replay(SERIES / "classic", out / "classic", sample_replay_options(SERIES))  # pairs 11 with 10 by itself
    enhanced = replay(SERIES / "enhanced" / "series.dcm", out / "enhanced", sample_replay_options(SERIES))
    return classic, enhanced


def _load(path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.get_fdata(dtype=np.float64)), img.affine


def test_the_series_is_what_series_json_says(info):
    files = sorted((SERIES / "classic").glob("*.dcm"))
    assert len(files) == 2 * info["slices"] * info["dynamics"]
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert (ds.Rows, ds.Columns) == tuple(info["matrix_rows_cols"]) == (96, 96)
    assert info["slices"] == 3 and 35 <= info["dynamics"] <= 45
    enh = pydicom.dcmread(SERIES / "enhanced" / "series.dcm", stop_before_pixels=True)
    assert int(enh.NumberOfFrames) == len(files)


def test_replay_measures_the_true_temperature(info, replayed):
    classic, _ = replayed
    assert classic.summary["series"]["magnitude_series"].startswith(f"series {info['series_magnitude']}")
    measured, a_meas = _load(classic.files["temperature"])
    truth, a_true = _load(SERIES / "true_temperature.nii.gz")
    assert measured.shape == truth.shape
    np.testing.assert_allclose(a_meas, a_true, atol=1e-4)
    ok = np.isfinite(measured)
    assert ok[..., info["baseline_dynamics"]:].mean() > 0.3
    heated = ok & (truth - 37.0 > 2.0)
    cold = ok & (np.abs(truth - 37.0) < 0.3)
    assert heated.sum() > 1000 and cold.sum() > 10000
    err_h, err_c = (measured - truth)[heated], (measured - truth)[cold]
    # noise ~1-2 C per voxel (sigma_T 1 C in muscle, more in fat); the B0 drift corrected as the
    # twin did; heated voxels read low by ~0.4 C: a temperature gradient inside a voxel dephases
    # its samples, and the phase of their sum is below their mean (the truth is the mean)
    assert abs(err_h.mean()) < 0.8 and np.sqrt(np.mean(err_h**2)) < 2.5
    assert abs(err_c.mean()) < 0.25 and err_c.std() < 2.5
    # the hottest measured voxel is where the truth is hottest: within 3 voxels (2.25 mm), the
    # lesion is a steered 1.5-mm circle whose plateau the noise picks a maximum on
    tm = np.where(ok, measured, -np.inf).max(axis=-1)
    tt = truth.max(axis=-1)
    assert np.linalg.norm(np.subtract(np.unravel_index(np.argmax(tm), tm.shape), np.unravel_index(np.argmax(tt), tt.shape))[:2]) <= 3.0


def test_enhanced_gives_the_classic_temperature(replayed):
    classic, enhanced = replayed
    a, _ = _load(classic.files["temperature"])
    b, _ = _load(enhanced.files["temperature"])
    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5, equal_nan=True)


def test_the_generator_writes_the_shipped_series(info, tmp_path):
    """Regenerate from the shipped scenario: the same images (to one stored unit, where a float
    rounding lands on the other side of a 12-bit step), the same truth (one quantum), the same facts."""
    fresh = make_sample_series(sample_data_dir() / "scenario_ablation.toml", tmp_path / "series")
    for key in ("dynamics", "baseline_dynamics", "slices", "matrix_rows_cols", "series_phase", "series_magnitude", "stops"):
        assert fresh[key] == info[key], key
    assert fresh["noise_stored"] == pytest.approx(info["noise_stored"], rel=1e-6)
    names = sorted(p.name for p in (SERIES / "classic").glob("*.dcm"))
    assert names == sorted(p.name for p in (tmp_path / "series" / "classic").glob("*.dcm"))
    worst, differing, total = 0, 0, 0
    for name in names[:: max(1, len(names) // 40)]:  # every ~40th file: magnitude and phase, all dynamics
        a = pydicom.dcmread(SERIES / "classic" / name).pixel_array.astype(np.int32)
        b = pydicom.dcmread(tmp_path / "series" / "classic" / name).pixel_array.astype(np.int32)
        d = np.abs(a - b)
        worst, differing, total = max(worst, int(d.max())), differing + int((d > 0).sum()), total + d.size
    assert worst <= 1 and differing <= 1e-3 * total
    t_old, _ = _load(SERIES / "true_temperature.nii.gz")
    t_new, _ = _load(tmp_path / "series" / "true_temperature.nii.gz")
    np.testing.assert_allclose(t_new, t_old, rtol=0, atol=TRUE_T_STEP * 1.01)


def test_target_temperature_matches_the_truth(info, replayed):
    """The target ROI's mean temperature, dynamic by dynamic, against the truth: each dynamic within
    4 of its standard errors (from the replay's sigma_T of the few target voxels), and the mean over
    the treatment within 3 standard errors of zero (the baseline's noise is common to every
    dynamic: it does not average out over time)."""
    classic, _ = replayed
    measured, _ = _load(classic.files["temperature"])
    sigma, _ = _load(classic.files["sigma_t"])
    truth, _ = _load(SERIES / "true_temperature.nii.gz")
    target = np.asarray(nib.load(SERIES / "rois" / "target.nii.gz").dataobj).astype(bool)
    nb = info["baseline_dynamics"]
    errors, se = [], []
    for d in range(nb, measured.shape[-1]):
        m = target & np.isfinite(measured[..., d])
        assert m.sum() >= 3
        errors.append(measured[..., d][m].mean() - truth[..., d][m].mean())
        se.append(np.sqrt(np.sum(sigma[..., d][m] ** 2)) / m.sum())
    errors, se = np.asarray(errors), np.asarray(se)
    assert np.all(np.abs(errors) <= 4.0 * se), np.max(np.abs(errors) / se)
    var = np.mean(se**2)
    se_mean = np.sqrt(var / (nb + 1) + var * nb / (nb + 1) / len(errors))  # common baseline part + independent part
    assert abs(errors.mean()) < 3.0 * se_mean, (errors.mean(), se_mean)
    assert truth[target].max() - 37.0 > 15.0  # the target was heated: the comparison means something


def test_the_advisory_controller_stops_where_the_live_loop_did(info, replayed):
    """The replay runs the twin's ablation controller on the series the twin's loop acquired: it
    meets its goal at the dynamic the live loop stopped at (same images, thermometry and rule)."""
    classic, _ = replayed
    (stop,) = info["stops"]
    assert stop["reason"] == "goal_reached"
    period = info["dynamic_period_s"]
    live = info["baseline_dynamics"] - 1 + round((stop["time_s"] - info["latency_s"]) / period)
    rows = [line.split(",") for line in (classic.out_dir / "advisory.csv").read_text().splitlines()[1:]]
    first = next(int(r[0]) for r in rows if r[4] != "control")
    assert rows[[int(r[0]) for r in rows].index(first)][4] == "goal_reached"
    assert first == live, (first, live)
