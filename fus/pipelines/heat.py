"""The heating pipeline (``fus heat``): open-loop sonication of a phantom, field -> Q -> Pennes -> CEM43.

Steps of :func:`compute_heat`: the phantom (a :class:`fus.physics.phantom.Phantom` or its TOML
file, :func:`fus.physics.phantom.load_phantom`); the pressure of the transducer focused on
``focus`` (default: the phantom's target) through the phantom's planar layers, scaled to the
acoustic ``power``, and the absorbed power density of each voxel's tissue
(:func:`fus.physics.heat_source.phantom_heat_source`); the Pennes solver over ``duration`` s of
sonication (``duty_cycle``) and ``cooling`` s without (:func:`fus.physics.bioheat.simulate_phantom`).
:func:`write_heat` writes the result all or nothing (:class:`fus.pipelines.outputs.RunOutputs`);
:func:`run_heat` does both, refusing an output that is a file before any work. SI units; the
focus is in the transducer frame (origin at the geometric focus, +z along the beam), the frame
the phantom file uses.

Outputs in the directory ``OUT``:

* ``temperature.nii[.gz]``: 4-D temperature [C] at the output times (x, y, z, t; t step in the
  header = ``output_interval`` s);
* ``dose.nii[.gz]``: 4-D CEM43 [min];
* ``max_temperature.nii[.gz]``, ``final_dose.nii[.gz]`` (float64 dose as float32),
  ``heat_source.nii[.gz]`` (Q at ``power``, W/m^3), ``labels.nii[.gz]``;
* ``rois.csv``: per output time, drive power and per ROI the mean and max temperature and the max
  dose;
* ``heat.json``: units, provenance, phantom, transducer, schedule, time steps, timings, and the
  peak values per ROI.

Doses past :data:`fus.pipelines.outputs.DOSE_CEILING` (float overflow to inf above ~170 C) are
written as the ceiling and counted in the sidecar.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import fus
from fus.physics.heat_source import phantom_heat_source
from fus.pipelines.outputs import DOSE_CEILING, RunOutputs, saturate

__all__ = ["DEFAULT_OUTPUT_INTERVAL_S", "HeatResult", "compute_heat", "run_heat", "write_heat"]

logger = logging.getLogger(__name__)

#: Time between output frames [s] when not given.
DEFAULT_OUTPUT_INTERVAL_S = 5.0

_VOLUMES = ("temperature", "dose", "max_temperature", "final_dose", "heat_source", "labels")


@dataclass
class HeatResult:
    """What :func:`compute_heat` returns (host numpy arrays).

    Attributes
    ----------
    bioheat : BioheatResult
        The solver's result (:class:`fus.physics.bioheat.BioheatResult`).
    heat_source : ndarray
        Q [W/m^3] at ``reference_power``.
    reference_power : float
        [W] (the drive power, or 1 W for a zero-power run).
    labels : ndarray of uint8
        The phantom's tissue labels.
    affine : ndarray, (4, 4)
        Voxel-to-scanner affine [mm].
    dose, final_dose : ndarray
        The CEM43 series and final dose [min], saturated at the ceiling.
    table : tuple of (header, rows)
        The per-ROI curves, as ``rois.csv`` holds them.
    sidecar : dict
        Units, provenance, peaks, warnings and timings (JSON-ready).
    """

    bioheat: Any
    heat_source: np.ndarray
    reference_power: float
    labels: np.ndarray
    affine: np.ndarray
    dose: np.ndarray
    final_dose: np.ndarray
    table: tuple[list[str], list[list[float]]]
    sidecar: dict[str, Any]


def _roi_table(result: Any) -> tuple[list[str], list[list[float]], dict[str, dict[str, float]]]:
    """Header and rows of ``rois.csv`` and the peak values per ROI (doses saturated)."""
    names = list(result.roi_curves)
    header = ["time_s", "power_W"]
    for n in names:
        header += [f"{n}_mean_temperature_C", f"{n}_max_temperature_C", f"{n}_max_dose_CEM43_min"]
    curves = {
        n: {
            k: saturate(np.asarray(v, dtype=np.float64), DOSE_CEILING)[0] if k == "max_dose" else np.asarray(v, dtype=np.float64)
            for k, v in c.items()
        }
        for n, c in result.roi_curves.items()
    }
    rows = []
    for i, t in enumerate(result.times):
        row = [float(t), float(result.power[i])]
        for n in names:
            c = curves[n]
            row += [float(c["mean_temperature"][i]), float(c["max_temperature"][i]), float(c["max_dose"][i])]
        rows.append(row)
    peaks = {
        n: {"max_temperature_C": float(np.max(c["max_temperature"])), "max_dose_CEM43_min": float(np.max(c["max_dose"]))}
        for n, c in curves.items()
    }
    return header, rows, peaks


def compute_heat(
    phantom: Any,
    transducer: Any,
    *,
    power: float,
    duration: float,
    cooling: float = 0.0,
    duty_cycle: float = 1.0,
    focus: Any = None,
    output_interval: float = DEFAULT_OUTPUT_INTERVAL_S,
    field_spacing: float | None = None,
    refine_focus: bool = False,
    safety: float | None = None,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
) -> HeatResult:
    """An open-loop sonication of ``phantom``: temperature and CEM43 dose over time.

    Parameters
    ----------
    phantom : Phantom, str or Path
        The phantom, or its TOML file.
    transducer : Transducer
    power : float
        Acoustic power during the sonication [W], >= 0.
    duration : float
        Sonication time [s], > 0.
    cooling : float
        Time after it without power [s], >= 0.
    duty_cycle : float
        In (0, 1]: the source uses the time-averaged power.
    focus : 3 floats, optional
        Focus [m], transducer frame (default: the phantom's target).
    output_interval : float
        Time between output frames [s], > 0.
    field_spacing : float, optional
        Compute the pressure on a coarser grid of this spacing [m] and interpolate ``|p|^2``.
    refine_focus : bool
        With ``field_spacing``, compute the focal region again at the phantom's spacing
        (:func:`fus.physics.heat_source.phantom_heat_source`).
    safety : float, optional
        Time step as a fraction of the stable limit, in (0, 1] (default that of
        :func:`fus.physics.bioheat.simulate`).
    progress : bool
        Progress bars.
    provenance : mapping, optional
        Put at the top of the sidecar (e.g. ``{"command": "fus heat ..."}``).

    Returns
    -------
    HeatResult

    Raises
    ------
    InvalidParameterError
        A bad schedule value, focus, spacing or safety factor.
    DataError
        An unreadable phantom file.
    """
    from fus.physics.bioheat import Schedule, simulate_phantom
    from fus.physics.bioheat_state import check_safety
    from fus.physics.phantom import load_phantom

    t_start = time.perf_counter()
    schedule = Schedule.sonication(power, duration, cooling, duty_cycle)
    if safety is not None:
        check_safety(safety)  # before the field, which can take minutes
    if isinstance(phantom, (str, Path)):
        phantom_file = str(phantom)
        phantom = load_phantom(phantom)
    else:
        phantom_file = phantom.source
    focus = np.asarray(phantom.target if focus is None else focus, dtype=np.float64)

    t0 = time.perf_counter()
    ref_power = power if power > 0 else 1.0
    q, field_info = phantom_heat_source(phantom, transducer, focus, ref_power, progress=progress, field_spacing=field_spacing,
                                        refine_focus=refine_focus)
    t_field = time.perf_counter() - t0
    logger.info("heat source: %.2f s, peak %.4g W/m^3", t_field, float(q.max()))

    t0 = time.perf_counter()
    extra = {} if safety is None else {"safety": safety}
    result = simulate_phantom(
        phantom, q, schedule, reference_power=ref_power, output_interval=output_interval, progress=progress, **extra,
    )
    t_heat = time.perf_counter() - t0

    dose_series, n_sat_series = saturate(result.dose, DOSE_CEILING)
    final_dose, n_sat = saturate(result.final_dose, DOSE_CEILING)
    warnings = list(field_info.get("warnings", []))  # logged where they were found
    t_max = float(np.nanmax(result.max_temperature))
    if t_max > 100.0:
        warnings.append(
            f"peak temperature {t_max:.0f} C is above 100 C: water boils there and the model has no phase "
            "change or tissue-property change, so temperatures and doses past it are not physical (lower --power?)"
        )
    if n_sat:
        warnings.append(f"{n_sat} voxels reach a CEM43 dose above {DOSE_CEILING:g} min; written as {DOSE_CEILING:g}")
    for w in warnings[len(field_info.get("warnings", [])):]:
        logger.warning(w)
    header, rows, peaks = _roi_table(result)
    backend = fus.get_backend()
    sidecar: dict[str, Any] = {"fus_version": fus.__version__, **(provenance or {})}
    sidecar.update({
        "units": {
            "temperature": "C", "dose": "CEM43 min", "heat_source": "W/m^3", "time": "s", "affine": "mm",
            "power": "W (acoustic)",
        },
        "model": "Pennes bioheat, explicit finite volumes (fus.kernels.bioheat_step); CEM43 (Sapareto & Dewey 1984)",
        "phantom": {
            "file": phantom_file, "name": phantom.name, "grid": phantom.grid.describe(),
            "layers": [[t, None if d is None else d * 1e3] for t, d in phantom.layers],
            "skin_z_mm": phantom.skin_z * 1e3, "target_mm": (np.asarray(phantom.target) * 1e3).tolist(),
            "bath_temperature_C": phantom.bath_temperature, "body_temperature_C": phantom.body_temperature,
            "rois_voxels": phantom.roi_summary(), "regions": phantom.regions,
            "tissue_source": "fus.physics.tissues (IT'IS Foundation database v4.1 and the sources listed there)",
        },
        "transducer": transducer.summary(),
        "focus_mm": (focus * 1e3).tolist(),
        "schedule": schedule.describe(),
        "output_interval_s": output_interval,
        "times_s": result.times.tolist(),
        "field": field_info,
        "bioheat": result.info,
        "roi_peaks": peaks,
        "dose_ceiling_CEM43_min": DOSE_CEILING,
        "dose_saturated_voxels": {"final_dose": n_sat, "dose_series_entries": n_sat_series},
        "warnings": warnings,
        "backend": getattr(backend, "name", "?"),
        "timings_s": {"field": t_field, "bioheat": t_heat, "total": time.perf_counter() - t_start},
    })
    return HeatResult(
        bioheat=result, heat_source=q, reference_power=ref_power, labels=phantom.labels,
        affine=phantom.grid.affine(transducer.to_scanner), dose=dose_series, final_dose=final_dose,
        table=(header, rows), sidecar=sidecar,
    )


def write_heat(run: HeatResult, out_dir: str | Path, *, gzip: bool = False) -> dict[str, str]:
    """Write ``run`` into ``out_dir`` (``.nii.gz`` with ``gzip``, else ``.nii``), all or nothing.

    The sidecar (``heat.json``, last) gets the ``files`` written; an earlier run's volumes of the
    other extension are removed. Returns the file names by kind.
    """
    ext = ".nii.gz" if gzip else ".nii"
    files = {name: name + ext for name in _VOLUMES}
    files.update({"rois": "rois.csv", "sidecar": "heat.json"})
    r, a = run.bioheat, run.affine
    dt = run.sidecar["output_interval_s"]
    side = dict(run.sidecar, files=files)
    with RunOutputs(out_dir) as out:
        out.nifti(files["temperature"], np.moveaxis(r.temperature, 0, -1), a, "fus heat T [C]", dt=dt)
        out.nifti(files["dose"], np.moveaxis(run.dose, 0, -1), a, "fus heat CEM43 [min]", dt=dt)
        out.nifti(files["max_temperature"], r.max_temperature, a, "fus heat max T [C]")
        out.nifti(files["final_dose"], run.final_dose, a, "fus heat final CEM43 [min]")
        out.nifti(files["heat_source"], run.heat_source, a, f"fus heat Q [W/m^3] at {run.reference_power:g} W")
        out.nifti(files["labels"], run.labels, a, "fus heat tissue labels")
        out.csv(files["rois"], *run.table)
        out.commit(files["sidecar"], side, stale=[f"{stem}{e}" for stem in _VOLUMES for e in (".nii", ".nii.gz")])
    return files


def run_heat(out_dir: str | Path, phantom: Any, transducer: Any, *, gzip: bool = False, **options: Any) -> HeatResult:
    """:func:`compute_heat` then :func:`write_heat` into ``out_dir``; an ``out_dir`` that is a file
    is refused before any work. ``options`` are those of :func:`compute_heat`."""
    RunOutputs(out_dir)  # refuses an output that is a file before any work
    run = compute_heat(phantom, transducer, **options)
    run.sidecar["files"] = write_heat(run, out_dir, gzip=gzip)
    return run
