"""Transactions -> the customer-period panel, defined once in SQL and run in DuckDB.

The panel has one row per customer per period in which the customer had any transaction
(columns: :data:`cxpipeline.schema.PANEL_COLUMNS`). It is the only thing that flows from
extraction into the metrics and the model, so the same SQL can run inside a warehouse for SQL
sources and in embedded DuckDB for files and the demo.

A *purchase* is a line that is not a return; a customer's orders, first and last order dates
count purchases only. Revenue is net: purchases minus returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from cxpipeline.schema import PANEL_COLUMNS

__all__ = [
    "PANEL_SQL",
    "CADENCE_SQL",
    "GAPS_SQL",
    "CADENCE_FROM_GAPS_SQL",
    "ORDERS_SQL",
    "PANEL_FROM_ORDERS_SQL",
    "GAPS_FROM_ORDERS_SQL",
    "panel_sql",
    "panel_from_orders_sql",
    "cadence_sql",
    "instants_sql",
    "PANEL_ORDER",
    "CADENCE_ORDER",
    "build_panel",
    "customer_cadence",
    "MODEL_SAMPLE_SQL",
    "sample_threshold",
    "write_model_sample",
]

_TRUNC_UNIT = {"week": "week", "month": "month", "quarter": "quarter", "year": "year"}  # week: ISO, Monday

# Results are ordered by customer id in binary ("C") order, then time, in every engine. An
# engine that has replaced ids by integer keys assigned in that order passes its own clause.
PANEL_ORDER = 'ORDER BY customer_id COLLATE "C", period_start'
CADENCE_ORDER = 'ORDER BY customer_id COLLATE "C", as_of'

# Two steps: lines -> orders (one row per customer, order, return flag and period), then orders
# -> customer-period rows. Counting order rows equals count(DISTINCT order_id) per period but
# avoids distinct aggregates, which are several times slower in DuckDB. The text is plain SQL
# that DuckDB and PostgreSQL both run (no GROUP BY ALL, no '::' casts, binary "C" ordering).
# The order step groups by customer and period first: an engine that groups by sorting (PostgreSQL)
# then hands the customer-period step its input already in order, so it streams.
# {source}: a relation with the canonical transaction columns; {unit}: month/quarter/year;
# {shift}: fiscal year start month - 1 (periods are truncated in a shifted calendar);
# {end}: exclusive upper bound on ordered_at (no look-ahead past the reporting period).
PANEL_SQL = """
WITH orders AS (
    SELECT
        customer_id,
        order_id,
        is_return,
        CAST(date_trunc('{unit}', ordered_at - INTERVAL '{shift} months') + INTERVAL '{shift} months'
             AS TIMESTAMP)  AS period_start,
        sum(revenue)        AS revenue,
        sum(cost)           AS cost,
        sum(cost_to_serve)  AS cost_to_serve,
        min(ordered_at)     AS first_at,
        max(ordered_at)     AS last_at
    FROM {source}
    WHERE ordered_at < TIMESTAMP '{end}'
    GROUP BY 1, 4, 2, 3
)
SELECT
    customer_id,
    period_start,
    CAST(CAST(sum(revenue) AS DECIMAL(18, 2)) AS DOUBLE PRECISION)             AS revenue,
    CAST(CAST(coalesce(sum(revenue) FILTER (WHERE NOT is_return), 0) AS DECIMAL(18, 2))
         AS DOUBLE PRECISION)                                                  AS gross_revenue,
    CAST(CAST(-coalesce(sum(revenue) FILTER (WHERE is_return), 0) AS DECIMAL(18, 2))
         AS DOUBLE PRECISION)                                                  AS returns,
    CAST(CAST(sum(cost) AS DECIMAL(18, 2)) AS DOUBLE PRECISION)                AS cost,
    CAST(CAST(sum(cost_to_serve) AS DECIMAL(18, 2)) AS DOUBLE PRECISION)       AS cost_to_serve,
    count(order_id) FILTER (WHERE NOT is_return)                               AS count_orders,
    count(order_id) FILTER (WHERE is_return)                                   AS count_returns,
    min(first_at) FILTER (WHERE NOT is_return)                                 AS first_order_at,
    max(last_at) FILTER (WHERE NOT is_return)                                  AS last_order_at
FROM orders
GROUP BY 1, 2
{order_by}
"""

# Median days between a customer's consecutive purchase orders, using only orders strictly
# before each as-of instant (so a later purchase never changes an earlier state). Gaps are
# whole seconds (second boundaries crossed) so the median is exact in every engine. GAPS_SQL
# is one row per purchase order with the gap since the customer's previous one; engines that
# can keep a temporary table materialise it first (DuckDB runs the window far faster alone
# than fused with the join and median).
GAPS_SQL = """
WITH orders AS (
    SELECT customer_id, order_id, min(ordered_at) AS ordered_at
    FROM {source}
    WHERE NOT is_return AND ordered_at < TIMESTAMP '{end}'
    GROUP BY 1, 2
)
SELECT customer_id, ordered_at,
       CAST(floor(EXTRACT(EPOCH FROM ordered_at)) AS BIGINT)
       - CAST(floor(EXTRACT(EPOCH FROM lag(ordered_at) OVER (
             PARTITION BY customer_id ORDER BY ordered_at, order_id))) AS BIGINT) AS gap_seconds
FROM orders
"""

CADENCE_FROM_GAPS_SQL = """
WITH instants AS (
    {instants}
)
SELECT customer_id, as_of,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY gap_seconds)
           / CAST(86400 AS DOUBLE PRECISION) AS median_gap_days,
       count(*) AS count_orders
FROM {gaps} AS gaps JOIN instants ON gaps.ordered_at < instants.as_of
GROUP BY 1, 2
{order_by}
"""

CADENCE_SQL = CADENCE_FROM_GAPS_SQL.replace("{gaps}", "(" + GAPS_SQL + ")")


# --- The same panel and cadence from an order-level table (engines that can keep one) -------
# Grouping 10M lines by order is the expensive step, and the line-level queries above do it three
# times (period panel, monthly panel, cadence). An engine that can hold a temporary table groups
# once into ORDERS_SQL and derives all three from it. This is exact when no order's lines span
# two calendar months (then every period, fiscal or not, holds whole orders). The caller checks
# count_spanning_orders first and uses the line-level queries otherwise.
ORDERS_SQL = """
SELECT
    customer_id,
    order_id IS NOT NULL                                        AS has_order_id,
    is_return,
    CAST(date_trunc('month', min(ordered_at)) AS TIMESTAMP)     AS month_start,
    date_trunc('month', min(ordered_at)) <> date_trunc('month', max(ordered_at)) AS is_spanning,
    sum(revenue)                                                AS revenue,
    sum(cost)                                                   AS cost,
    sum(cost_to_serve)                                          AS cost_to_serve,
    min(ordered_at)                                             AS first_at,
    max(ordered_at)                                             AS last_at
FROM {source}
WHERE ordered_at < TIMESTAMP '{end}'
GROUP BY customer_id, order_id, is_return
"""

PANEL_FROM_ORDERS_SQL = """
SELECT
    customer_id,
    CAST(date_trunc('{unit}', month_start - INTERVAL '{shift} months') + INTERVAL '{shift} months'
         AS TIMESTAMP)                                                         AS period_start,
    CAST(CAST(sum(revenue) AS DECIMAL(18, 2)) AS DOUBLE PRECISION)             AS revenue,
    CAST(CAST(coalesce(sum(revenue) FILTER (WHERE NOT is_return), 0) AS DECIMAL(18, 2))
         AS DOUBLE PRECISION)                                                  AS gross_revenue,
    CAST(CAST(-coalesce(sum(revenue) FILTER (WHERE is_return), 0) AS DECIMAL(18, 2))
         AS DOUBLE PRECISION)                                                  AS returns,
    CAST(CAST(sum(cost) AS DECIMAL(18, 2)) AS DOUBLE PRECISION)                AS cost,
    CAST(CAST(sum(cost_to_serve) AS DECIMAL(18, 2)) AS DOUBLE PRECISION)       AS cost_to_serve,
    count(*) FILTER (WHERE NOT is_return AND has_order_id)                     AS count_orders,
    count(*) FILTER (WHERE is_return AND has_order_id)                         AS count_returns,
    min(first_at) FILTER (WHERE NOT is_return)                                 AS first_order_at,
    max(last_at) FILTER (WHERE NOT is_return)                                  AS last_order_at
FROM {orders}
GROUP BY 1, 2
{order_by}
"""

# As GAPS_SQL; ties between orders at the same instant give a zero gap whatever their order.
GAPS_FROM_ORDERS_SQL = """
SELECT customer_id, first_at AS ordered_at,
       CAST(floor(EXTRACT(EPOCH FROM first_at)) AS BIGINT)
       - CAST(floor(EXTRACT(EPOCH FROM lag(first_at) OVER (
             PARTITION BY customer_id ORDER BY first_at))) AS BIGINT) AS gap_seconds
FROM {orders}
WHERE NOT is_return
"""


def panel_from_orders_sql(orders: str, kind: str, fiscal_start_month: int, order_by: str = PANEL_ORDER) -> str:
    """The panel query over an order-level table built with :data:`ORDERS_SQL` (month-aligned
    periods only: the table keeps each order's month, which does not say its ISO week)."""
    if kind == "week":
        raise ValueError("an order-level table holds months, not weeks: build a weekly panel with panel_sql")
    if kind not in _TRUNC_UNIT:
        raise ValueError(f"period kind must be one of {sorted(_TRUNC_UNIT)}, got {kind!r}")
    shift = 0 if kind in ("month", "week") else fiscal_start_month - 1
    return PANEL_FROM_ORDERS_SQL.format(orders=orders, unit=_TRUNC_UNIT[kind], shift=shift, order_by=order_by)


def panel_sql(source: str, kind: str, fiscal_start_month: int, end: datetime, order_by: str = PANEL_ORDER) -> str:
    """The panel query for a relation named ``source`` (a table, view or ``read_parquet(...)``)."""
    if kind not in _TRUNC_UNIT:
        raise ValueError(f"period kind must be one of {sorted(_TRUNC_UNIT)}, got {kind!r}")
    shift = 0 if kind in ("month", "week") else fiscal_start_month - 1
    return PANEL_SQL.format(source=source, unit=_TRUNC_UNIT[kind], shift=shift, end=_ts(end), order_by=order_by)


def cadence_sql(gaps: str, instants: Sequence[date | datetime | pd.Timestamp], order_by: str = CADENCE_ORDER) -> str:
    """The cadence query over a gaps relation (:data:`GAPS_SQL` / :data:`GAPS_FROM_ORDERS_SQL`)."""
    return CADENCE_FROM_GAPS_SQL.format(gaps=gaps, instants=instants_sql(instants), order_by=order_by)


def instants_sql(instants: Sequence[date | datetime | pd.Timestamp]) -> str:
    """The cadence instants as a relation with one column ``as_of``.

    A ``UNION ALL`` of one-row selects: every engine runs it (a ``VALUES`` list with named
    columns is not accepted by BigQuery, nor bare in a CTE by Spark).
    """
    return "\n    UNION ALL ".join(f"SELECT TIMESTAMP '{_ts(t)}' AS as_of" for t in instants)


def _ts(value: date | datetime | pd.Timestamp) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _relation(con: duckdb.DuckDBPyConnection, transactions: pd.DataFrame | str | Path) -> str:
    if isinstance(transactions, pd.DataFrame):
        con.register("transactions_input", transactions)
        return "transactions_input"
    return f"read_parquet('{Path(transactions).as_posix()}')"


def build_panel(
    transactions: pd.DataFrame | str | Path,
    kind: str,
    fiscal_start_month: int = 1,
    end: date | datetime | None = None,
) -> pd.DataFrame:
    """Aggregate canonical transactions to one row per customer per period.

    Parameters
    ----------
    transactions
        Canonical transactions (DataFrame) or the path of a Parquet file/glob holding them.
    kind
        ``week`` (ISO, starting Monday), ``month``, ``quarter`` or ``year``.
    fiscal_start_month
        First month of the fiscal year (quarters and years are aligned to it).
    end
        Exclusive bound: transactions at or after it are ignored (the end of the reporting
        period, so nothing after it leaks into the pack). ``None`` keeps everything.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`cxpipeline.schema.PANEL_COLUMNS`, sorted by customer and period.
    """
    end_ts = pd.Timestamp(end) if end is not None else pd.Timestamp("2262-01-01")
    con = duckdb.connect()
    try:
        source = _relation(con, transactions)
        panel = con.execute(panel_sql(source, kind, fiscal_start_month, end_ts)).df()
    finally:
        con.close()
    return panel.astype(PANEL_COLUMNS)


def customer_cadence(
    transactions: pd.DataFrame | str | Path, as_of: Sequence[date | datetime | pd.Timestamp]
) -> pd.DataFrame:
    """Median gap between purchase orders before each instant in ``as_of``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, as_of, median_gap_days, count_orders``; a customer appears for an
        instant once they have at least one purchase before it (median is NaN with one order).
    """
    instants = sorted({pd.Timestamp(t) for t in as_of})
    if not instants:
        raise ValueError("as_of must hold at least one instant")
    con = duckdb.connect()
    try:
        source = _relation(con, transactions)
        # The gaps are materialised first: DuckDB is far faster that way than with the window
        # fused into the join and median (minutes instead of seconds at 10M orders).
        con.execute("CREATE TEMP TABLE cx_gaps AS " + GAPS_SQL.format(source=source, end=_ts(instants[-1])))
        out = con.execute(cadence_sql("cx_gaps", instants)).df()
    finally:
        con.close()
    return out.astype(
        {"customer_id": "string", "as_of": "datetime64[us]", "median_gap_days": "float64", "count_orders": "int64"}
    )


# --- The monthly panel for the model, sampled by customer -----------------------------------
# Above model.max_customers_monthly customers the model is fitted on a fixed sample of them
# (docs/warehouse.md, "Memory"): a customer is in it when the first 8 hex digits of the MD5 of
# their id are below the threshold (lower-case hex of equal length compares like the number).
# The same customers every run and whatever engine computed the panel; a lower rate keeps a
# subset of a higher one's customers. The query reads the staged panel file (any engine's), so
# the whole panel never enters pandas.
MODEL_SAMPLE_SQL = """
SELECT * FROM read_parquet('{path}')
WHERE substr(md5(customer_id), 1, 8) < '{threshold}'
"""


def sample_threshold(fraction: float) -> str:
    """The 8-hex-digit MD5 prefix below which a customer is in a sample of ``fraction``."""
    return f"{min(int(fraction * 2**32), 2**32 - 1):08x}"


def write_model_sample(monthly: str | Path, out: str | Path, count_customers: int, max_customers: int) -> dict | None:
    """Write the monthly panel of a fixed sample of customers to ``out`` when there are more than
    ``max_customers``; return what was kept (None, and no file, below the bound).

    The file keeps the monthly panel's schema and order (rows of the kept customers only). It is
    written under a temporary name and renamed into place.
    """
    import os

    import pyarrow.parquet as pq

    out = Path(out)
    out.unlink(missing_ok=True)
    if count_customers <= max_customers:
        return None
    fraction = max_customers / count_customers
    threshold = sample_threshold(fraction)
    schema = pq.read_schema(monthly)
    partial = out.with_name(f".{out.name}.tmp")
    con = duckdb.connect()
    kept_rows = 0
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            query = MODEL_SAMPLE_SQL.format(path=Path(monthly).as_posix(), threshold=threshold)
            for batch in con.sql(query).to_arrow_reader(1 << 18):
                writer.write_batch(batch.cast(schema))
                kept_rows += batch.num_rows
        kept = int(con.execute(f"SELECT count(DISTINCT customer_id) FROM read_parquet('{partial.as_posix()}')")
                   .fetchone()[0])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(partial, out)
    return {"customers": int(count_customers), "customers_in_sample": kept, "rows_in_sample": kept_rows,
            "fraction": round(kept / count_customers, 6), "md5_prefix_below": threshold,
            "max_customers_monthly": int(max_customers)}
