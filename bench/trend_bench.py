"""Time the trend computation (cxpipeline.metrics.trend) on the demo retailer.

Usage::

    .venv/bin/python bench/trend_bench.py --size 1M          # ~55k customers
    .venv/bin/python bench/trend_bench.py --size 10M         # ~555k customers (generates ~10 min)

The data is bench/run.py's (demo retailer, 7 years, seed 7, cached under ``bench/cache/``). The
pipeline's own extract (file source, Parquet pushdown) writes the panel and cadence; the trend
then runs on them as compute_metrics runs it (integer customer codes), timed alone: the span,
then the ledger and bridge of the last N quarters in one pass. For comparison the same numbers
are computed the slow way too, one period at a time with the per-period functions
(classify_customers and customer_flows, as N packs would). Prints one JSON line per lapse mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from cxpipeline.artifacts import read_table
    from cxpipeline.config import config_from_dict
    from cxpipeline.metrics.bridge import classify_customers
    from cxpipeline.metrics.ledger import LapseRule, customer_flows
    from cxpipeline.metrics.tables import MetricInputs, _coded_inputs
    from cxpipeline.metrics.trend import trend_span, trend_tables
    from cxpipeline.periods import comparison_period, parse_period
    from cxpipeline.pipeline import extract
    from run import PERIOD, SIZES, customers_for, ensure_data, file_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1M", choices=sorted(SIZES))
    parser.add_argument("--periods", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-slow", action="store_true", help="skip the period-by-period comparison")
    args = parser.parse_args(argv)

    data = ensure_data(args.size)
    period = parse_period(PERIOD)
    with tempfile.TemporaryDirectory() as out:
        config = config_from_dict({**file_config(data, "trend-bench"), "trend": {"periods": args.periods}})
        started = time.perf_counter()
        folder = Path(extract(config, period, out)["folder"])
        extract_seconds = time.perf_counter() - started
        inputs = MetricInputs(read_table(folder, "panel"), read_table(folder, "customers"),
                              read_table(folder, "cadence"), period, comparison_period(period, "previous"))
    coded, _ = _coded_inputs(inputs)
    panel, cadence = coded.panel, coded.cadence
    for mode in ("fixed", "personal"):
        rule = LapseRule(mode)
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            instants = pd.to_datetime(cadence["as_of"]).unique() if mode == "personal" else None
            span = trend_span(period, args.periods, "previous", panel["period_start"].min(), instants)
            trend_tables(panel, span.periods, "previous", rule, cadence)
            times.append(time.perf_counter() - started)
        result = {"size": args.size, "transactions": SIZES[args.size], "customers": customers_for(SIZES[args.size]),
                  "panel_rows": len(panel), "cadence_rows": len(cadence), "mode": mode,
                  "periods": len(span.periods), "trend_seconds": round(statistics.median(times), 3),
                  "extract_seconds": round(extract_seconds, 1)}
        if not args.no_slow:
            started = time.perf_counter()
            for each in span.periods:
                s, e = pd.Timestamp(each.start), pd.Timestamp(each.end)
                classify_customers(panel, s, pd.Timestamp(each.previous().start), period_end=e)
                customer_flows(panel.loc[panel["period_start"] < e], s, e, rule, cadence)
            result["period_by_period_seconds"] = round(time.perf_counter() - started, 3)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
