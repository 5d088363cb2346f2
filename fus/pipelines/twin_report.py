"""Figures of merit of a twin run (``summary.json``) and its files (NIfTI, log CSV).

The figures are computed from the TRUE temperature (the twin knows it): the target statistic the
controller follows, taken on the true temperature resampled onto the images (no noise), against
the reference; the doses and peaks of the organs at risk on the bioheat grid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fus.pipelines.outputs import DOSE_CEILING, RunOutputs, saturate
from fus.pipelines.scenario import FAULT_REASONS, Scenario
from fus.physics.dose import LESION_DOSE

__all__ = ["summarise", "write_outputs", "INTERLOCK_REASONS"]

#: Reasons that are interlock trips (the power is zero because of a safety decision).
INTERLOCK_REASONS = frozenset(
    {
        "max_temperature", "skin_temperature", "near_field_temperature", "cord_temperature", "cord_dose",
        "thermometry_nan", "thermometry_noise", "motion", "stuck_frame", "watchdog", "energy_budget",
        "duration_budget", "controller_exception", "loop_exception",
    }
)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _hold_metrics(rows: list[dict], trajectory: Any) -> dict[str, Any]:
    """time to target, overshoot and steady-state RMS error of the true target statistic."""
    out: dict[str, Any] = {"time_to_target_s": None, "overshoot_C": None, "rms_error_C": None}
    if trajectory is None:
        return out
    hold = trajectory.hold_C
    start = trajectory.ramp_duration
    end = trajectory.end_time
    t0 = trajectory.start_s or 0.0
    pts = [(r["time_s"], r["true_target_C"], r.get("reference_C")) for r in rows if r.get("dynamic", -1) >= 0 and _num(r.get("true_target_C")) is not None]
    if not pts:
        return out
    t = np.asarray([p[0] for p in pts])
    y = np.asarray([p[1] for p in pts])
    reached = np.nonzero(y >= hold - 0.5)[0]
    if reached.size:
        out["time_to_target_s"] = float(t[reached[0]] - t0)
    out["overshoot_C"] = float(max(0.0, np.max(y) - hold))
    if start is not None and end is not None and math.isfinite(end):
        hs, he = t0 + start, t0 + end
        ss = (t >= hs + (he - hs) / 3.0) & (t <= he)
        ref = np.asarray([trajectory.value(tt - t0) for tt in t[ss]])
        if ss.any():
            out["rms_error_C"] = float(np.sqrt(np.mean((y[ss] - ref) ** 2)))
    return out


def summarise(scenario: Scenario, twin: Any, rows: list[dict], goal_time: float | None) -> dict[str, Any]:
    """The summary of a run: figures of merit, stops, per-fault times, energy, setup."""
    st = twin.state
    dose = np.asarray(twin.host(st.dose))
    tmax = np.asarray(twin.host(st.max_temperature))
    rois = twin.grid_rois
    summary: dict[str, Any] = {"scenario": scenario.name, "seed": scenario.seed, "duration_s": scenario.duration}
    summary.update(_hold_metrics(rows, twin.trajectory))
    if twin.trajectory is None:
        summary["time_to_target_s"] = goal_time
    tgt = rois["target"]
    summary["target_dose_fraction"] = float(np.mean(dose[tgt] >= LESION_DOSE))
    summary["target_max_C"] = float(tmax[tgt].max())
    summary["max_temperature_C"] = float(tmax[rois["body"]].max())
    summary["max_skin_C"] = float(tmax[rois["skin"]].max())
    summary["max_near_field_C"] = float(tmax[rois["near_field"]].max())
    summary["max_cord_C"] = _num(tmax[rois["cord"]].max()) if "cord" in rois else None
    summary["max_cord_CEM43"] = _num(min(float(dose[rois["cord"]].max()), DOSE_CEILING)) if "cord" in rois else None
    summary["energy_J"] = float(st.energy)
    summary["goal_time_s"] = goal_time
    stops = [t.as_dict() for t in twin.interlocks.trips]
    if goal_time is not None:
        stops.append({"time_s": goal_time, "reason": "goal_reached", "roi": "target", "value": None, "limit": None, "dynamic": None, "detail": "controller goal"})
    summary["stops"] = sorted(stops, key=lambda d: d["time_s"])
    summary["holds"] = [h.as_dict() if hasattr(h, "as_dict") else dict(h) for h in getattr(twin.interlocks, "holds", [])]
    faults = []
    for f in scenario.faults:
        zero = None
        reason = None
        for r in rows:
            if r["available_s"] + 1e-9 >= f.at_s and r.get("power_W", 1.0) == 0.0 and r.get("reason") in INTERLOCK_REASONS:
                zero, reason = r["available_s"], r["reason"]
                break
        faults.append({**f.as_dict(), "fault_time_s": f.at_s, "power_zero_time_s": zero, "reason": reason, "expected_reasons": list(FAULT_REASONS[f.kind])})
    summary["faults"] = faults
    summary["dynamics"] = sum(1 for r in rows if r.get("dynamic", -1) >= 0)
    summary["setup_s"] = twin.setup_s
    summary["backend"] = twin.backend_name
    return summary


def write_outputs(result: Any, out_dir: str | Path, *, gzip: bool = False, extra_sidecar: dict | None = None, dicom: bool = False) -> dict[str, str]:
    """Write a run: true and measured temperature and dose (NIfTI), ``log.csv``, ``summary.json``.

    With ``dicom``, the acquired images as Siemens-style DICOM in ``OUT/dicom``.

    Files: ``true_temperature`` (x, y, z, t at the acquisition times), ``true_dose`` and
    ``true_max_temperature`` on the grid; per slice ``measured_temperature_s<i>`` (rows, cols, 1,
    t), ``measured_dose_s<i>`` and ``magnitude_s<i>`` (mean baseline magnitude) with that slice's
    affine; ``log.csv``; ``summary.json`` (written last: its presence means the run is complete).
    """
    tw = result.twin
    ext = ".nii.gz" if gzip else ".nii"
    files: dict[str, str] = {"log": "log.csv", "summary": "summary.json"}
    affine = tw.phantom.grid.affine(tw.transducer.to_scanner)
    period = tw.scanner_settings.dynamic_period
    keys: list[str] = []
    for r in result.log:
        for k in r:
            if k not in keys:
                keys.append(k)
    rows = [[_csv(r.get(k)) for k in keys] for r in result.log]
    summary = dict(result.summary)
    if extra_sidecar:
        summary.update(extra_sidecar)
    anatomy = np.mean([np.abs(np.asarray(tw.host(z))) for z in tw.baseline_images], axis=0).astype(np.float32)
    with RunOutputs(Path(out_dir)) as out:
        if result.true_temperature is not None:
            files["true_temperature"] = "true_temperature" + ext
            out.nifti(files["true_temperature"], np.moveaxis(result.true_temperature, 0, -1), affine, "fus simulate true T [C]", dt=period)
        files["true_dose"] = "true_dose" + ext
        out.nifti(files["true_dose"], saturate(result.true_dose, DOSE_CEILING)[0].astype(np.float32), affine, "fus simulate true CEM43 [min]")
        files["true_max_temperature"] = "true_max_temperature" + ext
        out.nifti(files["true_max_temperature"], result.true_max_temperature.astype(np.float32), affine, "fus simulate true max T [C]")
        for i in range(tw.plan_slices):
            a = tw.slice_affine_mm(i)
            if result.measured_temperature is not None:
                name = f"measured_temperature_s{i}{ext}"
                files[f"measured_temperature_s{i}"] = name
                vol = np.moveaxis(result.measured_temperature[:, i], 0, -1)[:, :, None, :]
                out.nifti(name, vol, a, f"fus simulate measured T [C] slice {i}", dt=period)
            name = f"magnitude_s{i}{ext}"  # the anatomy under the maps (mean baseline magnitude)
            files[f"magnitude_s{i}"] = name
            out.nifti(name, anatomy[i][:, :, None], a, f"fus simulate baseline magnitude slice {i}")
            name = f"measured_dose_s{i}{ext}"
            files[f"measured_dose_s{i}"] = name
            md = saturate(result.measured_dose[i], DOSE_CEILING)[0]  # NaN (never measured) stays NaN
            out.nifti(name, md[:, :, None].astype(np.float32), a, f"fus simulate measured CEM43 [min] slice {i}")
        out.csv(files["log"], keys, rows)
        summary["files"] = files
        out.commit(files["summary"], summary)
    if dicom and result.images:  # what the scanner acquired, replayable with `fus replay OUT/dicom`
        from fus.mr.dicom_write import write_series

        write_series(
            Path(out_dir) / "dicom", [im for _, im in result.images], [t for t, _ in result.images], tw.plan,
            tw.scanner_settings, baseline=tw.baseline_images,
        )
    return files


def _csv(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if v is None:
        return ""
    return v
