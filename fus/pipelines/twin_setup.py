"""Building the pieces of the closed-loop twin from a scenario: phantom, heat sources, ROIs, faults.

Heat sources are computed once per focus point at 1 W and cached in memory (keyed by the content
of the phantom, the transducer, the focus and the field spacing), so a sweep or a test suite that
runs many scenarios on one phantom computes each field once; every power scales the cached source.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np

from fus.errors import InvalidParameterError
from fus.physics.heat_source import phantom_heat_source
from fus.physics.tissues import TISSUES

__all__ = ["cached_heat_source", "grid_rois", "fault_sources", "ball"]

log = logging.getLogger(__name__)

_CACHE: dict[str, tuple[np.ndarray, dict]] = {}
_CACHE_MAX = 16


def _key(phantom: Any, transducer: Any, focus: np.ndarray, field_spacing: float | None, refine_focus: bool = False) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(phantom.labels).tobytes())
    h.update(json.dumps(phantom.grid.describe(), sort_keys=True).encode())
    h.update(json.dumps(transducer.summary(), sort_keys=True, default=str).encode())
    for arr in (transducer.centres, transducer.normals, transducer.diameters, transducer.to_scanner):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    h.update(np.round(np.asarray(focus, dtype=np.float64), 9).tobytes())
    h.update(repr(field_spacing).encode())
    h.update(repr(bool(refine_focus)).encode())
    return h.hexdigest()


def cached_heat_source(phantom: Any, transducer: Any, focus: np.ndarray, *, field_spacing: float | None = None, progress: bool = False,
                       refine_focus: bool = False) -> tuple[np.ndarray, dict]:
    """Q [W/m^3] at 1 W acoustic of ``transducer`` focused on ``focus`` [m] through ``phantom``
    (:func:`fus.physics.heat_source.phantom_heat_source`), computed once per content and cached."""
    key = _key(phantom, transducer, focus, field_spacing, refine_focus)
    hit = _CACHE.get(key)
    if hit is not None:
        log.info("heat source for focus %s mm: cached", np.round(np.asarray(focus) * 1e3, 2).tolist())
        return hit[0], dict(hit[1], cached=True)
    q, info = phantom_heat_source(phantom, transducer, np.asarray(focus, dtype=np.float64), 1.0, progress=progress, field_spacing=field_spacing,
                                  refine_focus=refine_focus)
    q.flags.writeable = False
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (q, info)
    return q, dict(info, cached=False)


def ball(grid: Any, centre: np.ndarray, radius: float) -> np.ndarray:
    """Voxels of ``grid`` within ``radius`` [m] of ``centre`` [m]."""
    x, y, z = np.meshgrid(*grid.axes(), indexing="ij")
    c = np.asarray(centre, dtype=np.float64)
    return (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius**2


def grid_rois(phantom: Any, rois_spec: dict) -> dict[str, np.ndarray]:
    """The ROIs of the loop on the phantom grid: ``target`` (the part with PRF signal of the phantom ROI the controller
    follows), ``skin``, ``near_field`` (body tissue under the skin with PRF signal (no fat, no cortex), within
    ``near_field_depth_mm`` of it and ``near_field_radius_mm`` of the beam axis; skin excluded),
    ``cord`` where the phantom has one, ``body`` (every tissue voxel), and the sub-targets."""
    rois = dict(phantom.rois)
    name = str(rois_spec.get("target", "target"))
    if name not in rois:
        raise InvalidParameterError("rois.target", name, f"the phantom has no such ROI (it has {', '.join(rois)})")
    x, y, z = np.meshgrid(*phantom.grid.axes(), indexing="ij")
    dark = np.isin(phantom.labels, [TISSUES[t].label for t in ("fat", "cortical_bone") if t in TISSUES])  # no PRF signal
    target = rois[name] & ~dark  # what thermometry can see: a periosteal ROI loses its cortex half
    if not target.any():
        raise InvalidParameterError("rois.target", name, "the ROI lies wholly in fat or cortical bone, where PRF thermometry has no signal")
    if target.sum() < rois[name].sum():
        log.info("target ROI %r: %d of %d voxels in fat/cortex (no PRF signal) left out of the controlled ROI", name, int(rois[name].sum() - target.sum()), int(rois[name].sum()))
    out = {"target": target, "skin": rois["skin"]}
    if "cord" in rois:
        out["cord"] = rois["cord"]
    depth = float(rois_spec.get("near_field_depth_mm", 20.0)) * 1e-3
    radius = float(rois_spec.get("near_field_radius_mm", 15.0)) * 1e-3
    if not (depth > 0 and radius > 0):
        raise InvalidParameterError("rois.near_field_depth_mm/near_field_radius_mm", (depth * 1e3, radius * 1e3), "must be > 0 [mm]")
    water = phantom.labels == TISSUES["water"].label
    skin = phantom.labels == TISSUES["skin"].label
    body = ~water
    near = body & ~skin & ~dark & (z >= phantom.skin_z) & (z <= phantom.skin_z + depth) & (x**2 + y**2 <= radius**2)
    if not near.any():
        raise InvalidParameterError("rois.near_field_depth_mm", depth * 1e3, "the near-field ROI holds no body voxel")
    out["near_field"] = near
    out["body"] = body
    for i, sub in enumerate(rois_spec.get("sub_targets", []) or []):
        if sub not in rois:
            raise InvalidParameterError(f"rois.sub_targets[{i}]", sub, f"the phantom has no such ROI (it has {', '.join(rois)})")
        out[f"sub_target_{i}"] = rois[sub]
    return out


def fault_sources(phantom: Any, q_focus: np.ndarray, faults: list, rois: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Extra heat sources [W/m^3 per W] of the physical faults (by fault index, as ``"fault_<i>"``):
    ``skin_absorber`` (the skin on the beam axis absorbs ``gain`` times more: a scar, hair or a
    trapped bubble) and ``cord_heating`` (heat deposited in the cord at ``gain`` times the mean
    target heating: energy reflected off the bone or a mis-steered beam)."""
    out: dict[str, np.ndarray] = {}
    x, y, _ = np.meshgrid(*phantom.grid.axes(), indexing="ij")
    for i, f in enumerate(faults):
        if f.kind == "skin_absorber":
            r = float(f.params["radius_mm"]) * 1e-3
            region = rois["skin"] & (x**2 + y**2 <= r**2)
            extra = np.where(region, (float(f.params["gain"]) - 1.0) * q_focus, 0.0)
        elif f.kind == "cord_heating":
            if "cord" not in rois:
                raise InvalidParameterError(f"faults[{i}]", "cord_heating", "the phantom has no cord")
            extra = np.where(rois["cord"], float(f.params["gain"]) * float(q_focus[rois["target"]].mean()), 0.0)
        else:
            continue
        out[f"fault_{i}"] = extra
    return out
