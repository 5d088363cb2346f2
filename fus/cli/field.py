"""``fus field``: the pressure field of a transducer on a grid, written as NIfTI with a JSON sidecar.

Units at this edge: millimetres, MHz, W and m/s; everything inside is SI. Coordinates (``--focus``,
``--center``) are in the transducer frame: origin at the geometric focus, +z along the beam (a
piston's frame has its origin at the piston centre).

Outputs (``-o OUT.nii.gz``):

* ``OUT.nii.gz``: pressure amplitude ``|p|`` [Pa], float32, affine in mm (scanner frame of the
  transducer's ``to_scanner``; the transducer frame for the presets);
* ``OUT_phase.nii.gz`` with ``--phase``: ``arg p`` [rad];
* ``OUT_heat.nii.gz`` with ``--heat``: absorbed power density ``Q = alpha_abs |p|^2 / (rho c)``
  [W/m^3];
* ``OUT.json``: frequency, acoustic power, surface velocity, medium, transducer summary, grid,
  backend, run time and the peak pressure.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import fus
from fus.errors import InvalidParameterError
from fus.physics.transducer_presets import BOWL_DEFAULTS, DEFAULT_FREQUENCY_MHZ, PISTON_DEFAULTS
from fus.pipelines.outputs import RunOutputs

logger = logging.getLogger("fus.cli.field")

DEFAULT_POWER_W = 1.0


def add_transducer_arguments(p: argparse.ArgumentParser) -> None:
    """``--transducer --roc --aperture --frequency``, read back by :func:`build_transducer`."""
    p.add_argument(
        "--transducer", required=True, metavar="{cap256,bowl,piston}|FILE",
        help="preset name or an element table (.csv / .json)",
    )
    p.add_argument(
        "--roc", type=float, metavar="MM", help=f"bowl radius of curvature [mm] (default {BOWL_DEFAULTS['roc']:g})"
    )
    p.add_argument(
        "--aperture", type=float, metavar="MM",
        help=f"bowl aperture / piston diameter [mm] "
        f"(defaults {BOWL_DEFAULTS['aperture']:g} / {PISTON_DEFAULTS['aperture']:g})",
    )
    p.add_argument(
        "--frequency", type=float, metavar="MHZ",
        help=f"drive frequency [MHz] (default: the file's, or {DEFAULT_FREQUENCY_MHZ:g} for presets)",
    )


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "field",
        help="pressure field of a transducer on a grid -> NIfTI (|p|, phase, Q) + JSON sidecar",
        description=(
            "Compute the Rayleigh-Sommerfeld pressure field of a transducer on a regular grid "
            "(coordinates in mm, transducer frame: origin at the geometric focus, +z along the beam) "
            "and write |p| [Pa] as NIfTI with a JSON sidecar."
        ),
    )
    add_transducer_arguments(p)
    p.add_argument("--focus", metavar="X,Y,Z", help="focus target [mm] (default: the geometric focus, if any)")
    drive = p.add_mutually_exclusive_group()
    drive.add_argument(
        "--power", type=float, metavar="W", help=f"total acoustic power [W] (default {DEFAULT_POWER_W:g})"
    )
    drive.add_argument("--velocity", type=float, metavar="M_S", help="peak element surface velocity [m/s]")
    p.add_argument("--grid", required=True, metavar="NXxNYxNZ", help="grid size in points, e.g. 64x64x64")
    p.add_argument("--spacing", required=True, metavar="MM", help="grid spacing [mm]: one value or DX,DY,DZ")
    p.add_argument(
        "--center", metavar="X,Y,Z",
        help="grid centre [mm] (default: the focus; for an unfocused piston, on axis just in front of it)",
    )
    p.add_argument(
        "--medium", default="water", metavar="water|tissue|NAME|FILE.toml", help="propagation medium (default water)"
    )
    p.add_argument(
        "--points-per-wavelength", type=float, default=None, metavar="N", help="patch size lambda/N (default 3)"
    )
    p.add_argument(
        "--no-far-field", action="store_true", help="always integrate over patches (no far-field element sources)"
    )
    p.add_argument("--phase", action="store_true", help="also write OUT_phase.nii.gz (arg p, rad)")
    p.add_argument("--heat", action="store_true", help="also write OUT_heat.nii.gz (Q, W/m^3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, metavar="OUT.nii.gz", help="output NIfTI (.nii or .nii.gz)")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------ parsing
def _floats(option: str, text: str | None, n: int | tuple[int, ...]) -> list[float] | None:
    if text is None:
        return None
    counts = (n,) if isinstance(n, int) else n
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) not in counts or not all(math.isfinite(v) for v in vals):
        shape = " or ".join("1 number" if c == 1 else f"{c} comma-separated numbers" for c in counts)
        raise InvalidParameterError(option, text, f"must be {shape} [mm]")
    return vals


def parse_grid(text: str) -> tuple[int, int, int]:
    """``"64x64x32"`` -> ``(64, 64, 32)``; each >= 1."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        vals = tuple(int(v) for v in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3 or any(v < 1 for v in vals):
        raise InvalidParameterError("--grid", text, "must be NXxNYxNZ with positive integers, e.g. 64x64x64")
    return vals  # type: ignore[return-value]


def _positive(option: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise InvalidParameterError(option, value, "must be > 0")
    return float(value)


def build_transducer(args: argparse.Namespace) -> Any:
    """The transducer named by ``--transducer`` with ``--roc/--aperture/--frequency`` applied."""
    from fus.physics.transducer_presets import transducer_from_spec

    return transducer_from_spec(args.transducer, roc_mm=args.roc, aperture_mm=args.aperture, frequency_mhz=args.frequency)


def _output_paths(out: str, phase: bool, heat: bool) -> dict[str, Path]:
    p = Path(out)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            stem, suffix = name[: -len(ext)], ext
            break
    else:
        raise InvalidParameterError("-o", out, "must end in .nii.gz or .nii")
    if not stem:
        raise InvalidParameterError("-o", out, "needs a file name before the extension")
    paths = {"magnitude": p, "sidecar": p.with_name(stem + ".json")}
    if phase:
        paths["phase"] = p.with_name(stem + "_phase" + suffix)
    if heat:
        paths["heat"] = p.with_name(stem + "_heat" + suffix)
    return paths


# ------------------------------------------------------------------------------ run
def compute(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``fus field`` does except writing; returns arrays and the sidecar dict."""
    from fus.physics.drive import acoustic_power, scale_to_power, scale_to_velocity
    from fus.physics.field import (
        DEFAULT_POINTS_PER_WAVELENGTH,
        focusing_phases,
        heat_source,
        pressure,
    )
    from fus.physics.grid import Grid
    from fus.physics.media import medium_from_spec

    t = build_transducer(args)
    medium = medium_from_spec(args.medium)
    src = medium.source_medium
    shape = parse_grid(args.grid)
    sp = _floats("--spacing", args.spacing, (1, 3))
    spacing = [v * 1e-3 for v in (sp * 3 if len(sp) == 1 else sp)]  # type: ignore[operator]
    for v in spacing:
        _positive("--spacing", v * 1e3)
    focus_mm = _floats("--focus", args.focus, 3)
    if focus_mm is None and t.radius_of_curvature is not None:
        focus_mm = [0.0, 0.0, 0.0]
    centre_mm = _floats("--center", args.center, 3)
    if centre_mm is None:
        if focus_mm is not None:
            centre_mm = list(focus_mm)
        else:  # unfocused piston: on axis, starting one spacing in front of it
            centre_mm = [0.0, 0.0, (0.5 * (shape[2] - 1) + 1.0) * spacing[2] * 1e3]
    grid = Grid.centred(shape, spacing, [v * 1e-3 for v in centre_mm])

    if focus_mm is not None:
        weights = focusing_phases(t, np.asarray(focus_mm) * 1e-3, medium)
    else:
        weights = np.ones(t.n_elements, dtype=np.complex128)
    power = _positive("--power", args.power)
    velocity = _positive("--velocity", args.velocity)
    if velocity is not None:
        u = scale_to_velocity(t, weights, velocity)
    else:
        u = scale_to_power(t, weights, power if power is not None else DEFAULT_POWER_W, src.density, src.sound_speed)
    ppw = args.points_per_wavelength if args.points_per_wavelength is not None else DEFAULT_POINTS_PER_WAVELENGTH
    _positive("--points-per-wavelength", ppw)

    t0 = time.perf_counter()
    p, info = pressure(
        t, u, grid, medium,
        points_per_wavelength=ppw,
        far_field=not args.no_far_field,
        progress=not args.no_progress,
        return_info=True,
    )
    mag = fus.asnumpy(abs(p)).astype(np.float32)
    phase = fus.asnumpy(p).astype(np.complex64) if args.phase else None
    heat = fus.asnumpy(heat_source(p, medium, grid, frequency=t.frequency)) if args.heat else None
    elapsed = time.perf_counter() - t0
    peak = np.unravel_index(int(np.argmax(mag)), mag.shape)
    affine = grid.affine(t.to_scanner)
    backend = fus.get_backend()
    sidecar: dict[str, Any] = {
        "fus_version": fus.__version__,
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "quantity": "pressure amplitude |p|",
        "units": {"magnitude": "Pa", "phase": "rad", "heat": "W/m^3", "affine": "mm"},
        "time_convention": "p(x, t) = Re{P(x) exp(i omega t)}",
        "frequency_MHz": t.frequency * 1e-6,
        "acoustic_power_W": acoustic_power(t, u, src.density, src.sound_speed),
        "surface_velocity_m_s": float(np.max(np.abs(u))),
        "focus_mm": focus_mm,
        "medium": medium.describe(t.frequency),
        "transducer": t.summary(),
        "grid": {**grid.describe(), "affine_mm": affine.tolist(), "frame": "scanner (transducer to_scanner)"},
        "backend": {"name": backend.name, **_backend_facts(backend)},
        "field": info,
        "peak_pressure_Pa": float(mag[peak]),
        "peak_location_mm": (affine @ np.r_[np.asarray(peak, dtype=np.float64), 1.0])[:3].tolist(),
        "run_time_s": elapsed,
    }
    return {"magnitude": mag, "phase": phase, "heat": heat, "affine": affine, "sidecar": sidecar}


def _backend_facts(backend: Any) -> dict[str, Any]:
    try:
        d = backend.describe()
    except Exception as exc:  # pragma: no cover - describe is informational only
        return {"describe_error": str(exc)}
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool))}


def run(args: argparse.Namespace) -> int:
    paths = _output_paths(args.output, args.phase, args.heat)
    folder = paths["magnitude"].parent
    RunOutputs(folder)  # refuses an -o inside a file before the field is computed
    result = compute(args)
    side = result["sidecar"]
    affine = result["affine"]
    stem = paths["sidecar"].stem
    suffix = paths["magnitude"].name[len(stem):]
    with RunOutputs(folder) as out:
        out.nifti(paths["magnitude"].name, result["magnitude"], affine, "fus field |p| [Pa]")
        files = {"magnitude": paths["magnitude"].name}
        if result["phase"] is not None:
            out.nifti(paths["phase"].name, np.angle(result["phase"]), affine, "fus field arg p [rad]")
            files["phase"] = paths["phase"].name
        if result["heat"] is not None:
            out.nifti(paths["heat"].name, result["heat"], affine, "fus field Q [W/m^3]")
            files["heat"] = paths["heat"].name
        side["files"] = files
        # an earlier run's _phase / _heat files that this run does not write go
        out.commit(paths["sidecar"].name, side, stale=[f"{stem}_{kind}{suffix}" for kind in ("phase", "heat")])
    print(
        f"{paths['magnitude']}: peak |p| {side['peak_pressure_Pa'] / 1e6:.4g} MPa at "
        f"({', '.join(f'{v:.2f}' for v in side['peak_location_mm'])}) mm; "
        f"{side['acoustic_power_W']:.4g} W, {side['run_time_s']:.2f} s on {side['backend']['name']}"
    )
    return 0

