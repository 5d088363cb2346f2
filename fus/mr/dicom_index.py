"""Header pass of the DICOM reader: find the files, parse each header once, one record per image.

This module is internal to :mod:`fus.mr.dicom` (read that module's docstring for the public
API and the conventions). It turns a folder tree into :class:`~fus.mr.dicom_records.ImageRecord`
objects, one per 2-D image (a classic file, or one frame of an enhanced multi-frame file), each
carrying everything the later stages need: series identity, complex component, echo, geometry,
temporal keys, the linear map from stored pixel value to physical value, and where the pixel
bytes are in the file.

Pixel data are not decoded here: the header is parsed up to (7FE0,0010) Pixel Data, and the
element header found at that position gives the offset and length of the pixel values, which is
also how a file truncated inside its pixel data is caught during indexing. Little-endian files
with a DICM prefix are parsed by a small parser of our own (:mod:`fus.mr.dicom_header`, about
10x faster than pydicom on these headers, values decoded on first use); any other file, or
anything unusual in one, is parsed by pydicom (``dcmread(stop_before_pixels=True)``) as the
reference.

The stages, one module each: :mod:`fus.mr.dicom_files` (walk the tree, sniff and open a file),
:mod:`fus.mr.dicom_elements` and :mod:`fus.mr.dicom_header` (parse the header),
:mod:`fus.mr.dicom_values` (checked values), :mod:`fus.mr.dicom_vendor` (complex component and
vendor private tags), :mod:`fus.mr.dicom_images` (the records of each image), and this module
(the file-level facts and pixel layout of one file, :func:`read_file`; the whole tree,
:func:`index_paths`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from fus.errors import DicomError
from fus.mr.dicom_elements import _PixelElement
from fus.mr.dicom_files import _open, candidate_files
from fus.mr.dicom_header import _SEQUENCE_TYPES, _read_header
from fus.mr.dicom_images import _classic_images, _enhanced_images
from fus.mr.dicom_records import FileInfo, ImageRecord, PixelLayout
from fus.mr.dicom_scaling import vendor_of
from fus.mr.dicom_values import (
    _as_text,
    _first,
    _get,
    _group_item,
    _item,
    _number,
    tag_label,
)

logger = logging.getLogger(__name__)

__all__ = ["IndexResult", "index_paths", "read_file"]

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
