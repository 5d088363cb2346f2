"""Transducers: geometry, builders, element tables and discretisation (public entry point).

This module gathers the public API of

* :mod:`fus.physics.transducer_geometry` — :class:`Transducer`, :func:`spherical_cap_array`,
  :func:`cap256`, :func:`bowl`, :func:`piston`;
* :mod:`fus.physics.transducer_io` — CSV / JSON element tables;
* :mod:`fus.physics.transducer_mesh` — :func:`discretise` into :class:`Patches`.

Transducer frame: origin at the geometric focus, +z along the beam; ``Transducer.to_scanner``
(4x4, rigid, metres) maps it to the scanner frame. SI units throughout (m, Hz, m^2).
"""

from fus.physics.transducer_geometry import (
    CAP256_APERTURE,
    CAP256_ELEMENT_DIAMETER,
    CAP256_FREQUENCY,
    CAP256_N_ELEMENTS,
    CAP256_RADIUS_OF_CURVATURE,
    GOLDEN_ANGLE,
    Transducer,
    bowl,
    bowl_depth,
    cap256,
    check_overlap,
    piston,
    spherical_cap_array,
)
from fus.physics.transducer_io import (
    COLUMNS,
    NORMAL_TOLERANCE,
    load_transducer,
    read_csv,
    read_json,
    save_transducer,
    write_csv,
    write_json,
)
from fus.physics.transducer_mesh import (
    DEFAULT_POINTS_PER_WAVELENGTH,
    MAX_PATCHES,
    Patches,
    discretise,
    element_basis,
)

__all__ = [
    "Transducer",
    "spherical_cap_array",
    "cap256",
    "bowl",
    "piston",
    "bowl_depth",
    "check_overlap",
    "read_csv",
    "write_csv",
    "read_json",
    "write_json",
    "load_transducer",
    "save_transducer",
    "Patches",
    "discretise",
    "element_basis",
    "DEFAULT_POINTS_PER_WAVELENGTH",
    "MAX_PATCHES",
    "COLUMNS",
    "NORMAL_TOLERANCE",
    "GOLDEN_ANGLE",
    "CAP256_N_ELEMENTS",
    "CAP256_ELEMENT_DIAMETER",
    "CAP256_RADIUS_OF_CURVATURE",
    "CAP256_APERTURE",
    "CAP256_FREQUENCY",
]
