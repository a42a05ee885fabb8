"""Benchmark: fit + score time of the at-risk model for N demo customers (default 500k).

Usage: ``.venv/bin/python bench/model_bench.py [--customers 500000] [--years 4]``

``--backtest-cutoffs 2026-01-01 2025-07-01 ...`` instead runs ``run_backtest`` (H = 90 days) at each
cutoff and prints one line per cutoff: the calibration / AUC / Brier table of docs/model.md
(``--customers 20000``).

``--horizons 90 273 --cutoff 2026-01-01`` runs ``run_backtest`` at one cutoff for each horizon and
prints every model's ROC-AUC and Brier score (logistic, BG/NBD, recency rule, constant base rate),
the model the pack would use, and the value backtest: the model comparison table of docs/model.md.
With ``--cdnow PATH`` the data are the CDNOW transactions instead of the demo (a real single-cohort
retailer: 23,570 customers who first bought in Q1 1997, to June 1998). The file is
``lifetimes/datasets/CDNOW_master.txt`` in the MIT-licensed ``lifetimes`` wheel (``pip download
lifetimes==0.11.3 --no-deps`` then unzip); ``tests/data/cdnow_sample_transactions.txt`` is its
1/10 sample.

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
    print("| customers | cutoff | n | lapse rate | pack uses | logistic AUC / Brier | BG/NBD AUC / Brier "
          "| rule AUC / Brier | max decile gap, pack's model (deciles >= 200) | time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cutoff in args.backtest_cutoffs:
        start = time.perf_counter()
        s, _ = run_backtest(transactions, cutoff, 90, customers=customers, segment_columns=SEGMENTS)
        gap = max(abs(r["difference"]) for r in s["calibration"] if r["n"] >= 200)
        cell = {k: f"{m['roc_auc']:.3f} / {m['brier']:.3f}" for k, m in s["models"].items()}
        print(f"| {args.customers:,} | {cutoff} | {s['n']:,} | {s['lapse_rate']:.1%} | {s['method']} "
              f"| {cell.get('logistic', 'n/a')} | {cell.get('bgnbd', 'n/a')} | {cell['recency_rule']} "
              f"| {100 * gap:.1f} pts | {time.perf_counter() - start:.1f} s |")


def cdnow_transactions(path: str) -> pd.DataFrame:
    """A CDNOW file as canonical transactions: ``CDNOW_master.txt`` (header; id, YYYYMMDD, CDs,
    dollars) or ``CDNOW_sample.txt`` (no header; id, sample id, YYYYMMDD, CDs, dollars)."""
    from tests.conftest import transactions_frame

    raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    if not str(raw.iloc[0, 0]).isdigit():
        raw = raw.iloc[1:]
    raw.columns = (["id", "date", "cds", "amount"] if raw.shape[1] == 4 else ["id", "sample_id", "date", "cds", "amount"])
    rows = [(r.id, pd.Timestamp(r.date), float(r.amount), f"o{i}") for i, r in enumerate(raw.itertuples())]
    return transactions_frame(rows)


def horizon_table(args) -> None:
    from cxpipeline.model import run_backtest

    if args.cdnow:
        transactions, customers, segments, name = cdnow_transactions(args.cdnow), None, [], "CDNOW"
    else:
        transactions, customers = generate_demo(args.customers, args.years, 7, args.end_date)
        segments, name = SEGMENTS, f"demo {args.customers:,}"
    print(f"{name}: {transactions['customer_id'].nunique():,} customers, {len(transactions):,} transactions, "
          f"{transactions['ordered_at'].min():%Y-%m-%d} to {transactions['ordered_at'].max():%Y-%m-%d}")
    print("| data | cutoff | horizon | n | lapse rate | logistic AUC / Brier | BG/NBD AUC / Brier "
          "| recency rule AUC / Brier | base rate Brier | pack uses | value MAE: pack's model / same as last 12 months | time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for horizon in args.horizons:
        start = time.perf_counter()
        s, _ = run_backtest(transactions, args.cutoff, horizon, customers=customers, segment_columns=segments)
        took = time.perf_counter() - start
        cell = {k: (f"{m['roc_auc']:.3f} / {m['brier']:.3f}" if m["roc_auc"] is not None else "n/a")
                for k, m in s["models"].items()}
        value = s["value"]
        best = value["models"].get(value["preferred"]) if value.get("preferred") else None
        vcell = (f"{best['mae']:,.2f} ({value['preferred']}) / {value['naive']['mae']:,.2f} over {value['horizon_days']} days"
                 if best else "n/a")
        print(f"| {name} | {args.cutoff} | {horizon} | {s['n']:,} | {s['lapse_rate']:.1%} | "
              f"{cell.get('logistic', 'not fitted (no labelled window)')} | {cell.get('bgnbd', 'n/a')} | "
              f"{cell['recency_rule']} | {s['base_rate']['brier']:.3f} | {s['pack_method']} | {vcell} | {took:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--end-date", default="2026-09-30")
    parser.add_argument("--backtest-cutoffs", nargs="*", default=None, metavar="YYYY-MM-DD")
    parser.add_argument("--horizons", nargs="*", type=int, default=None, metavar="DAYS")
    parser.add_argument("--cutoff", default="2026-01-01", metavar="YYYY-MM-DD")
    parser.add_argument("--cdnow", default=None, metavar="PATH", help="CDNOW_master.txt (see the docstring)")
    args = parser.parse_args()
    if args.backtest_cutoffs:
        backtest_table(args)
        return
    if args.horizons:
        horizon_table(args)
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
    print(f"fit + score (fit_and_score, logistic stacked on BG/NBD + BG/NBD + Gamma-Gamma + value models): "
          f"{fitted:.1f} s -- {report['training_rows']:,} training rows "
          f"(of {report['training_rows_before_sampling']:,}, {len(report['snapshots'])} snapshots), "
          f"{len(scores):,} customers scored, method {report['method']}, value {report['value_model']['method']}")
    print(f"BG/NBD at the fit instant: {report['latent']['bgnbd']}")
    print(f"Gamma-Gamma: {report['latent']['gamma_gamma']}")

    t0 = time.perf_counter()
    result = score_period(panel, customers, period_end, segment_columns=SEGMENTS)
    total = time.perf_counter() - t0
    bt = result.backtest
    print(f"score_period incl. backtest refit and value backtest: {total:.1f} s -- backtest at {bt['snapshot']}: "
          f"n {bt['n']:,}, pack uses {bt['method']}; "
          + "; ".join(f"{k} AUC {m['roc_auc']} Brier {m['brier']}" for k, m in bt["models"].items())
          + f"; base rate Brier {bt['base_rate']['brier']}; "
          f"calibration within 5 points: {bt['calibration_within_5_points']}")
    vbt = result.report["value_backtest"]
    print(f"value backtest at {vbt['snapshot']} ({vbt['horizon_days']} days): "
          + "; ".join(f"{k} MAE {m['mae']}" for k, m in vbt["models"].items())
          + f"; same as last 12 months MAE {vbt['naive']['mae']}; pack uses {vbt['preferred']}")
    print(f"load average after (1 min): {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
