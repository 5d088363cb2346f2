"""Values read from a parsed DICOM header, checked (internal to :mod:`fus.mr.dicom`).

Small helpers over a pydicom :class:`~pydicom.dataset.Dataset` or a
:class:`~fus.mr.dicom_header._FastHeader` alike: text, numbers (a malformed or non-finite one is a
:class:`~fus.errors.DicomError` naming the tag), DICOM DA / TM / DT times, private elements found
through their private creator, the first item of a sequence or functional group, and the tag
labels used in error messages.
"""

from __future__ import annotations

import datetime as _dt
import math
import struct
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from fus.errors import DicomError
from fus.mr.dicom_header import _SEQUENCE_TYPES, _FastHeader

__all__ = ["parse_dt", "parse_tm", "tag_label"]


def tag_label(group: int, element: int, keyword: str = "") -> str:
    """Format a tag as ``"(gggg,eeee) Keyword"`` for error messages."""
    text = f"({group:04X},{element:04X})"
    return f"{text} {keyword}" if keyword else text


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
