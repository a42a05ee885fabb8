"""The ``cxpipeline`` command line.

Each subcommand lives in its own module under :mod:`cxpipeline.commands` and exposes
``register(subparsers)``; this file only collects them, so commands can be added without
touching it. Any :class:`~cxpipeline.errors.CxError` is printed as a clear message and the
exit status is 2; no bare tracebacks reach the user.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import cxpipeline.commands as commands
from cxpipeline import __version__
from cxpipeline.errors import CxError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxpipeline",
        description="Turn sales history into a customer-asset board pack (PDF) per reporting period.",
    )
    parser.add_argument("--version", action="version", version=f"cxpipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue  # shared helpers, not commands
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    for noisy in ("weasyprint", "fontTools", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except CxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
