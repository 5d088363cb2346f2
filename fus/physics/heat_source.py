"""The heat source of a sonication: a transducer focused through a phantom's layers -> Q [W/m^3].

:func:`phantom_heat_source` is what ``fus heat`` and the closed-loop twin (``fus simulate``) use:
the pressure of the transducer focused on a point through the phantom's planar layers
(:func:`fus.physics.field.pressure`), scaled to an acoustic power, turned into the absorbed power
density of each voxel's tissue (:func:`fus.physics.field.heat_source_labels`). Q scales linearly
with the power, so one computation per focus serves every power.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fus.backend import asnumpy
from fus.physics.drive import scale_to_power
from fus.physics.field import focus_phases_in_medium, heat_source_labels, pressure

__all__ = ["phantom_heat_source"]


def phantom_heat_source(
    phantom: Any,
    transducer: Any,
    focus: np.ndarray,
    power: float,
    *,
    progress: bool = True,
    field_spacing: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Absorbed power density Q [W/m^3] on the phantom grid at ``power`` W acoustic.

    The field code (:mod:`fus.physics.field`) computes the pressure of ``transducer`` focused on
    ``focus`` through the phantom's planar layers; Q uses each voxel's tissue (label). With
    ``field_spacing`` [m] coarser than the phantom's, |p|^2 is computed on a coarser grid over the
    same box and interpolated (trilinear) to the phantom's voxels before Q is formed per voxel
    (faster; it smooths the focal peak over the coarse spacing).

    Returns
    -------
    q : ndarray, float64, the phantom's shape
        Q [W/m^3].
    info : dict
        The field computation's summary (JSON-ready), with the peak pressure [Pa].
    """
    medium = phantom.layered_medium()
    src = medium.source_medium
    weights = focus_phases_in_medium(transducer, focus, medium)
    u = scale_to_power(transducer, weights, power, src.density, src.sound_speed)
    grid = phantom.grid
    fine = np.asarray(grid.spacing)
    if field_spacing is not None and np.any(field_spacing > fine * (1 + 1e-9)):
        from scipy.ndimage import map_coordinates

        from fus.physics.grid import Grid

        step = np.maximum(fine, field_spacing)
        ext = np.asarray(grid.extent)
        shape_c = tuple(int(v) for v in np.ceil(ext / step - 1e-9).astype(int) + 1)
        n_c = np.asarray(shape_c)
        sp_c = np.where(n_c > 1, ext / np.maximum(n_c - 1, 1), fine)  # same box, end points shared
        coarse = Grid.centred(shape_c, tuple(sp_c), tuple(grid.centre))
        p_c, info = pressure(transducer, u, coarse, medium, progress=progress, return_info=True)
        mag2 = np.abs(asnumpy(p_c)).astype(np.float64) ** 2
        idx = np.meshgrid(
            *[np.arange(n) * (s_f / s_c) for n, s_f, s_c in zip(grid.shape, grid.spacing, coarse.spacing)],
            indexing="ij",
        )
        mag = np.sqrt(map_coordinates(mag2, idx, order=1, mode="nearest"))
        peak = float(np.sqrt(mag2.max()))
        info = dict(info, field_spacing_mm=[v * 1e3 for v in coarse.spacing], field_grid=list(shape_c))
    else:
        p, info = pressure(transducer, u, grid, medium, progress=progress, return_info=True)
        mag = asnumpy(p)
        peak = float(np.abs(mag).max())
    q = asnumpy(heat_source_labels(mag, phantom.labels, frequency=transducer.frequency)).astype(np.float64)
    info = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, list))}
    info["peak_pressure_Pa"] = peak
    return q, info
