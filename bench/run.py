"""Benchmark the pipeline on the demo retailer at 1M, 3M, 10M and 30M transactions.

Usage::

    .venv/bin/python bench/run.py                 # all sizes, 3 repeats (long: run with nohup)
    .venv/bin/python bench/run.py --quick         # ~50k transactions, seconds (CI)
    .venv/bin/python bench/run.py --sizes 10M --repeats 5 --pg-url postgresql://postgres@127.0.0.1/cx_bench

Data: the demo retailer (7 years, seed 7) written once as canonical Parquet under
``bench/cache/`` (gitignored) in chunks of customers, so generating 30M rows never holds them
all in memory. The pipeline reads it as a file source, which takes the Parquet pushdown path.

Each measurement runs in a fresh child process; its wall time is taken around the stage call
and its peak RSS is the child's ``VmHWM`` (``/proc/self/status``) read at the end. The
``ru_maxrss`` that ``os.wait4`` returns is kept too, but on Linux it includes the parent's
memory at fork time, so a driver that generated data would inflate it. Per size:

* ``extract``, ``metrics``, ``model`` (if the pipeline has the stage), ``render`` (render +
  check): the pipeline stages one after another on one artifact folder;
* ``pack``: :func:`cxpipeline.pipeline.run_pack` in one process (all stages);
* ``reference``: the same extract + metrics in plain DuckDB SQL, no pandas and no data cleaning
  (lines grouped into orders once, panel, monthly panel, cadence, the revenue bridge per segment,
  the customer ledger, and the other families broken down overall and by segment: tiers and
  migration, RFM, behaviour and its decomposition, retention, lapse sensitivity, referrals,
  profitability and the whale curve, cohorts) -- the yardstick for "extract + metrics";
* ``reference_headline``: the same without the families (panels, cadence, bridge and ledger
  only: what the reference computed until 2026-12-01), to show how the ratio depends on it;
* ``floor``: pyarrow reading the columns the panel needs (nothing can be faster than reading);
* ``plain_queries``: the yardstick for the extract alone: three plain DuckDB queries computing the
  quarterly panel, the monthly panel and the cadence straight from the Parquet file (the
  pipeline's own SQL, no clean-up, no accounting, no partitions);
* ``spark_extract``, ``spark_pack``: the Spark source (``source.kind: spark``, a local Spark
  master started by the child, so they include the JVM start-up) on the same Parquet file; the
  RSS is the Python process's (the JVM is a child process, not counted);
* at ``--pg-size``: the PostgreSQL source (``load-demo`` once, cached in the database),
  ``pg_extract`` and ``pg_pack``.

Times are medians over ``--repeats`` runs; RSS is the largest seen. The table ends with the
time growth per doubling of rows (``(t2/t1) ** (1 / log2(n2/n1))``) between sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "cache"
YEARS = 7
SEED = 7
TRANSACTIONS_PER_CUSTOMER = 18.0  # the demo at 7 years: ~18 lines per customer
PERIOD = "2026-Q3"  # the last complete quarter of the demo (data ends 2026-09-30)
SIZES = {"50k": 50_000, "1M": 1_000_000, "3M": 3_000_000, "10M": 10_000_000, "30M": 30_000_000,
         "30M-10Mcust": 30_000_000}
#: Sizes made from a smaller one by splitting every line into several lines of the same order:
#: the same customers, orders and panels with more lines (memory grows with customers, not lines).
SPLIT_SIZES = {"30M-10Mcust": ("10M", 3)}
#: model.max_customers_monthly for the file-source configs (``--model-max-customers``; 0: the default).
MODEL_MAX_CUSTOMERS = 0
PANEL_COLUMNS = ["customer_id", "order_id", "ordered_at", "revenue", "cost", "cost_to_serve", "is_return"]

__all__ = ["main", "ensure_data", "measure"]


# ------------------------------------------------------------------------------------------
# Data


def customers_for(rows: int) -> int:
    return max(100, round(rows / TRANSACTIONS_PER_CUSTOMER))


def customers_of(label: str) -> int:
    return customers_for(SIZES[SPLIT_SIZES[label][0]] if label in SPLIT_SIZES else SIZES[label])


def ensure_split_data(label: str) -> Path:
    """A split size (:data:`SPLIT_SIZES`): each line of the base size becomes ``k`` lines of the
    same order and instant, amounts split to the cent (the last line takes what is left: an
    order's amounts are the same, up to float rounding)."""
    import duckdb

    base_label, k = SPLIT_SIZES[label]
    base = ensure_data(base_label)
    folder = CACHE / f"{base.name}_lines{k}"
    if not (folder / "transactions.parquet").is_file():
        started = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        # line n of k takes n / (1 + ... + k) of each amount (the last the remainder), so no two
        # lines of an order are equal in every column (they would be exact duplicates)
        total = k * (k + 1) // 2
        parts = ", ".join(
            f"CASE WHEN n < {k} THEN round({c} * n / {total}, 2) "
            f"ELSE {c} - ({' + '.join(f'round({c} * {m} / {total}, 2)' for m in range(1, k))}) END AS {c}"
            for c in ("revenue", "cost", "cost_to_serve"))
        parts += f", quantity * n / {total} AS quantity"
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute(f"""COPY (SELECT order_id, customer_id, ordered_at, {parts}, is_return
                              FROM read_parquet('{base / "transactions.parquet"}') CROSS JOIN range(1, {k + 1}) AS r(n))
                        TO '{folder / "transactions.parquet.partial"}' (FORMAT parquet)""")
        con.close()
        import shutil

        shutil.copyfile(base / "customers.parquet", folder / "customers.parquet")
        os.replace(folder / "transactions.parquet.partial", folder / "transactions.parquet")
        print(f"# made {label} ({k} lines per line of {base_label}) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return folder


def ensure_data(label: str) -> Path:
    """The cached Parquet folder for a size label, generated (in chunks) if missing."""
    sys.path.insert(0, str(ROOT))
    from cxpipeline.commands.generate_demo import write_demo_files

    if label in SPLIT_SIZES:
        return ensure_split_data(label)
    customers = customers_for(SIZES[label])
    folder = CACHE / f"demo_c{customers}_y{YEARS}_s{SEED}"
    if not (folder / "transactions.parquet").is_file():
        started = time.perf_counter()
        write_demo_files(folder, customers, YEARS, SEED, chunk_customers=100_000)
        print(f"# generated {label} ({customers:,} customers) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return folder


def file_config(folder: Path, pack_id: str) -> dict:
    identity = ["order_id", "customer_id", "ordered_at", "revenue", "cost", "cost_to_serve", "quantity", "is_return"]
    return {
        "pack_id": pack_id,
        "source": {
            "kind": "file", "path": str(folder / "transactions.parquet"), "columns": {c: c for c in identity},
            "customers_path": str(folder / "customers.parquet"),
            "customer_columns": {c: c for c in ("customer_id", "customer_name", "region", "channel",
                                                "customer_type", "referred_by")},
        },
        "period": {"type": "quarter"},
    }


def spark_config(folder: Path, pack_id: str) -> dict:
    return {"pack_id": pack_id, "source": {"kind": "spark", "master": "local[2]",
                                           "path": str(folder / "transactions.parquet"),
                                           "customers_path": str(folder / "customers.parquet")},
            "period": {"type": "quarter"}}


def sql_config(url: str, pack_id: str) -> dict:
    return {"pack_id": pack_id, "source": {"kind": "sql", "url": url}, "period": {"type": "quarter"}}


# ------------------------------------------------------------------------------------------
# Child process: one measurement


REFERENCE_SQL = """
CREATE TEMP TABLE orders AS {orders};
CREATE TEMP TABLE gaps AS {gaps};
CREATE TEMP TABLE panel AS {panel};
CREATE TEMP TABLE panel_monthly AS {monthly};
CREATE TEMP TABLE cadence AS {cadence};
CREATE TEMP TABLE customers AS SELECT * FROM read_parquet('{customers}');
CREATE TEMP TABLE states AS
    SELECT coalesce(c.customer_id, p.customer_id) AS customer_id,
           coalesce(p.revenue, 0) AS previous, coalesce(c.revenue, 0) AS current,
           (SELECT count(*) FROM panel e WHERE e.customer_id = coalesce(c.customer_id, p.customer_id)
              AND e.period_start < TIMESTAMP '{previous_start}' AND e.count_orders > 0) AS earlier
    FROM (SELECT * FROM panel WHERE period_start = TIMESTAMP '{current_start}') c
    FULL JOIN (SELECT * FROM panel WHERE period_start = TIMESTAMP '{previous_start}') p
      ON c.customer_id = p.customer_id;
CREATE TEMP TABLE bridge AS
    WITH classified AS (
        SELECT s.*, k.region, k.channel, k.customer_type,
               CASE WHEN previous = 0 AND earlier = 0 THEN 'new'
                    WHEN previous = 0 THEN 'reactivated'
                    WHEN current = 0 THEN 'stopped'
                    WHEN current > previous THEN 'increased'
                    WHEN current < previous THEN 'decreased' ELSE 'flat' END AS bridge_class
        FROM states s LEFT JOIN customers k USING (customer_id)
    )
    SELECT 'all' AS segment, 'All' AS segment_value, bridge_class, count(*) AS count_customers,
           sum(current - previous) AS value FROM classified GROUP BY 1, 2, 3
    UNION ALL SELECT 'region', region, bridge_class, count(*), sum(current - previous) FROM classified GROUP BY 1, 2, 3
    UNION ALL SELECT 'channel', channel, bridge_class, count(*), sum(current - previous) FROM classified GROUP BY 1, 2, 3
    UNION ALL SELECT 'customer_type', customer_type, bridge_class, count(*), sum(current - previous)
              FROM classified GROUP BY 1, 2, 3;
CREATE TEMP TABLE ledger AS
    WITH recent AS (
        SELECT customer_id,
               sum(revenue) FILTER (WHERE period_start >= TIMESTAMP '{year_before_end}') AS closing_value,
               sum(revenue) FILTER (WHERE period_start >= TIMESTAMP '{year_before_start}'
                                      AND period_start < TIMESTAMP '{current_start}') AS opening_value,
               max(last_order_at) FILTER (WHERE period_start < TIMESTAMP '{current_start}') AS last_before,
               max(last_order_at) AS last_order
        FROM panel_monthly GROUP BY 1
    )
    SELECT count(*) FILTER (WHERE last_before >= TIMESTAMP '{year_before_start}') AS opening,
           count(*) FILTER (WHERE last_order >= TIMESTAMP '{year_before_end}') AS closing,
           sum(closing_value) AS closing_value, sum(opening_value) AS opening_value
    FROM recent;
"""

# The metric families beyond the bridge and ledger, as an analyst would write them in DuckDB:
# one per-customer state table, one long table of (customer, segment, value) for the breakdowns
# (overall and by each segment attribute), then one grouped query per family.
REFERENCE_FAMILIES_SQL = """
CREATE TEMP TABLE state AS
    SELECT customer_id,
           coalesce(sum(revenue) FILTER (WHERE period_start >= TIMESTAMP '{year_before_start}'
                                           AND period_start < TIMESTAMP '{current_start}'), 0) AS value_start,
           coalesce(sum(revenue) FILTER (WHERE period_start >= TIMESTAMP '{year_before_end}'), 0) AS value_end,
           max(last_order_at) FILTER (WHERE period_start < TIMESTAMP '{current_start}') AS last_before,
           max(last_order_at) AS last_order, min(first_order_at) AS first_order,
           sum(count_orders) AS frequency, sum(revenue) AS monetary,
           coalesce(sum(revenue) FILTER (WHERE period_start >= TIMESTAMP '{current_start}'), 0) AS revenue_p,
           coalesce(sum(count_orders) FILTER (WHERE period_start >= TIMESTAMP '{current_start}'), 0) AS orders_p,
           coalesce(sum(revenue) FILTER (WHERE period_start >= TIMESTAMP '{previous_start}'
                                           AND period_start < TIMESTAMP '{current_start}'), 0) AS revenue_c,
           coalesce(sum(count_orders) FILTER (WHERE period_start >= TIMESTAMP '{previous_start}'
                                                AND period_start < TIMESTAMP '{current_start}'), 0) AS orders_c,
           coalesce(sum(revenue - cost - cost_to_serve) FILTER (WHERE period_start >= TIMESTAMP '{year_before_end}'), 0) AS margin_12m,
           coalesce(sum(cost) FILTER (WHERE period_start >= TIMESTAMP '{year_before_end}'), 0) AS cost_12m,
           coalesce(sum(cost_to_serve) FILTER (WHERE period_start >= TIMESTAMP '{year_before_end}'), 0) AS cts_12m
    FROM panel_monthly GROUP BY 1;
CREATE TEMP TABLE cuts AS
    SELECT quantile_disc(value_start, 0.99) AS cut_1, quantile_disc(value_start, 0.90) AS cut_2,
           quantile_disc(value_start, 0.50) AS cut_3
    FROM state WHERE last_before >= TIMESTAMP '{year_before_start}';
CREATE TEMP TABLE scored AS
    SELECT s.*, k.region, k.channel, k.customer_type, k.referred_by,
           s.last_before >= TIMESTAMP '{year_before_start}' AS in_opening,
           s.last_order >= TIMESTAMP '{year_before_end}' AS in_closing,
           CASE WHEN s.last_before >= TIMESTAMP '{year_before_start}' THEN
                CASE WHEN value_start >= cut_1 THEN 'Top 1%' WHEN value_start >= cut_2 THEN 'Next 9%'
                     WHEN value_start >= cut_3 THEN 'Middle 40%' ELSE 'Bottom 50%' END
                WHEN s.first_order >= TIMESTAMP '{current_start}' THEN 'New'
                WHEN s.revenue_p <> 0 THEN 'Won back' ELSE 'Not in base at start' END AS tier_start,
           CASE WHEN s.last_order < TIMESTAMP '{year_before_end}' THEN 'Lapsed'
                WHEN value_end >= cut_1 THEN 'Top 1%' WHEN value_end >= cut_2 THEN 'Next 9%'
                WHEN value_end >= cut_3 THEN 'Middle 40%' ELSE 'Bottom 50%' END AS tier_end,
           ntile(5) OVER (ORDER BY s.last_order) AS r_score,
           ntile(5) OVER (ORDER BY s.frequency) AS f_score,
           ntile(5) OVER (ORDER BY s.monetary) AS m_score
    FROM state s CROSS JOIN cuts LEFT JOIN customers k USING (customer_id)
    WHERE s.frequency > 0;
CREATE TEMP TABLE scored_rfm AS
    SELECT *, CASE WHEN r_score >= 4 AND (f_score + m_score) >= 8 THEN 'Champions'
                   WHEN r_score >= 3 AND (f_score + m_score) >= 6 THEN 'Loyal'
                   WHEN r_score >= 4 AND (f_score + m_score) <= 4 THEN 'New / Promising'
                   WHEN r_score <= 2 AND (f_score + m_score) >= 8 THEN 'Can''t Lose Them'
                   WHEN r_score <= 2 AND (f_score + m_score) >= 5 THEN 'At Risk'
                   WHEN r_score = 3 THEN 'Need Attention'
                   WHEN r_score = 2 THEN 'About to Sleep' ELSE 'Hibernating' END AS rfm_segment
    FROM scored;
CREATE TEMP TABLE dims AS
    SELECT customer_id, 'all' AS segment, 'All' AS segment_value FROM scored_rfm
    UNION ALL SELECT customer_id, 'region', coalesce(region, 'Unknown') FROM scored_rfm
    UNION ALL SELECT customer_id, 'channel', coalesce(channel, 'Unknown') FROM scored_rfm
    UNION ALL SELECT customer_id, 'customer_type', coalesce(customer_type, 'Unknown') FROM scored_rfm
    UNION ALL SELECT customer_id, 'value_tier', tier_start FROM scored_rfm
    UNION ALL SELECT customer_id, 'rfm_segment', rfm_segment FROM scored_rfm;
CREATE TEMP TABLE wide AS SELECT d.segment, d.segment_value, s.* FROM dims d JOIN scored_rfm s USING (customer_id);
CREATE TEMP TABLE migration AS
    SELECT segment, segment_value, tier_start, tier_end, count(*) AS count_customers,
           sum(value_start) AS value_start, sum(value_end) AS value_end
    FROM wide WHERE segment NOT IN ('value_tier', 'rfm_segment') GROUP BY 1, 2, 3, 4;
CREATE TEMP TABLE rfm_segments AS
    SELECT segment, segment_value, rfm_segment, count(*) AS count_customers, sum(value_end) AS value_12m,
           sum(monetary) AS monetary, avg(frequency) AS mean_frequency
    FROM wide WHERE segment NOT IN ('value_tier', 'rfm_segment') GROUP BY 1, 2, 3;
CREATE TEMP TABLE behaviour AS
    SELECT segment, segment_value,
           count(*) FILTER (WHERE orders_p > 0) AS count_active_p, count(*) FILTER (WHERE orders_c > 0) AS count_active_c,
           sum(orders_p) AS orders_p, sum(orders_c) AS orders_c, sum(revenue_p) AS revenue_p, sum(revenue_c) AS revenue_c,
           sum(revenue_p) / nullif(sum(orders_p), 0) AS order_value_p, sum(revenue_c) / nullif(sum(orders_c), 0) AS order_value_c,
           count(*) FILTER (WHERE orders_p > orders_c) AS count_buying_more, count(*) FILTER (WHERE orders_p < orders_c) AS count_buying_less
    FROM wide WHERE segment <> 'rfm_segment' GROUP BY 1, 2;
CREATE TEMP TABLE revenue_decomposition AS
    SELECT segment, segment_value,
           (revenue_p - revenue_c) * ln(count_active_p / nullif(count_active_c, 0)) / nullif(ln(revenue_p / nullif(revenue_c, 0)), 0) AS customers_effect,
           (revenue_p - revenue_c) * ln((orders_p / nullif(count_active_p, 0)) / nullif(orders_c / nullif(count_active_c, 0), 0))
               / nullif(ln(revenue_p / nullif(revenue_c, 0)), 0) AS frequency_effect,
           (revenue_p - revenue_c) * ln(order_value_p / nullif(order_value_c, 0)) / nullif(ln(revenue_p / nullif(revenue_c, 0)), 0) AS order_value_effect
    FROM behaviour WHERE revenue_p > 0 AND revenue_c > 0;
CREATE TEMP TABLE retention AS
    SELECT segment, segment_value, count(*) FILTER (WHERE in_opening) AS opening,
           count(*) FILTER (WHERE in_opening AND in_closing) AS retained,
           count(*) FILTER (WHERE in_opening AND in_closing) / nullif(count(*) FILTER (WHERE in_opening), 0) AS retention_rate
    FROM wide WHERE segment <> 'rfm_segment' GROUP BY 1, 2;
CREATE TEMP TABLE lapse_sensitivity AS
    WITH gaps AS (SELECT customer_id, median_gap_days FROM cadence WHERE as_of = TIMESTAMP '{current_start}'),
         ks (k) AS (VALUES (1.5), (2.0), (3.0))
    SELECT k, count(*) FILTER (WHERE s.last_before + to_days(CAST(k * coalesce(g.median_gap_days, 365) AS INTEGER))
                                   < TIMESTAMP '{current_end}'
                                 AND s.last_order < TIMESTAMP '{current_start}') AS count_lapsed,
           sum(s.value_start) FILTER (WHERE s.last_order < TIMESTAMP '{current_start}') AS value_lapsed
    FROM scored_rfm s LEFT JOIN gaps g USING (customer_id) CROSS JOIN ks
    WHERE s.in_opening GROUP BY 1;
CREATE TEMP TABLE referrals AS
    SELECT segment, segment_value, count(*) FILTER (WHERE referred_by IS NOT NULL) AS count_referred,
           count(*) FILTER (WHERE referred_by IS NOT NULL AND first_order >= TIMESTAMP '{current_start}') AS count_referred_new,
           sum(value_end) FILTER (WHERE referred_by IS NOT NULL) AS value_referred
    FROM wide WHERE segment NOT IN ('value_tier', 'rfm_segment') GROUP BY 1, 2;
CREATE TEMP TABLE profitability AS
    SELECT segment, segment_value, count(*) AS count_customers, sum(value_end) AS revenue_12m, sum(cost_12m) AS cost,
           sum(cts_12m) AS cost_to_serve, sum(margin_12m) AS margin, count(*) FILTER (WHERE margin_12m < 0) AS count_unprofitable,
           sum(margin_12m) FILTER (WHERE margin_12m < 0) AS margin_unprofitable
    FROM wide WHERE value_end <> 0 OR margin_12m <> 0 GROUP BY 1, 2;
CREATE TEMP TABLE whale_curve AS
    SELECT row_number() OVER w / count(*) OVER () AS share_of_customers,
           sum(margin_12m) OVER w / sum(margin_12m) OVER () AS share_of_profit
    FROM scored_rfm WHERE value_end <> 0 OR margin_12m <> 0
    WINDOW w AS (ORDER BY margin_12m DESC, customer_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
CREATE TEMP TABLE cohorts AS
    SELECT date_trunc('quarter', s.first_order) AS cohort, p.period_start, count(*) AS count_active,
           sum(p.revenue) AS revenue
    FROM panel p JOIN state s USING (customer_id) WHERE p.count_orders > 0 GROUP BY 1, 2;
"""

#: The reference's result tables (read back as DataFrames, as the pipeline's leave its engine).
REFERENCE_TABLES = ["panel", "panel_monthly", "cadence", "bridge", "ledger", "migration", "rfm_segments",
                    "behaviour", "revenue_decomposition", "retention", "lapse_sensitivity", "referrals",
                    "profitability", "whale_curve", "cohorts", "scored_rfm"]


def _reference(config: dict, period_label: str, families: bool = True) -> None:
    """Extract + metrics in plain DuckDB SQL (the yardstick): the panels, cadence, bridge and
    ledger, and (``families``) the other metric families broken down by segment."""
    import duckdb
    import pandas as pd

    from cxpipeline.panel import GAPS_FROM_ORDERS_SQL, ORDERS_SQL, cadence_sql, panel_from_orders_sql
    from cxpipeline.periods import comparison_period, parse_period

    period = parse_period(period_label)
    comparison = comparison_period(period, "previous")
    path = config["source"]["path"]
    source = f"(SELECT * FROM read_parquet('{path}') WHERE customer_id IS NOT NULL AND revenue <> 0) AS t"
    end = pd.Timestamp(period.end)
    instants = sorted({pd.Timestamp(t) for t in (comparison.start, comparison.end, period.start, period.end)})
    fmt = "%Y-%m-%d %H:%M:%S"
    script = (REFERENCE_SQL + (REFERENCE_FAMILIES_SQL if families else "")).format(
        orders=ORDERS_SQL.format(source=source, end=end.strftime(fmt)),
        gaps=GAPS_FROM_ORDERS_SQL.format(orders="orders"),
        panel=panel_from_orders_sql("orders", "quarter", 1),
        monthly=panel_from_orders_sql("orders", "month", 1),
        cadence=cadence_sql("gaps", instants),
        customers=config["source"]["customers_path"],
        current_start=pd.Timestamp(period.start).strftime(fmt),
        previous_start=pd.Timestamp(comparison.start).strftime(fmt),
        current_end=end.strftime(fmt),
        year_before_start=(pd.Timestamp(period.start) - pd.DateOffset(years=1)).strftime(fmt),
        year_before_end=(end - pd.DateOffset(years=1)).strftime(fmt),
    )
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    for statement in [s for s in script.split(";") if s.strip()]:
        con.execute(statement)
    # Results leave the engine like the pipeline's do (as DataFrames).
    for table in REFERENCE_TABLES if families else REFERENCE_TABLES[:5]:
        con.sql(f"SELECT * FROM {table}").df()
    con.close()


def _plain_queries(config: dict, period_label: str) -> None:
    """The quarterly panel, monthly panel and cadence as three plain DuckDB queries on the file."""
    import duckdb
    import pandas as pd

    from cxpipeline.panel import GAPS_SQL, cadence_sql, panel_sql
    from cxpipeline.periods import cadence_instants, comparison_period, parse_period

    period = parse_period(period_label)
    instants = cadence_instants(period, comparison_period(period, "previous"))
    source = f"(SELECT * FROM read_parquet('{config['source']['path']}') WHERE customer_id IS NOT NULL) AS t"
    end = pd.Timestamp(period.end)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.sql(panel_sql(source, "quarter", 1, end)).fetch_arrow_table()
    con.sql(panel_sql(source, "month", 1, end)).fetch_arrow_table()
    # The gaps materialised first, as customer_cadence does (fused with the join and median, the
    # window runs for minutes at 10M: 158 s and 9.8 GB in the first measurement of this stage).
    con.execute("CREATE TEMP TABLE gaps AS "
                + GAPS_SQL.format(source=source, end=pd.Timestamp(instants[-1]).strftime("%Y-%m-%d %H:%M:%S")))
    con.sql(cadence_sql("gaps", instants)).fetch_arrow_table()
    con.close()


def _floor(config: dict) -> None:
    import pyarrow.parquet as pq

    pq.read_table(config["source"]["path"], columns=PANEL_COLUMNS)


def child(stage: str, config_json: str, period_label: str, out: str) -> None:
    """Run one stage and print ``{"seconds": ...}`` as the last line."""
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    from cxpipeline import pipeline
    from cxpipeline.config import config_from_dict
    from cxpipeline.periods import parse_period

    raw = json.loads(config_json)
    config = config_from_dict(raw)
    period = parse_period(period_label)
    started = time.perf_counter()
    if stage in ("extract", "pg_extract", "spark_extract"):
        pipeline.extract(config, period, out)
    elif stage == "metrics":
        pipeline.compute_metrics(config, period, out)
    elif stage == "model":
        pipeline.score_customers(config, period, out)
    elif stage == "render":
        pipeline.render_pack(config, period, out)
        pipeline.check_pack(config, period, out)
    elif stage in ("pack", "pg_pack", "spark_pack"):
        pipeline.run_pack(config, period_label, out)
    elif stage == "reference":
        _reference(raw, period_label)
    elif stage == "reference_headline":
        _reference(raw, period_label, families=False)
    elif stage == "floor":
        _floor(raw)
    elif stage == "plain_queries":
        _plain_queries(raw, period_label)
    else:
        raise SystemExit(f"unknown stage {stage}")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _high_water_mb()}), flush=True)


def _high_water_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike ru_maxrss it starts from zero at exec,
    so a child does not inherit the high-water mark of the (possibly large) parent it forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(stage: str, config: dict, out: Path) -> dict:
    """Run ``stage`` in a fresh child; wall seconds (inside the child) and the child's peak RSS."""
    import tempfile

    command = [sys.executable, str(Path(__file__).resolve()), "--child", stage, "--config-json", json.dumps(config),
               "--period", PERIOD, "--out", str(out)]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KiB (Linux)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}):\n{errors[-3000:]}")
    reported = json.loads(output.strip().splitlines()[-1])
    # ru_maxrss of the child (wait4) also counts the parent's memory at fork time; VmHWM does not.
    # CPU: the child's user + system time, every thread (DuckDB's, the stages side by side) and the
    # processes it waited for (the chart drawer), start-up included: with 2 cores, a stage cannot
    # take less wall time than half of it.
    return {"seconds": reported["seconds"], "process_seconds": elapsed, "peak_rss_mb": reported["peak_rss_mb"],
            "ru_maxrss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime}


# ------------------------------------------------------------------------------------------
# PostgreSQL


def ensure_postgres(url: str, label: str) -> bool:
    """Load the size into PostgreSQL once (kept between runs, recognised by a table comment)."""
    import psycopg

    from cxpipeline.commands.load_demo import libpq_url, load_demo_into_postgres

    customers = customers_for(SIZES[label])
    marker = f"cxpipeline demo customers={customers} years={YEARS} seed={SEED}"
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            row = conn.execute("SELECT obj_description(to_regclass('transactions'), 'pg_class')").fetchone()
    except psycopg.OperationalError as exc:
        print(f"# PostgreSQL unavailable ({str(exc).strip()}); skipping the SQL source", file=sys.stderr)
        return False
    if row and row[0] == marker:
        return True
    started = time.perf_counter()
    load_demo_into_postgres(url, customers, YEARS, SEED, replace=True)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"COMMENT ON TABLE transactions IS '{marker}'")
        conn.execute("VACUUM ANALYZE transactions")
    print(f"# loaded {label} into PostgreSQL in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return True


# ------------------------------------------------------------------------------------------
# Driver


def _has_model_stage() -> bool:
    sys.path.insert(0, str(ROOT))
    from cxpipeline import pipeline

    return hasattr(pipeline, "score_customers") and any(name == "model" for name, _ in pipeline._stages())


def machine() -> dict:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "ram_gib": round(memory_kb / 1024**2, 1), "cpu": cpu,
            "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]}


#: Every stage, in the order measured (``--stages`` picks a subset, e.g. for a quick ratio).
ALL_STAGES = ["extract", "metrics", "model", "render", "pack", "reference", "reference_headline", "floor",
              "plain_queries", "spark_extract", "spark_pack", "pg_extract", "pg_pack"]


def run_size(label: str, repeats: int, out_root: Path, with_pg: str | None,
             only: list[str] | None = None) -> dict:
    folder = ensure_data(label)
    wanted = [s for s in ALL_STAGES if (only is None or s in only) and (s != "model" or _has_model_stage())]
    samples: dict[str, list[dict]] = {}
    for repeat in range(repeats):
        out = out_root / f"{label}-{repeat}"
        for stage in [s for s in wanted if not s.startswith(("pg_", "spark_"))]:
            pack_id = "bench_pack" if stage == "pack" else "bench"
            config = file_config(folder, pack_id)
            if MODEL_MAX_CUSTOMERS:
                config["model"] = {"max_customers_monthly": MODEL_MAX_CUSTOMERS}
            samples.setdefault(stage, []).append(measure(stage, config, out))
        for stage in [s for s in wanted if s.startswith("spark_")]:
            pack_id = "bench_spark_pack" if stage == "spark_pack" else "bench_spark"
            samples.setdefault(stage, []).append(measure(stage, spark_config(folder, pack_id), out))
        if with_pg:
            for stage in [s for s in wanted if s.startswith("pg_")]:
                pack_id = "bench_pg_pack" if stage == "pg_pack" else "bench_pg"
                samples.setdefault(stage, []).append(measure(stage, sql_config(with_pg, pack_id), out))
        print(f"# {label} repeat {repeat + 1}/{repeats}: "
              + ", ".join(f"{k} {v[-1]['seconds']:.1f}s/{v[-1]['peak_rss_mb']:.0f}MB/cpu {v[-1]['cpu_seconds']:.1f}s"
                          for k, v in samples.items()),
              file=sys.stderr, flush=True)
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(folder / "transactions.parquet").metadata.num_rows
    result = {"label": label, "rows": rows, "customers": customers_of(label), "stages": {}}
    for stage, values in samples.items():
        result["stages"][stage] = {
            "seconds": statistics.median(v["seconds"] for v in values),
            "peak_rss_mb": max(v["peak_rss_mb"] for v in values),
            "all_seconds": [round(v["seconds"], 2) for v in values],
            "cpu_seconds": statistics.median(v["cpu_seconds"] for v in values),
        }
    s = result["stages"]
    if "extract" in s and "metrics" in s:
        result["extract_metrics"] = s["extract"]["seconds"] + s["metrics"]["seconds"]
        for name, key in (("reference", "ratio_to_reference"), ("reference_headline", "ratio_to_headline_reference")):
            if name in s:
                result[key] = result["extract_metrics"] / s[name]["seconds"]
    if "plain_queries" in s and "extract" in s:
        result["extract_to_plain_queries"] = s["extract"]["seconds"] / s["plain_queries"]["seconds"]
    if "spark_pack" in s and "pack" in s:
        result["spark_pack_ratio"] = s["spark_pack"]["seconds"] / s["pack"]["seconds"]
    if "spark_extract" in s and "extract" in s:
        result["spark_extract_ratio"] = s["spark_extract"]["seconds"] / s["extract"]["seconds"]
    if "pg_pack" in s and "pack" in s:
        result["pg_pack_ratio"] = s["pg_pack"]["seconds"] / s["pack"]["seconds"]
    return result


def render_table(results: list[dict]) -> str:
    stage_names = [n for n in ALL_STAGES if any(n in r["stages"] for r in results)]
    header = (["rows", "customers"] + [f"{n} s / MB" for n in stage_names]
              + ["extract+metrics s", "ratio to ref", "ratio to headline ref"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def number(r: dict, key: str, fmt: str) -> str:
        return format(r[key], fmt) + ("x" if key.startswith("ratio") else "") if key in r else "-"

    for r in results:
        cells = [f"{r['rows']:,}", f"{r['customers']:,}"]
        for n in stage_names:
            st = r["stages"].get(n)
            cells.append(f"{st['seconds']:.1f} / {st['peak_rss_mb']:.0f}" if st else "-")
        cells += [number(r, "extract_metrics", ".1f"), number(r, "ratio_to_reference", ".2f"),
                  number(r, "ratio_to_headline_reference", ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    if len(results) > 1 and all("pack" in r["stages"] and "extract_metrics" in r for r in results):
        lines.append("")
        lines.append("| from -> to | pack growth per doubling | extract+metrics growth per doubling |")
        lines.append("|---|---|---|")
        for a, b in zip(results, results[1:]):
            doublings = math.log2(b["rows"] / a["rows"])
            pack = (b["stages"]["pack"]["seconds"] / a["stages"]["pack"]["seconds"]) ** (1 / doublings)
            em = (b["extract_metrics"] / a["extract_metrics"]) ** (1 / doublings)
            lines.append(f"| {a['label']} -> {b['label']} | {pack:.2f}x | {em:.2f}x |")
    for r in results:
        notes = []
        if "extract_to_plain_queries" in r:
            notes.append(f"extract {r['stages']['extract']['seconds']:.1f} s = {r['extract_to_plain_queries']:.2f}x the "
                         f"three plain DuckDB queries ({r['stages']['plain_queries']['seconds']:.1f} s)")
        for stage, key in (("spark_extract", "spark_extract_ratio"), ("spark_pack", "spark_pack_ratio")):
            if key in r:
                notes.append(f"{stage} {r['stages'][stage]['seconds']:.1f} s = {r[key]:.2f}x the DuckDB file path "
                             "(local Spark, JVM start-up included)")
        if notes:
            lines += ["", f"At {r['label']}: " + "; ".join(notes) + "."]
    pg = [r for r in results if "pg_pack_ratio" in r]
    for r in pg:
        lines.append("")
        extract = r["stages"].get("pg_extract")
        lines.append(f"PostgreSQL source at {r['label']}: pack {r['stages']['pg_pack']['seconds']:.1f} s = "
                     f"{r['pg_pack_ratio']:.2f}x the file source"
                     + (f"; extract {extract['seconds']:.1f} s" if extract else "")
                     + " (panel computed in the database).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tiny size (~50k rows), one repeat")
    parser.add_argument("--sizes", default="1M,3M,10M,30M", help="comma-separated: " + ",".join(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=None, help="PostgreSQL URL for the SQL source (a database you own)")
    parser.add_argument("--pg-size", default="10M", help="size measured on PostgreSQL (default 10M)")
    parser.add_argument("--stages", default=None,
                        help="comma-separated subset of: " + ",".join(ALL_STAGES) + " (default: all)")
    parser.add_argument("--out", default=None, help="artifact folder (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the results as JSON to this file")
    parser.add_argument("--model-max-customers", type=int, default=0,
                        help="model.max_customers_monthly for the file source (the model fits on a customer "
                             "sample above it); default: the config's default")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--config-json", help=argparse.SUPPRESS)
    parser.add_argument("--period", default=PERIOD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.config_json, args.period, args.out)
        return 0
    global MODEL_MAX_CUSTOMERS
    MODEL_MAX_CUSTOMERS = args.model_max_customers

    import tempfile

    sizes = ["50k"] if args.quick else [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    repeats = 1 if args.quick else args.repeats
    only = [s.strip() for s in args.stages.split(",")] if args.stages else None
    if args.quick and only is None:  # CI: the Spark stages (two JVM start-ups) only when asked for
        only = [s for s in ALL_STAGES if not s.startswith("spark_")]
    if only and [s for s in only if s not in ALL_STAGES]:
        parser.error(f"unknown stage(s) {[s for s in only if s not in ALL_STAGES]}; choose from {ALL_STAGES}")
    info = machine()
    print(f"# machine: {info['nproc']} cores, {info['ram_gib']} GiB, {info['cpu']}; "
          f"load average at start {info['load_average']}", file=sys.stderr, flush=True)
    pg_label = "50k" if args.quick else args.pg_size
    with tempfile.TemporaryDirectory(prefix="cxbench-") as tmp:
        out_root = Path(args.out) if args.out else Path(tmp)
        results = []
        for label in sizes:
            with_pg = args.pg_url if args.pg_url and label == pg_label and ensure_postgres(args.pg_url, label) else None
            results.append(run_size(label, repeats, out_root, with_pg, only))
    info_end = machine()
    table = render_table(results)
    print(table)
    print(f"\nmachine: {info['nproc']} cores, {info['ram_gib']} GiB RAM, {info['cpu']}; load average "
          f"{info['load_average']} at start, {info_end['load_average']} at end; medians of {repeats} run(s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "machine_end": info_end, "results": results},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
