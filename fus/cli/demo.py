"""``fus demo``: the bone-metastasis closed loop on the twin, a replay of the shipped DICOM series,
and a report of each, under one folder (default ``fus_demo``). See :mod:`fus.pipelines.demo`."""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger("fus.cli.demo")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the bone ablation closed loop and replay the shipped DICOM series; write both reports",
        description=(
            "The main job on its built-in default: the closed-loop periosteal ablation of a bone metastasis on the "
            "digital twin (sample_data/scenario_ablation.toml), then an offline replay of the shipped Siemens-style "
            "DICOM thermometry series, each with an HTML report. Example: fus demo -o fus_demo"
        ),
    )
    p.add_argument("-o", "--output", default="fus_demo", metavar="OUT", help="output folder (default fus_demo)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fus.pipelines.demo import run_demo

    r = run_demo(args.output, progress=not args.no_progress)
    s, q = r.simulate_summary, r.replay_summary
    stops = ", ".join(f"{d['reason']} at {d['time_s']:.1f} s" for d in s["stops"]) or "none"
    print(
        f"closed loop: target max {s['target_max_C']:.2f} C, >= 240 CEM43 in {100 * s['target_dose_fraction']:.0f} % "
        f"of the target, energy {s['energy_J']:.0f} J, stops: {stops} ({r.seconds['simulate']:.1f} s)"
    )
    print(f"replay: {q['series']['name']}, {q['series']['dynamics']} dynamics, lesion {q['lesion_voxels']} voxels ({r.seconds['replay']:.1f} s)")
    print(f"reports: {r.simulate_report}\n         {r.replay_report}\nopen {r.index}")
    return 0
