"""Element walk of the fast DICOM header parser (internal to :mod:`fus.mr.dicom`).

The byte level of :mod:`fus.mr.dicom_header`: which elements the header pass keeps
(``_KEYWORDS`` and the private blocks of ``_SPECIFIC_TAGS``), the element-header layouts of
little-endian explicit and implicit VR, and :func:`_walk`, one walk over the elements of a data
set, used both for the top level of a file (wanted elements only, up to the pixel data) and for
every sequence item (all elements). Undefined-length sequences are checked and skipped by
:func:`_skip_sequence`. Nothing is decoded here: the walk records (VR, offset, length) per tag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pydicom
from pydicom.tag import Tag

__all__: list[str] = []

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


@dataclass(frozen=True)
class _PixelElement:
    """The (7FE0,xxxx) element header found where the header parse stopped."""

    tag: int
    value_offset: int
    length: int
    little_endian: bool


_LONG_VRS_B = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_KNOWN_VRS_B = _LONG_VRS_B | frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"SV", b"TM", b"UI", b"UL", b"US", b"UV",
    }
)
_PIXEL_ELEMENTS = frozenset({0x0008, 0x0009, 0x0010})
_WANTED_TAGS = frozenset(_SPECIFIC_TAGS)
_META_KEYWORDS = ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")
_TAG_OF = {k: int(Tag(k)) for k in _KEYWORDS + _META_KEYWORDS}
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


def _walk(
    data: bytes, pos: int, end: int, implicit: bool, top_level: bool, delimited: bool = False
) -> tuple[dict[int, tuple[str, int, int, bool]], int, _PixelElement | None] | None:
    """The elements of one data set: the top level of a file, or one sequence item.

    Parameters
    ----------
    data : bytes
        The whole (decompressed) file.
    pos, end : int
        Where the first element starts, and the end of the bytes the data set may occupy (the
        end of the file, or of a defined-length item).
    implicit : bool
        Implicit VR little endian (else explicit VR little endian).
    top_level : bool
        True for the data set of the file: only the elements of ``_WANTED_TAGS`` are kept, the
        walk stops at the pixel data element, and an item or file-meta tag makes it give up.
        False for a sequence item: every element is kept, whatever its group.
    delimited : bool
        An undefined-length item: it ends at its (FFFE,E00D) item delimiter, which must come
        before ``end``.

    Returns
    -------
    (raw, stop, pixel) or None
        ``raw`` maps each kept tag to (VR, value offset, value length, implicit VR of the value);
        ``stop`` is the position after the data set (after its item delimiter); ``pixel`` is the
        pixel data element where a top-level walk stopped (None when it reached ``end``, and
        for an item). None when anything is unusual: the caller then lets pydicom judge.
    """
    explicit_head = _EXPLICIT_HEAD.unpack_from
    implicit_head = _IMPLICIT_HEAD.unpack_from
    u32 = _U32.unpack_from
    long_vrs, known_vrs = _LONG_VRS_B, _KNOWN_VRS_B
    wanted = _WANTED_TAGS
    raw: dict[int, tuple[str, int, int, bool]] = {}
    while pos < end:
        if pos + 8 > end:
            return None
        if implicit:
            group, elem, length = implicit_head(data, pos)
            vr_b, hdr = None, 8
        else:
            group, elem, vr_b, length = explicit_head(data, pos)
            if group == 0xFFFE:  # item tags carry no VR, only a 32-bit length
                vr_b, length, hdr = None, u32(data, pos + 4)[0], 8
            elif vr_b in long_vrs:
                if pos + 12 > end:
                    return None
                length, hdr = u32(data, pos + 8)[0], 12
            elif vr_b in known_vrs:
                hdr = 8
            else:
                return None
        if group >= 0x7FE0:  # rare: an item tag, or the pixel data
            if group == 0xFFFE:
                if delimited and elem == 0xE00D:
                    return raw, pos + 8, None
                return None  # an item tag at the top level, or out of place in an item
            if top_level and group == 0x7FE0 and elem in _PIXEL_ELEMENTS:
                return raw, pos, _PixelElement((group << 16) | elem, pos + hdr, length, True)
        elif top_level and group < 0x0008:
            return None  # file meta inside the data set: let pydicom judge
        tag = (group << 16) | elem
        start = pos + hdr
        if length == _UNDEFINED:
            if not (implicit or vr_b in (b"SQ", b"UN")):
                return None
            seq_implicit = implicit or vr_b == b"UN"
            stop = _skip_sequence(data, start, seq_implicit)
            if stop is None or stop > end:
                return None
            if not top_level or tag in wanted:
                raw[tag] = ("SQ", start, stop - 8 - start, seq_implicit)
            pos = stop
            continue
        pos = start + length
        if pos > end:
            return None
        if not top_level or tag in wanted:
            if vr_b is None or vr_b == b"UN":
                # implicit data set, or UN (whose content is implicit VR): dictionary VR
                raw[tag] = (_DICT_VR.get(tag) or _dictionary_vr(tag), start, length, True)
            else:
                raw[tag] = (vr_b.decode("ascii"), start, length, implicit)
    if delimited:
        return None  # no item delimiter before the end of the sequence
    return raw, pos, None


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
