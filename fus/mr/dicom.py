"""Read MR DICOM series (Siemens, Philips, GE; classic and enhanced multi-frame) for thermometry.

Public API
----------
``scan(path, *, strict=False, max_workers=None) -> list[SeriesInfo]``
    Headers only: one :class:`SeriesInfo` per MR series found under ``path`` (a folder tree or a
    file): vendor, model, classic/enhanced, components, echoes and echo times, slices, dynamics,
    matrix, spacing, f0 and B0, time per dynamic. A series that cannot be read carries its error
    message in ``SeriesInfo.error`` (``strict=True`` raises it instead).
``load_series(path, series=None, *, max_workers=None) -> Series``
    Index ``path`` and arrange one series; ``series`` selects by SeriesNumber (int, or a string of
    digits) or SeriesInstanceUID (str). ``None`` works when there is exactly one series. An
    ambiguous or unknown selection raises :class:`~fus.errors.DicomError` listing the choices.
    A series is identified by its UID *and* its storage kind: a scanner may export one series
    both as classic and as enhanced files under the same UID (the shared Philips data do); the
    two are listed separately instead of being merged into a doubled series.
:class:`Series`
    ``.image(component="magnitude", echo=None, dynamics=None)`` -> float32
    ``[dynamic, slice, row, column]`` (phase in radians); ``.complex(echo=None, dynamics=None)``
    -> complex64 from real + imaginary, else magnitude * exp(i phase) (a clear DicomError names
    what is missing, e.g. a Siemens field-map phase series whose magnitude is a separate series);
    ``.iter_dynamics(components=None, echoes=None, start=0, stop=None)`` yields one
    :class:`Dynamic` at a time and reads only the files of that dynamic (streaming replay);
    ``.dynamic(index, component, echo)``; ``.affine``; ``.times`` [s]; ``.echo_times`` [s];
    ``.f0`` [Hz]; ``.b0`` [T]; ``.nifti(component, echo)`` and :meth:`Series.to_nifti_order`;
    ``.image_files(component, echo)`` (provenance: file and frame of every [dynamic][slice]) and
    ``.scaling_rule(component, echo)`` (the stored-value rule applied, for sidecars).
:data:`GAMMA_PROTON`, :func:`b0_from_f0`
    ``B0 = 2 pi f0 / gamma`` with ``gamma = 2 pi * 42.577478 MHz/T``; f0 is (0018,0084)
    ImagingFrequency (classic) or (0018,9098) TransmitterFrequency (enhanced), never
    MagneticFieldStrength: a "3 T" Siemens Prisma at 123.25483 MHz is 2.895 T.

Array layout and geometry
-------------------------
Arrays are returned C-ordered as ``[dynamic, slice, row, column]`` (a single dynamic keeps its
axis of length 1). Slices run along the slice normal ``n = r x c`` (r, c: the row and column
direction cosines of ImageOrientationPatient), in increasing position; rows and columns are as
stored in the DICOM pixel data (row 0 at the top of the image, column 0 at the left).

:attr:`Series.affine` maps the NIfTI-ordered voxel index ``(i, j, k) = (column, row, slice)`` to
RAS world coordinates in mm (DICOM LPS with x and y negated). :meth:`Series.to_nifti_order`
transposes an array to ``[i, j, k(, t)]`` and :meth:`Series.nifti` returns that array with the
affine, ready for ``nibabel.Nifti1Image``. No axis is flipped. dcm2niix stores the same voxels
in another order with a matching affine: on the shared data it reverses the row axis (its
``j = rows - 1 - row``) for Siemens and GE, and both in-plane axes for Philips. The world
coordinate of every voxel is the same in both (checked on all shared datasets to < 1e-4 mm,
the voxel correspondence being found from the pixel values, see the tests).

Discovery
---------
Every file under ``path`` is considered, with or without an extension, plain or gzip
(``*.gz``). Files that are not DICOM (no ``DICM`` prefix and no DICOM-looking first element),
DICOMDIR, and non-MR objects are skipped with a debug log. A DICOM file that is truncated, lacks
its pixel data or has an unreadable header raises :class:`~fus.errors.DicomError` naming the
file. Headers are read once, in a thread pool, with pixel data skipped (its offset recorded);
pixels are read later straight from that offset. See :mod:`fus.mr.dicom_layout` for the grouping,
time-ordering and geometry rules and :mod:`fus.mr.dicom_scaling` for the per-vendor scaling of
the phase to radians.

Modules
-------
This module holds the entry points; :class:`SeriesInfo` is defined in
:mod:`fus.mr.dicom_series_info`, :class:`Series` and :class:`Dynamic` in
:mod:`fus.mr.dicom_series`, and the header pass in :mod:`fus.mr.dicom_index`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fus.errors import DicomError, InvalidParameterError
from fus.mr.dicom_index import index_paths
from fus.mr.dicom_layout import COMPONENT_ORDER, build_layout
from fus.mr.dicom_records import ImageRecord
from fus.mr.dicom_scaling import (
    GAMMA_PROTON,
    GAMMA_PROTON_HZ_PER_T,
    b0_from_f0,
)
from fus.mr.dicom_series import Dynamic, Series, _workers
from fus.mr.dicom_series_info import SeriesInfo

logger = logging.getLogger(__name__)

__all__ = [
    "COMPONENTS",
    "GAMMA_PROTON",
    "GAMMA_PROTON_HZ_PER_T",
    "Dynamic",
    "Series",
    "SeriesInfo",
    "b0_from_f0",
    "load_series",
    "scan",
]

#: Complex components, in the order they are reported.
COMPONENTS = COMPONENT_ORDER


SeriesKey = tuple[str, bool]


def _group(images: list[ImageRecord]) -> dict[SeriesKey, list[ImageRecord]]:
    out: dict[SeriesKey, list[ImageRecord]] = {}
    for img in images:
        out.setdefault((img.file.series_uid, img.file.enhanced), []).append(img)
    return out


def scan(path: str | os.PathLike[str], *, strict: bool = False, max_workers: int | None = None) -> list[SeriesInfo]:
    """Summarise every MR series under ``path`` from the headers only.

    Parameters
    ----------
    path : str or PathLike
        Folder tree or single file.
    strict : bool
        Raise the first series error instead of reporting it in ``SeriesInfo.error``.
    max_workers : int, optional
        Threads for reading headers (default: min(8, CPUs + 2)).

    Returns
    -------
    list of SeriesInfo
        Sorted by SeriesNumber, then SeriesInstanceUID, classic before enhanced. A series
        exported both as classic and as enhanced files (same UID) appears twice, once per kind.

    Raises
    ------
    DicomError
        A DICOM file whose series cannot be told (unreadable or truncated header), no MR series
        at all, or (``strict=True``) any series error.
    """
    root = Path(path)
    idx = index_paths(root, _workers(max_workers))
    groups = _group(idx.images)
    keys = set(groups) | set(idx.series_errors)
    if not keys:
        raise DicomError("no MR DICOM series found", path=root)
    out: list[SeriesInfo] = []
    for key in keys:
        number, desc, first = idx.series_names.get(key, (None, "", root))
        err = idx.series_errors.get(key)
        if err is None:
            try:
                out.append(SeriesInfo.from_layout(build_layout(groups[key])))
                continue
            except DicomError as exc:
                err = exc
        if strict:
            raise err
        logger.warning("series %s %r cannot be read: %s", number, desc, err)
        out.append(
            SeriesInfo(
                series_uid=key[0],
                series_number=number,
                description=desc,
                enhanced=key[1],
                folder=str(first.parent),
                error=str(err),
            )
        )
    out.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid, s.enhanced))
    return out


def _choices(keys: Iterable[SeriesKey], names: dict[SeriesKey, tuple[int | None, str, Path]]) -> str:
    def describe(key: SeriesKey) -> str:
        number, desc, first = names[key]
        kind = "enhanced" if key[1] else "classic"
        return f"series {number} {desc!r} ({kind}, UID {key[0]}, in {first.parent})"

    rows = sorted(keys, key=lambda k: (names[k][0] is None, names[k][0] or 0, k))
    return "; ".join(describe(k) for k in rows)


def load_series(
    path: str | os.PathLike[str], series: int | str | None = None, *, max_workers: int | None = None
) -> Series:
    """Index ``path`` and return one arranged :class:`Series` (headers read, pixels not yet).

    Parameters
    ----------
    path : str or PathLike
        Folder tree or single file.
    series : int or str, optional
        SeriesNumber (int or a string of digits) or SeriesInstanceUID. May be omitted when
        ``path`` holds a single MR series.
    max_workers : int, optional
        Threads for reading files (default: min(8, CPUs + 2)).

    Raises
    ------
    DicomError
        No MR series, ambiguous or unknown selection (the message lists the choices), or the
        selected series is malformed (see :mod:`fus.mr.dicom_layout`).
    InvalidParameterError
        ``series`` is neither an int nor a str.
    """
    if series is not None and (isinstance(series, bool) or not isinstance(series, (int, str, np.integer))):
        raise InvalidParameterError("series", series, "must be a SeriesNumber (int) or a SeriesInstanceUID (str)")
    workers = _workers(max_workers)
    root = Path(path)
    idx = index_paths(root, workers)
    groups = _group(idx.images)
    keys = set(groups) | set(idx.series_errors)
    if not keys:
        raise DicomError("no MR DICOM series found", path=root)
    names = idx.series_names
    if series is None:
        chosen = sorted(keys)
        what = "MR series found, choose one by number or UID"
    else:
        chosen = [k for k in keys if isinstance(series, str) and k[0] == series.strip()]
        if not chosen:
            number = None
            if isinstance(series, (int, np.integer)):
                number = int(series)
            elif series.strip().lstrip("-").isdigit():
                number = int(series.strip())
            if number is not None:
                chosen = [k for k in keys if names[k][0] == number]
        if not chosen:
            raise DicomError(f"no MR series {series!r}; available: {_choices(keys, names)}", path=root)
        what = f"series match {series!r}; choose by UID, or pass the folder of one of them"
    if len(chosen) > 1:
        raise DicomError(f"{len(chosen)} {what}: {_choices(chosen, names)}", path=root)
    key = chosen[0]
    if key in idx.series_errors:
        raise idx.series_errors[key]
    layout = build_layout(groups[key])
    logger.info("loaded %s: %s", layout.name, SeriesInfo.from_layout(layout).summary())
    return Series(layout, max_workers=workers)
