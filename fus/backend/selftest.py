"""A tiny launch on the CUDA backend compared with the CPU build: what ``fus info`` reports."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cuda_self_test"]


def cuda_self_test() -> dict[str, Any]:
    """Run one small ``rayleigh`` and ``cem43`` launch on the CUDA backend and on the CPU.

    Returns
    -------
    dict
        ``ok`` (bool), ``detail`` (one line: the largest relative difference, or the error of the
        launch that failed) and ``device``.
    """
    from fus.backend import _instance, asnumpy
    from fus.errors import FusError

    rng = np.random.default_rng(0)
    src = rng.uniform(-0.02, 0.02, (3, 300)).astype(np.float32)
    src[2] -= 0.1
    w = rng.normal(size=(2, 300)).astype(np.float32)
    pts = rng.uniform(-0.005, 0.005, (700, 3)).astype(np.float32)
    t0 = np.linspace(36.0, 60.0, 1000, dtype=np.float32)
    t1 = t0 + np.float32(2.0)
    results: dict[str, list[np.ndarray]] = {}
    try:
        for name in ("cuda", "cpu"):
            b = _instance(name)
            xp = b.xp
            out = xp.zeros(700, np.complex64)
            b.launch("rayleigh", b.asarray(src.ravel()), b.asarray(w.ravel()), b.asarray(pts.ravel()), np.float32(5000.0), np.float32(2.0), np.int32(300), np.int32(700), out)
            dose = xp.zeros(1000, np.float64)
            b.launch("cem43", dose, b.asarray(t0), b.asarray(t1), np.float32(0.5), np.int32(1000))
            results[name] = [asnumpy(out), asnumpy(dose)]
    except (FusError, Exception) as exc:  # noqa: BLE001 - any failure of the launch is the report
        return {"ok": False, "detail": f"{exc.__class__.__name__}: {exc}"}
    diffs = [float(np.max(np.abs(g - c)) / max(float(np.max(np.abs(c))), 1e-30)) for g, c in zip(results["cuda"], results["cpu"])]
    ok = all(d <= 1e-4 for d in diffs) and all(np.isfinite(g).all() for g in results["cuda"])
    return {"ok": ok, "detail": f"rayleigh and cem43 launches: max relative difference from the CPU build {max(diffs):.1e}"}
