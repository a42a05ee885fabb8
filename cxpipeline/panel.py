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

__all__ = ["PANEL_SQL", "CADENCE_SQL", "panel_sql", "build_panel", "customer_cadence"]

_TRUNC_UNIT = {"month": "month", "quarter": "quarter", "year": "year"}

# {source}: a relation with the canonical transaction columns; {unit}: month/quarter/year;
# {shift}: fiscal year start month - 1 (periods are truncated in a shifted calendar);
# {end}: exclusive upper bound on ordered_at (no look-ahead past the reporting period).
PANEL_SQL = """
SELECT
    customer_id,
    CAST(date_trunc('{unit}', ordered_at - INTERVAL {shift} MONTH) + INTERVAL {shift} MONTH
         AS TIMESTAMP) AS period_start,
    round(sum(revenue), 2)                                          AS revenue,
    round(coalesce(sum(revenue) FILTER (WHERE NOT is_return), 0), 2) AS gross_revenue,
    round(-coalesce(sum(revenue) FILTER (WHERE is_return), 0), 2)   AS returns,
    round(sum(cost), 2)                                             AS cost,
    round(sum(cost_to_serve), 2)                                    AS cost_to_serve,
    count(DISTINCT order_id) FILTER (WHERE NOT is_return)           AS count_orders,
    count(DISTINCT order_id) FILTER (WHERE is_return)               AS count_returns,
    min(ordered_at) FILTER (WHERE NOT is_return)                    AS first_order_at,
    max(ordered_at) FILTER (WHERE NOT is_return)                    AS last_order_at
FROM {source}
WHERE ordered_at < TIMESTAMP '{end}'
GROUP BY ALL
ORDER BY customer_id, period_start
"""

# Median days between a customer's consecutive purchase orders, using only orders strictly
# before each as-of instant (so a later purchase never changes an earlier state).
CADENCE_SQL = """
WITH orders AS (
    SELECT customer_id, order_id, min(ordered_at) AS ordered_at
    FROM {source}
    WHERE NOT is_return AND ordered_at < TIMESTAMP '{end}'
    GROUP BY ALL
), gaps AS (
    SELECT customer_id, ordered_at,
           date_diff('second', lag(ordered_at) OVER (
               PARTITION BY customer_id ORDER BY ordered_at, order_id), ordered_at) / 86400.0 AS gap_days
    FROM orders
), instants AS (
    SELECT unnest([{instants}]) AS as_of
)
SELECT customer_id, as_of, median(gap_days) AS median_gap_days, count(*) AS count_orders
FROM gaps JOIN instants ON gaps.ordered_at < instants.as_of
GROUP BY ALL
ORDER BY customer_id, as_of
"""


def panel_sql(source: str, kind: str, fiscal_start_month: int, end: datetime) -> str:
    """The panel query for a relation named ``source`` (a table, view or ``read_parquet(...)``)."""
    if kind not in _TRUNC_UNIT:
        raise ValueError(f"period kind must be one of {sorted(_TRUNC_UNIT)}, got {kind!r}")
    shift = 0 if kind == "month" else fiscal_start_month - 1
    return PANEL_SQL.format(source=source, unit=_TRUNC_UNIT[kind], shift=shift, end=_ts(end))


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
        ``month``, ``quarter`` or ``year``.
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
        sql = CADENCE_SQL.format(
            source=source,
            end=_ts(instants[-1]),
            instants=", ".join(f"TIMESTAMP '{_ts(t)}'" for t in instants),
        )
        out = con.execute(sql).df()
    finally:
        con.close()
    return out.astype(
        {"customer_id": "string", "as_of": "datetime64[us]", "median_gap_days": "float64", "count_orders": "int64"}
    )
