"""The one table of tissue properties (acoustic and thermal), each value with its source.

Every tissue is a frozen :class:`Tissue`; :data:`TISSUES` maps its name to it and
:func:`get_tissue` looks one up with a clear error. The same table serves the acoustic media of
the field code (density, sound speed, power-law attenuation, absorption) and the Pennes bioheat
model (conductivity, specific heat, perfusion). SI units throughout, except where stated
(attenuation per MHz^y, perfusion in ml/min/kg as the databases tabulate it).

Sources
-------
[ITIS] P. A. Hasgall, F. Di Gennaro, C. Baumgartner, E. Neufeld, B. Lloyd, M. C. Gosselin,
       D. Payne, A. Klingenboeck, N. Kuster, "IT'IS Database for thermal and electromagnetic
       parameters of biological tissues", Version 4.1, Feb 22, 2022, DOI 10.13099/VIP21000-04-1,
       itis.swiss/database. Average values of the tables "Density", "Speed of Sound",
       "Attenuation Constant" (alpha = alpha0 f^b, fitted by IT'IS; b = 1 where no frequency
       dependence was available), "Thermal Conductivity", "Heat Capacity" and "Heat Transfer
       Rate" (perfusion, ml/min/kg). The values below were transcribed from v4.1 by hand (the
       on-line database could not be queried from the development machine); the sound speeds of
       fat (1440.2 m/s) and muscle (1588.4 m/s) were cross-checked against an independent code
       that quotes IT'IS. Check against the current release before clinical-grade use.
[WATER] Degassed water at 20 C: sound speed (Marczak 1997) and density (Kell 1975) from
       :mod:`fus.physics.constants`; attenuation 2.17e-3 dB/cm/MHz^2 = 0.0250 Np/m/MHz^2, y = 2
       (Pinkerton, Nature 160, 128 (1947), 20 C); thermal conductivity 0.598 W/m/K and specific
       heat 4182 J/kg/K at 20 C (IAPWS formulations as tabulated in the CRC Handbook of Chemistry
       and Physics).
[SOFT] Generic soft tissue: c = 1540 m/s and alpha = 0.5 dB/cm/MHz (5.76 Np/m/MHz, y = 1), the
       conventional average soft tissue of diagnostic ultrasound (IEC 61391-1 / AIUM); density
       1050 kg/m^3 and thermal properties of IT'IS "Muscle" rounded to a generic value
       (k = 0.5 W/m/K, c = 3600 J/kg/K, perfusion 40 ml/min/kg) -- an assumption, stated here.

Assumptions
-----------
* **Absorption.** ``absorption_fraction`` is the fraction of the (amplitude) attenuation
  coefficient that is absorption, i.e. converted to heat: ``alpha_abs = f_abs * alpha``. In soft
  tissue at 0.5-2 MHz scattering is a small part of attenuation and the usual HIFU practice is
  ``f_abs = 1`` (absorption = attenuation; e.g. Hynynen's and k-Wave's bioheat examples), which we
  adopt (it slightly over-predicts heating: conservative for the near field). In cortical bone a
  large part of the attenuation is scattering (Pinton et al., Med. Phys. 39, 299 (2012), skull:
  absorption ~ 20-50 % of attenuation); we take ``f_abs = 0.5`` for cortical bone -- an
  assumption of this table, flagged in its notes.
* **Bone-metastasis lesion.** An osteolytic metastasis replaces bone by soft tumour tissue. IT'IS
  has no tumour entry; the lesion is modelled with the acoustic properties of generic soft tissue
  [SOFT] and the thermal properties of IT'IS muscle, with perfusion 60 ml/min/kg (tumour rims are
  better perfused than muscle, their necrotic cores worse; an assumption).
* **Blood** as a tissue (a voxel inside a large vessel) has no Pennes perfusion term of its own:
  perfusion 0 (the vessel's convective cooling is not modelled by Pennes).
* **Perfusion -> Pennes coefficient.** With perfusion ``P`` [ml/min/kg] (blood volume per minute per
  kg of tissue), tissue density ``rho`` and blood density and specific heat ``rho_b``, ``c_b``
  ([ITIS] "Blood"): ``w_b c_b = P * 1e-6 / 60 * rho * rho_b * c_b`` [W/m^3/K]
  (``w_b`` [kg/m^3/s] is the blood mass flow per unit tissue volume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from fus.errors import InvalidParameterError
from fus.physics.constants import WATER_DENSITY_20C, WATER_SOUND_SPEED_20C

__all__ = [
    "Tissue",
    "TISSUES",
    "BLOOD_DENSITY",
    "BLOOD_SPECIFIC_HEAT",
    "get_tissue",
    "tissue_names",
    "attenuation",
    "absorption",
    "acoustic_impedance",
    "perfusion_coefficient",
]

#: Density of blood [kg/m^3] used in the Pennes perfusion term ([ITIS] "Blood").
BLOOD_DENSITY: float = 1050.0
#: Specific heat of blood [J/kg/K] used in the Pennes perfusion term ([ITIS] "Blood").
BLOOD_SPECIFIC_HEAT: float = 3617.0


@dataclass(frozen=True)
class Tissue:
    """Acoustic and thermal properties of one tissue (values at 37 C unless stated).

    Parameters
    ----------
    name : str
        Key in :data:`TISSUES`.
    label : int
        Integer label of this tissue in label volumes (0 = water bath).
    density : float
        Mass density rho [kg/m^3].
    sound_speed : float
        Longitudinal speed of sound c [m/s].
    alpha0 : float
        Power-law attenuation prefactor [Np/m/MHz^y]: ``alpha(f) = alpha0 * (f / 1 MHz)^y``
        (amplitude attenuation).
    alpha_power : float
        Power-law exponent y (dimensionless).
    absorption_fraction : float
        Fraction of the attenuation that is absorbed (turned into heat), 0..1.
    conductivity : float
        Thermal conductivity k [W/m/K].
    specific_heat : float
        Specific heat capacity c [J/kg/K].
    perfusion : float
        Blood perfusion [ml/min/kg] (ml of blood per minute per kg of tissue).
    source : str
        Where the values come from (keys of the module docstring) and any assumption.
    """

    name: str
    label: int
    density: float
    sound_speed: float
    alpha0: float
    alpha_power: float
    absorption_fraction: float
    conductivity: float
    specific_heat: float
    perfusion: float
    source: str

    @property
    def heat_capacity(self) -> float:
        """Volumetric heat capacity rho c [J/m^3/K]."""
        return self.density * self.specific_heat

    @property
    def perfusion_coefficient(self) -> float:
        """Pennes perfusion coefficient w_b c_b [W/m^3/K] (see :func:`perfusion_coefficient`)."""
        return perfusion_coefficient(self)

    @property
    def impedance(self) -> float:
        """Characteristic acoustic impedance rho c [kg/m^2/s] (Rayl)."""
        return self.density * self.sound_speed

    @property
    def diffusivity(self) -> float:
        """Thermal diffusivity k / (rho c) [m^2/s]."""
        return self.conductivity / self.heat_capacity


_NEPER_PER_DB = math.log(10.0) / 20.0  # 1 dB = 0.1151 Np

_TABLE: tuple[Tissue, ...] = (
    Tissue(
        "water", 0, WATER_DENSITY_20C, WATER_SOUND_SPEED_20C,
        2.17e-3 * 100 * _NEPER_PER_DB, 2.0, 1.0, 0.598, 4182.0, 0.0,
        "[WATER] degassed bath at 20 C",
    ),
    Tissue(
        "skin", 1, 1109.0, 1624.0, 21.158, 1.0, 1.0, 0.37, 3391.0, 106.0,
        "[ITIS] Skin; absorption = attenuation (assumption)",
    ),
    Tissue(
        "fat", 2, 911.0, 1440.2, 4.3578, 0.95, 1.0, 0.21, 2348.0, 33.0,
        "[ITIS] Fat; absorption = attenuation (assumption)",
    ),
    Tissue(
        "muscle", 3, 1090.0, 1588.4, 7.1088, 1.09, 1.0, 0.49, 3421.0, 37.0,
        "[ITIS] Muscle; absorption = attenuation (assumption)",
    ),
    Tissue(
        "cortical_bone", 4, 1908.0, 3514.9, 54.553, 1.0, 0.5, 0.32, 1313.0, 10.0,
        "[ITIS] Bone (Cortical); absorption fraction 0.5 (assumption, Pinton et al. 2012)",
    ),
    Tissue(
        "marrow_red", 5, 1029.0, 1450.0, 5.7565, 1.0, 1.0, 0.28, 2666.0, 135.0,
        "[ITIS] Bone Marrow (Red) thermal properties and density; sound speed and attenuation "
        "approximate (fat-rich marrow, not verified against v4.1); absorption = attenuation",
    ),
    Tissue(
        "spinal_cord", 6, 1075.0, 1542.0, 11.4, 1.0, 1.0, 0.51, 3630.0, 160.0,
        "[ITIS] Spinal Cord density and thermal properties; sound speed and attenuation approximate "
        "(nervous tissue, not verified against v4.1); absorption = attenuation",
    ),
    Tissue(
        "lesion", 7, 1050.0, 1540.0, 0.5 * 100 * _NEPER_PER_DB, 1.0, 1.0, 0.49, 3421.0, 60.0,
        "osteolytic bone metastasis (assumption): acoustics of [SOFT], thermal of [ITIS] Muscle, "
        "perfusion 60 ml/min/kg",
    ),
    Tissue(
        "soft_tissue", 8, 1050.0, 1540.0, 0.5 * 100 * _NEPER_PER_DB, 1.0, 1.0, 0.5, 3600.0, 40.0,
        "[SOFT] generic soft tissue (assumption)",
    ),
    Tissue(
        "blood", 9, BLOOD_DENSITY, 1578.2, 1.5, 1.3, 1.0, 0.52, BLOOD_SPECIFIC_HEAT, 0.0,
        "[ITIS] Blood (attenuation fit approximate); no Pennes perfusion term in blood itself "
        "(assumption)",
    ),
)

#: All tissues by name.
TISSUES: dict[str, Tissue] = {t.name: t for t in _TABLE}

_ALIASES: dict[str, str] = {
    "bath": "water",
    "bone": "cortical_bone",
    "cortical": "cortical_bone",
    "marrow": "marrow_red",
    "red_marrow": "marrow_red",
    "bone_marrow": "marrow_red",
    "cord": "spinal_cord",
    "metastasis": "lesion",
    "tumour": "lesion",
    "tumor": "lesion",
    "soft": "soft_tissue",
}


def tissue_names() -> list[str]:
    """Names of the tissues in the table, in label order."""
    return [t.name for t in _TABLE]


def get_tissue(name: Union[str, Tissue]) -> Tissue:
    """Look a tissue up by name (case-insensitive; spaces and hyphens read as underscores).

    Parameters
    ----------
    name : str or Tissue
        A key of :data:`TISSUES` or an alias (``bone``, ``marrow``, ``cord``, ``tumour`` ...); a
        :class:`Tissue` is returned unchanged.

    Returns
    -------
    Tissue

    Raises
    ------
    InvalidParameterError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Tissue):
        return name
    if not isinstance(name, str):
        raise InvalidParameterError("tissue", name, "must be a tissue name (str)")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    try:
        return TISSUES[key]
    except KeyError:
        raise InvalidParameterError(
            "tissue", name, f"unknown tissue; known tissues: {', '.join(TISSUES)}"
        ) from None


def _frequency(frequency_hz: float) -> float:
    try:
        f = float(frequency_hz)
    except (TypeError, ValueError):
        raise InvalidParameterError("frequency_hz", frequency_hz, "must be a number [Hz]") from None
    if not math.isfinite(f) or f <= 0:
        raise InvalidParameterError("frequency_hz", frequency_hz, "must be a finite frequency > 0 [Hz]")
    return f


def attenuation(tissue: Union[str, Tissue], frequency_hz: float) -> float:
    """Amplitude attenuation coefficient ``alpha0 * (f / 1 MHz)^y`` [Np/m].

    Parameters
    ----------
    tissue : str or Tissue
    frequency_hz : float
        Frequency [Hz], > 0.

    Returns
    -------
    float
        Attenuation [Np/m] (pressure amplitude decays as ``exp(-alpha z)``).
    """
    t = get_tissue(tissue)
    f_mhz = _frequency(frequency_hz) / 1e6
    return t.alpha0 * f_mhz**t.alpha_power


def absorption(tissue: Union[str, Tissue], frequency_hz: float) -> float:
    """Amplitude absorption coefficient ``absorption_fraction * attenuation`` [Np/m].

    The absorbed power density of a plane wave of intensity I is ``Q = 2 * alpha_abs * I``.

    Parameters
    ----------
    tissue : str or Tissue
    frequency_hz : float
        Frequency [Hz], > 0.

    Returns
    -------
    float
        Absorption coefficient [Np/m].
    """
    t = get_tissue(tissue)
    return t.absorption_fraction * attenuation(t, frequency_hz)


def acoustic_impedance(tissue: Union[str, Tissue]) -> float:
    """Characteristic acoustic impedance ``rho * c`` [kg/m^2/s] (Rayl)."""
    return get_tissue(tissue).impedance


def perfusion_coefficient(tissue: Union[str, Tissue]) -> float:
    """Pennes perfusion coefficient ``w_b c_b`` [W/m^3/K].

    ``w_b c_b = P [ml/min/kg] * 1e-6 / 60 * rho * rho_b * c_b`` with the tissue density rho and
    blood density and specific heat :data:`BLOOD_DENSITY`, :data:`BLOOD_SPECIFIC_HEAT`.
    """
    t = get_tissue(tissue)
    return t.perfusion * 1e-6 / 60.0 * t.density * BLOOD_DENSITY * BLOOD_SPECIFIC_HEAT
