"""Element tables: read and write transducers as CSV or JSON.

Both formats store, per element, the centre ``x_mm, y_mm, z_mm`` [mm, transducer frame], the unit
normal ``nx, ny, nz`` (pointing into the medium, toward the focus) and the diameter
``diameter_mm`` [mm], plus metadata: ``frequency_MHz`` (required), ``name``, ``element_shape``
(``disc`` or ``bowl``), ``element_radius_of_curvature_mm`` (bowl only),
``radius_of_curvature_mm`` and ``aperture_mm`` (optional), and ``to_scanner_mm`` (4x4, rotation
dimensionless, translation in mm; default identity).

CSV layout::

    # fus element table v1
    # name: cap256
    # frequency_MHz: 1.2
    # element_shape: disc
    # radius_of_curvature_mm: 140
    # aperture_mm: 140
    # to_scanner_mm: 1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1
    # units: x_mm y_mm z_mm diameter_mm in mm ...; nx ny nz unit normal (dimensionless)
    x_mm,y_mm,z_mm,nx,ny,nz,diameter_mm
    12.5,-3.25,-139.1,...

Lines starting with ``#`` are comments; ``# key: value`` comments are metadata. Extra columns
are ignored. JSON holds the same metadata as keys and an ``"elements"`` list of objects with the
seven fields.

Numbers are written as the shortest decimal that round-trips the float64 value in SI units,
shifted by a power of ten (m -> mm, Hz -> MHz) in decimal, so ``read(write(t))`` reproduces every
float64 of ``t`` exactly.

Reading errors raise :class:`fus.errors.DataError` naming the file and the line / element and
field concerned: missing columns or keys, non-numeric or non-finite values, non-unit normals
(``| |n| - 1 | > 1e-4``; normals within that tolerance are renormalised), non-positive diameters,
missing frequency, and overlapping elements.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from fus.errors import DataError, InvalidParameterError
from fus.physics.transducer_geometry import Transducer

__all__ = [
    "read_csv",
    "write_csv",
    "read_json",
    "write_json",
    "load_transducer",
    "save_transducer",
    "COLUMNS",
    "NORMAL_TOLERANCE",
]

#: Element-table columns, in order.
COLUMNS: tuple[str, ...] = ("x_mm", "y_mm", "z_mm", "nx", "ny", "nz", "diameter_mm")
#: Normals in files must have unit length within this tolerance (they are then renormalised).
NORMAL_TOLERANCE: float = 1e-4

_FORMAT = "fus-element-table"
_VERSION = 1
_UNITS_LINE = (
    "x_mm y_mm z_mm diameter_mm in millimetres (transducer frame: origin at the geometric focus, "
    "+z along the beam); nx ny nz unit normal toward the medium/focus (dimensionless); "
    "frequency in MHz; to_scanner_mm row-major 4x4 with translation in mm"
)
_UNITS_JSON = {
    "position": "mm (transducer frame: origin at the geometric focus, +z along the beam)",
    "normal": "unit vector toward the medium/focus (dimensionless)",
    "diameter": "mm",
    "frequency": "MHz",
    "to_scanner": "row-major 4x4; rotation dimensionless, translation mm",
}


# ----------------------------------------------------------------------------- numbers
def _dec(x: float, shift: int = 0) -> str:
    """Shortest round-trip decimal of float x, times 10**shift, as plain text."""
    return format(Decimal(repr(float(x))).scaleb(shift).normalize(), "f")


def _undec(d: Decimal, shift: int = 0) -> float:
    """float64 nearest to d * 10**shift (exact inverse of :func:`_dec`)."""
    return float(d.scaleb(shift))


def _parse_decimal(text: Any, path: Path, where: str) -> Decimal:
    if isinstance(text, Decimal):
        d = text
    elif isinstance(text, str):
        try:
            d = Decimal(text.strip())
        except InvalidOperation:
            raise DataError(f"non-numeric value {text!r}", path=path, tag=where) from None
    else:
        raise DataError(f"expected a number, found {text!r}", path=path, tag=where)
    if not d.is_finite():
        raise DataError(f"non-finite value {text!r}", path=path, tag=where)
    return d


# ----------------------------------------------------------------------------- checks
class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


#: A stated radius of curvature must agree with where the element normals meet (relative).
ROC_TOLERANCE = 0.01


def _check_radius_of_curvature(centres: np.ndarray, normals: np.ndarray, roc: float, path: Path, where: str) -> None:
    """The elements of a focused array face the point ``c + R n`` common to all: fit R (least
    squares over the focus f and R of ``c_k + R n_k = f``) and refuse a stated ROC that differs."""
    if len(centres) < 3 or float(np.ptp(normals, axis=0).max()) < 1e-3:
        return  # parallel normals: no common focus to check against
    m = len(centres)
    a = np.zeros((3 * m, 4))
    for i in range(3):
        a[i::3, i] = 1.0
    a[:, 3] = -normals.reshape(-1)
    sol, *_ = np.linalg.lstsq(a, centres.reshape(-1), rcond=None)
    fitted = float(sol[3])
    if not abs(fitted - roc) <= ROC_TOLERANCE * roc:
        raise DataError(f"radius_of_curvature_mm = {roc * 1e3:g} but the element normals meet {fitted * 1e3:.4g} mm in front "
                        f"of the elements (tolerance {100 * ROC_TOLERANCE:g} %): fix the radius or the normals", path=path, tag=where)


def _build(
    path: Path,
    rows: list[tuple[str, dict[str, Any]]],
    meta: dict[str, Any],
    meta_where: str,
) -> Transducer:
    """Validate parsed rows and metadata and build a Transducer, errors naming the file."""
    if not rows:
        raise DataError("no elements in the table", path=path)
    m = len(rows)
    centres = np.empty((m, 3))
    normals = np.empty((m, 3))
    diameters = np.empty(m)
    for k, (where, row) in enumerate(rows):
        vals = {}
        for col in COLUMNS:
            val = row.get(col)
            if val is None or (isinstance(val, str) and not val.strip()):
                raise DataError(
                    f"missing value for column {col!r}", path=path, tag=f"{where}, {col}"
                )
            vals[col] = _parse_decimal(row[col], path, f"{where}, {col}")
        centres[k] = [_undec(vals[c], -3) for c in ("x_mm", "y_mm", "z_mm")]
        n = np.array([float(vals[c]) for c in ("nx", "ny", "nz")])
        norm = float(np.linalg.norm(n))
        if abs(norm - 1.0) > NORMAL_TOLERANCE:
            raise DataError(
                f"normal ({n[0]:.9g}, {n[1]:.9g}, {n[2]:.9g}) has length {norm:.9g}, expected "
                f"a unit vector (tolerance {NORMAL_TOLERANCE})",
                path=path,
                tag=f"{where}, nx/ny/nz",
            )
        normals[k] = n if abs(norm - 1.0) <= 1e-12 else n / norm
        d = _undec(vals["diameter_mm"], -3)
        if not d > 0.0:
            raise DataError(
                f"diameter {vals['diameter_mm']} mm must be > 0",
                path=path,
                tag=f"{where}, diameter_mm",
            )
        diameters[k] = d
        extra = [c for c in row if c not in COLUMNS]
        if extra:
            raise DataError(f"unknown column(s) {', '.join(map(repr, extra))} (the element table has {', '.join(COLUMNS)}): "
                            "remove them or fix their names", path=path, tag=where)

    def num(key: str, shift: int, required: bool = False) -> float | None:
        if key not in meta or meta[key] is None:
            if required:
                raise DataError(f"missing {key!r}", path=path, tag=meta_where)
            return None
        v = _undec(_parse_decimal(meta[key], path, f"{meta_where}, {key}"), shift)
        if not v > 0.0:
            raise DataError(
                f"{key} = {meta[key]} must be > 0", path=path, tag=f"{meta_where}, {key}"
            )
        return v

    frequency = num("frequency_MHz", 6, required=True)
    shape = str(meta.get("element_shape", "disc")).strip()
    if shape not in ("disc", "bowl"):
        raise DataError(
            f"element_shape {shape!r} must be 'disc' or 'bowl'",
            path=path,
            tag=f"{meta_where}, element_shape",
        )
    erc = num("element_radius_of_curvature_mm", -3, required=(shape == "bowl"))
    roc = num("radius_of_curvature_mm", -3)
    aperture = num("aperture_mm", -3)

    if roc is not None:
        _check_radius_of_curvature(centres, normals, roc, path, f"{meta_where}, radius_of_curvature_mm")

    t = np.eye(4)
    if meta.get("to_scanner_mm") is not None:
        raw = meta["to_scanner_mm"]
        where = f"{meta_where}, to_scanner_mm"
        if isinstance(raw, str):
            flat = [s for s in raw.replace(";", ",").split(",") if s.strip()]
        elif isinstance(raw, list):
            flat = [v for r in raw for v in (r if isinstance(r, list) else [r])]
        else:
            raise DataError(f"expected 16 numbers, found {raw!r}", path=path, tag=where)
        if len(flat) != 16:
            raise DataError(f"expected 16 numbers (4x4), found {len(flat)}", path=path, tag=where)
        dec = [_parse_decimal(v, path, where) for v in flat]
        t = np.array([_undec(v) for v in dec]).reshape(4, 4)
        t[:3, 3] = [_undec(dec[4 * i + 3], -3) for i in range(3)]

    try:
        return Transducer(
            centres=centres,
            normals=normals,
            diameters=diameters,
            frequency=float(frequency),  # type: ignore[arg-type]
            name=str(meta.get("name") or path.stem),
            element_shape=shape,  # type: ignore[arg-type]
            element_radius_of_curvature=erc,
            radius_of_curvature=roc,
            aperture=aperture,
            to_scanner=t,
        )
    except InvalidParameterError as exc:
        raise DataError(str(exc), path=path, tag=exc.name) from exc


def _metadata(t: Transducer) -> list[tuple[str, Any]]:
    """(key, text-or-None) pairs of a transducer's metadata, numbers as exact decimal text."""
    tr = t.to_scanner
    flat = []
    for i in range(4):
        for j in range(4):
            flat.append(_dec(tr[i, j], 3 if (j == 3 and i < 3) else 0))
    out: list[tuple[str, Any]] = [
        ("name", t.name),
        ("frequency_MHz", _dec(t.frequency, -6)),
        ("element_shape", t.element_shape),
    ]
    if t.element_radius_of_curvature is not None:
        out.append(("element_radius_of_curvature_mm", _dec(t.element_radius_of_curvature, 3)))
    if t.radius_of_curvature is not None:
        out.append(("radius_of_curvature_mm", _dec(t.radius_of_curvature, 3)))
    if t.aperture is not None:
        out.append(("aperture_mm", _dec(t.aperture, 3)))
    out.append(("to_scanner_mm", flat))
    return out


def _element_texts(t: Transducer) -> list[list[str]]:
    rows = []
    for c, n, d in zip(t.centres, t.normals, t.diameters):
        rows.append([_dec(c[0], 3), _dec(c[1], 3), _dec(c[2], 3),
                     _dec(n[0]), _dec(n[1]), _dec(n[2]), _dec(d, 3)])
    return rows


# ----------------------------------------------------------------------------- CSV
def write_csv(transducer: Transducer, path: str | Path) -> Path:
    """Write a transducer's element table as CSV (units in the header; see module docstring).

    Parameters
    ----------
    transducer : Transducer
    path : str or Path
        Output file.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    lines = [f"# {_FORMAT} v{_VERSION}"]
    for key, val in _metadata(transducer):
        if key == "name" and ("\n" in val or "\r" in val):
            raise InvalidParameterError(
                "transducer.name", val, "must be a single line to write CSV"
            )
        lines.append(f"# {key}: {','.join(val) if isinstance(val, list) else val}")
    lines.append(f"# units: {_UNITS_LINE}")
    lines.append(",".join(COLUMNS))
    lines.extend(",".join(r) for r in _element_texts(transducer))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_csv(path: str | Path) -> Transducer:
    """Read a transducer from a CSV element table.

    Parameters
    ----------
    path : str or Path
        CSV file (see the module docstring for the layout).

    Returns
    -------
    Transducer

    Raises
    ------
    DataError
        Unreadable file or any malformed content; the message names the file, the line and
        element (0-based) and the column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is not part of the header
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read element table: {exc}", path=path) from exc
    meta: dict[str, Any] = {}
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[str, dict[str, Any]]] = []
    for lineno, raw in enumerate(io.StringIO(text), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if ":" in body and header is None:
                key, _, val = body.partition(":")
                if key.strip() in meta:
                    raise DataError(f"{key.strip()!r} is given twice (the second would silently win)", path=path, tag=f"line {lineno}")
                meta[key.strip()] = val.strip()
            continue
        fields = next(csv.reader([line]))
        if header is None:
            header = [f.strip().lower() for f in fields]
            header_line = lineno
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"missing column(s) {', '.join(missing)} in header {fields!r}; expected "
                    f"{', '.join(COLUMNS)}",
                    path=path,
                    tag=f"line {lineno}",
                )
            continue
        k = len(rows)
        if len(fields) != len(header):
            raise DataError(
                f"{len(fields)} fields, header has {len(header)}",
                path=path,
                tag=f"line {lineno}, element {k}",
            )
        rows.append((f"line {lineno}, element {k}", dict(zip(header, fields))))
    if header is None:
        raise DataError("no header line (expected " + ",".join(COLUMNS) + ")", path=path)
    return _build(path, rows, meta, f"header (before line {header_line})")


# ----------------------------------------------------------------------------- JSON
def _json_text(obj: Any, indent: int = 0) -> str:
    """JSON text with numbers given as decimal strings wrapped in :class:`_Num`."""
    pad = "  " * (indent + 1)
    end = "  " * indent
    if isinstance(obj, _Num):
        return obj.text
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(str(k))}: {_json_text(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, list):
        if all(isinstance(v, _Num) for v in obj):
            return "[" + ", ".join(v.text for v in obj) + "]"
        return "[\n" + ",\n".join(pad + _json_text(v, indent + 1) for v in obj) + "\n" + end + "]"
    return json.dumps(obj)


class _Num:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def write_json(transducer: Transducer, path: str | Path) -> Path:
    """Write a transducer's element table as JSON (see the module docstring).

    Parameters
    ----------
    transducer : Transducer
    path : str or Path
        Output file.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    doc: dict[str, Any] = {"format": _FORMAT, "version": _VERSION, "units": _UNITS_JSON}
    for key, val in _metadata(transducer):
        if key == "to_scanner_mm":
            doc[key] = [[_Num(v) for v in val[4 * i: 4 * i + 4]] for i in range(4)]
        elif key in ("name", "element_shape"):
            doc[key] = val
        else:
            doc[key] = _Num(val)
    doc["elements"] = [
        {c: _Num(v) for c, v in zip(COLUMNS, row)} for row in _element_texts(transducer)
    ]
    # elements one per line for readability
    text = _json_text(doc)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_json(path: str | Path) -> Transducer:
    """Read a transducer from a JSON element table.

    Parameters
    ----------
    path : str or Path
        JSON file with the metadata keys and an ``"elements"`` list of objects with the keys
        ``x_mm, y_mm, z_mm, nx, ny, nz, diameter_mm``.

    Returns
    -------
    Transducer

    Raises
    ------
    DataError
        Unreadable or invalid JSON, or malformed content; the message names the file and the
        element (``elements[k]``) and field.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=Decimal, parse_int=Decimal, object_pairs_hook=_no_duplicates)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read element table: {exc}", path=path) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc}", path=path, tag=f"line {exc.lineno}") from exc
    except _DuplicateKey as exc:
        raise DataError(f"key {exc.args[0]!r} is given twice (the second would silently win)", path=path, tag=exc.args[0]) from None
    if not isinstance(doc, dict):
        raise DataError("top level must be an object", path=path)
    elements = doc.get("elements")
    if not isinstance(elements, list):
        raise DataError("missing or invalid 'elements' list", path=path, tag="elements")
    rows: list[tuple[str, dict[str, Any]]] = []
    for k, el in enumerate(elements):
        if not isinstance(el, dict):
            raise DataError(
                f"element must be an object, found {el!r}", path=path, tag=f"elements[{k}]"
            )
        rows.append((f"elements[{k}]", el))
    meta = {k: v for k, v in doc.items() if k != "elements"}
    return _build(path, rows, meta, "metadata")


# ----------------------------------------------------------------------------- dispatch
def load_transducer(path: str | Path) -> Transducer:
    """Read an element table, CSV or JSON by file suffix (``.csv`` / ``.json``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return read_csv(p)
    if suffix == ".json":
        return read_json(p)
    raise DataError(f"unknown element-table suffix {p.suffix!r}; expected .csv or .json", path=p)


def save_transducer(transducer: Transducer, path: str | Path) -> Path:
    """Write an element table, CSV or JSON by file suffix (``.csv`` / ``.json``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return write_csv(transducer, p)
    if suffix == ".json":
        return write_json(transducer, p)
    raise InvalidParameterError("path", str(path), "suffix must be .csv or .json")
