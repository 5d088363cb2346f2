"""``fus replay``: offline PRF thermometry of a DICOM series -> temperature, sigma_T, dose, lesion."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from tqdm import tqdm

from fus.mr.roi import parse_roi
from fus.mr.thermometry import ThermometrySettings
from fus.pipelines.replay import ReplayOptions, replay

log = logging.getLogger(__name__)


def _series_arg(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="PRF thermometry of a DICOM series: temperature, sigma_T, dose, lesion maps (NIfTI + JSON + CSV)",
        description="Replay a DICOM magnitude + phase (or real + imaginary) series offline. Coordinates of ROIs are "
        "world (RAS) mm of the images' affine: sphere:X,Y,Z,R or box:X0,Y0,Z0,X1,Y1,Z1, optionally NAME=..., or a "
        "label NIfTI on the image grid.",
    )
    p.add_argument("dir", help="folder with the DICOM files")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--series", type=_series_arg, default=None, help="SeriesNumber or SeriesInstanceUID (default: the only one)")
    p.add_argument("--magnitude-series", type=_series_arg, default=None, help="separate magnitude series for a phase-only series")
    p.add_argument("--echo", type=int, default=None, help="echo number (default: longest TE with phase)")
    p.add_argument(
        "--te", type=float, default=None, metavar="MS",
        help="PRF echo time [ms] instead of the header's (for echo-difference phase, e.g. Siemens field maps: TE2 - TE1)",
    )
    p.add_argument("--baseline", type=int, default=1, metavar="N", help="first N dynamics averaged as baseline (default 1)")
    p.add_argument("--baseline-library", action="store_true", help="keep the N baseline dynamics as a library; each dynamic uses the best-matching one")
    p.add_argument("--drift", choices=["none", "roi", "poly"], default="none", help="drift correction (default none)")
    p.add_argument("--drift-order", type=int, default=1, choices=[0, 1, 2], help="polynomial order for --drift poly")
    p.add_argument("--drift-roi", action="append", default=[], metavar="SPEC", help="reference ROI for --drift roi (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="SPEC", help="heated region left out of --drift poly (repeatable)")
    p.add_argument("--roi", action="append", default=[], metavar="SPEC", help="ROI for the per-dynamic statistics CSV (repeatable)")
    p.add_argument("--alpha", type=float, default=-0.01, metavar="PPM_PER_C", help="PRF coefficient (default -0.01 ppm/C)")
    p.add_argument("--phase-sign", type=int, choices=[1, -1], default=1, help="phase convention of the scanner (default +1)")
    p.add_argument("--body-temp", type=float, default=37.0, metavar="C", help="baseline temperature (default 37 C)")
    p.add_argument("--noise", type=float, default=None, help="noise sigma per channel (default: estimated from two dynamics)")
    p.add_argument("--snr-min", type=float, default=5.0, help="voxels below this SNR are not measured (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html (see fus report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = ThermometrySettings(
        alpha_ppm=args.alpha,
        phase_sign=args.phase_sign,
        body_temp=args.body_temp,
        drift=args.drift,
        drift_order=args.drift_order,
        snr_min=args.snr_min,
    )
    options = ReplayOptions(
        series=args.series,
        magnitude_series=args.magnitude_series,
        echo=args.echo,
        echo_time=None if args.te is None else args.te * 1e-3,
        baseline=args.baseline,
        baseline_library=args.baseline_library,
        noise=args.noise,
        settings=settings,
        rois=[parse_roi(s, f"roi{i + 1}") for i, s in enumerate(args.roi)],
        drift_roi=[parse_roi(s, f"drift_roi{i + 1}") for i, s in enumerate(args.drift_roi)],
        exclude=[parse_roi(s, f"exclude{i + 1}") for i, s in enumerate(args.exclude)],
    )
    with tqdm(unit="dyn", desc="replay", disable=args.no_progress) as bar:
        result = replay(args.dir, args.out, options, progress=bar)
    s = result.summary
    if s["series"]["choice"] not in ("given", "the only series"):
        print(f"series: {s['series']['choice']}")
    print(
        f"{s['series']['name']}: {s['series']['dynamics']} dynamics, B0 {s['series']['b0_T']:.4f} T, "
        f"TE {s['series']['echo_time_s'] * 1e3:.2f} ms, {s['parameters']['prf_scale_C_per_rad']:.3f} C/rad, "
        f"noise {s['parameters']['noise']:.4g} ({s['parameters']['noise_method']}); lesion {s['lesion_voxels']} voxels; "
        f"{s['run_time_s']:.2f} s -> {result.out_dir}"
    )
    if args.report:
        from fus.report import write_report

        print(f"report: {write_report(result.out_dir)}")
    return 0
