"""DICOM series reader: real scanner data against dcm2niix and the tags, plus synthetic series.

Real data: ``../shared/data/dicom`` beside the checkout (README there lists the traps). Every
check compares with something independent of the reader: dcm2niix's NIfTI conversion of the same
files (values and affine), the DICOM tags read directly with pydicom, or known facts of the scans.

Voxel correspondence with dcm2niix is found from the pixel data alone (the axis flips that make
the arrays equal), never from the affines, so the affine comparison can fail. Observed: dcm2niix
reverses the row axis for Siemens and GE, and both in-plane axes for the Philips series.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import require_data

import fus.mr.dicom_series as dicom_mod
from fus.errors import DicomError, InvalidParameterError
from fus.mr.dicom import GAMMA_PROTON, load_series, scan

from dicom_synth import classic, enhanced, new_uid, siemens_phase_pixels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def _need_data() -> None:
    require_data(DATA)


@functools.lru_cache(maxsize=None)
def _series(sub: str):
    """The one series of a data folder (loaded once per test session)."""
    return load_series(DATA / sub)


@functools.lru_cache(maxsize=None)
def _image(sub: str, component: str, echo: int | None) -> np.ndarray:
    return _series(sub).image(component, echo)


def _ref(name: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(DATA / name)
    return np.asarray(img.dataobj, dtype=np.float64), img.affine


def _flip(arr: np.ndarray, flips: tuple[int, int, int]) -> np.ndarray:
    return arr[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]


def _best_flips(ours: np.ndarray, ref: np.ndarray) -> tuple[tuple[int, int, int], float]:
    """Axis flips of the reference that match our array best, from the data alone."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    best = None
    for flips in itertools.product((0, 1), repeat=3):
        d = float(np.max(np.abs(ours - _flip(ref, flips))))
        if best is None or d < best[1]:
            best = (flips, d)
    assert best is not None
    return best


def _flip_matrix(flips: tuple[int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    f = np.eye(4)
    for ax, fl in enumerate(flips):
        if fl:
            f[ax, ax] = -1.0
            f[ax, 3] = shape[ax] - 1
    return f


# (folder, series number, component, echo, reference NIfTI, factor to radians or None)
SIEMENS_GE_CASES = [
    ("siemens-prisma-gre/mag", 2, "magnitude", 1, "siemens-prisma-gre/dcm2niix-ref/Si_2_gre_field_magph_e1.nii", None),
    ("siemens-prisma-gre/mag", 2, "magnitude", 2, "siemens-prisma-gre/dcm2niix-ref/Si_2_gre_field_magph_e2.nii", None),
    ("siemens-prisma-gre/phase", 3, "phase", 2, "siemens-prisma-gre/dcm2niix-ref/Si_3_gre_field_magph_e2_ph.nii", math.pi / 4096),
    ("siemens-prisma-gre/phase-repeat", 4, "phase", 2, "siemens-prisma-gre/dcm2niix-ref/Si_4_gre_field_ph_e2_ph.nii", math.pi / 4096),
    ("siemens-xa30-enhanced/8_gre_field_mapping", 8, "magnitude", 1, "siemens-xa30-enhanced/dcm2niix-ref/8_gre_field_mapping_e1.nii", None),
    ("siemens-xa30-enhanced/8_gre_field_mapping", 8, "magnitude", 2, "siemens-xa30-enhanced/dcm2niix-ref/8_gre_field_mapping_e2.nii", None),
    ("siemens-xa30-enhanced/9_gre_field_mapping", 9, "phase", 1, "siemens-xa30-enhanced/dcm2niix-ref/9_gre_field_mapping_e2_ph.nii", math.pi / 4096),
    ("ge-epirt-time-order", 4, "magnitude", 1, "ge-epirt-time-order/dcm2niix-ref/DCM2NIIX_regression_test_4.nii", None),
]
PHILIPS_CASES = [
    (sub, 2001, comp, echo, f"{sub}/dcm2niix-ref/2001_WIP_fcMRI_Field_Mapping_{tag}_e{echo}{'_ph' if comp == 'phase' else ''}.nii.gz", None)
    for sub, tag in (("philips-ingenia-classic", "cl"), ("philips-ingenia-enhanced", "enh"))
    for echo in (1, 2)
    for comp in ("magnitude", "phase")
]
ALL_CASES = SIEMENS_GE_CASES + PHILIPS_CASES


def _case_id(case: tuple) -> str:
    return f"{case[0].split('/')[0]}-{case[0].split('/')[-1]}-{case[2]}-e{case[3]}"


# --------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------


def test_scan_lists_every_series_and_skips_non_dicom():
    _need_data()
    infos = scan(DATA)
    found = sorted((i.series_number, i.vendor, i.enhanced, i.components, i.n_slices, i.n_dynamics) for i in infos)
    assert found == sorted(
        [
            (2, "siemens", False, ("magnitude",), 36, 1),
            (3, "siemens", False, ("phase",), 36, 1),
            (4, "siemens", False, ("phase",), 36, 1),
            (4, "ge", False, ("magnitude",), 15, 10),
            (8, "siemens", True, ("magnitude",), 33, 1),
            (9, "siemens", True, ("phase",), 33, 1),
            # the classic and enhanced Philips exports share one SeriesInstanceUID: kept apart
            (2001, "philips", False, ("magnitude", "phase"), 53, 1),
            (2001, "philips", True, ("magnitude", "phase"), 53, 1),
        ]
    )
    assert all(i.error is None for i in infos)
    by_folder = {Path(i.folder).name: i for i in infos}
    # README-Series.txt, the dcm2niix NIfTI/JSON and the LICENSE files are not DICOM: skipped
    assert by_folder["ge-epirt-time-order"].n_files == 150
    assert by_folder["philips-ingenia-classic"].n_files == 212
    assert by_folder["philips-ingenia-enhanced"].n_files == 1
    assert by_folder["philips-ingenia-enhanced"].n_images == 212
    d = by_folder["mag"].as_dict()
    assert d["echo_times_s"] == pytest.approx([5.19e-3, 7.65e-3])
    assert d["matrix"] == [64, 64] and d["pixel_spacing_mm"] == [3.25, 3.25]
    assert d["slice_spacing_mm"] == pytest.approx(3.6, abs=1e-4)


def test_siemens_magnitude_keeps_all_72_images():
    _need_data()
    s = _series("siemens-prisma-gre/mag")
    assert s.info.n_images == 72 and len(s.files) == 72
    assert s.echoes == (1, 2)
    assert s.echo_times == pytest.approx([5.19e-3, 7.65e-3], abs=1e-9)
    assert s.shape == (1, 36, 64, 64)
    files1, files2 = s.image_files("magnitude", 1), s.image_files("magnitude", 2)
    assert {p.name for row in files1 for p, _ in row} == {f"e1_{k:02d}.dcm" for k in range(1, 37)}
    assert {p.name for row in files2 for p, _ in row} == {f"e2_{k:02d}.dcm" for k in range(1, 37)}
    # the trap: the two echoes of a slice reuse one InstanceNumber
    inst1 = pydicom.dcmread(files1[0][0][0], stop_before_pixels=True).InstanceNumber
    inst2 = pydicom.dcmread(files2[0][0][0], stop_before_pixels=True).InstanceNumber
    assert inst1 == inst2
    e1, e2 = _image("siemens-prisma-gre/mag", "magnitude", 1), _image("siemens-prisma-gre/mag", "magnitude", 2)
    assert not np.array_equal(e1, e2)


def test_b0_from_imaging_frequency():
    _need_data()
    prisma = _series("siemens-prisma-gre/mag")
    assert prisma.f0 == pytest.approx(123.25483e6, abs=1.0)
    assert prisma.b0 == pytest.approx(2.895, abs=1e-3)
    assert prisma.b0 == pytest.approx(2 * math.pi * 123.25483e6 / (2 * math.pi * 42.577478e6), rel=1e-12)
    assert GAMMA_PROTON == pytest.approx(2 * math.pi * 42.577478e6, rel=1e-12)
    xa30 = _series("siemens-xa30-enhanced/9_gre_field_mapping")
    assert xa30.f0 == pytest.approx(123.262369e6, abs=1.0)  # (0018,9098) TransmitterFrequency
    assert xa30.b0 == pytest.approx(2.895, abs=1e-3)
    assert _series("philips-ingenia-enhanced").f0 == pytest.approx(127.748512e6, abs=1.0)
    assert _series("ge-epirt-time-order").f0 == pytest.approx(127.696749e6, abs=1.0)


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
def test_affine_and_values_match_dcm2niix(case):
    _need_data()
    sub, _number, comp, echo, ref_name, to_rad = case
    s = _series(sub)
    ours = Series_to_nifti(s, _image(sub, comp, echo))
    ref, ref_affine = _ref(ref_name)
    if to_rad is not None:
        ref = ref * to_rad
    flips, maxdiff = _best_flips(ours, ref)
    vendor = s.vendor
    expected_flips = (1, 1, 0) if vendor == "philips" else (0, 1, 0)
    assert flips == expected_flips
    # world coordinates of the same voxel (all 8 corners) agree within 1e-3 mm
    f = _flip_matrix(flips, ours.shape)
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, ours.shape[0] - 1) for j in (0, ours.shape[1] - 1) for k in (0, ours.shape[2] - 1)]
    ).T
    assert np.max(np.abs(s.affine @ corners - ref_affine @ f @ corners)) < 1e-3
    scale = np.max(np.abs(ref))
    if vendor in ("siemens", "ge") and comp == "magnitude":
        assert maxdiff == 0.0  # identical pixel values
    elif vendor == "philips" and comp == "magnitude":
        assert maxdiff <= 1e-6 * scale  # both are the Philips FP value, float32 rounding apart
    elif vendor == "siemens":
        assert maxdiff < 1e-6  # dcm2niix keeps -4096..4094; ours is that * pi / 4096
    else:
        # Philips phase: dcm2niix's scl_slope 1.534462e-3 vs FP slope 1/SS = 2 pi / 4095
        assert maxdiff < 5e-4


def Series_to_nifti(s, arr: np.ndarray) -> np.ndarray:
    out = s.to_nifti_order(arr[0] if arr.shape[0] == 1 else arr)
    return np.asarray(out, dtype=np.float64)


def test_nifti_helper_matches_transpose():
    _need_data()
    s = _series("siemens-xa30-enhanced/8_gre_field_mapping")
    data, aff = s.nifti("magnitude", 2)
    img = _image("siemens-xa30-enhanced/8_gre_field_mapping", "magnitude", 2)
    assert data.shape == (64, 64, 33)
    assert np.array_equal(data[5, 7, 9], img[0, 9, 7, 5])
    assert np.array_equal(aff, s.affine)
    # slices ascend along the slice normal (row x column direction cosines)
    head = pydicom.dcmread(s.files[0], stop_before_pixels=True)
    frame0 = head.PerFrameFunctionalGroupsSequence[0]
    ori = np.array(frame0.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    normal_ras = np.cross(ori[:3], ori[3:]) * np.array([-1, -1, 1])
    assert aff[:3, 2] @ normal_ras == pytest.approx(3.4, abs=1e-3)  # slice spacing from positions


def test_siemens_phase_scaling_from_tags():
    _need_data()
    for sub, echo in (("siemens-prisma-gre/phase", 2), ("siemens-xa30-enhanced/9_gre_field_mapping", 1)):
        s = _series(sub)
        ph = _image(sub, "phase", echo)
        assert ph.min() >= -math.pi and ph.max() < math.pi  # [-pi, pi)
        assert ph.min() < -3.1 and ph.max() > 3.1  # wrapped: the full range is used
        files = s.image_files("phase", echo)
        d, k = 0, 17
        path, frame = files[d][k]
        ds = pydicom.dcmread(path)
        pv = ds.pixel_array.astype(np.float64)
        if ds.get("NumberOfFrames", 1) and pv.ndim == 3:
            pv = pv[frame]
            pvt = ds.PerFrameFunctionalGroupsSequence[frame].PixelValueTransformationSequence[0]
            rs, ri = float(pvt.RescaleSlope), float(pvt.RescaleIntercept)
        else:
            rs, ri = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        assert (rs, ri) == (2.0, -4096.0)
        expected = (pv * rs + ri) * math.pi / 4096
        assert np.max(np.abs(ph[d, k] - expected)) < 1e-6


@functools.lru_cache(maxsize=4)
def _read_gz(path: Path):
    import gzip

    ds = pydicom.dcmread(gzip.open(path))
    return ds, ds.pixel_array.astype(np.float64)


def _philips_fp(path: Path, frame: int | None) -> tuple[np.ndarray, np.ndarray, str]:
    """FP (Philips floating point) and DV/1000 computed from the tags with pydicom."""
    ds, pv = _read_gz(path)
    if frame is None:
        item, rs, ri = ds, float(ds.RescaleSlope), float(ds.RescaleIntercept)
        rtype = str(ds.RescaleType)
    else:
        pv = pv[frame]
        fg = ds.PerFrameFunctionalGroupsSequence[frame]
        pvt = fg.PixelValueTransformationSequence[0]
        rs, ri = float(pvt.RescaleSlope), float(pvt.RescaleIntercept)
        item = fg[0x2005, 0x140F].value[0]
        rtype = str(fg.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
    ss = float(item.get_private_item(0x2005, 0x0E, "Philips MR Imaging DD 001").value)
    dv = pv * rs + ri
    return dv / (rs * ss), dv / 1000.0, rtype


def test_philips_phase_scaling_from_tags():
    _need_data()
    for sub in ("philips-ingenia-classic", "philips-ingenia-enhanced"):
        s = _series(sub)
        for echo in (1, 2):
            ph = _image(sub, "phase", echo)
            assert ph.min() >= -math.pi - 1e-6 and ph.max() <= math.pi + 1e-6
            path, frame = s.image_files("phase", echo)[0][40]
            fp, dv_mrad, unit = _philips_fp(path, None if not s.enhanced else frame)
            assert unit == "mrad"
            assert np.max(np.abs(ph[0, 40] - fp)) < 2e-6
            # the mrad display scaling differs from FP by < 4.2e-4 rad (RI rounded to whole mrad)
            assert 1e-5 < np.max(np.abs(fp - dv_mrad)) < 4.2e-4
    assert "Philips phase FP" in _series("philips-ingenia-classic").scaling_rule("phase", 1)


def test_philips_classic_equals_enhanced():
    _need_data()
    cl, en = _series("philips-ingenia-classic"), _series("philips-ingenia-enhanced")
    assert not cl.enhanced and en.enhanced
    assert cl.shape == en.shape == (1, 53, 80, 80)
    assert cl.echoes == en.echoes == (1, 2)
    assert cl.echo_times == pytest.approx([2.3e-3, 4.6e-3]) and en.echo_times == pytest.approx([2.3e-3, 4.6e-3])
    assert np.max(np.abs(cl.affine - en.affine)) < 1e-6
    assert cl.f0 == en.f0
    for comp in ("magnitude", "phase"):
        for echo in (1, 2):
            a = _image("philips-ingenia-classic", comp, echo)
            b = _image("philips-ingenia-enhanced", comp, echo)
            assert np.array_equal(a, b), (comp, echo)


def test_ge_epirt_instance_number_time_order(tmp_path):
    _need_data()
    s = _series("ge-epirt-time-order")
    assert s.shape == (10, 15, 64, 64)
    files = s.image_files("magnitude")
    heads = {
        p: pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["InstanceNumber", "AcquisitionTime"])
        for row in files
        for p, _ in row
    }
    assert len({h.AcquisitionTime for h in heads.values()}) == 1  # the trap: one time for all
    inst = np.array([[int(heads[p].InstanceNumber) for p, _ in row] for row in files])
    assert np.all(np.diff(inst, axis=0) > 0)  # time order = InstanceNumber order at every slice
    assert np.array_equal(inst, np.arange(150).reshape(10, 15) + 1)
    assert s.times == pytest.approx(np.arange(10) * 5.0)
    assert "RepetitionTime" in s.times_source
    # dcm2niix's 4-D volume, dynamic by dynamic
    ours = Series_to_nifti(s, _image("ge-epirt-time-order", "magnitude", None))
    ref, _ = _ref("ge-epirt-time-order/dcm2niix-ref/DCM2NIIX_regression_test_4.nii")
    ref = ref[:, ::-1]
    for t in range(10):
        assert np.array_equal(ours[..., t], ref[..., t])
    assert not np.array_equal(ours[..., 0], ours[..., 1])
    # file names carry no order: copy under shuffled names without extension
    names = [f"x{n:04d}" for n in random.Random(4).sample(range(10000), 150)]
    for (src, name) in zip(sorted(heads), names):
        shutil.copy(src, tmp_path / name)
    shuffled = load_series(tmp_path)
    assert np.array_equal(shuffled.image(), _image("ge-epirt-time-order", "magnitude", None))


def test_siemens_fieldmap_phase_has_no_magnitude():
    _need_data()
    s = _series("siemens-prisma-gre/phase")
    assert s.components == ("phase",)
    assert s.image("phase").shape == (1, 36, 64, 64)
    with pytest.raises(DicomError, match="magnitude"):
        s.complex()


# --------------------------------------------------------------------------------------------
# synthetic series
# --------------------------------------------------------------------------------------------


def _siemens_dynamic_series(folder: Path, n_dyn: int = 3, n_sl: int = 4, seed: int = 0):
    """Classic Siemens mag + phase, shuffled names, some gz / without extension, plus junk."""
    rng = np.random.default_rng(seed)
    uid = new_uid()
    mag = rng.integers(100, 4000, size=(n_dyn, n_sl, 6, 5)).astype(np.uint16)
    phase = rng.uniform(-math.pi, math.pi, size=(n_dyn, n_sl, 6, 5))
    stored = siemens_phase_pixels(phase)
    z = [10.0 + 3.0 * k for k in range(n_sl)]
    names = random.Random(seed).sample(range(1000), 2 * n_dyn * n_sl)
    n = 0
    for d in range(n_dyn):
        for k in range(n_sl):
            # interleaved slice timing inside the dynamic, 2 s per dynamic
            t = 120000.0 + 2.0 * d + 0.1 * ((2 * k) % n_sl)
            common = dict(
                series_uid=uid, series_number=7, position=(-5.0, -6.0, z[k]), acquisition_time=f"{t:.6f}",
                instance_number=d * n_sl + k + 1,
            )
            for comp, pix, itype, resc in (
                ("m", mag[d, k], ("ORIGINAL", "PRIMARY", "M", "ND"), None),
                ("p", stored[d, k], ("ORIGINAL", "PRIMARY", "P", "ND"), (2.0, -4096.0)),
            ):
                name = f"img{names[n]:03d}" + (".dcm" if n % 3 == 0 else "")
                classic(folder / name, pix, image_type=itype, rescale=resc, gz=(n % 4 == 1), **common)
                n += 1
    (folder / "README.txt").write_text("not dicom\n")
    (folder / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM" + b"\x00" * 64)
    return mag, (stored.astype(np.float64) * 2 - 4096) * math.pi / 4096


def test_synthetic_classic_series(tmp_path):
    mag, phase = _siemens_dynamic_series(tmp_path)
    infos = scan(tmp_path)
    assert len(infos) == 1 and infos[0].error is None and infos[0].n_dynamics == 3
    s = load_series(tmp_path, 7)
    assert s.shape == (3, 4, 6, 5)
    assert np.array_equal(s.image("magnitude"), mag.astype(np.float32))
    assert np.max(np.abs(s.image("phase") - phase)) < 1e-6
    assert s.times == pytest.approx([0.0, 2.0, 4.0])
    assert s.times_source == "AcquisitionTime"
    z = s.complex(dynamics=[2])
    assert z.dtype == np.complex64 and z.shape == (1, 4, 6, 5)
    assert np.allclose(z, mag[2:] * np.exp(1j * phase[2:]), rtol=1e-5, atol=1e-3)
    # affine: columns along +x (L) at 2 mm, rows along +y (P) at 2 mm, slices 3 mm along +z
    expected = np.array([[-2.0, 0, 0, 5.0], [0, -2.0, 0, 6.0], [0, 0, 3.0, 10.0], [0, 0, 0, 1.0]])
    assert np.allclose(s.affine, expected, atol=1e-9)
    assert s.echo_times == pytest.approx([0.010])
    assert s.b0 == pytest.approx(123.25483e6 / 42.577478e6, rel=1e-12)


def test_iter_dynamics_reads_only_that_dynamic(tmp_path, monkeypatch):
    mag, phase = _siemens_dynamic_series(tmp_path, seed=3)
    s = load_series(tmp_path)
    per_dyn = [
        {p for comp in ("magnitude", "phase") for p, _ in s.image_files(comp)[d]} for d in range(s.n_dynamics)
    ]
    read: list[Path] = []
    original = dicom_mod.read_stored

    def spy(info, frames):
        read.append(info.path)
        return original(info, frames)

    monkeypatch.setattr(dicom_mod, "read_stored", spy)
    for dyn in s.iter_dynamics():
        assert set(read) == per_dyn[dyn.index]
        assert len(read) == len(per_dyn[dyn.index])  # each file once
        read.clear()
        assert np.array_equal(dyn.image("magnitude"), mag[dyn.index].astype(np.float32))
        assert np.allclose(dyn.complex(), mag[dyn.index] * np.exp(1j * phase[dyn.index]), rtol=1e-5, atol=1e-3)
        assert dyn.time == pytest.approx(2.0 * dyn.index)


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_enhanced_temporal_order(tmp_path, monkeypatch, gz):
    n_dyn, n_sl = 3, 3
    frames, pixels = [], []
    order = list(itertools.product(range(n_dyn), range(n_sl), ("MAGNITUDE", "PHASE")))
    random.Random(1).shuffle(order)  # frames stored in no particular order
    for d, k, comp in order:
        value = 1000 + 100 * d + 10 * k + (1 if comp == "PHASE" else 0)
        pixels.append(np.full((4, 4), value, dtype=np.uint16))
        frames.append(
            dict(
                position=(0.0, 0.0, 5.0 * k), component=comp, echo_time=12.46, temporal_index=d + 1,
                frame_time=f"20240101{120000 + 5 * d:06d}.{k}00000",
                rescale=(2.0, -4096.0) if comp == "PHASE" else (1.0, 0.0),
            )
        )
    enhanced(tmp_path / "enh.dcm", np.stack(pixels), frames, series_uid=new_uid(), gz=gz)
    s = load_series(tmp_path)
    assert s.enhanced and s.shape == (n_dyn, n_sl, 4, 4)
    mag = s.image("magnitude")
    ph = s.image("phase")
    for d in range(n_dyn):
        for k in range(n_sl):
            assert mag[d, k, 0, 0] == 1000 + 100 * d + 10 * k
            stored = 1000 + 100 * d + 10 * k + 1
            assert ph[d, k, 0, 0] == pytest.approx((stored * 2 - 4096) * math.pi / 4096, abs=1e-6)
    assert s.times == pytest.approx([0.0, 5.0, 10.0])
    assert s.times_source == "FrameAcquisitionDateTime"
    assert s.f0 == pytest.approx(123.262369e6, abs=1.0)
    calls: list[tuple[Path, tuple[int, ...]]] = []
    original = dicom_mod.read_stored

    def spy(info, frames_):
        calls.append((info.path, tuple(frames_)))
        return original(info, frames_)

    monkeypatch.setattr(dicom_mod, "read_stored", spy)
    got = [dyn.image("magnitude")[:, 0, 0] for dyn in s.iter_dynamics(components=["magnitude"])]
    assert np.array_equal(np.stack(got), mag[:, :, 0, 0])
    if gz:
        assert len(calls) == 1  # a gzip file is decompressed once, kept until its last dynamic
    else:
        assert len(calls) == n_dyn and all(len(f) == n_sl for _, f in calls)  # frames of one dynamic


def test_ge_phase_in_milliradians(tmp_path):
    uid = new_uid()
    rng = np.random.default_rng(5)
    mrad = rng.integers(-3141, 3142, size=(2, 5, 5))
    creators = {0x0043: "GEMS_PARM_01"}
    for k in range(2):
        for comp, ge_type, pix in (("m", 0, np.full((5, 5), 500 + k)), ("p", 1, mrad[k])):
            classic(
                tmp_path / f"{comp}{k}", pix, series_uid=uid, manufacturer="GE MEDICAL SYSTEMS",
                image_type=("ORIGINAL", "PRIMARY", "OTHER"), position=(0, 0, 4.0 * k), signed=True,
                bits_stored=16, instance_number=k + 1 + (10 if comp == "p" else 0),
                private_creators=creators, private={(0x0043, 0x102F): ("SS", ge_type)},
            )
    s = load_series(tmp_path)
    assert s.components == ("magnitude", "phase")
    assert np.allclose(s.image("phase")[0], mrad / 1000.0, atol=1e-6)
    assert "GE phase" in s.scaling_rule("phase")
    z = s.complex()
    assert np.allclose(np.angle(z[0]), mrad / 1000.0, atol=1e-5)


def test_series_selection(tmp_path):
    a, b, c = new_uid(), new_uid(), new_uid()
    pix = np.ones((3, 3))
    classic(tmp_path / "a1", pix, series_uid=a, series_number=5, description="first")
    classic(tmp_path / "b1", pix, series_uid=b, series_number=5, description="second")
    classic(tmp_path / "c1", pix, series_uid=c, series_number=6, description="third")
    with pytest.raises(DicomError, match="choose one") as exc:
        load_series(tmp_path)
    assert a in str(exc.value) and c in str(exc.value)
    with pytest.raises(DicomError, match="ambiguous|2 series match"):
        load_series(tmp_path, 5)
    with pytest.raises(DicomError, match="available") as exc:
        load_series(tmp_path, 77)
    assert "third" in str(exc.value)
    assert load_series(tmp_path, 6).info.description == "third"
    assert load_series(tmp_path, "6").info.description == "third"
    assert load_series(tmp_path, b).info.description == "second"
    with pytest.raises(InvalidParameterError):
        load_series(tmp_path, 2.5)  # type: ignore[arg-type]
    s = load_series(tmp_path, 6)
    with pytest.raises(InvalidParameterError):
        s.image("bogus")
    with pytest.raises(DicomError, match="no phase"):
        s.image("phase")


def test_philips_scale_tag_in_some_files_only_is_refused(tmp_path):
    """Real Philips files with the private scale slope (2005,100E) deleted from every 7th file:
    the two conventions would differ ~4000x (magnitude) inside one volume, so the series is an
    error naming both rules and files (deleting it from every file is consistent and loads)."""
    import gzip
    import io

    src = DATA / "philips-ingenia-classic"
    require_data(src)
    for every in (7, 1):
        folder = tmp_path / f"every{every}"
        folder.mkdir()
        for i, path in enumerate(sorted(src.rglob("*.dcm.gz"))):
            ds = pydicom.dcmread(io.BytesIO(gzip.open(path).read()))
            if i % every == 0 and (0x2005, 0x100E) in ds:
                del ds[0x2005, 0x100E]
            ds.save_as(folder / path.name.removesuffix(".gz"))
        if every == 7:
            with pytest.raises(DicomError, match="mixes scaling rules") as exc:
                load_series(folder)
            assert "(2005,100E)" in str(exc.value) and "Philips FP" in str(exc.value)
        else:
            s = load_series(folder)
            assert {s.scaling_rule("magnitude", e).split(" = ")[0] for e in s.echoes} == {"PV*1.29158+0"}


def test_folder_walk_links_hidden_and_misnamed_files(tmp_path, caplog):
    """A linked folder is read, a file reached twice is read once, a broken link, a hidden folder
    and a plain file named .gz are reported (WARNING), a hidden file is read like any other."""
    import logging
    import os

    uid = new_uid()
    real = tmp_path / "real"
    for k in range(3):
        classic(real / f"m{k}.dcm", np.full((4, 4), k + 1, np.uint16), series_uid=uid, position=(0.0, 0.0, 3.0 * k), instance_number=k + 1)
    top = tmp_path / "top"
    top.mkdir()
    os.symlink(real, top / "linked")
    os.symlink(real / "m0.dcm", top / "again.dcm")  # the same file twice
    os.symlink(tmp_path / "missing", top / "broken")
    (real / "m2.dcm").rename(real / ".m2.dcm")  # hidden file: still read
    hidden = top / ".hidden"
    classic(hidden / "x.dcm", np.ones((4, 4), np.uint16), series_uid=new_uid())
    (real / "m1.dcm").rename(real / "m1.dcm.gz")  # plain DICOM with a .gz name
    with caplog.at_level(logging.WARNING, logger="fus.mr.dicom_files"):
        s = load_series(top)
    assert s.shape == (1, 3, 4, 4)
    np.testing.assert_array_equal(s.image("magnitude")[0, :, 0, 0], [1, 2, 3])
    text = caplog.text
    assert "broken symbolic link" in text and "hidden folder" in text and "not gzip-compressed" in text


def test_deflated_transfer_syntax_reads_the_same(tmp_path):
    """A series re-saved as Deflated Explicit VR Little Endian gives the same images (the header
    pass cannot locate the pixel data inside the zlib stream; pydicom decodes it)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    uid = new_uid()
    rng = np.random.default_rng(3)
    for k in range(3):
        classic(tmp_path / "plain" / f"m{k}.dcm", rng.integers(0, 4000, (5, 6)).astype(np.uint16), series_uid=uid,
                position=(0.0, 0.0, 3.0 * k), instance_number=k + 1)
    (tmp_path / "defl").mkdir()
    for f in sorted((tmp_path / "plain").iterdir()):
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(tmp_path / "defl" / f.name, enforce_file_format=True)
    a, b = load_series(tmp_path / "plain"), load_series(tmp_path / "defl")
    np.testing.assert_array_equal(a.image("magnitude"), b.image("magnitude"))
    np.testing.assert_allclose(a.affine, b.affine)
