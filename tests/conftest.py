"""Shared test fixtures: backends, reproducible fresh randomness, the shared data folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest

from fus.backend import cuda_status

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: (source, arch, NVRTC version, cubin bytes) of each successful NVRTC compile, for the summary.
NVRTC_RESULTS: list[tuple[str, str, str, int]] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    ok, reason, _ = cuda_status()
    return [f"fus CUDA backend: {'available' if ok else 'not available'} ({reason})"]


def pytest_terminal_summary(terminalreporter) -> None:
    if NVRTC_RESULTS:
        terminalreporter.section("NVRTC compile of kernels/ (GPU backend options)")
        for source, arch, version, size in NVRTC_RESULTS:
            terminalreporter.write_line(f"NVRTC {version}: {source} -> {arch}: OK ({size} bytes cubin)")


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A fresh random generator per test; the seed is printed so a failure can be replayed.

    Set ``FUS_TEST_SEED`` to replay a run.
    """
    seed = int(os.environ.get("FUS_TEST_SEED", secrets.randbits(32)))
    print(f"random seed for {request.node.nodeid}: {seed} (FUS_TEST_SEED={seed} replays it)")
    return np.random.default_rng(seed)


@pytest.fixture
def cpu_backend():
    """Run the test on the CPU backend, whatever FUS_BACKEND says."""
    import fus

    with fus.use("cpu") as b:
        yield b


@pytest.fixture
def cuda_backend():
    """The CUDA backend (a real device, or the emulated one with ``FUS_GPU_EMULATION=1``).

    Where neither can run, a skip that says why -- and a failure under ``FUS_REQUIRE_CUDA=1``
    (CI's emulated pass), where a skipped GPU test would be a test that does not exist.
    """
    ok, reason, _ = cuda_status()
    if not ok:
        if os.environ.get("FUS_REQUIRE_CUDA") == "1":
            pytest.fail(f"FUS_REQUIRE_CUDA=1 but the CUDA backend cannot run: {reason}")
        pytest.skip(f"no usable CUDA device: {reason}")
    import fus

    with fus.use("cuda") as b:
        yield b
