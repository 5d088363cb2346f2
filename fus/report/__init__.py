"""Self-contained HTML report of a ``fus simulate`` or ``fus replay`` run, with its figures as PNG.

``write_report(run_dir)`` writes ``report.html`` (figures embedded as base64 PNG, inline CSS, no
script, no external link) and ``figures/*.png``; ``fus report RUN_DIR`` is the command line.
"""

from __future__ import annotations

from fus.report.html import write_report
from fus.report.load import RunData, load_run

__all__ = ["write_report", "load_run", "RunData"]
