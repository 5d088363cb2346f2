"""Write a 4-D NIfTI one volume at a time, so a long series never has to be in memory.

NIfTI-1 stores the voxels with i fastest, then j, k, t. A volume held in the reader's
``[slice, row, column]`` order is C-contiguous with the column (i) fastest, so its bytes are
exactly one NIfTI volume: volumes are appended as they come, into a ``.nii.gz`` (gzip stream)
or a ``.nii``. The header (written first) already holds the final number of volumes.

Every NIfTI fus writes gets its geometry and labels here (:func:`label_nifti`: q/sform code 1,
mm and s, description, time step): the streamed series, single volumes (:func:`write_volume`,
:func:`nifti_image`) and the run outputs of :mod:`fus.pipelines.outputs`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from types import TracebackType
from typing import Any

import nibabel as nib
import numpy as np

from fus.errors import InvalidParameterError

__all__ = ["NiftiStreamWriter", "label_nifti", "nifti_image", "write_volume"]


def label_nifti(target: Any, affine: np.ndarray, description: str, *, step: float | None = None, spatial_units: str = "mm") -> None:
    """Give a NIfTI image or header the geometry and labels every fus volume carries.

    qform and sform both ``affine`` with code 1 (scanner), units ``spatial_units`` and seconds,
    ``description`` in ``descrip`` (79 bytes at most), and the time step ``step`` [s] in
    ``pixdim[4]`` (a 4-D volume's time step; as dcm2niix, a single volume's TR).

    Parameters
    ----------
    target : nibabel.Nifti1Image or nibabel.Nifti1Header
        Labelled in place (an image keeps its affine in step with its header).
    """
    header = target.header if isinstance(target, nib.Nifti1Image) else target
    target.set_qform(affine, code=1)
    target.set_sform(affine, code=1)
    header.set_xyzt_units(spatial_units, "sec")
    if step is not None:
        if len(header.get_data_shape()) == 4:
            zooms = list(header.get_zooms())
            zooms[3] = float(step)
            header.set_zooms(zooms)
        else:
            header["pixdim"][4] = step
    header["descrip"] = description.encode()[:79]


def nifti_image(data: Any, affine: np.ndarray, description: str, *, step: float | None = None, spatial_units: str = "mm") -> nib.Nifti1Image:
    """A NIfTI-1 image of ``data`` (array order i, j, k[, t]), labelled by :func:`label_nifti`."""
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    label_nifti(img, img.affine, description, step=step, spatial_units=spatial_units)
    return img


def _header(shape_ijk_t: tuple[int, ...], dtype: Any, affine: np.ndarray, tr: float | None, units: str) -> nib.Nifti1Header:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape_ijk_t)
    hdr.set_data_dtype(np.dtype(dtype))
    label_nifti(hdr, affine, units, step=tr if len(shape_ijk_t) == 4 else None)
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


def write_volume(
    path: str | Path, volume_zyx: np.ndarray, affine: np.ndarray, units: str = "", *, dtype: Any = None, step: float | None = None
) -> Path:
    """Write one 3-D volume given in (slices, rows, cols) order as NIfTI (i=col, j=row, k=slice).

    ``dtype`` converts the voxels (default: kept); ``step`` [s] goes to ``pixdim[4]`` (the TR of
    a single dynamic, as dcm2niix writes it). The folder is created.
    """
    v = np.asarray(volume_zyx)
    img = nifti_image(np.ascontiguousarray(v.transpose(2, 1, 0), dtype=dtype), affine, units, step=step)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, p)
    return p
