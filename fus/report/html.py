"""The report page: one self-contained HTML file (inline CSS, figures as base64 PNG, no script,
no external link).

Every number on the page is taken from the run's JSON or CSV files, never typed again: each
headline value sits in an element with ``data-key="<key>"`` (dotted for nested keys of
``replay.json``, e.g. ``series.b0_T``) holding the value formatted by :func:`fmt`.
"""

from __future__ import annotations

import base64
import html
import logging
import time
from pathlib import Path
from typing import Any

from fus.report.figures import FigureFile, write_figures
from fus.report.load import RunData, load_run

__all__ = ["write_report", "render_page", "fmt", "MAX_TABLE_ROWS", "SIMULATE_KEYS", "REPLAY_KEYS"]

log = logging.getLogger(__name__)

#: Tables longer than this are cut (the page says so).
MAX_TABLE_ROWS = 200

#: Headline values of a simulate run: (summary.json key, label, unit).
SIMULATE_KEYS = (
    ("scenario", "scenario", ""),
    ("seed", "seed", ""),
    ("duration_s", "duration", "s"),
    ("dynamics", "dynamics", ""),
    ("target_max_C", "target max temperature (true)", "C"),
    ("target_dose_fraction", "target fraction with dose >= 240 CEM43 (true)", ""),
    ("time_to_target_s", "time to target", "s"),
    ("overshoot_C", "overshoot", "C"),
    ("rms_error_C", "RMS error in the hold", "C"),
    ("max_temperature_C", "max temperature in the body", "C"),
    ("max_skin_C", "max skin temperature", "C"),
    ("max_near_field_C", "max near-field temperature", "C"),
    ("max_cord_C", "max cord temperature", "C"),
    ("max_cord_CEM43", "max cord dose", "CEM43 min"),
    ("energy_J", "acoustic energy", "J"),
    ("goal_time_s", "goal reached at", "s"),
    ("backend", "backend", ""),
    ("setup_s", "setup time", "s"),
    ("wall_time_s", "wall time", "s"),
    ("realtime_factor", "simulated s per wall s", ""),
)

#: Headline values of a replay run: (replay.json key, dotted for nested, label, unit).
REPLAY_KEYS = (
    ("series.name", "series", ""),
    ("series.vendor", "vendor", ""),
    ("series.magnitude_series", "magnitude series", ""),
    ("series.dynamics", "dynamics", ""),
    ("series.echo_time_s", "echo time", "s"),
    ("series.b0_T", "B0", "T"),
    ("parameters.baseline_dynamics", "baseline dynamics", ""),
    ("parameters.drift", "drift correction", ""),
    ("parameters.noise", "noise sigma per channel", "a.u."),
    ("parameters.prf_scale_C_per_rad", "PRF scale", "C/rad"),
    ("parameters.lesion_dose_CEM43", "lesion dose threshold", "CEM43 min"),
    ("parameters.lesion_temperature_C", "lesion temperature threshold", "C"),
    ("lesion_voxels", "lesion voxels", ""),
    ("series.choice", "series chosen", ""),
    ("advisory.limits", "advisory limits", ""),
    ("advisory.stop_dynamics", "dynamics the advisory would stop", ""),
    ("advisory.first_stop.time_s", "first advisory stop at", "s"),
    ("advisory.first_stop.reason", "first advisory stop reason", ""),
    ("backend", "backend", ""),
    ("run_time_s", "run time", "s"),
)

_CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.stop td { background: #fde8e8; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; max-width: 1000px; }
td[data-null]::after { content: "n/a"; color: #999; }
code { background: #f4f4f4; padding: 1px 4px; } .note { color: #8a5300; font-size: 0.9em; }
"""


def _get(meta: dict, key: str) -> tuple[bool, Any]:
    v: Any = meta
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return False, None
        v = v[part]
    return True, v


def fmt(key: str, value: Any) -> str:
    """``value`` as shown: temperatures (``*_C``) with 2 decimals, other floats with 4
    significant digits, integers and text as they are, None as an empty string (the page's CSS
    shows it as n/a)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}" if key.endswith("_C") else f"{value:.4g}"
    return str(value)


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _headline(run: RunData) -> str:
    keys = SIMULATE_KEYS if run.kind == "simulate" else REPLAY_KEYS
    rows = []
    for key, label, unit in keys:
        present, v = _get(run.meta, key)
        if not present or isinstance(v, (dict, list)):
            continue
        cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        cls = " data-null" if v is None else cls  # shown as n/a by the CSS; the text stays empty
        rows.append(f'<tr><th>{_e(label)}</th><td{cls} data-key="{_e(key)}">{_e(fmt(key, v))}</td><td>{_e(unit)}</td></tr>')
    return '<table class="headline"><tr><th>quantity</th><th>value</th><th>unit</th></tr>' + "".join(rows) + "</table>"


def _table(rows: list[dict], columns: list[str] | None = None, what: str = "rows", stop_key: str | None = None) -> str:
    """A table of dicts (values escaped as read); at most :data:`MAX_TABLE_ROWS` rows."""
    if not rows:
        return f"<p>No {_e(what)}.</p>"
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows[:MAX_TABLE_ROWS]:
        stop = stop_key is not None and str(r.get(stop_key, "")).strip().lower() in ("stop", "1", "true")
        cells = "".join(f"<td>{_e(_cell(r.get(c)))}</td>" for c in columns)
        body.append(f'<tr class="stop">{cells}</tr>' if stop else f"<tr>{cells}</tr>")
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = f'<p class="note">First {MAX_TABLE_ROWS} of {len(rows)} {_e(what)} shown; the file has them all.</p>'
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{note}"


def _cell(v: Any) -> str:
    if isinstance(v, (dict, list)):
        import json

        return json.dumps(v)
    return "" if v is None else str(v)


def _decisions(run: RunData) -> str:
    if run.kind == "simulate":
        want = ["dynamic", "time_s", "target_C", "reference_C", "power_W", "applied_power_W", "reason", "stop", "detail", "il_reason"]
        rows = [r for r in run.rows]
        cols = [c for c in want if rows and c in rows[0]]
        return (
            "<h2>Controller decisions (log.csv)</h2><p>One row per dynamic: what the controller commanded "
            "(power_W) and what was applied after the interlocks (applied_power_W) [W], and why.</p>"
            + _table(rows, cols, "dynamics", stop_key="stop")
        )
    out = "<h2>Advisory (advisory.csv)</h2>"
    if run.advisory:
        want = ["dynamic", "time_s", "command", "power_W", "reason", "detail"]
        cols = [c for c in want if c in run.advisory[0]] + [c for c in run.advisory[0] if c not in want]
        out += "<p>What the interlocks and the controller would have commanded at each dynamic [W].</p>"
        out += _table(run.advisory, cols, "dynamics", stop_key="command")
    else:
        out += '<p class="note">advisory.csv not present: no advisory of this replay.</p>'
    dyn = [d for d in run.meta.get("dynamics") or [] if isinstance(d, dict)]
    out += "<h2>Dynamics (replay.json)</h2>" + _table(dyn, None, "dynamics")
    return out


def _stops(run: RunData) -> str:
    if run.kind != "simulate":
        return ""
    m = run.meta
    out = "<h2>Stops and interlock trips (summary.json stops)</h2>"
    out += _table([d for d in m.get("stops") or [] if isinstance(d, dict)], ["time_s", "reason", "roi", "value", "limit", "dynamic", "detail"], "stops")
    for key, title in (("holds", "Holds"), ("faults", "Injected faults")):
        items = [d for d in m.get(key) or [] if isinstance(d, dict)]
        if items:
            out += f"<h2>{title} (summary.json {key})</h2>" + _table(items, None, key)
    return out


def _figures(figs: list[FigureFile]) -> str:
    out = []
    for f in figs:
        b64 = base64.b64encode(f.png).decode("ascii")
        out.append(
            f'<figure><img src="data:image/png;base64,{b64}" alt="{_e(f.name)}">'
            f"<figcaption>{_e(f.name)}: {_e(f.caption)}</figcaption></figure>"
        )
    return "<h2>Figures</h2>" + "".join(out) if out else "<h2>Figures</h2><p>No figures.</p>"


def render_page(run: RunData, figs: list[FigureFile]) -> str:
    """The HTML text of the report of ``run`` with the figures ``figs`` embedded."""
    m = run.meta
    if run.kind == "simulate":
        title = f"fus simulate report: {m.get('scenario', run.run_dir.name)}"
        cmd_key = "command"
    else:
        title = f"fus replay report: {(m.get('series') or {}).get('name', run.run_dir.name)}"
        cmd_key = "command" if "command" in m else "source"
    present, cmd = _get(m, cmd_key)
    cmd_html = f'<p>{_e(cmd_key)}: <code data-key="{_e(cmd_key)}">{_e(cmd)}</code></p>' if present else ""
    notes = ""
    if run.notes:
        notes = "<h2>Notes</h2><ul>" + "".join(f'<li class="note">{_e(n)}</li>' for n in run.notes) + "</ul>"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p>Run kind: <b>{_e(run.kind)}</b>; folder <code>{_e(run.run_dir)}</code></p>',
        cmd_html,
        "<h2>Headline figures</h2>",
        _headline(run),
        _figures(figs),
        _decisions(run),
        _stops(run),
        notes,
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``OUT/report.html`` and ``OUT/figures/*.png`` for a ``fus simulate`` or ``fus replay`` run.

    Parameters
    ----------
    run_dir : str or Path
        The run folder (holds ``summary.json`` or ``replay.json``).
    out_dir : str or Path, optional
        Where the report goes (default: ``run_dir``); created.

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    InvalidParameterError
        ``run_dir`` is not a run folder.
    DataError
        Its JSON is unreadable.
    """
    t0 = time.perf_counter()
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = write_figures(run, out / "figures")
    page = out / "report.html"
    tmp = page.with_name(page.name + ".tmp")
    tmp.write_text(render_page(run, figs), encoding="utf-8")
    tmp.replace(page)
    log.info("report of %s (%s run, %d figures) in %.2f s -> %s", run.run_dir, run.kind, len(figs), time.perf_counter() - t0, page)
    return page
