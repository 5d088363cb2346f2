"""The enhanced multi-frame writer against the classic writer, fus's reader, replay and dcm2niix.

The classic series written from the same dynamics is the reference: fus's reader must give the
same stored images, geometry, times and echo time from both, and ``fus replay`` the same
temperature maps. dcm2niix (the PyPI wheel) is an independent reader of the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_synth import heated_acquisition
from fus.errors import InvalidParameterError
from fus.mr.dicom import load_series
from fus.mr.dicom_write import write_series
from fus.mr.dicom_write_enhanced import ENHANCED_MR_IMAGE_STORAGE, write_enhanced_series
from fus.mr.scanner_sim import ImagePlan, ImageSlice, ScannerSettings
from fus.pipelines.replay import ReplayOptions, replay

N_BASE, N_DYN = 3, 4
TIMES = [N_BASE * 3.0 + 3.0 * k for k in range(N_DYN)]


def _acquisition(plan: ImagePlan, seed: int = 7) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Baseline and heated dynamics: magnitude ~100 with noise 1, a Gaussian phase spot growing in time."""
    return heated_acquisition(plan.shape, N_BASE, N_DYN, rad_per_dynamic=-0.4, spot_px=3.0, offset=0.3, seed=seed)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enhanced")
    plan = ImagePlan(tuple(ImageSlice("axial", z, spacing=(1.5e-3, 1.25e-3)) for z in (-0.012, -0.009, -0.006)), 24, 20)
    settings = ScannerSettings(seed=11)
    base, dyn = _acquisition(plan)
    stacks = write_series(tmp / "classic", dyn, TIMES, plan, settings, baseline=base)
    enh = write_enhanced_series(tmp / "enhanced" / "series.dcm", dyn, TIMES, plan, settings, baseline=base)
    return tmp, plan, settings, stacks, enh


def test_reader_gives_the_classic_series(written):
    _, plan, settings, (stack,), enh = written
    e = load_series(enh.path)
    mag = load_series(stack_folder := enh.path.parents[1] / "classic", stack.magnitude_series)
    ph = load_series(stack_folder, stack.phase_series)
    assert e.enhanced and e.components == ("magnitude", "phase")
    assert e.shape == ph.shape == (N_BASE + N_DYN, 3, plan.rows, plan.cols)
    np.testing.assert_array_equal(e.image("magnitude"), mag.image("magnitude"))
    np.testing.assert_array_equal(e.image("phase"), ph.image("phase"))
    want = mag.image("magnitude") * np.exp(1j * ph.image("phase").astype(np.float64))
    np.testing.assert_allclose(e.complex(), want, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(e.affine, ph.affine, atol=1e-9)
    np.testing.assert_allclose(e.affine, enh.affines[0], atol=1e-4)
    np.testing.assert_allclose(e.times, ph.times, atol=1e-9)
    np.testing.assert_allclose(e.times, np.arange(N_BASE + N_DYN) * settings.dynamic_period, atol=1e-6)
    assert e.echo_times == ph.echo_times and abs(e.echo_time(1) - settings.te) < 1e-12
    assert abs(e.f0 - ph.f0) < 1e-3 and abs(e.b0 - settings.b0) < 1e-6
    assert enh.n_baseline == stack.n_baseline == N_BASE and enh.gain == stack.gain


def test_replay_gives_the_classic_temperature(written):
    tmp, _, settings, (stack,), enh = written
    noise = 1.0 * stack.gain
    got = replay(enh.path, tmp / "replay_enh", ReplayOptions(baseline=N_BASE, noise=noise))
    want = replay(tmp / "classic", tmp / "replay_classic",
                  ReplayOptions(series=stack.phase_series, magnitude_series=stack.magnitude_series, baseline=N_BASE, noise=noise))
    t_enh = np.asarray(nib.load(got.files["temperature"]).dataobj)
    t_cls = np.asarray(nib.load(want.files["temperature"]).dataobj)
    assert t_enh.shape == t_cls.shape and np.isfinite(t_cls).sum() > 0.5 * t_cls.size
    np.testing.assert_array_equal(np.isfinite(t_enh), np.isfinite(t_cls))
    np.testing.assert_allclose(t_enh, t_cls, rtol=0, atol=1e-5, equal_nan=True)
    # the heating is there (phase -1.6 rad at the centre of the last dynamic, scale < 0)
    assert np.nanmax(t_enh[..., -1]) > 10.0


def test_standard_attributes(written):
    _, plan, settings, _, enh = written
    ds = pydicom.dcmread(enh.path)
    n_img, n_sl = N_BASE + N_DYN, plan.shape[0]
    assert ds.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    assert int(ds.NumberOfFrames) == enh.frames == 2 * n_sl * n_img
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored) == (plan.rows, plan.cols, 16, 12)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "MIXED", "NONE"] and ds.ComplexImageComponent == "MIXED"
    assert ds.pixel_array.shape == (enh.frames, plan.rows, plan.cols)
    shared = ds.SharedFunctionalGroupsSequence[0]
    for name in ("PixelMeasuresSequence", "PlaneOrientationSequence", "MRTimingAndRelatedParametersSequence",
                 "MRImagingModifierSequence", "FrameAnatomySequence"):
        assert name in shared, name
    assert abs(shared.MRImagingModifierSequence[0].TransmitterFrequency - settings.imaging_frequency / 1e6) < 1e-6
    pointers = [item.DimensionIndexPointer for item in ds.DimensionIndexSequence]
    assert pointers == [0x00209056, 0x00209057, 0x00209128, 0x00089208]
    org = ds.DimensionOrganizationSequence[0].DimensionOrganizationUID
    assert all(item.DimensionOrganizationUID == org for item in ds.DimensionIndexSequence)
    seen, last_tpi, prev_time, comps = set(), 0, "", {"MAGNITUDE": 0, "PHASE": 0}
    for k, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        content = frame.FrameContentSequence[0]
        ftype = frame.MRImageFrameTypeSequence[0]
        comps[ftype.ComplexImageComponent] += 1
        assert ftype.FrameType[2] == ftype.ComplexImageComponent[0]
        tpi = int(content.TemporalPositionIndex)
        assert tpi >= last_tpi
        if tpi > last_tpi:  # a new dynamic: strictly later
            assert content.FrameAcquisitionDateTime > prev_time
            prev_time = content.FrameAcquisitionDateTime
        last_tpi = tpi
        dims = tuple(content.DimensionIndexValues)
        assert dims == (int(content.StackID), content.InStackPositionNumber, tpi, 1 if ftype.ComplexImageComponent == "MAGNITUDE" else 2)
        assert dims not in seen
        seen.add(dims)
        pvt = frame.PixelValueTransformationSequence[0]
        want = ("2", "-4096") if ftype.ComplexImageComponent == "PHASE" else ("1", "0")
        assert (str(pvt.RescaleSlope), str(pvt.RescaleIntercept)) == want
        assert abs(frame.MREchoSequence[0].EffectiveEchoTime - settings.te * 1e3) < 1e-9
        assert len(frame.PlanePositionSequence[0].ImagePositionPatient) == 3
    assert last_tpi == n_img and comps == {"MAGNITUDE": n_sl * n_img, "PHASE": n_sl * n_img}


def test_deterministic_and_bad_arguments(written, tmp_path):
    _, plan, settings, _, enh = written
    base, dyn = _acquisition(plan)
    again = write_enhanced_series(tmp_path / "again.dcm", dyn, TIMES, plan, settings, baseline=base)
    assert again.path.read_bytes() == enh.path.read_bytes()
    with pytest.raises(InvalidParameterError) as exc:
        write_enhanced_series(tmp_path / "x.dcm", dyn, TIMES[::-1], plan, settings)
    assert exc.value.name == "times"
    with pytest.raises(InvalidParameterError) as exc:
        write_enhanced_series(tmp_path, dyn, TIMES, plan, settings)
    assert exc.value.name == "path"
    with pytest.raises(InvalidParameterError) as exc:
        write_enhanced_series(tmp_path / "x.dcm", dyn, TIMES, plan, settings, series_number=0)
    assert exc.value.name == "series_number"


def test_several_orientations_are_stacks(tmp_path):
    """The standard coronal / sagittal / axial plan: one file, three StackIDs, per-frame geometry."""
    plan = ImagePlan((ImageSlice("coronal", 0.0), ImageSlice("sagittal", 0.0), ImageSlice("axial", -0.003)), 8, 8)
    base, dyn = _acquisition(plan)
    enh = write_enhanced_series(tmp_path / "three.dcm", dyn, TIMES, plan, ScannerSettings(), baseline=base)
    assert len(enh.stacks) == 3
    ds = pydicom.dcmread(enh.path, stop_before_pixels=True)
    assert "PlaneOrientationSequence" not in ds.SharedFunctionalGroupsSequence[0]
    stack_ids = {f.FrameContentSequence[0].StackID for f in ds.PerFrameFunctionalGroupsSequence}
    assert stack_ids == {"1", "2", "3"}
    assert all("PlaneOrientationSequence" in f for f in ds.PerFrameFunctionalGroupsSequence)


def test_dcm2niix_converts_it(written, tmp_path):
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    assert Path(exe).exists(), "dcm2niix is missing: it is part of the test extra (pip install -e '.[test]')"
    _, plan, settings, _, enh = written
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(enh.path, src / "series.dcm")
    run = subprocess.run([exe, "-z", "n", "-f", "%s", "-o", str(tmp_path), str(src)], capture_output=True, text=True, timeout=120)
    text = run.stdout + run.stderr
    assert run.returncode == 0, text
    assert "error" not in text.lower() and "warning" not in text.lower(), text
    (nii,) = tmp_path.glob("*.nii")
    img = nib.load(nii)
    # dcm2niix derives the slices of a volume from the number of temporal positions (frames /
    # TemporalPositionIndex count): each of its N_BASE + N_DYN volumes holds one dynamic's
    # magnitude and phase slices; it splits components inside one enhanced file only with the
    # Philips private tags
    n_sl = plan.shape[0]
    assert img.shape == (plan.cols, plan.rows, 2 * n_sl, N_BASE + N_DYN)
    assert np.allclose(img.header.get_zooms()[:2], np.asarray(plan.slices[0].spacing)[::-1] * 1e3)
    side = json.loads(nii.with_suffix(".json").read_text())
    assert abs(side["ImagingFrequency"] - settings.imaging_frequency / 1e6) < 1e-4
    assert side["SeriesNumber"] == enh.series_number and side["FlipAngle"] == 25
    # dcm2niix v1.0.20260724 reads the per-frame EffectiveEchoTime of this file as 0 ("Parameters
    # vary across 3D volumes ... TE=0") and leaves EchoTime / RepetitionTime out of the sidecar;
    # fus's reader takes TE from the MR Echo macro (test_reader_gives_the_classic_series)
