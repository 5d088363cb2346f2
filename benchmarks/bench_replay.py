"""Replay ingest benchmark: DICOM images/s on the shared Siemens series, fus vs pydicom vs dcm2niix.

Work: the 144 classic Siemens Prisma images of ``../shared/data/dicom/siemens-prisma-gre``
(``mag``: 36 slices x 2 echoes, ``phase`` and ``phase-repeat``: 36 slices each; 64 x 64, each file
~118 kB, mostly private CSA headers). Every implementation reads every header and decodes every
pixel of those files once per round, in the same run:

``fus-read``
    :func:`fus.mr.dicom.load_series` of each folder (header pass, grouping, geometry, scaling
    rules) and :meth:`~fus.mr.dicom.Series.iter_dynamics` over all components and echoes
    (pixels read by offset and scaled to float32, phase in radians): what the replay pipeline
    ingests before any thermometry.
``pydicom-loop``
    The plain way, single-threaded: ``pydicom.dcmread(path).pixel_array`` per file (no scaling,
    no grouping, no geometry).
``dcm2niix``
    The reference converter (the ``dcm2niix`` PyPI package; not a fus dependency) run as a
    subprocess on the parent folder into a fresh temporary folder: it also sorts, checks
    geometry and writes uncompressed NIfTI + JSON sidecars. Skipped, with the reason, when the
    binary is not installed.

Target (issue 4): ``fus-replay`` (ingest + temperature) at least dcm2niix's images/s.

Run: ``pytest benchmarks/bench_replay.py`` (rates are printed at the end; the machine's load
moves absolute numbers, compare implementations within one run).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

import numpy as np

from fus.mr.baseline import Baseline
from fus.mr.dicom import load_series
from fus.mr.thermometry import Thermometry, ThermometrySettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom" / "siemens-prisma-gre"
FOLDERS = ("mag", "phase", "phase-repeat")
N_IMAGES = 144  # 72 magnitude (2 echoes) + 36 phase + 36 phase (repeat)
GROUP = "replay ingest siemens"
UNIT = "images"


@pytest.fixture(scope="module")
def files() -> list[Path]:
    if not DATA.is_dir():
        pytest.skip(f"shared real DICOM data not found at {DATA} (../shared beside the checkout)")
    out = sorted(p for sub in FOLDERS for p in (DATA / sub).iterdir() if p.is_file())
    assert len(out) == N_IMAGES, f"expected {N_IMAGES} files under {DATA}, found {len(out)}"
    return out


def fus_read() -> int:
    """Index, arrange and decode every image of the three series; returns the image count."""
    n = 0
    for sub in FOLDERS:
        series = load_series(DATA / sub)
        for dyn in series.iter_dynamics():
            n += sum(img.shape[0] for img in dyn.images.values())
    return n


def pydicom_loop(paths: list[Path]) -> int:
    """``dcmread`` + ``pixel_array`` per file, one thread."""
    n = 0
    for p in paths:
        n += pydicom.dcmread(p).pixel_array.ndim == 2
    return n


def dcm2niix_binary() -> str | None:
    """The dcm2niix executable: on PATH, or beside this Python (an unactivated venv)."""
    found = shutil.which("dcm2niix")
    if found:
        return found
    beside = Path(sys.executable).parent / "dcm2niix"
    return str(beside) if beside.is_file() else None


def test_ingest_fus_read(rate, files):
    n = rate(GROUP, "fus-read", N_IMAGES, UNIT, fus_read, rounds=7)
    assert n == N_IMAGES


def test_ingest_pydicom_loop(rate, files):
    n = rate(GROUP, "pydicom-loop", N_IMAGES, UNIT, pydicom_loop, files, rounds=3)
    assert n == N_IMAGES


def test_ingest_dcm2niix(rate, files, tmp_path):
    exe = dcm2niix_binary()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix; it is not a fus dependency)")
    counter = itertools.count()

    def convert() -> list[Path]:
        out = tmp_path / f"round{next(counter)}"
        out.mkdir()
        # -z n: uncompressed NIfTI (dcm2niix's fastest); -b y: BIDS sidecars (its default)
        subprocess.run([exe, "-z", "n", "-b", "y", "-o", str(out), str(DATA)], check=True, capture_output=True)
        return sorted(out.glob("*.nii"))

    written = rate(GROUP, "dcm2niix", N_IMAGES, UNIT, convert, rounds=3)
    assert len(written) == 4  # magnitude echo 1 and 2, phase, phase-repeat


# --------------------------------------------------------------------------------------------
def fus_replay() -> int:
    """Ingest the three series and compute PRF temperature of the repeat against the first phase
    map (magnitude from the field-map magnitude series, quadratic drift correction), as
    tests/test_replay.py does; returns the image count."""
    mag = load_series(DATA / "mag")
    p1 = load_series(DATA / "phase")
    p2 = load_series(DATA / "phase-repeat")
    m = mag.image("magnitude", mag.echoes[-1])[0]
    te = mag.echo_time(mag.echoes[-1]) - mag.echo_time(mag.echoes[0])
    z1 = (m * np.exp(1j * p1.image("phase")[0])).astype(np.complex64)
    z2 = (m * np.exp(1j * p2.image("phase")[0])).astype(np.complex64)
    noise = float(np.percentile(m, 5))
    th = Thermometry(Baseline(z1, noise), p1.b0, te, ThermometrySettings(drift="poly", drift_order=2, snr_min=30))
    r = th.process(z2, 60.0, noise)
    assert np.nanmedian(np.abs(r.delta_t)) < 0.5
    return mag.shape[0] * mag.shape[1] * len(mag.echoes) + 2 * p1.shape[1]


def test_ingest_fus_replay(rate, files):
    n = rate(GROUP, "fus-replay", N_IMAGES, UNIT, fus_replay, rounds=5)
    assert n == N_IMAGES
