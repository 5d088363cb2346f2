"""Vendor rules of the DICOM header pass (internal to :mod:`fus.mr.dicom`).

Which complex component (magnitude, phase, real, imaginary) an image holds, from
ComplexImageComponent, ImageType / FrameType and the GE and Philips private tags (contradicting
tags are an error, and an image that names no component is magnitude unless its rescale looks
like phase); the Philips private scale slope and intercept; the units of a Real World Value
Mapping. The per-vendor scaling itself is in :mod:`fus.mr.dicom_scaling`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from fus.errors import DicomError
from fus.mr.dicom_values import (
    _as_text,
    _first,
    _get,
    _item,
    _private,
    _private_float,
    _private_int16,
)

__all__: list[str] = []

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
_GE_PARM_CREATOR = "GEMS_PARM_01"


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
