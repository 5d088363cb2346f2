"""Pixel pass of the DICOM reader (internal to :mod:`fus.mr.dicom`).

Uncompressed pixel data are read straight from the byte offset found by the header pass (no
second parse of the header): one ``seek`` + ``readinto`` per run of consecutive frames, into the
array that is returned (no intermediate ``bytes``, no copy when the frames asked for are sorted
and distinct). gzip files are decompressed once per request, and encapsulated (compressed)
transfer syntaxes are decoded by pydicom. Stored values are masked / sign-extended to BitsStored
in place.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from collections.abc import Sequence

import numpy as np

from fus.errors import DicomError
from fus.mr.dicom_records import FileInfo

logger = logging.getLogger(__name__)

__all__ = ["read_stored"]


def _dtype(info: FileInfo) -> np.dtype:
    lay = info.layout
    kind = "i" if lay.signed else "u"
    order = "<" if lay.little_endian else ">"
    return np.dtype(f"{order}{kind}{lay.bits_allocated // 8}")


def _fix_bits(arr: np.ndarray, info: FileInfo) -> np.ndarray:
    """Native byte order, values masked (unsigned) or sign-extended (signed) to BitsStored.

    ``arr`` must be a fresh array owned by the caller: it is modified in place when possible.
    """
    lay = info.layout
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if lay.bits_stored >= lay.bits_allocated:
        return arr
    if lay.signed:
        shift = arr.dtype.type(lay.bits_allocated - lay.bits_stored)
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
        return arr
    np.bitwise_and(arr, arr.dtype.type((1 << lay.bits_stored) - 1), out=arr)
    return arr


def _read_into(fh: io.RawIOBase, view: memoryview) -> int:
    """Fill ``view`` from the file position; returns the bytes read (fewer only at end of file)."""
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _runs(frames: Sequence[int]) -> list[tuple[int, int]]:
    """Split sorted frame indices into (start, length) runs of consecutive frames."""
    out: list[tuple[int, int]] = []
    for f in frames:
        if out and out[-1][0] + out[-1][1] == f:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((f, 1))
    return out


def _read_bytes(info: FileInfo) -> bytes:
    try:
        if info.gz:
            with gzip.open(info.path, "rb") as fh:
                return fh.read()
        return info.path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DicomError(f"cannot read pixel data: {exc}", path=info.path) from None


def _decode_with_pydicom(info: FileInfo) -> np.ndarray:
    import pydicom

    data = _read_bytes(info)
    lay = info.layout
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoder plugins raise many types
        raise DicomError(
            f"cannot decode pixel data with transfer syntax {lay.transfer_syntax!r} "
            f"({type(exc).__name__}: {exc}); install a pydicom decoder for it or export uncompressed",
            path=info.path,
            tag="(0002,0010) TransferSyntaxUID",
        ) from None
    try:
        return arr.reshape(lay.frames, lay.rows, lay.columns)
    except ValueError:
        raise DicomError(
            f"decoded pixel data of shape {arr.shape} does not hold {lay.frames} frame(s) of "
            f"{lay.rows}x{lay.columns}",
            path=info.path,
            tag="(7FE0,0010) PixelData",
        ) from None


def read_stored(info: FileInfo, frames: Sequence[int]) -> np.ndarray:
    """Stored pixel values of some frames of one file.

    Parameters
    ----------
    info : FileInfo
        The file (from the header pass).
    frames : sequence of int
        0-based frame indices, any order.

    Returns
    -------
    ndarray, shape (len(frames), rows, columns)
        Integer stored values (native byte order), in the order of ``frames``.

    Raises
    ------
    DicomError
        The file cannot be read, is shorter than its header says, or cannot be decoded.
    """
    lay = info.layout
    frames = [int(f) for f in frames]
    if any(f < 0 or f >= lay.frames for f in frames):
        raise DicomError(f"frame index out of range 0..{lay.frames - 1}: {frames}", path=info.path)
    if not lay.native:
        out = np.empty((len(frames), lay.rows, lay.columns), dtype=_dtype(info).newbyteorder("="))
        out[...] = _decode_with_pydicom(info)[frames]
        return _fix_bits(out, info)
    dtype = _dtype(info)
    fb = lay.frame_bytes
    n_pix = lay.rows * lay.columns
    wanted = sorted(set(frames))
    position = {f: i for i, f in enumerate(wanted)}
    block = np.empty((len(wanted), lay.rows, lay.columns), dtype=dtype)  # the file's byte order
    if info.gz:
        data = _read_bytes(info)
        for start, length in _runs(wanted):
            off = lay.offset + start * fb
            if off + length * fb > len(data):
                raise DicomError(
                    f"file is truncated: frames {start + 1}..{start + length} need bytes up to "
                    f"{off + length * fb}, the decompressed file holds {len(data)}",
                    path=info.path,
                    tag="(7FE0,0010) PixelData",
                )
            chunk = np.frombuffer(data, dtype=dtype, count=length * n_pix, offset=off)
            i0 = position[start]
            block[i0 : i0 + length] = chunk.reshape(length, lay.rows, lay.columns)
    else:
        try:
            with open(info.path, "rb", buffering=0) as fh:
                for start, length in _runs(wanted):
                    i0 = position[start]
                    fh.seek(lay.offset + start * fb)
                    got = _read_into(fh, memoryview(block[i0 : i0 + length].reshape(-1).view(np.uint8)))
                    if got != length * fb:
                        raise DicomError(
                            f"file is truncated: frames {start + 1}..{start + length} need "
                            f"{length * fb} bytes at offset {lay.offset + start * fb}, read {got}",
                            path=info.path,
                            tag="(7FE0,0010) PixelData",
                        )
        except OSError as exc:
            raise DicomError(f"cannot read pixel data: {exc}", path=info.path) from None
    out = block if wanted == frames else block[[position[f] for f in frames]]
    return _fix_bits(out, info)
