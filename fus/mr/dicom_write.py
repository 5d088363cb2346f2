"""Write what the simulated scanner acquired as Siemens-style classic MR DICOM.

:func:`write_series` stores complex dynamics (slices, rows, cols) the way a Siemens scanner
exports a GRE thermometry series: one file per slice per dynamic, a magnitude series
(ImageType ``ORIGINAL\\PRIMARY\\M\\ND``) and a phase series (``ORIGINAL\\PRIMARY\\P\\ND``), so
that :func:`fus.mr.dicom.load_series` and ``fus replay`` read it like scanner data.

Encoding
--------
* Phase: 12-bit stored values 0..4095 with RescaleSlope 2 and RescaleIntercept -4096 (the
  rescaled value -4096..4094 is ``phase * 4096 / pi``), i.e. ``PV = round((phase / pi + 1) *
  2048) mod 4096``: one stored step is 2 pi / 4096 rad, and a decoded phase is within pi / 4096
  rad (half a step) of the written one (:func:`phase_to_stored`).
* Magnitude: 12-bit unsigned ``round(|z| * gain)``, no rescale (as Siemens writes it); ``gain``
  defaults to 4000 / the largest magnitude written, so nothing clips. The per-channel noise of
  the stored magnitude is ``noise * gain`` (give it to ``fus replay --noise``).
* ImagingFrequency [MHz] from ``settings.b0``; EchoTime [ms] from ``settings.te``;
  AcquisitionDate / AcquisitionTime of each dynamic (every slice of a dynamic carries its
  time); AcquisitionNumber and TemporalPositionIdentifier = dynamic number (from 1);
  InstanceNumber = dynamic * slices + slice + 1 within each series.
* Geometry: the transducer frame in mm is written as the DICOM patient (LPS) frame.
  ImageOrientationPatient = (u, v) of the slice, ImagePositionPatient = its first voxel,
  PixelSpacing = (row, column) spacing, SliceThickness; so the reader's affine is
  ``diag(-1, -1, 1, 1) @ (plan affine in mm)`` (its RAS convention).
* UIDs: :func:`pydicom.uid.generate_uid` with entropy from ``settings.seed`` and the image's
  place in the series: writing the same acquisition twice gives the same files.

A DICOM series is one stack of parallel, evenly spaced slices (fus's reader, like most, refuses
mixed orientations), so the plan's slices are grouped into stacks of one orientation, spacing,
thickness and in-plane centre, each stored as its own magnitude and phase series
(:class:`WrittenStack` says which series holds which plan slices, in the reader's order).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import fus
from fus.backend import asnumpy
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.mr.scanner_sim import ImagePlan, ScannerSettings

__all__ = [
    "MR_IMAGE_STORAGE", "PIXEL_ATTRIBUTES", "PROTOCOL_NAME", "PreparedImages", "WrittenStack", "clock_string", "ds_strings",
    "identity_attributes", "magnitude_to_stored", "phase_to_stored", "plan_stacks", "prepare_images", "save_dataset",
    "stack_affine", "write_series",
]

log = logging.getLogger(__name__)

#: SOP class of classic MR images.
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: Phase radians per stored step (RescaleSlope 2 of the -4096..4095 = [-pi, pi) encoding).
PHASE_STEP = 2.0 * math.pi / 4096.0
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class WrittenStack:
    """One stack of parallel slices written as a magnitude and a phase series.

    Attributes
    ----------
    magnitude_series, phase_series : int
        SeriesNumber of each (``fus replay --series PHASE --magnitude-series MAGNITUDE``).
    slices : tuple of int
        Plan slice indices in the order the reader returns them (ascending along the normal).
    affine : ndarray (4, 4)
        Voxel (column, row, slice) -> RAS mm, as :attr:`fus.mr.dicom.Series.affine` reads it.
    n_baseline : int
        Number of leading baseline dynamics (``fus replay --baseline N``).
    gain : float
        Stored magnitude per magnitude unit (noise of the stored images: ``noise * gain``).
    files : int
        Number of files written (both series).
    """

    magnitude_series: int
    phase_series: int
    slices: tuple[int, ...]
    affine: np.ndarray
    n_baseline: int
    gain: float
    files: int


def phase_to_stored(phase: Any) -> np.ndarray:
    """Siemens 12-bit stored values (uint16, 0..4095) of a phase [rad] (any range: wrapped to [-pi, pi))."""
    p = np.asarray(phase, dtype=np.float64)
    return (np.round((np.angle(np.exp(1j * p)) / math.pi + 1.0) * 2048.0).astype(np.int64) % 4096).astype(np.uint16)


def magnitude_to_stored(magnitude: Any, gain: float) -> np.ndarray:
    """12-bit unsigned stored magnitude ``round(magnitude * gain)`` clipped to 0..4095 (uint16)."""
    return np.clip(np.round(np.asarray(magnitude, dtype=np.float64) * gain), 0, 4095).astype(np.uint16)


def plan_stacks(plan: ImagePlan) -> list[list[int]]:
    """The plan's slices grouped into DICOM stacks (each ascending along its normal ``u x v``).

    Slices of one orientation, spacing, thickness and in-plane centre form a stack when their
    offsets are evenly spaced; otherwise each is a stack of its own.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for k, s in enumerate(plan.slices):
        groups.setdefault((s.orientation, s.spacing, s.thickness, s.centre), []).append(k)
    out: list[list[int]] = []
    for members in groups.values():
        s0 = plan.slices[members[0]]
        u, v, a = s0.axes()
        sign = float(np.dot(np.cross(u, v), a))
        ordered = sorted(members, key=lambda k: sign * plan.slices[k].offset)
        pos = np.array([plan.slices[k].offset for k in ordered])
        steps = np.diff(pos)
        even = len(ordered) < 3 or np.max(np.abs(steps - steps.mean())) <= 1e-6 + 1e-3 * abs(steps.mean())
        distinct = len(ordered) < 2 or np.min(np.abs(steps)) > 1e-5
        if even and distinct:
            out.append(ordered)
        else:
            out.extend([k] for k in ordered)
    return out


def stack_affine(plan: ImagePlan, stack: Sequence[int]) -> np.ndarray:
    """RAS mm affine of a stack as the reader forms it (slice step measured between the slices)."""
    a = plan.affines()[stack[0]].copy()
    if len(stack) > 1:
        first, last = plan.affines()[stack[0]][:3, 3], plan.affines()[stack[-1]][:3, 3]
        a[:3, 2] = (last - first) / (len(stack) - 1)
    mm = np.diag([1e3, 1e3, 1e3, 1.0])
    return _LPS_TO_RAS @ mm @ a


def clock_string(seconds: float) -> str:
    """DICOM TM ``HHMMSS.ffffff`` of a time of day [s] (within one day)."""
    s = seconds % 86400.0
    h, rem = divmod(s, 3600.0)
    m, sec = divmod(rem, 60.0)
    return f"{int(h):02d}{int(m):02d}{sec:09.6f}"


def ds_strings(values: Sequence[float]) -> list[str]:
    """Decimal strings (DS, <= 16 characters) of ``values``."""
    return [f"{v:.8g}" for v in values]


def save_dataset(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM file (explicit VR little endian, file meta from its SOP class / instance)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


#: ProtocolName of every series written (classic and enhanced).
PROTOCOL_NAME = "fus PRF thermometry"
#: Image Pixel attributes of the stored 12-bit images (magnitude and phase alike).
PIXEL_ATTRIBUTES = {
    "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2",
    "BitsAllocated": 16, "BitsStored": 12, "HighBit": 11, "PixelRepresentation": 0,
}


@dataclass(frozen=True)
class PreparedImages:
    """Checked images of one acquisition, ready to be encoded (shared by the DICOM writers).

    Attributes
    ----------
    images : list of ndarray (slices, rows, cols), complex
        Baseline dynamics first, then the dynamics (numpy).
    times : ndarray
        Acquisition time of every image [s] (the baselines ``dynamic_period`` apart, ending one
        period before the first dynamic).
    n_baseline : int
        Number of leading baseline images.
    gain : float
        Stored magnitude per magnitude unit.
    """

    images: list[np.ndarray]
    times: np.ndarray
    n_baseline: int
    gain: float

    def stored(self) -> dict[str, list[np.ndarray]]:
        """Stored values (uint16) of every image: ``{"M": magnitude, "P": phase}``."""
        return {
            "M": [magnitude_to_stored(np.abs(z), self.gain) for z in self.images],
            "P": [phase_to_stored(np.angle(z)) for z in self.images],
        }


def prepare_images(
    dynamics: Sequence[Any],
    times: Sequence[float],
    plan: ImagePlan,
    settings: ScannerSettings,
    baseline: Sequence[Any] = (),
    magnitude_gain: float | None = None,
) -> PreparedImages:
    """Check the arguments shared by the writers and lay out the images and their times.

    Raises
    ------
    InvalidParameterError
        Bad settings, no dynamics, times not increasing or not one per dynamic, an image that is
        not complex of ``plan.shape``, a non-positive ``magnitude_gain``.
    """
    settings.validate()
    base = [asnumpy(z) for z in baseline]
    dyn = [asnumpy(z) for z in dynamics]
    images = base + dyn
    if not dyn:
        raise InvalidParameterError("dynamics", 0, "need at least one dynamic")
    t = np.array([finite_scalar("times", v) for v in times], dtype=np.float64)
    if t.shape != (len(dyn),) or np.any(np.diff(t) <= 0):
        raise InvalidParameterError("times", t.tolist()[:8], f"must be {len(dyn)} increasing times [s], one per dynamic")
    period = float(settings.dynamic_period)
    t_all = np.concatenate([t[0] - period * np.arange(len(base), 0, -1), t])
    for k, z in enumerate(images):
        if tuple(z.shape) != plan.shape or z.dtype.kind != "c":
            raise InvalidParameterError("dynamics", f"image {k} of shape {tuple(z.shape)}, dtype {z.dtype}", f"must be complex of shape {plan.shape}")
    if magnitude_gain is None:
        top = max(float(np.max(np.abs(z))) for z in images)
        gain = 4000.0 / top if top > 0 else 1.0
    else:
        gain = finite_scalar("magnitude_gain", magnitude_gain, positive=True)
    return PreparedImages(images, t_all, len(base), gain)


def identity_attributes(settings: ScannerSettings, start_clock: float, date: str) -> dict[str, Any]:
    """Patient, study, equipment and frame-of-reference attributes (UIDs seeded from ``settings.seed``)."""
    seed = str(int(settings.seed))
    return {
        "Modality": "MR", "Manufacturer": "SIEMENS",
        "ManufacturerModelName": "fus SimulatedScanner", "SoftwareVersions": f"fus {fus.__version__}",
        "PatientName": "fus^twin", "PatientID": "FUS-SIM",
        "StudyInstanceUID": generate_uid(entropy_srcs=[seed, "study"]),
        "FrameOfReferenceUID": generate_uid(entropy_srcs=[seed, "frame of reference"]),
        "StudyDate": date, "StudyTime": clock_string(float(start_clock)), "StudyID": "1",
    }


def write_series(
    folder: str | Path,
    dynamics: Sequence[Any],
    times: Sequence[float],
    plan: ImagePlan,
    settings: ScannerSettings,
    *,
    baseline: Sequence[Any] = (),
    magnitude_gain: float | None = None,
    first_series: int = 10,
    start_clock: float = 12 * 3600.0,
    date: str = "20260101",
) -> list[WrittenStack]:
    """Write complex dynamics as Siemens-style classic DICOM (see the module docstring).

    Parameters
    ----------
    folder : str or Path
        Output folder (created); files ``s{series:03d}_{M|P}_d{dynamic:04d}_k{slice:02d}.dcm``.
    dynamics : sequence of complex arrays (slices, rows, cols)
        What :meth:`fus.mr.scanner_sim.SimulatedScanner.acquire` returned (numpy or cupy).
    times : sequence of float
        Acquisition time of each dynamic [s], increasing.
    plan : ImagePlan
        The plan the dynamics were acquired with (geometry).
    settings : ScannerSettings
        Field, echo time, period and seed (UIDs).
    baseline : sequence of complex arrays, optional
        Baseline dynamics acquired before ``dynamics`` (written first, ``dynamic_period`` apart,
        ending one period before ``times[0]``); :attr:`WrittenStack.n_baseline` counts them.
    magnitude_gain : float, optional
        Stored magnitude per unit (default 4000 / the largest magnitude written).
    first_series : int
        SeriesNumber of the first stack's magnitude; its phase is the next number, the next
        stack's magnitude the one after.
    start_clock : float
        Time of day [s] of the first image written (default 12:00:00).
    date : str
        AcquisitionDate / StudyDate (DICOM DA, ``YYYYMMDD``).

    Returns
    -------
    list of WrittenStack
        One per stack (:func:`plan_stacks`).
    """
    prep = prepare_images(dynamics, times, plan, settings, baseline, magnitude_gain)
    images, t_all, gain = prep.images, prep.times, prep.gain
    if isinstance(first_series, bool) or not isinstance(first_series, (int, np.integer)) or first_series < 1:
        raise InvalidParameterError("first_series", first_series, "must be an integer >= 1")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    seed = str(int(settings.seed))
    clock0 = float(start_clock) - t_all[0]
    common = {
        **identity_attributes(settings, start_clock, date), "SOPClassUID": MR_IMAGE_STORAGE,
        "ScanningSequence": "GR", "SequenceVariant": "SP", "ScanOptions": "FS",
        "MRAcquisitionType": "2D", "SequenceName": "*fl2d1", "ProtocolName": PROTOCOL_NAME,
        "EchoTime": f"{settings.te * 1e3:.6g}", "EchoNumbers": 1,
        "ImagingFrequency": f"{settings.imaging_frequency / 1e6:.6f}", "ImagedNucleus": "1H",
        "MagneticFieldStrength": f"{settings.b0:.6g}", "NumberOfTemporalPositions": len(images),
        "Rows": plan.rows, "Columns": plan.cols, **PIXEL_ATTRIBUTES,
    }
    stored = prep.stored()
    written: list[WrittenStack] = []
    number = int(first_series)
    for stack in plan_stacks(plan):
        s0 = plan.slices[stack[0]]
        u, v, _ = s0.axes()
        step = abs(plan.slices[stack[1]].offset - s0.offset) if len(stack) > 1 else s0.thickness
        n_files = 0
        for comp, series_number in (("M", number), ("P", number + 1)):
            series_uid = generate_uid(entropy_srcs=[seed, "series", str(series_number), comp])
            desc = f"fus thermometry {s0.orientation} {'magnitude' if comp == 'M' else 'phase'}"
            for d, clock in enumerate(clock0 + t_all):
                for k, idx in enumerate(stack):
                    inst = d * len(stack) + k + 1
                    ds = Dataset()
                    for key, value in common.items():
                        setattr(ds, key, value)
                    ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, series_uid, str(inst)])
                    ds.SeriesInstanceUID = series_uid
                    ds.SeriesNumber = series_number
                    ds.SeriesDescription = desc
                    ds.ImageType = ["ORIGINAL", "PRIMARY", comp, "ND"]
                    ds.InstanceNumber = inst
                    ds.AcquisitionNumber = d + 1
                    ds.TemporalPositionIdentifier = d + 1
                    ds.AcquisitionDate = ds.ContentDate = ds.SeriesDate = date
                    ds.AcquisitionTime = ds.ContentTime = clock_string(clock)
                    ds.SeriesTime = clock_string(clock0 + t_all[0])
                    ds.ImageComments = "baseline" if d < prep.n_baseline else "dynamic"
                    ds.ImagePositionPatient = ds_strings(plan.slices[idx].affine(plan.rows, plan.cols)[:3, 3] * 1e3)
                    ds.ImageOrientationPatient = ds_strings(np.concatenate([u, v]))
                    ds.PixelSpacing = ds_strings(np.asarray(s0.spacing) * 1e3)
                    ds.SliceThickness = f"{s0.thickness * 1e3:.6g}"
                    ds.SpacingBetweenSlices = f"{step * 1e3:.6g}"
                    if comp == "P":
                        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "2", "-4096", "US"
                    ds.PixelData = stored[comp][d][idx].astype("<u2").tobytes()
                    save_dataset(ds, out / f"s{series_number:03d}_{comp}_d{d:04d}_k{k:02d}.dcm")
                    n_files += 1
        written.append(WrittenStack(number, number + 1, tuple(stack), stack_affine(plan, stack), prep.n_baseline, gain, n_files))
        log.info("wrote %s stack %s as series %d (magnitude) / %d (phase): %d files in %s",
                 s0.orientation, list(stack), number, number + 1, n_files, out)
        number += 2
    return written
