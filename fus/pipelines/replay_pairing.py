"""Which series of a folder ``fus replay`` reads: the phase series and, where needed, its magnitude.

Scanners often store magnitude and phase of one acquisition as two series (Siemens: consecutive
SeriesNumbers, magnitude first). :func:`pick_series` pairs them when the choice is unambiguous:

* the phase series is the only series holding phase (or real / imaginary) images, or the one
  the user named with ``--series``;
* when it holds no magnitude of its own, its magnitude is the magnitude-only series of the same
  acquisition: same matrix, slices, dynamics, pixel spacing and voxel-to-world affine (within
  1e-3 mm), holding the phase's echo times (a field-map magnitude holds both echoes). Several
  such series: the one numbered just below the phase (the Siemens order), else an error.

Anything ambiguous stays an error, and the message lists the exact flags to pass
(``--series P --magnitude-series M``) for every readable choice.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fus.errors import DicomError
from fus.mr.dicom import SeriesInfo, scan

__all__ = ["SeriesChoice", "pick_series", "same_acquisition"]

log = logging.getLogger(__name__)

_COMPLEX_PARTS = ("phase", "real", "imaginary")


@dataclass(frozen=True)
class SeriesChoice:
    """The series :func:`pick_series` chose.

    Attributes
    ----------
    series : int or str or None
        SeriesNumber or SeriesInstanceUID of the phase series (None: the folder's only series).
    magnitude_series : int or str or None
        Its separate magnitude series (None: the phase series carries its magnitude).
    note : str
        How the choice was made (``"given"``, ``"the only series"`` or a sentence naming the
        series paired), for the log, the CLI and ``replay.json``.
    """

    series: int | str | None
    magnitude_series: int | str | None
    note: str


def _ident(info: SeriesInfo) -> int | str:
    """SeriesNumber where it names the series alone (see :func:`_readable`), else the UID."""
    return info.series_number if info.series_number is not None else info.series_uid


def _readable(path: str | Path) -> list[SeriesInfo]:
    """The readable series of ``path``; a SeriesNumber that several series share is dropped
    (``series_number=None``) so that they are named by UID."""
    infos = [i for i in scan(path) if i.error is None]
    numbers = [i.series_number for i in infos]
    return [i if i.series_number is None or numbers.count(i.series_number) == 1 else dataclasses.replace(i, series_number=None)
            for i in infos]


def _label(info: SeriesInfo) -> str:
    return f"series {_ident(info)} {info.description!r}"


def _has_complex(info: SeriesInfo) -> bool:
    return any(c in info.components for c in _COMPLEX_PARTS)


def _magnitude_only(info: SeriesInfo) -> bool:
    return info.components == ("magnitude",)


def same_acquisition(phase: SeriesInfo, magnitude: SeriesInfo) -> bool:
    """Whether ``magnitude`` can be the magnitude of ``phase``: same matrix, slices, dynamics,
    pixel spacing (1e-4 mm) and affine (1e-3 mm), and every echo time of the phase (1 us) among
    the magnitude's, from the headers."""
    if (phase.matrix, phase.n_slices, phase.n_dynamics) != (magnitude.matrix, magnitude.n_slices, magnitude.n_dynamics):
        return False
    if not all(any(abs(te - tm) <= 1e-6 for tm in magnitude.echo_times) for te in phase.echo_times):
        return False  # the magnitude must hold every echo of the phase (it may hold more)
    if (phase.pixel_spacing is None) != (magnitude.pixel_spacing is None):
        return False
    if phase.pixel_spacing is not None and not np.allclose(phase.pixel_spacing, magnitude.pixel_spacing, rtol=0, atol=1e-4):
        return False
    if phase.affine is None or magnitude.affine is None:
        return phase.affine is None and magnitude.affine is None
    return bool(np.allclose(phase.affine, magnitude.affine, rtol=0, atol=1e-3))


def _flags(phase: SeriesInfo, magnitude: SeriesInfo | None) -> str:
    text = f"--series {_ident(phase)}"
    return text if magnitude is None else f"{text} --magnitude-series {_ident(magnitude)}"


def _partners(phase: SeriesInfo, infos: list[SeriesInfo]) -> list[SeriesInfo]:
    return [m for m in infos if m is not phase and _magnitude_only(m) and same_acquisition(phase, m)]


def _choices(phases: list[SeriesInfo], infos: list[SeriesInfo]) -> list[str]:
    out = []
    for p in phases:
        if "magnitude" in p.components or ("real" in p.components and "imaginary" in p.components):
            out.append(f"{_flags(p, None)} ({_label(p)})")
        for m in _partners(p, infos):
            out.append(f"{_flags(p, m)} ({_label(p)} with magnitude {_label(m)})")
    return out


def _find(infos: list[SeriesInfo], wanted: int | str) -> SeriesInfo | None:
    """The readable series ``wanted`` names (number or UID), or None (load_series will say why)."""
    text = str(wanted).strip()
    hits = [i for i in infos if i.series_uid == text or (text.lstrip("-").isdigit() and i.series_number == int(text))]
    return hits[0] if len(hits) == 1 else None


def _magnitude_for(phase: SeriesInfo, infos: list[SeriesInfo]) -> SeriesInfo | None:
    """The magnitude series of ``phase`` (None: it needs none); DicomError when none or several fit."""
    if "magnitude" in phase.components or ("real" in phase.components and "imaginary" in phase.components):
        return None
    fits = _partners(phase, infos)
    if len(fits) > 1 and phase.series_number is not None:
        below = [m for m in fits if m.series_number == phase.series_number - 1]
        if len(below) == 1:
            return below[0]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        others = [f"{_label(m)} ({m.n_dynamics} dynamics, {m.n_slices} slices, matrix {m.matrix})" for m in infos if _magnitude_only(m)]
        raise DicomError(
            f"{_label(phase)} holds phase without magnitude, and no magnitude series of the same acquisition "
            f"(same matrix, slices, dynamics, geometry and echo time) is in the folder"
            + (f"; magnitude series found: {'; '.join(others)}" if others else "")
            + ": pass the magnitude with --magnitude-series N",
            tag="(0008,0008) ImageType / (0020,0011) SeriesNumber",
        )
    raise DicomError(
        f"{len(fits)} magnitude series fit {_label(phase)}: choose one: "
        + "; ".join(_flags(phase, m) for m in fits),
        tag="(0020,0011) SeriesNumber",
    )


def pick_series(path: str | Path, series: int | str | None = None, magnitude_series: int | str | None = None) -> SeriesChoice:
    """Choose the phase series of ``path`` and its magnitude series (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Folder (or file) of the DICOM series.
    series, magnitude_series : int or str, optional
        What the user gave (``--series``, ``--magnitude-series``); given both, nothing is chosen.

    Returns
    -------
    SeriesChoice

    Raises
    ------
    DicomError
        No series with phase, several that could be meant (the message lists the flags for each),
        a phase-only series with no magnitude series of the same acquisition, or several.
    """
    if series is not None and magnitude_series is not None:
        return SeriesChoice(series, magnitude_series, "given")
    infos = _readable(path)
    if series is not None:
        phase = _find(infos, series)
        if phase is None or magnitude_series is not None:
            return SeriesChoice(series, magnitude_series, "given")
        mag = _magnitude_for(phase, infos)
        if mag is None:
            return SeriesChoice(series, None, "given")
        note = f"given {_label(phase)}; its magnitude: {_label(mag)} (same matrix, slices, dynamics, geometry and echo time)"
        log.info("%s", note)
        return SeriesChoice(series, _ident(mag), note)
    phases = [i for i in infos if _has_complex(i)]
    if not phases:
        # load_series / choose_echo give the precise error (no phase, unreadable series, ...)
        return SeriesChoice(None, magnitude_series, "the only series")
    if len(phases) > 1:
        choices = _choices(phases, infos)
        raise DicomError(
            f"{len(phases)} series with phase in the folder: choose one: " + "; ".join(choices or [_flags(p, None) for p in phases]),
            path=Path(path), tag="(0020,0011) SeriesNumber",
        )
    (phase,) = phases
    if magnitude_series is not None:
        return SeriesChoice(_ident(phase), magnitude_series, f"{_label(phase)}: the only series with phase")
    mag = _magnitude_for(phase, infos)
    if mag is None:
        if len(infos) == 1:
            return SeriesChoice(None, None, "the only series")
        note = f"{_label(phase)}: the only series with phase (and its own magnitude)"
        return SeriesChoice(_ident(phase), None, note)
    note = (f"paired phase {_label(phase)} with magnitude {_label(mag)} (same matrix, slices, dynamics, geometry "
            f"and echo time); to choose otherwise: --series P --magnitude-series M")
    log.info("%s", note)
    return SeriesChoice(_ident(phase), _ident(mag), note)
