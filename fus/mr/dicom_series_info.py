"""Header-level summary of one MR series, :class:`SeriesInfo` (what ``fus inspect`` prints).

Public through :mod:`fus.mr.dicom` (:func:`fus.mr.dicom.scan` returns these).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from fus.mr.dicom_layout import SeriesLayout

__all__ = ["SeriesInfo"]


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
    affine : tuple of tuple of float or None
        4x4 voxel (column, row, slice) -> RAS [mm], as :attr:`fus.mr.dicom.Series.affine`.
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
    affine: tuple[tuple[float, ...], ...] | None = None
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
            affine=tuple(tuple(float(v) for v in row) for row in np.asarray(layout.affine)),
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
