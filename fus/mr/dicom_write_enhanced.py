"""Write what the simulated scanner acquired as one Enhanced MR Image Storage file.

:func:`write_enhanced_series` stores the same images as :func:`fus.mr.dicom_write.write_series`
(baseline dynamics first, the same 12-bit magnitude and phase encodings, geometry, times, echo
time, field and seeded UIDs) as ONE multi-frame file of SOP class Enhanced MR Image Storage
(1.2.840.10008.5.1.4.1.1.4.1, DICOM PS3.3 A.36.2), magnitude and phase frames in the same file,
laid out like a Siemens XA enhanced export.

Layout (PS3.3 C.7.6.16 Multi-frame Functional Groups, C.7.6.17 Multi-frame Dimension,
C.8.13 Enhanced MR Image)
----------------------------------------------------------------------------------------
* Frames are stored dynamic by dynamic (baselines first); inside a dynamic all magnitude frames,
  then all phase frames; inside a component the stacks of :func:`~fus.mr.dicom_write.plan_stacks`
  in turn, each slice ascending along its normal. ``NumberOfFrames = 2 * slices * dynamics``.
* Top level: ImageType ``ORIGINAL\\PRIMARY\\MIXED\\NONE`` and ComplexImageComponent ``MIXED``
  (the frames differ in value 3 of their FrameType), AcquisitionDateTime of the first frame,
  the MR Pulse Sequence module of a 2-D spoiled gradient echo, TransmitterFrequency [MHz] from
  ``settings.b0`` in the shared MR Imaging Modifier group (fus's reader and dcm2niix take f0 from
  there), MagneticFieldStrength, Rows / Columns, BitsAllocated 16 / BitsStored 12.
* Shared functional groups: Frame Anatomy, MR Timing and Related Parameters (RepetitionTime,
  FlipAngle, echo train lengths), MR FOV/Geometry, MR Modifier, MR Imaging Modifier, MR Receive /
  Transmit Coil, MR Averages, MR Spatial Saturation (empty), and, when every stack has the same
  orientation, pixel spacing and thickness, Pixel Measures and Plane Orientation.
* Per frame: Frame Content (FrameAcquisitionNumber, FrameAcquisitionDateTime =
  FrameReferenceDateTime = the dynamic's time, FrameAcquisitionDuration = one dynamic period,
  StackID, InStackPositionNumber, TemporalPositionIndex = dynamic number from 1,
  DimensionIndexValues), Plane Position (ImagePositionPatient), MR Image Frame Type (FrameType
  ``ORIGINAL\\PRIMARY\\M|P\\NONE``, ComplexImageComponent MAGNITUDE / PHASE), Pixel Value
  Transformation (magnitude: RescaleSlope 1, RescaleIntercept 0; phase: 2 and -4096 as the
  classic writer, RescaleType US), MR Echo (EffectiveEchoTime [ms]).
* Dimensions (one DimensionOrganizationUID): StackID, InStackPositionNumber,
  TemporalPositionIndex (all in the Frame Content group) and ComplexImageComponent (in the MR
  Image Frame Type group; index 1 = MAGNITUDE, 2 = PHASE), so no two frames share their
  DimensionIndexValues.

fus's reader arranges one stack per series: a plan of several orientations (the standard
coronal / sagittal / axial plan) is written as a valid file of several stacks, but
:func:`fus.mr.dicom.load_series` refuses it (mixed ImageOrientationPatient in one series); write
one plan per orientation, or the classic series, to replay it.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.mr.dicom_write import (
    PIXEL_ATTRIBUTES,
    PROTOCOL_NAME,
    ds_strings,
    identity_attributes,
    plan_stacks,
    prepare_images,
    save_dataset,
    stack_affine,
)
from fus.mr.scanner_sim import ImagePlan, ScannerSettings

__all__ = ["ENHANCED_MR_IMAGE_STORAGE", "WrittenEnhanced", "write_enhanced_series"]

log = logging.getLogger(__name__)

#: SOP class of Enhanced MR Image Storage.
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
_COMPONENTS = (("M", "MAGNITUDE"), ("P", "PHASE"))
#: Pixel Value Transformation of each component: (RescaleSlope, RescaleIntercept).
_RESCALE = {"M": ("1", "0"), "P": ("2", "-4096")}
_ENTIRE_BODY = ("38266002", "SCT", "Entire body")


@dataclass(frozen=True)
class WrittenEnhanced:
    """What :func:`write_enhanced_series` wrote.

    Attributes
    ----------
    path : Path
        The file.
    series_number : int
        Its SeriesNumber (magnitude and phase are in this one series).
    stacks : tuple of tuple of int
        Plan slice indices of each stack (StackID ``k + 1``), ascending along the slice normal.
    affines : tuple of ndarray (4, 4)
        Voxel (column, row, slice) -> RAS mm of each stack, as the reader forms it.
    n_baseline : int
        Number of leading baseline dynamics (``fus replay --baseline N``).
    gain : float
        Stored magnitude per magnitude unit (noise of the stored images: ``noise * gain``).
    frames : int
        NumberOfFrames (``2 * slices * dynamics``).
    """

    path: Path
    series_number: int
    stacks: tuple[tuple[int, ...], ...]
    affines: tuple[np.ndarray, ...]
    n_baseline: int
    gain: float
    frames: int


def _item(**attributes: Any) -> Dataset:
    ds = Dataset()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def _seq(*items: Dataset) -> DicomSequence:
    return DicomSequence(list(items))


def _datetime_string(date: str, seconds: float) -> str:
    """DICOM DT ``YYYYMMDDHHMMSS.ffffff`` of ``seconds`` after midnight of ``date`` (may pass midnight)."""
    try:
        day = _dt.datetime.strptime(date, "%Y%m%d")
    except ValueError:
        raise InvalidParameterError("date", date, "must be a DICOM date YYYYMMDD") from None
    micro = int(round(seconds * 1e6))
    return (day + _dt.timedelta(microseconds=micro)).strftime("%Y%m%d%H%M%S.%f")


def _shared_groups(settings: ScannerSettings, plan: ImagePlan, geometry: Dataset | None, tr_ms: float, flip: float) -> Dataset:
    code = _item(CodeValue=_ENTIRE_BODY[0], CodingSchemeDesignator=_ENTIRE_BODY[1], CodeMeaning=_ENTIRE_BODY[2])
    shared = _item(
        FrameAnatomySequence=_seq(_item(AnatomicRegionSequence=_seq(code), FrameLaterality="U")),
        MRTimingAndRelatedParametersSequence=_seq(_item(
            RepetitionTime=f"{tr_ms:.6g}", FlipAngle=f"{flip:.6g}", EchoTrainLength=1,
            RFEchoTrainLength=0, GradientEchoTrainLength=1, OperatingModeSequence=_seq(
                _item(OperatingModeType="GRADIENT", OperatingMode="IEC_NORMAL"),
                _item(OperatingModeType="RF", OperatingMode="IEC_NORMAL"),
            ), SpecificAbsorptionRateSequence=_seq(), GradientOutputType="DB_DT",
        )),
        MRFOVGeometrySequence=_seq(_item(
            InPlanePhaseEncodingDirection="COLUMN", MRAcquisitionFrequencyEncodingSteps=int(plan.cols),
            MRAcquisitionPhaseEncodingStepsInPlane=int(plan.rows), PercentSampling="100",
            PercentPhaseFieldOfView=f"{100.0 * plan.rows / plan.cols:.6g}",
        )),
        MRModifierSequence=_seq(_item(
            InversionRecovery="NO", FlowCompensation="NONE", Spoiling="RF", T2Preparation="NO",
            SpectrallySelectedExcitation="NONE", SpatialPresaturation="NONE", PartialFourier="NO",
            ParallelAcquisition="NO",
        )),
        MRImagingModifierSequence=_seq(_item(
            PixelBandwidth="260", MagnetizationTransfer="NONE", BloodSignalNulling="NO", Tagging="NONE",
            TransmitterFrequency=float(f"{settings.imaging_frequency / 1e6:.6f}"),
        )),
        MRReceiveCoilSequence=_seq(_item(ReceiveCoilName="fus simulated", ReceiveCoilType="MULTICOIL", QuadratureReceiveCoil="NO")),
        MRTransmitCoilSequence=_seq(_item(TransmitCoilName="Body", TransmitCoilType="BODY")),
        MRAveragesSequence=_seq(_item(NumberOfAverages="1")),
        MRSpatialSaturationSequence=_seq(),
    )
    if geometry is not None:
        shared.PixelMeasuresSequence = geometry.PixelMeasuresSequence
        shared.PlaneOrientationSequence = geometry.PlaneOrientationSequence
    return shared


def _stack_geometry(plan: ImagePlan, stack: Sequence[int]) -> Dataset:
    """Pixel Measures and Plane Orientation of one stack (a Dataset holding both sequences)."""
    s0 = plan.slices[stack[0]]
    u, v, _ = s0.axes()
    step = abs(plan.slices[stack[1]].offset - s0.offset) if len(stack) > 1 else s0.thickness
    return _item(
        PixelMeasuresSequence=_seq(_item(
            PixelSpacing=ds_strings(np.asarray(s0.spacing) * 1e3), SliceThickness=f"{s0.thickness * 1e3:.6g}",
            SpacingBetweenSlices=f"{step * 1e3:.6g}",
        )),
        PlaneOrientationSequence=_seq(_item(ImageOrientationPatient=ds_strings(np.concatenate([u, v])))),
    )


def write_enhanced_series(
    path: str | Path,
    dynamics: Sequence[Any],
    times: Sequence[float],
    plan: ImagePlan,
    settings: ScannerSettings,
    *,
    baseline: Sequence[Any] = (),
    magnitude_gain: float | None = None,
    series_number: int = 10,
    start_clock: float = 12 * 3600.0,
    date: str = "20260101",
    repetition_time: float | None = None,
    flip_angle: float = 25.0,
) -> WrittenEnhanced:
    """Write complex dynamics as one Enhanced MR Image Storage file (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Output file (its folder is created).
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
        ending one period before ``times[0]``).
    magnitude_gain : float, optional
        Stored magnitude per unit (default 4000 / the largest magnitude written).
    series_number : int
        SeriesNumber of the file.
    start_clock : float
        Time of day [s] of the first frame (default 12:00:00).
    date : str
        StudyDate / date of the first frame (DICOM DA, ``YYYYMMDD``).
    repetition_time : float, optional
        RepetitionTime [s] (default ``dynamic_period / rows``: an interleaved multi-slice 2-D
        GRE acquiring one phase-encoding line of every slice per TR).
    flip_angle : float
        FlipAngle [deg] (default 25).

    Returns
    -------
    WrittenEnhanced

    Raises
    ------
    InvalidParameterError
        The arguments :func:`fus.mr.dicom_write.write_series` refuses, a bad ``series_number``,
        ``date``, ``repetition_time`` or ``flip_angle``.
    """
    prep = prepare_images(dynamics, times, plan, settings, baseline, magnitude_gain)
    if isinstance(series_number, bool) or not isinstance(series_number, (int, np.integer)) or series_number < 1:
        raise InvalidParameterError("series_number", series_number, "must be an integer >= 1")
    tr = float(settings.dynamic_period) / plan.rows if repetition_time is None else finite_scalar("repetition_time", repetition_time, positive=True)
    flip = finite_scalar("flip_angle", flip_angle, positive=True)
    if flip > 180.0:
        raise InvalidParameterError("flip_angle", flip_angle, "must be in (0, 180] degrees")
    out = Path(path)
    if out.is_dir():
        raise InvalidParameterError("path", str(out), "is a folder: give the file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    seed = str(int(settings.seed))
    stacks = plan_stacks(plan)
    geometry = [_stack_geometry(plan, st) for st in stacks]
    same = all(g == geometry[0] for g in geometry)
    t_all, n_img = prep.times, len(prep.images)
    clock0 = float(start_clock) - t_all[0]
    frame_dt = [_datetime_string(date, clock0 + t) for t in t_all]
    stored = prep.stored()

    ds = Dataset()
    for key, value in identity_attributes(settings, start_clock, date).items():
        setattr(ds, key, value)
    series_uid = generate_uid(entropy_srcs=[seed, "enhanced series", str(series_number)])
    org_uid = generate_uid(entropy_srcs=[seed, series_uid, "dimension organization"])
    ds.SOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, series_uid, "1"])
    ds.InstanceCreationDate, ds.InstanceCreationTime = frame_dt[0][:8], frame_dt[0][8:]
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, int(series_number)
    ds.SeriesDescription = f"fus thermometry {'/'.join(plan.slices[st[0]].orientation for st in stacks)} magnitude+phase"
    ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = frame_dt[0][:8]
    ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = frame_dt[0][8:]
    ds.AcquisitionDateTime = frame_dt[0]
    ds.AcquisitionDuration = float(t_all[-1] - t_all[0] + settings.dynamic_period)
    ds.ReferringPhysicianName, ds.AccessionNumber = "", ""
    ds.PatientBirthDate, ds.PatientSex, ds.PatientPosition = "", "O", "HFS"
    ds.PositionReferenceIndicator, ds.DeviceSerialNumber = "", "0"
    ds.ProtocolName, ds.ImageComments = PROTOCOL_NAME, f"{prep.n_baseline} baseline dynamics, then {n_img - prep.n_baseline} dynamics"
    ds.InstanceNumber, ds.AcquisitionNumber = 1, 1
    # Enhanced MR Image module with the Common CT/MR and MR Image Description macros
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MIXED", "NONE"]
    ds.PixelPresentation, ds.VolumetricProperties, ds.VolumeBasedCalculationTechnique = "MONOCHROME", "VOLUME", "NONE"
    ds.ComplexImageComponent, ds.AcquisitionContrast = "MIXED", "T2_STAR"
    ds.ContentQualification, ds.ResonantNucleus, ds.KSpaceFiltering = "PRODUCT", "1H", "NONE"
    ds.MagneticFieldStrength, ds.ApplicableSafetyStandardAgency = f"{settings.b0:.6g}", "IEC"
    ds.BurnedInAnnotation, ds.LossyImageCompression, ds.PresentationLUTShape = "NO", "00", "IDENTITY"
    # MR Pulse Sequence module: 2-D RF-spoiled gradient echo, fat suppressed
    ds.PulseSequenceName, ds.MRAcquisitionType, ds.EchoPulseSequence = "*fl2d1", "2D", "GRADIENT"
    ds.MultiPlanarExcitation, ds.PhaseContrast, ds.TimeOfFlightContrast = "NO", "NO", "NO"
    ds.SteadyStatePulseSequence, ds.EchoPlanarPulseSequence, ds.SaturationRecovery = "NONE", "NO", "NO"
    ds.SpectrallySelectedSuppression, ds.OversamplingPhase = "FAT", "NONE"
    ds.GeometryOfKSpaceTraversal, ds.SegmentedKSpaceTraversal, ds.RectilinearPhaseEncodeReordering = "RECTILINEAR", "SINGLE", "LINEAR"
    ds.NumberOfKSpaceTrajectories = 1
    ds.AcquisitionContextSequence = _seq()
    ds.Rows, ds.Columns = plan.rows, plan.cols
    for key, value in PIXEL_ATTRIBUTES.items():
        setattr(ds, key, value)
    ds.SharedFunctionalGroupsSequence = _seq(_shared_groups(settings, plan, geometry[0] if same else None, tr * 1e3, flip))
    pointers = [
        (Tag("StackID"), "Stack ID", Tag("FrameContentSequence")),
        (Tag("InStackPositionNumber"), "In-Stack Position Number", Tag("FrameContentSequence")),
        (Tag("TemporalPositionIndex"), "Temporal Position Index", Tag("FrameContentSequence")),
        (Tag("ComplexImageComponent"), "Complex Image Component", Tag("MRImageFrameTypeSequence")),
    ]
    ds.DimensionOrganizationSequence = _seq(_item(DimensionOrganizationUID=org_uid))
    ds.DimensionIndexSequence = _seq(*[
        _item(DimensionOrganizationUID=org_uid, DimensionIndexPointer=p, FunctionalGroupPointer=g, DimensionDescriptionLabel=label)
        for p, label, g in pointers
    ])
    te_ms = float(settings.te) * 1e3
    per_frame: list[Dataset] = []
    pixels: list[bytes] = []
    for d in range(n_img):
        for c_index, (comp, name) in enumerate(_COMPONENTS, start=1):
            slope, intercept = _RESCALE[comp]
            for s_index, stack in enumerate(stacks):
                for k, idx in enumerate(stack):
                    content = _item(
                        FrameAcquisitionNumber=d + 1, FrameReferenceDateTime=frame_dt[d], FrameAcquisitionDateTime=frame_dt[d],
                        FrameAcquisitionDuration=float(settings.dynamic_period) * 1e3, StackID=str(s_index + 1),
                        InStackPositionNumber=k + 1, TemporalPositionIndex=d + 1,
                        DimensionIndexValues=[s_index + 1, k + 1, d + 1, c_index],
                    )
                    frame = _item(
                        FrameContentSequence=_seq(content),
                        PlanePositionSequence=_seq(_item(ImagePositionPatient=ds_strings(plan.slices[idx].affine(plan.rows, plan.cols)[:3, 3] * 1e3))),
                        MRImageFrameTypeSequence=_seq(_item(
                            FrameType=["ORIGINAL", "PRIMARY", comp, "NONE"], PixelPresentation="MONOCHROME",
                            VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE",
                            ComplexImageComponent=name, AcquisitionContrast="T2_STAR",
                        )),
                        PixelValueTransformationSequence=_seq(_item(RescaleIntercept=intercept, RescaleSlope=slope, RescaleType="US")),
                        MREchoSequence=_seq(_item(EffectiveEchoTime=te_ms)),
                    )
                    if not same:
                        frame.PixelMeasuresSequence = geometry[s_index].PixelMeasuresSequence
                        frame.PlaneOrientationSequence = geometry[s_index].PlaneOrientationSequence
                    per_frame.append(frame)
                    pixels.append(stored[comp][d][idx].astype("<u2").tobytes())
    ds.PerFrameFunctionalGroupsSequence = _seq(*per_frame)
    ds.NumberOfFrames = len(per_frame)
    ds.PixelData = b"".join(pixels)
    save_dataset(ds, out)
    affines = tuple(stack_affine(plan, st) for st in stacks)
    log.info("wrote %d frames (%d dynamics, %d stacks, magnitude and phase) as one enhanced MR file %s",
             len(per_frame), n_img, len(stacks), out)
    if len(stacks) > 1:
        log.warning("%s holds %d stacks of different geometry: fus's reader arranges one stack per series "
                    "and will refuse it", out, len(stacks))
    return WrittenEnhanced(out, int(series_number), tuple(tuple(st) for st in stacks), affines, prep.n_baseline, prep.gain, len(per_frame))
