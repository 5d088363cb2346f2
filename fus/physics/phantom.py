"""Tissue models on a grid: label volumes, property volumes, and the bone-metastasis phantom.

Label volumes hold :attr:`fus.physics.tissues.Tissue.label` per voxel; :func:`property_volumes`
maps them to the acoustic and thermal property volumes of the one tissue table
(:mod:`fus.physics.tissues`).

Bone-metastasis phantom
-----------------------
:func:`load_phantom` builds, from a TOML file, the body wall over a bone with a metastasis, in the
transducer frame (origin at the geometric focus, +z along the beam, SI inside, millimetres in
the file):

* a degassed water bath up to the skin surface ``skin_z_mm``;
* planar layers along +z (default skin 2 mm, fat 10 mm, muscle 30 mm, cortical bone 5 mm, and
  red marrow to the end of the grid);
* a lesion (an osteolytic metastasis: an ellipsoid, overwriting what is there) and a spinal-cord
  region (a cylinder along an axis, or an ellipsoid) behind the bone;
* named regions of interest: ``target`` (by default a sphere at the beam axis' crossing of the
  bone surface), ``skin`` (the skin layer within a radius of the beam axis: the near field),
  ``cord`` (the cord region), plus any extra ellipsoids.

File format (all lengths in mm; see ``sample_data/phantom_bone.toml``)::

    name = "bone metastasis"
    [grid]
    shape = [128, 128, 160]          # voxels along x, y, z (z = beam axis, array axis 2)
    spacing_mm = 0.5                 # or [dx, dy, dz]
    centre_mm = [0.0, 0.0, -7.0]     # grid centre in the transducer frame
    [bath]
    temperature_c = 20.0             # degassed, circulated water bath (fixed temperature)
    [body]
    temperature_c = 37.0             # core (arterial) temperature
    skin_z_mm = -42.0                # z of the water / skin interface
    [[layers]]                       # in order along +z; the last one has no thickness
    tissue = "skin"
    thickness_mm = 2.0
    ...
    [lesion]
    tissue = "lesion"
    centre_mm = [0.0, 0.0, 6.0]
    radii_mm = [7.0, 7.0, 5.0]
    [cord]
    tissue = "spinal_cord"
    centre_mm = [0.0, 0.0, 24.0]
    radius_mm = 5.0
    axis = "y"                       # cylinder along this axis (or radii_mm for an ellipsoid)
    [rois.target]                    # optional: default a 2 mm sphere at the bone surface
    centre_mm = [0.0, 0.0, 0.0]
    radius_mm = 2.0
    [rois.skin]
    radius_mm = 15.0                 # skin layer within this distance of the beam axis

Every size and position is checked: unknown tissues, non-positive thicknesses or sizes, a grid
that does not reach the skin, regions or ROIs that fall outside the grid are refused with an
error naming the file, the field and the value.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fus.backend.memory import available_memory, gib

from fus.checks import check_keys
from fus.errors import DataError, InvalidParameterError
from fus.physics.grid import Grid
from fus.physics.media import LayeredMedium
from fus.physics.tissues import TISSUES, Tissue, attenuation, absorption, get_tissue, perfusion_coefficient
from fus.physics.toml_file import read_toml

__all__ = [
    "Phantom",
    "property_volumes",
    "thermal_volumes",
    "label_lookup",
    "load_phantom",
    "build_phantom",
]

log = logging.getLogger("fus.physics.phantom")

_BY_LABEL: dict[int, Tissue] = {t.label: t for t in TISSUES.values()}


def label_lookup(values: Mapping[int, float], labels: np.ndarray, name: str) -> np.ndarray:
    """``values[label]`` for every voxel (float64); unknown labels raise naming them."""
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise InvalidParameterError("labels", f"dtype {lab.dtype}", "must be integer tissue labels")
    present = np.unique(lab)
    bad = [int(v) for v in present if int(v) not in values]
    if bad:
        raise InvalidParameterError(
            "labels", bad[:8], f"unknown tissue label(s) for {name}; known labels: "
            + ", ".join(f"{k}={_BY_LABEL[k].name}" if k in _BY_LABEL else str(k) for k in sorted(values))
        )
    if lab.size == 0:
        return np.zeros(lab.shape)
    lo = int(present.min())
    table = np.zeros(int(present.max()) - lo + 1, dtype=np.float64)
    for v in present:
        table[int(v) - lo] = values[int(v)]
    return table[lab.astype(np.int64) - lo]


def thermal_volumes(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Thermal property volumes of a label volume, for the Pennes solver.

    Parameters
    ----------
    labels : ndarray of int
        Tissue labels (:attr:`Tissue.label`).

    Returns
    -------
    dict of ndarray (float64)
        ``rho_c`` [J/m^3/K], ``conductivity`` [W/m/K], ``perfusion`` (w_b c_b) [W/m^3/K].

    Raises
    ------
    InvalidParameterError
        Non-integer labels or labels not in the tissue table (named).
    """
    return {
        "rho_c": label_lookup({k: t.heat_capacity for k, t in _BY_LABEL.items()}, labels, "rho_c"),
        "conductivity": label_lookup({k: t.conductivity for k, t in _BY_LABEL.items()}, labels, "conductivity"),
        "perfusion": label_lookup({k: perfusion_coefficient(t) for k, t in _BY_LABEL.items()}, labels, "perfusion"),
    }


def property_volumes(labels: np.ndarray, frequency: float | None = None) -> dict[str, np.ndarray]:
    """All property volumes of a label volume.

    Parameters
    ----------
    labels : ndarray of int
        Tissue labels.
    frequency : float, optional
        [Hz]; when given, ``attenuation`` and ``absorption`` [Np/m] at that frequency are included.

    Returns
    -------
    dict of ndarray (float64)
        ``density`` [kg/m^3], ``sound_speed`` [m/s], ``alpha0`` [Np/m/MHz^y], ``alpha_power``,
        ``absorption_fraction``, ``conductivity`` [W/m/K], ``specific_heat`` [J/kg/K],
        ``perfusion_ml_min_kg`` [ml/min/kg], ``rho_c`` [J/m^3/K], ``perfusion`` (w_b c_b)
        [W/m^3/K], and with ``frequency`` ``attenuation`` and ``absorption`` [Np/m].
    """
    out: dict[str, np.ndarray] = {}
    for key, attr in [
        ("density", "density"),
        ("sound_speed", "sound_speed"),
        ("alpha0", "alpha0"),
        ("alpha_power", "alpha_power"),
        ("absorption_fraction", "absorption_fraction"),
        ("conductivity", "conductivity"),
        ("specific_heat", "specific_heat"),
        ("perfusion_ml_min_kg", "perfusion"),
    ]:
        out[key] = label_lookup({k: float(getattr(t, attr)) for k, t in _BY_LABEL.items()}, labels, key)
    out.update(thermal_volumes(labels))
    if frequency is not None:
        out["attenuation"] = label_lookup({k: attenuation(t, frequency) for k, t in _BY_LABEL.items()}, labels, "attenuation")
        out["absorption"] = label_lookup({k: absorption(t, frequency) for k, t in _BY_LABEL.items()}, labels, "absorption")
    return out


@dataclass
class Phantom:
    """A labelled grid with its temperatures, layers and regions of interest.

    Attributes
    ----------
    name : str
    grid : Grid
        Voxel centres in the transducer frame [m]; array axis 2 is the beam axis z.
    labels : ndarray of uint8, shape grid.shape
        Tissue labels.
    rois : dict of str -> ndarray of bool
        Named regions of interest (``target``, ``skin``, ``cord``, ...).
    target : ndarray, shape (3,)
        Target point (centre of the ``target`` ROI) in the transducer frame [m].
    bath_temperature : float
        [C], imposed on the grid face on the bath side (z-) and the initial water temperature.
    body_temperature : float
        Arterial / initial tissue temperature [C].
    layers : list of (tissue name, thickness [m] or None)
        The planar layers from the skin on (last one None).
    skin_z : float
        z of the water / skin interface [m].
    source : str
        Where the phantom came from (file path or "built").
    """

    name: str
    grid: Grid
    labels: np.ndarray
    rois: dict[str, np.ndarray]
    target: np.ndarray
    bath_temperature: float
    body_temperature: float
    layers: list[tuple[str, float | None]]
    skin_z: float
    source: str = "built"
    regions: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.grid.spacing

    def thermal(self) -> dict[str, np.ndarray]:
        """``rho_c``, ``conductivity``, ``perfusion`` volumes (see :func:`thermal_volumes`)."""
        return thermal_volumes(self.labels)

    def properties(self, frequency: float | None = None) -> dict[str, np.ndarray]:
        """All property volumes (see :func:`property_volumes`)."""
        return property_volumes(self.labels, frequency)

    def initial_temperature(self) -> np.ndarray:
        """Water at the bath temperature, tissue at body temperature [C] (float32)."""
        t = np.full(self.shape, self.body_temperature, dtype=np.float32)
        t[self.labels == TISSUES["water"].label] = self.bath_temperature
        return t

    def boundary(self) -> dict[str, Any]:
        """Bath face (axis 2, low end) fixed at the bath temperature; the others zero flux."""
        return {"2-": self.bath_temperature}

    def layered_medium(self) -> LayeredMedium:
        """The planar layers (water bath first) as an acoustic medium for the field code."""
        return LayeredMedium([("water", None)] + [(t, d) for t, d in self.layers], self.skin_z, name=self.name)

    def roi_summary(self) -> dict[str, int]:
        """Number of voxels of each ROI."""
        return {k: int(v.sum()) for k, v in self.rois.items()}


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------
def _mm(ctx: str, value: Any, *, positive: bool = False, n: int | None = None) -> Any:
    """Millimetres -> metres (scalar, or a vector of n), validated."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(ctx, value, "must be a number (or numbers) in mm") from None
    if n is not None:
        if arr.ndim == 0:
            arr = np.repeat(arr, n)
        if arr.shape != (n,):
            raise InvalidParameterError(ctx, value, f"must be {n} numbers in mm")
    elif arr.ndim != 0:
        raise InvalidParameterError(ctx, value, "must be one number in mm")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(ctx, value, "must be finite")
    if positive and np.any(arr <= 0):
        raise InvalidParameterError(ctx, value, "must be > 0")
    return arr * 1e-3 if n is not None else float(arr) * 1e-3


def _temperature(ctx: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(ctx, value, "must be a temperature in C") from None
    lo, hi = (30.0, 42.0) if ctx.startswith("body") else (-5.0, 100.0)
    if not math.isfinite(v) or not (lo <= v <= hi):
        hint = " (Fahrenheit given? 98.6 F is 37 C)" if 90 <= v <= 110 else " (kelvin given?)" if v > 250 else ""
        raise InvalidParameterError(ctx, value, f"must be a temperature in [{lo:g}, {hi:g}] C{hint}")
    return v


def _coords(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, z = grid.axes()
    return x[:, None, None], y[None, :, None], z[None, None, :]


def _ellipsoid(grid: Grid, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    x, y, z = _coords(grid)
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1.0


def _cylinder(grid: Grid, centre: np.ndarray, radius: float, axis: int) -> np.ndarray:
    c = _coords(grid)
    others = [i for i in range(3) if i != axis]
    d2 = (c[others[0]] - centre[others[0]]) ** 2 + (c[others[1]] - centre[others[1]]) ** 2
    return np.broadcast_to(d2 <= radius**2, grid.shape).copy()


def _inside(grid: Grid, lo: np.ndarray, hi: np.ndarray, ctx: str) -> None:
    """Refuse a region whose bounding box is not inside the grid (half a voxel of slack)."""
    g_lo = np.asarray(grid.origin) - 0.5 * np.asarray(grid.spacing)
    g_hi = g_lo + np.asarray(grid.shape) * np.asarray(grid.spacing)
    if np.any(lo < g_lo - 1e-12) or np.any(hi > g_hi + 1e-12):
        raise InvalidParameterError(
            ctx,
            f"box {np.round(lo * 1e3, 3).tolist()} .. {np.round(hi * 1e3, 3).tolist()} mm",
            f"falls outside the grid {np.round(g_lo * 1e3, 3).tolist()} .. {np.round(g_hi * 1e3, 3).tolist()} mm",
        )


def _tissue(ctx: str, name: Any) -> Tissue:
    try:
        return get_tissue(name)
    except InvalidParameterError as exc:
        raise InvalidParameterError(ctx, name, exc.reason) from None


_KEYS: dict[str, set[str]] = {
    "": {"name", "grid", "bath", "body", "layers", "lesion", "cord", "rois"},
    "grid": {"shape", "spacing_mm", "centre_mm"},
    "bath": {"temperature_c"},
    "body": {"temperature_c", "skin_z_mm"},
    "layers": {"tissue", "thickness_mm"},
    "region": {"tissue", "centre_mm", "radii_mm", "radius_mm", "axis"},
    "rois.target": {"centre_mm", "radius_mm"},
    "rois.skin": {"radius_mm"},
    "rois": {"centre_mm", "radii_mm", "radius_mm"},
}


def _table(where: str, table: Any, kind: str) -> Any:
    """``table`` with ``center_mm`` read as ``centre_mm`` (both spellings are accepted); an unknown
    key raises, naming it, the keys allowed there, and the nearest one."""
    if not isinstance(table, Mapping):
        return table
    out = dict(table)
    if "center_mm" in out:
        if "centre_mm" in out:
            raise InvalidParameterError(f"{where}.center_mm" if where else "center_mm", out["center_mm"], "given together with centre_mm (the same key in two spellings)")
        out["centre_mm"] = out.pop("center_mm")
    check_keys(where, out, _KEYS[kind])
    return out


def _checked_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The phantom spec with every table's keys checked (see :func:`_table`)."""
    top = _table("", spec, "")
    for key, kind in (("grid", "grid"), ("bath", "bath"), ("body", "body"), ("lesion", "region"), ("cord", "region")):
        if key in top:
            top[key] = _table(key, top[key], kind)
    if isinstance(top.get("layers"), list):
        top["layers"] = [_table(f"layers[{i}]", e, "layers") for i, e in enumerate(top["layers"])]
    if isinstance(top.get("rois"), Mapping):
        top["rois"] = {k: _table(f"rois.{k}", v, f"rois.{k}" if k in ("target", "skin") else "rois") for k, v in top["rois"].items()}
    return top


#: Bytes per voxel a phantom and its bioheat run hold at once (labels, three float64 property
#: maps, the float64 heat source, temperature buffers, dose and maximum temperature, ROI masks).
PHANTOM_BYTES_PER_VOXEL = 64


def _check_phantom_memory(shape: tuple[int, ...]) -> None:
    """Refuse a grid whose arrays would not fit in the memory this process may use."""
    n = int(np.prod(shape))
    need = PHANTOM_BYTES_PER_VOXEL * n
    have = available_memory()
    if need > 0.8 * have:
        raise InvalidParameterError(
            "grid.shape", "x".join(map(str, shape)),
            f"{n:.3g} voxels need ~{gib(need)} for the phantom and its bioheat run, but only {gib(have)} of memory is "
            "available (80 % may be used): a coarser grid.spacing_mm or a smaller grid")


def build_phantom(spec: Mapping[str, Any], source: str = "built") -> Phantom:
    """Build a phantom from a parsed specification (the TOML layout of the module docstring).

    Parameters
    ----------
    spec : mapping
        The parsed file.
    source : str
        For messages and provenance.

    Returns
    -------
    Phantom

    Raises
    ------
    InvalidParameterError
        A missing or bad field (named as ``section.field``), an unknown tissue, or a region / ROI
        outside the grid.
    """
    if not isinstance(spec, Mapping):
        raise InvalidParameterError("phantom", type(spec).__name__, "must be a mapping (parsed TOML)")
    spec = _checked_spec(spec)
    name = str(spec.get("name", "phantom"))
    g = spec.get("grid")
    if not isinstance(g, Mapping):
        raise InvalidParameterError("grid", g, "section [grid] with shape, spacing_mm and centre_mm is required")
    try:
        shape = tuple(int(v) for v in g.get("shape", ()))
    except (TypeError, ValueError):
        raise InvalidParameterError("grid.shape", g.get("shape"), "must be three integers") from None
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise InvalidParameterError("grid.shape", g.get("shape"), "must be three integers >= 1")
    spacing = _mm("grid.spacing_mm", g.get("spacing_mm"), positive=True, n=3)
    centre = _mm("grid.centre_mm", g.get("centre_mm", [0.0, 0.0, 0.0]), n=3)
    grid = Grid.centred(shape, tuple(spacing), tuple(centre))
    _check_phantom_memory(shape)

    bath_t = _temperature("bath.temperature_c", (spec.get("bath") or {}).get("temperature_c", 20.0))
    body = spec.get("body") or {}
    body_t = _temperature("body.temperature_c", body.get("temperature_c", 37.0))
    if "skin_z_mm" not in body:
        raise InvalidParameterError("body.skin_z_mm", None, "the z of the water / skin interface is required [mm]")
    skin_z = _mm("body.skin_z_mm", body["skin_z_mm"])

    layers_spec = spec.get("layers")
    if not isinstance(layers_spec, list) or not layers_spec:
        raise InvalidParameterError("layers", layers_spec, "at least one [[layers]] entry is required")
    layers: list[tuple[str, float | None]] = []
    for i, entry in enumerate(layers_spec):
        if not isinstance(entry, Mapping):
            raise InvalidParameterError(f"layers[{i}]", entry, "must be a table with tissue and thickness_mm")
        tis = _tissue(f"layers[{i}].tissue", entry.get("tissue"))
        last = i == len(layers_spec) - 1
        if last and "thickness_mm" not in entry:
            layers.append((tis.name, None))
            continue
        if "thickness_mm" not in entry:
            raise InvalidParameterError(f"layers[{i}].thickness_mm", None, "required for every layer but the last")
        layers.append((tis.name, _mm(f"layers[{i}].thickness_mm", entry["thickness_mm"], positive=True)))

    x, y, z = _coords(grid)
    zc = grid.axes()[2]
    if skin_z <= zc[0] - 0.5 * grid.spacing[2] or skin_z >= zc[-1]:
        raise InvalidParameterError(
            "body.skin_z_mm", skin_z * 1e3,
            f"must lie inside the grid's z range ({zc[0] * 1e3:.4g} .. {zc[-1] * 1e3:.4g} mm) so the grid holds bath and skin",
        )
    labels1d = np.full(zc.shape, TISSUES["water"].label, dtype=np.uint8)
    zstart = skin_z
    for tname, thick in layers:
        zend = math.inf if thick is None else zstart + thick
        labels1d[(zc >= zstart) & (zc < zend)] = TISSUES[tname].label
        zstart = zend
    labels = np.broadcast_to(labels1d[None, None, :], shape).copy()
    regions: dict[str, Any] = {}
    layer_ends: list[tuple[str, tuple[float, float | None]]] = []  # in beam order (a tissue may repeat)
    zz = skin_z
    for tname, thick in layers:
        layer_ends.append((tname, (zz, None if thick is None else zz + thick)))
        if thick is not None:
            zz += thick

    masks: dict[str, np.ndarray] = {}
    for key, default_tissue in (("lesion", "lesion"), ("cord", "spinal_cord")):
        reg = spec.get(key)
        if reg is None:
            continue
        if not isinstance(reg, Mapping):
            raise InvalidParameterError(key, reg, f"[{key}] must be a table")
        tis = _tissue(f"{key}.tissue", reg.get("tissue", default_tissue))
        c = _mm(f"{key}.centre_mm", reg.get("centre_mm"), n=3)
        if "radii_mm" in reg:
            r = _mm(f"{key}.radii_mm", reg["radii_mm"], positive=True, n=3)
            _inside(grid, c - r, c + r, key)
            m = _ellipsoid(grid, c, r)
            regions[key] = {"kind": "ellipsoid", "centre_m": c.tolist(), "radii_m": r.tolist(), "tissue": tis.name}
        elif "radius_mm" in reg:
            rad = _mm(f"{key}.radius_mm", reg["radius_mm"], positive=True)
            ax_name = str(reg.get("axis", "y")).lower()
            if ax_name not in ("x", "y", "z"):
                raise InvalidParameterError(f"{key}.axis", reg.get("axis"), "must be x, y or z")
            axis = "xyz".index(ax_name)
            lo = c - rad
            hi = c + rad
            lo[axis], hi[axis] = c[axis], c[axis]
            _inside(grid, lo, hi, key)
            m = _cylinder(grid, c, rad, axis)
            regions[key] = {"kind": "cylinder", "centre_m": c.tolist(), "radius_m": rad, "axis": ax_name, "tissue": tis.name}
        else:
            raise InvalidParameterError(key, dict(reg), "needs radii_mm (ellipsoid) or radius_mm (cylinder)")
        if not m.any():
            raise InvalidParameterError(key, dict(reg), "covers no voxel of the grid (smaller than a voxel?)")
        labels[m] = tis.label
        masks[key] = m

    # ---- ROIs
    rois_spec = spec.get("rois") or {}
    if not isinstance(rois_spec, Mapping):
        raise InvalidParameterError("rois", rois_spec, "must be a table of ROI tables")
    rois: dict[str, np.ndarray] = {}
    bone_start = None
    for tname, (z0, _) in layer_ends:  # the first bone surface the beam meets
        if TISSUES[tname].name == "cortical_bone":
            bone_start = z0
            break
    tgt_spec = rois_spec.get("target") or {}
    if "centre_mm" in tgt_spec:
        tgt = _mm("rois.target.centre_mm", tgt_spec["centre_mm"], n=3)
    elif bone_start is not None:
        tgt = np.array([0.0, 0.0, bone_start])
    else:
        raise InvalidParameterError("rois.target.centre_mm", None, "required when the layers have no cortical bone")
    t_rad = _mm("rois.target.radius_mm", tgt_spec.get("radius_mm", 2.0), positive=True)
    _inside(grid, tgt - t_rad, tgt + t_rad, "rois.target")
    rois["target"] = _ellipsoid(grid, tgt, np.array([t_rad] * 3))
    if not rois["target"].any():
        # a radius below the voxel size: the nearest voxel
        idx = tuple(int(np.argmin(np.abs(a - tgt[i]))) for i, a in enumerate(grid.axes()))
        rois["target"][idx] = True

    skin_spec = rois_spec.get("skin") or {}
    s_rad = _mm("rois.skin.radius_mm", skin_spec.get("radius_mm", 15.0), positive=True)
    skin_lbl = TISSUES["skin"].label
    near = (x - tgt[0]) ** 2 + (y - tgt[1]) ** 2 <= s_rad**2
    rois["skin"] = np.broadcast_to(near, shape) & (labels == skin_lbl)
    if not rois["skin"].any():
        raise InvalidParameterError("rois.skin", s_rad * 1e3, "no skin voxel within this radius of the beam axis")
    if "cord" in masks:
        rois["cord"] = masks["cord"].copy()

    for key, roi in rois_spec.items():
        if key in ("target", "skin"):
            continue
        if not isinstance(roi, Mapping):
            raise InvalidParameterError(f"rois.{key}", roi, "must be a table")
        c = _mm(f"rois.{key}.centre_mm", roi.get("centre_mm"), n=3)
        r = _mm(f"rois.{key}.radii_mm" if "radii_mm" in roi else f"rois.{key}.radius_mm",
                roi.get("radii_mm", roi.get("radius_mm")), positive=True, n=3)
        _inside(grid, c - r, c + r, f"rois.{key}")
        m = _ellipsoid(grid, c, r)
        if not m.any():
            raise InvalidParameterError(f"rois.{key}", dict(roi), "covers no voxel of the grid")
        rois[key] = m

    ph = Phantom(
        name=name, grid=grid, labels=labels, rois=rois, target=tgt, bath_temperature=bath_t,
        body_temperature=body_t, layers=layers, skin_z=skin_z, source=source, regions=regions,
    )
    log.info("phantom %s: grid %s at %s mm, ROIs %s", name, shape, np.round(np.asarray(grid.spacing) * 1e3, 3).tolist(), ph.roi_summary())
    return ph


def load_phantom(path: str | Path) -> Phantom:
    """Read a phantom TOML file (see the module docstring) and build it.

    Raises
    ------
    DataError
        Unreadable or malformed file; a bad field (the message names the file and the field).
    """
    p = Path(path)
    spec = read_toml(p, "phantom")
    try:
        return build_phantom(spec, source=str(p))
    except InvalidParameterError as exc:
        raise DataError(str(exc), path=p, tag=exc.name) from None
