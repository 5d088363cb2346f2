"""Command-line options shared by the field and heat commands: the transducer options and
comma-separated numbers in mm (``fus field``, ``fus heat``). Units at this edge: mm and MHz; what
they return is SI. Here, below :mod:`fus.cli`, so that no command module imports another."""

from __future__ import annotations

import argparse
import math
from typing import Any

from fus.errors import InvalidParameterError
from fus.physics.transducer_presets import BOWL_DEFAULTS, DEFAULT_FREQUENCY_MHZ, PISTON_DEFAULTS

__all__ = ["add_transducer_arguments", "build_transducer", "millimetres", "parse_grid"]


def add_transducer_arguments(p: argparse.ArgumentParser) -> None:
    """``--transducer --roc --aperture --frequency``, read back by :func:`build_transducer`."""
    p.add_argument(
        "--transducer", required=True, metavar="{cap256,bowl,piston}|FILE",
        help="preset name or an element table (.csv / .json)",
    )
    p.add_argument(
        "--roc", type=float, metavar="MM", help=f"bowl radius of curvature [mm] (default {BOWL_DEFAULTS['roc']:g})"
    )
    p.add_argument(
        "--aperture", type=float, metavar="MM",
        help=f"bowl aperture / piston diameter [mm] "
        f"(defaults {BOWL_DEFAULTS['aperture']:g} / {PISTON_DEFAULTS['aperture']:g})",
    )
    p.add_argument(
        "--frequency", type=float, metavar="MHZ",
        help=f"drive frequency [MHz] (default: the file's, or {DEFAULT_FREQUENCY_MHZ:g} for presets)",
    )


def build_transducer(args: argparse.Namespace) -> Any:
    """The transducer named by ``--transducer`` with ``--roc/--aperture/--frequency`` applied."""
    from fus.physics.transducer_presets import transducer_from_spec

    return transducer_from_spec(args.transducer, roc_mm=args.roc, aperture_mm=args.aperture, frequency_mhz=args.frequency)


def millimetres(option: str, text: str | None, n: int | tuple[int, ...]) -> list[float] | None:
    """``"X,Y,Z"`` (or one number, where ``n`` allows it) in mm -> metres; None stays None."""
    if text is None:
        return None
    counts = (n,) if isinstance(n, int) else n
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) not in counts or not all(math.isfinite(v) for v in vals):
        shape = " or ".join("1 number" if c == 1 else f"{c} comma-separated numbers" for c in counts)
        raise InvalidParameterError(option, text, f"must be {shape} [mm]")
    return [v * 1e-3 for v in vals]


def parse_grid(text: str) -> tuple[int, int, int]:
    """``"64x64x32"`` -> ``(64, 64, 32)``; each >= 1."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        vals = tuple(int(v) for v in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3 or any(v < 1 for v in vals):
        raise InvalidParameterError("--grid", text, "must be NXxNYxNZ with positive integers, e.g. 64x64x64")
    return vals  # type: ignore[return-value]
