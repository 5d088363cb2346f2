"""Backend selection, the launch table's argument checks, and `fus info`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fus
from fus.backend import cuda_status, get_backend, set_backend, use
from fus.backend.signatures import KERNELS, check_arguments
from fus.backend.sources import kernel_source
from fus.cli.main import main
from fus.errors import BackendError, BackendUnavailableError, FusError, InvalidParameterError


def test_unknown_backend_name():
    with pytest.raises(InvalidParameterError, match="gpu"):
        set_backend("gpu")


def test_env_variable_is_validated():
    code = "import fus; fus.get_backend()"
    res = subprocess.run(
        [sys.executable, "-c", code], env={"FUS_BACKEND": "tpu", "PATH": ""}, capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "FUS_BACKEND" in res.stderr and "tpu" in res.stderr


def test_env_variable_cpu():
    code = "import fus; print(fus.get_backend().name)"
    res = subprocess.run([sys.executable, "-c", code], env={"FUS_BACKEND": "cpu"}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "cpu"


def test_cuda_request_without_device_says_why():
    ok, reason, _ = cuda_status()
    if ok:
        pytest.skip("a CUDA device is present")
    with pytest.raises(BackendUnavailableError) as info:
        set_backend("cuda")
    assert reason in str(info.value)
    assert isinstance(info.value, FusError)


def test_auto_falls_back_to_cpu_without_device():
    ok, _, _ = cuda_status()
    with use("auto") as b:
        assert b.name == ("cuda" if ok else "cpu")


def test_use_restores_previous():
    before = get_backend()
    with use("cpu") as b:
        assert get_backend() is b
    assert get_backend() is before


def _rayleigh_args(m=2, n=3):
    return [
        np.zeros(3 * m, np.float32),
        np.zeros(2 * m, np.float32),
        np.zeros(3 * n, np.float32),
        np.float32(1.0),
        np.float32(0.0),
        np.int32(m),
        np.int32(n),
        np.zeros(n, np.complex64),
    ]


@pytest.mark.parametrize(
    "index,value,needle",
    [
        (3, 1.0, "numpy.float32"),  # a Python float would reach CuPy as a double
        (5, 2, "numpy.int32"),
        (4, np.float64(0.0), "numpy.float32"),
        (0, np.zeros(6, np.float64), "float32"),
        (2, np.zeros(8, np.float32), "needs 9"),
        (7, np.zeros(3, np.complex128), "complex64"),
        (0, np.zeros((6, 2), np.float32)[:, 0], "contiguous"),
        (1, [0.0] * 4, "numpy.ndarray"),
    ],
)
def test_launch_table_refuses_wrong_arguments(cpu_backend, index, value, needle):
    args = _rayleigh_args()
    args[index] = value
    with pytest.raises(BackendError, match=needle):
        cpu_backend.launch("rayleigh", *args)


def test_launch_table_arity():
    with pytest.raises(BackendError, match="arguments"):
        check_arguments(KERNELS["rayleigh"], tuple(_rayleigh_args()[:-1]), np.ndarray)


def test_launch_writes_output(cpu_backend):
    args = _rayleigh_args(1, 1)
    args[2][:] = [0, 0, 1]  # point at 1 m
    args[1][:] = [1, 0]  # weight 1
    cpu_backend.launch("rayleigh", *args)
    out = args[7]
    # k = 1 rad/m, r = 1 m: exp(-i)
    np.testing.assert_allclose(out[0], np.exp(-1j), rtol=1e-6)


def test_kernel_source_is_self_contained():
    text = kernel_source("rayleigh.cu")
    assert '#include "' not in text
    assert "fus_sincos" in text and "rayleigh_term" in text


def test_cpu_build_keeps_nan_semantics(cpu_backend):
    flags = cpu_backend.describe()["build_flags"]
    assert "-ffast-math" not in flags and "-ffinite-math-only" not in flags
    assert "-O3" in flags


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fus"] == fus.__version__
    assert report["backend_auto"] in ("cpu", "cuda")
    assert report["cpu"]["simd_lanes_float32"] >= 1
    assert report["cuda"]["available"] == cuda_status()[0]


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend auto ->" in out and "cpu build:" in out


def test_cli_cuda_without_device_is_clean_error(capsys):
    if cuda_status()[0]:
        pytest.skip("a CUDA device is present")
    assert main(["--backend", "cuda", "info"]) == 1


def test_stale_cpu_library_is_refused(monkeypatch):
    """A CPU library built from other kernel sources than the shipped ones is an error, not a silent mismatch."""
    import fus.backend.cpu as cpu
    from fus.errors import KernelBuildError

    monkeypatch.setattr(cpu, "source_hash", lambda: "0" * 64)
    with pytest.raises(KernelBuildError, match="pip install"):
        cpu.CpuBackend()


@pytest.mark.parametrize("env, want", [
    ({}, None), ({"FUS_NUM_THREADS": "3"}, 3), ({"OMP_NUM_THREADS": "2"}, 2),
    ({"FUS_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}, 2), ({"OMP_NUM_THREADS": "4,2"}, None),
])
def test_thread_request(env, want):
    from fus.backend.cpu import thread_request

    assert thread_request(env) == want


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_thread_request_refuses_bad_values(value):
    from fus.backend.cpu import thread_request
    from fus.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError) as info:
        thread_request({"FUS_NUM_THREADS": value})
    assert info.value.name == "FUS_NUM_THREADS" and value in str(info.value)


def test_huge_thread_counts_are_clamped_not_a_crash():
    """FUS_NUM_THREADS / OMP_NUM_THREADS=100000 crashed libgomp (exit 139); now clamped."""
    import subprocess
    import sys

    from fus.backend.cpu import MAX_THREADS, thread_request

    assert thread_request({"OMP_NUM_THREADS": "100000"}) == MAX_THREADS
    code = "import numpy as np, fus; print(float(fus.asnumpy(fus.kernels.cem43(np.zeros(4), np.full(4, 50.0), np.full(4, 50.0), 1.0)).sum()))"
    for var in ("FUS_NUM_THREADS", "OMP_NUM_THREADS"):
        res = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, var: "100000", "FUS_BACKEND": "cpu"}, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert abs(float(res.stdout) - 4 * 128.0 / 60) < 1e-4  # 1 s at 50 C = 2^7 / 60 CEM43 per voxel


def test_launch_table_refuses_arrays_past_32_bit_indexing(tmp_path):
    """An array of 2^31 or more 32-bit values would overflow the kernels' int32 indices."""
    from fus.backend.signatures import KERNELS, MAX_VALUES, check_arguments
    from fus.errors import BackendError

    n_pts = MAX_VALUES // 3 + 1  # pts holds 3 n_pts float32 values > 2^31 - 1
    pts = np.memmap(tmp_path / "pts.f32", dtype=np.float32, mode="w+", shape=(3 * n_pts,))  # sparse file
    args = (np.zeros(3, np.float32), np.zeros(2, np.float32), pts, np.float32(1), np.float32(0), np.int32(1), np.int32(n_pts), np.zeros(1, np.complex64))
    with pytest.raises(BackendError, match=r"pts holds \d+ values; the kernels index with 32-bit"):
        check_arguments(KERNELS["rayleigh"], args, np.ndarray)
