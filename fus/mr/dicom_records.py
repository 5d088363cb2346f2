"""Records of the DICOM header pass: one per file, one per 2-D image (internal to :mod:`fus.mr.dicom`).

:class:`FileInfo` holds what the images of a file share (series identity, vendor, f0, TR, and
the :class:`PixelLayout`: where the pixel values are in the file and how they are stored);
:class:`ImageRecord` holds one image, a classic file or one frame of an enhanced file (complex
component, echo, geometry, temporal keys, and the :class:`~fus.mr.dicom_scaling.Scale` from
stored value to physical value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fus.mr.dicom_scaling import Scale

__all__ = ["FileInfo", "ImageRecord", "PixelLayout"]


@dataclass(frozen=True)
class PixelLayout:
    """Where and how the pixel values of one file are stored.

    Attributes
    ----------
    offset : int
        Byte offset of the first pixel value in the (decompressed) file; -1 when the pixel data
        are encapsulated (compressed) and must be decoded by pydicom.
    nbytes : int
        Length of the Pixel Data value [bytes] (0 when encapsulated).
    frames, rows, columns : int
        Number of frames and the matrix of each frame.
    bits_allocated, bits_stored : int
        (0028,0100) and (0028,0101).
    signed : bool
        (0028,0103) Pixel Representation is 1.
    little_endian : bool
        Byte order of the stored values.
    native : bool
        True for uncompressed pixel data that can be read by offset; False means decode with
        pydicom (encapsulated or deflated transfer syntax).
    transfer_syntax : str
        (0002,0010) Transfer Syntax UID ("" when the file has no meta header).
    """

    offset: int
    nbytes: int
    frames: int
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    little_endian: bool
    native: bool
    transfer_syntax: str

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame of native pixel data."""
        return self.rows * self.columns * (self.bits_allocated // 8)


@dataclass(frozen=True)
class FileInfo:
    """Per-file facts shared by all the images of a file.

    Times are in seconds, frequencies in Hz; ``None`` marks an absent optional tag.
    """

    path: Path
    gz: bool
    enhanced: bool
    sop_instance_uid: str
    series_uid: str
    series_number: int | None
    series_description: str
    protocol_name: str
    manufacturer: str
    vendor: str
    model: str
    software_versions: str
    f0: float
    repetition_time: float | None
    temporal_positions: int | None
    epi: bool
    mr_acquisition_type: str
    layout: PixelLayout
    sequence_name: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """One 2-D image: a classic file or one frame of an enhanced file.

    Attributes
    ----------
    file : FileInfo
        The file holding the image.
    frame : int
        0-based frame index in the file.
    component : str
        One of ``"magnitude"``, ``"phase"``, ``"real"``, ``"imaginary"``.
    echo_number : int or None
        (0018,0086) EchoNumbers when present (classic files), else None.
    echo_time : float
        Echo time [s].
    position : tuple of 3 float
        ImagePositionPatient [mm, LPS], the centre of the first transmitted voxel.
    orientation : tuple of 6 float
        ImageOrientationPatient direction cosines (row direction, then column direction).
    pixel_spacing : tuple of 2 float
        PixelSpacing [mm]: (between rows, between columns).
    rows, columns : int
        Matrix.
    spacing_hint : float or None
        SpacingBetweenSlices, else SliceThickness [mm]; only used for single-slice series.
    temporal_index : int or None
        (0020,9128) TemporalPositionIndex (enhanced).
    frame_time : float or None
        (0018,9074) FrameAcquisitionDateTime [s since 0001-01-01] (enhanced).
    temporal_id : int or None
        (0020,0100) TemporalPositionIdentifier (classic).
    acquisition_time : float or None
        AcquisitionDateTime or AcquisitionDate + AcquisitionTime [s] (seconds of the day when
        the date is absent).
    instance_number : int or None
        (0020,0013) InstanceNumber of the file.
    scale : Scale
        Linear map from stored value to physical value (radians for phase).
    """

    file: FileInfo
    frame: int
    component: str
    echo_number: int | None
    echo_time: float
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    spacing_hint: float | None
    temporal_index: int | None
    frame_time: float | None
    temporal_id: int | None
    acquisition_time: float | None
    instance_number: int | None
    scale: Scale

    @property
    def label(self) -> str:
        """The file name, plus the frame number for multi-frame files."""
        if self.file.layout.frames > 1:
            return f"{self.file.path} (frame {self.frame + 1})"
        return str(self.file.path)
