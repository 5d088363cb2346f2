"""``fus simulate``: a closed-loop treatment on the digital twin (controller + interlocks + scanner).

``fus simulate SCENARIO.toml -o OUT [--set KEY=VALUE ...]`` runs the scenario (see
:mod:`fus.pipelines.scenario`) through :func:`fus.pipelines.twin.run_twin` and writes, in ``OUT``:
``true_temperature.nii`` / ``true_dose.nii`` / ``true_max_temperature.nii`` (the bioheat grid),
``measured_temperature_s<i>.nii`` / ``measured_dose_s<i>.nii`` (per thermometry slice), ``log.csv``
(one row per dynamic) and ``summary.json`` (figures of merit, stops, faults; written last).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("fus.cli.simulate")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="closed-loop treatment on the digital twin: controller, interlocks, simulated scanner (NIfTI, CSV, JSON)",
        description=(
            "Run a closed-loop MRgFUS treatment scenario: bioheat truth, simulated MR thermometry, "
            "controller and safety interlocks every dynamic, injected faults. "
            "Example: fus simulate sample_data/scenario_hold.toml -o out --set model.absorption_scale=1.5"
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file (e.g. sample_data/scenario_hold.toml)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a scenario value, TOML syntax (repeatable): --set controller.p_max_W=30 --set faults.0.at_s=40",
    )
    p.add_argument("--dicom", action="store_true", help="also write what the scanner acquired as a DICOM series (OUT/dicom)")
    p.add_argument("--no-frames", action="store_true", help="write the final maps only (no 4-D temperature series)")
    p.add_argument("--gzip", action="store_true", help="write .nii.gz (slower) instead of .nii")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html (see fus report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fus.pipelines.outputs import RunOutputs
    from fus.pipelines.scenario import load_scenario
    from fus.pipelines.twin import run_twin
    from fus.pipelines.twin_report import write_outputs

    out_dir = Path(args.output)
    RunOutputs(out_dir)  # refuses an -o that is a file before any work
    scenario = load_scenario(args.scenario, args.overrides)
    result = run_twin(scenario, progress=not args.no_progress, keep_frames=not args.no_frames, keep_images=args.dicom)
    cmd = "fus " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["simulate"] else "fus simulate"
    write_outputs(result, out_dir, gzip=args.gzip, extra_sidecar={"command": cmd, "overrides": list(args.overrides)}, dicom=args.dicom)
    s = result.summary
    stops = ", ".join(f"{d['reason']} at {d['time_s']:.1f} s" for d in s["stops"]) or "none"
    print(
        f"{out_dir}: target max {s['target_max_C']:.2f} C, dose >= 240 CEM43 in {100 * s['target_dose_fraction']:.0f} % of the target; "
        f"skin max {s['max_skin_C']:.2f} C; energy {s['energy_J']:.0f} J; stops: {stops}; "
        f"{s['realtime_factor']:.1f}x real time on {s['backend']}"
    )
    if args.report:
        from fus.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0
