"""``cxpipeline demo``: build a real board pack from the embedded demo retailer."""

from __future__ import annotations

from pathlib import Path

from cxpipeline.commands._common import progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate the demo retailer and build its latest complete quarter's pack",
        description="Generate the deterministic demo retailer and build the board pack for its latest "
        "complete period. Prints the PDF's path as the last line.",
    )
    parser.add_argument("--customers", type=int, default=5000, help="number of demo customers (default 5000)")
    parser.add_argument("--years", type=int, default=4, help="years of history (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same data")
    parser.add_argument("--period", help="period to report, e.g. 2026-Q2, 2026-05 or 2025 (default: latest complete)")
    parser.add_argument("--period-type", choices=["week", "month", "quarter", "year"], default="quarter",
                        help="reporting period type when --period is not given (default quarter)")
    parser.add_argument("--out", default="out", metavar="DIR", help="output root (default ./out)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from cxpipeline.config import config_from_dict
    from cxpipeline.pipeline import run_pack

    config = config_from_dict(
        {
            "pack_id": "demo",
            "source": {"kind": "demo", "customers": args.customers, "years": args.years, "seed": args.seed},
            "period": {"type": args.period_type},
            "output": {"root": args.out},
        },
        origin="cxpipeline demo",
        base_dir=Path.cwd(),
    )
    result = run_pack(config, args.period, progress=progress)
    print(result.pdf_path)
    return 0
