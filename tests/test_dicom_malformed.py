"""Malformed DICOM input: every case is a DicomError naming the file or tag, raised by fus.

The corpus is written with pydicom into tmp_path: a small valid Siemens-style series that each
test damages in one way. Besides the exception type, every test checks that the message names
the offending file or DICOM tag, and that the exception was raised by fus code (not a pydicom or
numpy exception escaping from deep inside a library).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import fus.mr
from fus.errors import DicomError
from fus.mr.dicom import load_series, scan

from dicom_synth import classic, enhanced, new_uid, siemens_phase_pixels

FUS_MR = Path(fus.mr.__file__).resolve().parent


def _raised_by_fus(excinfo: pytest.ExceptionInfo) -> None:
    """The exception is a DicomError raised by a statement in fus/mr, with no library cause."""
    assert isinstance(excinfo.value, DicomError)
    assert Path(str(excinfo.traceback[-1].path)).resolve().parent == FUS_MR
    cause = excinfo.value.__cause__
    assert cause is None or isinstance(cause, DicomError)


def _series(folder: Path, n_dyn: int = 2, n_sl: int = 3, *, uid: str | None = None, phase: bool = True,
            tpid: bool = False, skip: tuple[int, int] | None = None, **override) -> dict[tuple[str, int, int], Path]:
    """A valid classic series (magnitude [+ phase]); ``override`` applies to file (dyn 0, slice 1)."""
    uid = uid or new_uid()
    files = {}
    rng = np.random.default_rng(0)
    for d in range(n_dyn):
        for k in range(n_sl):
            if skip == (d, k):
                continue
            for comp in ("m", "p") if phase else ("m",):
                kw = dict(
                    series_uid=uid, series_number=3, position=(0.0, 0.0, 4.0 * k),
                    acquisition_time=f"{100000 + 3 * d + 0.1 * k:.6f}", instance_number=d * n_sl + k + 1,
                    temporal_id=d + 1 if tpid else None,
                )
                if comp == "m":
                    kw.update(image_type=("ORIGINAL", "PRIMARY", "M", "ND"))
                    pix = rng.integers(0, 4000, size=(4, 4))
                else:
                    kw.update(image_type=("ORIGINAL", "PRIMARY", "P", "ND"), rescale=(2.0, -4096.0))
                    pix = siemens_phase_pixels(rng.uniform(-math.pi, math.pi, size=(4, 4)))
                if (d, k) == (0, 1):
                    kw.update(override)
                files[(comp, d, k)] = classic(folder / f"{comp}_{d}_{k}.dcm", pix, **kw)
    return files


def test_valid_corpus_loads(tmp_path):
    _series(tmp_path)
    s = load_series(tmp_path)
    assert s.shape == (2, 3, 4, 4) and s.components == ("magnitude", "phase")
    assert s.complex().shape == (2, 3, 4, 4)


def test_truncated_pixel_data(tmp_path):
    files = _series(tmp_path)
    bad = files[("m", 1, 2)]
    data = bad.read_bytes()
    bad.write_bytes(data[:-10])
    with pytest.raises(DicomError, match="truncated") as exc:
        load_series(tmp_path)
    assert str(bad) in str(exc.value) and "(7FE0,0010)" in str(exc.value)
    _raised_by_fus(exc)
    with pytest.raises(DicomError, match="truncated"):
        scan(tmp_path, strict=True)
    info = scan(tmp_path)[0]  # the series is reported with its error, not dropped silently
    assert info.error is not None and str(bad) in info.error


def test_truncated_header(tmp_path):
    files = _series(tmp_path)
    bad = files[("p", 0, 2)]
    bad.write_bytes(bad.read_bytes()[:200])  # DICM prefix kept, header cut short
    with pytest.raises(DicomError) as exc:
        load_series(tmp_path)
    assert str(bad) in str(exc.value)
    _raised_by_fus(exc)
    with pytest.raises(DicomError) as exc:  # cannot be attributed to a series: scan raises too
        scan(tmp_path)
    assert str(bad) in str(exc.value)


def test_truncated_gzip(tmp_path):
    uid = new_uid()
    path = classic(tmp_path / "a.dcm", np.ones((4, 4)), series_uid=uid, gz=True)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DicomError) as exc:
        load_series(tmp_path)
    assert str(path) in str(exc.value)
    _raised_by_fus(exc)


def test_no_pixel_data(tmp_path):
    files = _series(tmp_path, with_pixels=False)
    with pytest.raises(DicomError, match="without pixel data") as exc:
        load_series(tmp_path)
    assert str(files[("m", 0, 1)]) in str(exc.value) and "(7FE0,0010)" in str(exc.value)
    _raised_by_fus(exc)


def test_missing_echo_time(tmp_path):
    files = _series(tmp_path, echo_time=None)
    with pytest.raises(DicomError, match="echo time") as exc:
        load_series(tmp_path)
    assert "(0018,0081)" in str(exc.value) and str(files[("m", 0, 1)]) in str(exc.value)
    _raised_by_fus(exc)


def test_missing_imaging_frequency(tmp_path):
    files = _series(tmp_path, imaging_frequency=None)
    with pytest.raises(DicomError, match="MagneticFieldStrength") as exc:
        load_series(tmp_path)
    assert "(0018,0084)" in str(exc.value) and str(files[("m", 0, 1)]) in str(exc.value)
    _raised_by_fus(exc)


def test_enhanced_missing_transmitter_frequency(tmp_path):
    frames = [dict(position=(0, 0, 3.0 * k), component="MAGNITUDE", echo_time=10.0) for k in range(3)]
    path = enhanced(tmp_path / "e.dcm", np.ones((3, 4, 4)), frames, series_uid=new_uid(), transmitter_frequency=None)
    with pytest.raises(DicomError) as exc:
        load_series(tmp_path)
    assert "(0018,9098)" in str(exc.value) and str(path) in str(exc.value)
    _raised_by_fus(exc)


def test_enhanced_missing_echo_time_in_a_frame(tmp_path):
    frames = [dict(position=(0, 0, 3.0 * k), component="MAGNITUDE", echo_time=None if k == 2 else 10.0) for k in range(3)]
    path = enhanced(tmp_path / "e.dcm", np.ones((3, 4, 4)), frames, series_uid=new_uid())
    with pytest.raises(DicomError, match="frame 3") as exc:
        load_series(tmp_path)
    assert "(0018,9082)" in str(exc.value) and str(path) in str(exc.value)
    _raised_by_fus(exc)


@pytest.mark.parametrize(
    "override, tag",
    [
        (dict(pixel_spacing=(2.5, 2.5)), "PixelSpacing"),
        (dict(orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0)), "ImageOrientationPatient"),
    ],
)
def test_mixed_geometry(tmp_path, override, tag):
    files = _series(tmp_path, **override)
    with pytest.raises(DicomError, match="mixed geometry") as exc:
        load_series(tmp_path)
    msg = str(exc.value)
    assert tag in msg
    assert str(files[("m", 0, 1)]) in msg or str(files[("p", 0, 1)]) in msg
    _raised_by_fus(exc)


def test_mixed_matrix(tmp_path):
    files = _series(tmp_path)
    odd = classic(tmp_path / "odd.dcm", np.ones((6, 4)), series_uid=_uid_of(files), series_number=3,
                  position=(0, 0, 0.0), acquisition_time="100009.000000", instance_number=99)
    with pytest.raises(DicomError, match="mixed geometry") as exc:
        load_series(tmp_path)
    assert "Rows" in str(exc.value) and str(odd) in str(exc.value)
    _raised_by_fus(exc)


def _uid_of(files: dict) -> str:
    import pydicom

    return str(pydicom.dcmread(next(iter(files.values())), stop_before_pixels=True).SeriesInstanceUID)


def test_phase_without_magnitude(tmp_path):
    files = _series(tmp_path)
    for key, path in files.items():
        if key[0] == "m":
            path.unlink()
    s = load_series(tmp_path)
    assert s.image("phase").shape == (2, 3, 4, 4)
    with pytest.raises(DicomError, match="magnitude is missing") as exc:
        s.complex()
    assert "ImageType" in str(exc.value)
    _raised_by_fus(exc)
    with pytest.raises(DicomError, match="no magnitude"):
        s.image("magnitude")
    with pytest.raises(DicomError, match="magnitude is missing"):
        next(s.iter_dynamics()).complex()


def test_unknown_vendor_phase(tmp_path):
    files = _series(tmp_path, manufacturer="ACME Imaging")
    with pytest.raises(DicomError, match="ACME") as exc:
        load_series(tmp_path)
    assert "(0008,0070)" in str(exc.value) and str(files[("p", 0, 1)]) in str(exc.value)
    _raised_by_fus(exc)


def test_siemens_phase_with_unknown_rescale(tmp_path):
    files = _series(tmp_path, rescale=(1.0, 0.0))  # 0..4095 without the -4096 intercept
    with pytest.raises(DicomError, match="refusing to guess") as exc:
        load_series(tmp_path)
    assert "RescaleSlope" in str(exc.value) and str(files[("p", 0, 1)]) in str(exc.value)
    _raised_by_fus(exc)


def test_philips_phase_without_mrad(tmp_path):
    files = _series(tmp_path, manufacturer="Philips Medical Systems", rescale_type="normalized")
    with pytest.raises(DicomError, match="milliradians") as exc:
        load_series(tmp_path)
    assert "(0028,1054)" in str(exc.value) and str(files[("p", 0, 1)]) in str(exc.value)
    _raised_by_fus(exc)


def test_ge_phase_not_in_milliradians(tmp_path):
    uid = new_uid()
    creators = {0x0043: "GEMS_PARM_01"}
    for k in range(2):
        values = np.linspace(-31416, 31416, 16).reshape(4, 4)  # radians * 1e4: not the mrad rule
        classic(tmp_path / f"p{k}", values, series_uid=uid, manufacturer="GE MEDICAL SYSTEMS",
                image_type=("ORIGINAL", "PRIMARY", "OTHER"), position=(0, 0, 4.0 * k), signed=True,
                bits_stored=16, instance_number=k + 1, private_creators=creators,
                private={(0x0043, 0x102F): ("SS", 1)})
    s = load_series(tmp_path)  # the header does not tell the range: the decoded values do
    with pytest.raises(DicomError, match="outside") as exc:
        s.image("phase")
    assert str(tmp_path / "p0") in str(exc.value) or str(tmp_path / "p1") in str(exc.value)
    _raised_by_fus(exc)


def test_slice_missing_in_one_dynamic(tmp_path):
    files = _series(tmp_path, n_dyn=3, n_sl=4, skip=(1, 2), tpid=True)
    with pytest.raises(DicomError, match="missing") as exc:
        load_series(tmp_path)
    msg = str(exc.value)
    assert "TemporalPositionIdentifier [2]" in msg  # names the dynamic that lacks the slice
    assert str(files[("m", 0, 2)]) in msg or str(files[("m", 2, 2)]) in msg
    _raised_by_fus(exc)


def test_slice_missing_without_temporal_tags(tmp_path):
    files = _series(tmp_path, n_dyn=3, n_sl=4, skip=(2, 0))
    with pytest.raises(DicomError, match="slice 1/4") as exc:
        load_series(tmp_path)
    assert "probably dynamic(s) [3] of 3" in str(exc.value)
    assert str(files[("m", 0, 0)]) in str(exc.value)
    _raised_by_fus(exc)


@pytest.mark.parametrize("phase", [True, False])
def test_image_from_another_dynamic_is_refused(tmp_path, phase):
    """One image missing and a stray one from a later dynamic at the same slice keep every count
    right; pairing by rank would then mix dynamics silently. The acquisition times refuse it:
    across components (magnitude vs phase) or, for one component, by the slice timing."""
    files = _series(tmp_path, n_dyn=4, n_sl=3)
    comp = "p" if phase else "m"
    if not phase:
        for f in [v for k, v in files.items() if k[0] == "p"]:
            f.unlink()
    files[(comp, 1, 0)].unlink()
    stray = classic(tmp_path / "stray.dcm", np.ones((4, 4), np.uint16), series_uid=_uid_of(files), series_number=3,
                    position=(0.0, 0.0, 0.0), acquisition_time=f"{100000 + 3 * 4:.6f}", instance_number=99,
                    image_type=("ORIGINAL", "PRIMARY", "P" if phase else "M", "ND"), rescale=(2.0, -4096.0) if phase else None)
    with pytest.raises(DicomError, match="another dynamic|different dynamics") as exc:
        load_series(tmp_path)
    assert "AcquisitionTime" in str(exc.value)
    _raised_by_fus(exc)
    stray.unlink()


def _uid_of(files: dict) -> str:
    import pydicom

    return str(pydicom.dcmread(next(iter(files.values())), stop_before_pixels=True).SeriesInstanceUID)


def test_phase_without_component_tag_is_not_taken_as_magnitude(tmp_path):
    """ImageType stripped of its M/P value: the magnitude file still loads as magnitude, but the
    phase file's rescale (intercept -4096) says phase, so it is refused rather than guessed."""
    files = _series(tmp_path, image_type=("ORIGINAL", "PRIMARY"))
    with pytest.raises(DicomError, match="no tag names the complex component") as exc:
        load_series(tmp_path)
    assert str(files[("p", 0, 1)]) in str(exc.value) and "RescaleIntercept -4096" in str(exc.value)
    _raised_by_fus(exc)
    files[("p", 0, 1)].unlink()
    for f in [v for k, v in files.items() if k[0] == "p" and k != ("p", 0, 1)]:
        f.unlink()
    assert load_series(tmp_path).components == ("magnitude",)


def test_negative_magnitude_rescale_is_refused(tmp_path):
    files = _series(tmp_path, phase=False, rescale=(1.0, -2000.0))
    with pytest.raises(DicomError, match="magnitude is never negative") as exc:
        load_series(tmp_path)
    assert str(files[("m", 0, 1)]) in str(exc.value) and "(0028,1052)" in str(exc.value)
    _raised_by_fus(exc)


def test_siemens_mosaic_refused(tmp_path):
    path = classic(tmp_path / "mosaic.dcm", np.ones((8, 8)), series_uid=new_uid(),
                   image_type=("ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"))
    with pytest.raises(DicomError, match="mosaic") as exc:
        load_series(tmp_path)
    assert str(path) in str(exc.value) and "(0008,0008)" in str(exc.value)
    _raised_by_fus(exc)


def test_irregular_slice_positions(tmp_path):
    files = _series(tmp_path, n_dyn=1, n_sl=4, phase=False)
    files[("m", 0, 2)].unlink()  # the slice is missing in every dynamic: a gap
    with pytest.raises(DicomError, match="not evenly spaced") as exc:
        load_series(tmp_path)
    assert "(0020,0032)" in str(exc.value)
    _raised_by_fus(exc)


def test_duplicate_file(tmp_path):
    files = _series(tmp_path, phase=False)
    copy = tmp_path / "copy_of_m_0_0.dcm"
    shutil.copy(files[("m", 0, 0)], copy)
    with pytest.raises(DicomError, match="SOPInstanceUID") as exc:
        load_series(tmp_path)
    assert str(copy) in str(exc.value)
    _raised_by_fus(exc)


def test_contradictory_component_tags(tmp_path):
    path = classic(tmp_path / "x.dcm", np.ones((4, 4)), series_uid=new_uid(), manufacturer="GE MEDICAL SYSTEMS",
                   image_type=("ORIGINAL", "PRIMARY", "M"), private_creators={0x0043: "GEMS_PARM_01"},
                   private={(0x0043, 0x102F): ("SS", 1)})
    with pytest.raises(DicomError, match="contradictory") as exc:
        load_series(tmp_path)
    assert "(0043,102F)" in str(exc.value) and str(path) in str(exc.value)
    _raised_by_fus(exc)


def test_echo_time_inconsistent_within_echo(tmp_path):
    files = _series(tmp_path, phase=False, echo_time=12.0)
    with pytest.raises(DicomError, match="EchoTime") as exc:
        load_series(tmp_path)
    assert str(files[("m", 0, 1)]) in str(exc.value)
    _raised_by_fus(exc)


def test_nothing_but_junk(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "DICOMDIR").write_bytes(b"\x00" * 300)
    (tmp_path / "image.nii").write_bytes(b"\x5c\x01\x00\x00" + b"\x00" * 400)
    with pytest.raises(DicomError, match="no MR DICOM series") as exc:
        scan(tmp_path)
    assert str(tmp_path) in str(exc.value)
    with pytest.raises(DicomError, match="no such file"):
        load_series(tmp_path / "absent")
