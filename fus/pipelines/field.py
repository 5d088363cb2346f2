"""The field pipeline (``fus field``): a transducer's pressure on a grid -> NIfTI with a JSON sidecar.

:func:`compute_field` focuses and scales the drive, computes the pressure on a regular grid
(:func:`fus.physics.field.pressure`) and, on request, its phase and the absorbed power density;
:func:`write_field` writes the result all or nothing (:class:`fus.pipelines.outputs.RunOutputs`);
:func:`run_field` does both, refusing an unusable output name before any work. SI units
throughout; coordinates in the transducer frame (origin at the geometric focus, +z along the
beam; a piston's frame has its origin at the piston centre).

Outputs (``OUT.nii.gz``):

* ``OUT.nii.gz``: pressure amplitude ``|p|`` [Pa], float32, affine in mm (scanner frame of the
  transducer's ``to_scanner``; the transducer frame for the presets);
* ``OUT_phase.nii.gz`` with ``phase=True``: ``arg p`` [rad];
* ``OUT_heat.nii.gz`` with ``heat=True``: absorbed power density ``Q = alpha_abs |p|^2 / (rho c)``
  [W/m^3];
* ``OUT.json``: frequency, acoustic power, surface velocity, medium, transducer summary, grid,
  backend, run time and the peak pressure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import fus
from fus.backend import asnumpy
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.pipelines.outputs import RunOutputs

__all__ = ["DEFAULT_POWER_W", "FieldResult", "compute_field", "field_output_paths", "run_field", "write_field"]

logger = logging.getLogger(__name__)

#: Acoustic power when neither a power nor a surface velocity is given [W].
DEFAULT_POWER_W = 1.0


@dataclass
class FieldResult:
    """What :func:`compute_field` returns.

    Attributes
    ----------
    magnitude : ndarray, float32, grid shape
        ``|p|`` [Pa].
    pressure : ndarray, complex64, or None
        ``p`` [Pa] (with ``phase=True``).
    heat : ndarray or None
        Absorbed power density Q [W/m^3] (with ``heat=True``).
    affine : ndarray, (4, 4)
        Voxel-to-scanner affine [mm].
    sidecar : dict
        Units, provenance and figures (JSON-ready).
    """

    magnitude: np.ndarray
    pressure: np.ndarray | None
    heat: np.ndarray | None
    affine: np.ndarray
    sidecar: dict[str, Any]


def _vector(name: str, value: Any) -> list[float] | None:
    """Three finite coordinates [m] as floats; None stays None."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.size != 3:
        raise InvalidParameterError(name, value, "must be 3 coordinates (x, y, z) [m]")
    return [finite_scalar(f"{name}[{i}]", x) for i, x in enumerate(arr.tolist())]


def _backend_facts(backend: Any) -> dict[str, Any]:
    try:
        d = backend.describe()
    except Exception as exc:  # pragma: no cover - describe is informational only
        return {"describe_error": str(exc)}
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool))}


def compute_field(
    transducer: Any,
    shape: Sequence[int],
    spacing: float | Sequence[float],
    *,
    medium: Any = "water",
    focus: Any = None,
    centre: Any = None,
    power: float | None = None,
    velocity: float | None = None,
    points_per_wavelength: float | None = None,
    far_field: bool = True,
    phase: bool = False,
    heat: bool = False,
    progress: bool = True,
    arguments: Mapping[str, Any] | None = None,
) -> FieldResult:
    """The pressure field of ``transducer`` on a regular grid, and its sidecar.

    Parameters
    ----------
    transducer : Transducer
    shape : 3 ints
        Grid size in points, each >= 1.
    spacing : float or 3 floats
        Grid spacing [m], > 0.
    medium : str, Medium, Tissue or None
        A medium word or ``.toml`` layer file (:func:`fus.physics.media.medium_from_spec`) or a
        medium object (:func:`fus.physics.media.as_medium`). Default water.
    focus : 3 floats, optional
        Focus target [m], transducer frame. Default: the geometric focus (the origin) of a
        focused transducer; an unfocused one is driven in phase.
    centre : 3 floats, optional
        Grid centre [m]. Default: the focus; for an unfocused transducer, on the axis with the
        grid starting one spacing in front of it.
    power : float, optional
        Total acoustic power [W] (default :data:`DEFAULT_POWER_W`); excludes ``velocity``.
    velocity : float, optional
        Peak element surface velocity [m/s].
    points_per_wavelength : float, optional
        Patch size ``lambda / N`` (default :data:`fus.physics.field.DEFAULT_POINTS_PER_WAVELENGTH`).
    far_field : bool
        Far-field element sources where accurate (default True).
    phase, heat : bool
        Also keep ``p`` / compute the absorbed power density Q.
    progress : bool
        Progress bar.
    arguments : mapping, optional
        Provenance of the request (the command-line arguments), stored in the sidecar.

    Returns
    -------
    FieldResult

    Raises
    ------
    InvalidParameterError
        Bad shape, spacing, coordinates, power or velocity (both given included), a focus behind
        the transducer, a grid too large for memory.
    """
    from fus.physics.drive import acoustic_power, scale_to_power, scale_to_velocity
    from fus.physics.field import DEFAULT_POINTS_PER_WAVELENGTH, focus_phases_in_medium, heat_source, pressure
    from fus.physics.field_checks import check_points_per_wavelength, focus_pressure, focus_sampling_warning, small_element_warning
    from fus.physics.grid import Grid
    from fus.physics.media import as_medium, medium_from_spec

    med = medium_from_spec(medium) if isinstance(medium, str) else as_medium(medium)
    src = med.source_medium
    box = Grid(shape, spacing)  # checks the shape and the spacing
    focus_m = _vector("focus", focus)
    if focus_m is None and transducer.radius_of_curvature is not None:
        focus_m = [0.0, 0.0, 0.0]
    centre_m = _vector("centre", centre)
    if centre_m is None:
        if focus_m is not None:
            centre_m = list(focus_m)
        else:  # unfocused piston: on axis, starting one spacing in front of it
            centre_m = [0.0, 0.0, (0.5 * (box.shape[2] - 1) + 1.0) * box.spacing[2]]
    grid = Grid.centred(box.shape, box.spacing, centre_m)

    if focus_m is not None:
        weights = focus_phases_in_medium(transducer, np.asarray(focus_m), med)
    else:
        weights = np.ones(transducer.n_elements, dtype=np.complex128)
    if power is not None and velocity is not None:
        raise InvalidParameterError("power/velocity", (power, velocity), "give one of them, not both")
    if velocity is not None:
        u = scale_to_velocity(transducer, weights, finite_scalar("velocity", velocity, positive=True))
    else:
        watts = DEFAULT_POWER_W if power is None else finite_scalar("power", power, positive=True)
        u = scale_to_power(transducer, weights, watts, src.density, src.sound_speed)
    ppw = DEFAULT_POINTS_PER_WAVELENGTH if points_per_wavelength is None else points_per_wavelength
    finite_scalar("points_per_wavelength", ppw, positive=True)
    check_points_per_wavelength(ppw)
    warnings = [w for w in (small_element_warning(transducer, src.sound_speed),) if w]

    t0 = time.perf_counter()
    p, info = pressure(
        transducer, u, grid, med,
        points_per_wavelength=ppw, far_field=far_field, progress=progress, return_info=True,
    )
    mag = asnumpy(abs(p)).astype(np.float32)
    p_host = asnumpy(p).astype(np.complex64) if phase else None
    q = asnumpy(heat_source(p, med, grid, frequency=transducer.frequency)) if heat else None
    elapsed = time.perf_counter() - t0
    peak = np.unravel_index(int(np.argmax(mag)), mag.shape)
    at_focus = None
    if focus_m is not None:  # the pressure at the focus point itself: is the grid's peak honest?
        at_focus = focus_pressure(transducer, u, focus_m, med, grid.spacing, points_per_wavelength=ppw, far_field=far_field)
        w = focus_sampling_warning(float(mag[peak]), at_focus, [v * 1e3 for v in grid.spacing])
        if w:
            warnings.append(w)
    for w in warnings:
        logger.warning(w)
    affine = grid.affine(transducer.to_scanner)
    backend = fus.get_backend()
    sidecar: dict[str, Any] = {"fus_version": fus.__version__}
    if arguments is not None:
        sidecar["arguments"] = dict(arguments)
    sidecar.update({
        "quantity": "pressure amplitude |p|",
        "units": {"magnitude": "Pa", "phase": "rad", "heat": "W/m^3", "affine": "mm"},
        "time_convention": "p(x, t) = Re{P(x) exp(i omega t)}",
        "frequency_MHz": transducer.frequency * 1e-6,
        "acoustic_power_W": acoustic_power(transducer, u, src.density, src.sound_speed),
        "surface_velocity_m_s": float(np.max(np.abs(u))),
        "focus_mm": None if focus_m is None else [v * 1e3 for v in focus_m],
        "medium": med.describe(transducer.frequency),
        "transducer": transducer.summary(),
        "grid": {**grid.describe(), "affine_mm": affine.tolist(),
                 "frame": "origin_mm / centre_mm: transducer frame; affine_mm: voxel -> scanner frame (transducer to_scanner)"},
        "frames": {"focus_mm": "transducer", "grid.origin_mm": "transducer", "grid.centre_mm": "transducer",
                   "peak_location_mm": "scanner", "grid.affine_mm": "voxel -> scanner"},
        "backend": {"name": backend.name, **_backend_facts(backend)},
        "field": info,
        "peak_pressure_Pa": float(mag[peak]),
        "focus_pressure_Pa": at_focus,
        "warnings": warnings,
        "peak_location_mm": (affine @ np.r_[np.asarray(peak, dtype=np.float64), 1.0])[:3].tolist(),
        "run_time_s": elapsed,
    })
    return FieldResult(magnitude=mag, pressure=p_host, heat=q, affine=affine, sidecar=sidecar)


def field_output_paths(output: str | Path, *, phase: bool = False, heat: bool = False, option: str = "-o") -> dict[str, Path]:
    """The files of a field run named ``OUT.nii[.gz]``: magnitude, sidecar, and phase / heat.

    Raises
    ------
    InvalidParameterError
        A name not ending in ``.nii.gz`` / ``.nii``, or nothing before the extension (named as
        ``option``).
    """
    p = Path(output)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            stem, suffix = name[: -len(ext)], ext
            break
    else:
        raise InvalidParameterError(option, str(output), "must end in .nii.gz or .nii")
    if not stem:
        raise InvalidParameterError(option, str(output), "needs a file name before the extension")
    paths = {"magnitude": p, "sidecar": p.with_name(stem + ".json")}
    if phase:
        paths["phase"] = p.with_name(stem + "_phase" + suffix)
    if heat:
        paths["heat"] = p.with_name(stem + "_heat" + suffix)
    return paths


def write_field(result: FieldResult, output: str | Path) -> dict[str, Path]:
    """Write ``result`` as ``output`` (``OUT.nii[.gz]``) and its siblings, all or nothing.

    The sidecar gets the ``files`` written; an earlier run's ``_phase`` / ``_heat`` files that
    this result does not have are removed. Returns the paths written.
    """
    paths = field_output_paths(output, phase=result.pressure is not None, heat=result.heat is not None)
    side = result.sidecar
    affine = result.affine
    stem = paths["sidecar"].stem
    suffix = paths["magnitude"].name[len(stem):]
    with RunOutputs(paths["magnitude"].parent) as out:
        out.nifti(paths["magnitude"].name, result.magnitude, affine, "fus field |p| [Pa]")
        files = {"magnitude": paths["magnitude"].name}
        if result.pressure is not None:
            out.nifti(paths["phase"].name, np.angle(result.pressure), affine, "fus field arg p [rad]")
            files["phase"] = paths["phase"].name
        if result.heat is not None:
            out.nifti(paths["heat"].name, result.heat, affine, "fus field Q [W/m^3]")
            files["heat"] = paths["heat"].name
        side["files"] = files
        out.commit(paths["sidecar"].name, side, stale=[f"{stem}_{kind}{suffix}" for kind in ("phase", "heat")])
    return paths


def run_field(output: str | Path, transducer: Any, shape: Sequence[int], spacing: Any, **options: Any) -> FieldResult:
    """:func:`compute_field` then :func:`write_field` to ``output``; an unusable output (a bad
    name, a folder that is a file) is refused before the field is computed.

    ``options`` are those of :func:`compute_field`.
    """
    paths = field_output_paths(output, phase=bool(options.get("phase")), heat=bool(options.get("heat")))
    RunOutputs(paths["magnitude"].parent)  # refuses an output inside a file before any work
    result = compute_field(transducer, shape, spacing, **options)
    write_field(result, output)
    return result
