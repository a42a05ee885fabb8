"""The ``cxpipeline`` command line.

Each subcommand lives in its own module under :mod:`cxpipeline.commands` and exposes
``register(subparsers)``; this file only collects them, so commands can be added without
touching it. Any :class:`~cxpipeline.errors.CxError` is printed as a clear message and the
exit status is 2; no bare tracebacks reach the user. Anything else (a bug, or input no check
foresaw) is printed as one what/where/fix message with exit status 1; ``-v`` adds the traceback.
Library warnings (e.g. numpy's RuntimeWarning) go to the log, shown with ``-v`` only.
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
    from cxpipeline.pipeline import quiet_library_logs  # after parsing: --help does not import pandas

    quiet_library_logs()
    # A warning prints a line of library source, which reads like a traceback to a user.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except CxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a bare traceback
        if args.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        print(
            f"error: unexpected {type(exc).__name__} in 'cxpipeline {args.command}'"
            + (f": {detail}" if detail else "") + "\n"
            f"  where: {_origin(exc)}\n"
            "  fix:   Check the input named in the config; rerun with -v for the full traceback "
            "and report it if the input looks right.",
            file=sys.stderr,
        )
        return 1


def _origin(exc: BaseException) -> str:
    """The innermost frame of our own code that raised ``exc`` (file:line in function)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "cxpipeline" in f.filename]
    if not frames:
        return "outside cxpipeline"
    frame = frames[-1]
    return f"{frame.filename.rsplit('cxpipeline', 1)[-1].lstrip('/')}:{frame.lineno} in {frame.name}"


if __name__ == "__main__":
    sys.exit(main())
