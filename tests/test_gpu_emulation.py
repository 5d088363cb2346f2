"""The emulated CUDA device: its barriers, its strictness, and the kernels' parameter lists.

The emulated device runs the kernels' ``FUS_GPU`` branches on the CPU (see
``fus/backend/emulation.py``); CI runs every ``cuda``-marked test on it. These tests check that it
catches what a GPU would hide or hang on -- a barrier in divergent code, a missing barrier, a wait
that never ends, a launch with the wrong block size, a Python float passed to a kernel -- and that
its CuPy stand-in fails where CuPy fails.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fus
from fus.backend.emulation import EmulatedDevice, emulation_library
from fus.backend.signatures import KERNELS
from fus.errors import KernelLaunchError

REPO = Path(__file__).resolve().parents[1]
HOST = REPO / "kernels" / "host"
FAULTS = Path(__file__).resolve().parent / "emulation" / "faults.cu"
TSAN_RUN = Path(__file__).resolve().parent / "emulation" / "tsan_run.py"


def _cxx() -> str:
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        pytest.fail(f"no C++ compiler ({cxx}): fus cannot be built without one either")
    return cxx


def _build_faults(out: Path, tsan: bool) -> Path:
    flags = ["-std=c++17", "-fPIC", "-shared", "-pthread", "-O1", "-g"] + (["-fsanitize=thread"] if tsan else [])
    cmd = [_cxx(), *flags, "-include", str(HOST / "gpu_emulation.hpp"), f"-I{REPO / 'kernels'}", "-x", "c++", str(FAULTS), str(HOST / "gpu_emulation_runtime.cpp"), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"building the fault kernels failed:\n{' '.join(cmd)}\n{res.stderr}")
    return out


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> EmulatedDevice:
    lib = _build_faults(tmp_path_factory.mktemp("emu") / "faults.so", tsan=False)
    return EmulatedDevice(lib, "fibers", check_sources=False)


def _args(out: np.ndarray) -> list:
    return [ctypes.c_void_p(out.ctypes.data), ctypes.c_int32(out.size)]


def test_barrier_orders_shared_memory(faults):
    out = np.zeros(600, np.float32)
    faults.launch("neighbour_with_barrier", (3,), (256,), _args(out))
    i = np.arange(600)
    b, t = i // 256, i % 256
    np.testing.assert_array_equal(out, b * 1000 + (t + 1) % 256)


def test_missing_barrier_reads_stale_shared_memory(faults):
    """Without the barrier a thread reads its neighbour's slot before the neighbour wrote it."""
    out = np.zeros(512, np.float32)
    faults.launch("neighbour_missing_barrier", (2,), (256,), _args(out))
    i = np.arange(512)
    assert np.count_nonzero(out != (i // 256) * 1000 + (i % 256 + 1) % 256) > 0


def test_divergent_barrier_is_an_error_not_a_hang(faults):
    with pytest.raises(KernelLaunchError) as info:
        faults.launch("divergent_barrier", (2,), (256,), _args(np.zeros(512, np.float32)))
    msg = str(info.value)
    assert "__syncthreads at line" in msg and "255 of the 256 threads" in msg and "1 had already returned" in msg


def test_threads_at_two_barriers_is_an_error(faults):
    with pytest.raises(KernelLaunchError, match="different __syncthreads"):
        faults.launch("split_barrier", (1,), (64,), _args(np.zeros(64, np.float32)))


def test_endless_wait_on_other_blocks_ends_in_an_error(faults, monkeypatch):
    monkeypatch.setenv("FUS_GPU_EMULATION_WATCHDOG_S", "1")
    flag = np.zeros(1, np.int32)
    with pytest.raises(KernelLaunchError, match="would hang on a GPU"):
        faults.launch("waits_forever", (1,), (32,), [ctypes.c_void_p(flag.ctypes.data), ctypes.c_int32(1)])


def test_kernel_refuses_another_block_size(faults):
    out = np.zeros(256, np.float32)
    faults.launch("needs_block_128", (2,), (128,), _args(out))
    assert np.all(out == 1)
    with pytest.raises(KernelLaunchError, match=r"__trap\(\)"):
        faults.launch("needs_block_128", (1,), (256,), _args(out))


def test_invalid_launch_configuration(faults):
    with pytest.raises(KernelLaunchError, match="invalid launch configuration"):
        faults.launch("neighbour_with_barrier", (1,), (2048,), _args(np.zeros(4, np.float32)))


# ----------------------------------------------------------------------------- parameter lists
def _table_types(name: str) -> tuple[str, ...]:
    kinds = {"complex64": "float32"}
    return tuple(f"{kinds.get(a.dtype, a.dtype)}*" if a.is_array else a.dtype for a in KERNELS[name].args)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_gpu_and_cpu_branches_match_the_launch_table(name):
    """The GPU branch (emulation library), the CPU branch (CPU library) and the table agree."""
    from fus.backend.sources import cpu_library_path

    cpu = ctypes.CDLL(str(cpu_library_path()))
    fn = getattr(cpu, f"fus_cpu_signature_{name}")
    fn.restype = ctypes.c_char_p
    want = _table_types(name)
    assert tuple(fn().decode().split(",")) == want, "CPU branch"
    emu = emulation_library("fibers")
    assert emu.signature(name) == want, "GPU branch"
    assert emu.source(name) == KERNELS[name].source


def test_block_size_comes_from_the_kernel_source():
    assert KERNELS["rayleigh"].block == KERNELS["rayleigh_far"].block == 256
    assert KERNELS["bioheat_steps"].block == 256
    assert KERNELS["cem43"].block_macro is None


# ----------------------------------------------------------------------------- the CuPy stand-in
@pytest.fixture
def emulated(monkeypatch):
    monkeypatch.setenv("FUS_GPU_EMULATION", "1")
    with fus.use("cuda") as b:
        assert b.emulated
        yield b


def test_stand_in_is_strict_where_cupy_is(emulated):
    import cupy as real

    xp = emulated.xp
    a = xp.zeros(4, dtype=np.float32)
    with pytest.raises(AttributeError, match="writeable"):
        a.flags.writeable
    assert a.flags.c_contiguous and a.flags.owndata
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(4, np.float32)
    with pytest.raises(TypeError, match="Unsupported type"):
        xp.exp(np.ones(4))
    s = a.sum()
    assert isinstance(s, xp.ndarray) and s.shape == () and float(s) == 0.0
    assert isinstance(a[1], xp.ndarray)
    assert isinstance(np.sum(a), xp.ndarray)  # numpy functions dispatch to the device
    h = np.arange(4, dtype=np.float32)
    d = xp.asarray(h)
    h[0] = 99  # the device copy is a copy
    assert xp.asnumpy(d)[0] == 0 and d.get()[0] == 0
    assert not hasattr(real, "no_such_function")
    with pytest.raises(AttributeError, match="installed CuPy lacks it"):
        xp.no_such_function
    with pytest.raises(AttributeError, match="installed CuPy lacks it"):
        a.no_such_method()
    assert fus.backend.array_module(a) is xp and fus.asnumpy(a).dtype == np.float32


def _rayleigh_kernel(xp):
    from fus.backend.sources import kernel_source

    return xp.RawModule(code=kernel_source("rayleigh.cu"), options=("--std=c++17",)).get_function("rayleigh")


def _rayleigh_args(xp, k=np.float32(1000.0)):
    return (xp.zeros(3, np.float32), xp.zeros(2, np.float32), xp.ones(3, np.float32), k, np.float32(0), np.int32(1), np.int32(1), xp.zeros(1, np.complex64))


def test_raw_kernel_refuses_what_a_gpu_would_misread(emulated):
    xp = emulated.xp
    fn = _rayleigh_kernel(xp)
    with pytest.raises(KernelLaunchError, match="Python float"):
        fn((1,), (256,), _rayleigh_args(xp, 1000.0))
    with pytest.raises(KernelLaunchError, match="got float64"):
        fn((1,), (256,), _rayleigh_args(xp, np.float64(1000.0)))
    args = list(_rayleigh_args(xp))
    args[0] = np.zeros(3, np.float32)
    with pytest.raises(KernelLaunchError, match="needs a device array"):
        fn((1,), (256,), tuple(args))
    args[0] = xp.zeros(3, np.float64)
    with pytest.raises(KernelLaunchError, match="float64 array"):
        fn((1,), (256,), tuple(args))
    with pytest.raises(KernelLaunchError, match="7 arguments for 8"):
        fn((1,), (256,), _rayleigh_args(xp)[:7])
    with pytest.raises(KernelLaunchError, match=r"__trap\(\)"):  # tiles sized for RAYLEIGH_BLOCK
        fn((2,), (128,), _rayleigh_args(xp))
    out = _rayleigh_args(xp)
    fn((1,), (256,), out)
    assert np.isfinite(out[-1].get()).all()


def test_info_names_the_emulated_device(emulated, capsys):
    from fus.cli.main import main

    assert main(["info"]) == 0
    assert "cuda (emulated on CPU" in capsys.readouterr().out


# ----------------------------------------------------------------------------- ThreadSanitizer
def _tsan_env() -> dict[str, str] | None:
    lib = subprocess.run([_cxx(), "-print-file-name=libtsan.so.2"], capture_output=True, text=True).stdout.strip()
    try:
        emulation_library("fibers")  # the build made both or neither
        from fus.backend.emulation import _library_path

        _library_path("tsan")
    except Exception as exc:  # noqa: BLE001
        reason = f"no ThreadSanitizer build of the emulated GPU: {exc}"
        if os.environ.get("FUS_REQUIRE_TSAN") == "1":
            pytest.fail(f"FUS_REQUIRE_TSAN=1: {reason}")
        pytest.skip(reason)
    if not lib or not Path(lib).is_file():
        if os.environ.get("FUS_REQUIRE_TSAN") == "1":
            pytest.fail("FUS_REQUIRE_TSAN=1 but the compiler has no libtsan.so.2")
        pytest.skip("the compiler has no libtsan.so.2")
    env = dict(os.environ, LD_PRELOAD=lib, FUS_GPU_EMULATION="tsan", TSAN_OPTIONS=f"exitcode=66 halt_on_error=0 suppressions={HOST / 'tsan.supp'}")
    env.pop("FUS_BACKEND", None)
    return env


def test_kernels_are_race_free_under_thread_sanitizer():
    env = _tsan_env()
    res = subprocess.run([sys.executable, str(TSAN_RUN), "kernels"], env=env, capture_output=True, text=True, timeout=900)
    assert "ThreadSanitizer" not in res.stderr, res.stderr[-6000:]
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert f"all {len(KERNELS)} kernels ran" in res.stdout


def test_thread_sanitizer_sees_a_missing_barrier(tmp_path):
    env = _tsan_env()
    lib = _build_faults(tmp_path / "faults_tsan.so", tsan=True)
    res = subprocess.run([sys.executable, str(TSAN_RUN), "faults", str(lib), "neighbour_missing_barrier"], env=env, capture_output=True, text=True, timeout=300)
    assert "WARNING: ThreadSanitizer: data race" in res.stderr and "faults.cu" in res.stderr, res.stderr[-3000:]
    res = subprocess.run([sys.executable, str(TSAN_RUN), "faults", str(lib), "neighbour_with_barrier"], env=env, capture_output=True, text=True, timeout=300)
    assert "ThreadSanitizer" not in res.stderr and res.returncode == 0, res.stderr[-3000:]


def test_gpu_check_script_on_the_emulated_device(tmp_path):
    """benchmarks/gpu_check.py (what a lent GPU runs) works end to end; here on the emulated device."""
    out = tmp_path / "check.json"
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), str(out), "--emulated", "--no-bench"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    import json

    report = json.loads(out.read_text())
    assert report["info"]["cuda"]["self_test"]["ok"]
    cases = report["tests_wavefront_0"]["cases"]
    assert len(cases) >= 16 and all(c["outcome"] == "passed" for c in cases)
    assert report["tests_wavefront_1"]["cases"] and all(c["outcome"] == "passed" for c in report["tests_wavefront_1"]["cases"])
