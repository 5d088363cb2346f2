"""``fus inspect DIR [--json]``: one row per MR series found under DIR, from the headers only.

Columns: series number and description, vendor and model, classic / enhanced storage, complex
components, echoes with their echo times [ms], slices, dynamics, matrix (rows x columns), voxel
spacing [mm] (between rows x between columns x between slices), f0 [MHz] and B0 [T] (B0 from
f0, never from the nominal field strength), time per dynamic [s], and the folder (relative to
DIR). A series that cannot be loaded is listed with its error.

``--json`` prints ``{"path": ..., "series": [...]}`` where each series is
:meth:`fus.mr.dicom.SeriesInfo.as_dict` (SI units, named in the keys: ``echo_times_s``,
``pixel_spacing_mm``, ``f0_hz``, ``b0_t``, ``time_per_dynamic_s``, ...) plus ``"storage"``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from fus.mr.dicom import SeriesInfo, scan

COLUMNS = (
    "series",
    "description",
    "vendor",
    "model",
    "storage",
    "components",
    "echoes: TE [ms]",
    "slices",
    "dynamics",
    "matrix",
    "spacing [mm]",
    "f0 [MHz]",
    "B0 [T]",
    "t/dynamic [s]",
    "folder",
)


def _g(value: float | None, fmt: str = "g") -> str:
    return "-" if value is None else format(value, fmt)


def _folder(info: SeriesInfo, root: Path) -> str:
    try:
        rel = os.path.relpath(info.folder, root)
    except ValueError:  # another drive (Windows)
        return info.folder
    return "." if rel == "." else rel


def row(info: SeriesInfo, root: Path) -> list[str]:
    """The table cells of one series (error rows carry ``ERROR`` and ``-``)."""
    number = "?" if info.series_number is None else str(info.series_number)
    if info.error:
        return [number, info.description or "-", "ERROR"] + ["-"] * (len(COLUMNS) - 4) + [_folder(info, root)]
    echoes = ", ".join(f"{e}: {t * 1e3:g}" for e, t in zip(info.echoes, info.echo_times)) or "-"
    matrix = "-" if info.matrix is None else f"{info.matrix[0]}x{info.matrix[1]}"
    if info.pixel_spacing is None:
        spacing = "-"
    else:
        spacing = f"{info.pixel_spacing[0]:g}x{info.pixel_spacing[1]:g}x{_g(info.slice_spacing, '.4g')}"
    return [
        number,
        info.description or "-",
        info.vendor,
        info.model or "-",
        "enhanced" if info.enhanced else "classic",
        "+".join(info.components),
        echoes,
        str(info.n_slices),
        str(info.n_dynamics),
        matrix,
        spacing,
        _g(None if info.f0 is None else info.f0 / 1e6, ".6f"),
        _g(info.b0, ".4f"),
        _g(info.time_per_dynamic, ".4g"),
        _folder(info, root),
    ]


def table(infos: list[SeriesInfo], root: Path) -> str:
    """Aligned text table, then one line per series error."""
    rows = [list(COLUMNS)] + [row(i, root) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(len(COLUMNS))]
    right = {0, 7, 8}  # numbers right-aligned
    lines = [
        "  ".join(cell.rjust(w) if c in right else cell.ljust(w) for c, (cell, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    ]
    errors = [i for i in infos if i.error]
    if errors:
        lines.append("")
        lines.append(f"{len(errors)} series cannot be loaded:")
        for i in errors:
            number = "?" if i.series_number is None else i.series_number
            lines.append(f"  series {number} {i.description!r} ({_folder(i, root)}): {i.error}")
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """JSON has no NaN / infinity: those become None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def as_json(infos: list[SeriesInfo], root: Path) -> dict[str, Any]:
    """The ``--json`` document."""
    series = []
    for i in infos:
        d = i.as_dict()
        d["storage"] = "enhanced" if i.enhanced else "classic"
        series.append(_finite(d))
    return {"path": str(root), "series": series}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="list the MR DICOM series under a folder (headers only)",
        description="List the MR DICOM series under a folder (headers only). Exit status 1 when a series "
        "cannot be loaded (it is listed with its error), 0 when all can.",
    )
    p.add_argument("dir", metavar="DIR", help="folder tree (or file) to scan")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON (SI units, named in the keys)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    infos = scan(root)
    n_err = sum(1 for i in infos if i.error)
    if args.json:
        print(json.dumps(as_json(infos, root), indent=2, allow_nan=False))
    else:
        print(f"{root}: {len(infos)} MR series" + (f" ({n_err} with errors)" if n_err else ""))
        print(table(infos, root))
    return 1 if n_err else 0  # scripts can tell that something could not be read
