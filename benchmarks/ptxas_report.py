"""Registers and spills of every kernel's sm_90 build, from ``nvcc --ptxas-options=-v``.

Usage: ``python benchmarks/ptxas_report.py [--arch sm_90]``. Needs ``nvcc`` (a CUDA toolkit; no GPU).
The sources are compiled with the GPU backend's own NVRTC options where nvcc understands them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fus.backend.sources import kernel_dir, kernel_source

LINE = re.compile(r"Function properties for (\S+)|Used (\d+) registers|(\d+) bytes spill stores, (\d+) bytes spill loads")


def report(arch: str) -> int:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("nvcc not found: install the CUDA toolkit to see registers and spills", file=sys.stderr)
        return 1
    print(f"{'source':16s} {'kernel':18s} {'arch':6s} {'regs':>5s} {'spill st':>9s} {'spill ld':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted(kernel_dir().glob("*.cu")):
            path = Path(tmp) / src.name
            path.write_text(kernel_source(src.name))
            cmd = [nvcc, "-x", "cu", f"-arch={arch}", "--std=c++17", "-ftz=true", "--ptxas-options=-v", "-c", str(path), "-o", str(Path(tmp) / "k.o")]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                return res.returncode
            name, regs, spills = None, None, (None, None)
            for line in res.stderr.splitlines():
                m = LINE.search(line)
                if not m:
                    continue
                if m.group(1):
                    name = m.group(1)
                elif m.group(3):
                    spills = (m.group(3), m.group(4))
                elif m.group(2):
                    regs = m.group(2)
                    print(f"{src.name:16s} {name or '?':18s} {arch:6s} {regs:>5s} {spills[0] or '?':>9s} {spills[1] or '?':>9s}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="sm_90")
    sys.exit(report(ap.parse_args().arch))
