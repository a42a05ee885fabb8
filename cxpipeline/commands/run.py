"""``cxpipeline run``: build the board pack for one period from a config file."""

from __future__ import annotations

from cxpipeline.commands._common import add_config_argument, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="build the board pack for one period",
        description="Extract, compute metrics, score, render and check the board pack for one period. "
        "Writes everything to <output.root>/<pack_id>/<period>/ and prints the PDF's path last.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--period", "-p",
        help="2026-W14 (ISO week), 2024-11 (month), 2024-Q4 (quarter), 2024 (year), FY2025-Q1 (fiscal); default: latest complete period",
    )
    parser.add_argument("--out", metavar="DIR", help="output root (default: output.root in the config)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from cxpipeline.config import load_config
    from cxpipeline.logo import load_logo
    from cxpipeline.pipeline import resolve_period, run_pack
    from cxpipeline.provenance import check_pack_root, pack_root

    config = load_config(args.config)
    # Fail before the source is read: a logo that cannot go into the pack, a bad period
    # label, a pack folder that another config's packs live in.
    load_logo(config)
    if args.period:
        resolve_period(config, args.period)
    check_pack_root(config, pack_root(config, args.out))
    result = run_pack(config, args.period, args.out, progress=progress)
    print(result.pdf_path)
    return 0
