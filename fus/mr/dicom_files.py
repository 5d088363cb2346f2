"""Finding and opening the candidate files of the DICOM header pass (internal to :mod:`fus.mr.dicom`).

:func:`candidate_files` lists every regular file under a folder tree (links followed, each file
once, desktop metadata and hidden folders skipped); :func:`_open` opens one of them, plain or
gzip, and tells whether it looks like DICOM at all (a ``DICM`` prefix at byte 128, or a
preamble-less data set whose first element looks like DICOM).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from pathlib import Path
from typing import BinaryIO

from fus.errors import DicomError

logger = logging.getLogger(__name__)

__all__ = ["candidate_files"]

#: Offset of the ``DICM`` prefix, after the 128-byte preamble of a DICOM file.
_DICM_OFFSET = 128
_METADATA_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")


def _looks_like_raw_dicom(head: bytes) -> bool:
    """True when a file without the DICM prefix starts like a DICOM data set.

    A preamble-less file starts with an element of group 0x0002 or 0x0008, little endian,
    followed either by a two-letter VR (explicit VR) or by a 4-byte length (implicit VR).
    """
    if len(head) < 8:
        return False
    if head[0:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    return (vr.isalpha() and vr.isupper()) or int.from_bytes(head[4:8], "little") < 1024


def _open(path: Path) -> tuple[BinaryIO | None, bool, int]:
    """Open a candidate file. Returns (file object or None when not DICOM, gz flag, size)."""
    gz = path.name.lower().endswith(".gz")
    if gz:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(_DICM_OFFSET + 4)
                if not (head[_DICM_OFFSET:] == b"DICM" or _looks_like_raw_dicom(head)):
                    return None, True, 0
                data = head + fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            # a gzip stream that breaks off is a truncated file; one that is not gzip at all
            # is not ours
            if not isinstance(exc, gzip.BadGzipFile):
                raise DicomError(f"cannot decompress gzip file: {exc}", path=path) from None
            # named .gz but not gzip: read it as a plain file (a DICOM file misnamed is still one)
            logger.warning("%s is named .gz but is not gzip-compressed; reading it as a plain file", path)
        else:
            return io.BytesIO(data), True, len(data)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise DicomError(f"cannot open file: {exc}", path=path) from None
    head = fh.read(_DICM_OFFSET + 4)
    if not (head[_DICM_OFFSET:] == b"DICM" or _looks_like_raw_dicom(head)):
        fh.close()
        return None, False, 0
    fh.seek(0)
    return fh, False, os.fstat(fh.fileno()).st_size


def candidate_files(root: Path) -> list[Path]:
    """Every regular file under ``root`` (or ``root`` itself), sorted.

    Symbolic links to folders are followed (each real folder once) and a file reached twice
    (e.g. through a link) is read once. Skipped, each with a log line: hidden folders (a
    WARNING), broken links (a WARNING), and the metadata files that desktops leave (AppleDouble
    ``._*``, ``.DS_Store``, ``Thumbs.db``: DEBUG). Other hidden files are read like any file.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DicomError("no such file or folder", path=root)
    out = []
    seen_dirs: set[str] = set()
    seen_files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link back into the tree: do not walk it again
            logger.warning("skipping %s: the folder %s was already read", dirpath, real)
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        hidden = [d for d in dirnames if d.startswith(".")]
        for d in hidden:
            logger.warning("skipping hidden folder %s", Path(dirpath) / d)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith("._") or name in _METADATA_FILES:
                logger.debug("skipping %s: desktop metadata file", p)
                continue
            if not p.is_file():
                if p.is_symlink():
                    logger.warning("skipping %s: broken symbolic link", p)
                continue
            key = os.path.realpath(p)
            if key in seen_files:
                logger.info("skipping %s: the same file as %s", p, seen_files[key])
                continue
            seen_files[key] = p
            out.append(p)
    return out
