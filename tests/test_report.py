"""fus.report: the HTML report of a simulate run and of a replay run (numbers from the JSON, figures
that decode and are not blank, no script or link), and the ``fus report`` / ``--report`` CLI."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from fus.cli.main import main
from fus.errors import DataError, InvalidParameterError
from fus.report import load_run, write_report

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "sample_data" / "scenario_ablation.toml"

# a short, coarse ablation (a few s) whose body-maximum limit trips, so the stops table has a trip
SMALL = [
    "--set", "duration_s=30", "--set", "transducer.field_spacing_mm=3.0", "--set", "interlocks.max_temperature_C=44",
    "--set", "scanner.plan={matrix=[48,36],spacing=1.5e-3,thickness=3e-3}",  # not square: catches swapped rows / cols
]


class _Page(HTMLParser):
    """Collects the ``data-key`` elements' text, the ``<img>`` sources and the tags seen."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}
        self.imgs: list[str] = []
        self.tags: set[str] = set()
        self._open: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if "data-key" in a:
            self._open.append((tag, a["data-key"], []))

    def handle_data(self, data):
        for _, _, buf in self._open:
            buf.append(data)

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, key, buf = self._open.pop()
            assert key not in self.keys, f"data-key {key} twice"
            self.keys[key] = "".join(buf)


def _parse(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    return text, page


def _lookup(meta: dict, key: str):
    v = meta
    for part in key.split("."):
        v = v[part]
    return v


def _check_keys(page: _Page, meta: dict) -> None:
    assert page.keys, "no data-key on the page"
    for key, shown in page.keys.items():
        value = _lookup(meta, key)
        if value is None:
            assert shown == "", (key, shown)
        elif isinstance(value, bool):
            assert shown == ("true" if value else "false"), (key, shown)
        elif isinstance(value, (int, float)):
            assert math.isclose(float(shown), float(value), rel_tol=1e-3, abs_tol=6e-3), (key, shown, value)
        else:
            assert shown == str(value), (key, shown, value)


def _check_page(report: Path) -> tuple[str, _Page]:
    assert report.is_file()
    text, page = _parse(report)
    assert "<script" not in text.lower()
    # nothing fetched: no address anywhere outside the embedded images (base64 may spell "http")
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text).lower()
    assert "script" not in page.tags
    pngs = sorted((report.parent / "figures").glob("*.png"))
    assert pngs
    assert len(page.imgs) == len(pngs) == text.count("<img")
    assert all(src.startswith("data:image/png;base64,") for src in page.imgs)
    import matplotlib.image as mpimg

    for p in pngs:
        img = mpimg.imread(str(p))
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50, p
        assert float(np.std(img)) > 0, p
        colours = np.unique(img[..., :3].reshape(-1, 3), axis=0)
        assert len(colours) > 1, p
    return text, page


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_sim")
    assert main(["simulate", str(SCENARIO), "-o", str(out), "--no-progress", "--dicom", "--report", *SMALL]) == 0
    return out


@pytest.fixture(scope="module")
def replay_run(sim_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_replay")
    argv = ["replay", str(sim_run / "dicom"), "-o", str(out), "--series", "11", "--magnitude-series", "10", "--baseline", "4", "--no-progress"]
    assert main(argv) == 0
    return out


def test_simulate_report(sim_run):
    # written by `fus simulate --report`
    text, page = _check_page(sim_run / "report.html")
    summary = json.loads((sim_run / "summary.json").read_text())
    _check_keys(page, summary)
    for key in ("target_max_C", "max_skin_C", "energy_J", "scenario", "command"):
        assert key in page.keys
    data = load_run(sim_run)
    assert data.notes == [], data.notes  # magnitude, dose and temperature of every slice fit
    assert all(s.magnitude is not None and s.temperature is not None and s.dose is not None for s in data.slices)
    names = {p.name for p in (sim_run / "figures").glob("*.png")}
    assert {"overlay.png", "tmax.png", "curves.png", "power.png"} <= names
    assert summary["stops"], "the small scenario is meant to trip an interlock"
    for stop in summary["stops"]:
        assert stop["reason"] in text
    with open(sim_run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[-1]["reason"] in text and rows[-1]["time_s"] in text


def test_replay_report(replay_run, tmp_path):
    out = tmp_path / "rep"
    report = write_report(replay_run, out)
    assert report == out / "report.html"
    text, page = _check_page(report)
    meta = json.loads((replay_run / "replay.json").read_text())
    _check_keys(page, meta)
    assert "series.name" in page.keys and "lesion_voxels" in page.keys
    data = load_run(replay_run)
    s = data.slices[0]
    assert s.temperature.shape[:2] == tuple(meta["series"]["shape_slices_rows_cols"][1:])  # (rows, cols)
    if (replay_run / "magnitude.nii.gz").is_file():
        assert s.magnitude is not None and s.magnitude.shape == s.temperature.shape[:2]
    assert not [n for n in data.notes if "shape" in n], data.notes
    assert (out / "figures" / "overlay.png").is_file() and (out / "figures" / "curves.png").is_file()


def test_replay_report_optional_files(replay_run, tmp_path):
    """Without the optional files: notes, no crash; with a hand-written advisory.csv: its table and power figure."""
    run = tmp_path / "run"
    shutil.copytree(replay_run, run)
    for name in ("magnitude.nii.gz", "advisory.csv", "roi_stats.csv", "tmax.nii.gz", "lesion.nii.gz"):
        (run / name).unlink(missing_ok=True)
    text, page = _check_page(write_report(run))
    assert "tmax not found" in text and "lesion not found" in text
    meta = json.loads((run / "replay.json").read_text())
    dyn = meta["dynamics"]
    with open(run / "advisory.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dynamic", "time_s", "command", "power_W", "reason", "detail"])
        for i, d in enumerate(dyn):
            stop = i == len(dyn) // 2
            w.writerow([d["index"], d["time_s"], "stop" if stop else "allow", 0 if stop else 30, "skin_temperature" if stop else "control", "<b>x</b> & y"])
    text, page = _check_page(write_report(run))
    assert (run / "figures" / "power.png").is_file()
    assert "skin_temperature" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt; &amp; y" in text  # escaped
    _check_keys(page, meta)


def test_simulate_report_without_optional_files(sim_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sim_run, run, ignore=shutil.ignore_patterns("dicom", "figures", "report.html", "true_*", "magnitude_s*"))
    text, page = _check_page(write_report(run, tmp_path / "out"))
    assert "true_max_temperature not found" in text
    data = load_run(run)
    assert data.kind == "simulate" and len(data.slices) >= 1 and data.curves


def test_not_a_run(tmp_path):
    with pytest.raises(InvalidParameterError) as err:
        write_report(tmp_path)
    assert err.value.name == "run_dir" and str(tmp_path) in str(err.value)
    assert main(["report", str(tmp_path)]) == 1
    with pytest.raises(InvalidParameterError, match="does not exist"):
        write_report(tmp_path / "absent")
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(DataError, match="summary.json"):
        write_report(tmp_path)


def test_cli_report(replay_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", str(replay_run), "-o", str(out)]) == 0
    assert str(out / "report.html") in capsys.readouterr().out
    _check_page(out / "report.html")


def test_replay_cli_report_flag(sim_run, tmp_path):
    out = tmp_path / "rp"
    argv = ["replay", str(sim_run / "dicom"), "-o", str(out), "--series", "11", "--magnitude-series", "10", "--baseline", "4", "--no-progress", "--report"]
    assert main(argv) == 0
    _check_page(out / "report.html")


def test_long_tables_are_cut():
    from fus.report.html import MAX_TABLE_ROWS, _table

    text = _table([{"dynamic": i, "reason": "<x>"} for i in range(MAX_TABLE_ROWS + 50)], what="dynamics")
    assert text.count("<tr>") == MAX_TABLE_ROWS + 1  # header + the rows kept
    assert f"First {MAX_TABLE_ROWS} of {MAX_TABLE_ROWS + 50} dynamics" in text and "<x>" not in text
