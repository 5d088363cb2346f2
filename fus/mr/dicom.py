"""Read MR DICOM series (Siemens, Philips, GE; classic and enhanced multi-frame) for thermometry.

Public API
----------
``scan(path, *, strict=False, max_workers=None) -> list[SeriesInfo]``
    Headers only: one :class:`SeriesInfo` per MR series found under ``path`` (a folder tree or a
    file): vendor, model, classic/enhanced, components, echoes and echo times, slices, dynamics,
    matrix, spacing, f0 and B0, time per dynamic. A series that cannot be read carries its error
    message in ``SeriesInfo.error`` (``strict=True`` raises it instead).
``load_series(path, series=None, *, max_workers=None) -> Series``
    Index ``path`` and arrange one series; ``series`` selects by SeriesNumber (int, or a string of
    digits) or SeriesInstanceUID (str). ``None`` works when there is exactly one series. An
    ambiguous or unknown selection raises :class:`~fus.errors.DicomError` listing the choices.
    A series is identified by its UID *and* its storage kind: a scanner may export one series
    both as classic and as enhanced files under the same UID (the shared Philips data do); the
    two are listed separately instead of being merged into a doubled series.
:class:`Series`
    ``.image(component="magnitude", echo=None, dynamics=None)`` -> float32
    ``[dynamic, slice, row, column]`` (phase in radians); ``.complex(echo=None, dynamics=None)``
    -> complex64 from real + imaginary, else magnitude * exp(i phase) (a clear DicomError names
    what is missing, e.g. a Siemens field-map phase series whose magnitude is a separate series);
    ``.iter_dynamics(components=None, echoes=None, start=0, stop=None)`` yields one
    :class:`Dynamic` at a time and reads only the files of that dynamic (streaming replay);
    ``.dynamic(index, component, echo)``; ``.affine``; ``.times`` [s]; ``.echo_times`` [s];
    ``.f0`` [Hz]; ``.b0`` [T]; ``.nifti(component, echo)`` and :meth:`Series.to_nifti_order`;
    ``.image_files(component, echo)`` (provenance: file and frame of every [dynamic][slice]) and
    ``.scaling_rule(component, echo)`` (the stored-value rule applied, for sidecars).
:data:`GAMMA_PROTON`, :func:`b0_from_f0`
    ``B0 = 2 pi f0 / gamma`` with ``gamma = 2 pi * 42.577478 MHz/T``; f0 is (0018,0084)
    ImagingFrequency (classic) or (0018,9098) TransmitterFrequency (enhanced), never
    MagneticFieldStrength: a "3 T" Siemens Prisma at 123.25483 MHz is 2.895 T.

Array layout and geometry
-------------------------
Arrays are returned C-ordered as ``[dynamic, slice, row, column]`` (a single dynamic keeps its
axis of length 1). Slices run along the slice normal ``n = r x c`` (r, c: the row and column
direction cosines of ImageOrientationPatient), in increasing position; rows and columns are as
stored in the DICOM pixel data (row 0 at the top of the image, column 0 at the left).

:attr:`Series.affine` maps the NIfTI-ordered voxel index ``(i, j, k) = (column, row, slice)`` to
RAS world coordinates in mm (DICOM LPS with x and y negated). :meth:`Series.to_nifti_order`
transposes an array to ``[i, j, k(, t)]`` and :meth:`Series.nifti` returns that array with the
affine, ready for ``nibabel.Nifti1Image``. No axis is flipped. dcm2niix stores the same voxels
in another order with a matching affine: on the shared data it reverses the row axis (its
``j = rows - 1 - row``) for Siemens and GE, and both in-plane axes for Philips. The world
coordinate of every voxel is the same in both (checked on all shared datasets to < 1e-4 mm,
the voxel correspondence being found from the pixel values, see the tests).

Discovery
---------
Every file under ``path`` is considered, with or without an extension, plain or gzip
(``*.gz``). Files that are not DICOM (no ``DICM`` prefix and no DICOM-looking first element),
DICOMDIR, and non-MR objects are skipped with a debug log. A DICOM file that is truncated, lacks
its pixel data or has an unreadable header raises :class:`~fus.errors.DicomError` naming the
file. Headers are read once, in a thread pool, with pixel data skipped (its offset recorded);
pixels are read later straight from that offset. See :mod:`fus.mr.dicom_layout` for the grouping,
time-ordering and geometry rules and :mod:`fus.mr.dicom_scaling` for the per-vendor scaling of
the phase to radians.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import DicomError, InvalidParameterError
from fus.mr.dicom_index import FileInfo, ImageRecord, index_paths
from fus.mr.dicom_layout import COMPONENT_ORDER, SeriesLayout, build_layout
from fus.mr.dicom_pixels import read_stored
from fus.mr.dicom_scaling import (
    GAMMA_PROTON,
    GAMMA_PROTON_HZ_PER_T,
    b0_from_f0,
    check_phase_range,
)

logger = logging.getLogger(__name__)

__all__ = [
    "COMPONENTS",
    "GAMMA_PROTON",
    "GAMMA_PROTON_HZ_PER_T",
    "Dynamic",
    "Series",
    "SeriesInfo",
    "b0_from_f0",
    "load_series",
    "scan",
]

#: Complex components, in the order they are reported.
COMPONENTS = COMPONENT_ORDER

_ALIASES = {
    "magnitude": "magnitude",
    "mag": "magnitude",
    "m": "magnitude",
    "phase": "phase",
    "ph": "phase",
    "p": "phase",
    "real": "real",
    "re": "real",
    "r": "real",
    "imaginary": "imaginary",
    "imag": "imaginary",
    "im": "imaginary",
    "i": "imaginary",
}


def _workers(max_workers: int | None) -> int:
    if max_workers is None:
        return min(8, (os.cpu_count() or 1) + 2)
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidParameterError("max_workers", max_workers, "must be a positive integer or None")
    return max_workers


# --------------------------------------------------------------------------------------------
# series summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesInfo:
    """Header-level summary of one MR series (what ``fus inspect`` prints).

    Attributes
    ----------
    series_uid : str
        (0020,000E) SeriesInstanceUID.
    series_number : int or None
        (0020,0011) SeriesNumber.
    description : str
        (0008,103E) SeriesDescription.
    protocol_name, manufacturer, model, software_versions : str
        As in the header.
    vendor : str
        ``"siemens"``, ``"philips"``, ``"ge"`` or ``"unknown"``.
    enhanced : bool
        Enhanced multi-frame (True) or classic single-frame files.
    folder : str
        The deepest folder holding all files of the series.
    n_files, n_images : int
        Files and 2-D images of the series.
    components : tuple of str
        Components present (``"magnitude"``, ``"phase"``, ``"real"``, ``"imaginary"``).
    echoes : tuple of int
        Echo numbers present.
    echo_times : tuple of float
        Echo time of each echo [s].
    n_slices, n_dynamics : int
        Slices per volume and dynamics (time points).
    matrix : tuple of int or None
        (rows, columns).
    pixel_spacing : tuple of float or None
        (between rows, between columns) [mm].
    slice_spacing : float or None
        Distance between slice centres from ImagePositionPatient [mm].
    f0 : float or None
        Larmor frequency [Hz].
    b0 : float or None
        Static field from f0 [T].
    repetition_time : float or None
        [s].
    time_per_dynamic : float or None
        Median time between dynamics [s] (None for one dynamic or unknown times).
    times_source : str
        Tag or rule the dynamic times come from.
    error : str or None
        Why the series cannot be loaded (None when it can).
    """

    series_uid: str
    series_number: int | None
    description: str
    protocol_name: str = ""
    manufacturer: str = ""
    vendor: str = ""
    model: str = ""
    software_versions: str = ""
    enhanced: bool = False
    folder: str = ""
    n_files: int = 0
    n_images: int = 0
    components: tuple[str, ...] = ()
    echoes: tuple[int, ...] = ()
    echo_times: tuple[float, ...] = ()
    n_slices: int = 0
    n_dynamics: int = 0
    matrix: tuple[int, int] | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_spacing: float | None = None
    f0: float | None = None
    b0: float | None = None
    repetition_time: float | None = None
    time_per_dynamic: float | None = None
    times_source: str = ""
    error: str | None = None

    @classmethod
    def from_layout(cls, layout: SeriesLayout) -> SeriesInfo:
        """Summary of an arranged series."""
        times = layout.times
        tpd = None
        if len(times) > 1 and np.all(np.isfinite(times)):
            tpd = float(np.median(np.diff(times)))
        folder = os.path.commonpath([str(f.path.parent) for f in layout.files])
        return cls(
            series_uid=layout.series_uid,
            series_number=layout.series_number,
            description=layout.description,
            protocol_name=layout.protocol_name,
            manufacturer=layout.manufacturer,
            vendor=layout.vendor,
            model=layout.model,
            software_versions=layout.software_versions,
            enhanced=layout.enhanced,
            folder=folder,
            n_files=len(layout.files),
            n_images=sum(len(d) * len(d[0]) for d in layout.grid.values()),
            components=layout.components,
            echoes=layout.echoes,
            echo_times=tuple(layout.echo_times[e] for e in layout.echoes),
            n_slices=layout.shape[1],
            n_dynamics=layout.shape[0],
            matrix=(layout.shape[2], layout.shape[3]),
            pixel_spacing=layout.pixel_spacing,
            slice_spacing=layout.slice_spacing,
            f0=layout.f0,
            b0=layout.b0,
            repetition_time=layout.repetition_time,
            time_per_dynamic=tpd,
            times_source=layout.times_source,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary; keys carry their unit (``_s``, ``_hz``, ``_t``, ``_mm``)."""
        return {
            "series_uid": self.series_uid,
            "series_number": self.series_number,
            "description": self.description,
            "protocol_name": self.protocol_name,
            "manufacturer": self.manufacturer,
            "vendor": self.vendor,
            "model": self.model,
            "software_versions": self.software_versions,
            "enhanced": self.enhanced,
            "folder": self.folder,
            "n_files": self.n_files,
            "n_images": self.n_images,
            "components": list(self.components),
            "echoes": list(self.echoes),
            "echo_times_s": list(self.echo_times),
            "n_slices": self.n_slices,
            "n_dynamics": self.n_dynamics,
            "matrix": None if self.matrix is None else list(self.matrix),
            "pixel_spacing_mm": None if self.pixel_spacing is None else list(self.pixel_spacing),
            "slice_spacing_mm": self.slice_spacing,
            "f0_hz": self.f0,
            "b0_t": self.b0,
            "repetition_time_s": self.repetition_time,
            "time_per_dynamic_s": self.time_per_dynamic,
            "times_source": self.times_source,
            "error": self.error,
        }

    def summary(self) -> str:
        """One human-readable line."""
        num = "?" if self.series_number is None else str(self.series_number)
        head = f"series {num} {self.description!r}"
        if self.error:
            return f"{head}: ERROR {self.error}"
        kind = "enhanced" if self.enhanced else "classic"
        tes = "/".join(f"{t * 1e3:g}" for t in self.echo_times)
        tpd = "-" if self.time_per_dynamic is None else f"{self.time_per_dynamic:g} s"
        matrix = "?" if self.matrix is None else f"{self.matrix[0]}x{self.matrix[1]}"
        voxel = (
            "?"
            if self.pixel_spacing is None or self.slice_spacing is None
            else f"{self.pixel_spacing[0]:g}x{self.pixel_spacing[1]:g}x{self.slice_spacing:g} mm"
        )
        f0 = "?" if self.f0 is None else f"{self.f0 / 1e6:.6f} MHz"
        b0 = "?" if self.b0 is None else f"{self.b0:.4f} T"
        return (
            f"{head}: {self.vendor} {self.model} ({kind}), {'+'.join(self.components)}, "
            f"echoes {list(self.echoes)} TE {tes} ms, {self.n_slices} slices x {self.n_dynamics} "
            f"dynamics, {matrix}, {voxel}, f0 {f0}, B0 {b0}, {tpd}/dynamic"
        )


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _combine(
    images: dict[tuple[str, int], np.ndarray], available: Iterable[tuple[str, int]], echo: int, name: str
) -> np.ndarray:
    have = set(available)
    if ("real", echo) in have and ("imaginary", echo) in have:
        re, im = images[("real", echo)], images[("imaginary", echo)]
        out = np.empty(re.shape, dtype=np.complex64)
        out.real = re
        out.imag = im
        return out
    if ("magnitude", echo) in have and ("phase", echo) in have:
        mag, ph = images[("magnitude", echo)], images[("phase", echo)]
        out = np.empty(mag.shape, dtype=np.complex64)
        out.real = mag * np.cos(ph)
        out.imag = mag * np.sin(ph)
        return out
    present = sorted(c for c, e in have if e == echo)
    if "phase" in present:
        missing = "magnitude"
    elif "magnitude" in present:
        missing = "phase"
    elif "real" in present:
        missing = "imaginary"
    elif "imaginary" in present:
        missing = "real"
    else:
        missing = "magnitude and phase (or real and imaginary)"
    raise DicomError(
        f"{name}: a complex image of echo {echo} needs magnitude + phase or real + imaginary, "
        f"but this series holds only {present or 'nothing'} for that echo: {missing} is missing "
        "(some scanners store it as a separate series, e.g. Siemens field-map magnitude)",
        tag="(0008,0008) ImageType",
    )


def _pairs_for(components: Sequence[str], echo: int, have: set[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(c, echo) for c in components if (c, echo) in have]


@dataclass(frozen=True)
class Dynamic:
    """The images of one dynamic (time point).

    Attributes
    ----------
    index : int
        0-based dynamic index.
    time : float
        Time of the dynamic relative to the first [s] (NaN when unknown).
    images : dict
        (component, echo) -> float32 array [slice, row, column] (phase in rad).
    series_name : str
        For messages.
    """

    index: int
    time: float
    images: dict[tuple[str, int], np.ndarray]
    series_name: str = ""

    def image(self, component: str = "magnitude", echo: int | None = None) -> np.ndarray:
        """One component of one echo, [slice, row, column]."""
        comp = _component_name(component)
        echoes = sorted(e for c, e in self.images if c == comp)
        if not echoes:
            raise DicomError(f"{self.series_name}: dynamic {self.index} was read without {comp} images")
        if echo is None:
            if len(echoes) > 1:
                raise InvalidParameterError("echo", echo, f"choose one of the echoes {echoes}")
            echo = echoes[0]
        if (comp, echo) not in self.images:
            raise InvalidParameterError("echo", echo, f"{comp} was read for echoes {echoes}")
        return self.images[(comp, echo)]

    def complex(self, echo: int | None = None) -> np.ndarray:
        """complex64 [slice, row, column] from the components read for this dynamic."""
        echoes = sorted({e for _, e in self.images})
        if echo is None:
            if len(echoes) != 1:
                raise InvalidParameterError("echo", echo, f"choose one of the echoes {echoes}")
            echo = echoes[0]
        return _combine(self.images, self.images.keys(), echo, self.series_name)


def _component_name(component: str) -> str:
    if not isinstance(component, str) or component.strip().lower() not in _ALIASES:
        raise InvalidParameterError(
            "component", component, "must be one of 'magnitude', 'phase', 'real', 'imaginary'"
        )
    return _ALIASES[component.strip().lower()]


class Series:
    """One MR series, arranged and ready to read (obtain it with :func:`load_series`).

    Pixels are read on demand; nothing is cached between calls, so reading the same image twice
    reads its file twice. See the module docstring for the array layout.
    """

    def __init__(self, layout: SeriesLayout, max_workers: int | None = None) -> None:
        self._layout = layout
        self._workers = _workers(max_workers)
        self.info = SeriesInfo.from_layout(layout)

    # ---- facts -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``"series 3 'gre_field_magph'"``."""
        return self._layout.name

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(dynamics, slices, rows, columns)."""
        return self._layout.shape

    @property
    def n_dynamics(self) -> int:
        """Number of dynamics (time points)."""
        return self._layout.shape[0]

    @property
    def components(self) -> tuple[str, ...]:
        """Components present."""
        return self._layout.components

    @property
    def echoes(self) -> tuple[int, ...]:
        """Echo numbers present, ascending."""
        return self._layout.echoes

    @property
    def echo_times(self) -> np.ndarray:
        """Echo time of each echo of :attr:`echoes` [s]."""
        return np.array([self._layout.echo_times[e] for e in self._layout.echoes])

    def echo_time(self, echo: int) -> float:
        """Echo time [s] of echo number ``echo``."""
        if echo not in self._layout.echo_times:
            raise InvalidParameterError("echo", echo, f"the series has echoes {list(self.echoes)}")
        return self._layout.echo_times[echo]

    @property
    def times(self) -> np.ndarray:
        """Time of every dynamic relative to the first [s] (NaN when the headers do not tell)."""
        return self._layout.times.copy()

    @property
    def times_source(self) -> str:
        """Tag or rule the times come from."""
        return self._layout.times_source

    @property
    def sequence_name(self) -> str:
        """(0018,0024) SequenceName or (0018,9005) PulseSequenceName of the first file ("" if absent)."""
        return self._layout.files[0].sequence_name

    @property
    def time_origin(self) -> float | None:
        """Absolute time of the first dynamic [s] in the clock of :attr:`times_source` (seconds
        since 0001-01-01), or None when the times are not from an acquisition time."""
        return self._layout.time_origin

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel (column, row, slice) -> RAS [mm] (NIfTI convention)."""
        return self._layout.affine.copy()

    @property
    def f0(self) -> float:
        """Larmor frequency [Hz]."""
        return self._layout.f0

    @property
    def b0(self) -> float:
        """Static field [T] = 2 pi f0 / gamma."""
        return self._layout.b0

    @property
    def repetition_time(self) -> float | None:
        """Repetition time [s]."""
        return self._layout.repetition_time

    @property
    def vendor(self) -> str:
        """``"siemens"``, ``"philips"``, ``"ge"`` or ``"unknown"``."""
        return self._layout.vendor

    @property
    def enhanced(self) -> bool:
        """Enhanced multi-frame files."""
        return self._layout.enhanced

    @property
    def files(self) -> list[Path]:
        """The files of the series."""
        return [f.path for f in self._layout.files]

    def has(self, component: str, echo: int) -> bool:
        """True when the series holds ``component`` images for echo number ``echo``."""
        return (_component_name(component), int(echo)) in self._layout.grid

    def image_files(self, component: str = "magnitude", echo: int | None = None) -> list[list[tuple[Path, int]]]:
        """Provenance: ``[dynamic][slice] -> (file, 0-based frame)`` of one component and echo."""
        key = self._key(component, echo)
        return [[(rec.file.path, rec.frame) for rec in row] for row in self._layout.grid[key]]

    def scaling_rule(self, component: str = "magnitude", echo: int | None = None) -> str:
        """The stored-value -> physical-value rule applied (of the first image), for sidecars."""
        key = self._key(component, echo)
        return self._layout.grid[key][0][0].scale.rule

    @property
    def slice_positions(self) -> np.ndarray:
        """ImagePositionPatient of every slice [mm, LPS], shape (slices, 3)."""
        return self._layout.positions.copy()

    @property
    def notes(self) -> list[str]:
        """Warnings met while arranging the series."""
        return list(self._layout.notes)

    def __repr__(self) -> str:
        return f"Series({self.info.summary()})"

    # ---- selection -------------------------------------------------------------------------
    def _key(self, component: str, echo: int | None) -> tuple[str, int]:
        comp = _component_name(component)
        echoes = sorted(e for c, e in self._layout.grid if c == comp)
        if not echoes:
            raise DicomError(
                f"{self.name} has no {comp} images (components: {list(self.components)})",
                path=self._layout.files[0].path.parent,
                tag="(0008,0008) ImageType",
            )
        if echo is None:
            if len(echoes) > 1:
                raise InvalidParameterError("echo", echo, f"{comp} has echoes {echoes}: choose one")
            echo = echoes[0]
        if isinstance(echo, bool) or not isinstance(echo, (int, np.integer)) or int(echo) not in echoes:
            raise InvalidParameterError("echo", echo, f"{comp} has echoes {echoes}")
        return comp, int(echo)

    def _dynamics(self, dynamics: Any) -> list[int]:
        n = self.n_dynamics
        if dynamics is None:
            return list(range(n))
        if isinstance(dynamics, slice):
            return list(range(n))[dynamics]
        if isinstance(dynamics, (int, np.integer)) and not isinstance(dynamics, bool):
            dynamics = [dynamics]
        try:
            out = [int(d) for d in dynamics]
        except (TypeError, ValueError):
            raise InvalidParameterError("dynamics", dynamics, "must be None, an int, a slice or a sequence of ints") from None
        bad = [d for d in out if not -n <= d < n]
        if bad:
            raise InvalidParameterError("dynamics", dynamics, f"indices {bad} outside the {n} dynamics")
        return [d % n for d in out]

    # ---- reading ---------------------------------------------------------------------------
    def _read(
        self,
        keys: Sequence[tuple[str, int]],
        dyn_list: Sequence[int],
        pool: ThreadPoolExecutor | None = None,
        cache: dict[Path, dict[int, np.ndarray]] | None = None,
    ) -> dict[tuple[str, int], np.ndarray]:
        """Read ``keys`` at dynamics ``dyn_list`` into float32 [len(dyn_list), slice, row, col]."""
        n_dyn, n_sl, rows, cols = self.shape
        out = {key: np.empty((len(dyn_list), n_sl, rows, cols), dtype=np.float32) for key in keys}
        jobs: dict[Path, tuple[FileInfo, list[tuple[ImageRecord, np.ndarray, int, int]]]] = {}
        for key in keys:
            grid = self._layout.grid[key]
            for d_out, d in enumerate(dyn_list):
                for k, rec in enumerate(grid[d]):
                    jobs.setdefault(rec.file.path, (rec.file, []))[1].append((rec, out[key], d_out, k))

        def run(job: tuple[FileInfo, list[tuple[ImageRecord, np.ndarray, int, int]]]) -> None:
            info, items = job
            frames = [rec.frame for rec, _, _, _ in items]
            cached = cache.get(info.path) if cache is not None else None
            if cached is not None and all(f in cached for f in frames):
                stored = [cached[f] for f in frames]
            else:
                stored = list(read_stored(info, frames))
            for (rec, dest, d_out, k), raw in zip(items, stored):
                rec.scale.apply(raw, out=dest[d_out, k])
                if rec.scale.is_phase:
                    check_phase_range(dest[d_out, k], rec.label, info.path, rec.scale)

        job_list = list(jobs.values())
        if pool is not None and len(job_list) > 1:
            list(pool.map(run, job_list))
        elif len(job_list) > 2 and self._workers > 1:
            with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fus-dicom") as p:
                list(p.map(run, job_list))
        else:
            for job in job_list:
                run(job)
        return out

    def image(self, component: str = "magnitude", echo: int | None = None, dynamics: Any = None) -> np.ndarray:
        """One component of one echo as float32 ``[dynamic, slice, row, column]``.

        Parameters
        ----------
        component : str
            ``"magnitude"`` (default), ``"phase"`` (radians), ``"real"`` or ``"imaginary"``.
        echo : int, optional
            Echo number; may be omitted when the component has a single echo.
        dynamics : int, slice or sequence of int, optional
            Dynamics to read (default all); only their files are read.

        Returns
        -------
        ndarray of float32
            Magnitude / real / imaginary in scanner units, phase in radians.

        Raises
        ------
        DicomError
            The series has no such component, or a file cannot be read or decoded.
        InvalidParameterError
            Unknown component name, missing or unknown echo, bad ``dynamics``.
        """
        key = self._key(component, echo)
        return self._read([key], self._dynamics(dynamics))[key]

    def complex(self, echo: int | None = None, dynamics: Any = None) -> np.ndarray:
        """Complex image ``[dynamic, slice, row, column]`` (complex64) of one echo.

        Built from real + imaginary when both exist, else from magnitude * exp(i * phase).

        Raises
        ------
        DicomError
            The echo lacks the component needed (e.g. phase without magnitude).
        """
        have = set(self._layout.grid)
        echoes = sorted({e for _, e in have})
        if echo is None:
            if len(echoes) != 1:
                raise InvalidParameterError("echo", echo, f"the series has echoes {echoes}: choose one")
            echo = echoes[0]
        if echo not in echoes:
            raise InvalidParameterError("echo", echo, f"the series has echoes {echoes}")
        if {("real", echo), ("imaginary", echo)} <= have:
            keys = [("real", echo), ("imaginary", echo)]
        elif {("magnitude", echo), ("phase", echo)} <= have:
            keys = [("magnitude", echo), ("phase", echo)]
        else:  # raises, naming what is missing, before any file is read
            _combine({}, have, echo, self.name)
            raise AssertionError("unreachable")  # pragma: no cover
        imgs = self._read(keys, self._dynamics(dynamics))
        return _combine(imgs, keys, echo, self.name)

    def dynamic(self, index: int, component: str = "magnitude", echo: int | None = None) -> np.ndarray:
        """One dynamic of one component, float32 ``[slice, row, column]``."""
        key = self._key(component, echo)
        return self._read([key], self._dynamics(index))[key][0]

    def iter_dynamics(
        self,
        components: Sequence[str] | None = None,
        echoes: Sequence[int] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Dynamic]:
        """Yield the dynamics one at a time, reading only the files of each dynamic.

        Parameters
        ----------
        components : sequence of str, optional
            Components to read (default: all present).
        echoes : sequence of int, optional
            Echoes to read (default: all present).
        start, stop : int, optional
            Range of dynamics (``range(start, stop)``).

        Yields
        ------
        Dynamic
            ``.images[(component, echo)]`` is float32 [slice, row, column].

        Notes
        -----
        A multi-frame file that holds several dynamics is read frame by frame when it is
        uncompressed; a gzip or compressed one is decoded once, and its frames are kept only
        until the last dynamic that needs them.
        """
        comps = list(self.components) if components is None else [_component_name(c) for c in components]
        ech = list(self.echoes) if echoes is None else list(echoes)
        keys = [(c, e) for c in comps for e in ech if (c, e) in self._layout.grid]
        if not keys:
            raise InvalidParameterError(
                "components/echoes", (components, echoes), f"the series has {sorted(self._layout.grid)}"
            )
        n = self.n_dynamics
        stop = n if stop is None else stop
        if not (0 <= start <= stop <= n):
            raise InvalidParameterError("start/stop", (start, stop), f"must satisfy 0 <= start <= stop <= {n}")
        # files that must be decoded whole (gzip / compressed): keep their frames until last use
        last_use: dict[Path, int] = {}
        needs_cache: dict[Path, FileInfo] = {}
        for key in keys:
            for d in range(start, stop):
                for rec in self._layout.grid[key][d]:
                    if rec.file.gz or not rec.file.layout.native:
                        last_use[rec.file.path] = d
                        needs_cache[rec.file.path] = rec.file
        cache: dict[Path, dict[int, np.ndarray]] = {}
        wanted: dict[Path, set[int]] = {}
        for key in keys:
            for d in range(start, stop):
                for rec in self._layout.grid[key][d]:
                    if rec.file.path in needs_cache:
                        wanted.setdefault(rec.file.path, set()).add(rec.frame)
        times = self._layout.times
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fus-dicom") as pool:
            for d in range(start, stop):
                for path in {rec.file.path for key in keys for rec in self._layout.grid[key][d]}:
                    if path in needs_cache and path not in cache:
                        frames = sorted(wanted[path])
                        cache[path] = dict(zip(frames, read_stored(needs_cache[path], frames)))
                imgs = self._read(keys, [d], pool=pool, cache=cache)
                for path in [p for p, last in last_use.items() if last == d]:
                    cache.pop(path, None)
                yield Dynamic(
                    index=d,
                    time=float(times[d]),
                    images={k: v[0] for k, v in imgs.items()},
                    series_name=self.name,
                )

    # ---- NIfTI order -----------------------------------------------------------------------
    @staticmethod
    def to_nifti_order(array: np.ndarray) -> np.ndarray:
        """``[dynamic, slice, row, column]`` -> ``[column, row, slice, dynamic]`` (a view).

        A 3-D ``[slice, row, column]`` array becomes ``[column, row, slice]``.
        """
        if array.ndim == 4:
            return array.transpose(3, 2, 1, 0)
        if array.ndim == 3:
            return array.transpose(2, 1, 0)
        raise InvalidParameterError("array", array.shape, "must be 3-D [slice, row, col] or 4-D [dyn, slice, row, col]")

    def nifti(self, component: str = "magnitude", echo: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Volume in NIfTI voxel order with its affine.

        Returns
        -------
        data : ndarray of float32
            ``[i=column, j=row, k=slice, t=dynamic]``, or ``[i, j, k]`` for a single dynamic.
        affine : ndarray, shape (4, 4)
            Voxel -> RAS [mm].
        """
        arr = self.image(component, echo)
        if arr.shape[0] == 1:
            arr = arr[0]
        return self.to_nifti_order(arr), self.affine


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------


SeriesKey = tuple[str, bool]


def _group(images: list[ImageRecord]) -> dict[SeriesKey, list[ImageRecord]]:
    out: dict[SeriesKey, list[ImageRecord]] = {}
    for img in images:
        out.setdefault((img.file.series_uid, img.file.enhanced), []).append(img)
    return out


def scan(path: str | os.PathLike[str], *, strict: bool = False, max_workers: int | None = None) -> list[SeriesInfo]:
    """Summarise every MR series under ``path`` from the headers only.

    Parameters
    ----------
    path : str or PathLike
        Folder tree or single file.
    strict : bool
        Raise the first series error instead of reporting it in ``SeriesInfo.error``.
    max_workers : int, optional
        Threads for reading headers (default: min(8, CPUs + 2)).

    Returns
    -------
    list of SeriesInfo
        Sorted by SeriesNumber, then SeriesInstanceUID, classic before enhanced. A series
        exported both as classic and as enhanced files (same UID) appears twice, once per kind.

    Raises
    ------
    DicomError
        A DICOM file whose series cannot be told (unreadable or truncated header), no MR series
        at all, or (``strict=True``) any series error.
    """
    root = Path(path)
    idx = index_paths(root, _workers(max_workers))
    groups = _group(idx.images)
    keys = set(groups) | set(idx.series_errors)
    if not keys:
        raise DicomError("no MR DICOM series found", path=root)
    out: list[SeriesInfo] = []
    for key in keys:
        number, desc, first = idx.series_names.get(key, (None, "", root))
        err = idx.series_errors.get(key)
        if err is None:
            try:
                out.append(SeriesInfo.from_layout(build_layout(groups[key])))
                continue
            except DicomError as exc:
                err = exc
        if strict:
            raise err
        logger.warning("series %s %r cannot be read: %s", number, desc, err)
        out.append(
            SeriesInfo(
                series_uid=key[0],
                series_number=number,
                description=desc,
                enhanced=key[1],
                folder=str(first.parent),
                error=str(err),
            )
        )
    out.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid, s.enhanced))
    return out


def _choices(keys: Iterable[SeriesKey], names: dict[SeriesKey, tuple[int | None, str, Path]]) -> str:
    def describe(key: SeriesKey) -> str:
        number, desc, first = names[key]
        kind = "enhanced" if key[1] else "classic"
        return f"series {number} {desc!r} ({kind}, UID {key[0]}, in {first.parent})"

    rows = sorted(keys, key=lambda k: (names[k][0] is None, names[k][0] or 0, k))
    return "; ".join(describe(k) for k in rows)


def load_series(
    path: str | os.PathLike[str], series: int | str | None = None, *, max_workers: int | None = None
) -> Series:
    """Index ``path`` and return one arranged :class:`Series` (headers read, pixels not yet).

    Parameters
    ----------
    path : str or PathLike
        Folder tree or single file.
    series : int or str, optional
        SeriesNumber (int or a string of digits) or SeriesInstanceUID. May be omitted when
        ``path`` holds a single MR series.
    max_workers : int, optional
        Threads for reading files (default: min(8, CPUs + 2)).

    Raises
    ------
    DicomError
        No MR series, ambiguous or unknown selection (the message lists the choices), or the
        selected series is malformed (see :mod:`fus.mr.dicom_layout`).
    InvalidParameterError
        ``series`` is neither an int nor a str.
    """
    if series is not None and (isinstance(series, bool) or not isinstance(series, (int, str, np.integer))):
        raise InvalidParameterError("series", series, "must be a SeriesNumber (int) or a SeriesInstanceUID (str)")
    workers = _workers(max_workers)
    root = Path(path)
    idx = index_paths(root, workers)
    groups = _group(idx.images)
    keys = set(groups) | set(idx.series_errors)
    if not keys:
        raise DicomError("no MR DICOM series found", path=root)
    names = idx.series_names
    if series is None:
        chosen = sorted(keys)
        what = "MR series found, choose one by number or UID"
    else:
        chosen = [k for k in keys if isinstance(series, str) and k[0] == series.strip()]
        if not chosen:
            number = None
            if isinstance(series, (int, np.integer)):
                number = int(series)
            elif series.strip().lstrip("-").isdigit():
                number = int(series.strip())
            if number is not None:
                chosen = [k for k in keys if names[k][0] == number]
        if not chosen:
            raise DicomError(f"no MR series {series!r}; available: {_choices(keys, names)}", path=root)
        what = f"series match {series!r}; choose by UID, or pass the folder of one of them"
    if len(chosen) > 1:
        raise DicomError(f"{len(chosen)} {what}: {_choices(chosen, names)}", path=root)
    key = chosen[0]
    if key in idx.series_errors:
        raise idx.series_errors[key]
    layout = build_layout(groups[key])
    logger.info("loaded %s: %s", layout.name, SeriesInfo.from_layout(layout).summary())
    return Series(layout, max_workers=workers)
