"""Shared test fixtures: backends, reproducible fresh randomness, the shared data folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest

from fus.backend import cuda_status

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"



def require_data(path: Path) -> Path:
    """``path`` (shared real data), or a skip saying it is absent -- a failure under
    ``FUS_REQUIRE_DATA=1`` (set by ``.ci/run``: CI always has ``../shared``, and a skipped test
    there is a test that does not exist)."""
    if not path.exists():
        msg = f"shared data not found at {path} (../shared beside the checkout)"
        if os.environ.get("FUS_REQUIRE_DATA") == "1":
            pytest.fail(f"FUS_REQUIRE_DATA=1 but {msg}")
        pytest.skip(msg)
    return path


#: (source, arch, NVRTC version, cubin bytes) of each successful NVRTC compile, for the summary.
NVRTC_RESULTS: list[tuple[str, str, str, int]] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    ok, reason, _ = cuda_status()
    return [f"fus CUDA backend: {'available' if ok else 'not available'} ({reason})"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``FUS_REQUIRE_ALL_KERNELS=1`` (CI's emulated-device pass) every kernel of the launch
    table must have been launched through the CUDA backend at least once."""
    if os.environ.get("FUS_REQUIRE_ALL_KERNELS") != "1" or session.config.option.collectonly:
        return
    from fus.backend import _instances
    from fus.backend.signatures import KERNELS

    cuda = _instances.get("cuda")
    launched = set(getattr(cuda, "launched", ()))
    missing = sorted(set(KERNELS) - launched)
    if missing and session.testscollected and exitstatus == 0:
        session.config._fus_missing_kernels = missing  # type: ignore[attr-defined]
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter) -> None:
    missing = getattr(terminalreporter.config, "_fus_missing_kernels", None)
    if missing:
        terminalreporter.section("FUS_REQUIRE_ALL_KERNELS: kernels never launched through the CUDA backend")
        terminalreporter.write_line(", ".join(missing))
    if NVRTC_RESULTS:
        terminalreporter.section("NVRTC compile of kernels/ (GPU backend options)")
        for source, arch, version, size in NVRTC_RESULTS:
            terminalreporter.write_line(f"NVRTC {version}: {source} -> {arch}: OK ({size} bytes cubin)")


#: The default seed of the ``rng`` fixture: fixed, so that a CI failure reproduces as it is.
DEFAULT_SEED = 20261205


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A random generator per test, seeded with :data:`DEFAULT_SEED` (printed with the test id).

    ``FUS_TEST_SEED=N`` replays or changes the seed; ``FUS_TEST_SEED=random`` draws a fresh one
    per test (opt-in fuzzing; the seed printed on failure replays it).
    """
    value = os.environ.get("FUS_TEST_SEED", "").strip().lower()
    seed = secrets.randbits(32) if value == "random" else int(value) if value else DEFAULT_SEED
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
