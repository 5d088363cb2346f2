"""Entry point of the ``fus`` command: one sub-command per module in ``fus.cli``."""

from __future__ import annotations

import argparse
import logging
import sys

from fus.cli import info, replay
from fus.cli import field
from fus.cli import heat
from fus.cli import simulate
from fus.cli import report
from fus.cli import demo
from fus.cli import convert, inspect_dicom
from fus.errors import FusError

log = logging.getLogger("fus")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fus",
        description="MR-guided focused ultrasound research: fields, bioheat, thermometry, dose, control.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument(
        "--backend", choices=["auto", "cpu", "cuda"], default=None, help="compute backend (default: FUS_BACKEND or auto)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.add_parser(sub)
    info.add_parser(sub)
    inspect_dicom.add_parser(sub)
    convert.add_parser(sub)
    field.add_parser(sub)
    heat.add_parser(sub)
    simulate.add_parser(sub)
    replay.add_parser(sub)
    report.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.backend is not None:
            import fus

            fus.set_backend(args.backend)
        return int(args.func(args) or 0)
    except FusError as exc:
        print(f"fus {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # output folder is a file, not writable, disk full, ...
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"fus {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
