"""``fus inspect`` and ``fus convert`` (and :mod:`fus.mr.nifti`) on real and synthetic DICOM.

Real data: ``../shared/data/dicom`` beside the checkout (skipped with the reason when absent).
Expected values come from outside the code under test: the README facts of each scan, the tags
read directly with pydicom, dcm2niix's reference NIfTI conversions (``dcm2niix-ref/``), and, for
the synthetic series, the values the files were written with.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import require_data

from fus.cli.convert import _tags
from fus.cli.main import main
from fus.mr.dicom import SeriesInfo, load_series
from fus.mr.nifti import nifti_filename, sidecar_path, slugify, write_series, write_sidecar

from dicom_synth import classic, new_uid, siemens_phase_pixels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def _need_data() -> None:
    require_data(DATA)


def _messages(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    """(stdout, stderr + log records): ``main`` logs errors, pytest may hold the log handler."""
    captured = capsys.readouterr()
    return captured.out, captured.err + caplog.text


# --------------------------------------------------------------------------------------------
# synthetic series (everywhere)
# --------------------------------------------------------------------------------------------


def _synthetic_folder(folder: Path, n_dyn: int = 3, n_sl: int = 2, broken: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Classic Siemens magnitude + phase, 2.5 s per dynamic, series 7; plus a broken series 9."""
    rng = np.random.default_rng(1)
    uid = new_uid()
    mag = rng.integers(100, 4000, size=(n_dyn, n_sl, 6, 5)).astype(np.uint16)
    phase = rng.uniform(-math.pi, math.pi, size=(n_dyn, n_sl, 6, 5))
    stored = siemens_phase_pixels(phase)
    for d in range(n_dyn):
        for k in range(n_sl):
            common = dict(
                series_uid=uid, series_number=7, description="PRF thermo (sag)", position=(-5.0, -6.0, 10.0 + 3.0 * k),
                acquisition_time=f"{120000.0 + 2.5 * d + 0.1 * k:.6f}", instance_number=d * n_sl + k + 1,
                repetition_time=25.0,
            )
            classic(folder / f"m_{d}_{k}.dcm", mag[d, k], image_type=("ORIGINAL", "PRIMARY", "M", "ND"), **common)
            classic(folder / f"p_{d}_{k}.dcm", stored[d, k], image_type=("ORIGINAL", "PRIMARY", "P", "ND"), rescale=(2.0, -4096.0), **common)
    if broken:  # no ImagingFrequency: B0 unknown, the series cannot be loaded
        bad = new_uid()
        for k in range(2):
            classic(folder / "bad" / f"b_{k}.dcm", mag[0, k], series_uid=bad, series_number=9, description="broken",
                    position=(0.0, 0.0, 3.0 * k), imaging_frequency=None)
    return mag.astype(np.float32), (stored.astype(np.float64) * 2 - 4096) * math.pi / 4096


def test_inspect_synthetic_lists_error_series(tmp_path, capsys, caplog):
    _synthetic_folder(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 1  # listed, but one series cannot be loaded
    out, _ = _messages(capsys, caplog)
    assert "2 MR series (1 with errors)" in out
    rows = _table(out)
    good = next(r for r in rows if r["series"] == "7")
    assert good["components"] == "magnitude+phase" and good["dynamics"] == "3" and good["slices"] == "2"
    assert good["t/dynamic [s]"] == "2.5" and good["echoes: TE [ms]"] == "1: 10"
    assert good["spacing [mm]"] == "2x2x3" and good["matrix"] == "6x5"
    bad = next(r for r in rows if r["series"] == "9")
    assert bad["vendor"] == "ERROR" and bad["folder"] == "bad"
    # the error itself, naming the missing tag, below the table; no traceback
    assert re.search(r"series 9 'broken' \(bad\): .*\(0018,0084\) ImagingFrequency", out)
    assert "Traceback" not in out

    assert main(["inspect", str(tmp_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_number = {s["series_number"]: s for s in doc["series"]}
    assert by_number[9]["error"] and "(0018,0084)" in by_number[9]["error"]
    s7 = by_number[7]
    assert s7["error"] is None and s7["storage"] == "classic"
    assert s7["time_per_dynamic_s"] == pytest.approx(2.5) and s7["repetition_time_s"] == pytest.approx(0.025)
    assert s7["echo_times_s"] == pytest.approx([0.010]) and s7["f0_hz"] == pytest.approx(123.25483e6)


def test_convert_synthetic_4d(tmp_path, capsys, caplog):
    src, out = tmp_path / "src", tmp_path / "out"
    mag, phase = _synthetic_folder(src)
    assert main(["convert", str(src), "-o", str(out)]) == 1  # series 9 cannot be read
    stdout, err = _messages(capsys, caplog)
    assert "series 9 'broken'" in err and "(0018,0084)" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"7_prf-thermo-sag_e1_{c}.{ext}" for c in ("magnitude", "phase") for ext in ("nii.gz", "json")
    )
    img = nib.load(out / "7_prf-thermo-sag_e1_phase.nii.gz")
    assert img.shape == (5, 6, 2, 3)  # [column, row, slice, dynamic]
    assert img.get_data_dtype() == np.float32
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert img.header.get_zooms() == pytest.approx((2.0, 2.0, 3.0, 2.5))  # pixdim[4]: time per dynamic
    data = np.asarray(img.dataobj)
    assert np.max(np.abs(data - phase.transpose(3, 2, 1, 0))) < 1e-6  # radians, as written
    assert np.array_equal(np.asarray(nib.load(out / "7_prf-thermo-sag_e1_magnitude.nii.gz").dataobj), mag.transpose(3, 2, 1, 0))
    expected = np.array([[-2.0, 0, 0, 5.0], [0, -2.0, 0, 6.0], [0, 0, 3.0, 10.0], [0, 0, 0, 1.0]])
    assert np.allclose(img.affine, expected, atol=1e-6)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    side = json.loads((out / "7_prf-thermo-sag_e1_phase.json").read_text())
    assert side["units"] == "rad" and side["component"] == "phase" and side["echo"] == 1
    assert side["times_s"] == pytest.approx([0.0, 2.5, 5.0]) and side["pixdim4_s"] == pytest.approx(2.5)
    assert side["source"]["n_files"] == 12 and side["n_source_files"] == 6
    assert "pi / 4096" in side["scaling_rule"] or "4096" in side["scaling_rule"]


def test_convert_refuses_to_overwrite(tmp_path, capsys, caplog):
    src, out = tmp_path / "src", tmp_path / "out"
    _synthetic_folder(src, n_dyn=1, broken=False)
    assert main(["convert", str(src), "-o", str(out)]) == 0
    img = nib.load(out / "7_prf-thermo-sag_e1_magnitude.nii.gz")
    assert img.shape == (5, 6, 2)  # one dynamic: 3-D
    assert img.header.get_zooms() == pytest.approx((2.0, 2.0, 3.0))
    assert float(img.header["pixdim"][4]) == pytest.approx(0.025)  # RepetitionTime, as dcm2niix
    capsys.readouterr()
    assert main(["convert", str(src), "-o", str(out)]) == 1
    _, err = _messages(capsys, caplog)
    assert "already holds" in err and "7_prf-thermo-sag_e1_magnitude.nii.gz" in err and "--overwrite" in err
    assert main(["convert", str(src), "-o", str(out), "--overwrite"]) == 0


def test_names_and_sidecar_helpers(tmp_path):
    assert slugify("gre_field_mapping (TE 5/7) ") == "gre-field-mapping-te-5-7"
    assert slugify("***") == "series"
    assert nifti_filename(2001, "WIP fcMRI", 2, "phase", "enhanced") == "2001_wip-fcmri-enhanced_e2_phase.nii.gz"
    assert nifti_filename(None, "x", 1, "magnitude") == "na_x_e1_magnitude.nii.gz"
    assert sidecar_path(tmp_path / "a_b_e1_phase.nii.gz") == tmp_path / "a_b_e1_phase.json"
    p = write_sidecar(tmp_path / "s.json", {"t_s": np.array([0.0, np.nan]), "n": np.int64(3), "p": tmp_path, "x_mm": (1.5,)})
    doc = json.loads(p.read_text())  # strict JSON: NaN became null
    assert doc["t_s"] == [0.0, None] and doc["n"] == 3 and doc["p"] == str(tmp_path) and doc["x_mm"] == [1.5]
    assert doc["fus_version"]


def test_colliding_names_get_tags():
    def info(uid: str, enhanced: bool, number: int = 2001, desc: str = "fmap") -> SeriesInfo:
        return SeriesInfo(series_uid=uid, series_number=number, description=desc, enhanced=enhanced)

    tags = _tags([info("1.2.3", False), info("1.2.3", True), info("1.2.4", False, 5), info("1.2.99", False, 5)])
    assert tags[("1.2.3", False)] == "classic" and tags[("1.2.3", True)] == "enhanced"
    assert tags[("1.2.4", False)] == "124" and tags[("1.2.99", False)] == "1299"
    assert len(_tags([info("1.2.3", False), info("1.2.5", False, 3)])) == 0


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_missing_folder(tmp_path, capsys, caplog, command):
    missing = tmp_path / "no-such-folder"
    extra = ["-o", str(tmp_path / "out")] if command == "convert" else []
    assert main([command, str(missing), *extra]) == 1
    out, err = _messages(capsys, caplog)
    assert str(missing) in err and "no such file or folder" in err
    assert "Traceback" not in out + err


def test_folder_without_dicom(tmp_path, capsys, caplog):
    (tmp_path / "notes.txt").write_text("no images here\n")
    (tmp_path / "x.dcm").write_bytes(b"\x00" * 300)  # a .dcm name is not enough
    assert main(["inspect", str(tmp_path)]) == 1
    _, err = _messages(capsys, caplog)
    assert "no MR DICOM series found" in err and str(tmp_path) in err
    assert main(["convert", str(tmp_path), "-o", str(tmp_path / "out")]) == 1
    _, err = _messages(capsys, caplog)
    assert "no MR DICOM series found" in err
    assert not (tmp_path / "out").exists()


def test_unknown_series(tmp_path, capsys, caplog):
    src = tmp_path / "src"
    _synthetic_folder(src, n_dyn=1, broken=False)
    assert main(["convert", str(src), "-o", str(tmp_path / "out"), "--series", "42"]) == 1
    _, err = _messages(capsys, caplog)
    assert "no MR series '42'" in err and "series 7 'PRF thermo (sag)'" in err  # names it, lists the choices
    assert not (tmp_path / "out").exists()
    assert main(["convert", str(src), "-o", str(tmp_path / "out"), "--series", "7"]) == 0


def test_console_script_error_is_one_clean_line(tmp_path):
    exe = shutil.which("fus") or str(Path(sys.executable).parent / "fus")
    if not Path(exe).is_file():
        pytest.skip(f"the fus console script is not installed beside {sys.executable} (pip install -e .)")
    missing = tmp_path / "nothing-here"
    proc = subprocess.run([exe, "convert", str(missing), "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{missing}: no such file or folder" in proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------


def _table(text: str) -> list[dict[str, str]]:
    """Rows of the inspect table (cells are separated by two or more spaces)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("series  description"))
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


@pytest.fixture(scope="module")
def inspect_all():
    """``fus inspect DATA`` and ``fus inspect DATA --json`` (run once)."""
    _need_data()
    import contextlib
    import io

    text, js = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["inspect", str(DATA)]) == 0
    with contextlib.redirect_stdout(js):
        assert main(["inspect", str(DATA), "--json"]) == 0
    return text.getvalue(), json.loads(js.getvalue())


def test_inspect_table_real_data(inspect_all):
    text, _ = inspect_all
    assert "8 MR series" in text.splitlines()[0]
    rows = {r["folder"]: r for r in _table(text)}
    assert len(rows) == 8
    mag = rows["siemens-prisma-gre/mag"]
    assert (mag["series"], mag["vendor"], mag["model"], mag["storage"]) == ("2", "siemens", "Prisma_fit", "classic")
    assert mag["echoes: TE [ms]"] == "1: 5.19, 2: 7.65"
    assert float(mag["B0 [T]"]) == pytest.approx(2.895, abs=1e-3)  # from 123.25483 MHz, not "3 T"
    assert float(mag["f0 [MHz]"]) == pytest.approx(123.25483, abs=1e-6)
    assert (mag["slices"], mag["dynamics"], mag["matrix"], mag["spacing [mm]"]) == ("36", "1", "64x64", "3.25x3.25x3.6")
    assert rows["siemens-prisma-gre/phase"]["components"] == "phase"
    assert rows["siemens-prisma-gre/phase"]["echoes: TE [ms]"] == "2: 7.65"
    ge = rows["ge-epirt-time-order"]
    assert (ge["vendor"], ge["dynamics"], ge["slices"], ge["t/dynamic [s]"]) == ("ge", "10", "15", "5")
    xa = rows["siemens-xa30-enhanced/8_gre_field_mapping"]
    assert xa["storage"] == "enhanced" and xa["echoes: TE [ms]"] == "1: 10, 2: 12.46"
    assert float(xa["f0 [MHz]"]) == pytest.approx(123.262369, abs=1e-6)
    for sub, storage in (("philips-ingenia-classic", "classic"), ("philips-ingenia-enhanced", "enhanced")):
        ph = rows[sub]
        assert (ph["vendor"], ph["storage"], ph["components"]) == ("philips", storage, "magnitude+phase")
        assert (ph["matrix"], ph["slices"], ph["echoes: TE [ms]"]) == ("80x80", "53", "1: 2.3, 2: 4.6")
    assert "ERROR" not in text


def test_inspect_json_real_data(inspect_all):
    _, doc = inspect_all
    series = {(Path(s["folder"]).name, s["series_number"]): s for s in doc["series"]}
    assert len(series) == 8 and all(s["error"] is None for s in doc["series"])
    mag = series[("mag", 2)]
    for key in ("echo_times_s", "pixel_spacing_mm", "slice_spacing_mm", "f0_hz", "b0_t", "time_per_dynamic_s", "repetition_time_s"):
        assert key in mag
    assert mag["b0_t"] == pytest.approx(2.895, abs=1e-3)
    assert mag["echo_times_s"] == pytest.approx([5.19e-3, 7.65e-3])
    assert mag["n_images"] == 72 and mag["storage"] == "classic" and mag["vendor"] == "siemens"
    first = sorted((DATA / "siemens-prisma-gre" / "mag").iterdir())[0]
    assert mag["series_uid"] == pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID
    ge = series[("ge-epirt-time-order", 4)]
    assert (ge["n_dynamics"], ge["n_slices"], ge["n_images"]) == (10, 15, 150)
    assert ge["f0_hz"] == pytest.approx(127.696749e6, abs=1.0) and ge["time_per_dynamic_s"] == pytest.approx(5.0)
    assert series[("philips-ingenia-enhanced", 2001)]["storage"] == "enhanced"
    assert series[("philips-ingenia-enhanced", 2001)]["n_images"] == 212


def _flips(ours: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """Axis flips of ``ref`` best correlated with ``ours`` (found from the pixel values only)."""
    a = ours.ravel() - ours.mean()
    best, best_r = (0, 0, 0), -2.0
    for flips in itertools.product((0, 1), repeat=3):
        b = ref[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
        b = b.ravel() - b.mean()
        r = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        if r > best_r:
            best, best_r = flips, r
    assert best_r > 0.99, best_r
    return best


def _corner_error_mm(affine: np.ndarray, ref_affine: np.ndarray, flips: tuple[int, ...], shape: tuple[int, ...]) -> float:
    """Largest distance [mm] between the world coordinates of the 8 corner voxels."""
    f = np.eye(4)
    for ax, fl in enumerate(flips):
        if fl:
            f[ax, ax], f[ax, 3] = -1.0, shape[ax] - 1
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)]).T
    return float(np.max(np.abs(affine @ corners - ref_affine @ f @ corners)))


# (source folder, --series or None, written name, dcm2niix reference, factor ref -> our units)
CONVERT_CASES = [
    ("siemens-prisma-gre", None, "2_gre-field-magph_e1_magnitude", "siemens-prisma-gre/dcm2niix-ref/Si_2_gre_field_magph_e1.nii", 1.0),
    ("siemens-prisma-gre", None, "2_gre-field-magph_e2_magnitude", "siemens-prisma-gre/dcm2niix-ref/Si_2_gre_field_magph_e2.nii", 1.0),
    ("siemens-prisma-gre", None, "3_gre-field-magph_e2_phase", "siemens-prisma-gre/dcm2niix-ref/Si_3_gre_field_magph_e2_ph.nii", math.pi / 4096),
    ("siemens-prisma-gre", None, "4_gre-field-ph_e2_phase", "siemens-prisma-gre/dcm2niix-ref/Si_4_gre_field_ph_e2_ph.nii", math.pi / 4096),
    ("ge-epirt-time-order", None, "4_axial-epi-fmri-interleaved-i-to-s_e1_magnitude", "ge-epirt-time-order/dcm2niix-ref/DCM2NIIX_regression_test_4.nii", 1.0),
    ("philips-ingenia-classic", "2001", "2001_fcmri-field-mapping_e2_phase", "philips-ingenia-classic/dcm2niix-ref/2001_WIP_fcMRI_Field_Mapping_cl_e2_ph.nii.gz", 1.0),
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """``fus convert`` of each source folder of CONVERT_CASES, once: folder -> output folder."""
    _need_data()
    outs = {}
    for folder, series in dict.fromkeys((c[0], c[1]) for c in CONVERT_CASES):
        out = tmp_path_factory.mktemp(folder)
        argv = ["convert", str(DATA / folder), "-o", str(out)] + ([] if series is None else ["--series", series])
        assert main(argv) == 0
        outs[folder] = out
    return outs


def test_convert_writes_expected_files(converted):
    names = sorted(p.name for p in converted["siemens-prisma-gre"].iterdir())
    stems = ["2_gre-field-magph_e1_magnitude", "2_gre-field-magph_e2_magnitude", "3_gre-field-magph_e2_phase", "4_gre-field-ph_e2_phase"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("json", "nii.gz"))
    assert len(list(converted["philips-ingenia-classic"].glob("*.nii.gz"))) == 4  # 2 echoes x magnitude, phase


@pytest.mark.parametrize("case", CONVERT_CASES, ids=[c[2] for c in CONVERT_CASES])
def test_convert_matches_reader_and_dcm2niix(converted, case):
    folder, _, stem, ref_name, to_ours = case
    img = nib.load(converted[folder] / f"{stem}.nii.gz")
    data = np.asarray(img.dataobj)
    number, component, echo = int(stem.split("_")[0]), stem.split("_")[-1], int(stem.split("_")[-2][1:])
    sub = {(2, "siemens-prisma-gre"): "siemens-prisma-gre/mag", (3, "siemens-prisma-gre"): "siemens-prisma-gre/phase",
           (4, "siemens-prisma-gre"): "siemens-prisma-gre/phase-repeat"}.get((number, folder), folder)
    ours, affine = load_series(DATA / sub, number).nifti(component, echo)
    # exactly what the reader gives: values, voxel order, affine (stored as float32 in the header)
    assert data.dtype == np.float32 and np.array_equal(data, ours)
    assert np.max(np.abs(img.affine - affine)) < 1e-4
    assert img.header.get_xyzt_units() == ("mm", "sec")
    if component == "phase":
        assert -math.pi - 5e-3 <= data.min() and data.max() <= math.pi + 5e-3
    # against dcm2niix: the same voxels (found from the values) sit at the same place in the world
    ref_img = nib.load(DATA / ref_name)
    ref = np.asarray(ref_img.dataobj, dtype=np.float64) * to_ours
    flips = _flips(data.astype(np.float64), ref)
    assert _corner_error_mm(img.affine, ref_img.affine, flips, data.shape) < 1e-3
    ref_flipped = ref[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    tol = 5e-4 if component == "phase" else 1e-6 * np.max(np.abs(ref))  # Philips FP phase: 2 pi/4095 vs scl_slope
    assert np.max(np.abs(data - ref_flipped)) <= tol


def test_convert_4d_ge(converted):
    img = nib.load(converted["ge-epirt-time-order"] / "4_axial-epi-fmri-interleaved-i-to-s_e1_magnitude.nii.gz")
    assert img.shape == (64, 64, 15, 10)
    assert img.header.get_zooms()[3] == pytest.approx(5.0)  # s between dynamics (dcm2niix: TR 5 s)


def test_convert_sidecar_real_data(converted):
    side = json.loads((converted["siemens-prisma-gre"] / "3_gre-field-magph_e2_phase.json").read_text())
    for key in ("fus_version", "source", "component", "echo", "units", "scaling_rule", "affine_ras_mm", "times_s",
                "echo_times_s", "echo_time_s", "f0_hz", "b0_t", "repetition_time_s", "pixdim4_s", "voxel_size_mm", "n_source_files"):
        assert key in side, key
    first = sorted((DATA / "siemens-prisma-gre" / "phase").iterdir())[0]
    tags = pydicom.dcmread(first, stop_before_pixels=True)
    assert side["source"]["series_instance_uid"] == tags.SeriesInstanceUID
    assert side["source"]["n_files"] == 36 and side["n_source_files"] == 36
    assert side["source"]["vendor"] == "siemens" and side["source"]["storage"] == "classic"
    assert side["units"] == "rad" and "4096" in side["scaling_rule"]
    assert side["echo_time_s"] == pytest.approx(float(tags.EchoTime) * 1e-3)
    assert side["f0_hz"] == pytest.approx(float(tags.ImagingFrequency) * 1e6)
    assert side["b0_t"] == pytest.approx(2.895, abs=1e-3)
    assert side["voxel_size_mm"] == pytest.approx([3.25, 3.25, 3.6], abs=1e-4)
    img = nib.load(converted["siemens-prisma-gre"] / "3_gre-field-magph_e2_phase.nii.gz")
    assert np.max(np.abs(np.array(side["affine_ras_mm"]) - img.affine)) < 1e-4
    mag = json.loads((converted["siemens-prisma-gre"] / "2_gre-field-magph_e1_magnitude.json").read_text())
    assert mag["units"] == "scanner units" and mag["source"]["n_files"] == 72 and mag["n_source_files"] == 36


def test_write_series_library_call(tmp_path):
    """The library function alone (as the replay pipeline calls it): selection and progress."""
    src = tmp_path / "src"
    mag, _ = _synthetic_folder(src, n_dyn=2, broken=False)
    counted: list[int] = []
    paths = write_series(load_series(src), tmp_path / "out", components=["magnitude"], progress=counted.append)
    assert [p.name for p in paths] == ["7_prf-thermo-sag_e1_magnitude.nii.gz"]
    assert sum(counted) == mag.shape[0] * mag.shape[1]
    assert sidecar_path(paths[0]).is_file()
    assert np.array_equal(np.asarray(nib.load(paths[0]).dataobj), mag.transpose(3, 2, 1, 0))


# --------------------------------------------------------------------------------------------
# the reader's fast header parser (what makes inspect / convert / replay ingest fast) must give
# exactly what pydicom gives
# --------------------------------------------------------------------------------------------


def _records_both_ways(paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str], int]:
    """repr of read_file (or its DicomError) per file: fast parser, then pydicom only."""
    import fus.mr.dicom_header as header
    import fus.mr.dicom_index as index
    from fus.errors import DicomError

    used = []
    fast_header = header._fast_header

    def spy(data: bytes, complete: bool = True):
        out = fast_header(data, complete)
        used.append(out is not None)
        return out

    def run() -> list[str]:
        out = []
        for p in paths:
            try:
                out.append(repr(index.read_file(p)))
            except DicomError as exc:
                out.append(f"DicomError: {exc}")
        return out

    monkeypatch.setattr(header, "_fast_header", spy)
    fast = run()
    monkeypatch.setattr(header, "_fast_header", lambda data, complete=True: None)
    return fast, run(), sum(used)


def test_fast_header_parser_equals_pydicom(tmp_path, monkeypatch):
    _need_data()
    import gzip
    import io

    from pydicom.uid import ImplicitVRLittleEndian

    paths = (
        sorted((DATA / "siemens-prisma-gre" / "phase").iterdir())[:6]
        + sorted((DATA / "ge-epirt-time-order").glob("*.dcm"))[:4]
        + sorted((DATA / "philips-ingenia-classic").glob("*.dcm.gz"))[104:110]
        + sorted((DATA / "siemens-xa30-enhanced").rglob("*.dcm"))
    )
    # re-encoded copies: implicit VR (VRs from the public and private dictionaries) and non-ASCII text
    for i, src in enumerate([paths[0], paths[6], paths[11], paths[-1]]):
        raw = gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()
        ds = pydicom.dcmread(io.BytesIO(raw))
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(tmp_path / f"implicit{i}.dcm", enforce_file_format=True, implicit_vr=True, little_endian=True)
        ds = pydicom.dcmread(io.BytesIO(raw))
        ds.SpecificCharacterSet, ds.SeriesDescription = "ISO_IR 192", "Thermométrie ß"
        ds.save_as(tmp_path / f"utf8_{i}.dcm")
        paths += [tmp_path / f"implicit{i}.dcm", tmp_path / f"utf8_{i}.dcm"]
    damaged = tmp_path / "damaged.dcm"  # cut inside the header: both ways the same error
    damaged.write_bytes(paths[0].read_bytes()[:3000])
    paths.append(damaged)
    fast, reference, n_fast = _records_both_ways(paths, monkeypatch)
    assert n_fast == len(paths) - 1  # every intact file took the fast path
    for p, a, b in zip(paths, fast, reference):
        assert a == b, p
    assert "Thermométrie ß" in fast[-2] and "DicomError" in fast[-1]
