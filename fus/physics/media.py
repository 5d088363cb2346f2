"""Acoustic media for the field computation: homogeneous, and planar layers along the beam.

Properties come from the one tissue table, :mod:`fus.physics.tissues` (IT'IS Foundation database
and the other sources listed there); this module only arranges tissues in space.

Homogeneous medium
------------------
One tissue everywhere: density ``rho``, sound speed ``c``, power-law amplitude attenuation
``alpha(f) = alpha0 (f / 1 MHz)^y`` [Np/m], complex wavenumber ``kappa = 2 pi f / c - i alpha``
(time convention ``exp(+i w t)``, outgoing wave ``exp(-i kappa r) / r``). ``water`` (the coupling
bath, 20 C) and ``soft_tissue`` (generic soft tissue) are the usual ones. The sound speed does not
disperse with frequency (the causal dispersion of a power law is below 0.5 % over 0.5-2 MHz in
soft tissue and is neglected).

Planar layered medium (straight-ray approximation)
--------------------------------------------------
Layers are slabs perpendicular to the beam axis (+z of the transducer frame): layer 0 is the
coupling medium (water) from the transducer up to ``z = first_interface``, then layers of given
thickness, and the last layer extends to infinity. The field code (:mod:`fus.physics.field`)
propagates each source-to-point contribution along the straight segment between them:

* phase and attenuation accumulate per layer, ``sum_l kappa_l L_l``, with ``L_l`` the length of
  the segment inside layer ``l``;
* every interface crossed multiplies the pressure by its normal-incidence transmission
  coefficient ``T = 2 Z2 / (Z1 + Z2)``, ``Z = rho c``;
* spherical spreading ``1 / r`` uses the straight source-to-point distance.

This is an approximation: no refraction (Snell's law bends rays at oblique incidence: a ray at 20 deg
in water runs at 19.4 deg in fat and 54 deg in cortical bone), no shear waves in bone (mode
conversion is ignored; beyond the longitudinal critical angle, ~ 25 deg from water, only shear
waves enter cortical bone and this model is wrong there), no reflections inside the layers (no
standing waves), and normal-incidence transmission at all angles. It is good for what the body
wall of a bone-metastasis treatment needs from it: the near-field heating of skin, fat and muscle
along a beam that crosses the layers within ~ 15-20 deg of normal, the energy that reaches the
bone surface, and the absorbed power density there; it is not a model of the field inside or
beyond bone at oblique incidence, nor of the focal shift and distortion caused by refraction.

TOML layer file
---------------
::

    name = "thigh over femur"
    first_interface_mm = -40.0     # z of the first interface, transducer frame [mm]

    [[layers]]
    tissue = "water"               # coupling medium: no thickness, extends to the transducer

    [[layers]]
    tissue = "skin"
    thickness_mm = 2.0

    [[layers]]
    tissue = "fat"
    thickness_mm = 10.0

    [[layers]]
    tissue = "marrow"              # last layer: no thickness, extends to infinity

Tissue names are those of :func:`fus.physics.tissues.get_tissue` (aliases such as ``bone`` and
``marrow`` included). Errors name the file, the field and the value found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from fus.backend import array_module
from fus.errors import DataError, InvalidParameterError
from fus.physics.tissues import Tissue, get_tissue, tissue_names
from fus.physics.toml_file import read_toml

__all__ = [
    "HomogeneousMedium",
    "LayeredMedium",
    "Medium",
    "water",
    "soft_tissue",
    "load_medium",
    "medium_from_spec",
    "as_medium",
    "transmission_coefficient",
]


def _frequency(frequency: Any) -> float:
    try:
        f = float(frequency)
    except (TypeError, ValueError):
        raise InvalidParameterError("frequency", frequency, "must be a number [Hz]") from None
    if not math.isfinite(f) or f <= 0.0:
        raise InvalidParameterError("frequency", frequency, "must be finite and > 0 [Hz]")
    return f


def transmission_coefficient(z1: float, z2: float) -> float:
    """Normal-incidence pressure transmission coefficient ``2 Z2 / (Z1 + Z2)`` from medium 1 into 2.

    Parameters
    ----------
    z1, z2 : float
        Characteristic impedances ``rho c`` [kg/m^2/s] of the incident and transmitting media.

    Returns
    -------
    float
        ``T`` (dimensionless; > 1 into a harder medium).
    """
    return 2.0 * z2 / (z1 + z2)


@dataclass(frozen=True)
class HomogeneousMedium:
    """One tissue filling all space.

    Parameters
    ----------
    tissue : Tissue or str
        A :class:`~fus.physics.tissues.Tissue` or a tissue name / alias.
    """

    tissue: Tissue

    def __post_init__(self) -> None:
        object.__setattr__(self, "tissue", get_tissue(self.tissue))

    # --------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        """Tissue name."""
        return self.tissue.name

    @property
    def density(self) -> float:
        """Density [kg/m^3]."""
        return float(self.tissue.density)

    @property
    def sound_speed(self) -> float:
        """Sound speed [m/s]."""
        return float(self.tissue.sound_speed)

    @property
    def impedance(self) -> float:
        """Characteristic impedance ``rho c`` [kg/m^2/s]."""
        return self.density * self.sound_speed

    def attenuation(self, frequency: float) -> float:
        """Amplitude attenuation ``alpha0 (f / 1 MHz)^y`` [Np/m] at ``frequency`` [Hz]."""
        f = _frequency(frequency)
        return float(self.tissue.alpha0 * (f / 1e6) ** self.tissue.alpha_power)

    def absorption(self, frequency: float) -> float:
        """Amplitude absorption coefficient (the part of the attenuation turned into heat) [Np/m]."""
        return float(self.tissue.absorption_fraction) * self.attenuation(frequency)

    def wavenumber(self, frequency: float) -> float:
        """Real wavenumber ``2 pi f / c`` [rad/m]."""
        return 2.0 * math.pi * _frequency(frequency) / self.sound_speed

    def kappa(self, frequency: float) -> complex:
        """Complex wavenumber ``k - i alpha`` [1/m]."""
        return complex(self.wavenumber(frequency), -self.attenuation(frequency))

    # --------------------------------------------------------------- common medium API
    @property
    def source_medium(self) -> "HomogeneousMedium":
        """The medium the transducer radiates into (itself)."""
        return self

    @property
    def layers(self) -> tuple["HomogeneousMedium", ...]:
        """The media of the layers, in order (one)."""
        return (self,)

    @property
    def is_layered(self) -> bool:
        """False."""
        return False

    def layer_index(self, z: Any) -> Any:
        """Index of the layer at each ``z`` [m] (all 0), same array module and shape as ``z``."""
        xp = array_module(z)
        return xp.zeros(xp.asarray(z).shape, dtype=xp.int32)

    def describe(self, frequency: float | None = None) -> dict[str, Any]:
        """A JSON-serialisable description; with ``frequency`` [Hz] also alpha at it."""
        return {"type": "homogeneous", **_layer_summary(self, frequency)}

    def __repr__(self) -> str:
        return f"HomogeneousMedium({self.name!r}, c={self.sound_speed:g} m/s, rho={self.density:g} kg/m^3)"


def _layer_summary(m: HomogeneousMedium, frequency: float | None) -> dict[str, Any]:
    t = m.tissue
    out: dict[str, Any] = {
        "tissue": t.name,
        "density_kg_m3": t.density,
        "sound_speed_m_s": t.sound_speed,
        "alpha0_Np_m_MHz^y": t.alpha0,
        "alpha_power": t.alpha_power,
        "absorption_fraction": t.absorption_fraction,
        "source": t.source,
    }
    if frequency is not None:
        out["attenuation_Np_m"] = m.attenuation(frequency)
        out["absorption_Np_m"] = m.absorption(frequency)
    return out


@dataclass(frozen=True)
class LayeredMedium:
    """Planar layers perpendicular to the beam axis (+z of the transducer frame).

    See the module docstring for the straight-ray model and its limits.

    Parameters
    ----------
    layers : sequence of (Tissue or str or HomogeneousMedium, thickness or None)
        Layer 0 is the coupling medium on the transducer side (thickness ``None``: it extends to
        the transducer); every following layer but the last has a thickness [m] > 0; the last
        layer has thickness ``None`` (it extends to infinity). At least two layers.
    first_interface : float
        ``z`` of the interface between layer 0 and layer 1, transducer frame [m].
    name : str
        A label for reports.

    Raises
    ------
    InvalidParameterError
        Fewer than two layers, missing / non-positive / misplaced thicknesses, unknown tissues or
        a non-finite interface position.
    """

    layers: tuple[HomogeneousMedium, ...]
    thicknesses: tuple[float, ...]
    first_interface: float
    name: str = "layered"

    def __init__(
        self,
        layers: Sequence[tuple[Union[Tissue, str, HomogeneousMedium], float | None]],
        first_interface: float,
        name: str = "layered",
    ) -> None:
        try:
            pairs = [(m, t) for m, t in layers]
        except (TypeError, ValueError):
            raise InvalidParameterError(
                "layers", layers, "must be a sequence of (tissue, thickness [m] or None) pairs"
            ) from None
        if len(pairs) < 2:
            raise InvalidParameterError(
                "layers", len(pairs), "a layered medium needs at least two layers (use HomogeneousMedium for one)"
            )
        media: list[HomogeneousMedium] = []
        thick: list[float] = []
        last = len(pairs) - 1
        for i, (m, t) in enumerate(pairs):
            media.append(m if isinstance(m, HomogeneousMedium) else HomogeneousMedium(m))
            if i == 0 or i == last:
                if t is not None:
                    where = "first (coupling) layer extends to the transducer" if i == 0 else (
                        "last layer extends to infinity"
                    )
                    raise InvalidParameterError(
                        f"layers[{i}].thickness", t, f"must be None: the {where}"
                    )
                continue
            try:
                tv = float(t)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise InvalidParameterError(f"layers[{i}].thickness", t, "must be a thickness [m] > 0") from None
            if not math.isfinite(tv) or tv <= 0.0:
                raise InvalidParameterError(f"layers[{i}].thickness", t, "must be finite and > 0 [m]")
            thick.append(tv)
        try:
            z0 = float(first_interface)
        except (TypeError, ValueError):
            raise InvalidParameterError("first_interface", first_interface, "must be a number [m]") from None
        if not math.isfinite(z0):
            raise InvalidParameterError("first_interface", first_interface, "must be finite [m]")
        object.__setattr__(self, "layers", tuple(media))
        object.__setattr__(self, "thicknesses", tuple(thick))
        object.__setattr__(self, "first_interface", z0)
        object.__setattr__(self, "name", str(name))

    # --------------------------------------------------------------- geometry
    @property
    def n_layers(self) -> int:
        """Number of layers."""
        return len(self.layers)

    @property
    def interfaces(self) -> np.ndarray:
        """``z`` of the interfaces [m], shape (n_layers - 1,), increasing."""
        return self.first_interface + np.concatenate([[0.0], np.cumsum(self.thicknesses)])

    @property
    def source_medium(self) -> HomogeneousMedium:
        """Layer 0: the medium the transducer radiates into."""
        return self.layers[0]

    @property
    def is_layered(self) -> bool:
        """True."""
        return True

    def layer_index(self, z: Any) -> Any:
        """Index of the layer containing each ``z`` [m] (a point on an interface belongs to the
        deeper layer), same array module and shape as ``z``, int32."""
        xp = array_module(z)
        zi = xp.asarray(self.interfaces, dtype=xp.asarray(z).dtype)
        return xp.searchsorted(zi, xp.asarray(z), side="right").astype(xp.int32)

    # --------------------------------------------------------------- per-layer tables
    def impedances(self) -> np.ndarray:
        """``rho c`` of each layer [kg/m^2/s], shape (n_layers,)."""
        return np.array([m.impedance for m in self.layers])

    def transmission(self) -> np.ndarray:
        """Cumulative pressure transmission from layer 0 into each layer, shape (n_layers,).

        ``T[j] = prod_{l < j} 2 Z_{l+1} / (Z_l + Z_{l+1})`` (``T[0] = 1``).
        """
        z = self.impedances()
        t = np.ones(self.n_layers)
        for j in range(1, self.n_layers):
            t[j] = t[j - 1] * transmission_coefficient(z[j - 1], z[j])
        return t

    def kappas(self, frequency: float) -> np.ndarray:
        """Complex wavenumber ``k - i alpha`` of each layer [1/m], shape (n_layers,)."""
        return np.array([m.kappa(frequency) for m in self.layers])

    def crossing_phase(self, frequency: float) -> np.ndarray:
        """``C[j] = sum_{0 < l < j} kappa_l t_l``: complex phase of crossing the whole layers between
        layer 0 and layer ``j`` at normal incidence [rad + i Np], shape (n_layers,)."""
        kap = self.kappas(frequency)
        c = np.zeros(self.n_layers, dtype=np.complex128)
        for j in range(2, self.n_layers):
            c[j] = c[j - 1] + kap[j - 1] * self.thicknesses[j - 2]
        return c

    def describe(self, frequency: float | None = None) -> dict[str, Any]:
        """A JSON-serialisable description (mm); with ``frequency`` [Hz] also alpha per layer."""
        zi = self.interfaces
        layers = []
        for i, m in enumerate(self.layers):
            entry = _layer_summary(m, frequency)
            entry["z_start_mm"] = None if i == 0 else float(zi[i - 1] * 1e3)
            entry["z_end_mm"] = None if i == self.n_layers - 1 else float(zi[i] * 1e3)
            entry["thickness_mm"] = None if i in (0, self.n_layers - 1) else self.thicknesses[i - 1] * 1e3
            layers.append(entry)
        return {
            "type": "layered (planar, straight rays, normal-incidence transmission)",
            "name": self.name,
            "first_interface_mm": self.first_interface * 1e3,
            "layers": layers,
            "transmission_to_layer": self.transmission().tolist(),
        }

    def __repr__(self) -> str:
        parts = [self.layers[0].name] + [
            f"{m.name} {t * 1e3:g} mm" for m, t in zip(self.layers[1:-1], self.thicknesses)
        ] + [self.layers[-1].name]
        return f"LayeredMedium({self.name!r}, z0={self.first_interface * 1e3:g} mm: " + " | ".join(parts) + ")"


Medium = Union[HomogeneousMedium, LayeredMedium]


def water() -> HomogeneousMedium:
    """Degassed water at 20 C (the coupling bath), from :mod:`fus.physics.tissues`."""
    return HomogeneousMedium("water")


def soft_tissue() -> HomogeneousMedium:
    """Generic soft tissue (c = 1540 m/s, 0.5 dB/cm/MHz), from :mod:`fus.physics.tissues`."""
    return HomogeneousMedium("soft_tissue")


def as_medium(medium: Any) -> Medium:
    """Turn ``None`` (water), a tissue name, a :class:`Tissue` or a medium into a medium."""
    if medium is None:
        return water()
    if isinstance(medium, (HomogeneousMedium, LayeredMedium)):
        return medium
    if isinstance(medium, (str, Tissue)):
        return HomogeneousMedium(medium)
    raise InvalidParameterError(
        "medium", type(medium).__name__, "must be a HomogeneousMedium, a LayeredMedium, a Tissue or a tissue name"
    )


# ------------------------------------------------------------------------------ TOML
def load_medium(path: str | Path) -> Medium:
    """Read a layered medium (or a one-layer homogeneous medium) from a TOML file.

    See the module docstring for the format. A file with a single ``[[layers]]`` entry (and no
    ``first_interface_mm``) gives a :class:`HomogeneousMedium`.

    Parameters
    ----------
    path : str or Path
        The TOML file (thicknesses and positions in mm).

    Returns
    -------
    HomogeneousMedium or LayeredMedium

    Raises
    ------
    DataError
        Unreadable or malformed TOML, missing or wrong-typed fields, unknown tissue names,
        non-positive thicknesses; the message names the file, the field and the value.
    """
    p = Path(path)
    doc = read_toml(p, "medium")

    known = {"name", "first_interface_mm", "layers"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise DataError(f"unknown key(s) {unknown}; expected {sorted(known)}", path=p, tag=unknown[0])
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
        raise DataError(
            f"needs a non-empty array of [[layers]] tables, found {layers!r}", path=p, tag="layers"
        )
    name = doc.get("name", p.stem)
    if not isinstance(name, str):
        raise DataError(f"must be a string, found {name!r}", path=p, tag="name")

    parsed: list[tuple[Tissue, float | None]] = []
    for i, entry in enumerate(layers):
        extra = sorted(set(entry) - {"tissue", "thickness_mm"})
        if extra:
            raise DataError(
                f"unknown key(s) {extra}; a layer has 'tissue' and 'thickness_mm'", path=p, tag=f"layers[{i}]"
            )
        tname = entry.get("tissue")
        if not isinstance(tname, str):
            raise DataError(f"must be a tissue name, found {tname!r}", path=p, tag=f"layers[{i}].tissue")
        try:
            tissue = get_tissue(tname)
        except InvalidParameterError:
            raise DataError(
                f"unknown tissue {tname!r}; known tissues: {', '.join(tissue_names())}",
                path=p,
                tag=f"layers[{i}].tissue",
            ) from None
        thickness = entry.get("thickness_mm")
        if thickness is not None:
            if isinstance(thickness, bool) or not isinstance(thickness, (int, float)):
                raise DataError(
                    f"must be a number [mm], found {thickness!r}", path=p, tag=f"layers[{i}].thickness_mm"
                )
            if not math.isfinite(thickness) or thickness <= 0:
                raise DataError(
                    f"must be finite and > 0 [mm], found {thickness!r}", path=p, tag=f"layers[{i}].thickness_mm"
                )
        parsed.append((tissue, None if thickness is None else float(thickness) * 1e-3))

    if len(parsed) == 1:
        if parsed[0][1] is not None:
            raise DataError(
                "a single layer fills all space and takes no thickness_mm", path=p, tag="layers[0].thickness_mm"
            )
        if "first_interface_mm" in doc:
            raise DataError(
                "a single layer has no interface: remove first_interface_mm or add layers",
                path=p,
                tag="first_interface_mm",
            )
        return HomogeneousMedium(parsed[0][0])

    n = len(parsed)
    for i, (_, t) in enumerate(parsed):
        if i == 0 and t is not None:
            raise DataError(
                "the first layer is the coupling medium and extends to the transducer: remove its thickness_mm",
                path=p,
                tag="layers[0].thickness_mm",
            )
        if i == n - 1 and t is not None:
            raise DataError(
                "the last layer extends to infinity: remove its thickness_mm or add a layer after it",
                path=p,
                tag=f"layers[{i}].thickness_mm",
            )
        if 0 < i < n - 1 and t is None:
            raise DataError("missing (every layer between the first and the last needs one)", path=p,
                            tag=f"layers[{i}].thickness_mm")
    z0 = doc.get("first_interface_mm")
    if isinstance(z0, bool) or not isinstance(z0, (int, float)) or not math.isfinite(z0):
        raise DataError(
            f"must be the z of the first interface in mm (transducer frame), found {z0!r}",
            path=p,
            tag="first_interface_mm",
        )
    return LayeredMedium(parsed, float(z0) * 1e-3, name=name)


def medium_from_spec(spec: str) -> Medium:
    """A medium from a command-line word: ``water``, ``tissue`` (generic soft tissue), any tissue
    name of the table, or a path to a ``.toml`` layer file.

    Raises
    ------
    InvalidParameterError
        Unknown word.
    DataError
        Bad TOML file.
    """
    s = str(spec).strip()
    if s.lower().endswith(".toml"):
        return load_medium(s)
    if s.lower() == "tissue":
        return soft_tissue()
    try:
        return HomogeneousMedium(s)
    except InvalidParameterError:
        raise InvalidParameterError(
            "medium",
            spec,
            f"must be 'water', 'tissue', a tissue name ({', '.join(tissue_names())}) or a .toml layer file",
        ) from None
