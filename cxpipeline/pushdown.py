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
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
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
from cxpipeline.periods import Period, cadence_instants
from cxpipeline.quality import Exclusions, tie_out_row
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
# {zero}, {before}, {after}: the switchable rules of RowRules (a condition, or false).
QUALITY_SQL = """
SELECT reason,
       count(*)                                                         AS count_rows,
       CAST(coalesce(sum(CAST(coalesce(revenue, 0) AS DECIMAL(18, 2))), 0) * 100 AS BIGINT)
                                                                        AS revenue_cents,
       min(ordered_at)                                                  AS first_ordered_at,
       max(ordered_at)                                                  AS last_ordered_at,
       count(*) FILTER (WHERE CAST(revenue AS DECIMAL(18, 2)) = 0)      AS count_zero_rows
FROM (
    SELECT revenue, ordered_at,
           CASE WHEN revenue IS NULL OR isnan_revenue THEN 'non-numeric amount'
                WHEN ordered_at IS NULL THEN 'unparseable date'
                WHEN {before} THEN '{before_reason}'
                WHEN {after} THEN '{after_reason}'
                WHEN customer_id IS NULL THEN 'missing customer id'
                WHEN is_duplicate THEN 'exact duplicate line'
                WHEN {zero} THEN 'zero amount'
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
      AND NOT ({before}) AND NOT ({after})
      AND customer_id IS NOT NULL AND NOT is_duplicate AND NOT ({zero})
) AS used_rows"""


@dataclass(frozen=True)
class RowRules:
    """The exclusion rules a source can switch (the same as the file source's, see
    :mod:`cxpipeline.sources.files`): zero amounts (kept by default), and the plausible dates."""

    exclude_zero_amounts: bool = False
    earliest_date: date = date(1990, 1, 1)
    data_through: date | None = None

    @classmethod
    def of(cls, source) -> "RowRules":
        return cls(getattr(source, "exclude_zero_amounts", False),
                   getattr(source, "earliest_date", date(1990, 1, 1)),
                   getattr(source, "data_through", None))

    def _terms(self) -> dict[str, str]:
        after = (f"ordered_at >= TIMESTAMP '{_ts(pd.Timestamp(self.data_through) + pd.Timedelta(days=1))}'"
                 if self.data_through else "false")
        return {
            "zero": "CAST(revenue AS DECIMAL(18, 2)) = 0" if self.exclude_zero_amounts else "false",
            "before": f"ordered_at < TIMESTAMP '{_ts(self.earliest_date)}'",
            "before_reason": f"dated before {self.earliest_date:%Y-%m-%d}",
            "after": after,
            "after_reason": f"dated after {self.data_through:%Y-%m-%d} (data_through)" if self.data_through else "",
        }

    def quality_sql(self, source: str, end: str) -> str:
        return QUALITY_SQL.format(source=source, end=end, **self._terms())

    def used_sql(self, source: str) -> str:
        return USED_SQL.format(source=source, **self._terms())


def tie_out(query: QueryFn, rules: RowRules, relation: str, periods: list[Period]) -> list[dict]:
    """For each period: the rows and revenue dated in it in the source against those used."""
    out = []
    for period in periods:
        bounded = (f"(SELECT * FROM {relation} WHERE ordered_at >= TIMESTAMP '{_ts(period.start)}' "
                   f"AND ordered_at < TIMESTAMP '{_ts(period.end)}') AS tie_rows")
        rows = query(rules.quality_sql(bounded, _ts(period.end)))
        used = rows.loc[rows["reason"] == ""]
        excluded = rows.loc[rows["reason"] != "", ["reason", "count_rows", "revenue_cents"]]
        out.append(tie_out_row(period.label, period.title, int(used["count_rows"].sum()),
                               int(used["revenue_cents"].sum()),
                               excluded.rename(columns={"count_rows": "rows"}).astype(
                                   {"rows": "int64", "revenue_cents": "int64"})))
    return out


def _zero_note(rows: pd.DataFrame, rules: RowRules) -> str | None:
    """The note on zero-amount rows kept as purchases (the same words as the file source's)."""
    if rules.exclude_zero_amounts or "count_zero_rows" not in rows:
        return None
    kept = int(rows.loc[rows["reason"].isin(["", AFTER_PERIOD]), "count_zero_rows"].sum())
    if not kept:
        return None
    return (f"{kept} row(s) have a zero amount and are kept as purchases worth 0 (a free sample or "
            "a 100 % discount still makes a customer); set source.exclude_zero_amounts: true to "
            "leave them out.")

SEGMENT_COUNTS_SQL = """
SELECT customer_id, {column} AS segment_value, count(*) AS count_rows
FROM {source}
WHERE ordered_at < TIMESTAMP '{end}' AND {column} IS NOT NULL
GROUP BY 1, 2
"""


@dataclass
class PanelExtract:
    """Everything the extract stage writes, computed without transactions in pandas.

    The panel, monthly panel and cadence come either as frames or, when an engine streamed
    them to files, as ``files`` (name -> staged Parquet file) with their counts alongside.
    """

    panel: pd.DataFrame | None
    panel_monthly: pd.DataFrame | None
    cadence: pd.DataFrame | None
    customers: pd.DataFrame
    quality: Exclusions
    description: str
    first_ordered_at: pd.Timestamp | None
    last_ordered_at: pd.Timestamp | None
    fingerprint: str
    method: str = "lines"  # "orders": grouped into orders once (see ORDERS_SQL); "lines": per query
    files: dict[str, Path] = field(default_factory=dict)
    count_customers: int | None = None
    count_panel_rows: int | None = None
    scanned_duplicates: bool = True  # False when no exact duplicate could exist (scan skipped)
    tie_out: list[dict] = field(default_factory=list)  # per period: source vs used (tie_out_row)


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


def _quality(rows: pd.DataFrame, base: Exclusions | None,
             rules: RowRules | None = None) -> tuple[Exclusions, int, pd.Timestamp | None, pd.Timestamp | None]:
    quality = base or Exclusions()
    note = _zero_note(rows, rules or RowRules())
    if note:
        quality.notes.append(note)
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


#: Writes each query's rows to a staged Parquet file in the schema pandas writes for its dtypes:
#: ``stream([(sql, name, dtypes), ...]) -> {name: (path, rows)}``. The queries are independent,
#: so a source may run them at the same time (the SQL source does, in one shared snapshot).
StreamFn = Callable[[list[tuple[str, str, dict]]], dict[str, tuple[Path, int]]]


def extract_aggregates(
    query: QueryFn,
    source: str,
    *,
    period: Period,
    comparison: Period,
    segment_columns: list[str],
    customers: pd.DataFrame | None,
    description: str,
    stream: StreamFn | None = None,
    rules: RowRules | None = None,
) -> PanelExtract:
    """Run the accounting, panel, cadence and segment queries against ``source``.

    The line-level queries of :mod:`cxpipeline.panel` run as they are (exact for any data, no
    temporary table needed, so a read-only transaction will do).

    Parameters
    ----------
    query
        Runs SQL in the engine that holds the rows (small results).
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
    stream
        When given, the panel, monthly panel and cadence are streamed to staged files
        (``PanelExtract.files``) instead of being returned as frames.
    rules
        The switchable exclusion rules (zero amounts, plausible dates); default: the defaults.

    Raises
    ------
    InputError
        When no row is usable before the end of the period.
    """
    end = _ts(period.end)
    rules = rules or RowRules()
    quality, used_rows, first, last = _quality(query(rules.quality_sql(source, end)), None, rules)
    if used_rows == 0:
        raise _no_usable_rows(period, description, quality, first)
    used = rules.used_sql(source)
    end_ts = pd.Timestamp(period.end)
    instants = cadence_instants(period, comparison)
    panel_query = panel_sql(used, period.kind, period.fiscal_start_month, end_ts)
    monthly_query = panel_sql(used, "month", 1, end_ts)
    cadence_query = CADENCE_SQL.format(source=used, end=_ts(instants[-1]), order_by=CADENCE_ORDER,
                                       instants=", ".join(f"(TIMESTAMP '{_ts(t)}')" for t in instants))
    files: dict[str, Path] = {}
    if stream is not None:
        jobs = [(panel_query, "panel", PANEL_COLUMNS), (cadence_query, "cadence", CADENCE_DTYPES)]
        if period.kind != "month":
            jobs.insert(1, (monthly_query, "panel_monthly", PANEL_COLUMNS))
        written = stream(jobs)
        files["panel"], panel_rows = written["panel"]
        if period.kind == "month":
            files["panel_monthly"] = files["panel"].with_name("panel_monthly.parquet")
            shutil.copyfile(files["panel"], files["panel_monthly"])
        else:
            files["panel_monthly"] = written["panel_monthly"][0]
        files["cadence"] = written["cadence"][0]
        import pyarrow.parquet as pq

        ids = pq.read_table(files["panel"], columns=["customer_id"]).column(0).unique()
        active = pd.Series(ids.to_pandas(), dtype="string")
        panel = monthly = cadence = None
        fingerprint = _file_digest(list(files.values()), quality.to_dict(), description)
    else:
        panel = query(panel_query).astype(PANEL_COLUMNS)
        monthly = panel if period.kind == "month" else query(monthly_query).astype(PANEL_COLUMNS)
        cadence = query(cadence_query).astype(CADENCE_DTYPES)
        active, panel_rows = panel["customer_id"], len(panel)
        fingerprint = _fingerprint([panel, monthly, cadence], quality.to_dict(), description)
    modes = []
    for column in segment_columns:
        if customers is not None and column in customers.columns:
            continue
        counts = query(SEGMENT_COUNTS_SQL.format(source=used, column=column, end=end))
        modes.append(segment_modes(counts, column))
    return PanelExtract(
        panel=panel, panel_monthly=monthly, cadence=cadence, customers=customer_table(active, customers, modes),
        quality=quality, description=description, first_ordered_at=first, last_ordered_at=last,
        fingerprint=fingerprint, method="lines", files=files,
        count_customers=int(active.nunique()), count_panel_rows=panel_rows,
        tie_out=tie_out(query, rules, source, [period, comparison]),
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


def _cleaned_id(column: str) -> str:
    """SQL for the file source's customer-id clean-up: trimmed, empty and null tokens ('nan',
    'null', ...) -> missing, float-looking ids like '17850.0' -> '17850'."""
    tokens = ", ".join(f"'{t}'" for t in _NULL_TOKENS)
    return f"""CASE WHEN trim({column}) = '' THEN NULL
                WHEN length({column}) <= 12 AND lower(trim({column})) IN ({tokens}) THEN NULL
                WHEN contains({column}, '.')  -- the regex only where it can apply (it is slow)
                    THEN regexp_replace(trim({column}), '^(-?[0-9]+)\\.0*$', '\\1')
                ELSE trim({column}) END"""


# Customer ids are cleaned once per distinct raw value instead of once per row, and replaced by
# integer keys numbered in binary ("C") order of the cleaned id: grouping, sorting and holding
# integers costs a fraction of doing it on strings, and ordering by key is ordering by id. Each
# key also gets its partition: consecutive keys holding about {partition_rows} rows (see
# PARTITION_ROWS). Raw ids that clean to nothing get no key (their rows: 'missing customer id').
_IDS_SQL = """
CREATE OR REPLACE TEMP TABLE cx_raw_ids AS
SELECT raw_id, count_rows, count_irregular_order_ids, {cleaned} AS customer_id
FROM (SELECT customer_id AS raw_id, count(*) AS count_rows,
             count(*) FILTER (WHERE {irregular}) AS count_irregular_order_ids
      FROM read_parquet('{path}') GROUP BY 1) AS raw_ids;
CREATE OR REPLACE TEMP TABLE cx_names AS
WITH keyed AS (
    SELECT customer_id, sum(count_rows) AS count_rows,
           CAST(row_number() OVER (ORDER BY customer_id COLLATE "C") AS INTEGER) AS customer_key
    FROM cx_raw_ids WHERE customer_id IS NOT NULL GROUP BY customer_id
)
SELECT customer_key, customer_id,
       CAST((sum(count_rows) OVER (ORDER BY customer_key) - count_rows) // {partition_rows} AS INTEGER) AS part
FROM keyed;
CREATE OR REPLACE TEMP TABLE cx_ids AS
SELECT raw.raw_id, names.customer_key, names.part
FROM cx_raw_ids AS raw JOIN cx_names AS names ON raw.customer_id = names.customer_id;
"""

#: Customers are processed in partitions of consecutive keys holding about this many rows, so
#: the order table and the aggregations of one partition fit in DuckDB's memory without spilling
#: (spilling made the panels several times slower). A file with more rows is first split by
#: partition into temporary Parquet files (one pass); each partition's results are appended in
#: key order, so the outputs come out sorted.
PARTITION_ROWS = 2_000_000

# Order ids that need the file source's clean-up (missing, blank or padded), counted in the same
# scan as the ids. When there are none, the raw column is the order id and no per-row string work
# is done. trim() only where an end is not printable ASCII (trim removes Unicode spaces too).
_IRREGULAR_ORDER_ID = """(order_id IS NULL OR order_id = ''
   OR ((order_id[1] <= ' ' OR order_id[1] > '~' OR order_id[-1] <= ' ' OR order_id[-1] > '~')
       AND order_id <> trim(order_id)))"""

def _keyed_relation(path: Path, segment_columns: list[str], *, plain_order_ids: bool, duplicates: bool) -> str:
    """The normalised relation over a canonical Parquet file, with integer customer keys.

    Normalisation mirrors the file source: customer ids cleaned (see :data:`_IDS_SQL`), order
    ids trimmed with missing ones -> 'row-<n>', segments trimmed (empty -> missing), returns
    marked by the flag or by a negative quantity or amount with amounts made negative.
    ``customer_id`` is the integer key of :data:`_IDS_SQL`; ``is_duplicate`` reads the
    ``duplicate_rows`` table when ``duplicates`` (else it is false).
    """
    numbered = not (plain_order_ids and not duplicates)
    raw = f"read_parquet('{path.as_posix()}'{', file_row_number = true' if numbered else ''})"
    marked = "(lines.is_return OR lines.quantity < 0 OR lines.revenue < 0)"
    order_id = ("lines.order_id" if plain_order_ids else
                "COALESCE(NULLIF(trim(lines.order_id), ''), 'row-' || CAST(lines.file_row_number + 1 AS VARCHAR))")
    duplicate = ("lines.file_row_number IN (SELECT file_row_number FROM duplicate_rows)" if duplicates
                 else "false")
    segments = "".join(f",\n           NULLIF(trim(lines.{c}), '') AS {c}" for c in segment_columns)
    return f"""(
    SELECT {order_id} AS order_id,
           ids.customer_key AS customer_id,
           ids.part AS cx_part,
           CAST(lines.ordered_at AS TIMESTAMP) AS ordered_at,
           round(CASE WHEN {marked} THEN -abs(lines.revenue) ELSE lines.revenue END, 2) + 0.0 AS revenue,
           round(CASE WHEN {marked} THEN -abs(coalesce(lines.cost, 0)) ELSE coalesce(lines.cost, 0) END, 2)
               + 0.0 AS cost,
           round(coalesce(lines.cost_to_serve, 0), 2) + 0.0 AS cost_to_serve,
           CASE WHEN {marked} THEN -abs(lines.quantity) ELSE lines.quantity END + 0.0 AS quantity,
           coalesce({marked}, false) AS is_return,
           isnan(lines.revenue) AS isnan_revenue,
           {duplicate} AS is_duplicate{segments}
    FROM {raw} AS lines LEFT JOIN cx_ids AS ids ON lines.customer_id = ids.raw_id
) AS source_rows"""


def _duplicates_sql(path: Path, columns: list[str]) -> str:
    """Rows equal in every column to an earlier row: candidates by a 64-bit row hash, then exact."""
    raw = f"read_parquet('{path.as_posix()}', file_row_number = true)"
    listed = ", ".join(columns)
    return f"""
CREATE OR REPLACE TEMP TABLE duplicate_rows AS
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
#: folder. With results streamed to files (not held in pandas) it bounds the extract's peak RSS.
DUCKDB_MEMORY_LIMIT = "1GB"

#: Rows per batch when a result streams from DuckDB into a Parquet file.
STREAM_ROWS = 1 << 18


def _duckdb(spill_dir: str | None = None):
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")  # no ordering needed; less memory
    if spill_dir is not None:
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = '{spill_dir}'")
    return con


def _pandas_schema(dtypes: dict[str, str]):
    """The Arrow schema (with pandas metadata) that ``DataFrame.to_parquet`` writes for ``dtypes``."""
    import pyarrow as pa

    empty = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})
    return pa.Schema.from_pandas(empty, preserve_index=False)


def _with_names(keyed_sql: str, time_column: str) -> str:
    """A keyed result with the customer ids put back, ordered by customer (binary order) and time."""
    return f"""
SELECT names.customer_id, result.* EXCLUDE (customer_id)
FROM ({keyed_sql}) AS result JOIN cx_names AS names ON result.customer_id = names.customer_key
ORDER BY result.customer_id, result.{time_column}"""


def _no_usable_rows(period: Period, description: str, quality: Exclusions, first) -> InputError:
    return InputError(
        f"No usable transactions before the end of {period.label}.",
        where=description,
        fix=(f"Choose a later period; the data starts on {first:%Y-%m-%d}." if first is not None
             else "Check the source: it has no usable rows (see the exclusions: "
             + (", ".join(f"{r}: {v['rows']}" for r, v in sorted(quality.by_reason.items())) or "none") + ")."),
    )


def _file_digest(paths: list[Path], quality: dict, description: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(quality, sort_keys=True, default=str).encode())
    digest.update(description.encode())
    return digest.hexdigest()[:16]


class _DuplicatesFound(Exception):
    """Raised inside the partition loop when exact duplicate lines turn up after all."""


class _ParquetSinks:
    """One Parquet writer per output, appended partition by partition (in key order).

    Results come keyed (``customer_id`` holds the integer key, numbered 1..n); the writer puts
    the customer ids back by position in ``names``, which is cheaper than a join per query.
    """

    def __init__(self, con, files: dict[str, Path], dtypes: dict[str, dict[str, str]], names):
        import pyarrow.parquet as pq

        self.con = con
        self.names = names
        self.schemas = {name: _pandas_schema(dtypes[name]) for name in files}
        self.writers = {name: pq.ParquetWriter(files[name], self.schemas[name]) for name in files}
        self.rows = dict.fromkeys(files, 0)

    def append(self, name: str, keyed_sql: str, time_column: str) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        ordered = f"SELECT * FROM ({keyed_sql}) AS result ORDER BY customer_id, {time_column}"
        for batch in self.con.sql(ordered).to_arrow_reader(STREAM_ROWS):
            ids = self.names.take(pc.subtract(batch.column(0), 1))
            batch = pa.RecordBatch.from_arrays([ids, *batch.columns[1:]], names=batch.schema.names)
            self.writers[name].write_batch(batch.cast(self.schemas[name]))
            self.rows[name] += batch.num_rows

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _extract_keyed(con, path: Path, stage: Path, spill: Path, *, period: Period, comparison: Period,
                   segment_columns: list[str], customers: pd.DataFrame | None, rules: RowRules) -> PanelExtract:
    """The extract of a canonical Parquet file in DuckDB, its results streamed to ``stage``."""
    import pyarrow.parquet as pq

    description = str(path)
    end = _ts(period.end)
    end_ts = pd.Timestamp(period.end)
    instants = cadence_instants(period, comparison)
    file_columns = [field.name for field in pq.read_schema(path)]

    def query(sql: str) -> pd.DataFrame:
        return _arrow_to_pandas(con.sql(sql).to_arrow_table())

    def scalar(sql: str) -> int:
        return int(con.execute(sql).fetchall()[0][0])

    con.execute(_IDS_SQL.format(path=path.as_posix(), cleaned=_cleaned_id("raw_id"), partition_rows=PARTITION_ROWS,
                                irregular=_IRREGULAR_ORDER_ID))
    plain_order_ids = scalar("SELECT coalesce(sum(count_irregular_order_ids), 0) FROM cx_raw_ids") == 0
    con.execute("DROP TABLE cx_raw_ids")
    count_parts = scalar("SELECT coalesce(max(part), 0) + 1 FROM cx_names")
    names = con.sql("SELECT customer_id FROM cx_names ORDER BY customer_key").to_arrow_table().column(0).combine_chunks()

    relations: list[str] = []

    def account(duplicates: bool):
        relation = _keyed_relation(path, segment_columns, plain_order_ids=plain_order_ids, duplicates=duplicates)
        relations.append(relation)
        quality, used_rows, first, last = _quality(query(rules.quality_sql(relation, end)), None, rules)
        if used_rows == 0:
            raise _no_usable_rows(period, description, quality, first)
        return rules.used_sql(relation), quality, used_rows, first, last

    scans = []

    def has_duplicates() -> bool:
        scans.append(True)
        con.execute(_duplicates_sql(path, file_columns))
        return scalar("SELECT count(*) FROM duplicate_rows") > 0

    files = {name: stage / f"{name}.parquet" for name in ("panel", "panel_monthly", "cadence")}
    same_panels = period.kind == "month"

    def aggregate(used: str, used_rows: int, check_duplicates: bool) -> tuple[dict[str, int], set[str]]:
        """Panels and cadence, partition by partition; returns row counts and the methods used."""
        parts_dir = spill / "parts"
        shutil.rmtree(parts_dir, ignore_errors=True)
        if count_parts > 1:
            con.execute(f"""COPY (SELECT cx_part, customer_id, order_id, is_return, ordered_at, revenue, cost,
                                         cost_to_serve FROM {used} WHERE ordered_at < TIMESTAMP '{end}')
                            TO '{parts_dir.as_posix()}' (FORMAT parquet, PARTITION_BY (cx_part))""")
        outputs = {name: file for name, file in files.items() if not (same_panels and name == "panel_monthly")}
        sinks = _ParquetSinks(con, outputs, {"panel": PANEL_COLUMNS, "panel_monthly": PANEL_COLUMNS,
                                             "cadence": CADENCE_DTYPES}, names)
        con.execute("CREATE OR REPLACE TEMP TABLE cx_active (customer_key INTEGER)")
        methods = set()
        try:
            for part in range(count_parts):
                if count_parts == 1:
                    lines, count_lines = used, used_rows
                else:
                    part_dir = parts_dir / f"cx_part={part}"
                    if not part_dir.is_dir():
                        continue  # no usable row in this partition
                    lines = f"read_parquet('{part_dir.as_posix()}/*.parquet')"
                    count_lines = scalar(f"SELECT count(*) FROM {lines}")
                con.execute(f"CREATE OR REPLACE TEMP TABLE cx_orders AS {ORDERS_SQL.format(source=lines, end=end)}")
                # Exact duplicates are equal in every column, so two of them fall in one order
                # (customer, order id and return flag): while every order is one line, none exist.
                if check_duplicates and scalar("SELECT count(*) FROM cx_orders") != count_lines:
                    if has_duplicates():
                        raise _DuplicatesFound
                    check_duplicates = False
                if scalar("SELECT count(*) FROM cx_orders WHERE is_spanning") == 0:
                    # Whole orders per month: every panel comes from the order table.
                    methods.add("orders")
                    panel_query = panel_from_orders_sql("cx_orders", period.kind, period.fiscal_start_month,
                                                        order_by="")
                    monthly_query = panel_from_orders_sql("cx_orders", "month", 1, order_by="")
                    gaps_query = GAPS_FROM_ORDERS_SQL.format(orders="cx_orders")
                else:  # an order spans two months: the line-level queries are exact for any data
                    methods.add("lines")
                    panel_query = panel_sql(lines, period.kind, period.fiscal_start_month, end_ts, order_by="")
                    monthly_query = panel_sql(lines, "month", 1, end_ts, order_by="")
                    gaps_query = GAPS_SQL.format(source=lines, end=_ts(instants[-1]))
                sinks.append("panel", panel_query, "period_start")
                if not same_panels:
                    sinks.append("panel_monthly", monthly_query, "period_start")
                con.execute(f"CREATE OR REPLACE TEMP TABLE cx_gaps AS {gaps_query}")
                con.execute("INSERT INTO cx_active SELECT DISTINCT customer_id FROM cx_orders")
                con.execute("DROP TABLE cx_orders")
                # One instant at a time: a median holds every value of its group in memory and
                # cannot spill; per instant it holds one value per order, not per order and instant.
                con.execute("CREATE OR REPLACE TEMP TABLE cx_cadence (customer_id INTEGER, as_of TIMESTAMP, "
                            "median_gap_days DOUBLE, count_orders BIGINT)")
                for instant in instants:
                    con.execute(f"INSERT INTO cx_cadence {cadence_sql('cx_gaps', [instant], order_by='')}")
                con.execute("DROP TABLE cx_gaps")
                sinks.append("cadence", "SELECT * FROM cx_cadence", "as_of")
                shutil.rmtree(parts_dir / f"cx_part={part}", ignore_errors=True)
        finally:
            sinks.close()
            shutil.rmtree(parts_dir, ignore_errors=True)
        if same_panels:
            shutil.copyfile(files["panel"], files["panel_monthly"])
        return sinks.rows, methods

    used, quality, used_rows, first, last = account(duplicates=False)
    # The full duplicate scan (a hash of every column of every row) runs only where duplicates
    # can exist: rows without a plain order id, more than one row excluded as zero or after the
    # period (those are not in the orders), or an order of several lines (found in the loop).
    others = sum(quality.by_reason.get(reason, {}).get("rows", 0) for reason in ("zero amount", AFTER_PERIOD))
    check_in_loop = True
    if not plain_order_ids or others > 1:
        check_in_loop = False
        if has_duplicates():
            used, quality, used_rows, first, last = account(duplicates=True)
    try:
        rows, methods = aggregate(used, used_rows, check_duplicates=check_in_loop)
    except _DuplicatesFound:
        used, quality, used_rows, first, last = account(duplicates=True)
        rows, methods = aggregate(used, used_rows, check_duplicates=False)
    active = query("SELECT customer_id FROM cx_names WHERE customer_key IN (SELECT customer_key FROM cx_active) "
                   "ORDER BY customer_key")["customer_id"]
    modes = []
    for column in segment_columns:
        if customers is not None and column in customers.columns:
            continue
        counts = query(_with_names(SEGMENT_COUNTS_SQL.format(source=used, column=column, end=end), "segment_value"))
        modes.append(segment_modes(counts, column))
    return PanelExtract(
        panel=None, panel_monthly=None, cadence=None, customers=customer_table(active, customers, modes),
        quality=quality, description=description, first_ordered_at=first, last_ordered_at=last,
        fingerprint=_file_digest(list(files.values()), quality.to_dict(), description),
        method="lines" if "lines" in methods else "orders", files=files,
        count_customers=len(active), count_panel_rows=rows["panel"], scanned_duplicates=bool(scans),
        tie_out=tie_out(query, rules, relations[-1], [period, comparison]),
    )


def extract_parquet(
    path: str | Path,
    *,
    period: Period,
    comparison: Period,
    segment_columns: list[str],
    customers: pd.DataFrame | None,
    stage_dir: str | Path | None = None,
    rules: RowRules | None = None,
) -> PanelExtract:
    """The extract of a canonical Parquet file, aggregated in embedded DuckDB.

    The panel, monthly panel and cadence stream from DuckDB into Parquet files in ``stage_dir``
    (``PanelExtract.files``; the caller moves them into place), so the extract's memory is
    DuckDB's working memory (:data:`DUCKDB_MEMORY_LIMIT`) plus one batch. Without ``stage_dir``
    they are read back into the returned frames (tests, small data).
    """
    path = Path(path)
    present = [c for c in segment_columns if c in {f.name for f in _parquet_schema(path)}]
    spill = tempfile.TemporaryDirectory(prefix="cx-duckdb-")
    own_stage = tempfile.TemporaryDirectory(prefix="cx-extract-") if stage_dir is None else None
    stage = Path(own_stage.name if own_stage else stage_dir)
    con = _duckdb(spill.name)
    try:
        result = _extract_keyed(con, path, stage, Path(spill.name), period=period, comparison=comparison,
                                segment_columns=present, customers=customers, rules=rules or RowRules())
    finally:
        con.close()
        spill.cleanup()
    if own_stage is not None:
        try:
            frames = {name: pd.read_parquet(file) for name, file in result.files.items()}
        finally:
            own_stage.cleanup()
        result.panel, result.panel_monthly, result.cadence = frames["panel"], frames["panel_monthly"], frames["cadence"]
        result.files = {}
    return result


def _parquet_schema(path: Path):
    import pyarrow.parquet as pq

    return pq.read_schema(path)


def parquet_last_day(path: str | Path):
    """Last order date among usable rows of a canonical Parquet file (for the default period)."""
    con = _duckdb()
    try:
        value = con.execute(
            f"SELECT max(ordered_at) FROM read_parquet('{Path(path).as_posix()}') "
            "WHERE customer_id IS NOT NULL AND revenue IS NOT NULL"
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


def extract_pushdown(config, period: Period, comparison: Period, *, url: str | None = None,
                     stage_dir: str | Path | None = None) -> PanelExtract:
    """The extract for a pushdown source (see :func:`pushdown_kind`), nothing loaded into pandas.

    A Parquet file's panels are streamed into ``stage_dir`` when it is given (see
    :func:`extract_parquet`)."""
    kind = pushdown_kind(config)
    if kind == "sql":
        from cxpipeline.sources.sql import extract_sql

        return extract_sql(config.source, period, comparison, list(config.segments), url=url, stage_dir=stage_dir,
                           time_zone=config.report_timezone)
    if kind == "parquet":
        from cxpipeline.sources.files import read_customers

        source = config.source
        customers = read_customers(source, config.base_dir, config.report_timezone) if source.customers_path else None
        return extract_parquet(parquet_fast_path(source, config.base_dir), period=period, comparison=comparison,
                               segment_columns=[c for c in config.segments if c in source.segment_columns],
                               customers=customers, stage_dir=stage_dir, rules=RowRules.of(source))
    raise ValueError(f"source kind {config.source.kind!r} is not aggregated in an engine")


def pushdown_last_day(config, *, url: str | None = None):
    """Last order date of a pushdown source, read by the engine (for the default period)."""
    if pushdown_kind(config) == "sql":
        from cxpipeline.sources.sql import sql_last_day

        return sql_last_day(config.source, url=url)
    return parquet_last_day(parquet_fast_path(config.source, config.base_dir))
