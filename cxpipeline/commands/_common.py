"""Shared pieces of the CLI subcommands (not a command itself: no ``register``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable (the last line is a path)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def add_config_argument(parser, required: bool = True) -> None:
    parser.add_argument(
        "--config", "-c", required=required, metavar="FILE",
        help="YAML pack definition (source, period type, segments, brand, recipients); see examples/demo.yaml",
    )


def check_output_file(path: str | None, option: str) -> Path | None:
    """Refuse an output file that cannot be written, before any work is done.

    Raises
    ------
    ConfigError
        If the folder is missing or not writable, or ``path`` is a folder.
    """
    from cxpipeline.errors import ConfigError

    if not path:
        return None
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ConfigError(f"{path!r} is a folder, not a file.", where=option,
                          fix=f"Give a file name, e.g. {target / 'scores.csv'}.")
    if not folder.is_dir():
        raise ConfigError(f"The folder {str(folder)!r} of {path!r} does not exist.", where=option,
                          fix=f"Create it first (mkdir -p {folder}) or write into an existing folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"The folder {str(folder)!r} is not writable.", where=option,
                          fix="Choose a folder you can write to.")
    return target
