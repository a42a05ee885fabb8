"""Canonical Parquet files aggregated in embedded DuckDB (the file source's fast path).

One module of ~500 lines on purpose: the keyed relation, the partitions and the streaming sinks
are the steps of one extract (:class:`ParquetExtract`).

A Parquet file with the canonical columns under their own names and types (as written by
``cxpipeline generate-demo`` or an upstream job) is never loaded into pandas: DuckDB reads it,
applies the file source's clean-up and exclusion rules in SQL (:class:`~cxpipeline.sources.
aggregate.RowRules`), and streams the panel, monthly panel and cadence into Parquet files
partition by partition, so memory stays bounded by DuckDB's working memory
(:data:`DUCKDB_MEMORY_LIMIT`) plus one batch. :class:`ParquetExtract` is one such extract.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from cxpipeline.panel import (
    GAPS_FROM_ORDERS_SQL,
    GAPS_SQL,
    ORDERS_SQL,
    cadence_sql,
    panel_from_orders_sql,
    panel_sql,
)
from cxpipeline.periods import Period, cadence_instants
from cxpipeline.schema import PANEL_COLUMNS
from cxpipeline.sources.aggregate import (
    AFTER_PERIOD,
    CADENCE_DTYPES,
    segment_counts_sql,
    PanelExtract,
    RowRules,
    customer_table,
    file_digest,
    no_usable_rows,
    pandas_arrow_schema,
    read_accounting,
    segment_modes,
    tie_out,
)
from cxpipeline.sources.formats import NULL_TOKENS

__all__ = [
    "DUCKDB_MEMORY_LIMIT",
    "PARTITION_ROWS",
    "ParquetExtract",
    "parquet_fast_path",
    "extract_parquet",
    "parquet_last_day",
]


def _ts(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


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


def parquet_fast_path(source, base_dir: str | Path = ".") -> Path | None:
    """The Parquet path when a file source can be aggregated directly in DuckDB, else None.

    It can when the file is Parquet with the canonical columns under their own names and types
    (as written by ``cxpipeline generate-demo`` or an upstream job) and the source asks for no
    conversion that only the pandas reader does (currency filter, cancellation prefix, date
    format, time zone other than UTC, renamed segment columns, rows excluded by value, customers
    filled from their order).
    """
    import pyarrow.parquet as pq

    if getattr(source, "kind", None) != "file":
        return None
    path = Path(source.path).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    is_parquet = source.format == "parquet" or (source.format is None and path.suffix.lower() in (".parquet", ".pq"))
    mapping = source.columns.model_dump()
    identity = (all(mapping.get(name) == name for name in _CANONICAL_TYPES) and mapping.get("unit_price") is None
                and mapping.get("profit") is None)
    plain = (source.cancellation_prefix is None and source.currency is None and mapping.get("currency") is None
             and source.date_format is None and source.timezone == "UTC" and not source.exclude_rows
             and not source.fill_customer_from_order
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
    tokens = ", ".join(f"'{t}'" for t in NULL_TOKENS)
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
#: (spilling made the panels several times slower). A file with more rows is first read once into
#: a temporary table of used lines tagged with their partition; each partition's results are
#: appended in key order, so the outputs come out sorted.
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


def _with_names(keyed_sql: str, time_column: str) -> str:
    """A keyed result with the customer ids put back, ordered by customer (binary order) and time."""
    return f"""
SELECT names.customer_id, result.* EXCLUDE (customer_id)
FROM ({keyed_sql}) AS result JOIN cx_names AS names ON result.customer_id = names.customer_key
ORDER BY result.customer_id, result.{time_column}"""


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
        self.schemas = {name: pandas_arrow_schema(dtypes[name]) for name in files}
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


class ParquetExtract:
    """The extract of one canonical Parquet file for one period, in one DuckDB connection.

    Steps (:meth:`run`): key the customer ids (:data:`_IDS_SQL`), account for every row, scan
    for exact duplicates only where they can exist, then aggregate partition by partition into
    the staged Parquet files, and finally the customer table and the tie-out.
    """

    def __init__(self, con, path: Path, stage: Path, spill: Path, *, period: Period, comparison: Period,
                 segment_columns: list[str], customers: pd.DataFrame | None, rules: RowRules,
                 instants: list | None = None):
        import pyarrow.parquet as pq

        self.con, self.path, self.spill = con, path, spill
        self.period, self.comparison = period, comparison
        self.segment_columns, self.customers, self.rules = segment_columns, customers, rules
        self.description = str(path)
        self.end = _ts(period.end)
        self.instants = instants or cadence_instants(period, comparison)
        self.file_columns = [field.name for field in pq.read_schema(path)]
        self.files = {name: stage / f"{name}.parquet" for name in ("panel", "panel_monthly", "cadence")}
        self.same_panels = period.kind == "month"
        self.relation = ""  # the keyed relation of the last accounting (see account)
        self.scanned_duplicates = False

    def query(self, sql: str) -> pd.DataFrame:
        return _arrow_to_pandas(self.con.sql(sql).to_arrow_table())

    def scalar(self, sql: str) -> int:
        return int(self.con.execute(sql).fetchall()[0][0])

    def key_customers(self) -> None:
        self.con.execute(_IDS_SQL.format(path=self.path.as_posix(), cleaned=_cleaned_id("raw_id"),
                                         partition_rows=PARTITION_ROWS, irregular=_IRREGULAR_ORDER_ID))
        self.plain_order_ids = self.scalar("SELECT coalesce(sum(count_irregular_order_ids), 0) FROM cx_raw_ids") == 0
        self.con.execute("DROP TABLE cx_raw_ids")
        self.count_parts = self.scalar("SELECT coalesce(max(part), 0) + 1 FROM cx_names")
        self.names = (self.con.sql("SELECT customer_id FROM cx_names ORDER BY customer_key")
                      .to_arrow_table().column(0).combine_chunks())

    def account(self, duplicates: bool):
        """(used relation, Exclusions, used rows, first and last order date) for the file."""
        self.relation = _keyed_relation(self.path, self.segment_columns, plain_order_ids=self.plain_order_ids,
                                        duplicates=duplicates)
        quality, used_rows, first, last = read_accounting(
            self.query(self.rules.quality_sql(self.relation, self.end)), None, self.rules)
        if used_rows == 0:
            raise no_usable_rows(self.period, self.description, quality, first)
        return self.rules.used_sql(self.relation), quality, used_rows, first, last

    def has_duplicates(self) -> bool:
        self.scanned_duplicates = True
        self.con.execute(_duplicates_sql(self.path, self.file_columns))
        return self.scalar("SELECT count(*) FROM duplicate_rows") > 0

    def aggregate(self, used: str, used_rows: int, check_duplicates: bool) -> tuple[dict[str, int], set[str]]:
        """Panels and cadence, partition by partition; returns row counts and the methods used."""
        con, end, period = self.con, self.end, self.period
        end_ts = pd.Timestamp(period.end)
        if self.count_parts > 1:
            # One pass over the file into a DuckDB temporary table (spilled to the temporary
            # folder beyond DUCKDB_MEMORY_LIMIT); each partition then reads its rows from it. At
            # 10M / 30M lines this took 2.8 s / 9.2 s against 5.1 s / 14.5 s for writing one Parquet
            # file per partition, and the order tables built from it no longer (docs/benchmarks.md).
            con.execute(f"""CREATE OR REPLACE TEMP TABLE cx_lines AS
                            SELECT cx_part, customer_id, order_id, is_return, ordered_at, revenue, cost,
                                   cost_to_serve FROM {used} WHERE ordered_at < TIMESTAMP '{end}'""")
        outputs = {name: file for name, file in self.files.items()
                   if not (self.same_panels and name == "panel_monthly")}
        sinks = _ParquetSinks(con, outputs, {"panel": PANEL_COLUMNS, "panel_monthly": PANEL_COLUMNS,
                                             "cadence": CADENCE_DTYPES}, self.names)
        con.execute("CREATE OR REPLACE TEMP TABLE cx_active (customer_key INTEGER)")
        methods = set()
        try:
            for part in range(self.count_parts):
                if self.count_parts == 1:
                    lines, count_lines = used, used_rows
                else:
                    lines = f"(SELECT * FROM cx_lines WHERE cx_part = {part}) AS part_lines"
                    count_lines = self.scalar(f"SELECT count(*) FROM {lines}")
                    if count_lines == 0:
                        continue  # no usable row in this partition
                con.execute(f"CREATE OR REPLACE TEMP TABLE cx_orders AS {ORDERS_SQL.format(source=lines, end=end)}")
                # Exact duplicates are equal in every column, so two of them fall in one order
                # (customer, order id and return flag): while every order is one line, none exist.
                if check_duplicates and self.scalar("SELECT count(*) FROM cx_orders") != count_lines:
                    if self.has_duplicates():
                        raise _DuplicatesFound
                    check_duplicates = False
                if self.scalar("SELECT count(*) FROM cx_orders WHERE is_spanning") == 0:
                    # Whole orders per month: every panel comes from the order table.
                    methods.add("orders")
                    # A week is not month-aligned: the order table's month cannot place an order
                    # in its ISO week, so a weekly panel is summed from the lines.
                    panel_query = (panel_sql(lines, "week", 1, end_ts, order_by="") if period.kind == "week" else
                                   panel_from_orders_sql("cx_orders", period.kind, period.fiscal_start_month,
                                                         order_by=""))
                    monthly_query = panel_from_orders_sql("cx_orders", "month", 1, order_by="")
                    gaps_query = GAPS_FROM_ORDERS_SQL.format(orders="cx_orders")
                else:  # an order spans two months: the line-level queries are exact for any data
                    methods.add("lines")
                    panel_query = panel_sql(lines, period.kind, period.fiscal_start_month, end_ts, order_by="")
                    monthly_query = panel_sql(lines, "month", 1, end_ts, order_by="")
                    gaps_query = GAPS_SQL.format(source=lines, end=_ts(self.instants[-1]))
                sinks.append("panel", panel_query, "period_start")
                if not self.same_panels:
                    sinks.append("panel_monthly", monthly_query, "period_start")
                con.execute(f"CREATE OR REPLACE TEMP TABLE cx_gaps AS {gaps_query}")
                con.execute("INSERT INTO cx_active SELECT DISTINCT customer_id FROM cx_orders")
                con.execute("DROP TABLE cx_orders")
                # One instant at a time: a median holds every value of its group in memory and
                # cannot spill; per instant it holds one value per order, not per order and instant.
                con.execute("CREATE OR REPLACE TEMP TABLE cx_cadence (customer_id INTEGER, as_of TIMESTAMP, "
                            "median_gap_days DOUBLE, count_orders BIGINT)")
                for instant in self.instants:
                    con.execute(f"INSERT INTO cx_cadence {cadence_sql('cx_gaps', [instant], order_by='')}")
                con.execute("DROP TABLE cx_gaps")
                sinks.append("cadence", "SELECT * FROM cx_cadence", "as_of")
        finally:
            sinks.close()
            con.execute("DROP TABLE IF EXISTS cx_lines")
        if self.same_panels:
            shutil.copyfile(self.files["panel"], self.files["panel_monthly"])
        return sinks.rows, methods

    def run(self) -> PanelExtract:
        self.key_customers()
        used, quality, used_rows, first, last = self.account(duplicates=False)
        # The full duplicate scan (a hash of every column of every row) runs only where duplicates
        # can exist: rows without a plain order id, more than one row excluded as zero or after
        # the period (those are not in the orders), or an order of several lines (found in the loop).
        others = sum(quality.by_reason.get(reason, {}).get("rows", 0) for reason in ("zero amount", AFTER_PERIOD))
        check_in_loop = True
        if not self.plain_order_ids or others > 1:
            check_in_loop = False
            if self.has_duplicates():
                used, quality, used_rows, first, last = self.account(duplicates=True)
        try:
            rows, methods = self.aggregate(used, used_rows, check_duplicates=check_in_loop)
        except _DuplicatesFound:
            used, quality, used_rows, first, last = self.account(duplicates=True)
            rows, methods = self.aggregate(used, used_rows, check_duplicates=False)
        active = self.query("SELECT customer_id FROM cx_names WHERE customer_key IN "
                            "(SELECT customer_key FROM cx_active) ORDER BY customer_key")["customer_id"]
        modes = []
        for column in self.segment_columns:
            if self.customers is not None and column in self.customers.columns:
                continue
            counts = self.query(_with_names(segment_counts_sql(used, column, self.end),
                                            "segment_value"))
            modes.append(segment_modes(counts, column))
        return PanelExtract(
            panel=None, panel_monthly=None, cadence=None, customers=customer_table(active, self.customers, modes),
            quality=quality, description=self.description, first_ordered_at=first, last_ordered_at=last,
            fingerprint=file_digest(list(self.files.values()), quality.to_dict(), self.description),
            method="lines" if "lines" in methods else "orders", files=self.files,
            count_customers=len(active), count_panel_rows=rows["panel"], scanned_duplicates=self.scanned_duplicates,
            tie_out=tie_out(self.query, self.rules, self.relation, [self.period, self.comparison]),
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
    instants: list | None = None,
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
        result = ParquetExtract(con, path, stage, Path(spill.name), period=period, comparison=comparison,
                                segment_columns=present, customers=customers, rules=rules or RowRules(),
                                instants=instants).run()
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
