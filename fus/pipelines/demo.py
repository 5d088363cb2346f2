"""``fus demo``: the closed-loop bone ablation on the digital twin, a replay of the shipped DICOM
series, and a report of each, under one folder.

Layout of ``out_dir``:

``simulate/``  what ``fus simulate sample_data/scenario_ablation.toml --report`` writes (true and
               measured temperature and dose, ``log.csv``, ``summary.json``, ``report.html``)
``replay/``    what ``fus replay`` of ``sample_data/series/classic`` (auto-paired magnitude /
               phase, the twin's ROIs, baselines, noise and drift correction) writes, with
               ``report.html``
``index.html`` one page linking both reports, with the headline numbers of each

Nothing is fetched: the scenario, the phantom and the series ship with the package.
"""

from __future__ import annotations

import html
import json
import logging
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fus.mr.roi import parse_roi
from fus.mr.thermometry import ThermometrySettings
from fus.pipelines.outputs import RunOutputs
from fus.pipelines.replay import ReplayOptions, replay
from fus.pipelines.sample_series import sample_data_dir
from fus.pipelines.scenario import load_scenario
from fus.pipelines.twin import run_twin
from fus.pipelines.twin_report import write_outputs
from fus.report import write_report

__all__ = ["DemoResult", "run_demo", "sample_replay_options"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` wrote.

    Attributes
    ----------
    out_dir : Path
    index : Path
        ``index.html``, linking both reports.
    simulate_report, replay_report : Path
    simulate_summary, replay_summary : dict
        ``summary.json`` and ``replay.json``.
    seconds : dict str -> float
        Wall time of each step [s].
    """

    out_dir: Path
    index: Path
    simulate_report: Path
    replay_report: Path
    simulate_summary: dict[str, Any]
    replay_summary: dict[str, Any]
    seconds: dict[str, float]


def sample_replay_options(series_dir: Path) -> ReplayOptions:
    """How the shipped series is replayed: its baselines and noise, the twin's ROIs and its drift
    correction (order-1 polynomial outside ``drift_exclude.nii.gz``), all from ``series.json``."""
    info = json.loads((series_dir / "series.json").read_text())
    rois = [parse_roi(f"{name}={series_dir / 'rois' / (name + '.nii.gz')}") for name in info.get("rois", [])]
    drift = info.get("drift") or {"method": "none"}
    settings = ThermometrySettings(drift=drift["method"], drift_order=int(drift.get("order", 1)))
    exclude = [parse_roi(f"drift_exclude={series_dir / drift['exclude']}")] if drift["method"] == "poly" else []
    return ReplayOptions(baseline=int(info["baseline_dynamics"]), noise=float(info["noise_stored"]), rois=rois,
                         settings=settings, exclude=exclude)


def _index(out: Path, sim: dict[str, Any], rep: dict[str, Any]) -> Path:
    esc = html.escape
    stops = ", ".join(f"{s['reason']} at {s['time_s']:.1f} s" for s in sim.get("stops", [])) or "none"
    adv = rep.get("advisory") or {}
    first = adv.get("first_stop")
    rows = [
        ("simulate/report.html", "Closed-loop bone ablation on the digital twin", [
            ("scenario", "scenario", esc(str(sim.get("scenario", "")))),
            ("target maximum [C]", "target_max_C", f"{sim['target_max_C']:.2f}"),
            ("target with >= 240 CEM43 [%]", "target_dose_fraction", f"{100 * sim['target_dose_fraction']:.0f}"),
            ("energy [J]", "energy_J", f"{sim['energy_J']:.0f}"),
            ("stops", "stops", esc(stops)),
        ]),
        ("replay/report.html", "Replay of the shipped DICOM series", [
            ("series", "series.name", esc(str(rep["series"]["name"]))),
            ("chosen", "series.choice", esc(str(rep["series"].get("choice", "")))),
            ("dynamics", "series.dynamics", str(rep["series"]["dynamics"])),
            ("lesion [voxels]", "lesion_voxels", str(rep["lesion_voxels"])),
            ("interlock advisory", "advisory.first_stop", esc(f"stop at dynamic {first['dynamic']}: {first['reason']}" if first else "no trip")),
        ]),
    ]
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>fus demo</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:60em} td{padding:2px 8px} h2{margin-top:1.5em}</style>",
             "</head><body><h1>fus demo</h1>"]
    for link, title, facts in rows:
        parts.append(f"<h2><a href='{link}'>{esc(title)}</a></h2><table>")
        parts.extend(f"<tr><td>{esc(label)}</td><td data-key='{key}'>{v}</td></tr>" for label, key, v in facts)
        parts.append("</table>")
    parts.append("</body></html>\n")
    p = out / "index.html"
    p.write_text("".join(parts))
    return p


def run_demo(out_dir: str | Path = "fus_demo", *, progress: bool = True) -> DemoResult:
    """Run the demo (see the module docstring) into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created; earlier demo results in it are replaced).
    progress : bool
        Progress bars (tqdm) for the twin and the replay.

    Raises
    ------
    DataError
        The sample data is not installed with the package.
    InvalidParameterError
        ``out_dir`` is a file.
    """
    out = Path(out_dir)
    RunOutputs(out)  # refuses a file before any work
    data = sample_data_dir()
    seconds: dict[str, float] = {}
    t0 = _time.perf_counter()
    scenario = load_scenario(data / "scenario_ablation.toml", [])
    result = run_twin(scenario, progress=progress, keep_frames=True)
    write_outputs(result, out / "simulate", extra_sidecar={"command": "fus demo (fus simulate scenario_ablation.toml)", "overrides": []})
    sim_report = write_report(out / "simulate")
    seconds["simulate"] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    series_dir = data / "series"
    if progress:
        from tqdm import tqdm

        with tqdm(unit="dyn", desc="replay") as bar:
            rep = replay(series_dir / "classic", out / "replay", sample_replay_options(series_dir), progress=bar)
    else:
        rep = replay(series_dir / "classic", out / "replay", sample_replay_options(series_dir))
    rep_report = write_report(out / "replay")
    seconds["replay"] = _time.perf_counter() - t0
    index = _index(out, result.summary, rep.summary)
    log.info("demo in %s: simulate %.1f s, replay %.1f s", out, seconds["simulate"], seconds["replay"])
    return DemoResult(out, index, sim_report, rep_report, dict(result.summary), rep.summary, seconds)
