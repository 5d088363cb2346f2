"""Public low-level kernel functions, one per kernel in ``kernels/``: validate, then launch.

Each function takes arrays of either backend, validates shapes, dtypes and sizes (raising
:class:`fus.errors.InvalidParameterError` with the parameter and value), and returns an array of
the active backend (see :mod:`fus.backend`).
"""

from fus.kernels.bioheat import bioheat_step
from fus.kernels.dose import cem43
from fus.kernels.rayleigh import piston_angular_functions, rayleigh, rayleigh_far, rayleigh_layered
from fus.kernels.thermometry import prf_phase, prf_row_phase_sums, prf_row_poly_sums, prf_temperature, prf_temperature_dose

__all__ = [
    "bioheat_step",
    "cem43",
    "prf_phase",
    "prf_row_phase_sums",
    "prf_row_poly_sums",
    "prf_temperature",
    "prf_temperature_dose",
    "piston_angular_functions",
    "rayleigh",
    "rayleigh_far",
    "rayleigh_layered",
]
