"""``fus heat``: open-loop sonication of a phantom: field -> heat source -> Pennes -> CEM43.

Units at this edge: mm, MHz, W, s; SI inside. Coordinates (``--focus``) are in the transducer
frame (origin at the geometric focus, +z along the beam), the frame the phantom file uses. The
work and the files are :func:`fus.pipelines.heat.run_heat`'s (see :mod:`fus.pipelines.heat` for
the steps and the outputs: temperature and dose series, maxima, Q, labels, ``rois.csv``,
``heat.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fus.checks import finite_scalar
from fus.physics.bioheat_state import check_safety
from fus.pipelines.options import add_transducer_arguments, build_transducer, millimetres
from fus.pipelines.heat import DEFAULT_OUTPUT_INTERVAL_S, run_heat


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
        "--refine-focus", action="store_true",
        help="with --field-spacing: compute the focal region again at the phantom's spacing (the focal peak as at full resolution)",
    )
    p.add_argument(
        "--safety", type=float, default=None, metavar="F",
        help="time step as a fraction of the stable limit, in (0, 1] (default 0.5; larger is faster and less accurate: halve it to check that the rise and the dose converge)",
    )
    p.add_argument("--gzip", action="store_true", help="write .nii.gz (slower) instead of .nii")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    power = finite_scalar("--power", args.power, nonnegative=True)
    duration = finite_scalar("--duration", args.duration, positive=True)
    cooling = finite_scalar("--cooling", args.cooling, nonnegative=True)
    interval = finite_scalar("--output-interval", args.output_interval, positive=True)
    fs = None if args.field_spacing is None else finite_scalar("--field-spacing", args.field_spacing, positive=True)
    res = run_heat(
        Path(args.output),
        args.phantom,
        build_transducer(args),
        power=power,
        duration=duration,
        cooling=cooling,
        duty_cycle=args.duty_cycle,
        focus=millimetres("--focus", args.focus, 3),
        output_interval=interval,
        field_spacing=None if fs is None else fs * 1e-3,
        refine_focus=args.refine_focus,
        safety=None if args.safety is None else check_safety(args.safety, "--safety"),
        gzip=args.gzip,
        progress=not args.no_progress,
        provenance={"command": "fus " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["heat"] else "fus heat"},
    )
    side = res.sidecar
    tgt = side["roi_peaks"].get("target", {})
    t = side["timings_s"]
    print(
        f"{Path(args.output)}: target max {tgt.get('max_temperature_C', float('nan')):.2f} C, "
        f"{tgt.get('max_dose_CEM43_min', float('nan')):.4g} CEM43; field {t['field']:.1f} s, bioheat {t['bioheat']:.1f} s "
        f"({res.bioheat.info['n_steps']} steps) on {side['backend']}"
    )
    return 0
