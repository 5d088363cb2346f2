"""``fus replay DIR`` chooses its series: pairing a phase series with its magnitude series, the
errors that list the flags to pass, and the interlock advisory written beside the maps.

References: the explicit ``--series P --magnitude-series M`` replay (same temperatures), real
Siemens exports (Prisma classic: magnitude series 2, phase 3 and a repeat 4; XA30 enhanced:
magnitude 8, phase 9) and a float64 numpy maximum of the written temperature maps.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import require_data
from fus.cli.main import main
from fus.control.limits import InterlockLimits
from dicom_synth import heated_acquisition
from fus.errors import DicomError
from fus.mr.dicom_write import write_series
from fus.mr.scanner_sim import ImagePlan, ImageSlice, ScannerSettings
from fus.pipelines.replay import ReplayOptions, replay
from fus.pipelines.replay_advisory import Advisory
from fus.pipelines.replay_pairing import pick_series

N_BASE, N_DYN = 2, 5
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def _acquisition(plan: ImagePlan, seed: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Baselines and dynamics: magnitude ~100 (noise 1), a phase spot deepening 0.5 rad a dynamic."""
    return heated_acquisition(plan.shape, N_BASE, N_DYN, rad_per_dynamic=-0.5, spot_px=2.5, offset=0.2, seed=seed)


@pytest.fixture(scope="module")
def two_stacks(tmp_path_factory) -> Path:
    """A twin-style export of a coronal and a sagittal stack: series 10/11 and 12/13 (M/P)."""
    folder = tmp_path_factory.mktemp("two_stacks")
    plan = ImagePlan((ImageSlice("coronal", 0.0), ImageSlice("sagittal", 0.0)), 20, 20)
    base, dyn = _acquisition(plan)
    write_series(folder, dyn, [3.0 * (N_BASE + k) for k in range(N_DYN)], plan, ScannerSettings(seed=5), baseline=base)
    return folder


def _subset(src: Path, dst: Path, series: tuple[int, ...]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in series:
        for f in src.glob(f"s{n:03d}_*.dcm"):
            shutil.copy(f, dst / f.name)
    return dst


def test_one_pair_is_paired_and_said(two_stacks, tmp_path, capsys):
    folder = _subset(two_stacks, tmp_path / "coronal", (10, 11))
    choice = pick_series(folder)
    assert (choice.series, choice.magnitude_series) == (11, 10)
    assert "series 11" in choice.note and "series 10" in choice.note
    opts = dict(baseline=N_BASE, noise=1.0)
    auto = replay(folder, tmp_path / "auto", ReplayOptions(**opts))
    given = replay(folder, tmp_path / "given", ReplayOptions(series=11, magnitude_series=10, **opts))
    t_auto = np.asarray(nib.load(auto.files["temperature"]).dataobj)
    t_given = np.asarray(nib.load(given.files["temperature"]).dataobj)
    np.testing.assert_array_equal(t_auto, t_given)
    assert auto.summary["series"]["choice"] == choice.note and given.summary["series"]["choice"] == "given"
    assert auto.summary["series"]["magnitude_series"].startswith("series 10")
    # the CLI says which it chose
    assert main(["replay", str(folder), "-o", str(tmp_path / "cli"), "--baseline", str(N_BASE), "--no-progress"]) == 0
    assert "paired phase series 11" in capsys.readouterr().out


def test_two_pairs_list_the_flags_that_work(two_stacks, tmp_path):
    with pytest.raises(DicomError) as exc:
        pick_series(two_stacks)
    msg = str(exc.value)
    pairs = re.findall(r"--series (\d+) --magnitude-series (\d+)", msg)
    assert sorted(pairs) == [("11", "10"), ("13", "12")], msg
    for p, m in pairs:  # every listed choice replays
        r = replay(two_stacks, tmp_path / f"p{p}", ReplayOptions(series=int(p), magnitude_series=int(m), baseline=N_BASE, noise=1.0))
        assert r.summary["series"]["name"].startswith(f"series {p}")


def test_given_phase_finds_its_magnitude(two_stacks):
    choice = pick_series(two_stacks, series=13)
    assert (choice.series, choice.magnitude_series) == (13, 12)


def test_phase_without_magnitude_is_an_error(two_stacks, tmp_path):
    folder = _subset(two_stacks, tmp_path / "phase_only", (11,))
    with pytest.raises(DicomError, match="no magnitude series of the same acquisition.*--magnitude-series"):
        pick_series(folder)
    # the sagittal magnitude does not fit the coronal phase (another geometry)
    folder = _subset(two_stacks, tmp_path / "mismatch", (11, 12))
    with pytest.raises(DicomError, match="magnitude series found: series 12"):
        pick_series(folder)


def test_the_magnitude_numbered_just_below_wins(two_stacks, tmp_path):
    """Two magnitude series fit: Siemens numbers the magnitude just before its phase."""
    folder = _subset(two_stacks, tmp_path / "two_mag", (10, 11))
    plan = ImagePlan((ImageSlice("coronal", 0.0),), 20, 20)
    base, dyn = _acquisition(plan, seed=9)
    other = tmp_path / "other"
    write_series(other, dyn, [3.0 * (N_BASE + k) for k in range(N_DYN)], plan, ScannerSettings(seed=5), baseline=base, first_series=30)
    _subset(other, folder, (30,))
    choice = pick_series(folder)
    assert (choice.series, choice.magnitude_series) == (11, 10)


def test_real_siemens_exports():
    prisma = require_data(DATA / "siemens-prisma-gre")
    with pytest.raises(DicomError) as exc:  # phase and its repeat: two choices, both listed with the magnitude
        pick_series(prisma)
    assert sorted(re.findall(r"--series (\d+) --magnitude-series (\d+)", str(exc.value))) == [("3", "2"), ("4", "2")]
    assert (pick_series(prisma, series=4).magnitude_series) == 2  # the field map's magnitude holds both TEs
    xa = require_data(DATA / "siemens-xa30-enhanced")
    choice = pick_series(xa)
    assert (choice.series, choice.magnitude_series) == (9, 8)


def test_advisory_stops_where_the_maximum_passes_the_limit(two_stacks, tmp_path):
    folder = _subset(two_stacks, tmp_path / "adv", (10, 11))
    r = replay(folder, tmp_path / "out", ReplayOptions(baseline=N_BASE, noise=1.0))
    temp = np.asarray(nib.load(r.files["temperature"]).dataobj, dtype=np.float64)  # (cols, rows, slices, t)
    mask = np.asarray(nib.load(r.files["mask"]).dataobj).astype(bool)
    peak = [float(np.max(np.where(mask[..., d], temp[..., d], -np.inf))) for d in range(temp.shape[-1])]
    limit = 0.5 * (peak[N_BASE + 1] + peak[N_BASE + 2])  # between the 2nd and 3rd heated dynamics
    shape = r.summary["series"]["shape_slices_rows_cols"]
    adv = Advisory(tuple(shape), {}, 3.0, 37.0, InterlockLimits(max_temperature_C=limit, smoothing_px=1))
    commands = []
    for d in range(N_BASE, temp.shape[-1]):
        t_zyx = np.ascontiguousarray(temp[..., d].transpose(2, 1, 0)).astype(np.float32)
        m_zyx = np.ascontiguousarray(mask[..., d].transpose(2, 1, 0))
        commands.append(adv.step(d, 3.0 * d, t_zyx, np.full_like(t_zyx, 0.5), m_zyx, np.zeros_like(t_zyx)))
    assert commands == ["allow", "allow"] + ["stop"] * (N_DYN - 2)
    first = adv.first_stop
    assert first[0] == N_BASE + 2 and first[4] == "max_temperature" and f"{limit:g}" in first[5]
    # the replay's own advisory (default limits, 60 C): the heating stays below, every dynamic allowed
    rows = (tmp_path / "out" / "advisory.csv").read_text().splitlines()
    assert rows[0] == "dynamic,time_s,command,power_W,reason,detail" and len(rows) == 1 + N_DYN
    want = "allow" if max(peak) < InterlockLimits().max_temperature_C else "stop"
    assert all(f",{want}," in row for row in rows[1:])
    assert r.summary["advisory"]["stop_dynamics"] == sum(",stop," in row for row in rows[1:])


def _cem43_numpy(temp: np.ndarray, times: np.ndarray, steps: int = 200) -> np.ndarray:
    """CEM43 [min] after each dynamic, float64, the temperature linear between dynamics
    (integrated on ``steps`` sub-steps; a segment with an unmeasured end adds nothing)."""
    dose = np.zeros(temp.shape[:-1])
    out = [dose.copy()]
    for d in range(1, temp.shape[-1]):
        a, b = temp[..., d - 1], temp[..., d]
        ok = np.isfinite(a) & np.isfinite(b)
        f = (np.arange(steps) + 0.5) / steps
        tt = a[..., None] + (b - a)[..., None] * f
        r = np.where(tt >= 43.0, 0.5, 0.25)
        seg = np.sum(r ** (43.0 - tt), axis=-1) * (times[d] - times[d - 1]) / steps / 60.0
        dose = dose + np.where(ok, seg, 0.0)
        out.append(dose.copy())
    return np.stack(out, axis=-1)


def test_advisory_controller_stops_when_the_target_has_its_dose(two_stacks, tmp_path):
    """With a target ROI the ablation controller runs in the advisory: 30 W until every measured
    target voxel has 240 CEM43 (numpy CEM43 of the replayed maps), then goal_reached."""
    from fus.mr.roi import parse_roi

    folder = _subset(two_stacks, tmp_path / "ctrl", (10, 11))
    r0 = replay(folder, tmp_path / "probe", ReplayOptions(baseline=N_BASE, noise=1.0))
    affine = np.asarray(r0.summary["affine_mm_ras"])
    centre = affine @ np.array([10.0, 10.0, 0.0, 1.0])  # the heated spot (column, row 10 of 20)
    roi = parse_roi("target=sphere:{:.3f},{:.3f},{:.3f},2.0".format(*centre[:3]))
    r = replay(folder, tmp_path / "out", ReplayOptions(baseline=N_BASE, noise=1.0, rois=[roi]))
    temp = np.asarray(nib.load(r.files["temperature"]).dataobj, dtype=np.float64)
    mask = np.asarray(nib.load(r.files["mask"]).dataobj).astype(bool)
    times = np.array([d["time_s"] for d in r.summary["dynamics"]])
    dose = _cem43_numpy(np.where(mask, temp, np.nan), times)
    from fus.mr.roi import roi_masks

    target = roi_masks([roi], tuple(r.summary["series"]["shape_slices_rows_cols"]), affine)["target"].transpose(2, 1, 0)
    frac = [float(np.mean(dose[..., d][target & mask[..., d]] >= 240.0)) for d in range(temp.shape[-1])]
    want = next(d for d in range(N_BASE, temp.shape[-1]) if frac[d] >= 1.0)  # the heating must reach it
    rows = [line.split(",") for line in (tmp_path / "out" / "advisory.csv").read_text().splitlines()[1:]]
    got = next(int(row[0]) for row in rows if row[4] == "goal_reached")
    assert abs(got - want) <= 1, (got, want, frac)
    for row in rows:
        on = int(row[0]) < got
        assert (row[3], row[4]) == (("30", "control") if on else ("0", "goal_reached")), row
