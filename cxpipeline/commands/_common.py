"""Shared pieces of the CLI subcommands (not a command itself: no ``register``)."""

from __future__ import annotations

import sys
import time


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable (the last line is a path)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def add_config_argument(parser, required: bool = True) -> None:
    parser.add_argument(
        "--config", "-c", required=required, metavar="FILE",
        help="YAML pack definition (source, period type, segments, brand, recipients); see examples/demo.yaml",
    )
