"""The report in a real browser: headless Chromium loads ``report.html`` offline and draws every
figure where the page puts it.

Each figure is checked by rendering the page twice, once as written and once with that figure's
PNG replaced by a white PNG of the same size (the layout is unchanged): the pixels that differ
must form one box of the figure's aspect ratio, filled with drawing. A figure that does not decode
(a broken-image icon), is blank or sits elsewhere fails.

Needs Chromium (Debian package ``chromium``; ``.ci/run`` installs it with apt where apt exists and
sets ``FUS_REQUIRE_CHROMIUM=1``, which turns a missing browser into a failure).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fus.cli.main import main  # noqa: E402
from fus.pipelines.sample_series import sample_data_dir  # noqa: E402

SMALL = [
    "--set", "duration_s=30", "--set", "transducer.field_spacing_mm=3.0",
    "--set", "scanner.plan={matrix=[48,36],spacing=1.5e-3,thickness=3e-3}",
]
_IMG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
WIDTH = 1280


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    if os.environ.get("FUS_REQUIRE_CHROMIUM") == "1":
        pytest.fail("FUS_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)")
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def _shot(exe: str, page: Path, png: Path, height: int) -> np.ndarray:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", f"--window-size={WIDTH},{height}", f"--screenshot={png}", page.resolve().as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and png.is_file(), run.stderr[-2000:]
    return mpimg.imread(png)[..., :3]


def _white_like(b64: str) -> str:
    shape = mpimg.imread(io.BytesIO(base64.b64decode(b64))).shape
    buf = io.BytesIO()
    mpimg.imsave(buf, np.ones(shape[:2] + (3,)), format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _check_page(exe: str, report: Path, tmp: Path) -> None:
    text = report.read_text()
    figures = _IMG.findall(text)
    assert len(figures) >= 3
    height = 9000
    ref = _shot(exe, report, tmp / "ref.png", height)
    assert ref.std() > 0.05  # the page itself is drawn
    for k, b64 in enumerate(figures):
        blanked = tmp / f"blank{k}.html"
        blanked.write_text(text.replace(b64, _white_like(b64), 1))
        img = _shot(exe, blanked, tmp / f"blank{k}.png", height)
        diff = np.abs(ref - img).max(axis=-1) > 0.02
        assert diff.any(), f"figure {k} drew nothing"
        rows, cols = np.nonzero(diff)
        box_h, box_w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        natural = mpimg.imread(io.BytesIO(base64.b64decode(b64))).shape
        # drawn at its aspect ratio (the box is the drawing's extent: within the white margins)
        assert abs(box_w / box_h - natural[1] / natural[0]) < 0.25 * natural[1] / natural[0], (k, box_w, box_h, natural)
        assert diff[rows.min():rows.max() + 1, cols.min():cols.max() + 1].mean() > 0.05, f"figure {k} is nearly blank"
        assert rows.max() < height - 1, f"figure {k} runs past the screenshot"
    # in page order: each figure below the previous one
    tops = []
    for k in range(len(figures)):
        img = mpimg.imread(tmp / f"blank{k}.png")[..., :3]
        tops.append(int(np.nonzero((np.abs(ref - img).max(axis=-1) > 0.02).any(axis=1))[0][0]))
    assert tops == sorted(tops)


def test_replay_report_renders(tmp_path):
    exe = _chromium()
    series = sample_data_dir() / "series"
    out = tmp_path / "replay"
    assert main(["replay", str(series / "classic"), "-o", str(out), "--baseline", "4", "--noise", "198.198",
                 "--roi", f"target={series / 'rois' / 'target.nii.gz'}", "--no-progress", "--report"]) == 0
    _check_page(exe, out / "report.html", tmp_path)


def test_simulate_report_renders(tmp_path):
    exe = _chromium()
    out = tmp_path / "sim"
    assert main(["simulate", str(sample_data_dir() / "scenario_ablation.toml"), "-o", str(out), "--no-progress", "--report", *SMALL]) == 0
    _check_page(exe, out / "report.html", tmp_path)
