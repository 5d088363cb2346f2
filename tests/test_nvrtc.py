"""Every kernel source compiles with NVRTC for sm_80 and sm_90 with the GPU backend's own options.

NVRTC needs no GPU: the ``test`` extra installs CuPy (whose NVRTC bindings the GPU backend uses)
and the ``nvidia-cuda-nvrtc`` wheel. Where they are missing the test skips with the reason, unless
``FUS_REQUIRE_NVRTC=1`` (set by ``.ci/run``), where a missing NVRTC is a failure: in CI this test
must run.
"""

from __future__ import annotations

import os

import pytest

from conftest import NVRTC_RESULTS
from fus.backend.cuda import nvrtc_options
from fus.backend.signatures import KERNELS
from fus.backend.sources import kernel_dir, kernel_source

ARCHS = ["sm_80", "sm_90"]
SOURCES = sorted(p.name for p in kernel_dir().glob("*.cu"))


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception as exc:  # ImportError, or the NVRTC shared library not found
        reason = f"NVRTC is not available ({exc.__class__.__name__}: {exc}); pip install -e '.[test]'"
        if os.environ.get("FUS_REQUIRE_NVRTC") == "1":
            pytest.fail(f"FUS_REQUIRE_NVRTC=1 but {reason}")
        pytest.skip(reason)


def test_every_source_is_shipped_and_in_the_table():
    assert SOURCES, f"no kernel sources in {kernel_dir()}"
    tabled = {sig.source for sig in KERNELS.values()}
    assert tabled <= set(SOURCES), f"table names sources that are not shipped: {tabled - set(SOURCES)}"
    assert set(SOURCES) <= tabled, f"kernel sources with no launch-table entry: {set(SOURCES) - tabled}"


@pytest.mark.nvrtc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", SOURCES)
def test_compiles_with_nvrtc(source, arch):
    nvrtc = _nvrtc()
    text = kernel_source(source)
    prog = nvrtc.createProgram(text, source, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(nvrtc_options(arch)))
        except Exception as exc:
            log = nvrtc.getProgramLog(prog)
            pytest.fail(f"NVRTC {nvrtc.getVersion()} failed on {source} for {arch}: {exc}\n{log}")
        log = nvrtc.getProgramLog(prog).strip()
        assert "warning" not in log.lower(), f"NVRTC warnings for {source} ({arch}):\n{log}"
        cubin = nvrtc.getCUBIN(prog)
        assert len(cubin) > 0
        # every extern "C" kernel of this source that the launch table names is in the binary
        for sig in KERNELS.values():
            if sig.source == source:
                assert sig.name.encode() in cubin, f"kernel {sig.name} missing from the {arch} binary"
        NVRTC_RESULTS.append((source, arch, ".".join(map(str, nvrtc.getVersion())), len(cubin)))
    finally:
        nvrtc.destroyProgram(prog)
