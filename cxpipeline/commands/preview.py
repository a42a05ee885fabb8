"""``cxpipeline preview``: render the board pack from a small fixed data set (template work)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preview",
        help="render the board pack from a small fixed data set (for template and brand work)",
        description=(
            "Write a small fixed set of metric tables (60 hand-shaped customers, 2024-Q4 vs 2024-Q3) "
            "into --out and render board_pack.html and board_pack.pdf from them with the brand, "
            "terminology, locale and page setup of --config. Edit templates/ and rerun."
        ),
    )
    parser.add_argument("--out", default="out/preview", metavar="DIR",
                        help="folder for the fixture tables and the rendered pack (default: out/preview)")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config whose brand/terminology/locale/currency/output keys are used "
                             "(default: the built-in defaults)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cxpipeline.config import Config, load_config
    from cxpipeline.report import render_board_pack
    from cxpipeline.report.fixture import write_fixture_folder

    config = load_config(args.config) if args.config else Config()
    folder = write_fixture_folder(Path(args.out))
    result = render_board_pack(folder, config)
    print(f"{result['pages']} pages in {result['render_seconds']:.2f} s")
    print(result["html"])
    print(result["pdf"])
    return 0
