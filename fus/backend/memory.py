"""How much memory a computation may use: the least of what the machine, the container and the
process limit allow.

:func:`available_memory` takes, on the CPU, the smallest of ``MemAvailable`` (``/proc/meminfo``),
the cgroup's limit less its usage (cgroup v2 ``memory.max`` / ``memory.current``, or v1
``memory.limit_in_bytes`` / ``memory.usage_in_bytes``) and the address-space limit
(``ulimit -v``, ``RLIMIT_AS``) less the process's current size; on the GPU the device's free
memory. A pipeline that would need more than a fraction of it refuses up front with the numbers,
instead of a MemoryError (or the OOM killer) minutes in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["available_memory", "gib"]

_UNLIMITED = 1 << 62


def gib(n: float) -> str:
    """``n`` bytes as GiB text."""
    return f"{n / 2**30:.3g} GiB"


def _meminfo() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return _UNLIMITED


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_room(root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cgroup's memory limit less its usage (unlimited where there is none)."""
    for limit_name, usage_name in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit = _read_int(root / limit_name)
        if limit is not None and limit < _UNLIMITED:
            usage = _read_int(root / usage_name) or 0
            return max(0, limit - usage)
    return _UNLIMITED


def _rlimit_room() -> int:
    """``RLIMIT_AS`` (``ulimit -v``) less the process's current virtual size."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return _UNLIMITED
    if soft in (resource.RLIM_INFINITY, -1) or soft <= 0:
        return _UNLIMITED
    size = 0
    try:
        with open("/proc/self/statm") as fh:
            size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return max(0, int(soft) - size)


def available_memory(backend: Any = None) -> int:
    """Bytes a new computation may take on ``backend`` (default: the CPU; see the module docstring)."""
    if backend is not None and getattr(backend, "name", "cpu") == "cuda":
        try:
            free, _total = backend.xp.cuda.runtime.memGetInfo()
            return int(free)
        except Exception:  # noqa: BLE001 - a device query that fails says nothing about memory
            return _UNLIMITED
    return min(_meminfo(), _cgroup_room(), _rlimit_room())
