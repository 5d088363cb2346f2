"""An arranged MR series and its pixels: :class:`Series` and :class:`Dynamic`.

Public through :mod:`fus.mr.dicom` (read that module's docstring for the array layout and the
conventions; obtain a :class:`Series` with :func:`fus.mr.dicom.load_series`). Pixels are read on
demand from the offsets found by the header pass (:mod:`fus.mr.dicom_pixels`) and scaled to
physical values (phase in radians), in a thread pool per call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import DicomError, InvalidParameterError
from fus.mr.dicom_layout import SeriesLayout
from fus.mr.dicom_pixels import read_stored
from fus.mr.dicom_records import FileInfo, ImageRecord
from fus.mr.dicom_scaling import check_phase_range
from fus.mr.dicom_series_info import SeriesInfo

__all__ = ["Dynamic", "Series"]

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
