"""Write a 4-D NIfTI one volume at a time, so a long series never has to be in memory.

NIfTI-1 stores the voxels with i fastest, then j, k, t. A volume held in the reader's
``[slice, row, column]`` order is C-contiguous with the column (i) fastest, so its bytes are
exactly one NIfTI volume: volumes are appended as they come, into a ``.nii.gz`` (gzip stream)
or a ``.nii``. The header (written first) already holds the final number of volumes.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from types import TracebackType
from typing import Any

import nibabel as nib
import numpy as np

from fus.errors import InvalidParameterError

__all__ = ["NiftiStreamWriter", "write_volume"]


def _header(shape_ijk_t: tuple[int, ...], dtype: Any, affine: np.ndarray, tr: float | None, units: str) -> nib.Nifti1Header:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape_ijk_t)
    hdr.set_data_dtype(np.dtype(dtype))
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    if tr is not None and len(shape_ijk_t) == 4:
        zooms = list(hdr.get_zooms())
        zooms[3] = float(tr)
        hdr.set_zooms(zooms)
    hdr["descrip"] = units.encode()[:79]
    hdr["vox_offset"] = 352
    return hdr


class NiftiStreamWriter:
    """Append ``n_volumes`` volumes of shape (slices, rows, cols) to a 4-D NIfTI file.

    Parameters
    ----------
    path : str or Path
        ``.nii.gz`` or ``.nii``.
    shape_zyx : tuple of int
        (slices, rows, cols) of each volume.
    n_volumes : int
    affine : (4, 4) array
        Voxel (i=col, j=row, k=slice) -> RAS [mm].
    dtype : numpy dtype
    tr : float, optional
        Time between volumes [s] (pixdim[4]).
    units : str
        Short description stored in the header (e.g. ``"temperature [C]"``).
    """

    def __init__(self, path: str | Path, shape_zyx: tuple[int, int, int], n_volumes: int, affine: np.ndarray, dtype: Any = np.float32, tr: float | None = None, units: str = "") -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape_zyx)
        self.n_volumes = int(n_volumes)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        hdr = _header((self.shape[2], self.shape[1], self.shape[0], self.n_volumes), self.dtype, affine, tr, units)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = gzip.open(self.path, "wb", compresslevel=1) if self.path.suffix == ".gz" else open(self.path, "wb")
        self._fh.write(hdr.binaryblock)
        self._fh.write(b"\x00\x00\x00\x00")  # no extensions
        self.written = 0

    def append(self, volume: Any) -> None:
        """Write the next volume (numpy array (slices, rows, cols))."""
        v = np.asarray(volume)
        if v.shape != self.shape:
            raise InvalidParameterError("volume", f"array of shape {v.shape}", f"must have shape {self.shape}")
        if self.written >= self.n_volumes:
            raise InvalidParameterError("volume", self.written + 1, f"more volumes than the {self.n_volumes} announced")
        self._fh.write(np.ascontiguousarray(v, dtype=self.dtype).tobytes())
        self.written += 1

    def close(self) -> None:
        """Close the file; an incomplete file is an error (and is removed)."""
        if self._fh.closed:
            return
        self._fh.close()
        if self.written != self.n_volumes:
            self.path.unlink(missing_ok=True)
            raise InvalidParameterError("volumes", self.written, f"{self.n_volumes} were announced for {self.path}")

    def __enter__(self) -> "NiftiStreamWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._fh.close()
            self.path.unlink(missing_ok=True)
            return
        self.close()


def write_volume(path: str | Path, volume_zyx: np.ndarray, affine: np.ndarray, units: str = "") -> Path:
    """Write one 3-D volume given in (slices, rows, cols) order as NIfTI (i=col, j=row, k=slice)."""
    v = np.asarray(volume_zyx)
    img = nib.Nifti1Image(np.ascontiguousarray(v.transpose(2, 1, 0)), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = units.encode()[:79]
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, p)
    return p
