"""Benchmark: fit + score time of the at-risk model for N demo customers (default 500k).

Usage: ``.venv/bin/python bench/model_bench.py [--customers 500000] [--years 4]``

``--backtest-cutoffs 2026-01-01 2025-07-01 ...`` instead runs ``run_backtest`` (H = 90 days) at each
cutoff and prints one line per cutoff: the calibration / AUC / Brier table of docs/model.md
(``--customers 20000``).

Prints the time to generate the demo and build the monthly panel (not part of the model), then
``fit_and_score`` (stacked training rows, calibrated logistic fit, value model, scoring every
customer with drivers) and the full ``score_period`` (the same plus the backtest refit at the latest
fully observed snapshot), with the row counts behind them.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from cxpipeline.model import fit_and_score, score_period
from cxpipeline.panel import build_panel
from cxpipeline.sources.demo import generate_demo

SEGMENTS = ["region", "channel", "customer_type"]


def backtest_table(args) -> None:
    from cxpipeline.model import run_backtest

    transactions, customers = generate_demo(args.customers, args.years, 7, args.end_date)
    print("| customers | cutoff | n | lapse rate | model AUC | rule AUC | model Brier | rule Brier "
          "| max decile gap (deciles >= 200) | time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cutoff in args.backtest_cutoffs:
        start = time.perf_counter()
        s, _ = run_backtest(transactions, cutoff, 90, customers=customers, segment_columns=SEGMENTS)
        gap = max(abs(r["difference"]) for r in s["calibration"] if r["n"] >= 200)
        print(f"| {args.customers:,} | {cutoff} | {s['n']:,} | {s['lapse_rate']:.1%} | {s['model']['roc_auc']:.3f} "
              f"| {s['recency_rule']['roc_auc']:.3f} | {s['model']['brier']:.3f} | {s['recency_rule']['brier']:.3f} "
              f"| {100 * gap:.1f} pts | {time.perf_counter() - start:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--end-date", default="2026-09-30")
    parser.add_argument("--backtest-cutoffs", nargs="*", default=None, metavar="YYYY-MM-DD")
    args = parser.parse_args()
    if args.backtest_cutoffs:
        backtest_table(args)
        return

    start = time.perf_counter()
    transactions, customers = generate_demo(args.customers, args.years, 7, args.end_date)
    generated = time.perf_counter()
    period_end = pd.Timestamp(args.end_date)
    panel = build_panel(transactions, "month", end=period_end + pd.Timedelta(days=1))
    paneled = time.perf_counter()
    print(f"cores: {os.cpu_count()}; load average before the model (1 min): {os.getloadavg()[0]:.1f}; customers: {args.customers:,}; transactions: {len(transactions):,}; "
          f"monthly panel rows: {len(panel):,}")
    print(f"generate demo: {generated - start:.1f} s; build monthly panel (DuckDB): {paneled - generated:.1f} s")
    del transactions

    t0 = time.perf_counter()
    scores, report, _ = fit_and_score(panel, customers, period_end + pd.Timedelta(days=1), segment_columns=SEGMENTS)
    fitted = time.perf_counter() - t0
    print(f"fit + score (fit_and_score): {fitted:.1f} s -- {report['training_rows']:,} training rows "
          f"(of {report['training_rows_before_sampling']:,}, {len(report['snapshots'])} snapshots), "
          f"{len(scores):,} customers scored, method {report['method']}")

    t0 = time.perf_counter()
    result = score_period(panel, customers, period_end, segment_columns=SEGMENTS)
    total = time.perf_counter() - t0
    bt = result.backtest
    print(f"score_period incl. backtest refit: {total:.1f} s -- backtest at {bt['snapshot']}: n {bt['n']:,}, "
          f"AUC model {bt['model']['roc_auc']} vs rule {bt['recency_rule']['roc_auc']}, "
          f"Brier model {bt['model']['brier']} vs rule {bt['recency_rule']['brier']}, "
          f"calibration within 5 points: {bt['calibration_within_5_points']}")
    print(f"load average after (1 min): {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
