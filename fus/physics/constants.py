"""Physical constants used by the acoustic models, each with its source.

All values are SI (m/s, kg/m^3); temperatures are in degrees Celsius.

Water
-----
Speed of sound: Marczak (1997), a fifth-order polynomial fitted to the time-of-flight
measurements of Del Grosso & Mader (1972) and others, valid 0-95 C at atmospheric pressure:

    c(T) = 1402.385 + 5.038813 T - 5.799136e-2 T^2 + 3.287156e-4 T^3
           - 1.398845e-6 T^4 + 2.787860e-9 T^5            [m/s, T in C]

W. Marczak, "Water as a standard in the measurements of speed of sound in liquids",
J. Acoust. Soc. Am. 102(5), 2776-2779 (1997).  c(20 C) = 1482.38 m/s, c(37 C) = 1523.65 m/s.

Density: Kell (1975), rational fit for air-free water at 1 atm, valid 0-150 C:

    rho(T) = (999.83952 + 16.945176 T - 7.9870401e-3 T^2 - 46.170461e-6 T^3
              + 105.56302e-9 T^4 - 280.54253e-12 T^5) / (1 + 16.879850e-3 T)    [kg/m^3]

G. S. Kell, "Density, thermal expansivity, and compressibility of liquid water from 0 to
150 C", J. Chem. Eng. Data 20(1), 97-105 (1975).  rho(20 C) = 998.20 kg/m^3,
rho(37 C) = 993.33 kg/m^3.

The defaults of the transducer and drive functions are degassed water at 20 C, the usual
coupling medium of a focused-ultrasound bath.
"""

from __future__ import annotations

import math

from fus.errors import InvalidParameterError

__all__ = [
    "water_sound_speed",
    "water_density",
    "WATER_SOUND_SPEED_20C",
    "WATER_SOUND_SPEED_37C",
    "WATER_DENSITY_20C",
    "WATER_DENSITY_37C",
    "DEFAULT_SOUND_SPEED",
    "DEFAULT_DENSITY",
]

_MARCZAK = (1.402385e3, 5.038813, -5.799136e-2, 3.287156e-4, -1.398845e-6, 2.787860e-9)
_KELL_NUM = (999.83952, 16.945176, -7.9870401e-3, -46.170461e-6, 105.56302e-9, -280.54253e-12)
_KELL_DEN = 16.879850e-3


def _check_temperature(temperature: float, low: float, high: float) -> float:
    t = float(temperature)
    if not math.isfinite(t) or t < low or t > high:
        raise InvalidParameterError(
            "temperature", temperature, f"must be a finite temperature in [{low}, {high}] C"
        )
    return t


def water_sound_speed(temperature: float) -> float:
    """Speed of sound in pure water at atmospheric pressure (Marczak 1997).

    Parameters
    ----------
    temperature : float
        Water temperature [C], 0 to 95.

    Returns
    -------
    float
        Speed of sound [m/s].
    """
    t = _check_temperature(temperature, 0.0, 95.0)
    return float(sum(coef * t**n for n, coef in enumerate(_MARCZAK)))


def water_density(temperature: float) -> float:
    """Density of air-free water at atmospheric pressure (Kell 1975).

    Parameters
    ----------
    temperature : float
        Water temperature [C], 0 to 150.

    Returns
    -------
    float
        Density [kg/m^3].
    """
    t = _check_temperature(temperature, 0.0, 150.0)
    num = sum(coef * t**n for n, coef in enumerate(_KELL_NUM))
    return float(num / (1.0 + _KELL_DEN * t))


#: Speed of sound in water at 20 C [m/s] (Marczak 1997).
WATER_SOUND_SPEED_20C: float = water_sound_speed(20.0)
#: Speed of sound in water at 37 C [m/s] (Marczak 1997).
WATER_SOUND_SPEED_37C: float = water_sound_speed(37.0)
#: Density of water at 20 C [kg/m^3] (Kell 1975).
WATER_DENSITY_20C: float = water_density(20.0)
#: Density of water at 37 C [kg/m^3] (Kell 1975).
WATER_DENSITY_37C: float = water_density(37.0)

#: Default sound speed of the coupling medium for patch sizes and drive phases [m/s].
DEFAULT_SOUND_SPEED: float = WATER_SOUND_SPEED_20C
#: Default density of the coupling medium for transfer functions and power [kg/m^3].
DEFAULT_DENSITY: float = WATER_DENSITY_20C
