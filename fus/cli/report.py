"""``fus report``: a self-contained HTML report of a ``fus simulate`` or ``fus replay`` run.

``fus report RUN_DIR [-o OUT]`` writes ``OUT/report.html`` (figures embedded, no script, no
external link) and ``OUT/figures/*.png``; ``OUT`` defaults to ``RUN_DIR``. See :mod:`fus.report`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger("fus.cli.report")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="HTML report of a simulate or replay run: figures (temperature, dose, ROI curves, power), decisions, stops",
        description=(
            "Write a self-contained HTML page (and PNG figures) of a run folder written by fus simulate "
            "(summary.json) or fus replay (replay.json). Example: fus report out_ablation"
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="output folder of fus simulate or fus replay")
    p.add_argument("-o", "--output", default=None, metavar="OUT", help="where report.html and figures/ go (default RUN_DIR)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fus.report import write_report

    path = write_report(args.run_dir, args.output)
    print(f"report: {path}")
    return 0
