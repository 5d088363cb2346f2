"""The shipped sample DICOM thermometry series: a closed-loop bone ablation acquired by the twin's scanner.

:func:`make_sample_series` runs the bone-surface ablation scenario
(``sample_data/scenario_ablation.toml``) with a three-slice coronal stack centred on the focus,
96 x 96 pixels of 0.75 mm, and writes what the simulated scanner acquired:

``classic/``                 Siemens-style classic DICOM, magnitude and phase as two consecutive
                             series (10: magnitude, 11: phase), 4 baseline dynamics first
``enhanced/series.dcm``      the same images as one Enhanced MR Image Storage file
``true_temperature.nii.gz``  the true temperature on the image grid [C] (slice-averaged across
                             the thickness, noise-free, in 0.01 C steps), one volume per dynamic,
                             baselines first, on the affine ``fus replay`` gives the series
``rois/<name>.nii.gz``       the twin's ROIs on the images (target, skin, near field, cord, ...)
``drift_exclude.nii.gz``     the voxels the twin's drift fit left out (``fus replay --drift poly
                             --exclude``)
``series.json``              how it was made: scenario, overrides, baselines, noise, times

Everything is deterministic (seeded scanner noise and UIDs, gzip without a timestamp): running it
again writes the same bytes. ``sample_data/make_sample_data.py`` calls it.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from fus.errors import DataError
from fus.mr.dicom_write import write_series
from fus.mr.dicom_write_enhanced import write_enhanced_series
from fus.pipelines.scenario import load_scenario
from fus.pipelines.twin import run_twin

__all__ = ["SAMPLE_OVERRIDES", "TRUE_T_STEP", "make_sample_series", "sample_data_dir", "write_nifti_gz"]

log = logging.getLogger(__name__)

#: Overrides of ``scenario_ablation.toml`` for the sample series: 3 contiguous coronal slices of
#: 96 x 96 x 0.75 mm and 90 s (4 baselines + 35 dynamics): the controller reaches its dose goal
#: at 15.5 s and the rest of the series shows the cooling.
SAMPLE_OVERRIDES = (
    "scanner.plan={matrix=[96,96],spacing=0.75e-3,thickness=3e-3,coronal_stack=3}",
    "duration_s=90.0",
)
#: Step of the stored true temperature [C] (int16 with scl_slope: 0.005 C at most from the truth).
TRUE_T_STEP = 0.01


def sample_data_dir() -> Path:
    """The sample data shipped with the package (``fus/_sample_data``, a link to ``sample_data/``
    in an editable install)."""
    from fus.backend.sources import package_dir

    d = package_dir() / "_sample_data"
    if not (d / "scenario_ablation.toml").is_file():
        raise DataError(f"the sample data is not installed in {d} (reinstall fus: pip install .)", path=d)
    return d


def write_nifti_gz(path: str | Path, data: np.ndarray, affine: np.ndarray, description: str = "", step: float | None = None,
                   quantum: float | None = None) -> Path:
    """Write a NIfTI-1 ``.nii.gz`` byte-for-byte reproducibly (gzip mtime 0); with ``quantum``, as
    int16 multiples of it (``scl_slope``; readers scale back)."""
    arr = np.asarray(data)
    if quantum is not None:
        q = np.round(arr / quantum)
        if not np.all(np.isfinite(q)) or np.abs(q).max() > 32767:
            raise DataError(f"{path}: values outside int16 x {quantum:g} (range {np.nanmin(arr):g} .. {np.nanmax(arr):g})", path=path)
        arr = q.astype(np.int16)
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64))
    if quantum is not None:
        img.header.set_slope_inter(quantum, 0.0)
    img.header.set_xyzt_units("mm", "sec")
    if step is not None and img.header["dim"][0] >= 4:
        zooms = list(img.header.get_zooms())
        zooms[3] = float(step)
        img.header.set_zooms(zooms)
    if description:
        img.header["descrip"] = description.encode()[:79]
    p = Path(path)
    p.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
    return p


def make_sample_series(scenario_path: str | Path, out_dir: str | Path, overrides: tuple[str, ...] = SAMPLE_OVERRIDES,
                       progress: bool = False) -> dict[str, Any]:
    """Run the scenario and write the sample series into ``out_dir`` (replaced); returns ``series.json``'s content."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scenario = load_scenario(scenario_path, list(overrides))
    result = run_twin(scenario, progress=progress, keep_frames=True, keep_images=True)
    tw = result.twin
    times = [t for t, _ in result.images]
    images = [im for _, im in result.images]
    (stack,) = write_series(out / "classic", images, times, tw.plan, tw.scanner_settings, baseline=tw.baseline_images)
    enh = write_enhanced_series(out / "enhanced" / "series.dcm", images, times, tw.plan, tw.scanner_settings, baseline=tw.baseline_images)
    # the true temperature on the images, dynamic by dynamic (the frames are at the acquisition times)
    if result.true_temperature is None or len(result.true_temperature) != len(images):
        raise RuntimeError(f"the twin kept {0 if result.true_temperature is None else len(result.true_temperature)} true frames for {len(images)} dynamics")
    base_t = np.asarray(tw.scanner.image_temperature(tw.baseline_truth), dtype=np.float32)
    frames = [base_t] * len(tw.baseline_images) + [np.asarray(tw.scanner.image_temperature(f), dtype=np.float32) for f in result.true_temperature]
    vol = np.stack(frames, axis=-1)  # (slices, rows, cols, t)
    order = list(stack.slices)
    vol = vol[order].transpose(2, 1, 0, 3)  # (cols, rows, slices, t) on the stack's slice order
    write_nifti_gz(out / "true_temperature.nii.gz", vol, stack.affine, "fus twin true T [C] on the images",
                   step=tw.scanner_settings.dynamic_period, quantum=TRUE_T_STEP)
    # the twin's ROIs on the images (what its interlocks watched): rois/<name>.nii.gz, label 1
    (out / "rois").mkdir()
    for name, mask in sorted(tw.image_rois.items()):
        write_nifti_gz(out / "rois" / f"{name}.nii.gz", np.asarray(mask, dtype=np.uint8)[order].transpose(2, 1, 0), stack.affine,
                       f"fus twin ROI {name}")
    # the voxels the twin's drift fit left out (heated or settling tissue, the skin): a replay
    # with --drift poly --exclude drift_exclude.nii.gz corrects the B0 drift as the twin did
    write_nifti_gz(out / "drift_exclude.nii.gz", np.asarray(tw.drift_exclude, dtype=np.uint8)[order].transpose(2, 1, 0), stack.affine,
                   "fus twin drift-fit exclusion")
    th = tw.thermometry.settings
    info = {
        "scenario": str(Path(scenario_path).name),
        "overrides": list(overrides),
        "seed": scenario.seed,
        "baseline_dynamics": stack.n_baseline,
        "dynamics": len(images) + stack.n_baseline,
        "dynamic_period_s": tw.scanner_settings.dynamic_period,
        "matrix_rows_cols": [tw.plan.rows, tw.plan.cols],
        "slices": len(tw.plan.slices),
        "pixel_mm": [float(v) * 1e3 for v in tw.plan.slices[0].spacing],
        "thickness_mm": tw.plan.slices[0].thickness * 1e3,
        "series_magnitude": stack.magnitude_series,
        "series_phase": stack.phase_series,
        "enhanced_series": enh.series_number,
        "noise_stored": float(tw.scanner.noise * stack.gain),
        "sigma_t_C": float(tw.scanner_settings.sigma_t),
        "echo_time_s": float(tw.scanner_settings.te),
        "b0_T": float(tw.scanner_settings.b0),
        "treatment": {k: result.summary[k] for k in ("target_max_C", "target_dose_fraction", "max_skin_C", "energy_J") if k in result.summary},
        "stops": [{k: s[k] for k in ("time_s", "reason", "roi", "value", "limit")} for s in result.summary["stops"]],
        "latency_s": float(tw.scanner_settings.latency),
        "rois": sorted(tw.image_rois),
        "drift": {"method": th.drift, "order": th.drift_order, "exclude": "drift_exclude.nii.gz"},
        "replay": f"fus replay {out.name}/classic -o OUT --baseline {stack.n_baseline} --noise {tw.scanner.noise * stack.gain:.6g} "
                  f"--drift {th.drift} --drift-order {th.drift_order} --exclude {out.name}/drift_exclude.nii.gz "
                  + " ".join(f"--roi {n}={out.name}/rois/{n}.nii.gz" for n in sorted(tw.image_rois)),
    }
    (out / "series.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("sample series: %d dynamics x %d slices of %dx%d in %s", info["dynamics"], info["slices"], tw.plan.rows, tw.plan.cols, out)
    return info
