"""One check of a real GPU: the ``cuda`` tests and the GPU benchmarks, written to one JSON file.

Run on a machine with an NVIDIA device, in an environment where fus is installed with its
``test`` and ``bench`` extras (``benchmarks/gpu_check.sh`` is the entry point). Writes: the device
and versions (``fus info --json``, including its self-test launch), each ``cuda`` test's outcome
(a skip is a failure here: the device is meant to be present), and each benchmark's best time and
rate with the fus / numpy ratios of the same run. Exit status 0 only when every test passed.

Usage: ``python benchmarks/gpu_check.py OUT.json [--tests-timeout S] [--bench-timeout S]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> dict:
    t = time.time()
    try:
        res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        return {"returncode": res.returncode, "seconds": round(time.time() - t, 1), "tail": (res.stdout + res.stderr)[-4000:]}
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return {"returncode": "timeout", "seconds": round(time.time() - t, 1), "tail": out[-4000:]}


def _junit(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            el = tc.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                detail = (el.get("message") or "")[:500]
                break
        else:
            detail = ""
        cases.append({"test": f"{tc.get('classname')}::{tc.get('name')}", "outcome": outcome, "seconds": float(tc.get("time", 0)), "detail": detail})
    return cases


def _benchmarks(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for b in json.loads(path.read_text()).get("benchmarks", []):
        info = b.get("extra_info", {})
        unit = info.get("unit")
        rows.append({"group": b.get("group"), "name": b.get("name"), "best_s": b["stats"]["min"], "unit": unit, "rate_per_s": info.get(f"{unit}/s")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--tests-timeout", type=float, default=240)
    ap.add_argument("--bench-timeout", type=float, default=200)
    ap.add_argument("--emulated", action="store_true", help="check the emulated device instead (CI runs the script so)")
    ap.add_argument("--no-bench", action="store_true", help="tests only")
    a = ap.parse_args()
    env = dict(os.environ, FUS_REQUIRE_CUDA="1", FUS_REQUIRE_ALL_KERNELS="1")
    if a.emulated:
        env["FUS_GPU_EMULATION"] = "1"
    else:
        env.pop("FUS_GPU_EMULATION", None)
    info = subprocess.run([sys.executable, "-m", "fus.cli.main", "info", "--json"], cwd=REPO, env=env, capture_output=True, text=True)
    try:
        report: dict = {"info": json.loads(info.stdout)}
    except json.JSONDecodeError:
        report = {"info": {"error": (info.stdout + info.stderr)[-2000:]}}
    with tempfile.TemporaryDirectory() as tmp:
        xml, bench = Path(tmp) / "tests.xml", Path(tmp) / "bench.json"
        for wavefront in ("0", "1"):
            env["FUS_BIOHEAT_GPU_WAVEFRONT"] = wavefront
            sel = ["-m", "cuda"] if wavefront == "0" else ["-m", "cuda", "-k", "bioheat"]
            env["FUS_REQUIRE_ALL_KERNELS"] = "1" if wavefront == "0" else "0"
            run = _run([sys.executable, "-m", "pytest", *sel, "-p", "no:cacheprovider", f"--junitxml={xml}", "-q"], env, a.tests_timeout)
            report[f"tests_wavefront_{wavefront}"] = {**run, "cases": _junit(xml)}
        env["FUS_BIOHEAT_GPU_WAVEFRONT"] = "1"
        run = {"returncode": "not run", "seconds": 0, "tail": ""} if a.no_bench else _run([sys.executable, "-m", "pytest", "benchmarks/bench_rayleigh.py", "benchmarks/bench_bioheat.py", "benchmarks/bench_field.py", "-p", "no:cacheprovider", f"--benchmark-json={bench}", "-q", "-k", "not bone_phantom"], env, a.bench_timeout)
        report["benchmarks"] = {**run, "results": _benchmarks(bench)}
    a.out.write_text(json.dumps(report, indent=2))
    passed = all(
        report[k]["returncode"] == 0 and report[k]["cases"] and all(c["outcome"] == "passed" for c in report[k]["cases"])
        for k in ("tests_wavefront_0", "tests_wavefront_1")
    )
    print(f"gpu_check: {'PASSED' if passed else 'FAILED'}; results in {a.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
