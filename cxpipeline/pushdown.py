"""Extraction where the data is: the panel and its small companions computed by a SQL engine.

For a warehouse (SQL source) and for large canonical Parquet files, transactions never enter
pandas. The same SQL (:data:`cxpipeline.panel.PANEL_SQL`, :data:`cxpipeline.panel.CADENCE_SQL`
and the accounting queries below) runs in the engine that holds the rows -- PostgreSQL (or any
database that speaks this SQL) for SQL sources, embedded DuckDB for files -- and only these
results come back:

* the exclusion accounting (rows and revenue in cents per reason, first and last order date);
* the panel for the reporting period type and the monthly panel;
* the purchase cadence at the four comparison instants;
* per-customer value counts of segment columns that live on the transactions.

Every exclusion is computed in SQL, in the order the file source applies them, so
``revenue_in == revenue_used + revenue_excluded`` holds to the cent exactly as for other sources.

The engine is reached through a ``query(sql) -> DataFrame`` callable, so this module does not
care whether rows arrive from DuckDB or stream from a server-side cursor.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxpipeline.errors import InputError
from cxpipeline.panel import (
    CADENCE_ORDER,
    CADENCE_SQL,
    GAPS_FROM_ORDERS_SQL,
    GAPS_SQL,
    ORDERS_SQL,
    cadence_sql,
    panel_from_orders_sql,
    panel_sql,
)
from cxpipeline.periods import Period
from cxpipeline.quality import Exclusions
from cxpipeline.schema import PANEL_COLUMNS

__all__ = [
    "AFTER_PERIOD",
    "DUCKDB_MEMORY_LIMIT",
    "PanelExtract",
    "QUALITY_SQL",
    "QueryFn",
    "extract_aggregates",
    "customer_table",
    "segment_modes",
    "parquet_fast_path",
    "extract_parquet",
    "parquet_last_day",
]

AFTER_PERIOD = "after the reporting period"

#: Runs one SQL statement and returns its rows as a DataFrame (column names from the query).
QueryFn = Callable[[str], pd.DataFrame]

CADENCE_DTYPES = {"customer_id": "string", "as_of": "datetime64[us]", "median_gap_days": "float64",
                  "count_orders": "int64"}

# Every row of {source} lands in exactly one bucket: '' (used) or the first exclusion reason
# that applies. {source} has a boolean column is_duplicate (false where duplicates are not
# looked for). Revenue in cents: each line rounded to the cent, summed exactly as a decimal.
QUALITY_SQL = """
SELECT reason,
       count(*)                                                         AS count_rows,
       CAST(coalesce(sum(CAST(coalesce(revenue, 0) AS DECIMAL(18, 2))), 0) * 100 AS BIGINT)
                                                                        AS revenue_cents,
       min(ordered_at)                                                  AS first_ordered_at,
       max(ordered_at)                                                  AS last_ordered_at
FROM (
    SELECT revenue, ordered_at,
           CASE WHEN revenue IS NULL OR isnan_revenue THEN 'non-numeric amount'
                WHEN ordered_at IS NULL THEN 'unparseable date'
                WHEN customer_id IS NULL THEN 'missing customer id'
                WHEN is_duplicate THEN 'exact duplicate line'
                WHEN CAST(revenue AS DECIMAL(18, 2)) = 0 THEN 'zero amount'
                WHEN ordered_at >= TIMESTAMP '{end}' THEN 'after the reporting period'
                ELSE '' END AS reason
    FROM {source}
) AS classified
GROUP BY reason
"""

# The rows that feed the panel: everything not excluded above (the period bound is applied by
# the panel and cadence queries themselves).
USED_SQL = """(
    SELECT * FROM {source}
    WHERE revenue IS NOT NULL AND NOT isnan_revenue AND ordered_at IS NOT NULL
      AND customer_id IS NOT NULL AND NOT is_duplicate AND CAST(revenue AS DECIMAL(18, 2)) <> 0
) AS used_rows"""

SEGMENT_COUNTS_SQL = """
SELECT customer_id, {column} AS segment_value, count(*) AS count_rows
FROM {source}
WHERE ordered_at < TIMESTAMP '{end}' AND {column} IS NOT NULL
GROUP BY 1, 2
"""


@dataclass
class PanelExtract:
    """Everything the extract stage writes, computed without transactions in pandas."""

    panel: pd.DataFrame
    panel_monthly: pd.DataFrame
    cadence: pd.DataFrame
    customers: pd.DataFrame
    quality: Exclusions
    description: str
    first_ordered_at: pd.Timestamp | None
    last_ordered_at: pd.Timestamp | None
    fingerprint: str
    method: str = "lines"  # "orders": grouped into orders once (see ORDERS_SQL); "lines": per query


def _ts(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def segment_modes(counts: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each customer's most frequent value of a segment (ties: alphabetical).

    ``counts`` has ``customer_id, segment_value, count_rows``; returns ``customer_id, <column>``.
    """
    ordered = counts.sort_values(["customer_id", "count_rows", "segment_value"], ascending=[True, False, True])
    mode = ordered.drop_duplicates("customer_id")[["customer_id", "segment_value"]]
    mode = mode.rename(columns={"segment_value": column})
    mode[column] = mode[column].astype("string")
    mode["customer_id"] = mode["customer_id"].astype("string")
    return mode


def customer_table(ids: pd.Series, customers: pd.DataFrame | None, modes: list[pd.DataFrame]) -> pd.DataFrame:
    """The customer table for the pack: every known customer plus every id that bought.

    ``modes`` are :func:`segment_modes` frames for segments that live on transactions.
    """
    ids = pd.DataFrame({"customer_id": pd.Series(ids).drop_duplicates().astype("string")})
    table = ids if customers is None else customers.merge(ids, on="customer_id", how="outer")
    for mode in modes:
        column = [c for c in mode.columns if c != "customer_id"][0]
        if column in table.columns:
            continue
        table = table.merge(mode, on="customer_id", how="left")
    return table


def _fingerprint(frames: list[pd.DataFrame], quality: dict, description: str) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(json.dumps(quality, sort_keys=True, default=str).encode())
    digest.update(description.encode())
    return digest.hexdigest()[:16]


def _quality(rows: pd.DataFrame, base: Exclusions | None) -> tuple[Exclusions, int, pd.Timestamp | None, pd.Timestamp | None]:
    quality = base or Exclusions()
    quality.rows_in += int(rows["count_rows"].sum())
    quality.revenue_in_cents += int(rows["revenue_cents"].sum())
    used_rows = 0
    for row in rows.sort_values("reason").itertuples(index=False):
        if row.reason == "":
            used_rows = int(row.count_rows)
        else:
            quality.record(row.reason, int(row.count_rows), int(row.revenue_cents))
    # Data span: rows that survived the source's checks (used, or only after the period).
    kept = rows.loc[rows["reason"].isin(["", AFTER_PERIOD])]
    first = pd.to_datetime(kept["first_ordered_at"]).min() if len(kept) else None
    last = pd.to_datetime(kept["last_ordered_at"]).max() if len(kept) else None
    return quality, used_rows, (None if pd.isna(first) else first), (None if pd.isna(last) else last)


def _cadence_per_instant(query: QueryFn, instants: list[pd.Timestamp]) -> pd.DataFrame:
    """The cadence from the materialised ``cx_gaps``, one instant per query.

    A median keeps every value of its group in memory and cannot spill to disk; one instant at
    a time holds at most one value per order instead of one per order and instant (DuckDB ran
    out of its memory limit on the joined form at 30M orders). Rows are then ordered as the
    single query orders them (customer id in binary order, then instant).
    """
    parts = [query(cadence_sql("cx_gaps", [t])) for t in instants]
    cadence = pd.concat(parts, ignore_index=True).astype(CADENCE_DTYPES)
    return cadence.sort_values(["customer_id", "as_of"], kind="stable", ignore_index=True)


def extract_aggregates(
    query: QueryFn,
    source: str,
    *,
    period: Period,
    comparison: Period,
    segment_columns: list[str],
    customers: pd.DataFrame | None,
    description: str,
    materialize: Callable[[str, str], None] | None = None,
) -> PanelExtract:
    """Run the accounting, panel, cadence and segment queries against ``source``.

    Parameters
    ----------
    query
        Runs SQL in the engine that holds the rows.
    source
        A relation (subquery with alias) with the canonical transaction columns plus
        ``is_duplicate`` and ``isnan_revenue`` (booleans) and any segment columns.
    period, comparison
        The reporting period (its end bounds everything) and its comparison period.
    segment_columns
        Segment columns present on the transactions; each customer gets their most frequent value
        unless ``customers`` already has the column.
    customers
        The customer table (or None).
    description
        Where the data came from (for messages and data_quality.json).
    materialize
        ``materialize(name, sql)`` creates a temporary table from a query (``sql=None`` drops
        it), for engines that can:
        lines are then grouped into orders once (:data:`cxpipeline.panel.ORDERS_SQL`) instead
        of once per query, unless some order's lines span two months (then the line-level
        queries run, which are exact for any data).

    Raises
    ------
    InputError
        When no row is usable before the end of the period.
    """
    end = _ts(period.end)
    quality, used_rows, first, last = _quality(query(QUALITY_SQL.format(source=source, end=end)), None)
    if used_rows == 0:
        raise InputError(
            f"No usable transactions before the end of {period.label}.",
            where=description,
            fix=(f"Choose a later period; the data starts on {first:%Y-%m-%d}." if first is not None
                 else "Check the source: it has no usable rows (see the exclusions: "
                 + (", ".join(f"{r}: {v['rows']}" for r, v in sorted(quality.by_reason.items())) or "none") + ")."),
        )
    used = USED_SQL.format(source=source)
    end_ts = pd.Timestamp(period.end)
    instants = sorted({pd.Timestamp(t) for t in (comparison.start, comparison.end, period.start, period.end)})
    values = ", ".join(f"(TIMESTAMP '{_ts(t)}')" for t in instants)
    orders = None
    if materialize is not None:
        materialize("cx_orders", ORDERS_SQL.format(source=used, end=end))
        spanning = int(query("SELECT count(*) AS n FROM cx_orders WHERE is_spanning").iloc[0, 0])
        orders = "cx_orders" if spanning == 0 else None
    if orders is not None:
        materialize("cx_gaps", GAPS_FROM_ORDERS_SQL.format(orders=orders))
        panel = query(panel_from_orders_sql(orders, period.kind, period.fiscal_start_month))
        monthly = panel if period.kind == "month" else query(panel_from_orders_sql(orders, "month", 1))
        materialize(orders, None)  # dropped: the cadence's median needs the memory
        cadence = _cadence_per_instant(query, instants)
    else:
        panel = query(panel_sql(used, period.kind, period.fiscal_start_month, end_ts))
        monthly = panel if period.kind == "month" else query(panel_sql(used, "month", 1, end_ts))
        if materialize is not None:
            materialize("cx_gaps", GAPS_SQL.format(source=used, end=_ts(instants[-1])))
            cadence = _cadence_per_instant(query, instants)
        else:
            cadence = query(CADENCE_SQL.format(source=used, end=_ts(instants[-1]), instants=values,
                                               order_by=CADENCE_ORDER))
    panel = panel.astype(PANEL_COLUMNS)
    monthly = panel if period.kind == "month" else monthly.astype(PANEL_COLUMNS)
    cadence = cadence.astype(CADENCE_DTYPES)
    modes = []
    for column in segment_columns:
        if customers is not None and column in customers.columns:
            continue
        counts = query(SEGMENT_COUNTS_SQL.format(source=used, column=column, end=end))
        modes.append(segment_modes(counts, column))
    table = customer_table(panel["customer_id"], customers, modes)
    return PanelExtract(
        panel=panel, panel_monthly=monthly, cadence=cadence, customers=table, quality=quality,
        description=description, first_ordered_at=first, last_ordered_at=last,
        fingerprint=_fingerprint([panel, monthly, cadence], quality.to_dict(), description),
        method="orders" if orders is not None else "lines",
    )


# --------------------------------------------------------------------------------------------
# Canonical Parquet files in embedded DuckDB


_CANONICAL_TYPES = {
    "order_id": ("string", "large_string"),
    "customer_id": ("string", "large_string"),
    "ordered_at": ("timestamp[us]", "timestamp[ns]", "timestamp[ms]", "timestamp[s]"),
    "revenue": ("double",),
    "cost": ("double",),
    "cost_to_serve": ("double",),
    "quantity": ("double",),
    "is_return": ("bool",),
}
_NULL_TOKENS = ("nan", "none", "null", "na", "n/a", "<na>", "nat")


def parquet_fast_path(source, base_dir: str | Path = ".") -> Path | None:
    """The Parquet path when a file source can be aggregated directly in DuckDB, else None.

    It can when the file is Parquet with the canonical columns under their own names and types
    (as written by ``cxpipeline generate-demo`` or an upstream job) and the source asks for no
    conversion that only the pandas reader does (currency filter, cancellation prefix, date
    format, time zone other than UTC, renamed segment columns).
    """
    import pyarrow.parquet as pq

    if getattr(source, "kind", None) != "file":
        return None
    path = Path(source.path).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    is_parquet = source.format == "parquet" or (source.format is None and path.suffix.lower() in (".parquet", ".pq"))
    mapping = source.columns.model_dump()
    identity = all(mapping.get(name) == name for name in _CANONICAL_TYPES) and mapping.get("unit_price") is None
    plain = (source.cancellation_prefix is None and source.currency is None and mapping.get("currency") is None
             and source.date_format is None and source.timezone == "UTC"
             and all(key == column for key, column in source.segment_columns.items()))
    if not (is_parquet and identity and plain and path.is_file()):
        return None
    try:
        schema = pq.read_schema(path)
    except Exception:
        return None  # the pandas reader produces the proper error message
    types = {field.name: str(field.type) for field in schema}
    if any(types.get(name) not in allowed for name, allowed in _CANONICAL_TYPES.items()):
        return None
    if any(types.get(column) not in ("string", "large_string") for column in source.segment_columns.values()):
        return None
    return path


def _parquet_relation(path: Path, segment_columns: list[str]) -> tuple[str, str]:
    """SQL for the duplicate-row scan and the normalised relation over a canonical Parquet file.

    Normalisation mirrors the file source: ids and segments trimmed (empty -> missing),
    customer ids like '17850.0' -> '17850' and null tokens ('nan', 'null', ...) -> missing,
    order ids missing -> 'row-<n>', returns marked by the flag or by a negative quantity or
    amount with amounts made negative.
    """
    raw = f"read_parquet('{path.as_posix()}', file_row_number = true)"
    tokens = ", ".join(f"'{t}'" for t in _NULL_TOKENS)
    marked = "(is_return OR quantity < 0 OR revenue < 0)"
    segments = "".join(f",\n           NULLIF(trim({c}), '') AS {c}" for c in segment_columns)
    relation = f"""(
    SELECT COALESCE(NULLIF(trim(order_id), ''), 'row-' || CAST(file_row_number + 1 AS VARCHAR)) AS order_id,
           CASE WHEN trim(customer_id) = '' THEN NULL
                WHEN length(customer_id) <= 12 AND lower(trim(customer_id)) IN ({tokens}) THEN NULL
                WHEN contains(customer_id, '.')  -- the regex only where it can apply (it is slow)
                    THEN regexp_replace(trim(customer_id), '^(-?[0-9]+)\\.0*$', '\\1')
                ELSE trim(customer_id) END AS customer_id,
           CAST(ordered_at AS TIMESTAMP) AS ordered_at,
           CASE WHEN {marked} THEN -abs(revenue) ELSE revenue END + 0.0 AS revenue,
           CASE WHEN {marked} THEN -abs(coalesce(cost, 0)) ELSE coalesce(cost, 0) END + 0.0 AS cost,
           coalesce(cost_to_serve, 0) AS cost_to_serve,
           CASE WHEN {marked} THEN -abs(quantity) ELSE quantity END + 0.0 AS quantity,
           coalesce({marked}, false) AS is_return,
           isnan(revenue) AS isnan_revenue,
           file_row_number IN (SELECT file_row_number FROM duplicate_rows) AS is_duplicate{segments}
    FROM {raw}
) AS source_rows"""
    return raw, relation


def _duplicates_sql(raw: str, columns: list[str]) -> str:
    """Rows equal in every column to an earlier row: candidates by a 64-bit row hash, then exact."""
    listed = ", ".join(columns)
    return f"""
CREATE TEMP TABLE duplicate_rows AS
WITH hashed AS (
    SELECT hash({listed}) AS row_hash FROM {raw}
), candidates AS (
    SELECT row_hash FROM hashed GROUP BY row_hash HAVING count(*) > 1
), ranked AS (
    SELECT file_row_number,
           row_number() OVER (PARTITION BY {listed} ORDER BY file_row_number) AS copy_number
    FROM {raw}
    WHERE hash({listed}) IN (SELECT row_hash FROM candidates)
)
SELECT file_row_number FROM ranked WHERE copy_number > 1
"""


def _arrow_to_pandas(table) -> pd.DataFrame:
    """Arrow result -> pandas with Arrow-backed strings (no Python string objects)."""
    import pyarrow as pa

    strings = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    # self_destruct frees each Arrow column once converted: the result is not held twice.
    return table.to_pandas(types_mapper=strings.get, self_destruct=True, split_blocks=True)


#: DuckDB's working memory for the Parquet pushdown; beyond it DuckDB spills to a temporary
#: folder. Bounds the extract's peak RSS (the panels themselves come on top, in pandas).
DUCKDB_MEMORY_LIMIT = "1GB"


def _duckdb(spill_dir: str | None = None):
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")  # no ordering needed; less memory
    if spill_dir is not None:
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = '{spill_dir}'")
    return con


def extract_parquet(
    path: str | Path,
    *,
    period: Period,
    comparison: Period,
    segment_columns: list[str],
    customers: pd.DataFrame | None,
) -> PanelExtract:
    """:func:`extract_aggregates` on a canonical Parquet file, in embedded DuckDB."""
    import pyarrow.parquet as pq

    path = Path(path)
    file_columns = [field.name for field in pq.read_schema(path)]
    present = [c for c in segment_columns if c in file_columns]
    spill = tempfile.TemporaryDirectory(prefix="cx-duckdb-")
    con = _duckdb(spill.name)
    try:
        raw, relation = _parquet_relation(path, present)
        con.execute(_duplicates_sql(raw, file_columns))

        def query(sql: str) -> pd.DataFrame:
            return _arrow_to_pandas(con.sql(sql).to_arrow_table())

        def materialize(name: str, sql: str | None) -> None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}" if sql else f"DROP TABLE {name}")

        result = extract_aggregates(query, relation, period=period, comparison=comparison,
                                    segment_columns=present, customers=customers, description=str(path),
                                    materialize=materialize)
    finally:
        con.close()
        spill.cleanup()
    return result


def parquet_last_day(path: str | Path):
    """Last order date among usable rows of a canonical Parquet file (for the default period)."""
    con = _duckdb()
    try:
        value = con.execute(
            f"SELECT max(ordered_at) FROM read_parquet('{Path(path).as_posix()}') "
            "WHERE customer_id IS NOT NULL AND revenue <> 0"
        ).fetchone()[0]
    finally:
        con.close()
    return None if value is None else pd.Timestamp(value).date()


# --------------------------------------------------------------------------------------------
# Dispatch for the pipeline


def pushdown_kind(config) -> str | None:
    """``"sql"`` for a warehouse, ``"parquet"`` for a canonical Parquet file, else None (pandas)."""
    if config.source.kind == "sql":
        return "sql"
    if config.source.kind == "file" and parquet_fast_path(config.source, config.base_dir) is not None:
        return "parquet"
    return None


def extract_pushdown(config, period: Period, comparison: Period, *, url: str | None = None) -> PanelExtract:
    """The extract for a pushdown source (see :func:`pushdown_kind`), nothing loaded into pandas."""
    kind = pushdown_kind(config)
    if kind == "sql":
        from cxpipeline.sources.sql import extract_sql

        return extract_sql(config.source, period, comparison, list(config.segments), url=url)
    if kind == "parquet":
        from cxpipeline.sources.files import read_customers

        source = config.source
        customers = read_customers(source, config.base_dir) if source.customers_path else None
        return extract_parquet(parquet_fast_path(source, config.base_dir), period=period, comparison=comparison,
                               segment_columns=[c for c in config.segments if c in source.segment_columns],
                               customers=customers)
    raise ValueError(f"source kind {config.source.kind!r} is not aggregated in an engine")


def pushdown_last_day(config, *, url: str | None = None):
    """Last order date of a pushdown source, read by the engine (for the default period)."""
    if pushdown_kind(config) == "sql":
        from cxpipeline.sources.sql import sql_last_day

        return sql_last_day(config.source, url=url)
    return parquet_last_day(parquet_fast_path(config.source, config.base_dir))
