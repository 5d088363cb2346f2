"""Read a run folder (``fus simulate`` or ``fus replay``) into what the report draws.

Everything is read from the files the run wrote; a missing or unreadable optional file is
skipped and noted in :attr:`RunData.notes` (the page shows the notes), never raised. Images are
returned the right way up for display: (rows, cols), row 0 at the top.

Axes on disk: ``fus simulate`` writes the per-slice maps as (rows, cols, 1[, t]); ``fus replay``
writes (cols, rows, slices[, t]) (NIfTI i = column, j = row, k = slice).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import DataError, InvalidParameterError

__all__ = ["RunData", "SliceImages", "Curve", "load_run", "num"]

log = logging.getLogger(__name__)

#: Dose [CEM43 min] of the lesion contour.
LESION_DOSE_CEM43 = 240.0

#: ROI curves of a simulate run: (label, value column, limit column) of log.csv.
SIM_CURVES = (
    ("target", "target_C", None),
    ("body max", "il_max_C", "il_max_limit_C"),
    ("skin", "il_skin_max_C", "il_skin_limit_C"),
    ("near field", "il_near_field_max_C", "il_near_field_limit_C"),
    ("cord", "il_cord_max_C", "il_cord_limit_C"),
)


def num(x: Any) -> float | None:
    """``x`` as a finite float, else None (empty strings, ``"nan"``, None, text)."""
    if isinstance(x, bool):
        return float(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class SliceImages:
    """One thermometry slice, every array (rows, cols) or (rows, cols, t).

    Attributes
    ----------
    name : str
        Label on the page, e.g. ``"slice 0"``.
    temperature : ndarray or None
        Measured temperature (rows, cols, t) [C], NaN where not measured.
    times : ndarray or None
        Acquisition time of each frame [s].
    dose : ndarray or None
        Thermal dose at the end (rows, cols) [CEM43 min].
    lesion : ndarray or None
        Lesion mask (rows, cols), bool.
    magnitude : ndarray or None
        Baseline magnitude (rows, cols) [a.u.].
    tmax : ndarray or None
        Maximum measured temperature (rows, cols) [C].
    """

    name: str
    temperature: np.ndarray | None = None
    times: np.ndarray | None = None
    dose: np.ndarray | None = None
    lesion: np.ndarray | None = None
    magnitude: np.ndarray | None = None
    tmax: np.ndarray | None = None


@dataclass
class Curve:
    """A temperature (or dose) curve of one ROI: ``t`` [s], ``y`` [C], optional ``limit`` [C]."""

    label: str
    t: np.ndarray
    y: np.ndarray
    limit: np.ndarray | None = None
    unit: str = "C"


@dataclass
class RunData:
    """What the report shows of one run.

    Attributes
    ----------
    kind : str
        ``"simulate"`` or ``"replay"``.
    run_dir : Path
        The run folder.
    meta : dict
        ``summary.json`` or ``replay.json``.
    rows : list of dict
        ``log.csv`` (simulate) rows, values as read (strings).
    advisory : list of dict
        ``advisory.csv`` (replay) rows, or empty.
    slices : list of SliceImages
        The thermometry slices.
    curves : list of Curve
        ROI temperature-time curves, ``dose_curves`` the dose ones [CEM43 min].
    mip : dict
        Simulate: ``{"xy": (image, extent), "xz": (image, extent)}`` of the true maximum
        temperature [C] and extents [mm].
    notes : list of str
        Files that were missing or unreadable.
    """

    kind: str
    run_dir: Path
    meta: dict
    rows: list[dict] = field(default_factory=list)
    advisory: list[dict] = field(default_factory=list)
    slices: list[SliceImages] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    dose_curves: list[Curve] = field(default_factory=list)
    mip: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Record a skipped file (shown on the page and logged)."""
        log.info("report of %s: %s", self.run_dir, text)
        self.notes.append(text)


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read run summary: {exc}", path=path) from exc
    if not isinstance(data, dict):
        raise DataError(f"run summary is a {type(data).__name__}, not a JSON object", path=path)
    return data


def _read_csv(run: RunData, name: str, required: bool = False) -> list[dict]:
    path = run.run_dir / name
    if not path.is_file():
        if required:
            run.note(f"{name} missing: no curves or decisions from it")
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        run.note(f"{name} unreadable ({exc}): skipped")
        return []


def _file(run: RunData, key: str, stem: str | None = None) -> Path | None:
    """The file of ``key``: ``meta["files"][key]`` where given, else ``stem.nii`` / ``stem.nii.gz``."""
    files = run.meta.get("files") or {}
    names = [files[key]] if isinstance(files, dict) and isinstance(files.get(key), str) else []
    stem = stem or key
    names += [stem + ".nii", stem + ".nii.gz"]
    for n in names:
        p = run.run_dir / Path(n).name
        if p.is_file():
            return p
    return None


def _nifti(run: RunData, key: str, stem: str | None = None, what: str = "", optional_note: bool = True) -> np.ndarray | None:
    path = _file(run, key, stem)
    if path is None:
        if optional_note:
            run.note(f"{stem or key} not found{': ' + what if what else ''}")
        return None
    try:
        import nibabel as nib

        return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    except Exception as exc:  # a corrupt optional file must not stop the report
        run.note(f"{path.name} unreadable ({type(exc).__name__}: {exc}): skipped")
        return None


def _column(rows: list[dict], key: str) -> np.ndarray | None:
    if not rows or key not in rows[0]:
        return None
    v = np.asarray([num(r.get(key)) if num(r.get(key)) is not None else np.nan for r in rows], dtype=float)
    return v if np.isfinite(v).any() else None


def _plane(a: np.ndarray | None, shape: tuple[int, int], replay: bool, k: int = 0) -> np.ndarray | None:
    """Slice ``k`` of a 3-D (or 2-D) map as (rows, cols); None where the shape does not fit."""
    if a is None:
        return None
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or k >= a.shape[2]:
        return None
    img = a[:, :, k].T if replay else a[:, :, k]
    return img if img.shape == shape else None


def _load_simulate(run: RunData) -> None:
    run.rows = _read_csv(run, "log.csv", required=True)
    rows = [r for r in run.rows if (num(r.get("dynamic")) or 0) >= 0]
    times = _column(rows, "time_s")
    n = sum(1 for k in (run.meta.get("files") or {}) if str(k).startswith("measured_dose_s"))
    n = n or len(list(run.run_dir.glob("measured_dose_s*.nii*")))
    for i in range(n):
        s = SliceImages(f"slice {i}")
        temp = _nifti(run, f"measured_temperature_s{i}", what="no temperature overlay of this slice")
        dose = _nifti(run, f"measured_dose_s{i}", what="no dose contour of this slice")
        if temp is not None and temp.ndim == 4:
            s.temperature = temp[:, :, 0, :]
            nt = s.temperature.shape[2]
            s.times = times[:nt] if times is not None and times.size >= nt else np.arange(nt, dtype=float)
            with np.errstate(all="ignore"):
                s.tmax = np.nanmax(np.where(np.isfinite(s.temperature), s.temperature, -np.inf), axis=2)
            s.tmax[~np.isfinite(s.tmax)] = np.nan
        shape = s.temperature.shape[:2] if s.temperature is not None else (dose.shape[:2] if dose is not None else (0, 0))
        s.dose = _plane(dose, shape, False)
        if s.dose is not None:
            s.lesion = np.nan_to_num(s.dose, nan=0.0) >= LESION_DOSE_CEM43
        mag = _nifti(run, f"magnitude_s{i}", what="images drawn on a dark background")
        s.magnitude = _plane(mag, shape, False)
        if mag is not None and s.magnitude is None:
            run.note(f"magnitude_s{i} has shape {mag.shape}, not the slice's {shape}: not drawn")
        run.slices.append(s)
    if not n:
        run.note("no measured_dose_s<i> / measured_temperature_s<i> files: no image figures")
    if times is not None:
        for label, key, lim in SIM_CURVES:
            y = _column(rows, key)
            if y is not None:
                run.curves.append(Curve(label, times, y, _column(rows, lim) if lim else None))
        ref = _column(rows, "reference_C")
        if ref is not None:
            run.curves.append(Curve("reference", times, ref))
        dose = _column(rows, "il_cord_dose_CEM43")
        if dose is not None:
            run.dose_curves.append(Curve("cord dose", times, dose, _column(rows, "il_cord_dose_limit_CEM43"), "CEM43 min"))
    tm = _nifti(run, "true_max_temperature", what="no maximum-temperature projection")
    if tm is not None and tm.ndim == 3:
        aff = _affine(run, "true_max_temperature")
        run.mip = _mips(tm, aff)


def _affine(run: RunData, key: str) -> np.ndarray:
    path = _file(run, key)
    try:
        import nibabel as nib

        return np.asarray(nib.load(str(path)).affine, dtype=float)
    except Exception:  # drawn in voxels then
        return np.eye(4)


def _mips(tm: np.ndarray, aff: np.ndarray) -> dict:
    """Maximum-intensity projections along z (x-y plane) and y (x-z plane), extents in mm."""
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    o = aff[:3, 3]
    lo = o - sp / 2
    hi = o + sp * (np.asarray(tm.shape) - 0.5)
    return {
        "xy": (np.nanmax(tm, axis=2).T, (lo[0], hi[0], lo[1], hi[1]), ("x [mm]", "y [mm]")),
        "xz": (np.nanmax(tm, axis=1).T, (lo[0], hi[0], lo[2], hi[2]), ("x [mm]", "z [mm]")),
    }


def _load_replay(run: RunData) -> None:
    meta = run.meta
    series = meta.get("series") or {}
    dyn = meta.get("dynamics") or []
    times = np.asarray([num(d.get("time_s")) if num(d.get("time_s")) is not None else np.nan for d in dyn], dtype=float)
    temp = _nifti(run, "temperature", what="no temperature overlay or curves from the images")
    dose = _nifti(run, "dose", what="no dose contour")
    lesion = _nifti(run, "lesion", what="no lesion outline")
    tmax = _nifti(run, "tmax", what="no maximum-temperature map")
    mag = _nifti(run, "magnitude", what="images drawn on a dark background")
    shp = series.get("shape_slices_rows_cols")
    ref = next((a for a in (temp, tmax, dose) if a is not None), None)
    if isinstance(shp, list) and len(shp) == 3:
        nk, shape = int(shp[0]), (int(shp[1]), int(shp[2]))
    elif ref is not None:
        nk, shape = (ref.shape[2] if ref.ndim >= 3 else 1), (ref.shape[1], ref.shape[0])
    else:
        nk, shape = 0, (0, 0)
    if temp is not None and temp.ndim == 3:
        temp = temp[:, :, None, :] if nk == 1 else temp[:, :, :, None]
    if temp is not None and (temp.ndim != 4 or temp.shape[:3] != (shape[1], shape[0], nk)):
        run.note(f"temperature has shape {temp.shape}, not (cols, rows, slices, t) of {shape} x {nk}: not drawn")
        temp = None
    for k in range(nk):
        s = SliceImages(f"slice {k}")
        if temp is not None:
            s.temperature = np.transpose(temp[:, :, k, :], (1, 0, 2))
            nt = s.temperature.shape[2]
            s.times = times[:nt] if times.size >= nt else np.arange(nt, dtype=float)
        s.dose = _plane(dose, shape, True, k)
        les = _plane(lesion, shape, True, k)
        s.lesion = les > 0 if les is not None else None
        s.tmax = _plane(tmax, shape, True, k)
        s.magnitude = _plane(mag, shape, True, k)
        run.slices.append(s)
    stats = _read_csv(run, "roi_stats.csv")
    if stats:
        for roi in dict.fromkeys(r.get("roi", "") for r in stats):
            rs = [r for r in stats if r.get("roi", "") == roi]
            t, y = _column(rs, "time_s"), _column(rs, "max_C")
            if t is not None and y is not None:
                run.curves.append(Curve(f"{roi} max", t, y))
    elif temp is not None and times.size:
        with np.errstate(all="ignore"):
            flat = temp.reshape(-1, temp.shape[3])
            y = np.asarray([np.nanmax(c) if np.isfinite(c).any() else np.nan for c in flat.T])
        run.curves.append(Curve("max over measured voxels", times[: y.size], y))
    lt = num((meta.get("parameters") or {}).get("lesion_temperature_C"))
    if run.curves and lt is not None:
        c = run.curves[0]
        c.limit = np.full(c.t.shape, lt)
    run.advisory = _read_csv(run, "advisory.csv")


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder.

    Parameters
    ----------
    run_dir : str or Path
        Output folder of ``fus simulate`` (holds ``summary.json``) or ``fus replay`` (holds
        ``replay.json``).

    Returns
    -------
    RunData
        The run's summary, tables, images and curves; ``notes`` lists what was missing.

    Raises
    ------
    InvalidParameterError
        ``run_dir`` does not exist, is not a folder or holds neither JSON.
    DataError
        The JSON is unreadable.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InvalidParameterError("run_dir", str(path), "is not a folder" if path.exists() else "does not exist")
    if (path / "summary.json").is_file():
        kind, name = "simulate", "summary.json"
    elif (path / "replay.json").is_file():
        kind, name = "replay", "replay.json"
    else:
        raise InvalidParameterError("run_dir", str(path), "holds neither summary.json (fus simulate) nor replay.json (fus replay)")
    run = RunData(kind, path, _read_json(path / name))
    if kind == "simulate":
        _load_simulate(run)
    else:
        _load_replay(run)
    return run
