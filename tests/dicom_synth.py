"""Write small synthetic MR DICOM files with pydicom, for the DICOM reader tests.

Classic MR Image Storage (one image per file, Siemens / Philips / GE flavoured tags) and Enhanced
MR Image Storage (multi-frame with per-frame and shared functional groups). Everything the reader
needs can be switched off or altered to build a malformed-input corpus.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"

_MISSING = object()


def _write(ds: Dataset, path: Path, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)  # pydicom >= 3
    except TypeError:  # pragma: no cover - pydicom 2.x
        ds.save_as(path, write_like_original=False)
    if gz:
        data = path.read_bytes()
        path.unlink()
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    return path


def _meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _fmt(values: Sequence[float]) -> list[str]:
    return [f"{v:.6f}" for v in values]


def classic(
    path: Path,
    pixels: np.ndarray,
    *,
    series_uid: str,
    series_number: int = 1,
    description: str = "synthetic",
    manufacturer: str = "SIEMENS",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "ND"),
    echo_time: Any = 10.0,
    echo_number: int | None = 1,
    imaging_frequency: Any = 123.25483,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing: Sequence[float] = (2.0, 2.0),
    slice_thickness: float = 3.0,
    acquisition_time: str | None = "120000.000000",
    acquisition_date: str = "20240101",
    instance_number: int | None = 1,
    temporal_id: int | None = None,
    temporal_positions: int | None = None,
    rescale: tuple[float, float] | None = None,
    rescale_type: str | None = None,
    bits_stored: int = 12,
    signed: bool = False,
    repetition_time: float = 400.0,
    scanning_sequence: str = "GR",
    private: dict[tuple[int, int], tuple[str, Any]] | None = None,
    private_creators: dict[int, str] | None = None,
    sop_uid: str | None = None,
    with_pixels: bool = True,
    gz: bool = False,
) -> Path:
    """Write one classic MR image. ``echo_time=None`` / ``imaging_frequency=None`` omit the tag."""
    sop_uid = sop_uid or generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(MR_IMAGE_STORAGE, sop_uid)
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "Synth"
    ds.SoftwareVersions = "1.0"
    ds.ImageType = list(image_type)
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.ScanningSequence = scanning_sequence
    ds.MRAcquisitionType = "2D"
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if echo_time is not None:
        ds.EchoTime = echo_time
    if echo_number is not None:
        ds.EchoNumbers = echo_number
    if imaging_frequency is not None:
        ds.ImagingFrequency = imaging_frequency
    ds.MagneticFieldStrength = 3
    ds.RepetitionTime = repetition_time
    ds.SliceThickness = slice_thickness
    ds.ImagePositionPatient = _fmt(position)
    ds.ImageOrientationPatient = _fmt(orientation)
    ds.PixelSpacing = _fmt(pixel_spacing)
    if acquisition_time is not None:
        ds.AcquisitionDate = acquisition_date
        ds.AcquisitionTime = acquisition_time
    if temporal_id is not None:
        ds.TemporalPositionIdentifier = temporal_id
    if temporal_positions is not None:
        ds.NumberOfTemporalPositions = temporal_positions
    if rescale is not None:
        ds.RescaleSlope = f"{rescale[0]:.10g}"
        ds.RescaleIntercept = f"{rescale[1]:.10g}"
    if rescale_type is not None:
        ds.RescaleType = rescale_type
    for group, creator in (private_creators or {}).items():
        ds.private_block(group, creator, create=True)
    for (group, elem), (vr, value) in (private or {}).items():
        ds.add_new((group, elem), vr, value)
    pixels = np.asarray(pixels)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if with_pixels:
        ds.PixelData = pixels.astype("<i2" if signed else "<u2").tobytes()
    return _write(ds, path, gz)


def siemens_phase_pixels(phase: np.ndarray) -> np.ndarray:
    """Stored 0..4095 values of a Siemens phase image (RescaleSlope 2, Intercept -4096)."""
    value = np.round(np.asarray(phase) * 4096.0 / np.pi)  # -4096 .. 4094
    value = np.clip(value, -4096, 4094)
    return ((value + 4096) / 2).astype(np.uint16)


def enhanced(
    path: Path,
    pixels: np.ndarray,
    frames: Sequence[dict[str, Any]],
    *,
    series_uid: str,
    series_number: int = 1,
    description: str = "synthetic enhanced",
    manufacturer: str = "Siemens Healthineers",
    transmitter_frequency: Any = 123.262369,
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing: Sequence[float] = (2.0, 2.0),
    repetition_time: float = 600.0,
    bits_stored: int = 12,
    gz: bool = False,
) -> Path:
    """Write one enhanced MR image with ``len(frames)`` frames.

    Each frame dict holds ``position`` (3 floats), ``component`` ("MAGNITUDE"/"PHASE"/...),
    ``echo_time`` [ms] and optionally ``temporal_index``, ``frame_time`` (DICOM DT string) and
    ``rescale`` (slope, intercept).
    """
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(ENHANCED_MR_IMAGE_STORAGE, sop_uid)
    ds.SOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "Synth"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MIXED", "NONE"]
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(frames)
    shared = Dataset()
    if transmitter_frequency is not None:
        mod = Dataset()
        mod.TransmitterFrequency = transmitter_frequency
        shared.MRImagingModifierSequence = DicomSequence([mod])
    timing = Dataset()
    timing.RepetitionTime = repetition_time
    shared.MRTimingAndRelatedParametersSequence = DicomSequence([timing])
    ori = Dataset()
    ori.ImageOrientationPatient = _fmt(orientation)
    shared.PlaneOrientationSequence = DicomSequence([ori])
    meas = Dataset()
    meas.PixelSpacing = _fmt(pixel_spacing)
    meas.SliceThickness = 3
    shared.PixelMeasuresSequence = DicomSequence([meas])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per = []
    for fr in frames:
        item = Dataset()
        echo = Dataset()
        if fr.get("echo_time", _MISSING) is not None:
            echo.EffectiveEchoTime = fr.get("echo_time", 10.0)
            item.MREchoSequence = DicomSequence([echo])
        ftype = Dataset()
        comp = fr.get("component", "MAGNITUDE")
        ftype.FrameType = ["ORIGINAL", "PRIMARY", {"MAGNITUDE": "M", "PHASE": "P", "REAL": "R", "IMAGINARY": "I"}[comp], "NONE"]
        ftype.ComplexImageComponent = comp
        item.MRImageFrameTypeSequence = DicomSequence([ftype])
        content = Dataset()
        if "temporal_index" in fr:
            content.TemporalPositionIndex = fr["temporal_index"]
        if "frame_time" in fr:
            content.FrameAcquisitionDateTime = fr["frame_time"]
        content.StackID = "1"
        item.FrameContentSequence = DicomSequence([content])
        pos = Dataset()
        pos.ImagePositionPatient = _fmt(fr["position"])
        item.PlanePositionSequence = DicomSequence([pos])
        pvt = Dataset()
        slope, intercept = fr.get("rescale", (1.0, 0.0))
        pvt.RescaleSlope = f"{slope:.10g}"
        pvt.RescaleIntercept = f"{intercept:.10g}"
        pvt.RescaleType = "US"
        item.PixelValueTransformationSequence = DicomSequence([pvt])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per)
    pixels = np.asarray(pixels)
    ds.Rows, ds.Columns = pixels.shape[1:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    return _write(ds, path, gz)


def new_uid() -> str:
    """A fresh UID."""
    return generate_uid()


def read_header(path: Path) -> Dataset:
    """Read a written file back (for tests that damage it)."""
    return pydicom.dcmread(path)


def heated_acquisition(
    shape: tuple[int, int, int], n_base: int, n_dyn: int, *, rad_per_dynamic: float, spot_px: float,
    offset: float = 0.3, seed: int = 7,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Complex images of a heating, for the DICOM writer tests: magnitude 100 with complex noise 1
    per channel, a Gaussian phase spot (``spot_px`` sigma) at the centre deepening by
    ``rad_per_dynamic`` each dynamic (negative: heating with the PRF scale < 0).

    Returns ``(baselines, dynamics)``, complex64 arrays of ``shape`` (slices, rows, cols).
    """
    rng = np.random.default_rng(seed)
    n, r, c = shape
    yy, xx = np.mgrid[0:r, 0:c]
    spot = np.exp(-((yy - r / 2) ** 2 + (xx - c / 2) ** 2) / (2 * spot_px**2))

    def image(amp: float) -> np.ndarray:
        z = 100.0 * np.exp(1j * (offset + amp * spot))[None].repeat(n, 0)
        return (z + rng.normal(size=z.shape) + 1j * rng.normal(size=z.shape)).astype(np.complex64)

    return [image(0.0) for _ in range(n_base)], [image(rad_per_dynamic * (k + 1)) for k in range(n_dyn)]
