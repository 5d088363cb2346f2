"""``fus heat``: open-loop sonication of a phantom: field -> heat source -> Pennes -> CEM43.

Units at this edge: mm, MHz, W, s; SI inside. Coordinates (``--focus``) are in the transducer
frame (origin at the geometric focus, +z along the beam), the frame the phantom file uses.

Steps: the phantom (``--phantom FILE.toml``, :func:`fus.physics.phantom.load_phantom`); the
pressure of the transducer focused on ``--focus`` (default: the phantom's target) through the
phantom's planar layers at ``--power`` W acoustic (:func:`fus.physics.field.pressure`); the
absorbed power density of each voxel's tissue (:func:`fus.physics.field.heat_source_labels`); the
Pennes solver over ``--duration`` s of sonication (``--duty-cycle``) and ``--cooling`` s without
(:func:`fus.physics.bioheat.simulate_phantom`).

Outputs in the directory ``-o OUT``:

* ``temperature.nii[.gz]``: 4-D temperature [C] at the output times (x, y, z, t; t step in the
  header = ``--output-interval`` s);
* ``dose.nii[.gz]``: 4-D CEM43 [min];
* ``max_temperature.nii[.gz]``, ``final_dose.nii[.gz]`` (float64 dose as float32),
  ``heat_source.nii[.gz]`` (Q at ``--power``, W/m^3), ``labels.nii[.gz]``;
* ``rois.csv``: per output time, drive power and per ROI the mean and max temperature and the max
  dose;
* ``heat.json``: units, provenance, phantom, transducer, schedule, time steps, timings, and the
  peak values per ROI.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import fus
from fus.cli.field import add_transducer_arguments, build_transducer
from fus.errors import InvalidParameterError
from fus.physics.heat_source import phantom_heat_source
from fus.pipelines.outputs import DOSE_CEILING, RunOutputs, saturate

logger = logging.getLogger("fus.cli.heat")

DEFAULT_OUTPUT_INTERVAL_S = 5.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "heat",
        help="open-loop sonication of a phantom: temperature and CEM43 dose time series (NIfTI, CSV, JSON)",
        description=(
            "Focus a transducer on a phantom (default: its target), compute the heat source from the "
            "acoustic field through the phantom's layers, and run the Pennes bioheat equation with "
            "CEM43 dose over the sonication and the cooling."
        ),
    )
    p.add_argument("--phantom", required=True, metavar="FILE.toml", help="phantom file (e.g. sample_data/phantom_bone.toml)")
    add_transducer_arguments(p)
    p.add_argument("--focus", metavar="X,Y,Z", help="focus [mm], transducer frame (default: the phantom's target)")
    p.add_argument("--power", type=float, required=True, metavar="W", help="acoustic power during sonication [W]")
    p.add_argument("--duration", type=float, required=True, metavar="S", help="sonication time [s]")
    p.add_argument("--cooling", type=float, default=0.0, metavar="S", help="cooling time after it [s] (default 0)")
    p.add_argument("--duty-cycle", type=float, default=1.0, metavar="D", help="duty cycle in (0, 1] (time-averaged power)")
    p.add_argument(
        "--output-interval", type=float, default=DEFAULT_OUTPUT_INTERVAL_S, metavar="S",
        help=f"time between output frames [s] (default {DEFAULT_OUTPUT_INTERVAL_S:g})",
    )
    p.add_argument(
        "--field-spacing", type=float, metavar="MM",
        help="compute the pressure on a coarser grid of this spacing [mm] and interpolate |p|^2 (faster; default: the phantom's spacing)",
    )
    p.add_argument(
        "--safety", type=float, default=None, metavar="F",
        help="time step as a fraction of the stable limit, in (0, 1] (default 0.5: ~0.2 %% time error; 0.9 is ~2x faster)",
    )
    p.add_argument("--gzip", action="store_true", help="write .nii.gz (slower) instead of .nii")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    p.set_defaults(func=run)


def _finite(option: str, value: float, *, positive: bool = False, nonnegative: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0) or (nonnegative and v < 0):
        need = "> 0" if positive else (">= 0" if nonnegative else "finite")
        raise InvalidParameterError(option, value, f"must be {need}")
    return v


def _focus(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise InvalidParameterError("--focus", text, "must be X,Y,Z in mm")
    return np.asarray(vals) * 1e-3


def run(args: argparse.Namespace) -> int:
    from fus.physics.bioheat import Schedule, simulate_phantom
    from fus.physics.phantom import load_phantom

    t_start = time.perf_counter()
    power = _finite("--power", args.power, nonnegative=True)
    duration = _finite("--duration", args.duration)
    if duration <= 0:
        raise InvalidParameterError("--duration", args.duration, "must be > 0 [s]")
    cooling = _finite("--cooling", args.cooling)
    if cooling < 0:
        raise InvalidParameterError("--cooling", args.cooling, "must be >= 0 [s] (a negative duration)")
    out_dt = _finite("--output-interval", args.output_interval, positive=True)
    schedule = Schedule.sonication(power, duration, cooling, args.duty_cycle)
    out_dir = Path(args.output)
    RunOutputs(out_dir)  # refuses an -o that is a file before any work

    phantom = load_phantom(args.phantom)
    transducer = build_transducer(args)
    focus = _focus(args.focus)
    if focus is None:
        focus = np.asarray(phantom.target, dtype=np.float64)
    progress = not args.no_progress

    t0 = time.perf_counter()
    ref_power = power if power > 0 else 1.0
    fs = None if args.field_spacing is None else _finite("--field-spacing", args.field_spacing, positive=True) * 1e-3
    q, field_info = phantom_heat_source(phantom, transducer, focus, ref_power, progress=progress, field_spacing=fs)
    t_field = time.perf_counter() - t0
    logger.info("heat source: %.2f s, peak %.4g W/m^3", t_field, float(q.max()))

    t0 = time.perf_counter()
    extra = {} if args.safety is None else {"safety": args.safety}
    result = simulate_phantom(
        phantom, q, schedule, reference_power=ref_power, output_interval=out_dt, progress=progress, **extra,
    )
    t_heat = time.perf_counter() - t0

    ext = ".nii.gz" if args.gzip else ".nii"
    affine = phantom.grid.affine(transducer.to_scanner)
    files = {
        "temperature": "temperature" + ext,
        "dose": "dose" + ext,
        "max_temperature": "max_temperature" + ext,
        "final_dose": "final_dose" + ext,
        "heat_source": "heat_source" + ext,
        "labels": "labels" + ext,
        "rois": "rois.csv",
        "sidecar": "heat.json",
    }
    # doses past DOSE_CEILING (float overflow to inf above ~170 C) are written as the ceiling and counted
    dose_series, n_sat_series = saturate(result.dose, DOSE_CEILING)
    final_dose, n_sat = saturate(result.final_dose, DOSE_CEILING)
    warnings = []
    t_max = float(np.nanmax(result.max_temperature))
    if t_max > 100.0:
        warnings.append(
            f"peak temperature {t_max:.0f} C is above 100 C: water boils there and the model has no phase "
            "change or tissue-property change, so temperatures and doses past it are not physical (lower --power?)"
        )
    if n_sat:
        warnings.append(f"{n_sat} voxels reach a CEM43 dose above {DOSE_CEILING:g} min; written as {DOSE_CEILING:g}")
    for w in warnings:
        logger.warning(w)
    names = list(result.roi_curves)
    header = ["time_s", "power_W"]
    for n in names:
        header += [f"{n}_mean_temperature_C", f"{n}_max_temperature_C", f"{n}_max_dose_CEM43_min"]
    curves = {n: {k: saturate(np.asarray(v, dtype=np.float64), DOSE_CEILING)[0] if k == "max_dose" else np.asarray(v, dtype=np.float64) for k, v in c.items()} for n, c in result.roi_curves.items()}
    rows = []
    for i, t in enumerate(result.times):
        row = [float(t), float(result.power[i])]
        for n in names:
            c = curves[n]
            row += [float(c["mean_temperature"][i]), float(c["max_temperature"][i]), float(c["max_dose"][i])]
        rows.append(row)

    peaks = {
        n: {
            "max_temperature_C": float(np.max(c["max_temperature"])),
            "max_dose_CEM43_min": float(np.max(c["max_dose"])),
        }
        for n, c in curves.items()
    }
    backend = fus.get_backend()
    sidecar = {
        "fus_version": fus.__version__,
        "command": "fus " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["heat"] else "fus heat",
        "units": {
            "temperature": "C", "dose": "CEM43 min", "heat_source": "W/m^3", "time": "s", "affine": "mm",
            "power": "W (acoustic)",
        },
        "model": "Pennes bioheat, explicit finite volumes (fus.kernels.bioheat_step); CEM43 (Sapareto & Dewey 1984)",
        "phantom": {
            "file": str(args.phantom), "name": phantom.name, "grid": phantom.grid.describe(),
            "layers": [[t, None if d is None else d * 1e3] for t, d in phantom.layers],
            "skin_z_mm": phantom.skin_z * 1e3, "target_mm": (np.asarray(phantom.target) * 1e3).tolist(),
            "bath_temperature_C": phantom.bath_temperature, "body_temperature_C": phantom.body_temperature,
            "rois_voxels": phantom.roi_summary(), "regions": phantom.regions,
            "tissue_source": "fus.physics.tissues (IT'IS Foundation database v4.1 and the sources listed there)",
        },
        "transducer": transducer.summary(),
        "focus_mm": (focus * 1e3).tolist(),
        "schedule": schedule.describe(),
        "output_interval_s": out_dt,
        "times_s": result.times.tolist(),
        "field": field_info,
        "bioheat": result.info,
        "roi_peaks": peaks,
        "dose_ceiling_CEM43_min": DOSE_CEILING,
        "dose_saturated_voxels": {"final_dose": n_sat, "dose_series_entries": n_sat_series},
        "warnings": warnings,
        "backend": getattr(backend, "name", "?"),
        "timings_s": {"field": t_field, "bioheat": t_heat, "total": time.perf_counter() - t_start},
        "files": files,
    }
    with RunOutputs(out_dir) as out:
        out.nifti(files["temperature"], np.moveaxis(result.temperature, 0, -1), affine, "fus heat T [C]", dt=out_dt)
        out.nifti(files["dose"], np.moveaxis(dose_series, 0, -1), affine, "fus heat CEM43 [min]", dt=out_dt)
        out.nifti(files["max_temperature"], result.max_temperature, affine, "fus heat max T [C]")
        out.nifti(files["final_dose"], final_dose, affine, "fus heat final CEM43 [min]")
        out.nifti(files["heat_source"], q, affine, f"fus heat Q [W/m^3] at {ref_power:g} W")
        out.nifti(files["labels"], phantom.labels, affine, "fus heat tissue labels")
        out.csv(files["rois"], header, rows)
        out.commit(files["sidecar"], sidecar, stale=[f"{stem}{e}" for stem in ("temperature", "dose", "max_temperature", "final_dose", "heat_source", "labels") for e in (".nii", ".nii.gz")])
    tgt = peaks.get("target", {})
    print(
        f"{out_dir}: target max {tgt.get('max_temperature_C', float('nan')):.2f} C, "
        f"{tgt.get('max_dose_CEM43_min', float('nan')):.4g} CEM43; field {t_field:.1f} s, bioheat {t_heat:.1f} s "
        f"({result.info['n_steps']} steps) on {sidecar['backend']}"
    )
    return 0
