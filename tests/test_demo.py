"""``fus demo``: the closed loop and the replay of the shipped series, each with its report, under
one folder; the index page shows the numbers of summary.json / replay.json (not re-typed)."""

from __future__ import annotations

import json
import re

from fus.cli.main import main


def test_demo_writes_both_runs_and_their_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "index.html") in printed
    sim = json.loads((out / "simulate" / "summary.json").read_text())
    rep = json.loads((out / "replay" / "replay.json").read_text())
    for d in ("simulate", "replay"):
        page = (out / d / "report.html").read_text()
        assert page.count("<img") >= 3 and "<script" not in page.lower()
    # the shipped series was paired by itself and replayed with the twin's ROIs
    assert rep["series"]["choice"].startswith("paired phase series 11")
    assert {"skin", "target", "near_field", "cord"} <= set(rep["advisory"]["rois"])
    assert (out / "replay" / "advisory.csv").read_text().count("\n") == rep["series"]["dynamics"] - rep["parameters"]["baseline_dynamics"] + 1
    # the closed loop reached the ablation goal on its defaults
    assert sim["target_dose_fraction"] == 1.0 and sim["max_skin_C"] < 42.0
    index = (out / "index.html").read_text()
    shown = dict(re.findall(r"data-key='([^']+)'>([^<]*)<", index))
    assert float(shown["target_max_C"]) == round(sim["target_max_C"], 2)
    assert float(shown["energy_J"]) == round(sim["energy_J"])
    assert int(shown["lesion_voxels"]) == rep["lesion_voxels"]
    assert int(shown["series.dynamics"]) == rep["series"]["dynamics"]
    for link in re.findall(r"href='([^']+)'", index):
        assert (out / link).is_file(), link
