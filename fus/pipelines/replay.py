"""Offline replay of a DICOM thermometry series: temperature, uncertainty, dose and lesion maps.

The series is read one dynamic at a time (:meth:`fus.mr.dicom.Series.iter_dynamics`), turned into
temperature by :class:`fus.mr.thermometry.Thermometry` and written as it goes
(:class:`fus.mr.nifti_stream.NiftiStreamWriter`), so memory holds one dynamic plus the baselines
whatever the length of the series.

Outputs in ``out_dir``:

``temperature.nii.gz``  4-D, absolute temperature [C] (body temperature + dT; NaN = not measured)
``sigma_t.nii.gz``      4-D, standard deviation of the temperature from the image noise [C]
``mask.nii.gz``         4-D, uint8, 1 where measured
``drift.nii.gz``        4-D, drift phase removed [rad] (only with a drift correction)
``dose.nii.gz``         3-D, CEM43 [min] at the end of the series (NaN = unknown)
``tmax.nii.gz``         3-D, maximum temperature [C]
``lesion.nii.gz``       3-D, uint8: dose >= 240 CEM43 or Tmax >= 55 C
``magnitude.nii.gz``    3-D, mean magnitude of the baseline dynamics (the anatomy under the maps)
``advisory.csv``        per dynamic: what the safety interlocks would have commanded
                        (:mod:`fus.pipelines.replay_advisory`)
``roi_stats.csv``       per dynamic and ROI: max, mean, 90th percentile, measured / NaN voxels
``replay.json``         parameters, units, times, provenance
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time as _time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import fus
from fus.backend import asnumpy, get_backend
from fus.checks import finite_scalar
from fus.errors import DicomError, InvalidParameterError
from fus.mr.baseline import Baseline, BaselineLibrary
from fus.mr.dicom import Series, load_series
from fus.mr.nifti_stream import NiftiStreamWriter, write_volume
from fus.mr.prf import estimate_noise
from fus.mr.roi import RoiSpec, roi_masks
from fus.mr.thermometry import Thermometry, ThermometrySettings
from fus.pipelines.replay_advisory import ADVISORY_COLUMNS, Advisory
from fus.pipelines.replay_pairing import pick_series

__all__ = ["ReplayOptions", "ReplayResult", "replay", "choose_echo"]

log = logging.getLogger(__name__)

# every file a replay may write (an earlier run's are removed before a new run writes)
OUTPUT_FILES = (
    "temperature.nii.gz", "sigma_t.nii.gz", "mask.nii.gz", "drift.nii.gz", "dose.nii.gz", "tmax.nii.gz",
    "lesion.nii.gz", "magnitude.nii.gz", "advisory.csv", "roi_stats.csv", "replay.json",
)


@dataclass
class ReplayOptions:
    """What :func:`replay` does (the CLI's options).

    Attributes
    ----------
    series : int or str or None
        SeriesNumber or SeriesInstanceUID (None: the only series).
    magnitude_series : int or str or None
        A separate series holding the magnitude (same geometry), for phase-only series.
    echo : int or None
        Echo number (None: the echo with the longest TE that has phase, for PRF sensitivity).
    echo_time : float or None
        PRF echo time [s] to use instead of the header's: needed when the phase image is a
        difference of two echoes (Siemens field maps, SequenceName ``*fm...``: TE2 - TE1).
    baseline : int
        Number of first dynamics used as baseline: averaged (complex mean) into one, or, with
        ``baseline_library``, kept as a library from which each dynamic takes the best match
        (motion / breathing).
    baseline_library : bool
    noise : float or None
        Noise standard deviation per channel (None: from the first two dynamics' magnitudes).
    settings : ThermometrySettings
    rois : list of RoiSpec
        ROIs for the statistics CSV.
    drift_roi, exclude : list of RoiSpec
        Reference region for ``drift="roi"``; heated region left out of ``drift="poly"``.
    """

    series: int | str | None = None
    magnitude_series: int | str | None = None
    echo: int | None = None
    echo_time: float | None = None
    baseline: int = 1
    baseline_library: bool = False
    noise: float | None = None
    settings: ThermometrySettings = field(default_factory=ThermometrySettings)
    rois: list[RoiSpec] = field(default_factory=list)
    drift_roi: list[RoiSpec] = field(default_factory=list)
    exclude: list[RoiSpec] = field(default_factory=list)
    percentile: float = 90.0


@dataclass
class ReplayResult:
    """Files written and a summary."""

    out_dir: Path
    files: dict[str, Path]
    summary: dict[str, Any]


def choose_echo(series: Series, echo: int | None) -> int:
    """The echo to use: ``echo`` if given (checked), else the longest-TE echo that has phase or real."""
    have = {e for e in series.echoes if series.has("phase", e) or series.has("real", e)}
    if echo is not None:
        if echo not in series.echoes:
            raise InvalidParameterError("echo", echo, f"{series.name} has echoes {list(series.echoes)}")
        return int(echo)
    if not have:
        raise DicomError(
            f"{series.name} holds no phase (or real/imaginary) images: PRF thermometry needs phase; "
            f"components present: {list(series.components)}"
        )
    tes = {e: series.echo_time(e) for e in have}
    return max(have, key=lambda e: tes[e])


def _is_phase_difference(series: Series) -> bool:
    """Siemens field-map phase (SequenceName ``*fm...``): the difference of two echoes' phases,
    labelled with the second TE."""
    return series.vendor == "siemens" and series.sequence_name.lower().lstrip("*").startswith("fm") and "phase" in series.components


def _prf_echo_time(series: Series, echo: int, override: float | None) -> tuple[float, str]:
    """Echo time [s] of the PRF scale and where it came from."""
    if override is not None:
        te = finite_scalar("echo_time", override, positive=True)
        if te > 1.0:
            raise InvalidParameterError("echo_time", override, "must be in seconds (< 1 s)")
        return te, "given"
    if _is_phase_difference(series):
        raise DicomError(
            f"{series.name} is a Siemens field-map phase (SequenceName {series.sequence_name!r}): each image is the "
            f"phase difference of two echoes, labelled with TE {series.echo_time(echo) * 1e3:g} ms, so the PRF "
            "echo time is the difference of the echo times (see the magnitude series' TEs); give it with --te MS",
            tag="(0018,0024) SequenceName / (0018,0081) EchoTime",
        )
    return series.echo_time(echo), "(0018,0081) EchoTime"


def _magnitude_echo(series: Series, echo: int, magnitude: Series) -> int:
    """The echo of the separate magnitude series with the phase echo's TE (matched by time, not
    number: an enhanced phase series may number its only echo 1 whatever its TE)."""
    te = series.echo_time(echo)
    for e in magnitude.echoes:
        if abs(magnitude.echo_time(e) - te) <= 1e-6:
            return e
    listing = ", ".join(f"{magnitude.echo_time(e) * 1e3:g}" for e in magnitude.echoes)
    raise DicomError(
        f"magnitude {magnitude.name} has no echo at the phase's TE {te * 1e3:g} ms (its TEs: {listing} ms): "
        "the magnitude must come from the same echo as the phase",
        tag="(0018,0081) EchoTime",
    )


def _check_same_times(series: Series, magnitude: Series) -> None:
    """The separate magnitude series must have been acquired with the phase, dynamic by dynamic."""
    o_p, o_m = series.time_origin, magnitude.time_origin
    if o_p is None or o_m is None:
        log.warning("cannot check that magnitude %s and phase %s are the same acquisitions (no acquisition times)", magnitude.name, series.name)
        return
    tp, tm = o_p + series.times, o_m + magnitude.times
    gap = float(np.median(np.diff(tp))) if len(tp) > 1 else 0.0
    resolution = 1.01 if abs(o_p - round(o_p)) < 1e-6 and abs(o_m - round(o_m)) < 1e-6 else 0.0
    tol = max(0.5 * gap, resolution, 1e-3)
    dev = np.abs(tm - tp)
    if dev.max() > tol:
        d = int(np.argmax(dev))
        raise DicomError(
            f"magnitude {magnitude.name} dynamic {d + 1} was acquired {tm[d] - tp[d]:+.3f} s from the phase "
            f"{series.name} dynamic {d + 1} (dynamics ~{gap:.3f} s apart): they are not the same acquisitions",
            tag="(0008,0032) AcquisitionTime / (0018,9074) FrameAcquisitionDateTime",
        )


def _complex_stream(series: Series, echo: int, magnitude: Series | None) -> Any:
    """Yield (index, time, complex64 [slice,row,col]) dynamic by dynamic."""
    if magnitude is None:
        for dyn in series.iter_dynamics(echoes=[echo]):
            yield dyn.index, dyn.time, dyn.complex(echo)
        return
    mag_echo = _magnitude_echo(series, echo, magnitude)
    for ph, mg in zip(series.iter_dynamics(components=["phase"], echoes=[echo]), magnitude.iter_dynamics(components=["magnitude"], echoes=[mag_echo])):
        m = mg.image("magnitude", mag_echo)
        p = ph.image("phase", echo)
        yield ph.index, ph.time, (m * np.exp(1j * p)).astype(np.complex64)


def _stats_rows(index: int, t: float, temp: np.ndarray, masks: dict[str, np.ndarray], pct: float) -> list[list[Any]]:
    rows = []
    for name, m in masks.items():
        v = temp[m]
        ok = v[np.isfinite(v)]
        n_nan = int(v.size - ok.size)
        if ok.size:
            rows.append([index, f"{t:.3f}", name, f"{ok.max():.4f}", f"{ok.mean():.4f}", f"{np.percentile(ok, pct):.4f}", ok.size, n_nan])
        else:
            rows.append([index, f"{t:.3f}", name, "nan", "nan", "nan", 0, n_nan])
    return rows


def replay(path: str | Path, out_dir: str | Path, options: ReplayOptions | None = None, progress: Any = None) -> ReplayResult:
    """Replay a DICOM thermometry series offline; see the module docstring for the outputs.

    Parameters
    ----------
    path : str or Path
        Folder (or file) holding the series.
    out_dir : str or Path
        Output folder (created).
    options : ReplayOptions
    progress : tqdm-like, optional
        Gets ``total`` set to the number of dynamics, then ``update(1)`` after each.

    Raises
    ------
    DicomError, InvalidParameterError
        Unreadable or unsuitable series (no phase, one dynamic only, unknown times, ...),
        bad options (ROIs outside the grid, baseline longer than the series, ...).
    """
    opts = options or ReplayOptions()
    t_start = _time.perf_counter()
    if not str(out_dir).strip():
        raise InvalidParameterError("out_dir", repr(str(out_dir)), "must name an output folder")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidParameterError("out_dir", str(out), "exists and is not a folder")
    choice = pick_series(path, opts.series, opts.magnitude_series)
    series = load_series(path, choice.series)
    magnitude = None
    if choice.magnitude_series is not None:
        magnitude = load_series(path, choice.magnitude_series)
        if magnitude.shape[1:] != series.shape[1:] or not np.allclose(magnitude.affine, series.affine, atol=1e-3):
            raise DicomError(
                f"magnitude {magnitude.name} has geometry {magnitude.shape[1:]} / affine differing from "
                f"the phase {series.name} {series.shape[1:]}: they must share the grid"
            )
        if magnitude.n_dynamics != series.n_dynamics:
            raise DicomError(f"magnitude {magnitude.name} has {magnitude.n_dynamics} dynamics, the phase {series.name} {series.n_dynamics}")
        _check_same_times(series, magnitude)
    echo = choose_echo(series, opts.echo)
    if magnitude is not None:
        _magnitude_echo(series, echo, magnitude)  # refuse before any output is written
    n_dyn = series.n_dynamics
    nb = int(opts.baseline)
    if nb < 1:
        raise InvalidParameterError("baseline", nb, "must be >= 1 dynamic")
    if n_dyn < nb + 1:
        raise DicomError(
            f"{series.name} has {n_dyn} dynamic(s): thermometry needs at least {nb} baseline dynamic(s) "
            "plus one more to measure"
        )
    times = np.asarray(series.times, dtype=np.float64)
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise DicomError(
            f"{series.name}: dynamic times are unknown or not increasing ({series.times_source}: "
            f"{times[:5].tolist()}...): the dose needs them"
        )
    te, te_source = _prf_echo_time(series, echo, opts.echo_time)
    if progress is not None:
        progress.total = n_dyn
        progress.refresh()
    shape = tuple(series.shape[1:])
    affine = series.affine
    stat_masks = roi_masks(opts.rois, shape, affine) if opts.rois else {}
    settings = dataclasses.replace(opts.settings)  # the caller's settings are not modified
    if opts.drift_roi and settings.drift != "roi":
        raise InvalidParameterError("drift_roi", ", ".join(r.name for r in opts.drift_roi), f"is used by --drift roi only (drift is {settings.drift!r})")
    if opts.exclude and settings.drift != "poly" and not opts.baseline_library:
        log.warning("--exclude is used by --drift poly and --baseline-library only; ignored")
    if opts.drift_roi:
        settings.drift_roi = np.any(np.stack(list(roi_masks(opts.drift_roi, shape, affine).values())), axis=0)
    if opts.exclude:
        settings.exclude = np.any(np.stack(list(roi_masks(opts.exclude, shape, affine).values())), axis=0)
    if settings.drift == "poly" and settings.exclude is None:
        log.warning("polynomial drift without --exclude: heating inside the fitted region will bias the drift")
    settings.validate()

    # outputs of an earlier run in the same folder would mix with this one's (a drift map or ROI
    # table this run does not write, a sidecar listing files that a failed run removed): remove
    # them, and write the sidecar last
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        if (out / name).is_file():
            (out / name).unlink()
            log.info("removed %s from an earlier run", out / name)

    xp = get_backend().xp
    stream = _complex_stream(series, echo, magnitude)
    first = []
    for _ in range(max(nb, 2)):
        first.append(next(stream))
    noise, noise_method = (float(opts.noise), "given") if opts.noise is not None else estimate_noise([np.abs(first[0][2]), np.abs(first[1][2])])
    if not (math.isfinite(noise) and noise > 0):
        raise InvalidParameterError("noise", noise, "must be finite and > 0")
    if opts.baseline_library:
        base = BaselineLibrary([Baseline(xp.asarray(z), noise) for _, _, z in first[:nb]])
    else:
        base = Baseline.average([xp.asarray(z) for _, _, z in first[:nb]], noise)
    thermo = Thermometry(base, series.b0, te, settings, t0=float(times[0]))
    tr = float(np.median(np.diff(times))) if n_dyn > 1 else None
    advisory = Advisory(shape, stat_masks, tr or 1.0, settings.body_temp)

    files = {
        "temperature": out / "temperature.nii.gz",
        "sigma_t": out / "sigma_t.nii.gz",
        "mask": out / "mask.nii.gz",
    }
    if settings.drift != "none":
        files["drift"] = out / "drift.nii.gz"
    writers = {
        "temperature": NiftiStreamWriter(files["temperature"], shape, n_dyn, affine, np.float32, tr, "temperature [C]"),
        "sigma_t": NiftiStreamWriter(files["sigma_t"], shape, n_dyn, affine, np.float32, tr, "sigma T [C]"),
        "mask": NiftiStreamWriter(files["mask"], shape, n_dyn, affine, np.uint8, tr, "measured mask"),
    }
    if "drift" in files:
        writers["drift"] = NiftiStreamWriter(files["drift"], shape, n_dyn, affine, np.float32, tr, "drift phase [rad]")
    per_dynamic: list[dict[str, Any]] = []
    stats: list[list[Any]] = []
    try:
        def all_dynamics():
            yield from first
            yield from stream

        for index, t, z in all_dynamics():
            r = thermo.process(xp.asarray(z), float(times[index]), noise)
            temp = asnumpy(r.temperature)
            writers["temperature"].append(temp)
            writers["sigma_t"].append(asnumpy(r.sigma_t))
            writers["mask"].append(asnumpy(r.mask))
            if "drift" in writers:
                writers["drift"].append(asnumpy(r.drift))
            measured = int(asnumpy(r.mask).sum())
            per_dynamic.append({"index": index, "time_s": float(times[index]), "baseline_index": r.baseline_index, "measured_voxels": measured})
            stats.extend(_stats_rows(index, float(times[index]), temp, stat_masks, opts.percentile))
            if index >= nb:  # the baselines are the reference, not measurements
                advisory.step(index, float(times[index]), temp, asnumpy(r.sigma_t), asnumpy(r.mask), asnumpy(thermo.dose.dose))
            if progress is not None:
                progress.update(1)
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            try:
                w._fh.close()  # noqa: SLF001
            except Exception:
                pass
            w.path.unlink(missing_ok=True)
        raise
    if len(per_dynamic) != n_dyn:
        raise DicomError(f"{series.name}: {len(per_dynamic)} dynamics read, {n_dyn} expected")

    dose = asnumpy(thermo.dose.dose)
    tmax = asnumpy(thermo.dose.max_temperature())
    lesion = asnumpy(thermo.lesion()).astype(np.uint8)
    files["dose"] = write_volume(out / "dose.nii.gz", dose.astype(np.float32), affine, "CEM43 [min]")
    files["tmax"] = write_volume(out / "tmax.nii.gz", tmax, affine, "max temperature [C]")
    files["lesion"] = write_volume(out / "lesion.nii.gz", lesion, affine, "lesion mask")
    anatomy = np.mean([np.abs(z) for _, _, z in first[:nb]], axis=0).astype(np.float32)
    files["magnitude"] = write_volume(out / "magnitude.nii.gz", anatomy, affine, "baseline magnitude")
    files["advisory"] = advisory.write(out / "advisory.csv")
    if stat_masks:
        files["roi_stats"] = out / "roi_stats.csv"
        with open(files["roi_stats"], "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["dynamic", "time_s", "roi", "max_C", "mean_C", f"p{opts.percentile:g}_C", "measured_voxels", "nan_voxels"])
            w.writerows(stats)
    summary = {
        "fus_version": fus.__version__,
        "backend": get_backend().name,
        "source": str(Path(path).resolve()),
        "series": {
            "name": series.name,
            "vendor": series.vendor,
            "enhanced": series.enhanced,
            "echo": echo,
            "echo_time_s": te,
            "echo_time_source": te_source,
            "f0_Hz": series.f0,
            "b0_T": series.b0,
            "shape_slices_rows_cols": list(shape),
            "dynamics": n_dyn,
            "times_source": series.times_source,
            "phase_scaling": series.scaling_rule("phase", echo) if series.has("phase", echo) else "real/imaginary",
            "notes": list(series.notes),
            "magnitude_series": magnitude.name if magnitude is not None else None,
            "choice": choice.note,
        },
        "affine_mm_ras": np.asarray(affine).tolist(),
        "parameters": {
            "alpha_ppm_per_C": settings.alpha_ppm,
            "phase_sign": settings.phase_sign,
            "body_temp_C": settings.body_temp,
            "baseline_dynamics": nb,
            "baseline_mode": "library" if opts.baseline_library else "complex average",
            "drift": settings.drift,
            "drift_order": settings.drift_order if settings.drift == "poly" else None,
            "snr_min": settings.snr_min,
            "noise": noise,
            "noise_method": noise_method,
            "prf_scale_C_per_rad": thermo.scale,
            "lesion_dose_CEM43": settings.dose_threshold,
            "lesion_temperature_C": settings.temperature_threshold,
            "rois": [s.__dict__ for s in opts.rois],
            "drift_roi": [s.__dict__ for s in opts.drift_roi],
            "exclude": [s.__dict__ for s in opts.exclude],
        },
        "units": {"temperature": "C", "sigma_t": "C", "dose": "CEM43 min", "tmax": "C", "drift": "rad", "time": "s"},
        "dynamics": per_dynamic,
        "lesion_voxels": int(lesion.sum()),
        "advisory": {
            "limits": "InterlockLimits() defaults",
            "rois": sorted(stat_masks),
            "first_stop": dict(zip(ADVISORY_COLUMNS, advisory.first_stop))
            if advisory.first_stop else None,
            "stop_dynamics": sum(1 for r in advisory.rows if r[2] == "stop"),
        },
        "run_time_s": _time.perf_counter() - t_start,
        "files": {k: str(v.name) for k, v in files.items()},
    }
    files["sidecar"] = out / "replay.json"
    files["sidecar"].write_text(json.dumps(summary, indent=2, default=str))
    log.info("replay of %s: %d dynamics in %.2f s -> %s", series.name, n_dyn, summary["run_time_s"], out)
    return ReplayResult(out, files, summary)
