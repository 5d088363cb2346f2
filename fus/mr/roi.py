"""Regions of interest on an image grid: spheres and boxes in mm, or a label NIfTI.

Spec strings (world coordinates in mm, the NIfTI RAS frame of the images' affine):

* ``sphere:X,Y,Z,R`` -- centre and radius;
* ``box:X0,Y0,Z0,X1,Y1,Z1`` -- two opposite corners of an axis-aligned box;
* a path to a NIfTI label volume on the same grid (same shape and affine): one ROI per non-zero
  label, named ``label<N>`` (``NAME_label<N>`` with a name; a named volume of one label is the
  ROI ``NAME``: ``skin=skin.nii.gz`` gives the interlocks their skin);

each optionally prefixed by a name, ``NAME=sphere:...``. Masks are returned in the reader's array
order ``[slice, row, column]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import DataError, InvalidParameterError

__all__ = ["RoiSpec", "parse_roi", "roi_masks", "world_coordinates"]

_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)=(.*)$")


@dataclass(frozen=True)
class RoiSpec:
    """A parsed ROI: ``kind`` is ``sphere``, ``box`` or ``labels``; ``values`` in mm or the path."""

    name: str
    kind: str
    values: tuple[float, ...] = ()
    path: str | None = None


def parse_roi(spec: str, default_name: str | None = None) -> RoiSpec:
    """Parse one ROI spec string (see the module docstring)."""
    text = str(spec).strip()
    name = default_name
    m = _NAME.match(text)
    if m and not Path(text).exists():
        name, text = m.group(1), m.group(2)
    for kind, count in (("sphere", 4), ("box", 6)):
        if text.lower().startswith(kind + ":"):
            try:
                vals = tuple(float(v) for v in text.split(":", 1)[1].split(","))
            except ValueError as exc:
                raise InvalidParameterError("roi", spec, f"{kind} needs {count} numbers in mm separated by commas") from exc
            if len(vals) != count or not all(np.isfinite(vals)):
                raise InvalidParameterError("roi", spec, f"{kind} needs {count} finite numbers in mm")
            if kind == "sphere" and vals[3] <= 0:
                raise InvalidParameterError("roi", spec, "sphere radius must be > 0 mm")
            return RoiSpec(name or f"{kind}{len(text)}", kind, vals)
    p = Path(text)
    if p.suffix in (".nii", ".gz") and p.exists():
        return RoiSpec(name or p.name.split(".")[0], "labels", (), str(p))
    raise InvalidParameterError("roi", spec, "expected sphere:X,Y,Z,R or box:X0,Y0,Z0,X1,Y1,Z1 (mm) or an existing label .nii/.nii.gz")


def world_coordinates(shape_zyx: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World (RAS, mm) coordinates of every voxel centre, array (slice, row, col, 3).

    The affine maps NIfTI voxel indices (i=column, j=row, k=slice) to world coordinates.
    """
    ns, ny, nx = shape_zyx
    k, j, i = np.meshgrid(np.arange(ns), np.arange(ny), np.arange(nx), indexing="ij")
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(np.float64)
    return (ijk1 @ np.asarray(affine, dtype=np.float64).T)[..., :3]


def roi_masks(specs: list[RoiSpec], shape_zyx: tuple[int, int, int], affine: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks [slice, row, col] for each ROI; an ROI containing no voxel is an error."""
    out: dict[str, np.ndarray] = {}
    world: Any = None

    def add(name: str, mask: np.ndarray) -> None:
        if name in out:
            raise InvalidParameterError("roi", name, "names two regions: give each ROI its own name (NAME=...)")
        out[name] = mask

    for spec in specs:
        if spec.kind in ("sphere", "box"):
            if world is None:
                world = world_coordinates(shape_zyx, affine)
            v = spec.values
            if spec.kind == "sphere":
                mask = np.sum((world - np.array(v[:3])) ** 2, axis=-1) <= v[3] ** 2
            else:
                lo = np.minimum(v[:3], v[3:])
                hi = np.maximum(v[:3], v[3:])
                mask = np.all((world >= lo) & (world <= hi), axis=-1)
            if not mask.any():
                raise InvalidParameterError(
                    "roi", f"{spec.name}={spec.kind}:{','.join(f'{x:g}' for x in v)}", "contains no voxel of the image grid (outside the field of view?)"
                )
            add(spec.name, mask)
        else:
            for name, mask in _label_masks(spec, shape_zyx, affine).items():
                add(name, mask)
    return out


def _label_masks(spec: RoiSpec, shape_zyx: tuple[int, int, int], affine: np.ndarray) -> dict[str, np.ndarray]:
    import nibabel as nib

    try:
        img = nib.load(spec.path)
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise DataError(f"cannot read the label volume: {exc}", path=spec.path) from exc
    expect = (shape_zyx[2], shape_zyx[1], shape_zyx[0])
    if data.ndim != 3 or data.shape != expect:
        raise DataError(f"label volume has shape {data.shape}, the images {expect} (i, j, k)", path=spec.path)
    if not np.allclose(img.affine, affine, atol=1e-3):
        raise DataError("label volume affine differs from the images' (> 1e-3 mm): resample it to the image grid", path=spec.path)
    if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
        raise DataError("label volume must hold integer labels", path=spec.path)
    zyx = data.transpose(2, 1, 0)
    labels = [int(v) for v in np.unique(zyx) if v != 0]
    if not labels:
        raise DataError("label volume has no non-zero label", path=spec.path)
    if spec.name and len(labels) == 1:  # NAME=mask.nii.gz of one region: the ROI is NAME
        return {spec.name: zyx == labels[0]}
    return {f"{spec.name}_label{v}" if spec.name else f"label{v}": zyx == v for v in labels}
