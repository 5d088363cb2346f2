"""Grouping, ordering and geometry of one DICOM series (internal to :mod:`fus.mr.dicom`).

From the :class:`~fus.mr.dicom_records.ImageRecord` objects of one SeriesInstanceUID this module
builds a :class:`SeriesLayout`: the images of every (component, echo) pair arranged on a
[dynamic, slice] grid, the voxel-to-world affine, the time of every dynamic, and the series facts.

Rules (each violation raises :class:`~fus.errors.DicomError` naming files, tags and values):

* Geometry: every image of the series has the same matrix, PixelSpacing and
  ImageOrientationPatient (to 1e-3 mm and 1e-4). Slices are the distinct positions of
  ImagePositionPatient projected on the slice normal ``row x column`` (positions closer than
  0.02 mm are one slice), sorted ascending along the normal. The slice positions must lie on one
  line with a constant step (deviation at most 1 % of the step + 0.02 mm): a gap is an error.
* Echo: (0018,0086) EchoNumbers when every image has it, else the rank of the echo time; the echo
  time of one echo must be the same in every image (to 1 us).
* Time order, inside each (component, echo, slice): by TemporalPositionIndex, then
  FrameAcquisitionDateTime (enhanced), then TemporalPositionIdentifier, then the acquisition
  date/time, then InstanceNumber -- a key is used only when every image of the group carries it,
  and later keys break ties of earlier ones. So GE epiRT (one AcquisitionTime for all 150 images,
  no TemporalPositionIdentifier) is ordered by InstanceNumber, and Siemens magnitude echoes that
  reuse an InstanceNumber are kept apart by their echo. Two images that tie on every key are an
  error. Every slice must hold the same number of images (a missing image is an error, never a
  dropped dynamic), and every (component, echo) the same number of dynamics.
* Time of a dynamic: the earliest FrameAcquisitionDateTime / acquisition time of its slices,
  relative to the first dynamic. When these times do not increase from dynamic to dynamic (GE
  epiRT stamps one time on the whole series) and the series is 2-D EPI, dynamic ``d`` is at
  ``d * RepetitionTime`` (one volume per TR, as in BIDS); otherwise the times are NaN and a
  warning is logged.
* Affine: voxel index (i, j, k) = (column, row, slice) -> RAS world [mm]. Columns step along the
  first direction cosine of ImageOrientationPatient by PixelSpacing[1], rows along the second by
  PixelSpacing[0], slices by the measured step between ImagePositionPatient of the first and last
  slice (never SliceThickness; for a single slice SpacingBetweenSlices, else SliceThickness,
  along the normal). The LPS patient frame of DICOM becomes RAS by negating x and y.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fus.errors import DicomError
from fus.mr.dicom_records import FileInfo, ImageRecord
from fus.mr.dicom_scaling import b0_from_f0

logger = logging.getLogger(__name__)

__all__ = ["COMPONENT_ORDER", "SeriesLayout", "build_layout"]

COMPONENT_ORDER = ("magnitude", "phase", "real", "imaginary")
_SLICE_TOL = 0.02  # mm: positions closer than this along the normal are the same slice
_ORIENT_TOL = 1e-4
_SPACING_TOL = 1e-3  # mm
_TE_TOL = 1e-6  # s
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class SeriesLayout:
    """One series arranged on a [dynamic, slice] grid per (component, echo).

    Attributes
    ----------
    series_uid : str
    series_number : int or None
    description, protocol_name : str
    manufacturer, vendor, model, software_versions : str
    enhanced : bool
        At least one file is an enhanced multi-frame MR image.
    files : list of FileInfo
        The distinct files of the series.
    grid : dict
        (component, echo) -> list over dynamics of lists over slices of ImageRecord.
    components : tuple of str
        Components present, in the order magnitude, phase, real, imaginary.
    echoes : tuple of int
        Echo numbers present, ascending.
    echo_times : dict
        echo -> echo time [s].
    shape : tuple of int
        (dynamics, slices, rows, columns).
    pixel_spacing : tuple of float
        (between rows, between columns) [mm].
    slice_spacing : float
        Distance between slice centres [mm].
    positions : ndarray, shape (slices, 3)
        ImagePositionPatient of every slice [mm, LPS].
    affine : ndarray, shape (4, 4)
        Voxel (column, row, slice) -> RAS [mm].
    times : ndarray
        Time of every dynamic relative to the first [s] (NaN when unknown).
    times_source : str
        Which tag (or rule) gave the times.
    time_origin : float or None
        Absolute time of the first dynamic in that tag's clock [s] (None when the times are not
        from an acquisition time), to compare series of one session.
    f0 : float
        Larmor frequency [Hz].
    b0 : float
        Static field [T] from f0.
    repetition_time : float or None
        [s].
    """

    series_uid: str
    series_number: int | None
    description: str
    protocol_name: str
    manufacturer: str
    vendor: str
    model: str
    software_versions: str
    enhanced: bool
    files: list[FileInfo]
    grid: dict[tuple[str, int], list[list[ImageRecord]]]
    components: tuple[str, ...]
    echoes: tuple[int, ...]
    echo_times: dict[int, float]
    shape: tuple[int, int, int, int]
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    positions: np.ndarray
    affine: np.ndarray
    times: np.ndarray
    times_source: str
    f0: float
    b0: float
    repetition_time: float | None
    temporal_positions: int | None = None
    notes: list[str] = field(default_factory=list)
    time_origin: float | None = None

    @property
    def name(self) -> str:
        """``"series 3 'gre_field_magph'"`` for messages."""
        num = "?" if self.series_number is None else str(self.series_number)
        return f"series {num} {self.description!r}"


def _series_name(img: ImageRecord) -> str:
    num = "?" if img.file.series_number is None else str(img.file.series_number)
    return f"series {num} {img.file.series_description!r} ({img.file.series_uid})"


def _check_geometry(images: list[ImageRecord]) -> None:
    ref = images[0]
    name = _series_name(ref)
    for img in images[1:]:
        if (img.rows, img.columns) != (ref.rows, ref.columns):
            raise DicomError(
                f"mixed geometry in {name}: {ref.label} is {ref.rows}x{ref.columns} but "
                f"{img.label} is {img.rows}x{img.columns} (Rows x Columns)",
                path=img.file.path,
                tag="(0028,0010) Rows / (0028,0011) Columns",
            )
        if max(abs(a - b) for a, b in zip(img.orientation, ref.orientation)) > _ORIENT_TOL:
            raise DicomError(
                f"mixed geometry in {name}: {ref.label} has ImageOrientationPatient "
                f"{list(ref.orientation)} but {img.label} has {list(img.orientation)}",
                path=img.file.path,
                tag="(0020,0037) ImageOrientationPatient",
            )
        if max(abs(a - b) for a, b in zip(img.pixel_spacing, ref.pixel_spacing)) > _SPACING_TOL:
            raise DicomError(
                f"mixed geometry in {name}: {ref.label} has PixelSpacing "
                f"{list(ref.pixel_spacing)} mm but {img.label} has {list(img.pixel_spacing)} mm",
                path=img.file.path,
                tag="(0028,0030) PixelSpacing",
            )


def _assign_echoes(images: list[ImageRecord]) -> tuple[list[int], dict[int, float]]:
    if all(img.echo_number is not None for img in images):
        echoes = [int(img.echo_number) for img in images]  # type: ignore[arg-type]
    else:
        distinct = sorted({round(img.echo_time, 7) for img in images})
        rank = {te: k + 1 for k, te in enumerate(distinct)}
        echoes = [rank[round(img.echo_time, 7)] for img in images]
    first: dict[int, ImageRecord] = {}
    for img, echo in zip(images, echoes):
        ref = first.setdefault(echo, img)
        if abs(img.echo_time - ref.echo_time) > _TE_TOL:
            raise DicomError(
                f"{_series_name(img)}: echo {echo} has EchoTime {ref.echo_time * 1e3:g} ms in "
                f"{ref.label} but {img.echo_time * 1e3:g} ms in {img.label}",
                path=img.file.path,
                tag="(0018,0081) EchoTime / (0018,0086) EchoNumbers",
            )
    return echoes, {e: first[e].echo_time for e in sorted(first)}


def _cluster(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slice index of every value, and the mean position of every slice (ascending)."""
    order = np.argsort(values, kind="stable")
    labels = np.empty(len(values), dtype=np.int64)
    centres: list[list[float]] = []
    prev = None
    for idx in order:
        v = float(values[idx])
        if prev is None or v - prev > _SLICE_TOL:
            centres.append([])
        centres[-1].append(v)
        labels[idx] = len(centres) - 1
        prev = v
    return labels, np.array([np.mean(c) for c in centres])


_TEMPORAL_FIELDS = (
    ("temporal_index", "(0020,9128) TemporalPositionIndex"),
    ("frame_time", "(0018,9074) FrameAcquisitionDateTime"),
    ("temporal_id", "(0020,0100) TemporalPositionIdentifier"),
    ("acquisition_time", "(0008,0022/0032) AcquisitionDate/Time"),
    ("instance_number", "(0020,0013) InstanceNumber"),
)


def _order_slice(
    images: list[ImageRecord], fields: list[str], name: str, comp: str, echo: int
) -> list[ImageRecord]:
    keyed = sorted(
        ((tuple(getattr(img, f) for f in fields), str(img.file.path), img.frame, img) for img in images),
        key=lambda t: t[:3],
    )
    for a, b in zip(keyed, keyed[1:]):
        if a[0] == b[0]:
            if a[3].file.sop_instance_uid and a[3].file.sop_instance_uid == b[3].file.sop_instance_uid and a[3].frame == b[3].frame:
                what = "the same image (same SOPInstanceUID) is stored twice"
            else:
                what = "two images at the same slice position cannot be put in time order"
            used = ", ".join(f for f in fields) or "no temporal tag"
            raise DicomError(
                f"{name}, {comp} echo {echo}: {what}: {a[3].label} and {b[3].label} tie on "
                f"({used}) = {a[0]}",
                path=b[3].file.path,
                tag="(0020,0013) InstanceNumber / (0008,0032) AcquisitionTime",
            )
    return [t[3] for t in keyed]


def _missing_message(
    name: str, comp: str, echo: int, k: int, n_slices: int, coord: float, have: list[ImageRecord],
    full: list[ImageRecord], n_dyn: int, fields: list[str],
) -> str:
    msg = (
        f"{name}: {comp} echo {echo} has {len(have)} image(s) at slice {k + 1}/{n_slices} "
        f"({coord:.2f} mm along the slice normal) but {n_dyn} at other slices: an image is "
        "missing in at least one dynamic"
    )
    named = False
    for f in ("temporal_index", "temporal_id"):
        if f in fields:
            missing = sorted({getattr(i, f) for i in full} - {getattr(i, f) for i in have})
            if missing:
                tag = dict(_TEMPORAL_FIELDS)[f]
                msg += f" (missing {tag} {missing})"
                named = True
            break
    if not named:
        for f in ("frame_time", "acquisition_time"):
            if f in fields:
                ref = np.array([getattr(i, f) for i in full], dtype=np.float64)
                if len(ref) > 1 and np.all(np.diff(ref) > 0):
                    got = {int(np.argmin(np.abs(ref - getattr(i, f)))) for i in have}
                    missing = sorted(set(range(len(ref))) - got)
                    if missing:
                        msg += f" (by acquisition time, probably dynamic(s) {[m + 1 for m in missing]} of {len(ref)})"
                break
    if have:
        msg += f"; images present at that slice include {have[0].label}"
    return msg


def _check_dynamic_times(grid: dict[tuple[str, int], list[list[ImageRecord]]], name: str, n_dyn: int, n_slices: int) -> None:
    """Refuse a [dynamic, slice] grid whose images come from different dynamics.

    Images are placed by their rank in time within each (component, echo, slice), so a missing
    image plus a stray one elsewhere would shift a slice or a component by one dynamic without
    changing any count. Where every image carries an acquisition time, two things must hold (to
    half the typical time between dynamics, and at least the time stamps' resolution): the
    components of one echo at one (dynamic, slice) were acquired together (echoes are not
    compared: Siemens field maps stamp their two echoes ~0.5 s apart), and each slice keeps its
    time offset from the first slice in every dynamic (the slice timing repeats). A single
    dynamic cannot be shifted and is not checked.
    """
    if n_dyn < 2:
        return
    for fname, label in (("frame_time", "(0018,9074) FrameAcquisitionDateTime"), ("acquisition_time", "(0008,0032) AcquisitionTime")):
        recs = [dyns for dyns in grid.values()]
        if not all(getattr(img, fname) is not None for dyns in recs for row in dyns for img in row):
            continue
        t = np.array([[[getattr(img, fname) for img in row] for row in dyns] for dyns in recs], dtype=np.float64)  # (keys, dyn, slice)
        resolution = 1.0 if np.all(np.abs(t - np.round(t)) < 1e-6) else 0.0  # whole-second stamps
        t -= t.min()  # seconds from the series' first image (the messages quote these)
        gaps = np.diff(t[0], axis=0) if n_dyn > 1 else np.zeros((0, n_slices))
        typical = float(np.median(gaps)) if gaps.size else 0.0
        tol = max(0.5 * typical, 1.01 * resolution, 1e-3)
        keys = list(grid)
        # the components of one echo at one (dynamic, slice) together
        for echo in sorted({e for _, e in keys}):
            idx = [i for i, (_, e) in enumerate(keys) if e == echo]
            te = t[idx]
            spread = te.max(axis=0) - te.min(axis=0)
            if spread.max() > tol:
                d, k = np.unravel_index(int(np.argmax(spread)), spread.shape)
                a, b = idx[int(np.argmin(te[:, d, k]))], idx[int(np.argmax(te[:, d, k]))]
                ia, ib = grid[keys[a]][d][k], grid[keys[b]][d][k]
                raise DicomError(
                    f"{name}: echo {echo}, dynamic {d + 1}, slice {k + 1}: the {keys[a][0]} image ({ia.label}) was "
                    f"acquired at {t[a, d, k]:.3f} s but the {keys[b][0]} image ({ib.label}) at {t[b, d, k]:.3f} s "
                    "(from the series' first image) "
                    f"(dynamics ~{typical:.3f} s apart): images from different dynamics would be paired (an image "
                    "missing and a stray one elsewhere?)",
                    path=ib.file.path,
                    tag=label,
                )
        if n_slices > 1:
            off = t - t[:, :, :1]  # (key, dyn, slice): offset from the first slice of the dynamic
            dev = np.abs(off - np.median(off, axis=1, keepdims=True))
            if dev.max() > tol:
                c, d, k = np.unravel_index(int(np.argmax(dev)), dev.shape)
                img = grid[keys[c]][d][k]
                raise DicomError(
                    f"{name}: {keys[c][0]} echo {keys[c][1]}, dynamic {d + 1}, slice {k + 1} ({img.label}) was acquired "
                    f"{off[c, d, k]:+.3f} s from slice 1 of its dynamic, but {float(np.median(off[c, :, k])):+.3f} s in "
                    f"the typical dynamic (dynamics ~{typical:.3f} s apart): one of them belongs to another dynamic "
                    "(an image missing and a stray one elsewhere?)",
                    path=img.file.path,
                    tag=label,
                )
        return


def _check_one_scaling_rule(grid: dict[tuple[str, int], list[list[ImageRecord]]], name: str) -> None:
    """Every image of one (component, echo) must be scaled by the same kind of rule: a private
    scale tag present in some files only (e.g. Philips (2005,100E)) would otherwise scale part of
    a volume by another convention, silently (values ~4000x apart for Philips magnitude)."""
    for (comp, echo), dyns in grid.items():
        first: dict[str, ImageRecord] = {}
        for row in dyns:
            for img in row:
                first.setdefault(img.scale.kind, img)
        if len(first) > 1:
            (ka, ia), (kb, ib) = list(first.items())[:2]
            raise DicomError(
                f"{name}: {comp} echo {echo} mixes scaling rules: '{ia.scale.rule}' in {ia.label} but "
                f"'{ib.scale.rule}' in {ib.label} (a scale tag such as Philips (2005,100E) is present in "
                "some files only); refusing to mix conventions in one volume",
                path=ib.file.path,
                tag="(2005,100E) Philips scale slope / (0028,1053) RescaleSlope",
            )


def build_layout(images: list[ImageRecord]) -> SeriesLayout:
    """Arrange the images of one series (see the module docstring for the rules).

    Parameters
    ----------
    images : list of ImageRecord
        All images of one SeriesInstanceUID (at least one).

    Returns
    -------
    SeriesLayout

    Raises
    ------
    DicomError
        Mixed geometry, inconsistent echo times, images that cannot be ordered, a missing slice
        in a dynamic, irregular slice positions.
    """
    images = sorted(images, key=lambda i: (str(i.file.path), i.frame))
    ref = images[0]
    name = _series_name(ref)
    _check_geometry(images)

    # duplicated files (same SOPInstanceUID under two paths)
    seen: dict[str, Path] = {}
    for info in {img.file.path: img.file for img in images}.values():
        uid = info.sop_instance_uid
        if uid and uid in seen and seen[uid] != info.path:
            raise DicomError(
                f"{name}: the same SOPInstanceUID {uid} is stored in {seen[uid]} and {info.path}",
                path=info.path,
                tag="(0008,0018) SOPInstanceUID",
            )
        seen.setdefault(uid, info.path)

    row = np.array(ref.orientation[:3], dtype=np.float64)
    col = np.array(ref.orientation[3:], dtype=np.float64)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    pos = np.array([img.position for img in images], dtype=np.float64)
    labels, coords = _cluster(pos @ normal)
    n_slices = len(coords)

    echoes, echo_times = _assign_echoes(images)

    groups: dict[tuple[str, int], list[int]] = {}
    for idx, (img, echo) in enumerate(zip(images, echoes)):
        groups.setdefault((img.component, echo), []).append(idx)
    keys = sorted(groups, key=lambda ce: (COMPONENT_ORDER.index(ce[0]), ce[1]))

    grid: dict[tuple[str, int], list[list[ImageRecord]]] = {}
    n_dyn_of: dict[tuple[str, int], int] = {}
    for comp, echo in keys:
        idxs = groups[(comp, echo)]
        members = [images[i] for i in idxs]
        fields = [f for f, _ in _TEMPORAL_FIELDS if all(getattr(m, f) is not None for m in members)]
        per_slice: list[list[ImageRecord]] = [[] for _ in range(n_slices)]
        for i in idxs:
            per_slice[labels[i]].append(images[i])
        per_slice = [_order_slice(s, fields, name, comp, echo) for s in per_slice]
        counts = [len(s) for s in per_slice]
        n_dyn = max(counts)
        for k, s in enumerate(per_slice):
            if len(s) != n_dyn:
                full = per_slice[counts.index(n_dyn)]
                where = s[0].file.path if s else full[0].file.path
                raise DicomError(
                    _missing_message(name, comp, echo, k, n_slices, float(coords[k]), s, full, n_dyn, fields),
                    path=where,
                    tag="(0020,0032) ImagePositionPatient / (0020,0013) InstanceNumber",
                )
        grid[(comp, echo)] = [[per_slice[k][d] for k in range(n_slices)] for d in range(n_dyn)]
        n_dyn_of[(comp, echo)] = n_dyn
    if len(set(n_dyn_of.values())) > 1:
        detail = ", ".join(f"{c} echo {e}: {n}" for (c, e), n in n_dyn_of.items())
        first_key = keys[0]
        raise DicomError(
            f"{name}: the components/echoes have different numbers of dynamics ({detail})",
            path=grid[first_key][0][0].file.path,
            tag="(0020,0100) TemporalPositionIdentifier / (0020,0013) InstanceNumber",
        )
    n_dyn = next(iter(n_dyn_of.values()))
    first = grid[keys[0]]
    _check_dynamic_times(grid, name, n_dyn, n_slices)
    _check_one_scaling_rule(grid, name)

    # every slice keeps its position over dynamics and components
    positions = np.array([first[0][k].position for k in range(n_slices)], dtype=np.float64)
    for (comp, echo), dyns in grid.items():
        for d, row_imgs in enumerate(dyns):
            for k, img in enumerate(row_imgs):
                if np.max(np.abs(np.asarray(img.position) - positions[k])) > 0.05:
                    raise DicomError(
                        f"mixed geometry in {name}: slice {k + 1} is at ImagePositionPatient "
                        f"{positions[k].tolist()} in {first[0][k].label} but "
                        f"{list(img.position)} in {img.label}",
                        path=img.file.path,
                        tag="(0020,0032) ImagePositionPatient",
                    )

    # slice step from positions
    if n_slices >= 2:
        step = (positions[-1] - positions[0]) / (n_slices - 1)
        spacing = float(np.linalg.norm(step))
        expected = positions[0] + np.arange(n_slices)[:, None] * step
        dev = np.linalg.norm(positions - expected, axis=1)
        worst = int(np.argmax(dev))
        if dev[worst] > 0.01 * spacing + 0.02:
            gaps = np.diff(positions @ normal)
            raise DicomError(
                f"{name}: slice positions are not evenly spaced (slice {worst + 1} is "
                f"{dev[worst]:.3f} mm off the line; steps along the normal {np.round(gaps, 3).tolist()} "
                "mm): a slice is missing or the series mixes stacks",
                path=first[0][worst].file.path,
                tag="(0020,0032) ImagePositionPatient",
            )
    else:
        hint = ref.spacing_hint
        if hint is None:
            hint = 1.0
            logger.warning("%s: single slice without SpacingBetweenSlices/SliceThickness; using 1 mm", name)
        spacing = float(hint)
        step = normal * spacing

    ps_row, ps_col = ref.pixel_spacing
    lps = np.eye(4)
    lps[:3, 0] = row * ps_col
    lps[:3, 1] = col * ps_row
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    affine = _LPS_TO_RAS @ lps

    # times of the dynamics
    info0 = first[0][0].file
    notes: list[str] = []
    time_origin = None
    if n_dyn == 1:
        times = np.zeros(1)
        source = "single dynamic"
    else:
        times = np.full(n_dyn, np.nan)
        source = "unknown"
        for fname, label in (("frame_time", "FrameAcquisitionDateTime"), ("acquisition_time", "AcquisitionTime")):
            vals = [[getattr(img, fname) for img in row_imgs] for row_imgs in first]
            if all(v is not None for r in vals for v in r):
                t = np.array([min(r) for r in vals], dtype=np.float64)
                if np.all(np.diff(t) > 0):
                    times = t - t[0]
                    time_origin = float(t[0])
                    source = label
                break
        if source == "unknown":
            tr = info0.repetition_time
            if info0.epi and tr:
                times = np.arange(n_dyn) * tr
                source = "RepetitionTime (2-D EPI: one volume per TR)"
            else:
                msg = f"{name}: the acquisition times do not tell the time of the dynamics; times are NaN"
                logger.warning(msg)
                notes.append(msg)
    ntp = info0.temporal_positions
    if ntp is not None and ntp > 1 and ntp != n_dyn:
        msg = f"{name}: NumberOfTemporalPositions is {ntp} but {n_dyn} dynamics were found"
        logger.warning(msg)
        notes.append(msg)

    f0 = info0.f0
    f0s = {img.file.f0 for img in images}
    if max(f0s) - min(f0s) > 1e-6 * f0:
        msg = f"{name}: ImagingFrequency varies from {min(f0s):.1f} to {max(f0s):.1f} Hz; using {f0:.1f} Hz"
        logger.warning(msg)
        notes.append(msg)

    files = list({img.file.path: img.file for img in images}.values())
    comps = tuple(c for c in COMPONENT_ORDER if any(k[0] == c for k in keys))
    return SeriesLayout(
        series_uid=ref.file.series_uid,
        series_number=ref.file.series_number,
        description=ref.file.series_description,
        protocol_name=ref.file.protocol_name,
        manufacturer=ref.file.manufacturer,
        vendor=ref.file.vendor,
        model=ref.file.model,
        software_versions=ref.file.software_versions,
        enhanced=any(f.enhanced for f in files),
        files=files,
        grid=grid,
        components=comps,
        echoes=tuple(sorted(echo_times)),
        echo_times=echo_times,
        shape=(n_dyn, n_slices, ref.rows, ref.columns),
        pixel_spacing=(float(ps_row), float(ps_col)),
        slice_spacing=spacing,
        positions=positions,
        affine=affine,
        times=times,
        times_source=source,
        f0=f0,
        b0=b0_from_f0(f0),
        repetition_time=info0.repetition_time,
        temporal_positions=ntp,
        notes=notes,
        time_origin=time_origin,
    )
