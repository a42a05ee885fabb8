"""The extract computed by the engine that holds the rows, in one engine-agnostic SQL.

For a warehouse (SQL source, :mod:`cxpipeline.sources.sql`) and for large canonical Parquet
files (:mod:`cxpipeline.sources.parquet`), transactions never enter pandas. The same SQL
(:data:`cxpipeline.panel.PANEL_SQL`, :data:`cxpipeline.panel.CADENCE_SQL` and the accounting
queries below) runs where the rows are, and only these results come back:

* the exclusion accounting (rows and revenue in cents per reason, first and last order date),
  overall and for the reported period and its comparison (the tie-out);
* the panel for the reporting period type and the monthly panel;
* the purchase cadence at :func:`cxpipeline.periods.cadence_instants`;
* per-customer value counts of segment columns that live on the transactions.

Every exclusion is computed in SQL, in the order the file source applies them (:class:`RowRules`),
so ``revenue_in == revenue_used + revenue_excluded`` holds to the cent exactly as for other
sources. The engine is reached through a ``query(sql) -> DataFrame`` callable, so this module
does not care whether rows arrive from DuckDB or stream from a server-side cursor.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from cxpipeline.errors import InputError
from cxpipeline.panel import CADENCE_ORDER, CADENCE_SQL, instants_sql, panel_sql
from cxpipeline.periods import Period, cadence_instants
from cxpipeline.quality import Exclusions, tie_out_row
from cxpipeline.schema import PANEL_COLUMNS

__all__ = [
    "AFTER_PERIOD",
    "REASON_TOTAL_ROW",
    "REASON_CONFIG_PREFIX",
    "CADENCE_DTYPES",
    "PanelExtract",
    "QUALITY_SQL",
    "USED_SQL",
    "SEGMENT_COUNTS_SQL",
    "quoted",
    "segment_counts_sql",
    "QueryFn",
    "StreamFn",
    "RowRules",
    "extract_aggregates",
    "extract_statements",
    "tie_out",
    "customer_table",
    "segment_modes",
    "read_accounting",
    "no_usable_rows",
    "file_digest",
    "pandas_arrow_schema",
    "stage_each",
    "write_arrow_stream",
]

AFTER_PERIOD = "after the reporting period"
#: A report's total row in a file (cxpipeline/sources/files.py::total_rows): no sale, so, like
#: rows after the period, not a bad row (validation.py leaves both out of the excluded share).
REASON_TOTAL_ROW = "total row (the sum of the rows above it)"
#: Rows the config marks as no sales (``source.exclude_rows``): "excluded by the config: Status = Failed".
#: Like total rows, they are left out by design and do not count as bad rows.
REASON_CONFIG_PREFIX = "excluded by the config: "

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
        rows = query(rules.quality_sql(_bounded(relation, period), _ts(period.end)))
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


def quoted(name: str) -> str:
    """``name`` as an SQL identifier in the source dialect (double quotes, doubled inside), so
    a segment column such as "Sales Region" is one column; dialects.render turns it into each
    engine's quoting."""
    return '"' + name.replace('"', '""') + '"'


def segment_counts_sql(source: str, column: str, end) -> str:
    """Rows per customer and value of the segment ``column`` before ``end``."""
    return SEGMENT_COUNTS_SQL.format(source=source, column=quoted(column), end=end)


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


def read_accounting(rows: pd.DataFrame, base: Exclusions | None,
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


def extract_statements(source: str, period: Period, comparison: Period, rules: RowRules | None = None,
                       segment_columns: tuple[str, ...] = (), instants: list | None = None) -> dict[str, str]:
    """Every statement :func:`extract_aggregates` sends for ``source``, by name (in the source dialect).

    What :func:`cxpipeline.sources.dialects.render` turns into each engine's dialect; the tests
    render and parse them for every engine.
    """
    rules = rules or RowRules()
    end = _ts(period.end)
    used = rules.used_sql(source)
    end_ts = pd.Timestamp(period.end)
    instants = instants or cadence_instants(period, comparison)
    statements = {
        "accounting": rules.quality_sql(source, end),
        "panel": panel_sql(used, period.kind, period.fiscal_start_month, end_ts),
        "panel_monthly": panel_sql(used, "month", 1, end_ts),
        "cadence": CADENCE_SQL.format(source=used, end=_ts(instants[-1]), order_by=CADENCE_ORDER,
                                      instants=instants_sql(instants)),
    }
    for column in segment_columns:
        statements[f"segment {column}"] = segment_counts_sql(used, column, end)
    for tied in (period, comparison):
        statements[f"tie-out {tied.label}"] = rules.quality_sql(_bounded(source, tied), _ts(tied.end))
    return statements


def _bounded(relation: str, period: Period) -> str:
    return (f"(SELECT * FROM {relation} WHERE ordered_at >= TIMESTAMP '{_ts(period.start)}' "
            f"AND ordered_at < TIMESTAMP '{_ts(period.end)}') AS tie_rows")


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
    instants: list | None = None,
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
    instants
        Where to measure the cadence (:func:`cxpipeline.periods.cadence_instants`); default:
        the boundaries of the period and its comparison.

    Raises
    ------
    InputError
        When no row is usable before the end of the period.
    """
    end = _ts(period.end)
    rules = rules or RowRules()
    statements = extract_statements(source, period, comparison, rules, instants=instants)
    quality, used_rows, first, last = read_accounting(query(statements["accounting"]), None, rules)
    if used_rows == 0:
        raise no_usable_rows(period, description, quality, first)
    used = rules.used_sql(source)
    panel_query, monthly_query, cadence_query = (statements[k] for k in ("panel", "panel_monthly", "cadence"))
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
        fingerprint = file_digest(list(files.values()), quality.to_dict(), description)
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
        counts = query(segment_counts_sql(used, column, end))
        modes.append(segment_modes(counts, column))
    return PanelExtract(
        panel=panel, panel_monthly=monthly, cadence=cadence, customers=customer_table(active, customers, modes),
        quality=quality, description=description, first_ordered_at=first, last_ordered_at=last,
        fingerprint=fingerprint, method="lines", files=files,
        count_customers=int(active.nunique()), count_panel_rows=panel_rows,
        tie_out=tie_out(query, rules, source, [period, comparison]),
    )



def pandas_arrow_schema(dtypes: dict[str, str]):
    """The Arrow schema (with pandas metadata) that ``DataFrame.to_parquet`` writes for ``dtypes``."""
    import pyarrow as pa

    empty = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})
    return pa.Schema.from_pandas(empty, preserve_index=False)


def stage_each(jobs: list[tuple[str, str, dict]], stage_dir: str | Path,
               write: Callable[[str, Path, dict[str, str]], int]) -> dict[str, tuple[Path, int]]:
    """A :data:`StreamFn` for engines that run the result queries one after another: each job's
    result is written by ``write(sql, target, dtypes)`` (which returns its rows) to
    ``<stage_dir>/<name>.parquet``."""
    written = {}
    for sql, name, dtypes in jobs:
        target = Path(stage_dir) / f"{name}.parquet"
        written[name] = (target, write(sql, target, dtypes))
    return written


def write_arrow_stream(chunks, target: Path, dtypes: dict[str, str]) -> int:
    """Write Arrow record batches or tables, as a driver streams them, to one Parquet file with
    the schema ``DataFrame.to_parquet`` writes for ``dtypes``; one chunk is held at a time.

    Each column is cast to its artifact type (a warehouse's ``large_string``, ``decimal`` or
    ``int32`` becomes what the pandas path writes). Returns the number of rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pandas_arrow_schema(dtypes)
    rows = 0
    with pq.ParquetWriter(target, schema) as writer:
        for chunk in chunks:
            batches = chunk.to_batches(max_chunksize=1 << 18) if isinstance(chunk, pa.Table) else [chunk]
            for batch in batches:
                columns = [batch.column(field.name).cast(field.type) for field in schema]
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                rows += batch.num_rows
    return rows


def no_usable_rows(period: Period, description: str, quality: Exclusions, first) -> InputError:
    return InputError(
        f"No usable transactions before the end of {period.label}.",
        where=description,
        fix=(f"Choose a later period; the data starts on {first:%Y-%m-%d}." if first is not None
             else "Check the source: it has no usable rows (see the exclusions: "
             + (", ".join(f"{r}: {v['rows']}" for r, v in sorted(quality.by_reason.items())) or "none") + ")."),
    )


def file_digest(paths: list[Path], quality: dict, description: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(quality, sort_keys=True, default=str).encode())
    digest.update(description.encode())
    return digest.hexdigest()[:16]
