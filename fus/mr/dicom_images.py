"""The image records of one classic or enhanced MR file (internal to :mod:`fus.mr.dicom`).

:func:`_classic_images` (one image per file) and :func:`_enhanced_images` (one per frame, from
the per-frame and shared functional groups) build the :class:`~fus.mr.dicom_records.ImageRecord`
objects of a file: complex component, echo time, geometry (checked: orthonormal orientation,
positive spacing), temporal keys and the stored-to-physical scale of each image.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydicom.dataset import Dataset

from fus.errors import DicomError
from fus.mr.dicom_header import _SEQUENCE_TYPES
from fus.mr.dicom_records import FileInfo, ImageRecord
from fus.mr.dicom_scaling import image_scale
from fus.mr.dicom_values import (
    _as_text,
    _first,
    _floats,
    _get,
    _group_item,
    _item,
    _number,
    _parse_da,
    _tag_value,
    parse_dt,
    parse_tm,
    tag_label,
)
from fus.mr.dicom_vendor import (
    _classic_component,
    _enhanced_component,
    _philips_private_scale,
    _rwvm_units,
)

__all__: list[str] = []


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
