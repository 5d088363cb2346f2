"""``fus info``: version, backend choice and why, CPU library build, CuPy / CUDA / NVRTC."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

import numpy as np

import fus
from fus.backend import auto_choice, cuda_status
from fus.backend.cpu import CpuBackend
from fus.backend.selftest import cuda_self_test
from fus.errors import FusError


def gather() -> dict[str, Any]:
    """Everything ``fus info`` reports, as a JSON-serialisable dict."""
    auto, why = auto_choice()
    report: dict[str, Any] = {
        "fus": fus.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "backend_auto": auto,
        "backend_auto_reason": why,
    }
    try:
        report["cpu"] = CpuBackend().describe()
    except FusError as exc:
        report["cpu"] = {"error": str(exc)}
    ok, reason, info = cuda_status()
    report["cuda"] = {"available": ok, "reason": reason, **info}
    if ok:
        report["cuda"]["self_test"] = cuda_self_test()
    return report


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="show version, backends and build facts")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = gather()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    lines = [
        f"fus {report['fus']}  (Python {report['python']}, numpy {report['numpy']}, {report['platform']})",
        f"backend auto -> {report['backend_auto']}: {report['backend_auto_reason']}",
    ]
    cpu = report["cpu"]
    if "error" in cpu:
        lines.append(f"cpu: UNAVAILABLE: {cpu['error']}")
    else:
        omp = "OpenMP" if cpu["openmp"] else "no OpenMP: single-threaded"
        lines += [
            f"cpu: {cpu['threads']} thread(s), {omp}, SIMD {cpu['simd_isa']} ({cpu['simd_lanes_float32']} float32 lanes)",
            f"cpu library: {cpu['library']}",
            f"cpu build: {cpu['build_flags']}",
        ]
    cu = report["cuda"]
    versions = ", ".join(f"{k} {cu[k]}" for k in ("cupy", "cuda_runtime", "cuda_driver", "nvrtc") if k in cu)
    lines.append(f"cuda: {'available' if cu['available'] else 'not available'}: {cu['reason']}")
    if versions:
        lines.append(f"cuda versions: {versions}")
    if "device" in cu:
        lines.append(f"cuda device: {cu['device']} (compute capability {cu.get('compute_capability', '?')})")
    test = cu.get("self_test")
    if test is not None:
        lines.append(f"cuda self-test: {'ok' if test['ok'] else 'FAILED'}: {test['detail']}")
    print("\n".join(lines))
    return 0 if test is None or test["ok"] else 1
