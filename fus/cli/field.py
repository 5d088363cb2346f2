"""``fus field``: the pressure field of a transducer on a grid, written as NIfTI with a JSON sidecar.

Units at this edge: millimetres, MHz, W and m/s; everything inside is SI. Coordinates (``--focus``,
``--center``) are in the transducer frame: origin at the geometric focus, +z along the beam (a
piston's frame has its origin at the piston centre). The work and the files are
:func:`fus.pipelines.field.run_field`'s (see :mod:`fus.pipelines.field` for the outputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fus.checks import finite_scalar
from fus.pipelines.options import add_transducer_arguments, build_transducer, millimetres, parse_grid
from fus.physics.field_checks import check_points_per_wavelength
from fus.pipelines.field import DEFAULT_POWER_W, run_field


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


def _positive(option: str, value: float | None) -> float | None:
    return None if value is None else finite_scalar(option, value, positive=True)


def run(args: argparse.Namespace) -> int:
    shape = parse_grid(args.grid)
    sp = millimetres("--spacing", args.spacing, (1, 3))
    for v in sp:  # type: ignore[union-attr]
        _positive("--spacing", v * 1e3)
    result = run_field(
        args.output,
        build_transducer(args),
        shape,
        sp * 3 if len(sp) == 1 else sp,  # type: ignore[arg-type, operator]
        medium=args.medium,
        focus=millimetres("--focus", args.focus, 3),
        centre=millimetres("--center", args.center, 3),
        power=_positive("--power", args.power),
        velocity=_positive("--velocity", args.velocity),
        points_per_wavelength=None if args.points_per_wavelength is None
        else check_points_per_wavelength(_positive("--points-per-wavelength", args.points_per_wavelength), "--points-per-wavelength"),
        far_field=not args.no_far_field,
        phase=args.phase,
        heat=args.heat,
        progress=not args.no_progress,
        arguments={k: v for k, v in vars(args).items() if k != "func"},
    )
    side = result.sidecar
    print(
        f"{Path(args.output)}: peak |p| {side['peak_pressure_Pa'] / 1e6:.4g} MPa at "
        f"({', '.join(f'{v:.2f}' for v in side['peak_location_mm'])}) mm; "
        f"{side['acoustic_power_W']:.4g} W, {side['run_time_s']:.2f} s on {side['backend']['name']}"
    )
    return 0
