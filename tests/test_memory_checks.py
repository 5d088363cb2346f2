"""Runs that would not fit are refused up front with the numbers: the memory a computation may
use is the least of the machine's, the container's (cgroup) and the process limit's (ulimit -v).

References: files written by hand in the cgroup layouts v2 and v1; the arithmetic of the
estimates (frames x voxels x bytes)."""

from __future__ import annotations

import numpy as np
import pytest

from fus.backend import memory
from fus.errors import InvalidParameterError


def test_cgroup_limits_are_read(tmp_path):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("268435456\n")
    assert memory._cgroup_room(tmp_path) == 1073741824 - 268435456
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_room(tmp_path) == memory._UNLIMITED
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("2147483648\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("1073741824\n")
    assert memory._cgroup_room(v1) == 1073741824


def test_available_memory_is_the_least(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo", lambda: 8 << 30)
    monkeypatch.setattr(memory, "_cgroup_room", lambda: 2 << 30)
    monkeypatch.setattr(memory, "_rlimit_room", lambda: 4 << 30)
    assert memory.available_memory() == 2 << 30


def test_too_many_bioheat_frames_are_refused(monkeypatch):
    import fus.physics.bioheat as bioheat
    from fus.physics.bioheat import Schedule, simulate

    monkeypatch.setattr(bioheat, "available_memory", lambda: 64 << 20)  # 64 MiB
    shape = (32, 32, 32)
    args = dict(rho_c=np.full(shape, 3.6e6), conductivity=np.full(shape, 0.5), perfusion=np.zeros(shape),
                spacing=1e-3, source=np.zeros(shape), schedule=Schedule.sonication(1.0, 10.0))
    # 10 s at 0.001 s: 10001 frames x 32^3 x 8 bytes = 2.4 GiB > half of 64 MiB
    with pytest.raises(InvalidParameterError, match=r"output_interval=0.001: keeps 10001 frames.*2.44 GiB.*0.0625 GiB"):
        simulate(**args, output_interval=0.001)
    r = simulate(**args, output_interval=5.0)  # 3 frames: 0.75 MiB
    assert len(r.times) == 3


def test_a_phantom_too_large_is_refused(monkeypatch):
    import fus.physics.phantom as phantom
    from fus.physics.phantom import build_phantom

    monkeypatch.setattr(phantom, "available_memory", lambda: 16 << 30)
    spec = {"grid": {"shape": [1000, 1000, 1000], "spacing_mm": 0.05}}
    with pytest.raises(InvalidParameterError, match=r"grid.shape=.1000x1000x1000.: 1e\+09 voxels need ~59.6 GiB.*16 GiB"):
        build_phantom(spec)
