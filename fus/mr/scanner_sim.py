"""A simulated MR thermometry scanner: true temperature on a bioheat grid -> complex GRE images.

The closed-loop digital twin needs what a real scanner would hand to :class:`fus.mr.thermometry.
Thermometry`: complex (magnitude and phase) 2-D images, one set of slices per dynamic, with the
PRF phase of the true temperature, receive-coil phase, B0 drift, noise, motion and signal loss.

Model (per image voxel ``p`` of slice ``s``, acquired at time ``t`` [s])::

    z = M(p) exp(i (phi_coil(p) + (T_img(p) - T_ref) / scale + drift(p, t))) + n

* ``scale = prf_scale(b0, te, alpha_ppm, phase_sign)`` [C/rad] (:mod:`fus.mr.prf`), so that
  :class:`~fus.mr.thermometry.Thermometry` with the same b0 / te / alpha / sign measures
  ``T_img - T_baseline`` back.
* ``M`` is the tissue magnitude of a fat-suppressed spoiled gradient echo
  (:data:`TISSUE_MAGNITUDE`, relative to muscle = 1) interpolated trilinearly from the 3-D grid
  onto the image voxel and averaged over the slice thickness (``sub_planes`` planes across it:
  a rectangular slice profile). Image points outside the grid get no signal.
* ``T_img`` is the magnitude-weighted average of the true temperature over the same samples: a
  fat-suppressed voxel reports the temperature of its water signal, not of its fat (first order
  in the intra-voxel phase spread; the magnitude loss of intra-voxel dephasing is neglected).
  :meth:`SimulatedScanner.image_temperature` returns it (the noiseless measurement);
  :meth:`SimulatedScanner.resample` is the plain, unweighted interpolation (for masks and
  truth maps).
* ``phi_coil`` is a fixed smooth background phase (:data:`COIL_PHASE`): a constant, a linear
  ramp and a quadratic bowl in the transducer frame, ~2-3 rad across an 8 cm field of view.
* ``drift(p, t) = t * (drift_rate + drift_gradient * g . (p - c))``: slow B0 drift, spatially a
  constant plus a linear gradient along the fixed unit direction ``g`` (:data:`DRIFT_DIRECTION`;
  ``c`` the grid centre), growing linearly in time from ``t = 0``. In each slice it is a
  constant plus an in-plane linear ramp, which an order-1 polynomial drift fit removes.
* ``n``: complex Gaussian noise, std ``noise`` per channel, from a seeded
  :class:`numpy.random.Generator` (deterministic for a seed and sequence of calls), with
  ``noise = M_muscle * sigma_t / |scale|``: a muscle voxel has temperature noise ``sigma_t``
  [C] per image (against a noise-free baseline; against an average of N baseline images the
  noise of the difference is ``sigma_t * sqrt(1 + 1/N)``).

The interpolation is precomputed once as a sparse matrix (image voxels x used grid voxels,
trilinear weights of every sub-plane sample), so a dynamic costs one gather, one sparse product,
one complex exponential and the noise (3 x 128 x 128: a few ms on one CPU core).

Imaging plan and geometry
-------------------------
An :class:`ImagePlan` holds slices of one matrix ``rows x cols``. Each :class:`ImageSlice` has an
orientation and two in-plane unit vectors in the transducer frame (origin at the geometric
focus, +z along the beam):

============  =================  ==================  ==============  ===================
orientation   columns along (u)  rows along (v)      offset along    DICOM normal u x v
============  =================  ==================  ==============  ===================
coronal       +x                 +z (beam down)      y               -y
sagittal      +y                 +z (beam down)      x               +x
axial         +x                 +y                  z               +z
============  =================  ==================  ==============  ===================

Pixel ``(row r, col c)`` sits at ``centre + (c - (cols-1)/2) du u + (r - (rows-1)/2) dv v`` where
``centre`` is the in-plane centre (the two in-plane coordinates) placed at ``offset`` along the
slice's axis. :meth:`ImageSlice.affine` maps ``(col, row, k, 1)`` to the transducer frame [m]
(DICOM / NIfTI index order: column first; ``k`` steps one slice thickness along u x v).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.sparse

from fus.backend import asnumpy
from fus.checks import finite_scalar
from fus.errors import InvalidParameterError
from fus.mr.prf import ALPHA_PPM_PER_C, GAMMA_BAR, plausible, prf_scale
from fus.physics.grid import Grid
from fus.physics.phantom import label_lookup
from fus.physics.tissues import TISSUES

__all__ = [
    "COIL_PHASE",
    "DRIFT_DIRECTION",
    "ORIENTATIONS",
    "TISSUE_MAGNITUDE",
    "ImagePlan",
    "ImageSlice",
    "ScannerSettings",
    "SimulatedScanner",
    "tissue_magnitude_volume",
]

log = logging.getLogger(__name__)

#: Relative magnitude of each tissue in a fat-suppressed spoiled GRE thermometry sequence
#: (TE ~10 ms, low flip angle, muscle = 1). Rationale: muscle is the reference; the water bath is
#: bright (long T2*, full proton density; 1.3); lesion (oedematous tumour, long T2) 0.9 and
#: generic soft tissue 0.9; spinal cord 0.8; skin 0.6 (short T2*, thin); red marrow 0.5 (about
#: half of its signal is fat, suppressed); blood 0.5 (flow-related saturation, variable);
#: subcutaneous fat 0.04 and cortical bone 0.02 (fat suppressed; bone has T2* < 1 ms and almost
#: no mobile protons), far below the default ``snr_min = 5`` of the thermometry at the default
#: SNR (muscle ~13), so the thermometry masks them, as on a real scanner. Values are
#: representative assumptions for a 3 T fat-suppressed GRE (cf. Rieke & Butts Pauly, J. Magn.
#: Reson. Imaging 27, 376-390 (2008)), not measurements.
TISSUE_MAGNITUDE: dict[str, float] = {
    "water": 1.3,
    "skin": 0.6,
    "fat": 0.04,
    "muscle": 1.0,
    "cortical_bone": 0.02,
    "marrow_red": 0.5,
    "spinal_cord": 0.8,
    "lesion": 0.9,
    "soft_tissue": 0.9,
    "blood": 0.5,
}

#: (column axis u, row axis v, offset axis) of each orientation: indices 0 = x, 1 = y, 2 = z.
ORIENTATIONS: dict[str, tuple[int, int, int]] = {
    "coronal": (0, 2, 1),
    "sagittal": (1, 2, 0),
    "axial": (0, 1, 2),
}

#: Unit direction of the spatial B0-drift gradient in the transducer frame (oblique, so that every
#: orientation sees an in-plane ramp).
DRIFT_DIRECTION = np.array([1.0, 1.0, 1.0]) / math.sqrt(3.0)

#: Receive-coil background phase about the grid centre: (constant [rad], linear [rad/m] x, y, z,
#: quadratic [rad/m^2]).
COIL_PHASE = (0.7, (25.0, -15.0, 20.0), 300.0)

_B0_HINTS = {1e3: "it looks like the imaging frequency in Hz: give the field in tesla (a '3 T' Siemens is 2.89 T)"}
_TE_HINTS = {0.2: "milliseconds given as seconds? (10 ms is 0.010 s)"}


@dataclass
class ScannerSettings:
    """Acquisition settings of the simulated scanner.

    Attributes
    ----------
    b0 : float
        Main field [T] (default 2.89: a "3 T" Siemens, imaging frequency ~123.2 MHz).
    te : float
        Echo time [s] (default 0.010, a typical GRE thermometry TE at 3 T, near the T2* of muscle
        for the best temperature SNR).
    alpha_ppm : float
        PRF coefficient [ppm/C] (default -0.01).
    phase_sign : {+1, -1}
        Phase convention written into the images (default +1).
    dynamic_period : float
        Time between dynamics [s] (default 3.0: 3 slices of a 2-D GRE, 128 x 128).
    latency : float
        Acquisition-to-availability delay [s] (default 0.5: reconstruction and transfer).
    sigma_t : float
        Temperature noise of one image in muscle [C] (default 1.0, typical of 3 T GRE
        thermometry at ~1-2 mm in plane); sets the complex noise ``M_muscle * sigma_t / |scale|``.
    drift_rate : float
        Growth of the uniform drift phase [rad/s] (default 5.236e-4 = 2 pi * 0.5 Hz/min * 10 ms:
        a B0 drift of 0.5 Hz/min, i.e. ~0.4 C/min of apparent temperature at 3 T and TE 10 ms,
        within the range reported for long heating sessions).
    drift_gradient : float
        Growth of the drift's linear spatial gradient along :data:`DRIFT_DIRECTION` [rad/s/m]
        (default 5e-3: the drift changes by ~10 % of its uniform part over 10 cm).
    reference_temperature : float
        Temperature of zero PRF phase [C] (default 37; only a constant phase).
    seed : int
        Seed of the noise generator (default 0).
    """

    b0: float = 2.89
    te: float = 0.010
    alpha_ppm: float = ALPHA_PPM_PER_C
    phase_sign: int = 1
    dynamic_period: float = 3.0
    latency: float = 0.5
    sigma_t: float = 1.0
    drift_rate: float = 2 * math.pi * 0.5 / 60.0 * 0.010
    drift_gradient: float = 5e-3
    reference_temperature: float = 37.0
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`~fus.errors.InvalidParameterError` naming the first bad field and its value."""
        plausible("b0", self.b0, 0.05, 12.0, "T", _B0_HINTS)
        plausible("te", self.te, 1e-4, 0.2, "s", _TE_HINTS)
        alpha = plausible("alpha_ppm", self.alpha_ppm, -0.05, 0.05, "ppm/C", {})
        if abs(alpha) < 1e-3:
            raise InvalidParameterError("alpha_ppm", self.alpha_ppm, "is implausible: the PRF coefficient is about -0.01 ppm/C")
        if isinstance(self.phase_sign, bool) or self.phase_sign not in (1, -1):
            raise InvalidParameterError("phase_sign", self.phase_sign, "must be +1 or -1")
        finite_scalar("dynamic_period", self.dynamic_period, positive=True)
        finite_scalar("latency", self.latency, nonnegative=True)
        finite_scalar("sigma_t", self.sigma_t, positive=True)
        finite_scalar("drift_rate", self.drift_rate)
        finite_scalar("drift_gradient", self.drift_gradient)
        plausible("reference_temperature", self.reference_temperature, -20.0, 100.0, "C", {})
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InvalidParameterError("seed", self.seed, "must be an integer >= 0")

    @property
    def scale(self) -> float:
        """PRF scale [C/rad] of these settings (:func:`fus.mr.prf.prf_scale`)."""
        return prf_scale(self.b0, self.te, self.alpha_ppm, self.phase_sign)

    @property
    def imaging_frequency(self) -> float:
        """Proton imaging frequency [Hz] at ``b0``."""
        return GAMMA_BAR * float(self.b0)


def _pair(name: str, value: Any) -> tuple[float, float]:
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, (str, bool)) else np.array([np.nan])
    if arr.ndim == 0:
        arr = np.repeat(arr, 2)
    if arr.shape != (2,) or not np.all(np.isfinite(arr)):
        raise InvalidParameterError(name, value, "must be one or two finite numbers")
    return float(arr[0]), float(arr[1])


@dataclass(frozen=True)
class ImageSlice:
    """One 2-D slice of an imaging plan (see the module docstring for the axes).

    Attributes
    ----------
    orientation : {"coronal", "sagittal", "axial"}
    offset : float
        Position of the plane along its perpendicular axis [m] (y coronal, x sagittal, z axial).
    centre : (float, float)
        In-plane centre [m]: the (u, v) coordinates (coronal (x, z), sagittal (y, z), axial (x, y)).
    spacing : (float, float)
        Pixel spacing (between rows, between columns) [m], the DICOM PixelSpacing order; a single
        number for square pixels.
    thickness : float
        Slice thickness [m]; the signal is averaged over ``sub_planes`` planes across it.
    sub_planes : int
        Number of planes sampled across the thickness (at the centres of equal sub-slabs).
    """

    orientation: str
    offset: float
    centre: tuple[float, float] = (0.0, 0.0)
    spacing: tuple[float, float] = (1e-3, 1e-3)
    thickness: float = 3e-3
    sub_planes: int = 3

    def __post_init__(self) -> None:
        if self.orientation not in ORIENTATIONS:
            raise InvalidParameterError("orientation", self.orientation, f"must be one of {', '.join(ORIENTATIONS)}")
        object.__setattr__(self, "offset", finite_scalar("offset", self.offset))
        object.__setattr__(self, "centre", _pair("centre", self.centre))
        sp = _pair("spacing", self.spacing)
        if min(sp) <= 0:
            raise InvalidParameterError("spacing", self.spacing, "must be > 0 [m]")
        if max(sp) > 0.05:
            raise InvalidParameterError("spacing", self.spacing, "is over 50 mm: give it in metres (1 mm is 0.001)")
        object.__setattr__(self, "spacing", sp)
        th = finite_scalar("thickness", self.thickness, positive=True)
        if th > 0.05:
            raise InvalidParameterError("thickness", self.thickness, "is over 50 mm: give it in metres (3 mm is 0.003)")
        object.__setattr__(self, "thickness", th)
        if isinstance(self.sub_planes, bool) or not isinstance(self.sub_planes, (int, np.integer)) or not 1 <= self.sub_planes <= 16:
            raise InvalidParameterError("sub_planes", self.sub_planes, "must be an integer in 1..16")

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors (u along columns, v along rows, a along the offset axis) in the transducer frame."""
        iu, iv, ia = ORIENTATIONS[self.orientation]
        eye = np.eye(3)
        return eye[iu], eye[iv], eye[ia]

    def affine(self, rows: int, cols: int) -> np.ndarray:
        """4x4 map of ``(col, row, k, 1)`` to the transducer frame [m]; ``k`` steps ``thickness``
        along the slice normal ``u x v``."""
        u, v, a = self.axes()
        dv, du = self.spacing
        centre = self.centre[0] * u + self.centre[1] * v + self.offset * a
        out = np.eye(4)
        out[:3, 0] = u * du
        out[:3, 1] = v * dv
        out[:3, 2] = np.cross(u, v) * self.thickness
        out[:3, 3] = centre - 0.5 * (cols - 1) * du * u - 0.5 * (rows - 1) * dv * v
        return out

    def coordinates(self, rows: int, cols: int, depth: float = 0.0) -> np.ndarray:
        """Voxel centres (rows, cols, 3) [m]; ``depth`` [m] moves the plane along its offset axis."""
        a4 = self.affine(rows, cols)
        r, c = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
        _, _, a = self.axes()
        return a4[:3, 3] + c[..., None] * a4[:3, 0] + r[..., None] * a4[:3, 1] + depth * a

    def depths(self) -> np.ndarray:
        """Offsets [m] of the sampled sub-planes along the offset axis (centres of equal sub-slabs)."""
        n = int(self.sub_planes)
        return (np.arange(n) - 0.5 * (n - 1)) * self.thickness / n


@dataclass(frozen=True)
class ImagePlan:
    """Slices of one matrix ``rows x cols`` (the images of one dynamic: (slices, rows, cols)).

    Attributes
    ----------
    slices : tuple of ImageSlice
    rows, cols : int
        Matrix of every slice.
    """

    slices: tuple[ImageSlice, ...]
    rows: int = 128
    cols: int = 128

    def __post_init__(self) -> None:
        slices = tuple(self.slices)
        if not slices or not all(isinstance(s, ImageSlice) for s in slices):
            raise InvalidParameterError("slices", self.slices, "must be one or more ImageSlice")
        object.__setattr__(self, "slices", slices)
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 2 <= v <= 1024:
                raise InvalidParameterError(name, v, "must be an integer in 2..1024")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) of one dynamic."""
        return (len(self.slices), int(self.rows), int(self.cols))

    def affines(self) -> np.ndarray:
        """Per-slice 4x4 maps of ``(col, row, k, 1)`` to the transducer frame [m], (slices, 4, 4)."""
        return np.stack([s.affine(self.rows, self.cols) for s in self.slices])

    def coordinates(self) -> np.ndarray:
        """Voxel centres in the transducer frame [m], (slices, rows, cols, 3)."""
        return np.stack([s.coordinates(self.rows, self.cols) for s in self.slices])

    @classmethod
    def standard(
        cls,
        grid: Grid,
        target: Sequence[float],
        *,
        matrix: tuple[int, int] = (128, 128),
        spacing: float | None = None,
        thickness: float = 3e-3,
        sub_planes: int = 3,
        axial_shift: float | None = None,
    ) -> ImagePlan:
        """The default plan of an MRgFUS bone treatment: coronal, sagittal and axial slices through the target.

        A coronal (x-z) and a sagittal (y-z) slice containing the beam axis direction through
        ``target`` (they show the near field, the skin, the bone surface and what lies behind it),
        and an axial (x-y) slice at the target depth (the focal spot's cross-section), by default
        one slice thickness proximal of the target (``axial_shift``): the target of a bone
        treatment is the bone surface, and an axial slice through it is mostly cortical bone and
        fat-suppressed marrow, which give no PRF signal (the sample phantom's slice at z = 0 has
        SNR ~4.5, all masked), whereas the soft tissue against the bone shows the heat conducted
        from the periosteum. Each slice is centred in-plane on the grid centre, so the field of
        view covers the simulated region.

        Parameters
        ----------
        grid : Grid
            The bioheat grid (transducer frame).
        target : sequence of 3 float
            Target point [m] (e.g. ``Phantom.target``).
        matrix : (int, int)
            Rows x cols of every slice (default 128 x 128, a common thermometry matrix).
        spacing : float, optional
            Square pixel size [m]; default the largest in-plane grid extent over the matrix, to
            0.05 mm (0.65 mm for the 80 mm long sample phantom: finer than a clinical 1-2 mm, so
            the 0.5 mm bioheat grid is not blurred further than by the slice thickness).
        thickness : float
            Slice thickness [m] (default 3 mm, typical of GRE thermometry).
        sub_planes : int
            Planes sampled across the thickness (default 3).
        axial_shift : float, optional
            Position of the axial slice relative to the target along z [m] (default
            ``-thickness``; 0 puts it through the target).
        """
        t = np.asarray(target, dtype=np.float64)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise InvalidParameterError("target", target, "must be three finite coordinates [m]")
        rows, cols = (int(v) for v in matrix)
        c = grid.centre
        if spacing is None:
            ext = grid.extent
            spacing = round(math.ceil(max(ext[0], ext[1], ext[2]) / max(rows - 1, cols - 1) / 5e-5 - 1e-9) * 5e-5, 9)
        kw = {"spacing": spacing, "thickness": thickness, "sub_planes": sub_planes}
        depth = -float(thickness) if axial_shift is None else finite_scalar("axial_shift", axial_shift)
        slices = (
            ImageSlice("coronal", t[1], (c[0], c[2]), **kw),
            ImageSlice("sagittal", t[0], (c[1], c[2]), **kw),
            ImageSlice("axial", t[2] + depth, (c[0], c[1]), **kw),
        )
        return cls(slices, rows, cols)


def tissue_magnitude_volume(labels: np.ndarray, table: dict[str, float] | None = None) -> np.ndarray:
    """Relative GRE magnitude of every voxel of a label volume (float64).

    Parameters
    ----------
    labels : integer array
        Tissue labels (:attr:`fus.physics.tissues.Tissue.label`).
    table : dict, optional
        Magnitude per tissue name (default :data:`TISSUE_MAGNITUDE`); every tissue present must
        be in it.
    """
    table = TISSUE_MAGNITUDE if table is None else table
    by_label: dict[int, float] = {}
    for name, value in table.items():
        if name not in TISSUES:
            raise InvalidParameterError("magnitude table", name, f"unknown tissue; known: {', '.join(TISSUES)}")
        by_label[TISSUES[name].label] = finite_scalar(f"magnitude[{name}]", value, nonnegative=True)
    return label_lookup(by_label, labels, "the GRE magnitude")


def _trilinear(grid: Grid, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trilinear weights of ``points`` (n, 3) [m] on ``grid``: (point index, flat voxel, weight)
    triplets; points outside the grid get none (no signal)."""
    n = points.shape[0]
    idx = (points - np.asarray(grid.origin)) / np.asarray(grid.spacing)
    shape = np.asarray(grid.shape)
    inside = np.all((idx >= -1e-6) & (idx <= shape - 1 + 1e-6), axis=1)
    idx = np.clip(idx, 0, shape - 1)
    i0 = np.clip(np.floor(idx), 0, np.maximum(shape - 2, 0)).astype(np.int64)
    frac = idx - i0
    i1 = np.minimum(i0 + 1, shape - 1)
    rows, cols, vals = [], [], []
    for cx in (0, 1):
        for cy in (0, 1):
            for cz in (0, 1):
                w = np.ones(n)
                flat = np.zeros(n, dtype=np.int64)
                for d, cd in enumerate((cx, cy, cz)):
                    w *= frac[:, d] if cd else 1.0 - frac[:, d]
                    flat = flat * shape[d] + (i1[:, d] if cd else i0[:, d])
                keep = inside & (w > 0)
                rows.append(np.arange(n)[keep])
                cols.append(flat[keep])
                vals.append(w[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


@dataclass
class _Precomputed:
    used: np.ndarray          # flat grid voxels touched by the plan
    plain: Any                # CSR (pixels, used): plain trilinear + thickness average
    weighted: Any             # CSR (pixels, used): magnitude-weighted (temperature)
    magnitude: np.ndarray     # (slices, rows, cols) float64
    coil: np.ndarray          # (slices, rows, cols) float64 [rad]
    drift_pos: np.ndarray     # (slices, rows, cols) float64 [m], g . (p - c)


class SimulatedScanner:
    """Complex GRE images of a 3-D temperature field (see the module docstring for the model).

    Parameters
    ----------
    grid : Grid
        The bioheat grid (transducer frame, array axis 2 = beam axis z).
    labels : integer array of ``grid.shape``
        Tissue labels (:data:`fus.physics.tissues.TISSUES`).
    plan : ImagePlan
    settings : ScannerSettings, optional
    magnitude_table : dict, optional
        Relative magnitude per tissue (default :data:`TISSUE_MAGNITUDE`).

    Raises
    ------
    InvalidParameterError
        Bad settings, labels of the wrong shape or unknown, or a slice wholly outside the grid.
    """

    def __init__(self, grid: Grid, labels: Any, plan: ImagePlan, settings: ScannerSettings | None = None,
                 magnitude_table: dict[str, float] | None = None) -> None:
        self.settings = settings or ScannerSettings()
        self.settings.validate()
        if not isinstance(plan, ImagePlan):
            raise InvalidParameterError("plan", type(plan).__name__, "must be an ImagePlan")
        lab = asnumpy(labels)
        if tuple(lab.shape) != tuple(grid.shape):
            raise InvalidParameterError("labels", f"array of shape {tuple(lab.shape)}", f"must have the grid's shape {tuple(grid.shape)}")
        self.grid, self.plan = grid, plan
        self._scale = self.settings.scale
        table = TISSUE_MAGNITUDE if magnitude_table is None else magnitude_table
        finite_scalar("magnitude[muscle]", table.get("muscle", math.nan), positive=True)  # the noise reference
        self._noise = table["muscle"] * self.settings.sigma_t / abs(self._scale)
        self._rng = np.random.default_rng(int(self.settings.seed))
        self._pre = self._precompute(tissue_magnitude_volume(lab, magnitude_table))
        log.info("simulated scanner: %d slices of %dx%d, %.3f C/rad, noise %.4g, %d grid voxels used",
                 *plan.shape, self._scale, self._noise, self._pre.used.size)

    def _precompute(self, mag_volume: np.ndarray) -> _Precomputed:
        plan = self.plan
        ns, nr, nc = plan.shape
        npix = ns * nr * nc
        rows_, cols_, vals_ = [], [], []
        for s, sl in enumerate(plan.slices):
            for depth in sl.depths():
                pts = sl.coordinates(nr, nc, depth).reshape(-1, 3)
                r, c, w = _trilinear(self.grid, pts)
                rows_.append(r + s * nr * nc)
                cols_.append(c)
                vals_.append(w / sl.sub_planes)
        r, c, w = np.concatenate(rows_), np.concatenate(cols_), np.concatenate(vals_)
        used, local = np.unique(c, return_inverse=True)
        plain = scipy.sparse.csr_matrix((w, (r, local)), shape=(npix, used.size))
        plain.sum_duplicates()
        m_used = mag_volume.ravel()[used]
        magnitude = plain @ m_used
        for s, sl in enumerate(plan.slices):
            if not np.any(plain[s * nr * nc:(s + 1) * nr * nc].getnnz(axis=1)):
                raise InvalidParameterError(
                    "plan", f"slice {s} ({sl.orientation} at {sl.offset * 1e3:g} mm)", "lies wholly outside the grid: it would image nothing"
                )
        inv = np.divide(1.0, magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
        weighted = scipy.sparse.diags(inv) @ plain @ scipy.sparse.diags(m_used)
        weighted = scipy.sparse.csr_matrix(weighted)
        coords = plan.coordinates() - self.grid.centre
        k0, lin, quad = COIL_PHASE
        coil = k0 + coords @ np.asarray(lin) + quad * np.sum(coords**2, axis=-1)
        return _Precomputed(used, plain, weighted, magnitude.reshape(plan.shape), coil, coords @ DRIFT_DIRECTION)

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) of one dynamic."""
        return self.plan.shape

    @property
    def noise(self) -> float:
        """Noise standard deviation per real / imaginary channel (magnitude units of :attr:`magnitude`)."""
        return float(self._noise)

    @property
    def scale(self) -> float:
        """PRF scale [C/rad]: dT = scale * dphi."""
        return float(self._scale)

    @property
    def magnitude(self) -> np.ndarray:
        """Noise-free image magnitude (slices, rows, cols) float64 (muscle = 1)."""
        return self._pre.magnitude.copy()

    def available_time(self, time: float) -> float:
        """When a dynamic acquired at ``time`` [s] is available to the controller [s] (``+ latency``)."""
        return finite_scalar("time", time) + float(self.settings.latency)

    # ------------------------------------------------------------------ resampling
    def _volume(self, volume: Any, name: str) -> np.ndarray:
        v = asnumpy(volume)
        if v.ndim == 0:
            return np.full(self._pre.used.size, float(v))
        if tuple(v.shape) != tuple(self.grid.shape):
            raise InvalidParameterError(name, f"array of shape {tuple(v.shape)}", f"must have the grid's shape {tuple(self.grid.shape)} (or be a scalar)")
        return v.reshape(-1)[self._pre.used]

    def resample(self, volume: Any) -> np.ndarray:
        """A grid volume on the image voxels (slices, rows, cols) float64: trilinear, averaged over
        the slice thickness, 0 outside the grid (unweighted: for truth maps and masks)."""
        return (self._pre.plain @ self._volume(volume, "volume").astype(np.float64)).reshape(self.shape)

    def resample_mask(self, mask: Any) -> np.ndarray:
        """A bool grid mask (an ROI) on the image voxels: True where the interpolated mask >= 0.5."""
        m = asnumpy(mask)
        if m.dtype != bool:
            raise InvalidParameterError("mask", f"array of dtype {m.dtype}", "must be a bool mask")
        return self.resample(m.astype(np.float64)) >= 0.5

    def image_temperature(self, temperature: Any) -> np.ndarray:
        """What a noiseless scanner images of ``temperature`` [C] (slices, rows, cols) float64: the
        magnitude-weighted average over each image voxel's samples (0 where there is no signal)."""
        return (self._pre.weighted @ self._volume(temperature, "true_temperature").astype(np.float64)).reshape(self.shape)

    # ------------------------------------------------------------------ acquisition
    def acquire(self, true_temperature: Any, time: float, *, noise_scale: float = 1.0,
                shift: tuple[float, float] = (0.0, 0.0), signal_loss: Any = None) -> np.ndarray:
        """One dynamic: complex64 images (slices, rows, cols) of ``true_temperature`` at ``time``.

        Parameters
        ----------
        true_temperature : float or array of ``grid.shape``
            Absolute temperature [C] on the grid (numpy or cupy).
        time : float
            Acquisition time [s] (the drift grows from 0).
        noise_scale : float
            Multiplies the noise of this dynamic (>= 0; e.g. an SNR drop).
        shift : (float, float)
            In-plane displacement of the object [m] along (rows, columns) of every slice (motion:
            the object's magnitude and temperature move, the coil phase and drift do not).
        signal_loss : bool array (slices, rows, cols), optional
            Voxels whose signal is 0 (a dropout: only noise remains there).
        """
        time = finite_scalar("time", time)
        noise_scale = finite_scalar("noise_scale", noise_scale, nonnegative=True)
        sh = _pair("shift", shift)
        pre, s = self._pre, self.settings
        temp = self.image_temperature(true_temperature)
        mag = pre.magnitude
        if sh != (0.0, 0.0):
            mag, temp = mag.copy(), temp.copy()
            for k, sl in enumerate(self.plan.slices):
                px = (sh[0] / sl.spacing[0], sh[1] / sl.spacing[1])
                mag[k] = scipy.ndimage.shift(mag[k], px, order=1, mode="constant", cval=0.0)
                temp[k] = scipy.ndimage.shift(temp[k], px, order=1, mode="nearest")
        phase = pre.coil + (temp - s.reference_temperature) / self._scale + time * (s.drift_rate + s.drift_gradient * pre.drift_pos)
        z = mag * np.exp(1j * phase)
        if signal_loss is not None:
            loss = asnumpy(signal_loss)
            if loss.dtype != bool or tuple(loss.shape) != self.shape:
                raise InvalidParameterError("signal_loss", f"array of dtype {loss.dtype}, shape {tuple(loss.shape)}", f"must be a bool mask of shape {self.shape}")
            z[loss] = 0.0
        sigma = self._noise * noise_scale
        noise = self._rng.standard_normal((2,) + self.shape)
        out = np.empty(self.shape, dtype=np.complex64)
        out.real = z.real + sigma * noise[0]
        out.imag = z.imag + sigma * noise[1]
        return out

    def baseline(self, n: int, temperature: Any = None, *, start: float = 0.0) -> list[np.ndarray]:
        """``n`` dynamics at ``start + k * dynamic_period`` [s] of a uniform ``temperature`` [C]
        (default the reference temperature) or a given grid volume, for
        :meth:`fus.mr.baseline.Baseline.average`."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidParameterError("n", n, "must be an integer >= 1")
        temp = self.settings.reference_temperature if temperature is None else temperature
        start = finite_scalar("start", start)
        return [self.acquire(temp, start + k * self.settings.dynamic_period) for k in range(int(n))]
