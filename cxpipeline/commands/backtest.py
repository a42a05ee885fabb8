"""``cxpipeline backtest``: rerun the at-risk model's backtest on any source, at any cutoff."""

from __future__ import annotations

from cxpipeline.commands._common import add_config_argument, check_output_file, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="fit the at-risk and value models before a cutoff and check them against what happened next",
        description="Fit the models only on data before the cutoff (the logistic model on labels from "
        "outcome windows that end by the cutoff; BG/NBD and Gamma-Gamma need no labels), score every customer "
        "with a purchase before it, label them by whether they bought in the N days starting on the cutoff "
        "day, and print n, the lapse rate, ROC-AUC and Brier score for the logistic model (or why it could "
        "not be fitted), BG/NBD, a recency-only rule and the constant base rate; which model the pack would "
        "use and why (decided by a backtest on data before the cutoff only); calibration by decile; and the "
        "value backtest (mean absolute error, totals, top-decile share against 'same as last 12 months') over "
        "the next 12 months or as much as the data cover. Works on a plain transactions file with only "
        "customer id, date and amount.",
    )
    add_config_argument(parser)
    parser.add_argument("--cutoff", required=True, metavar="YYYY-MM-DD",
                        help="first day not used for fitting; the outcome window starts on it")
    parser.add_argument("--horizon-days", type=int, default=None, metavar="N",
                        help="outcome window length in days (default: model.horizon_days of the config, 90)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="write the per-customer scores of every model and the outcomes to this CSV")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the full summary (metrics, calibration, fit report) as JSON")
    parser.set_defaults(func=run)


def _parse_cutoff(text: str):
    import pandas as pd

    from cxpipeline.errors import InputError

    try:
        return pd.Timestamp(pd.to_datetime(text, format="%Y-%m-%d"))
    except (ValueError, TypeError) as exc:
        raise InputError(f"Cutoff {text!r} is not a date.", where="--cutoff",
                         fix="Write the cutoff as YYYY-MM-DD, e.g. 2026-01-01.") from exc


def run(args) -> int:
    from cxpipeline.artifacts import write_csv, write_json
    from cxpipeline.config import load_config
    from cxpipeline.errors import InputError
    from cxpipeline.model import format_summary, run_backtest
    from cxpipeline.sources import load_source

    cutoff = _parse_cutoff(args.cutoff)
    config = load_config(args.config)
    # Checked before the (possibly long) backtest, not after it.
    check_output_file(args.out, "--out")
    check_output_file(args.json, "--json")
    horizon = args.horizon_days if args.horizon_days is not None else config.model.horizon_days
    if not 1 <= horizon <= 3650:
        raise InputError(f"--horizon-days {horizon} is out of range.", where="--horizon-days",
                         fix="Use a number of days between 1 and 3650 (e.g. 90).")
    progress("reading source ...")
    data = load_source(config)
    progress(f"fitting before {cutoff:%Y-%m-%d} and scoring ...")
    summary, scores = run_backtest(
        data.transactions, cutoff, horizon, customers=data.customers,
        segment_columns=config.segments, random_state=config.model.random_state)
    print(f"source: {data.description}")
    print(format_summary(summary))
    if args.out:
        write_csv(args.out, scores)  # spreadsheet-safe: customer ids are text from the source
        print(f"scores: {args.out}")
    if args.json:
        write_json(args.json, summary)
        print(f"summary: {args.json}")
    return 0
