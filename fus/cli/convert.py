"""``fus convert DIR -o OUT [--series N|UID]``: DICOM series -> NIfTI (+ JSON sidecars).

One ``.nii.gz`` per series, echo and complex component, named
``<seriesnumber>_<description-slug>_e<echo>_<component>.nii.gz`` (phase in radians, 4-D when
the series has several dynamics, affine voxel -> RAS in mm, xyzt units mm / s, pixdim[4] the
time per dynamic or TR), each with a JSON sidecar of the same name (units in the keys,
provenance). See :mod:`fus.mr.nifti` for the conventions.

Without ``--series`` every MR series under DIR is converted; two series that would get the same
file names (same number and description, e.g. a classic and an enhanced export of one
acquisition) are told apart by ``-classic`` / ``-enhanced`` (or the end of their UID) in the slug.
A series that cannot be read is reported and skipped, the others are written, and the exit
status is 1. ``--series`` takes a SeriesNumber or a SeriesInstanceUID; an unknown or ambiguous
one is an error that lists the series found.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from fus.errors import FusError
from fus.mr.dicom import Series, SeriesInfo, load_series, scan

log = logging.getLogger("fus.cli.convert")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("convert", help="convert MR DICOM series to NIfTI + JSON sidecars (phase in radians)")
    p.add_argument("dir", metavar="DIR", help="folder tree (or file) holding the DICOM series")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created)")
    p.add_argument("--series", metavar="N|UID", default=None, help="only this series (SeriesNumber or SeriesInstanceUID)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _tags(infos: list[SeriesInfo]) -> dict[tuple[str, bool], str]:
    """Slug tags for series that share number and description (their file names would clash)."""
    key = lambda i: (i.series_number, i.description)  # noqa: E731
    counts = Counter(key(i) for i in infos)
    tags: dict[tuple[str, bool], str] = {}
    for i in infos:
        if counts[key(i)] < 2:
            continue
        same = [j for j in infos if key(j) == key(i)]
        kinds = Counter(j.enhanced for j in same)
        if kinds[i.enhanced] == 1:
            tags[(i.series_uid, i.enhanced)] = "enhanced" if i.enhanced else "classic"
        else:
            tags[(i.series_uid, i.enhanced)] = i.series_uid.replace(".", "")[-8:]
    return tags


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fus.mr.nifti import write_series

    root, out = Path(args.dir), Path(args.output)
    jobs: list[tuple[str, Any, str]] = []  # (label, series or error, tag)
    if args.series is not None:
        series = load_series(root, args.series)  # DicomError naming the selection and the choices
        jobs.append((series.name, series, ""))
    else:
        infos = scan(root)
        tags = _tags(infos)
        for info in infos:
            label = f"series {info.series_number} {info.description!r}"
            if info.error:
                jobs.append((label, info.error, ""))
                continue
            try:
                # the series' own folder, selected by UID: one header pass of that folder only
                series = load_series(info.folder, info.series_uid)
            except FusError as exc:
                jobs.append((label, str(exc), ""))
                continue
            jobs.append((label, series, tags.get((info.series_uid, info.enhanced), "")))
    total = sum(s.info.n_images for _, s, _ in jobs if isinstance(s, Series))
    written: list[Path] = []
    failed: list[str] = []
    with tqdm(total=total, unit="img", desc="convert", disable=None) as bar:
        for label, series, tag in jobs:
            if not isinstance(series, Series):
                failed.append(f"{label}: {series}")
                continue
            bar.set_postfix_str(label, refresh=False)
            try:
                written += write_series(series, out, tag=tag, overwrite=args.overwrite, progress=bar.update)
            except FusError as exc:
                failed.append(f"{label}: {exc}")
    for p in written:
        print(p)
    print(f"wrote {len(written)} NIfTI file(s) with JSON sidecars to {out}")
    for message in failed:
        log.error("not converted: %s", message)
    return 1 if failed else 0
