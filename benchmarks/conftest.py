"""Benchmark support: record each timing with its amount of work, print rates and fus/numpy ratios.

Each benchmark calls :func:`record` (through the ``rate`` fixture) with a group, an implementation
name, the work done per call and the unit of that work. At the end of the session the terminal
summary prints, per group, the rate of each implementation and the ratio of each fus implementation
(name starting with ``fus``) to each other one (numpy, pydicom, dcm2niix, ...) measured in the same
run.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

_RESULTS: dict[str, dict[str, tuple[float, float, str]]] = defaultdict(dict)


@pytest.fixture
def rate(benchmark):
    """``rate(group, impl, work, unit, fn, *args)``: benchmark ``fn`` and record work / best time."""

    def run(group: str, impl: str, work: float, unit: str, fn, *args, rounds: int = 3, **kwargs):
        benchmark.group = group
        benchmark.extra_info.update({"work": work, "unit": unit})
        result = benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=rounds, iterations=1, warmup_rounds=1)
        best = benchmark.stats.stats.min
        _RESULTS[group][impl] = (work / best, best, unit)
        benchmark.extra_info[f"{unit}/s"] = work / best
        return result

    return run


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("fus rates (best of rounds) and ratios to numpy in the same run")
    for group, impls in _RESULTS.items():
        for impl, (r, best, unit) in sorted(impls.items()):
            tr.write_line(f"{group:28s} {impl:22s} {best * 1e3:10.2f} ms  {r:12.4g} {unit}/s")
        base = {k: v for k, v in impls.items() if not k.startswith("fus")}
        for impl, (r, _, _) in impls.items():
            if not impl.startswith("fus"):
                continue
            for bname, (br, _, _) in base.items():
                tr.write_line(f"{group:28s} ratio {impl} / {bname}: {r / br:.1f}x")
