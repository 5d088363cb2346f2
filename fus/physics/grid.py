"""Regular 3-D grids of field points.

A :class:`Grid` is a box of ``nx x ny x nz`` points with spacings ``(dx, dy, dz)`` placed in the
transducer frame (origin at the geometric focus, +z along the beam; SI metres inside). Voxel
``(i, j, k)`` sits at ``origin + (i dx, j dy, k dz)``; the flat point order is C order (``k``
fastest), so a flat array of values reshapes to :attr:`Grid.shape` directly, and the NIfTI
affine of :meth:`Grid.affine` maps voxel indices of that array to millimetres.

Grids are never materialised as a whole: :meth:`Grid.points` builds the coordinates of one range
of flat indices (in float64, then cast), on the host or the GPU, so the memory of a field
computation stays bounded by its chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from fus.errors import InvalidParameterError

__all__ = ["Grid"]


def _triple(name: str, value: Any, *, positive: bool) -> tuple[float, float, float]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, value, "must be a number or three numbers") from None
    if arr.ndim == 0:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,):
        raise InvalidParameterError(name, value, "must be a number or three numbers")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(name, value, "must be finite")
    if positive and np.any(arr <= 0.0):
        raise InvalidParameterError(name, value, "must be > 0")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Grid:
    """A regular grid of points in the transducer frame [m].

    Build one with :meth:`centred` (by its centre) or :meth:`from_origin` (by its first voxel);
    the constructor takes the first voxel as well.

    Parameters
    ----------
    shape : tuple of 3 int
        Number of points ``(nx, ny, nz)``, each >= 1 (use 1 for lines and planes).
    spacing : float or tuple of 3 float
        Point spacing ``(dx, dy, dz)`` [m], > 0.
    origin : tuple of 3 float
        Position of voxel ``(0, 0, 0)`` in the transducer frame [m].

    Raises
    ------
    InvalidParameterError
        Non-integer, zero or negative sizes, or non-finite / non-positive spacings.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        try:
            shape = tuple(int(s) for s in self.shape)
            exact = all(float(a) == float(b) for a, b in zip(shape, self.shape))
        except (TypeError, ValueError):
            raise InvalidParameterError("shape", self.shape, "must be three integers >= 1") from None
        if len(shape) != 3 or not exact or any(s < 1 for s in shape):
            raise InvalidParameterError("shape", self.shape, "must be three integers >= 1")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", _triple("spacing", self.spacing, positive=True))
        object.__setattr__(self, "origin", _triple("origin", self.origin, positive=False))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def centred(
        cls, shape: Sequence[int], spacing: float | Sequence[float], centre: Sequence[float] = (0.0, 0.0, 0.0)
    ) -> "Grid":
        """A grid whose centre (the point ``(shape - 1) / 2`` in voxel units) is ``centre`` [m].

        Parameters
        ----------
        shape : sequence of 3 int
            ``(nx, ny, nz)``.
        spacing : float or sequence of 3 float
            [m].
        centre : sequence of 3 float
            Grid centre in the transducer frame [m]; default the origin (geometric focus).
        """
        probe = cls(tuple(shape), spacing)  # validates shape and spacing
        c = _triple("centre", centre, positive=False)
        origin = tuple(c[i] - 0.5 * (probe.shape[i] - 1) * probe.spacing[i] for i in range(3))
        return cls(probe.shape, probe.spacing, origin)

    @classmethod
    def from_origin(
        cls, shape: Sequence[int], spacing: float | Sequence[float], origin: Sequence[float]
    ) -> "Grid":
        """A grid whose voxel ``(0, 0, 0)`` is at ``origin`` [m]."""
        return cls(tuple(shape), spacing, tuple(origin))

    # ------------------------------------------------------------------ geometry
    @property
    def size(self) -> int:
        """Number of points ``nx * ny * nz``."""
        return int(self.shape[0]) * int(self.shape[1]) * int(self.shape[2])

    @property
    def centre(self) -> np.ndarray:
        """Centre of the grid [m], shape (3,)."""
        return np.array(
            [self.origin[i] + 0.5 * (self.shape[i] - 1) * self.spacing[i] for i in range(3)]
        )

    @property
    def extent(self) -> np.ndarray:
        """Distance from the first to the last point along each axis [m], shape (3,)."""
        return np.array([(self.shape[i] - 1) * self.spacing[i] for i in range(3)])

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates of the points along x, y and z [m] (float64)."""
        return tuple(  # type: ignore[return-value]
            self.origin[i] + self.spacing[i] * np.arange(self.shape[i], dtype=np.float64)
            for i in range(3)
        )

    def affine(self, to_scanner: Any = None) -> np.ndarray:
        """4x4 voxel-to-world affine in millimetres (for NIfTI).

        Parameters
        ----------
        to_scanner : array_like, shape (4, 4), optional
            Rigid transform from the transducer frame to the scanner frame [m] (e.g.
            ``Transducer.to_scanner``). Without it the world frame is the transducer frame.

        Returns
        -------
        ndarray, shape (4, 4)
            ``world_mm = A @ [i, j, k, 1]``.
        """
        a = np.eye(4)
        a[:3, :3] = np.diag(np.asarray(self.spacing) * 1e3)
        a[:3, 3] = np.asarray(self.origin) * 1e3
        if to_scanner is None:
            return a
        t = np.array(to_scanner, dtype=np.float64)
        if t.shape != (4, 4) or not np.all(np.isfinite(t)):
            raise InvalidParameterError("to_scanner", t.shape, "must be a finite 4x4 matrix")
        t[:3, 3] *= 1e3
        return t @ a

    def corners(self) -> np.ndarray:
        """The 8 corner points of the grid box [m], shape (8, 3)."""
        lo = np.asarray(self.origin)
        hi = lo + self.extent
        return np.array(
            [[(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
        )

    # ------------------------------------------------------------------ points
    def _check_range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.size
        stop = n if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= n:
            raise InvalidParameterError("start/stop", (start, stop), f"must satisfy 0 <= start <= stop <= {n}")
        return start, stop

    def indices(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Voxel indices ``(i, j, k)`` of flat points ``start .. stop - 1``, shape (n, 3), int64."""
        start, stop = self._check_range(start, stop)
        flat = np.arange(start, stop, dtype=np.int64)
        return np.stack(np.unravel_index(flat, self.shape), axis=1)

    def points(
        self, start: int = 0, stop: int | None = None, *, xp: Any = np, dtype: Any = np.float32
    ) -> Any:
        """Coordinates of flat points ``start .. stop - 1`` [m], shape (n, 3).

        Parameters
        ----------
        start, stop : int
            Range of flat (C-order) indices; default the whole grid.
        xp : module
            ``numpy`` or ``cupy``: where the array is built.
        dtype : dtype
            Output dtype (coordinates are computed in float64 first).

        Returns
        -------
        ndarray of ``xp``, shape (stop - start, 3)
        """
        start, stop = self._check_range(start, stop)
        flat = xp.arange(start, stop, dtype=xp.int64)
        nyz = self.shape[1] * self.shape[2]
        i = flat // nyz
        rem = flat - i * nyz
        j = rem // self.shape[2]
        k = rem - j * self.shape[2]
        cols = [
            self.origin[d] + self.spacing[d] * idx.astype(xp.float64) for d, idx in enumerate((i, j, k))
        ]
        return xp.stack(cols, axis=1).astype(dtype)

    def chunks(self, chunk: int) -> Iterator[tuple[int, int]]:
        """Consecutive ``(start, stop)`` ranges of at most ``chunk`` flat indices covering the grid."""
        c = int(chunk)
        if c < 1:
            raise InvalidParameterError("chunk", chunk, "must be an integer >= 1")
        for s in range(0, self.size, c):
            yield s, min(s + c, self.size)

    def bounds(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box ``(lo, hi)`` [m] of the flat points ``start .. stop - 1`` (without building them)."""
        start, stop = self._check_range(start, stop)
        if stop == start:
            raise InvalidParameterError("start/stop", (start, stop), "empty range has no bounds")
        first = np.array(np.unravel_index(start, self.shape))
        last = np.array(np.unravel_index(stop - 1, self.shape))
        lo_idx = np.zeros(3, dtype=np.int64)
        hi_idx = np.array(self.shape, dtype=np.int64) - 1
        # Walk down the axes while the range stays inside one slab of the slower axes; once an
        # axis varies, the faster axes are taken over their full range (conservative).
        for d in range(3):
            if first[d] != last[d]:
                lo_idx[d], hi_idx[d] = first[d], last[d]
                break
            lo_idx[d] = hi_idx[d] = first[d]
        sp = np.asarray(self.spacing)
        org = np.asarray(self.origin)
        return org + lo_idx * sp, org + hi_idx * sp

    def nbytes(self, itemsize: int = 8) -> int:
        """Bytes of one array over the grid with items of ``itemsize`` bytes (8: complex64)."""
        return self.size * int(itemsize)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (mm) for sidecars."""
        return {
            "shape": list(self.shape),
            "spacing_mm": [s * 1e3 for s in self.spacing],
            "origin_mm": [o * 1e3 for o in self.origin],
            "centre_mm": (self.centre * 1e3).tolist(),
        }

    def __repr__(self) -> str:
        sh = "x".join(str(s) for s in self.shape)
        sp = ", ".join(f"{s * 1e3:g}" for s in self.spacing)
        c = ", ".join(f"{v * 1e3:g}" for v in self.centre)
        return f"Grid({sh}, spacing=({sp}) mm, centre=({c}) mm)"

