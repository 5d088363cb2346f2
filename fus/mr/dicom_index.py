"""Header pass of the DICOM reader: find the files, parse each header once, one record per image.

This module is internal to :mod:`fus.mr.dicom` (read that module's docstring for the public
API and the conventions). It turns a folder tree into :class:`ImageRecord` objects, one per 2-D
image (a classic file, or one frame of an enhanced multi-frame file), each carrying everything
the later stages need: series identity, complex component, echo, geometry, temporal keys, the
linear map from stored pixel value to physical value, and where the pixel bytes are in the file.

Pixel data are not decoded here: the header is parsed up to (7FE0,0010) Pixel Data, and the
element header found at that position gives the offset and length of the pixel values, which is
also how a file truncated inside its pixel data is caught during indexing. Little-endian files
with a DICM prefix are parsed by a small parser of our own (``_fast_header``, about 10x faster
than pydicom on these headers, values decoded on first use); any other file, or anything
unusual in one, is parsed by pydicom (``dcmread(stop_before_pixels=True)``) as the reference.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import logging
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from fus.errors import DicomError
from fus.mr.dicom_scaling import Scale, image_scale, vendor_of

logger = logging.getLogger(__name__)

__all__ = [
    "FileInfo",
    "ImageRecord",
    "IndexResult",
    "PixelLayout",
    "index_paths",
    "read_file",
]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.4"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_MR_SOP_CLASSES = {
    MR_IMAGE_STORAGE: False,
    ENHANCED_MR_IMAGE_STORAGE: True,
    LEGACY_ENHANCED_MR_IMAGE_STORAGE: True,
}
_NATIVE_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian (retired)
}
_PIXEL_DATA = Tag(0x7FE0, 0x0010)
_DICM_OFFSET = 128

COMPONENTS = ("magnitude", "phase", "real", "imaginary")
_IMAGE_TYPE_TOKENS = {
    "M": "magnitude",
    "MAGNITUDE": "magnitude",
    "P": "phase",
    "PHASE": "phase",
    "R": "real",
    "REAL": "real",
    "I": "imaginary",
    "IMAGINARY": "imaginary",
}
_GE_COMPONENT = {0: "magnitude", 1: "phase", 2: "real", 3: "imaginary"}
_PHILIPS_CREATOR = "Philips MR Imaging DD 001"
_PHILIPS_FRAME_CREATOR = "Philips MR Imaging DD 005"
_GE_PARM_CREATOR = "GEMS_PARM_01"


# Top-level elements the header pass uses; everything else is skipped by the parser (nested
# sequence items are always read whole). Private creators may sit in any block (gggg,0010) to
# (gggg,00FF); blocks 0x10-0x3F are covered, with the elements the reader uses in each block.
_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "ProtocolName", "Modality", "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
    "ImageType", "ComplexImageComponent", "EchoTime", "EchoNumbers", "ImagingFrequency",
    "RepetitionTime", "ScanningSequence", "EchoPlanarPulseSequence", "NumberOfTemporalPositions",
    "MRAcquisitionType", "RescaleSlope", "RescaleIntercept", "RescaleType",
    "RealWorldValueMappingSequence", "Rows", "Columns", "SamplesPerPixel",
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation", "PixelData",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SpacingBetweenSlices",
    "SliceThickness", "AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime",
    "TemporalPositionIdentifier", "InstanceNumber", "SmallestImagePixelValue",
    "LargestImagePixelValue", "NumberOfFrames", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "SpecificCharacterSet", "SequenceName", "PulseSequenceName",
)


def _specific_tags() -> list[int]:
    tags = [int(Tag(k)) for k in _KEYWORDS]
    for group, elements in ((0x0043, (0x2F,)), (0x2005, (0x0D, 0x0E, 0x11))):
        for block in range(0x10, 0x40):
            tags.append((group << 16) | block)
            tags.extend((group << 16) | (block << 8) | e for e in elements)
    return tags


_SPECIFIC_TAGS = _specific_tags()


def tag_label(group: int, element: int, keyword: str = "") -> str:
    """Format a tag as ``"(gggg,eeee) Keyword"`` for error messages."""
    text = f"({group:04X},{element:04X})"
    return f"{text} {keyword}" if keyword else text


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------


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


@dataclass
class IndexResult:
    """What the header pass found under a path.

    Attributes
    ----------
    images : list of ImageRecord
        Every image of every MR series that could be indexed.
    series_errors : dict
        Series key -> the first DicomError met in a file of that series (the file's header was
        readable enough to tell its series). A series key is (SeriesInstanceUID, enhanced):
        a scanner may export one series both as classic and as enhanced files under the same
        UID (the shared Philips data do), and those are kept apart rather than merged.
    series_names : dict
        Series key -> (SeriesNumber, SeriesDescription, first file) also for series with errors.
    n_files : int
        Number of files read as DICOM (skipped files not counted).
    """

    images: list[ImageRecord]
    series_errors: dict[tuple[str, bool], DicomError]
    series_names: dict[tuple[str, bool], tuple[int | None, str, Path]]
    n_files: int


# --------------------------------------------------------------------------------------------
# small parsers
# --------------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip(" \x00")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(_as_text(v) for v in value)
    return str(value).strip()


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _get(ds: Dataset | None, keyword: str) -> Any:
    """Value of a public element, or None when absent or empty."""
    if ds is None:
        return None
    if type(ds) is _FastHeader:  # its values are already None when absent or empty
        try:
            return ds.get(keyword)
        except Exception:  # a malformed sequence or text value: treat as absent, as below
            return None
    try:
        elem = ds.get(keyword)
    except Exception:  # pydicom raises on some malformed values; treat as absent here
        return None
    if elem is None:
        return None
    if isinstance(elem, str) and not elem.strip():
        return None
    try:
        if len(elem) == 0:  # empty MultiValue / Sequence / bytes
            return None
    except TypeError:
        pass
    return elem


def _number(value: Any, path: Path, tag: str, kind: type = float) -> float | int:
    try:
        out = kind(_first(value)) if kind is float else int(float(_first(value)))
    except (TypeError, ValueError) as exc:
        raise DicomError(f"cannot read a number from {value!r} ({exc})", path=path, tag=tag) from None
    if kind is float and not math.isfinite(out):
        raise DicomError(f"non-finite value {value!r}", path=path, tag=tag)
    return out


def _floats(value: Any, n: int, path: Path, tag: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"cannot read numbers from {value!r} ({exc})", path=path, tag=tag) from None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise DicomError(f"expected {n} finite numbers, found {value!r}", path=path, tag=tag)
    return vals


def parse_tm(text: str) -> float | None:
    """Seconds of the day from a DICOM TM value ``HHMMSS.FFFFFF`` (colons tolerated)."""
    s = _as_text(text).replace(":", "")
    if len(s) < 2:
        return None
    try:
        hours = int(s[0:2])
        minutes = int(s[2:4]) if len(s) >= 4 else 0
        seconds = float(s[4:]) if len(s) > 4 else 0.0
    except ValueError:
        return None
    return hours * 3600.0 + minutes * 60.0 + seconds


def _parse_da(text: str) -> float | None:
    s = _as_text(text).replace(".", "").replace("-", "")
    if len(s) < 8:
        return None
    try:
        day = _dt.date(int(s[0:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None
    return day.toordinal() * 86400.0


def parse_dt(text: str) -> float | None:
    """Seconds since 0001-01-01 from a DICOM DT value (UTC offset suffix ignored)."""
    s = _as_text(text)
    for sign in ("+", "-"):
        pos = s.find(sign, 8)
        if pos > 0:
            s = s[:pos]
    if len(s) < 8:
        return None
    day = _parse_da(s[:8])
    if day is None:
        return None
    tod = parse_tm(s[8:]) if len(s) > 8 else 0.0
    return day + (tod or 0.0)


def _private(ds: Dataset | None, group: int, offset: int, creator: str) -> Any:
    """Value of a private element found through its private creator, or None."""
    if ds is None:
        return None
    try:
        elem = ds.get_private_item(group, offset, creator)
    except (KeyError, ValueError):
        return None
    except Exception:
        return None
    return None if elem is None else elem.value


def _private_int16(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # VR UN (implicit VR without a private dictionary)
        if len(value) < 2:
            return None
        return int.from_bytes(value[:2], "little", signed=True)
    try:
        return int(_first(value))
    except (TypeError, ValueError):
        return None


def _private_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        if len(value) != 4:
            return None
        import struct

        return float(struct.unpack("<f", value)[0])
    try:
        out = float(_first(value))
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _tag_value(ds: Any, tag: int) -> Any:
    """Value of the element ``tag`` (an int) of a pydicom Dataset or a _FastHeader, or None."""
    if ds is None:
        return None
    try:
        if type(ds) is _FastHeader:
            return ds.get(tag)
        elem = ds.get(tag)
    except Exception:  # pydicom raises on some malformed values; treat as absent
        return None
    return None if elem is None else elem.value


def _item(ds: Dataset | None, keyword: str) -> Dataset | None:
    """First item of a sequence element, or None."""
    seq = _get(ds, keyword)
    if isinstance(seq, _SEQUENCE_TYPES) and len(seq):
        return seq[0]
    return None


def _group_item(per_frame: Dataset | None, shared: Dataset | None, keyword: str) -> Dataset | None:
    """A functional group macro item: per-frame first, then shared."""
    return _item(per_frame, keyword) or _item(shared, keyword)


# --------------------------------------------------------------------------------------------
# reading one file
# --------------------------------------------------------------------------------------------


def _looks_like_raw_dicom(head: bytes) -> bool:
    """True when a file without the DICM prefix starts like a DICOM data set.

    A preamble-less file starts with an element of group 0x0002 or 0x0008, little endian,
    followed either by a two-letter VR (explicit VR) or by a 4-byte length (implicit VR).
    """
    if len(head) < 8:
        return False
    if head[0:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    return (vr.isalpha() and vr.isupper()) or int.from_bytes(head[4:8], "little") < 1024


def _open(path: Path) -> tuple[BinaryIO | None, bool, int]:
    """Open a candidate file. Returns (file object or None when not DICOM, gz flag, size)."""
    gz = path.name.lower().endswith(".gz")
    if gz:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(_DICM_OFFSET + 4)
                if not (head[_DICM_OFFSET:] == b"DICM" or _looks_like_raw_dicom(head)):
                    return None, True, 0
                data = head + fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            # a gzip stream that breaks off is a truncated file; one that is not gzip at all
            # is not ours
            if not isinstance(exc, gzip.BadGzipFile):
                raise DicomError(f"cannot decompress gzip file: {exc}", path=path) from None
            # named .gz but not gzip: read it as a plain file (a DICOM file misnamed is still one)
            logger.warning("%s is named .gz but is not gzip-compressed; reading it as a plain file", path)
        else:
            return io.BytesIO(data), True, len(data)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise DicomError(f"cannot open file: {exc}", path=path) from None
    head = fh.read(_DICM_OFFSET + 4)
    if not (head[_DICM_OFFSET:] == b"DICM" or _looks_like_raw_dicom(head)):
        fh.close()
        return None, False, 0
    fh.seek(0)
    return fh, False, os.fstat(fh.fileno()).st_size


@dataclass(frozen=True)
class _PixelElement:
    """The (7FE0,xxxx) element header found where the header parse stopped."""

    tag: int
    value_offset: int
    length: int
    little_endian: bool


_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the data set as read."""
    enc = getattr(ds, "original_encoding", None)  # pydicom >= 3
    if isinstance(enc, tuple) and len(enc) == 2 and enc[0] is not None:
        return bool(enc[0]), bool(enc[1])
    return bool(getattr(ds, "is_implicit_VR", False)), bool(getattr(ds, "is_little_endian", True))


def _locate_pixel_element(fh: BinaryIO, ds: Dataset) -> _PixelElement | None:
    """Read the element header at the position where ``stop_before_pixels`` left the file."""
    start = fh.tell()
    head = fh.read(12)
    if len(head) < 8:
        return None
    implicit, little = _encoding(ds)
    order = "little" if little else "big"
    group = int.from_bytes(head[0:2], order)
    elem = int.from_bytes(head[2:4], order)
    if group != 0x7FE0:
        return None
    if implicit:
        length, header = int.from_bytes(head[4:8], order), 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return None
        length, header = int.from_bytes(head[8:12], order), 12
    else:
        length, header = int.from_bytes(head[6:8], order), 8
    return _PixelElement((group << 16) | elem, start + header, length, little)


# --------------------------------------------------------------------------------------------
# fast header parser
# --------------------------------------------------------------------------------------------
#
# pydicom spends ~1.2 ms per Siemens header (132 top-level elements, CSA blobs) and ~30 us per
# first access of a value; the header pass needs ~40 values of a few kinds. The parser below
# walks the top-level elements of a little-endian data set with ``struct.unpack_from`` (about
# 0.6 us per element), keeps the byte ranges of the wanted tags (the same set as
# ``_SPECIFIC_TAGS``), converts a value only when it is asked for, and records where the pixel
# data start: ~0.1 ms per Siemens header, ~0.3 ms per file with everything the header pass does.
# Sequences (enhanced per-frame groups: 873 -> 145 ms for the 212-frame Philips file) are
# parsed the same way into _FastSequence items. Anything unusual (no DICM prefix, big endian
# or deflated transfer syntax, an unknown VR, a truncated element, an item tag at the top
# level) makes it give up, and the file is read by pydicom as before, so damaged files get the
# same diagnostics. Checked against the pydicom path on every shared and test file (identical
# records and error messages, also for implicit VR, non-ASCII text and 400 damaged files).

_IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_LITTLE_EXPLICIT = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", ""}
_LONG_VRS_B = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_KNOWN_VRS_B = _LONG_VRS_B | frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"SV", b"TM", b"UI", b"UL", b"US", b"UV",
    }
)
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_SINGLE_VALUED_TEXT = frozenset({"LT", "ST", "UT", "UR"})
_BINARY_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_PIXEL_ELEMENTS = frozenset({0x0008, 0x0009, 0x0010})
_WANTED_TAGS = frozenset(_SPECIFIC_TAGS)
_META_KEYWORDS = ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")
_TAG_OF = {k: int(Tag(k)) for k in _KEYWORDS + _META_KEYWORDS}
_PIXEL_REPRESENTATION = 0x00280103
_SPECIFIC_CHARACTER_SET = 0x00080005
#: First read of an uncompressed file [bytes]: a classic image, pixels included, fits.
_FIRST_READ = 1024 * 1024
#: Files up to this size are read whole when their header runs past the first read [bytes];
#: pydicom parses the header of larger ones.
_FAST_READ_LIMIT = 256 * 1024 * 1024
_UNDEFINED = 0xFFFFFFFF


_EXPLICIT_HEAD = struct.Struct("<HH2sH")  # group, element, VR, 16-bit length
_IMPLICIT_HEAD = struct.Struct("<HHI")  # group, element, 32-bit length
_U32 = struct.Struct("<I")


def _dictionary_vr(tag: int) -> str:
    """VR of a tag in an implicit-VR data set (private elements: UN, private creators: LO)."""
    group, elem = tag >> 16, tag & 0xFFFF
    if group & 1:
        return "LO" if 0x0010 <= elem <= 0x00FF else "UN"
    if elem == 0:
        return "UL"  # group length
    try:
        return pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return "UN"


_DICT_VR = {t: _dictionary_vr(t) for t in _WANTED_TAGS | set(_TAG_OF.values())}
_PRIVATE_VR: dict[tuple[int, str], str] = {}


def _private_dictionary_vr(tag: int, creator: str) -> str:
    """VR of a private element from pydicom's private dictionary (``"UN"`` when unknown)."""
    key = (tag, creator)
    vr = _PRIVATE_VR.get(key)
    if vr is None:
        try:
            vr = pydicom.datadict.private_dictionary_VR(tag, creator)
        except KeyError:
            vr = "UN"
        _PRIVATE_VR[key] = vr
    return vr


class _Value:
    """Stand-in for a pydicom DataElement where only ``.value`` is used."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _FastSequence(list):
    """The items of a sequence, each a :class:`_FastHeader` (as pydicom's Sequence of Datasets)."""


_SEQUENCE_TYPES = (DicomSequence, _FastSequence)


class _FastHeader:
    """The elements of one data set (or sequence item), decoded on first access.

    Answers the part of the :class:`pydicom.dataset.Dataset` interface the header pass uses:
    ``get(keyword or integer tag)`` (the *value*, unlike pydicom's ``get(tag)``),
    ``get_private_item``, ``file_meta``, ``original_encoding`` and ``in``. Values: text VRs as
    ``str`` (a ``list`` of ``str`` when multi-valued; DS and IS left as text for the callers'
    checked number parsing), binary numbers as ``int`` / ``float`` (a ``list`` when
    multi-valued), sequences as a :class:`_FastSequence` of :class:`_FastHeader` items (or a
    pydicom Sequence when an item is unusual), other VRs as ``bytes``; empty values as None.
    The VR of an implicit-VR or UN element comes from the DICOM dictionary, for a private one
    from pydicom's private dictionary through its private creator, as pydicom does.
    """

    __slots__ = ("_data", "_raw", "_cache", "_implicit", "_root", "file_meta", "original_encoding")

    def __init__(
        self,
        data: bytes,
        raw: dict[int, tuple[str, int, int, bool]],
        implicit: bool,
        file_meta: _FastHeader | None = None,
        root: _FastHeader | None = None,
    ) -> None:
        self._data = data
        self._raw = raw
        self._cache: dict[int, Any] = {}
        self._implicit = implicit
        self._root = root  # the top-level data set (its SpecificCharacterSet applies); None: self
        self.file_meta = file_meta
        self.original_encoding = (implicit, True)

    def __contains__(self, key: Any) -> bool:
        tag = _TAG_OF.get(key) if isinstance(key, str) else key
        return tag in self._raw

    def __len__(self) -> int:
        return len(self._raw)

    def get(self, key: str | int, default: Any = None) -> Any:
        """Decoded value of a keyword or an integer tag, or ``default`` when absent."""
        if isinstance(key, str):
            tag = _TAG_OF.get(key)
            if tag is None:
                tag = pydicom.datadict.tag_for_keyword(key)
        elif isinstance(key, tuple):
            tag = (int(key[0]) << 16) | int(key[1])
        else:
            tag = int(key)
        if tag is None or tag not in self._raw:
            return default
        if tag not in self._cache:
            self._cache[tag] = self._decode(tag)
        return self._cache[tag]

    def _creator(self, tag: int) -> str | None:
        value = self.get(tag)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        return None if value is None else str(value).strip(" \x00")

    def get_private_item(self, group: int, element_offset: int, private_creator: str) -> _Value:
        """The element ``element_offset`` of the block reserved by ``private_creator``.

        Raises
        ------
        KeyError
            No such creator or element (as pydicom does).
        """
        for creator_tag in sorted(t for t in self._raw if t >> 16 == group and 0x10 <= t & 0xFFFF <= 0xFF):
            if self._creator(creator_tag) == private_creator:
                block = creator_tag & 0xFF
                tag = (group << 16) | (block << 8) | element_offset
                if tag not in self._raw:
                    raise KeyError(f"({group:04X},{(block << 8) | element_offset:04X})")
                return _Value(self.get(tag))
        raise KeyError(f"private creator {private_creator!r} not in group {group:04X}")

    def _encodings(self) -> list[str]:
        from pydicom.charset import convert_encodings

        value = (self._root or self).get(_SPECIFIC_CHARACTER_SET)
        if value is None:
            return convert_encodings(None)
        return convert_encodings([value] if isinstance(value, str) else list(value))

    def _decode(self, tag: int) -> Any:
        vr, start, length, seq_implicit = self._raw[tag]
        if length == 0:
            return None
        if vr == "UN" and (tag >> 16) & 1 and (tag & 0xFF00):
            creator = self._creator(((tag >> 16) << 16) | ((tag & 0xFFFF) >> 8))
            if creator:
                vr = _private_dictionary_vr(tag, creator)
        if vr == "SQ":
            return self._sequence(start, length, seq_implicit)
        raw = self._data[start : start + length]
        if vr in ("US or SS", "US or SS or OW"):
            pr = (self._root or self).get(_PIXEL_REPRESENTATION)
            vr = "SS" if pr == 1 else "US"
        if vr in _TEXT_VRS:
            if not raw.isascii():
                return self._pydicom_text(tag, vr, raw, start)
            text = raw.decode("ascii").rstrip(" \x00")
            if vr in _SINGLE_VALUED_TEXT:
                return text or None
            if "\\" not in text:
                return text.strip(" \x00") or None
            return [p.strip(" \x00") for p in text.split("\\")]
        fmt = _BINARY_FORMATS.get(vr)
        if fmt is not None:
            size = struct.calcsize(fmt)
            n = length // size
            if n == 0 or n * size != length:
                return raw  # malformed length: left undecoded, the callers refuse bytes
            values = struct.unpack_from(f"<{n}{fmt}", raw)
            return values[0] if n == 1 else list(values)
        return raw

    def _sequence(self, start: int, length: int, implicit: bool) -> Any:
        items = _parse_items(self._data, start, start + length, implicit, self._root or self)
        if items is not None:
            return items
        from pydicom.values import convert_SQ  # an unusual item: let pydicom decode it

        return convert_SQ(self._data[start : start + length], implicit, True, self._encodings(), start)

    def _pydicom_text(self, tag: int, vr: str, raw: bytes, start: int) -> Any:
        """Text with non-ASCII bytes: decoded by pydicom with the SpecificCharacterSet."""
        from pydicom.dataelem import RawDataElement
        from pydicom.values import convert_value

        elem = RawDataElement(Tag(tag), vr, len(raw), raw, start, self._implicit, True)
        value = convert_value(vr, elem, self._encodings())
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            parts = [str(v).strip() for v in value]
            return parts if len(parts) > 1 else (parts[0] or None if parts else None)
        if isinstance(value, str):
            return value.strip() or None
        return value


def _parse_items(data: bytes, pos: int, end: int, implicit: bool, root: _FastHeader) -> _FastSequence | None:
    """Items of a sequence value ``data[pos:end]`` (delimiter excluded), or None when unusual."""
    items = _FastSequence()
    head = _IMPLICIT_HEAD.unpack_from
    while pos < end:
        if pos + 8 > end:
            return None
        group, elem, length = head(data, pos)
        pos += 8
        if group != 0xFFFE:
            return None
        if elem == 0xE0DD:  # sequence delimiter inside the value: nothing may follow
            return items if pos == end else None
        if elem != 0xE000:
            return None
        if length == _UNDEFINED:
            walked = _walk_item(data, pos, end, implicit, delimited=True)
        else:
            if pos + length > end:
                return None
            walked = _walk_item(data, pos, pos + length, implicit, delimited=False)
        if walked is None:
            return None
        raw, pos = walked
        items.append(_FastHeader(data, raw, implicit, root=root))
    return items


def _walk_item(
    data: bytes, pos: int, end: int, implicit: bool, delimited: bool
) -> tuple[dict[int, tuple[str, int, int, bool]], int] | None:
    """All elements of one sequence item; returns them and the position after the item."""
    explicit_head = _EXPLICIT_HEAD.unpack_from
    implicit_head = _IMPLICIT_HEAD.unpack_from
    u32 = _U32.unpack_from
    raw: dict[int, tuple[str, int, int, bool]] = {}
    while pos < end:
        if pos + 8 > end:
            return None
        if implicit:
            group, elem, length = implicit_head(data, pos)
            vr_b, hdr = None, 8
        else:
            group, elem, vr_b, length = explicit_head(data, pos)
            if group == 0xFFFE:
                vr_b, length, hdr = None, u32(data, pos + 4)[0], 8
            elif vr_b in _LONG_VRS_B:
                if pos + 12 > end:
                    return None
                length, hdr = u32(data, pos + 8)[0], 12
            elif vr_b in _KNOWN_VRS_B:
                hdr = 8
            else:
                return None
        if group == 0xFFFE:
            if delimited and elem == 0xE00D:
                return raw, pos + 8
            return None
        tag = (group << 16) | elem
        start = pos + hdr
        if length == _UNDEFINED:
            if not (implicit or vr_b in (b"SQ", b"UN")):
                return None
            seq_implicit = implicit or vr_b == b"UN"
            stop = _skip_sequence(data, start, seq_implicit)
            if stop is None or stop > end:
                return None
            raw[tag] = ("SQ", start, stop - 8 - start, seq_implicit)
            pos = stop
            continue
        pos = start + length
        if pos > end:
            return None
        if vr_b is None or vr_b == b"UN":
            vr = _DICT_VR.get(tag) or _dictionary_vr(tag)
            raw[tag] = (vr, start, length, True)
        else:
            raw[tag] = (vr_b.decode("ascii"), start, length, implicit)
    if delimited:
        return None  # no item delimiter before the end of the sequence
    return raw, pos


def _skip_sequence(data: bytes, pos: int, implicit: bool) -> int | None:
    """Position just after the (FFFE,E0DD) delimiter of an undefined-length sequence value."""
    n = len(data)
    unpack = struct.unpack_from
    while True:
        if pos + 8 > n:
            return None
        group, elem, length = unpack("<HHI", data, pos)
        if group != 0xFFFE:
            return None
        pos += 8
        if elem == 0xE0DD:
            return pos
        if elem != 0xE000:
            return None
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # undefined-length item: its elements up to (FFFE,E00D)
            if pos + 8 > n:
                return None
            group, elem = unpack("<HH", data, pos)
            if group == 0xFFFE:
                if elem != 0xE00D:
                    return None
                pos += 8
                break
            if implicit:
                vr, length, hdr = None, unpack("<I", data, pos + 4)[0], 8
            else:
                vr = data[pos + 4 : pos + 6]
                if vr not in _KNOWN_VRS_B:
                    return None
                if vr in _LONG_VRS_B:
                    if pos + 12 > n:
                        return None
                    length, hdr = unpack("<I", data, pos + 8)[0], 12
                else:
                    length, hdr = unpack("<H", data, pos + 6)[0], 8
            if length == _UNDEFINED:
                if not (implicit or vr in (b"SQ", b"UN")):
                    return None  # encapsulated data inside an item
                end = _skip_sequence(data, pos + hdr, implicit or vr == b"UN")
                if end is None:
                    return None
                pos = end
            else:
                pos += hdr + length
                if pos > n:
                    return None


def _walk(
    data: bytes, pos: int, implicit: bool
) -> tuple[dict[int, tuple[str, int, int, bool]], _PixelElement | None] | None:
    """Top-level elements from ``pos`` to the pixel data (or the end); None when unusual."""
    n = len(data)
    explicit_head = _EXPLICIT_HEAD.unpack_from
    implicit_head = _IMPLICIT_HEAD.unpack_from
    u32 = _U32.unpack_from
    long_vrs, known_vrs, wanted = _LONG_VRS_B, _KNOWN_VRS_B, _WANTED_TAGS
    raw: dict[int, tuple[str, int, int, bool]] = {}
    while pos < n:
        if pos + 8 > n:
            return None
        if implicit:
            group, elem, length = implicit_head(data, pos)
            vr_b, hdr = None, 8
        else:
            group, elem, vr_b, length = explicit_head(data, pos)
            if vr_b in long_vrs:
                if pos + 12 > n:
                    return None
                length, hdr = u32(data, pos + 8)[0], 12
            elif vr_b in known_vrs:
                hdr = 8
            else:
                return None
        if group == 0x7FE0 and elem in _PIXEL_ELEMENTS:
            return raw, _PixelElement((group << 16) | elem, pos + hdr, length, True)
        if group == 0xFFFE or group < 0x0008:
            return None  # item tag or file meta inside the data set: let pydicom judge
        start = pos + hdr
        tag = (group << 16) | elem
        if length == _UNDEFINED:
            if not (implicit or vr_b in (b"SQ", b"UN")):
                return None
            seq_implicit = implicit or vr_b == b"UN"
            end = _skip_sequence(data, start, seq_implicit)
            if end is None:
                return None
            if tag in wanted:
                raw[tag] = ("SQ", start, end - 8 - start, seq_implicit)
            pos = end
            continue
        pos = start + length
        if pos > n:
            return None
        if tag in wanted:
            if vr_b is None or vr_b == b"UN":
                # implicit data set, or UN (whose content is implicit VR): dictionary VR
                raw[tag] = (_DICT_VR.get(tag, "UN"), start, length, True)
            else:
                raw[tag] = (vr_b.decode("ascii"), start, length, implicit)
    return raw, None


def _fast_header(data: bytes, complete: bool = True) -> tuple[_FastHeader, _PixelElement | None] | None:
    """Parse an in-memory DICOM file (preamble + DICM + meta + data set), or None when unusual.

    ``complete=False`` says ``data`` is only the start of the file: a walk that reaches its end
    without meeting the pixel data then gives up (None) instead of reporting no pixel data.
    """
    n = len(data)
    if n < _DICM_OFFSET + 4 or data[_DICM_OFFSET : _DICM_OFFSET + 4] != b"DICM":
        return None
    unpack = struct.unpack_from
    pos = _DICM_OFFSET + 4
    meta: dict[int, tuple[str, int, int, bool]] = {}
    while pos + 8 <= n:
        group, elem = unpack("<HH", data, pos)
        if group != 0x0002:
            break
        vr_b = data[pos + 4 : pos + 6]
        if vr_b not in _KNOWN_VRS_B:
            return None
        if vr_b in _LONG_VRS_B:
            if pos + 12 > n:
                return None
            length, hdr = unpack("<I", data, pos + 8)[0], 12
        else:
            length, hdr = unpack("<H", data, pos + 6)[0], 8
        if length == _UNDEFINED or pos + hdr + length > n:
            return None
        meta[(group << 16) | elem] = (vr_b.decode("ascii"), pos + hdr, length, False)
        pos += hdr + length
    file_meta = _FastHeader(data, meta, False)
    syntax = file_meta.get("TransferSyntaxUID") or ""
    if not isinstance(syntax, str) or syntax in _NOT_LITTLE_EXPLICIT:
        return None
    implicit = syntax == _IMPLICIT_LE
    walked = _walk(data, pos, implicit)
    if walked is None:
        return None
    raw, pixel = walked
    if pixel is None and not complete:
        return None
    return _FastHeader(data, raw, implicit, file_meta), pixel


def _read_header(fh: BinaryIO, gz: bool, size: int) -> tuple[Any, _PixelElement | None]:
    """Header and pixel-data element of an opened file: fast parser, else pydicom.

    An uncompressed file is read in one piece of at most ``_FIRST_READ`` bytes (a classic
    image whole); only when its header runs past that is the rest read (up to
    ``_FAST_READ_LIMIT``), else pydicom parses the header from the file.
    """
    if gz and isinstance(fh, io.BytesIO):
        parsed = _fast_header(fh.getvalue())
    else:
        data = fh.read(min(size, _FIRST_READ))
        parsed = _fast_header(data, complete=len(data) >= size)
        if parsed is None and len(data) < size <= _FAST_READ_LIMIT:
            data += fh.read()
            parsed = _fast_header(data)
    if parsed is not None:
        return parsed
    fh.seek(0)
    ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True, specific_tags=_SPECIFIC_TAGS)
    return ds, _locate_pixel_element(fh, ds)


_DEFLATED_LE = "1.2.840.10008.1.2.1.99"


def _pixel_layout(
    ds: Dataset, pixel: _PixelElement | None, path: Path, size: int, frames: int
) -> PixelLayout:
    meta0 = getattr(ds, "file_meta", None)
    deflated = meta0 is not None and _as_text(_get(meta0, "TransferSyntaxUID")) == _DEFLATED_LE
    if pixel is None and deflated:
        # the whole data set is zlib-compressed, so the header pass cannot see where the pixel
        # data lies: decode the image with pydicom when it is read
        pixel = _PixelElement(int(_PIXEL_DATA), -1, 0xFFFFFFFF, True)
    if pixel is None:
        raise DicomError(
            "MR image without pixel data (the file is truncated or is not an image)",
            path=path,
            tag=tag_label(0x7FE0, 0x0010, "PixelData"),
        )
    if pixel.tag != int(_PIXEL_DATA):
        raise DicomError(
            f"unsupported pixel data element ({pixel.tag >> 16:04X},{pixel.tag & 0xFFFF:04X}) "
            "(float pixel data); integer (7FE0,0010) PixelData expected",
            path=path,
            tag=tag_label(pixel.tag >> 16, pixel.tag & 0xFFFF),
        )
    rows = _number(_get(ds, "Rows"), path, tag_label(0x0028, 0x0010, "Rows"), int)
    cols = _number(_get(ds, "Columns"), path, tag_label(0x0028, 0x0011, "Columns"), int)
    if rows <= 0 or cols <= 0:
        raise DicomError(f"invalid matrix {rows}x{cols}", path=path, tag=tag_label(0x0028, 0x0010, "Rows"))
    samples = _get(ds, "SamplesPerPixel")
    if samples is not None and int(samples) != 1:
        raise DicomError(
            f"expected a grey-scale image, found SamplesPerPixel={samples}",
            path=path,
            tag=tag_label(0x0028, 0x0002, "SamplesPerPixel"),
        )
    photometric = _as_text(_get(ds, "PhotometricInterpretation")) or "MONOCHROME2"
    if photometric != "MONOCHROME2":
        raise DicomError(
            f"unsupported PhotometricInterpretation {photometric!r} (MONOCHROME2 expected)",
            path=path,
            tag=tag_label(0x0028, 0x0004, "PhotometricInterpretation"),
        )
    bits_allocated = _number(_get(ds, "BitsAllocated"), path, tag_label(0x0028, 0x0100, "BitsAllocated"), int)
    if bits_allocated not in (8, 16, 32):
        raise DicomError(
            f"unsupported BitsAllocated={bits_allocated} (8, 16 or 32 expected)",
            path=path,
            tag=tag_label(0x0028, 0x0100, "BitsAllocated"),
        )
    bits_stored = _get(ds, "BitsStored")
    bits_stored = bits_allocated if bits_stored is None else int(bits_stored)
    if not 1 <= bits_stored <= bits_allocated:
        raise DicomError(
            f"BitsStored={bits_stored} does not fit BitsAllocated={bits_allocated}",
            path=path,
            tag=tag_label(0x0028, 0x0101, "BitsStored"),
        )
    signed = int(_get(ds, "PixelRepresentation") or 0) == 1
    meta = getattr(ds, "file_meta", None)
    syntax = _as_text(_get(meta, "TransferSyntaxUID")) if meta is not None else ""
    undefined = pixel.length == 0xFFFFFFFF
    native = (not undefined) and (syntax in _NATIVE_TRANSFER_SYNTAXES or syntax == "")
    if not native:
        return PixelLayout(-1, 0, frames, rows, cols, bits_allocated, bits_stored, signed, True, False, syntax)
    expected = frames * rows * cols * (bits_allocated // 8)
    if pixel.value_offset + pixel.length > size:
        raise DicomError(
            f"file is truncated: Pixel Data declares {pixel.length} bytes at offset "
            f"{pixel.value_offset}, the file holds {size} bytes",
            path=path,
            tag=tag_label(0x7FE0, 0x0010, "PixelData"),
        )
    if pixel.length < expected:
        raise DicomError(
            f"Pixel Data holds {pixel.length} bytes, {frames} frame(s) of {rows}x{cols} at "
            f"{bits_allocated} bits need {expected}",
            path=path,
            tag=tag_label(0x7FE0, 0x0010, "PixelData"),
        )
    return PixelLayout(
        pixel.value_offset, pixel.length, frames, rows, cols, bits_allocated, bits_stored, signed,
        pixel.little_endian, True, syntax,
    )


def _components_from_image_type(value: Any, source: str) -> list[tuple[str, str]]:
    values = [_as_text(v).upper() for v in (value if not isinstance(value, str) else value.split("\\"))]
    found = []
    for token in values[2:]:
        comp = _IMAGE_TYPE_TOKENS.get(token)
        if comp is not None:
            found.append((f"{source}={'/'.join(values)}", comp))
    return found


def _decide_component(found: list[tuple[str, str]], path: Path, where: str) -> str:
    comps = {c for _, c in found}
    if len(comps) > 1:
        detail = "; ".join(f"{src} -> {c}" for src, c in found)
        raise DicomError(f"contradictory complex-component tags{where}: {detail}", path=path, tag=found[0][0].split("=")[0])
    if not comps:
        return "magnitude"
    return comps.pop()


def _classic_component(ds: Dataset, path: Path) -> str:
    found: list[tuple[str, str]] = []
    cic = _as_text(_get(ds, "ComplexImageComponent")).upper()
    if cic in ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY"):
        found.append(("(0008,9208) ComplexImageComponent", cic.lower()))
    ge = _private_int16(_private(ds, 0x0043, 0x2F, _GE_PARM_CREATOR))
    if ge is not None:
        if ge not in _GE_COMPONENT:
            raise DicomError(
                f"GE private image type {ge} is none of 0=magnitude, 1=phase, 2=real, 3=imaginary",
                path=path,
                tag="(0043,102F) GE private image type",
            )
        found.append((f"(0043,102F) GE image type={ge}", _GE_COMPONENT[ge]))
    philips = _as_text(_private(ds, 0x2005, 0x11, _PHILIPS_CREATOR)).upper()
    if philips in _IMAGE_TYPE_TOKENS:
        found.append((f"(2005,1011) Philips image type={philips}", _IMAGE_TYPE_TOKENS[philips]))
    found += _components_from_image_type(_get(ds, "ImageType") or [], "(0008,0008) ImageType")
    comp = _decide_component(found, path, "")
    if not found:
        _refuse_phase_like_default(ds, path)
    return comp


_PHASE_UNITS = ("MRAD", "RAD", "RADIAN", "RADIANS", "DEG", "DEGREE", "DEGREES")


def _refuse_phase_like_default(ds: Dataset, path: Path) -> None:
    """An image with no tag naming its complex component is taken as magnitude (plain magnitude
    series often say nothing), unless its rescale says phase: an angular RescaleType or a
    negative RescaleIntercept (magnitude is never negative) is an error, not a guess."""
    unit = _as_text(_get(ds, "RescaleType")).strip().upper()
    try:
        intercept = float(_first(_get(ds, "RescaleIntercept")) or 0.0)
    except (TypeError, ValueError):
        intercept = 0.0
    if unit in _PHASE_UNITS or intercept < 0:
        why = f"RescaleType {unit!r}" if unit in _PHASE_UNITS else f"RescaleIntercept {intercept:g} (negative)"
        raise DicomError(
            f"no tag names the complex component (ImageType {list(_get(ds, 'ImageType') or [])}, no "
            f"ComplexImageComponent, no vendor private tag) and the rescale looks like phase ({why}): "
            "refusing to take the image as magnitude",
            path=path,
            tag="(0008,0008) ImageType / (0028,1054) RescaleType",
        )


def _enhanced_component(
    ds: Dataset, frame_type: Dataset | None, philips_item: Dataset | None, path: Path, frame: int
) -> str:
    found: list[tuple[str, str]] = []
    cic = _as_text(_get(frame_type, "ComplexImageComponent")).upper()
    if cic in ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY"):
        found.append(("(0008,9208) ComplexImageComponent (per frame)", cic.lower()))
    top = _as_text(_get(ds, "ComplexImageComponent")).upper()
    if top in ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY"):
        found.append(("(0008,9208) ComplexImageComponent", top.lower()))
    philips = _as_text(_private(philips_item, 0x2005, 0x11, _PHILIPS_CREATOR)).upper()
    if philips in _IMAGE_TYPE_TOKENS:
        found.append((f"(2005,1011) Philips image type={philips}", _IMAGE_TYPE_TOKENS[philips]))
    found += _components_from_image_type(_get(frame_type, "FrameType") or [], "(0008,9007) FrameType")
    return _decide_component(found, path, f" in frame {frame + 1}")


def _philips_private_scale(item: Dataset | None) -> tuple[float | None, float | None]:
    """(scale slope SS (2005,100E), scale intercept SI (2005,100D)) of a Philips item."""
    if item is None:
        return None, None
    ss = _private_float(_private(item, 0x2005, 0x0E, _PHILIPS_CREATOR))
    si = _private_float(_private(item, 0x2005, 0x0D, _PHILIPS_CREATOR))
    return ss, si


def _rwvm_units(item: Dataset | None) -> str:
    rwvm = _item(item, "RealWorldValueMappingSequence")
    if rwvm is None:
        return ""
    units = _item(rwvm, "MeasurementUnitsCodeSequence")
    return _as_text(_get(units, "CodeValue")) if units is not None else ""


def _file_facts(ds: Dataset, path: Path, enhanced: bool) -> dict[str, Any]:
    """Series-level facts of a file, including f0 [Hz] and TR [s]."""
    shared = _item(ds, "SharedFunctionalGroupsSequence") if enhanced else None
    frame0 = None
    if enhanced:
        per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
        frame0 = per_frame[0] if isinstance(per_frame, _SEQUENCE_TYPES) and len(per_frame) else None
    # f0: TransmitterFrequency (enhanced, MR Imaging Modifier macro) or ImagingFrequency [MHz]
    f0_mhz = None
    f0_tag = tag_label(0x0018, 0x0084, "ImagingFrequency")
    if enhanced:
        modifier = _group_item(frame0, shared, "MRImagingModifierSequence")
        value = _get(modifier, "TransmitterFrequency")
        if value is not None:
            f0_mhz = _number(value, path, tag_label(0x0018, 0x9098, "TransmitterFrequency"))
            f0_tag = tag_label(0x0018, 0x9098, "TransmitterFrequency")
    if f0_mhz is None:
        value = _get(ds, "ImagingFrequency")
        if value is not None:
            f0_mhz = _number(value, path, f0_tag)
    if f0_mhz is None:
        where = (
            "(0018,9098) TransmitterFrequency in the MR Imaging Modifier functional group, or "
            if enhanced
            else ""
        )
        raise DicomError(
            f"no Larmor frequency: {where}(0018,0084) ImagingFrequency is missing; B0 is taken "
            "from it (never from MagneticFieldStrength)",
            path=path,
            tag=f0_tag,
        )
    if not 1.0 <= f0_mhz <= 1000.0:
        raise DicomError(f"implausible frequency {f0_mhz} MHz", path=path, tag=f0_tag)
    # TR [ms] -> s
    tr_value = None
    if enhanced:
        timing = _group_item(frame0, shared, "MRTimingAndRelatedParametersSequence")
        tr_value = _get(timing, "RepetitionTime")
    if tr_value is None:
        tr_value = _get(ds, "RepetitionTime")
    tr = None
    if tr_value is not None:
        tr = _number(tr_value, path, tag_label(0x0018, 0x0080, "RepetitionTime")) * 1e-3
    scanning = _as_text(_get(ds, "ScanningSequence")).upper().split("\\")
    epi = "EP" in scanning or _as_text(_get(ds, "EchoPlanarPulseSequence")).upper() == "YES"
    ntp = _get(ds, "NumberOfTemporalPositions")
    return {
        "f0": f0_mhz * 1e6,
        "repetition_time": tr,
        "epi": epi,
        "temporal_positions": None if ntp is None else _number(ntp, path, tag_label(0x0020, 0x0105), int),
    }


def _time_of(ds: Dataset) -> float | None:
    dt = _get(ds, "AcquisitionDateTime")
    if dt is not None:
        value = parse_dt(dt)
        if value is not None:
            return value
    tm = _get(ds, "AcquisitionTime")
    if tm is None:
        return None
    tod = parse_tm(tm)
    if tod is None:
        return None
    day = _parse_da(_get(ds, "AcquisitionDate") or "")
    return tod + (day or 0.0)


def _geometry(
    plane_pos: Dataset | None, plane_ori: Dataset | None, measures: Dataset | None, path: Path, where: str
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], float | None]:
    ipp_v = _get(plane_pos, "ImagePositionPatient")
    if ipp_v is None:
        raise DicomError(f"missing ImagePositionPatient{where}", path=path, tag=tag_label(0x0020, 0x0032, "ImagePositionPatient"))
    iop_v = _get(plane_ori, "ImageOrientationPatient")
    if iop_v is None:
        raise DicomError(f"missing ImageOrientationPatient{where}", path=path, tag=tag_label(0x0020, 0x0037, "ImageOrientationPatient"))
    ps_v = _get(measures, "PixelSpacing")
    if ps_v is None:
        raise DicomError(f"missing PixelSpacing{where}", path=path, tag=tag_label(0x0028, 0x0030, "PixelSpacing"))
    ipp = _floats(ipp_v, 3, path, tag_label(0x0020, 0x0032, "ImagePositionPatient"))
    iop = _floats(iop_v, 6, path, tag_label(0x0020, 0x0037, "ImageOrientationPatient"))
    ps = _floats(ps_v, 2, path, tag_label(0x0028, 0x0030, "PixelSpacing"))
    if min(ps) <= 0:
        raise DicomError(f"non-positive PixelSpacing {ps}{where}", path=path, tag=tag_label(0x0028, 0x0030, "PixelSpacing"))
    row, col = iop[:3], iop[3:]
    nr = math.sqrt(sum(v * v for v in row))
    nc = math.sqrt(sum(v * v for v in col))
    dot = sum(a * b for a, b in zip(row, col))
    if abs(nr - 1) > 1e-3 or abs(nc - 1) > 1e-3 or abs(dot) > 1e-3:
        raise DicomError(
            f"ImageOrientationPatient {iop} is not a pair of orthonormal direction cosines{where}",
            path=path,
            tag=tag_label(0x0020, 0x0037, "ImageOrientationPatient"),
        )
    hint = _get(measures, "SpacingBetweenSlices")
    if hint is None:
        hint = _get(measures, "SliceThickness")
    hint_mm = None
    if hint is not None:
        try:
            hint_mm = abs(float(_first(hint))) or None
        except (TypeError, ValueError):
            hint_mm = None
    return ipp, iop, ps, hint_mm


def _echo_time(item: Dataset | None, keyword: str, path: Path, tag: str, where: str) -> float:
    value = _get(item, keyword)
    if value is None:
        raise DicomError(f"missing echo time{where}", path=path, tag=tag)
    te_ms = _number(value, path, tag)
    if te_ms <= 0:
        raise DicomError(f"echo time must be > 0 ms, found {te_ms}{where}", path=path, tag=tag)
    return te_ms * 1e-3


def _classic_images(ds: Dataset, info: FileInfo, path: Path) -> list[ImageRecord]:
    image_type = _as_text(_get(ds, "ImageType")).upper().split("\\")
    if "MOSAIC" in image_type:
        raise DicomError(
            "Siemens mosaic image (many slices tiled in one frame) is not supported; export the "
            "series without mosaic or convert it first",
            path=path,
            tag=tag_label(0x0008, 0x0008, "ImageType"),
        )
    component = _classic_component(ds, path)
    te = _echo_time(ds, "EchoTime", path, tag_label(0x0018, 0x0081, "EchoTime"), "")
    echo = _get(ds, "EchoNumbers")
    echo_number = None if echo is None else _number(echo, path, tag_label(0x0018, 0x0086, "EchoNumbers"), int)
    ipp, iop, ps, hint = _geometry(ds, ds, ds, path, "")
    ss, si = _philips_private_scale(ds) if info.vendor == "philips" else (None, None)
    ge_range = None
    if info.vendor == "ge":
        lo, hi = _get(ds, "SmallestImagePixelValue"), _get(ds, "LargestImagePixelValue")
        if lo is not None and hi is not None:
            try:
                ge_range = (float(lo), float(hi))
            except (TypeError, ValueError):
                ge_range = None
    scale = image_scale(
        vendor=info.vendor,
        manufacturer=info.manufacturer,
        component=component,
        rescale_slope=_get(ds, "RescaleSlope"),
        rescale_intercept=_get(ds, "RescaleIntercept"),
        units=[
            (tag_label(0x0028, 0x1054, "RescaleType"), _as_text(_get(ds, "RescaleType"))),
            (tag_label(0x0040, 0x9096, "RealWorldValueMappingSequence units"), _rwvm_units(ds)),
        ],
        philips_scale_slope=ss,
        philips_scale_intercept=si,
        bits_stored=info.layout.bits_stored,
        signed=info.layout.signed,
        stored_range=ge_range,
        path=path,
        where="",
    )
    tpid = _get(ds, "TemporalPositionIdentifier")
    inst = _get(ds, "InstanceNumber")
    return [
        ImageRecord(
            file=info,
            frame=0,
            component=component,
            echo_number=echo_number,
            echo_time=te,
            position=ipp,  # type: ignore[arg-type]
            orientation=iop,  # type: ignore[arg-type]
            pixel_spacing=ps,  # type: ignore[arg-type]
            rows=info.layout.rows,
            columns=info.layout.columns,
            spacing_hint=hint,
            temporal_index=None,
            frame_time=None,
            temporal_id=None if tpid is None else _number(tpid, path, tag_label(0x0020, 0x0100), int),
            acquisition_time=_time_of(ds),
            instance_number=None if inst is None else _number(inst, path, tag_label(0x0020, 0x0013), int),
            scale=scale,
        )
    ]


def _enhanced_images(ds: Dataset, info: FileInfo, path: Path) -> list[ImageRecord]:
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    n = info.layout.frames
    if not isinstance(per_frame, _SEQUENCE_TYPES) or len(per_frame) != n:
        found = len(per_frame) if isinstance(per_frame, _SEQUENCE_TYPES) else 0
        raise DicomError(
            f"enhanced MR image with NumberOfFrames={n} but {found} per-frame functional group items",
            path=path,
            tag=tag_label(0x5200, 0x9230, "PerFrameFunctionalGroupsSequence"),
        )
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    inst = _get(ds, "InstanceNumber")
    instance = None if inst is None else _number(inst, path, tag_label(0x0020, 0x0013), int)
    top_units = _rwvm_units(ds)
    images = []
    for k, frame in enumerate(per_frame):
        where = f" in frame {k + 1}"
        philips_item = None
        if info.vendor == "philips":
            private = _tag_value(frame, 0x2005140F)
            if isinstance(private, _SEQUENCE_TYPES) and len(private):
                philips_item = private[0]
        frame_type = _group_item(frame, shared, "MRImageFrameTypeSequence")
        component = _enhanced_component(ds, frame_type, philips_item, path, k)
        echo_item = _group_item(frame, shared, "MREchoSequence")
        if echo_item is not None:
            te = _echo_time(echo_item, "EffectiveEchoTime", path, tag_label(0x0018, 0x9082, "EffectiveEchoTime"), where)
        else:
            te = _echo_time(ds, "EchoTime", path, tag_label(0x0018, 0x9082, "EffectiveEchoTime"), where)
        ipp, iop, ps, hint = _geometry(
            _group_item(frame, shared, "PlanePositionSequence"),
            _group_item(frame, shared, "PlaneOrientationSequence"),
            _group_item(frame, shared, "PixelMeasuresSequence"),
            path,
            where,
        )
        content = _item(frame, "FrameContentSequence")
        pvt = _group_item(frame, shared, "PixelValueTransformationSequence")
        source = pvt if pvt is not None else ds
        slope, intercept = _get(source, "RescaleSlope"), _get(source, "RescaleIntercept")
        units = [
            (tag_label(0x0028, 0x1054, "RescaleType") + where, _as_text(_get(source, "RescaleType"))),
            (
                tag_label(0x0040, 0x9096, "RealWorldValueMappingSequence units") + where,
                _rwvm_units(frame) or _rwvm_units(shared) or top_units,
            ),
        ]
        ss = si = None
        if info.vendor == "philips":
            ss, si = _philips_private_scale(philips_item)
            units.append(
                ("(2005,140F) Philips private RescaleType" + where, _as_text(_get(philips_item, "RescaleType")))
            )
        scale = image_scale(
            vendor=info.vendor,
            manufacturer=info.manufacturer,
            component=component,
            rescale_slope=slope,
            rescale_intercept=intercept,
            units=units,
            philips_scale_slope=ss,
            philips_scale_intercept=si,
            bits_stored=info.layout.bits_stored,
            signed=info.layout.signed,
            stored_range=None,
            path=path,
            where=where,
        )
        tpi = _get(content, "TemporalPositionIndex")
        fdt = _get(content, "FrameAcquisitionDateTime")
        images.append(
            ImageRecord(
                file=info,
                frame=k,
                component=component,
                echo_number=None,
                echo_time=te,
                position=ipp,  # type: ignore[arg-type]
                orientation=iop,  # type: ignore[arg-type]
                pixel_spacing=ps,  # type: ignore[arg-type]
                rows=info.layout.rows,
                columns=info.layout.columns,
                spacing_hint=hint,
                temporal_index=None if tpi is None else _number(tpi, path, tag_label(0x0020, 0x9128), int),
                frame_time=None if fdt is None else parse_dt(fdt),
                temporal_id=None,
                acquisition_time=_time_of(ds),
                instance_number=instance,
                scale=scale,
            )
        )
    return images


def read_file(
    path: Path,
) -> tuple[FileInfo | None, list[ImageRecord], DicomError | None, tuple[str, bool, int | None, str] | None]:
    """Index one file.

    Returns
    -------
    info : FileInfo or None
        None when the file is skipped (not DICOM, DICOMDIR, not an MR image).
    images : list of ImageRecord
        The images of the file (empty when skipped or on error).
    error : DicomError or None
        A problem attributable to the file's series (its SeriesInstanceUID was readable).
    series : (uid, enhanced, number, description) or None
        The series the file belongs to, when readable.

    Raises
    ------
    DicomError
        For a DICOM file whose series cannot even be told (header unreadable or truncated
        before the series identity).
    """
    if path.name.upper() == "DICOMDIR":
        logger.debug("skipping %s: DICOMDIR", path)
        return None, [], None, None
    fh, gz, size = _open(path)
    if fh is None:
        logger.debug("skipping %s: not a DICOM file", path)
        return None, [], None, None
    try:
        try:
            ds, pixel = _read_header(fh, gz, size)
        except Exception as exc:  # pydicom raises many types on a damaged file
            raise DicomError(f"unreadable DICOM header ({type(exc).__name__}: {exc})", path=path) from None
    finally:
        fh.close()
    meta = getattr(ds, "file_meta", None)
    sop_class = _as_text(_get(ds, "SOPClassUID")) or (_as_text(_get(meta, "MediaStorageSOPClassUID")) if meta is not None else "")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        logger.debug("skipping %s: DICOMDIR", path)
        return None, [], None, None
    series_uid = _as_text(_get(ds, "SeriesInstanceUID"))
    modality = _as_text(_get(ds, "Modality"))
    if sop_class not in _MR_SOP_CLASSES:
        if sop_class or modality or series_uid:
            if not sop_class and modality == "MR" and series_uid:
                pass  # an MR image whose SOP class was stripped: index it as classic
            else:
                # an MR-modality file of another SOP class (e.g. a secondary capture in the same
                # series) is worth a warning: it is not an image this reader can use
                (logger.warning if modality == "MR" else logger.debug)(
                    "skipping %s: not an MR image storage SOP class (SOP class %r, modality %r)", path, sop_class, modality
                )
                return None, [], None, None
        else:
            # the DICM prefix promised a data set, but nothing that names it came out of it: it
            # cannot be attributed to a series, so it is an error rather than a skipped file
            raise DicomError(
                "DICOM file is empty, truncated inside its header, or names neither its SOPClassUID, "
                "Modality nor SeriesInstanceUID",
                path=path,
            )
    enhanced = _MR_SOP_CLASSES.get(sop_class, False)
    if not series_uid:
        raise DicomError(
            "missing SeriesInstanceUID (file truncated inside its header?)",
            path=path,
            tag=tag_label(0x0020, 0x000E, "SeriesInstanceUID"),
        )
    number_v = _get(ds, "SeriesNumber")
    try:
        series_number = None if number_v is None else int(float(_first(number_v)))
    except (TypeError, ValueError):
        series_number = None
    description = _as_text(_get(ds, "SeriesDescription"))
    series = (series_uid, enhanced, series_number, description)
    try:
        frames = 1
        if enhanced:
            frames = _number(_get(ds, "NumberOfFrames") or 1, path, tag_label(0x0028, 0x0008, "NumberOfFrames"), int)
            if frames < 1:
                raise DicomError(f"NumberOfFrames={frames}", path=path, tag=tag_label(0x0028, 0x0008, "NumberOfFrames"))
        layout = _pixel_layout(ds, pixel, path, size, frames)
        manufacturer = _as_text(_get(ds, "Manufacturer"))
        facts = _file_facts(ds, path, enhanced)
        info = FileInfo(
            path=path,
            gz=gz,
            enhanced=enhanced,
            sop_instance_uid=_as_text(_get(ds, "SOPInstanceUID")),
            series_uid=series_uid,
            series_number=series_number,
            series_description=description,
            protocol_name=_as_text(_get(ds, "ProtocolName")),
            manufacturer=manufacturer,
            vendor=vendor_of(manufacturer),
            model=_as_text(_get(ds, "ManufacturerModelName")),
            software_versions=_as_text(_get(ds, "SoftwareVersions")),
            f0=facts["f0"],
            repetition_time=facts["repetition_time"],
            temporal_positions=facts["temporal_positions"],
            epi=facts["epi"],
            mr_acquisition_type=_as_text(_get(ds, "MRAcquisitionType")),
            sequence_name=_as_text(_get(ds, "SequenceName")) or _as_text(_get(ds, "PulseSequenceName")),
            layout=layout,
        )
        images = _enhanced_images(ds, info, path) if enhanced else _classic_images(ds, info, path)
    except DicomError as exc:
        return None, [], exc, series
    return info, images, None, series


_METADATA_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")


def candidate_files(root: Path) -> list[Path]:
    """Every regular file under ``root`` (or ``root`` itself), sorted.

    Symbolic links to folders are followed (each real folder once) and a file reached twice
    (e.g. through a link) is read once. Skipped, each with a log line: hidden folders (a
    WARNING), broken links (a WARNING), and the metadata files that desktops leave (AppleDouble
    ``._*``, ``.DS_Store``, ``Thumbs.db``: DEBUG). Other hidden files are read like any file.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DicomError("no such file or folder", path=root)
    out = []
    seen_dirs: set[str] = set()
    seen_files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link back into the tree: do not walk it again
            logger.warning("skipping %s: the folder %s was already read", dirpath, real)
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        hidden = [d for d in dirnames if d.startswith(".")]
        for d in hidden:
            logger.warning("skipping hidden folder %s", Path(dirpath) / d)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith("._") or name in _METADATA_FILES:
                logger.debug("skipping %s: desktop metadata file", p)
                continue
            if not p.is_file():
                if p.is_symlink():
                    logger.warning("skipping %s: broken symbolic link", p)
                continue
            key = os.path.realpath(p)
            if key in seen_files:
                logger.info("skipping %s: the same file as %s", p, seen_files[key])
                continue
            seen_files[key] = p
            out.append(p)
    return out


def index_paths(root: Path, max_workers: int | None = None) -> IndexResult:
    """Header pass over a folder tree (or one file).

    Parameters
    ----------
    root : Path
        Folder tree or single file.
    max_workers : int, optional
        Upper bound on the threads used for gzip files (default: min(8, CPUs + 2)).

    Notes
    -----
    Uncompressed files are parsed in the calling thread: the parse is pure Python and holds the
    GIL (about 0.1 ms per Siemens header, see ``_fast_header``), so threads only add switching
    (measured on 2 cores: 144 Siemens files 64 ms serial, 69-82 ms with 2-4 threads). gzip
    files are read in a pool of up to ``min(max_workers, CPUs)`` threads, because zlib releases
    the GIL while it inflates (212 Philips files: 329 ms serial, 253 ms with 2 threads).

    Raises
    ------
    DicomError
        For a DICOM file that cannot be attributed to a series (see :func:`read_file`).
    """
    from concurrent.futures import ThreadPoolExecutor

    files = candidate_files(Path(root))
    workers = min(max_workers or min(8, (os.cpu_count() or 1) + 2), os.cpu_count() or 1)
    n_gz = sum(p.name.lower().endswith(".gz") for p in files)
    if workers > 1 and n_gz > 4:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fus-dicom") as pool:
            results = list(pool.map(read_file, files))
    else:
        results = [read_file(p) for p in files]
    images: list[ImageRecord] = []
    errors: dict[tuple[str, bool], DicomError] = {}
    names: dict[tuple[str, bool], tuple[int | None, str, Path]] = {}
    n_files = 0
    for path, (info, imgs, err, series) in zip(files, results):
        if series is not None:
            n_files += 1
            key = (series[0], series[1])
            names.setdefault(key, (series[2], series[3], path))
            if err is not None:
                errors.setdefault(key, err)
        images.extend(imgs)
    logger.debug("indexed %d DICOM files (%d images) under %s", n_files, len(images), root)
    return IndexResult(images=images, series_errors=errors, series_names=names, n_files=n_files)
