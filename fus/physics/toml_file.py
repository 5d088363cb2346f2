"""Reading the TOML files of fus (media, phantoms): one reader, one set of messages."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from fus.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None  # type: ignore[assignment]

__all__ = ["read_toml"]

log = logging.getLogger(__name__)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse the TOML file ``path`` (a ``what``: "medium", "phantom", ...).

    TOML is UTF-8; a UTF-8 byte-order mark (Windows editors, Excel) is skipped, and a file that is
    not UTF-8 -- typically a Latin-1 "°C" in a comment -- is read as Latin-1 with a warning naming
    the byte, instead of failing on it.

    Raises
    ------
    DataError
        An unreadable file or malformed TOML, naming the file (and the line, from the parser).
    """
    p = Path(path)
    if tomllib is None:  # pragma: no cover
        raise DataError("reading TOML on Python 3.10 needs the 'tomli' package (pip install tomli)", path=p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the {what} file: {exc.strerror or exc}", path=p) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("latin-1")
        log.warning("%s: not UTF-8 (byte 0x%02x at offset %d): read as Latin-1; save it as UTF-8", p, raw[exc.start], exc.start)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"malformed TOML in the {what} file: {exc}", path=p) from None
