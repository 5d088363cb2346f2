"""`fus replay`: synthetic DICOM round trips (classic and enhanced) and the real Siemens no-heating pair."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import dicom_synth as ds
from conftest import SHARED_DATA, require_data
from fus.cli.main import main
from fus.mr.baseline import Baseline
from fus.mr.dicom import load_series
from fus.mr.prf import GAMMA_BAR, prf_scale
from fus.mr.thermometry import Thermometry, ThermometrySettings

F0_MHZ = 123.25483
B0 = F0_MHZ / (GAMMA_BAR / 1e6)
TE_MS = 10.0
NS, NY, NX = 3, 24, 28
DT_S = 5.0
N_DYN = 6


def truth_temperatures() -> np.ndarray:
    """dT [C] per dynamic (dyn, slice, row, col): a Gaussian hot spot heating from dynamic 2 on."""
    yy, xx = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    spot = np.exp(-((yy - 11.0) ** 2 + (xx - 15.0) ** 2) / (2 * 3.0**2))
    amp = np.array([0, 0, 6, 14, 20, 9], dtype=np.float64)  # rise then cooling, < +-pi of phase
    dT = amp[:, None, None, None] * spot[None, None] * np.array([0.6, 1.0, 0.8])[None, :, None, None]
    return dT


def synth_complex(rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dT = truth_temperatures()
    scale = prf_scale(B0, TE_MS * 1e-3)
    mag = rng.uniform(1500, 3000, (NS, NY, NX))
    phi0 = rng.uniform(-np.pi, np.pi, (NS, NY, NX))
    phase = np.angle(np.exp(1j * (phi0[None] + dT / scale)))
    return mag, phase, dT


def _time(k: int) -> str:
    s = 12 * 3600 + k * DT_S
    return f"{int(s // 3600):02d}{int(s % 3600 // 60):02d}{s % 60:09.6f}"


def write_classic(folder: Path, mag, phase, *, mag_shift: int = 0, mag_te_ms: float = TE_MS) -> None:
    """Siemens-style classic: one file per image, magnitude and phase as two series (the magnitude
    optionally stamped ``mag_shift`` dynamics later, or at another echo time)."""
    uid_m, uid_p = ds.new_uid(), ds.new_uid()
    stored = ds.siemens_phase_pixels(phase)
    for k in range(N_DYN):
        for s in range(NS):
            common = dict(position=(0.0, 0.0, 4.0 * s), acquisition_time=_time(k), echo_time=TE_MS, imaging_frequency=F0_MHZ)
            inst = k * NS + s + 1
            mcommon = dict(common, acquisition_time=_time(k + mag_shift), echo_time=mag_te_ms)
            ds.classic(folder / "mag" / f"m{k:02d}_{s:02d}", np.round(mag[s]).astype(np.uint16), series_uid=uid_m, series_number=10,
                       image_type=("ORIGINAL", "PRIMARY", "M", "ND"), instance_number=inst, **mcommon)
            ds.classic(folder / "pha" / f"p{k:02d}_{s:02d}", stored[k, s], series_uid=uid_p, series_number=11,
                       image_type=("ORIGINAL", "PRIMARY", "P", "ND"), rescale=(2.0, -4096.0), instance_number=inst, **common)


def write_enhanced(folder: Path, mag, phase) -> None:
    """Siemens-XA-style enhanced: one multi-frame file holding magnitude and phase of every dynamic."""
    stored = ds.siemens_phase_pixels(phase)
    frames, pixels = [], []
    for k in range(N_DYN):
        for comp in ("MAGNITUDE", "PHASE"):
            for s in range(NS):
                fr = dict(position=(0.0, 0.0, 4.0 * s), component=comp, echo_time=TE_MS, temporal_index=k + 1,
                          frame_time=f"20240101{_time(k)}")
                if comp == "PHASE":
                    fr["rescale"] = (2.0, -4096.0)
                frames.append(fr)
                pixels.append(np.round(mag[s]).astype(np.uint16) if comp == "MAGNITUDE" else stored[k, s])
    ds.enhanced(folder / "enh.dcm", np.stack(pixels), frames, series_uid=ds.new_uid(), series_number=20,
                transmitter_frequency=F0_MHZ)


def _read4d(path: Path) -> np.ndarray:
    """NIfTI [i=col, j=row, k=slice, t] -> [t, slice, row, col]."""
    return np.asarray(nib.load(path).dataobj).transpose(3, 2, 1, 0)


def _fine_dose(temps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """CEM43 [min] of a piecewise-linear temperature history by a fine float64 midpoint sum."""
    dose = np.zeros(temps.shape[1:])
    m = 4000
    s = (np.arange(m) + 0.5) / m
    for k in range(len(times) - 1):
        t = temps[k][..., None] + (temps[k + 1] - temps[k])[..., None] * s
        r = np.where(t >= 43, 0.5, 0.25) ** (43 - t)
        dose += r.mean(-1) * (times[k + 1] - times[k]) / 60.0
    return dose


@pytest.mark.parametrize("flavour", ["classic", "enhanced"])
def test_round_trip_recovers_known_temperature(tmp_path, rng, flavour, capsys):
    mag, phase, dT = synth_complex(rng)
    src = tmp_path / "dicom"
    if flavour == "classic":
        write_classic(src, mag, phase)
        args = ["--series", "11", "--magnitude-series", "10"]
    else:
        write_enhanced(src, mag, phase)
        args = []
    out = tmp_path / "out"
    series = load_series(src, 11 if flavour == "classic" else None)
    centre = (series.affine @ np.array([15, 11, 1, 1.0]))[:3]
    roi = f"spot=sphere:{centre[0]:.3f},{centre[1]:.3f},{centre[2]:.3f},2.5"
    rc = main(["replay", str(src), "-o", str(out), "--noise", "2", "--baseline", "2", "--roi", roi, "--no-progress", *args])
    assert rc == 0, capsys.readouterr()
    temp = _read4d(out / "temperature.nii.gz")
    assert temp.shape == (N_DYN, NS, NY, NX)
    err = np.abs(temp - (37.0 + dT))
    assert np.nanmax(err) <= 0.05, f"max |T - truth| = {np.nanmax(err):.4f} C"
    assert not np.isnan(temp).any()  # all voxels have SNR >> 5
    # dose: exactly the linear-in-step integral of the measured history (fine float64 sum), and
    # within 5% of the true history's (the 12-bit phase quantisation leaves T within ~0.02 C,
    # and below 43 C the dose rate changes by 1.39 %/0.01 C)
    dose = np.asarray(nib.load(out / "dose.nii.gz").dataobj).transpose(2, 1, 0)
    times = np.arange(N_DYN) * DT_S
    np.testing.assert_allclose(dose, _fine_dose(temp.astype(np.float64), times), rtol=1e-4)
    np.testing.assert_allclose(dose, _fine_dose(37.0 + dT, times), rtol=5e-2)
    side = json.loads((out / "replay.json").read_text())
    assert side["series"]["dynamics"] == N_DYN and abs(side["series"]["b0_T"] - B0) < 1e-6
    assert [d["time_s"] for d in side["dynamics"]] == pytest.approx(list(np.arange(N_DYN) * DT_S))
    rows = list(csv.DictReader(open(out / "roi_stats.csv")))
    assert len(rows) == N_DYN
    peak = [float(r["max_C"]) for r in rows]
    truth_peak = [37 + dT[k][:, 9:14, 13:18].max() for k in range(N_DYN)]
    np.testing.assert_allclose(peak, truth_peak, atol=0.3)  # sphere of 2.5 mm covers the peak voxel


def test_baseline_library_follows_motion(tmp_path, rng):
    """Two baseline states (e.g. breathing); later dynamics alternate: the library picks the match."""
    mag, phase, dT = synth_complex(rng)
    alt = np.angle(np.exp(1j * (phase + rng.uniform(-2, 2, phase.shape[1:])[None])))  # a second 'position'
    mixed = phase.copy()
    for k in (1, 3, 5):
        mixed[k] = alt[k]  # dynamic 1 is the second baseline state; 3 and 5 are in that state too
    write_enhanced(tmp_path / "d", mag, mixed)
    out = tmp_path / "o"
    rc = main(["replay", str(tmp_path / "d"), "-o", str(out), "--noise", "2", "--baseline", "2", "--baseline-library", "--no-progress"])
    assert rc == 0
    side = json.loads((out / "replay.json").read_text())
    assert [d["baseline_index"] for d in side["dynamics"]] == [0, 1, 0, 1, 0, 1]
    temp = _read4d(out / "temperature.nii.gz")
    assert np.nanmax(np.abs(temp - (37 + dT))) <= 0.05  # each dynamic against its own state


def test_one_dynamic_is_a_clear_error(tmp_path, capsys):
    rng = np.random.default_rng(0)
    uid = ds.new_uid()
    for s in range(2):
        ds.classic(tmp_path / f"m{s}", rng.integers(100, 200, (8, 8)).astype(np.uint16), series_uid=uid, position=(0, 0, 3.0 * s), instance_number=s + 1)
        ds.classic(tmp_path / f"p{s}", rng.integers(0, 4095, (8, 8)).astype(np.uint16), series_uid=uid, position=(0, 0, 3.0 * s),
                   image_type=("ORIGINAL", "PRIMARY", "P", "ND"), rescale=(2.0, -4096.0), instance_number=s + 1)
    rc = main(["replay", str(tmp_path), "-o", str(tmp_path / "o"), "--no-progress"])
    assert rc == 1
    assert "1 dynamic" in capsys.readouterr().err


def test_phase_only_series_names_the_missing_magnitude(tmp_path, capsys, rng):
    mag, phase, _ = synth_complex(rng)
    write_classic(tmp_path, mag, phase)
    rc = main(["replay", str(tmp_path), "-o", str(tmp_path / "o"), "--series", "11", "--no-progress"])
    assert rc == 1
    assert "magnitude" in capsys.readouterr().err


@pytest.mark.parametrize("kw, needle", [(dict(mag_shift=1), "not the same acquisitions"), (dict(mag_te_ms=2 * TE_MS), "no echo at the phase's TE")])
def test_magnitude_series_must_match_the_phase(tmp_path, capsys, rng, kw, needle):
    """A separate magnitude series acquired at other times, or at another echo, is refused
    (it would be paired dynamic by dynamic with the wrong phase)."""
    mag, phase, _ = synth_complex(rng)
    write_classic(tmp_path, mag, phase, **kw)
    rc = main(["replay", str(tmp_path), "-o", str(tmp_path / "o"), "--series", "11", "--magnitude-series", "10", "--noise", "2", "--no-progress"])
    assert rc == 1
    assert needle in capsys.readouterr().err


def test_roi_outside_grid_is_a_clear_error(tmp_path, capsys, rng):
    mag, phase, _ = synth_complex(rng)
    write_enhanced(tmp_path, mag, phase)
    rc = main(["replay", str(tmp_path), "-o", str(tmp_path / "o"), "--noise", "2", "--roi", "far=sphere:900,900,900,1", "--no-progress"])
    assert rc == 1
    assert "far" in capsys.readouterr().err


def test_real_siemens_no_heating_pair():
    """Real Prisma phase maps acquired ~2 min apart (no heating): what drift correction does.

    The maps are phase differences between two echoes (TE 5.19 / 7.65 ms), so the PRF echo time is
    their difference, 2.46 ms: at 2.895 T that is -52.5 C per radian. The magnitude is the second
    echo of the separate magnitude series; the noise is taken as its 5th percentile (background).
    Measured here (48-49 k voxels at SNR >= 30): median |dT| 5.2 C without correction (the median
    wrapped phase difference is -0.029 rad as the data README says, but the field drift between the
    two acquisitions is spatially smooth, not constant), 5.6 C with a slice constant (order 0),
    1.05 C with a plane (order 1) and 0.22 C with a quadratic (order 2), against 0.16 C expected
    from the noise alone (0.674 x the median predicted sigma_T of 0.24 C).
    """
    root = SHARED_DATA / "dicom" / "siemens-prisma-gre"
    require_data(root)
    p1 = load_series(root / "phase")
    p2 = load_series(root / "phase-repeat")
    mag = load_series(root / "mag")
    m = mag.image("magnitude", mag.echoes[-1])[0]
    te = mag.echo_time(mag.echoes[-1]) - mag.echo_time(mag.echoes[0])
    assert abs(te - 2.46e-3) < 1e-5
    z1 = (m * np.exp(1j * p1.image("phase")[0])).astype(np.complex64)
    z2 = (m * np.exp(1j * p2.image("phase")[0])).astype(np.complex64)
    noise = float(np.percentile(m, 5))
    median_abs, sigma = {}, {}
    for drift, order in (("none", 1), ("poly", 0), ("poly", 1), ("poly", 2)):
        th = Thermometry(Baseline(z1, noise), p1.b0, te, ThermometrySettings(drift=drift, drift_order=order, snr_min=30))
        r = th.process(z2, 60.0, noise)
        key = f"{drift}{order if drift == 'poly' else ''}"
        median_abs[key] = float(np.nanmedian(np.abs(r.delta_t)))
        sigma[key] = float(np.nanmedian(r.sigma_t))
        measured = int(r.mask.sum())
    print("real Siemens pair, median |dT| [C]: " + ", ".join(f"{k} {v:.3f}" for k, v in median_abs.items())
          + f"; predicted noise-only median |dT| {0.674 * sigma['poly2']:.3f} C; {measured} voxels")
    assert measured > 40_000
    assert median_abs["none"] > 3.0  # the drift between acquisitions is visible
    assert median_abs["poly2"] < median_abs["poly1"] < median_abs["none"]
    assert median_abs["poly2"] < 2 * 0.674 * sigma["poly2"]  # what is left is close to the noise
    assert math.isfinite(median_abs["poly2"])


def test_real_siemens_pair_with_synthetic_heating():
    """Known heating added to real phase (the data README's recipe): a 20 C Gaussian hot spot
    multiplied into the repeat acquisition as exp(i dT / scale). With the hot spot excluded from
    the quadratic drift fit, the fit sees the same voxels as without heating, so the recovered
    map must equal the no-heating map plus the known heating (linearity on real noise and real
    drift), and the peak must come back within the noise."""
    root = SHARED_DATA / "dicom" / "siemens-prisma-gre"
    require_data(root)
    p1, p2, mag = load_series(root / "phase"), load_series(root / "phase-repeat"), load_series(root / "mag")
    m = mag.image("magnitude", mag.echoes[-1])[0]
    te = mag.echo_time(mag.echoes[-1]) - mag.echo_time(mag.echoes[0])
    z1 = (m * np.exp(1j * p1.image("phase")[0])).astype(np.complex64)
    z2 = (m * np.exp(1j * p2.image("phase")[0])).astype(np.complex64)
    noise = float(np.percentile(m, 5))
    ns, ny, nx = z1.shape
    # hot spot in the brain: centre at the magnitude-weighted centroid of the middle slice
    ks, yy, xx = np.meshgrid(np.arange(ns), np.arange(ny), np.arange(nx), indexing="ij")
    w = m[ns // 2] * (m[ns // 2] > np.percentile(m[ns // 2], 70))
    cy, cx = (float((w * a[ns // 2]).sum() / w.sum()) for a in (yy, xx))
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / 3.0**2 + ((ks - ns // 2) / 1.5) ** 2
    heat = 20.0 * np.exp(-0.5 * r2)
    scale = prf_scale(p1.b0, te)
    z_hot = (z2 * np.exp(1j * heat / scale)).astype(np.complex64)
    exclude = r2 < 4.0**2  # beyond 4 sigma the added phase is < 7e-3 C
    settings = ThermometrySettings(drift="poly", drift_order=2, exclude=exclude, snr_min=30)
    cold = Thermometry(Baseline(z1, noise), p1.b0, te, settings).process(z2, 60.0, noise)
    hot = Thermometry(Baseline(z1, noise), p1.b0, te, settings).process(z_hot, 60.0, noise)
    both = (cold.mask > 0) & (hot.mask > 0)
    spot = both & (heat > 10.0)
    assert spot.sum() >= 20, int(spot.sum())  # the spot lies in measured tissue
    # outside the excluded region the heating is below 7e-3 C; the fits are identical
    np.testing.assert_allclose(hot.drift_coef, cold.drift_coef, atol=2e-4)
    np.testing.assert_allclose(hot.delta_t[both], cold.delta_t[both] + heat[both], atol=0.02)
    err = hot.delta_t[spot] - heat[spot]
    sigma = float(np.median(hot.sigma_t[spot]))
    print(f"real Siemens pair + 20 C spot: {int(spot.sum())} voxels > 10 C, median error {np.median(err):+.3f} C, "
          f"median |error| {np.median(np.abs(err)):.3f} C, median sigma_T {sigma:.3f} C, "
          f"peak {np.nanmax(hot.delta_t[spot]):.2f} C")
    assert abs(float(np.median(err))) < 3 * sigma
    assert float(np.median(np.abs(err))) < 3 * 0.674 * sigma + 0.3  # noise plus the drift residual seen without heating


def test_output_folder_problems_and_stale_files(tmp_path, capsys, rng):
    """An output path that is a file, a repeated ROI name and a drift ROI without --drift roi are
    one-line errors; a rerun into the same folder leaves none of the earlier run's files."""
    mag, phase, _ = synth_complex(rng)
    write_enhanced(tmp_path / "in", mag, phase)
    base = ["replay", str(tmp_path / "in"), "--noise", "2", "--no-progress"]
    (tmp_path / "afile").write_text("x")
    assert main([*base, "-o", str(tmp_path / "afile")]) == 1
    assert "not a folder" in capsys.readouterr().err
    roi = "a=sphere:0,0,4,6"
    assert main([*base, "-o", str(tmp_path / "o"), "--roi", roi, "--roi", roi]) == 1
    assert "names two regions" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "o"), "--drift-roi", roi]) == 1
    assert "--drift roi only" in capsys.readouterr().err
    out = tmp_path / "o"
    assert main([*base, "-o", str(out), "--drift", "poly", "--drift-order", "0", "--roi", roi]) == 0
    assert (out / "drift.nii.gz").is_file() and (out / "roi_stats.csv").is_file()
    assert main([*base, "-o", str(out)]) == 0
    capsys.readouterr()
    assert not (out / "drift.nii.gz").exists() and not (out / "roi_stats.csv").exists()
    listed = json.loads((out / "replay.json").read_text())
    assert "drift" not in json.dumps(listed.get("files", {}))


def test_siemens_field_map_phase_needs_the_echo_difference(tmp_path, capsys, rng):
    """A Siemens field-map phase (SequenceName *fm2d2r) is the difference of two echoes labelled
    with TE2: replay refuses the label and takes --te; the temperatures then scale with it."""
    import pydicom

    mag, phase, dT = synth_complex(rng)
    write_classic(tmp_path / "in", mag, phase)
    for f in sorted((tmp_path / "in" / "pha").iterdir()):
        ds = pydicom.dcmread(f)
        ds.SequenceName = "*fm2d2r"
        ds.save_as(f)
    base = ["replay", str(tmp_path / "in"), "--series", "11", "--magnitude-series", "10", "--noise", "2", "--no-progress"]
    assert main([*base, "-o", str(tmp_path / "o1")]) == 1
    assert "--te" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "o2"), "--te", str(TE_MS / 2)]) == 0
    capsys.readouterr()
    sidecar = json.loads((tmp_path / "o2" / "replay.json").read_text())
    assert sidecar["series"]["echo_time_s"] == pytest.approx(TE_MS / 2 * 1e-3) and sidecar["series"]["echo_time_source"] == "given"
    got = _read4d(tmp_path / "o2" / "temperature.nii.gz")
    hot = dT[-1] > 5
    np.testing.assert_allclose(got[-1][hot] - 37.0, 2 * dT[-1][hot], atol=0.1)  # half the TE: twice the dT per radian
