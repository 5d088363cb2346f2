"""NIfTI + JSON sidecar output of DICOM series: what ``fus convert`` writes (dcm2niix for thermometry).

Public API
----------
:func:`write_series`
    One NIfTI-1 file (``.nii.gz``) per echo and complex component of a :class:`~fus.mr.dicom.Series`,
    each with a JSON sidecar; the dynamics are streamed (one dynamic in memory at a time).
:func:`series_provenance`
    The sidecar dictionary of one series (and optionally one component / echo): units in the
    keys, source files, scaling rule, geometry, times, echo times, f0 and B0.
:func:`write_sidecar`
    Write a dictionary as a JSON sidecar (numpy values, paths and non-finite numbers made
    JSON-safe; the fus version is added).
:func:`nifti_filename`, :func:`slugify`, :func:`sidecar_path`
    The naming scheme ``<seriesnumber>_<description-slug>_e<echo>_<component>.nii.gz``.

Conventions
-----------
- Voxel order ``[i, j, k(, t)] = [column, row, slice(, dynamic)]`` with the reader's affine
  (:attr:`fus.mr.dicom.Series.affine`): voxel -> RAS [mm], in both the sform and the qform
  (code 1, scanner). No axis is flipped (dcm2niix flips the row axis; the world coordinates of
  every voxel agree, see :mod:`fus.mr.dicom`).
- float32 values: magnitude / real / imaginary in scanner units (after the vendor rescale),
  phase in radians. ``scl_slope`` is left unset (no further scaling).
- ``xyzt_units`` mm and s. 4-D only when the series has more than one dynamic.
- ``pixdim[4]`` [s]: the time between dynamics (median) when the series has several dynamics
  with known times; otherwise the RepetitionTime (0018,0080), as dcm2niix writes it; 0 when
  neither is known. For a 2-D EPI series the two are the same (GE epiRT: 5 s). The sidecar
  says which one was used (``pixdim4_source``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import FusError, InvalidParameterError
from fus.jsonable import jsonable
from fus.mr.dicom import COMPONENTS, Series
from fus.mr.dicom_scaling import GAMMA_PROTON_HZ_PER_T
from fus.mr.nifti_stream import NiftiStreamWriter, write_volume

logger = logging.getLogger(__name__)

__all__ = [
    "nifti_filename",
    "series_provenance",
    "sidecar_path",
    "slugify",
    "write_series",
    "write_sidecar",
]

_UNITS = {"magnitude": "scanner units", "real": "scanner units", "imaginary": "scanner units", "phase": "rad"}
_AXES = "i=column, j=row (as stored), k=slice (along row x column direction cosines, increasing position), t=dynamic"


def slugify(text: str, max_length: int = 48) -> str:
    """Lower-case file-name slug: runs of anything but ``[a-z0-9]`` become one ``-``.

    Parameters
    ----------
    text : str
        E.g. a SeriesDescription ``"gre_field_mapping (TE 5/7)"``.
    max_length : int
        Longest slug kept [characters].

    Returns
    -------
    str
        E.g. ``"gre-field-mapping-te-5-7"``; ``"series"`` when nothing is left.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return slug[:max_length].rstrip("-") or "series"


def nifti_filename(series_number: int | None, description: str, echo: int, component: str, tag: str = "") -> str:
    """``<seriesnumber>_<description-slug>[-<tag>]_e<echo>_<component>.nii.gz``.

    Parameters
    ----------
    series_number : int or None
        (0020,0011) SeriesNumber; ``"na"`` when absent.
    description : str
        (0008,103E) SeriesDescription (slugified).
    echo : int
        Echo number.
    component : str
        ``"magnitude"``, ``"phase"``, ``"real"`` or ``"imaginary"``.
    tag : str
        Appended to the slug to tell apart series that share number and description (e.g.
        ``"enhanced"`` for an enhanced export of a series also exported as classic files).
    """
    number = "na" if series_number is None else str(int(series_number))
    slug = slugify(description)
    if tag:
        slug = f"{slug}-{slugify(tag)}"
    return f"{number}_{slug}_e{int(echo)}_{component}.nii.gz"


def sidecar_path(nifti_path: str | Path) -> Path:
    """The JSON sidecar beside a ``.nii`` / ``.nii.gz`` file (same stem, ``.json``)."""
    p = Path(nifti_path)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return p.with_name(name + ".json")


def write_sidecar(path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``meta`` as a JSON sidecar.

    Parameters
    ----------
    path : str or Path
        Output file (``.json``); its folder is created.
    meta : mapping
        Keys should carry their unit (``_s``, ``_hz``, ``_t``, ``_mm``, ``_rad``, ...). numpy
        values and arrays become numbers and lists, paths become strings, NaN and infinities
        become ``null`` (JSON has no NaN). ``"fus_version"`` is added first when absent.

    Returns
    -------
    Path
        ``path``.
    """
    import fus

    out = {"fus_version": fus.__version__}
    out.update(meta)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(jsonable(out, non_finite="null"), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return p


def _time_step(series: Series) -> tuple[float, str]:
    """pixdim[4] [s] and where it comes from."""
    times = series.times
    if len(times) > 1 and np.all(np.isfinite(times)):
        return float(np.median(np.diff(times))), f"time per dynamic (median of {series.times_source} differences)"
    if series.repetition_time is not None:
        return float(series.repetition_time), "RepetitionTime (0018,0080)"
    return 0.0, "unknown (no dynamic times, no RepetitionTime)"


def series_provenance(series: Series, component: str | None = None, echo: int | None = None) -> dict[str, Any]:
    """Sidecar dictionary of a series, optionally of one component and echo.

    Parameters
    ----------
    series : Series
        From :func:`fus.mr.dicom.load_series`.
    component : str, optional
        Adds ``component``, ``units``, ``scaling_rule`` and the files of that image set.
    echo : int, optional
        Echo number (needed with ``component`` when that component has several echoes).

    Returns
    -------
    dict
        Units in the keys: times in s (``_s``), f0 in Hz (``_hz``) and MHz (``_mhz``), B0 in T
        (``_t``), geometry in mm (``_mm``). Source: folder, file count, SeriesInstanceUID,
        number, description, vendor, model, software; ``affine_ras_mm`` (voxel -> RAS, 4x4).
    """
    info = series.info
    step, step_source = _time_step(series)
    shape = series.shape  # (dynamics, slices, rows, columns)
    affine = series.affine
    meta: dict[str, Any] = {
        "source": {
            "folder": info.folder,
            "n_files": info.n_files,
            "n_images": info.n_images,
            "series_instance_uid": info.series_uid,
            "series_number": info.series_number,
            "series_description": info.description,
            "protocol_name": info.protocol_name,
            "manufacturer": info.manufacturer,
            "vendor": info.vendor,
            "model": info.model,
            "software_versions": info.software_versions,
            "storage": "enhanced" if info.enhanced else "classic",
        },
        "components": list(series.components),
        "echoes": list(series.echoes),
        "echo_times_s": [float(t) for t in series.echo_times],
        "f0_hz": series.f0,
        "f0_mhz": series.f0 / 1e6,
        "b0_t": series.b0,
        "b0_rule": f"B0 = f0 / {GAMMA_PROTON_HZ_PER_T:.6e} Hz/T from the header Larmor frequency (never MagneticFieldStrength)",
        "repetition_time_s": series.repetition_time,
        "n_dynamics": shape[0],
        "times_s": series.times,
        "times_source": series.times_source,
        "time_per_dynamic_s": info.time_per_dynamic,
        "pixdim4_s": step,
        "pixdim4_source": step_source,
        "matrix": [shape[2], shape[3]],
        "n_slices": shape[1],
        "voxel_size_mm": [float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)],
        "affine_ras_mm": affine,
        "axes": _AXES,
        "notes": series.notes,
    }
    if component is not None:
        if component not in COMPONENTS:
            raise InvalidParameterError("component", component, f"must be one of {list(COMPONENTS)}")
        if echo is None:
            echo = next((e for e in series.echoes if _has(series, component, e)), None)
            if echo is None:
                raise InvalidParameterError("component", component, f"{series.name} has {list(series.components)}")
        files = series.image_files(component, echo)
        meta.update(
            {
                "component": component,
                "echo": int(echo),
                "echo_time_s": series.echo_time(int(echo)),
                "units": _UNITS[component],
                "scaling_rule": series.scaling_rule(component, echo),
                "n_source_files": len({p for row in files for p, _ in row}),
            }
        )
    return meta


def _has(series: Series, component: str, echo: int) -> bool:
    try:
        series.image_files(component, echo)
    except FusError:  # no such component / echo
        return False
    return True


def _image_sets(series: Series, components: Sequence[str] | None, echoes: Sequence[int] | None) -> list[tuple[str, int]]:
    comps = list(series.components) if components is None else list(components)
    echs = list(series.echoes) if echoes is None else [int(e) for e in echoes]
    unknown = [c for c in comps if c not in series.components]
    if unknown:
        raise InvalidParameterError("components", components, f"{series.name} has {list(series.components)}")
    bad = [e for e in echs if e not in series.echoes]
    if bad:
        raise InvalidParameterError("echoes", echoes, f"{series.name} has echoes {list(series.echoes)}")
    sets = [(c, e) for c in comps for e in echs if _has(series, c, e)]
    if not sets:
        raise InvalidParameterError("components/echoes", (components, echoes), f"{series.name} has no such images")
    return sets


def write_series(
    series: Series,
    out_dir: str | Path,
    *,
    components: Sequence[str] | None = None,
    echoes: Sequence[int] | None = None,
    tag: str = "",
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write one NIfTI (+ JSON sidecar) per echo and component of a series.

    Parameters
    ----------
    series : Series
        From :func:`fus.mr.dicom.load_series`.
    out_dir : str or Path
        Output folder (created).
    components : sequence of str, optional
        Components to write, canonical names (default: all present).
    echoes : sequence of int, optional
        Echoes to write (default: all present).
    tag : str
        Extra slug part for series that share number and description (see
        :func:`nifti_filename`).
    overwrite : bool
        Replace existing files; otherwise an existing output is an error, raised before
        anything is written.
    progress : callable, optional
        Called with the number of 2-D images just written (one dynamic of one image set), e.g.
        ``tqdm.update``.

    Returns
    -------
    list of Path
        The NIfTI files written, one per (component, echo), components in the reader's order.
        Each has its sidecar at :func:`sidecar_path`.

    Raises
    ------
    InvalidParameterError
        An output file exists and ``overwrite`` is False; unknown component or echo.
    DicomError
        A file of the series cannot be read (a 4-D file being written is then removed; 3-D
        files are written only after their dynamic was read).

    Notes
    -----
    The dynamics are read once, one at a time (:meth:`~fus.mr.dicom.Series.iter_dynamics`), and
    appended to all the files of the series, so memory holds one dynamic.
    """
    out = Path(out_dir)
    sets = _image_sets(series, components, echoes)
    info = series.info
    paths = [out / nifti_filename(info.series_number, info.description, e, c, tag) for c, e in sets]
    if not overwrite:
        existing = [str(p) for p in paths if p.exists() or sidecar_path(p).exists()]
        if existing:
            raise InvalidParameterError("out_dir", str(out), f"already holds {existing}; use overwrite=True (fus convert --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    n_dyn, n_sl, rows, cols = series.shape
    step, _ = _time_step(series)
    affine = series.affine
    logger.info("writing %s: %d image set(s) x %d dynamic(s) to %s", series.name, len(sets), n_dyn, out)
    comps = sorted({c for c, _ in sets})
    echs = sorted({e for _, e in sets})
    if n_dyn == 1:
        dyn = next(series.iter_dynamics(components=comps, echoes=echs))
        for (c, e), p in zip(sets, paths):
            write_volume(p, dyn.images[(c, e)], affine, f"fus {c} e{e}", dtype=np.float32, step=step)
            if progress is not None:
                progress(n_sl)
    else:
        with contextlib.ExitStack() as stack:  # on an error every file is closed and removed
            writers = [
                stack.enter_context(
                    NiftiStreamWriter(p, (n_sl, rows, cols), n_dyn, affine, dtype=np.float32, tr=step, units=f"fus {c} e{e}")
                )
                for (c, e), p in zip(sets, paths)
            ]
            for dyn in series.iter_dynamics(components=comps, echoes=echs):
                for (c, e), w in zip(sets, writers):
                    w.append(dyn.images[(c, e)])
                    if progress is not None:
                        progress(n_sl)
    for (c, e), p in zip(sets, paths):
        meta = series_provenance(series, c, e)
        meta["nifti_file"] = p.name
        write_sidecar(sidecar_path(p), meta)
        logger.debug("wrote %s", p)
    return paths

