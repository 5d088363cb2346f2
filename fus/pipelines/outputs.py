"""The files of one run, all or nothing: temporary names, then renamed into place, the sidecar last.

A pipeline writes each volume, table and finally the JSON sidecar through :class:`RunOutputs`.
Nothing is visible under its final name until :meth:`RunOutputs.commit`, which first removes the
previous run's sidecar (so a half-replaced result never looks complete), then renames every file
into place and writes the sidecar last. An error or Ctrl-C before the commit removes the temporary
files and leaves the previous complete result untouched; a crash inside the commit (a few renames)
leaves files without a sidecar, which is how an incomplete result reads. Files an earlier run made
that this run does not (``--phase`` / ``--heat`` dropped, say) are removed at the commit.

Values are written honestly: non-finite numbers never reach a file as ``inf`` or ``Infinity``.
The JSON is strict (``allow_nan=False``; a non-finite number raises), and a volume with ``+inf``
(CEM43 beyond float range above ~170 C) is refused unless the caller saturates it first with
:func:`saturate` and says so in the sidecar.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fus.errors import DataError, InvalidParameterError
from fus.jsonable import jsonable

__all__ = ["RunOutputs", "strict_json", "saturate", "DOSE_CEILING"]

log = logging.getLogger(__name__)

#: The largest CEM43 dose written [min]: doses past it (temperatures above ~150 C, where the model
#: has long stopped being physical) are written as this value and counted in the sidecar.
DOSE_CEILING = 1e30


def saturate(values: np.ndarray, ceiling: float) -> tuple[np.ndarray, int]:
    """``values`` with entries above ``ceiling`` (``+inf`` included) set to it, and their count.

    NaN stays NaN (an unknown value stays visibly unknown).
    """
    a = np.asarray(values)
    over = a > ceiling
    n = int(np.count_nonzero(over))
    if n:
        a = np.where(over, ceiling, a)
    return a, n


def strict_json(obj: Any) -> str:
    """``obj`` as strict JSON text (numpy values converted); a non-finite number raises.

    Raises
    ------
    DataError
        Naming the key path of the first non-finite number.
    """
    return json.dumps(jsonable(obj, where="sidecar"), indent=2, allow_nan=False) + "\n"


class RunOutputs:
    """The files of one run in ``directory``, written under temporary names until :meth:`commit`.

    Parameters
    ----------
    directory : path
        Output folder (created at the first write).
    option : str
        The command-line option that named it, for error messages (default ``-o``).

    Use as a context manager: leaving it by an exception (Ctrl-C included) removes the temporary
    files.
    """

    def __init__(self, directory: str | Path, option: str = "-o") -> None:
        self.directory = Path(directory)
        self.option = option
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final)
        if self.directory.exists() and not self.directory.is_dir():
            raise InvalidParameterError(option, str(directory), "must be a directory (it is a file)")
        # a folder that cannot be created or written (a parent that is a file, no permission) is
        # refused now, before the run's work, not when its first file is written
        parent = next((p for p in (self.directory, *self.directory.parents) if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise InvalidParameterError(option, str(directory), f"cannot be created: {parent} is a file")
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            raise InvalidParameterError(option, str(directory), f"cannot be written: no write permission in {parent}")

    def _temp(self, name: str) -> tuple[Path, Path]:
        final = self.directory / name
        if any(f == final for _, f in self._pending):
            raise DataError(f"{name} is written twice in one run", path=final)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidParameterError(self.option, str(self.directory), f"cannot be created: {exc.strerror or exc}") from exc
        temp = self.directory / f".{name}.partial-{os.getpid()}"
        self._pending.append((temp, final))
        return temp, final

    def nifti(self, name: str, data: Any, affine: np.ndarray, description: str, *, dt: float | None = None, spatial_units: str = "mm") -> Path:
        """Write a float32 NIfTI-1 volume (3-D, or 4-D with time step ``dt`` [s]); returns the final path.

        Raises
        ------
        DataError
            For ``+inf`` / ``-inf`` in ``data`` (saturate first) or an OS error, naming the file.
        """
        from fus.mr.nifti_stream import nifti_image  # nibabel only when a volume is written

        arr = np.asarray(data, dtype=np.float32)
        if np.isinf(arr).any():
            raise DataError(f"{np.isinf(arr).sum()} infinite values in the volume (saturate them and say so)", path=self.directory / name)
        temp, final = self._temp(name)
        img = nifti_image(arr, affine, description, step=dt if arr.ndim == 4 else None, spatial_units=spatial_units)
        try:
            # nibabel picks gzip from the name: write under a name with the same ending
            with open(temp, "wb") as fh:
                fh.write(img.to_bytes() if not name.endswith(".gz") else _gzip(img.to_bytes()))
        except OSError as exc:
            raise DataError(f"cannot write NIfTI: {exc.strerror or exc}", path=final) from exc
        return final

    def csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
        """Write a CSV table; each row's floats with 6 significant digits. Returns the final path."""
        temp, final = self._temp(name)
        try:
            with open(temp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                for row in rows:
                    w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
        except OSError as exc:
            raise DataError(f"cannot write the table: {exc.strerror or exc}", path=final) from exc
        return final

    def commit(self, sidecar_name: str, sidecar: Mapping[str, Any], stale: Iterable[str] = ()) -> Path:
        """Make the run visible: old sidecar away, files renamed into place, ``stale`` removed, sidecar last.

        Raises
        ------
        DataError
            A non-finite number in the sidecar (before anything is moved) or an OS error.
        """
        text = strict_json(sidecar)
        final_sidecar = self.directory / sidecar_name
        temp, _ = self._temp(sidecar_name)
        self._pending.pop()  # the sidecar goes last, by hand
        try:
            temp.write_text(text)
            if final_sidecar.exists():
                final_sidecar.unlink()
            for t, f in self._pending:
                os.replace(t, f)
            written = {f.name for _, f in self._pending} | {sidecar_name}
            for name in stale:
                p = self.directory / name
                if name not in written and p.is_file():
                    p.unlink()
                    log.info("removed %s, left by an earlier run", p)
            os.replace(temp, final_sidecar)
        except OSError as exc:
            raise DataError(f"cannot finish writing the outputs: {exc.strerror or exc}", path=self.directory) from exc
        self._pending = []
        return final_sidecar

    def abort(self) -> None:
        """Remove the temporary files written so far (the previous result stays as it was)."""
        for t, _ in self._pending:
            try:
                t.unlink()
            except FileNotFoundError:
                pass
        for t in self.directory.glob(f".*.partial-{os.getpid()}") if self.directory.is_dir() else ():
            t.unlink(missing_ok=True)
        self._pending = []

    def __enter__(self) -> "RunOutputs":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=1, mtime=0)  # nibabel's default level; mtime 0: byte-identical reruns
