"""SQL source: a warehouse table (PostgreSQL tested; Snowflake, BigQuery and DuckDB files through
their ADBC drivers in :mod:`cxpipeline.sources.adbc`; Trino through SQLAlchemy).

One module of ~550 lines on purpose: the connection, the shared snapshot and the three ways
results come back (ADBC Arrow, COPY, cursor chunks) are one consistency story.

The heavy step runs in the database: :func:`extract_sql` sends the panel, cadence and accounting
queries of :mod:`cxpipeline.sources.aggregate` to the server and streams back only their results, never
the transactions. The read is one consistent snapshot: a single ``REPEATABLE READ``, read-only
transaction for every query (and, if ``source.as_of`` is set, only rows ordered before it), so a
load running at the same time cannot make the panel disagree with the accounting. Results are
streamed with a server-side cursor in chunks of :data:`CHUNK_ROWS` rows.

A dropped connection or a failing query raises :class:`~cxpipeline.errors.InputError` (what /
where / fix). Nothing is written by this module; the pipeline writes artifacts only after every
query has been read, so a failure leaves no partial artifacts.

The table holds canonical columns (see ``docs/warehouse.md``): ``order_id, customer_id,
ordered_at, revenue, cost, cost_to_serve, quantity, is_return`` and optional segment columns.
Another layout (orders + order lines, other names) is mapped with a view.

Where the URL comes from: ``source.url`` (``${ENV}`` references are expanded), or the
environment variable named by ``source.url_env``, or -- for ``source.conn_id`` -- the URL the
Airflow DAG resolved from the connection and passed as ``url=`` (this module never imports
Airflow).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from cxpipeline.config import SqlSource
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import Period
from cxpipeline.quality import Exclusions
from cxpipeline.schema import validate_transactions
from cxpipeline.sources.aggregate import PanelExtract, RowRules, extract_aggregates, stage_each, write_arrow_stream
from cxpipeline.sources.adbc import adbc_driver, adbc_session, local_database
from cxpipeline.sources.base import SourceData, expand_env
from cxpipeline.sources.warehouse import canonical_relation, customer_frame, describe, redact, warehouse_error
from cxpipeline.sources.dialects import ENGINES, render

__all__ = [
    "CHUNK_ROWS",
    "SQLALCHEMY_ENGINES",
    "WORK_MEM",
    "RESULT_SETTINGS",
    "resolve_url",
    "with_url",
    "sqlalchemy_url",
    "canonical_relation",
    "customer_frame",
    "redact",
    "snapshot",
    "iter_query_chunks",
    "extract_sql",
    "sql_last_day",
    "load_sql_source",
]

#: Rows fetched per round trip from the server-side cursor.
CHUNK_ROWS = 50_000

#: PostgreSQL memory per sort/hash for this read only (SET LOCAL): the default 4 MB makes the
#: panel's group-bys spill to disk and sort with the database collation instead of hashing.
WORK_MEM = "256MB"

#: Planner settings for the result queries only (SET LOCAL). PostgreSQL estimates a few
#: thousand customer-period groups where there are millions, so it picks hash aggregation, whose
#: table then spills to disk in dozens of batches (17 s of 36 s for the monthly panel at 10M
#: lines). Grouping on sorted input streams instead, and its order is the output order. The
#: three result queries already run at once, one backend each, so parallel workers per query
#: only add processes fighting for the same cores (10M lines on 2 cores: 78 s -> 58 s without
#: them). On a warehouse with many more cores than three, drop the second setting.
RESULT_SETTINGS = ("SET LOCAL enable_hashagg = off", "SET LOCAL max_parallel_workers_per_gather = 0")



def resolve_url(source: SqlSource, url: str | None = None, base_dir: str | Path = ".") -> str:
    """The database URL for ``source``: ``url`` if given (e.g. resolved by Airflow), else the config.

    A DuckDB database file given by a relative path is found in ``base_dir`` (the config file's
    folder), as every relative path in a config is.

    Raises
    ------
    ConfigError
        An environment variable is missing, or only ``conn_id`` is set outside Airflow.
    """
    if url:
        return local_database(sqlalchemy_url(url), base_dir)
    if source.url:
        return local_database(sqlalchemy_url(expand_env(source.url, "source.url")), base_dir)
    if source.url_env:
        value = os.environ.get(source.url_env)
        if not value:
            raise ConfigError(f"The environment variable {source.url_env} (source.url_env) is not set.",
                              where="source.url_env",
                              fix=f"Export {source.url_env}=postgresql://USER@HOST:PORT/DATABASE.")
        return local_database(sqlalchemy_url(value), base_dir)
    raise ConfigError(
        f"source.conn_id {source.conn_id!r} is an Airflow connection and no URL was passed.",
        where="source.conn_id",
        fix="Run the pack from the Airflow DAG (it resolves the connection), or set source.url / url_env.",
    )


def with_url(config, url: str):
    """The config with its SQL source pointed at ``url`` (how the DAG applies an Airflow connection).

    Example (in a task)::

        uri = BaseHook.get_connection(config.source.conn_id).get_uri()
        config = with_url(config, uri)
    """
    return config.model_copy(update={"source": config.source.model_copy(update={"url": url})})


def sqlalchemy_url(url: str) -> str:
    """PostgreSQL URLs without a driver use psycopg 3 (``postgres://`` as Airflow writes it, too)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    try:
        return create_engine(url, poolclass=NullPool)
    except Exception as exc:  # unknown dialect / malformed URL
        raise InputError(f"Cannot use the database URL: {exc}", where=redact(url),
                         fix="Write a SQLAlchemy URL such as postgresql://USER@HOST:5432/DATABASE.") from None


def _database_error(exc: Exception, url: str, what: str) -> InputError:
    from sqlalchemy import exc as sa_exc

    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    lost = (isinstance(exc, sa_exc.OperationalError) or getattr(exc, "connection_invalidated", False)
            or type(orig).__name__ == "OperationalError")  # psycopg's own, raised by COPY
    return warehouse_error(message, url, what, lost=lost)


@contextmanager
def snapshot(url: str, what: str = "reading the warehouse", *, snapshot_id: str | None = None,
             settings: tuple[str, ...] = (), time_zone: str = "UTC"):
    """A connection inside one ``REPEATABLE READ`` read-only transaction (a consistent snapshot).

    ``snapshot_id`` (PostgreSQL): join the snapshot another open transaction exported with
    ``pg_export_snapshot()``, so both see exactly the same rows. ``settings``: ``SET LOCAL``
    statements for this transaction only. ``time_zone``: the reporting zone (an IANA name,
    validated by the config); a ``timestamptz`` column is read as wall-clock time in it, so
    periods start at that zone's midnights. Database errors inside the block become
    :class:`InputError`.
    """
    from sqlalchemy import exc as sa_exc

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            is_postgres = conn.dialect.name == "postgresql"
            conn = conn.execution_options(isolation_level="REPEATABLE READ") if is_postgres else conn
            with conn.begin():
                if is_postgres and snapshot_id:  # must be the transaction's first statement
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{_snapshot_token(snapshot_id)}'")
                if is_postgres:
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    for statement in settings:
                        conn.exec_driver_sql(statement)
                    zone = time_zone.replace("'", "")
                    conn.exec_driver_sql(f"SET LOCAL TIME ZONE '{zone}'")  # timestamptz -> local periods
                    conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
                yield conn
    except sa_exc.DBAPIError as exc:
        raise _database_error(exc, url, what) from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "psycopg":  # COPY talks to psycopg directly
            raise
        raise _database_error(exc, url, what) from None
    finally:
        engine.dispose()


def _snapshot_token(snapshot_id: str) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)*", snapshot_id):
        raise ValueError(f"not a PostgreSQL snapshot id: {snapshot_id!r}")
    return snapshot_id


def _copy_in_shared_snapshot(url: str, snapshot_id: str, jobs: list[tuple[str, str, dict]],
                             stage_dir: Path, what: str, time_zone: str = "UTC") -> dict[str, tuple[Path, int]]:
    """Run the result queries at the same time, one connection each, all in one snapshot.

    PostgreSQL runs each query in a single backend (no parallel plan for these nested
    group-bys), so the panel, monthly panel and cadence one after another leave all but one
    core idle. Each connection joins the reading transaction's exported snapshot
    (``SET TRANSACTION SNAPSHOT``): the results are exactly those of one transaction. If one
    query fails, the others are cancelled and the first error is raised.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    connections: list = []
    arrow_native = _has_adbc()

    def run(job: tuple[str, str, dict]) -> tuple[str, tuple[Path, int]]:
        sql, name, dtypes = job
        path = Path(stage_dir) / f"{name}.parquet"
        if arrow_native:
            return name, (path, _adbc_to_parquet(url, snapshot_id, sql, path, dtypes, what, time_zone, connections))
        with snapshot(url, what, snapshot_id=snapshot_id, settings=RESULT_SETTINGS, time_zone=time_zone) as conn:
            connections.append(conn.connection.driver_connection)
            return name, (path, _copy_to_parquet(conn, sql, path, dtypes))

    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="cx-copy") as pool:
        futures = [pool.submit(run, job) for job in jobs]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed and pending:
            for driver_connection in list(connections):
                try:
                    cancel = getattr(driver_connection, "cancel_safe", None) or driver_connection.cancel
                    cancel()
                except Exception:  # already closed or finished: nothing to cancel
                    pass
        wait(pending)
    if failed:
        raise failed[0].exception()
    return dict(f.result() for f in futures)


def _has_adbc() -> bool:
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


def _libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq takes it (no ``+driver``)."""
    return re.sub(r"^postgresql\+[a-z0-9_]+://", "postgresql://", url)


def _adbc_to_parquet(url: str, snapshot_id: str, sql: str, target: Path, dtypes: dict[str, str], what: str,
                     time_zone: str, connections: list) -> int:
    """Stream one result into Parquet as Arrow batches (ADBC: PostgreSQL's binary COPY under the hood).

    The transaction is the same as :func:`snapshot`'s: ``REPEATABLE READ``, read only, joined to the
    exported snapshot as its first statement, with :data:`RESULT_SETTINGS`, the zone and
    :data:`WORK_MEM`. No row becomes a Python object: batches go from the driver to the file.
    """
    import adbc_driver_postgresql.dbapi as adbc

    try:
        with adbc.connect(_libpq_url(url), autocommit=True) as conn:
            connections.append(conn.adbc_connection)
            with conn.cursor() as cursor:
                cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{_snapshot_token(snapshot_id)}'")
                for statement in (*RESULT_SETTINGS, f"SET LOCAL TIME ZONE '{time_zone.replace(chr(39), '')}'",
                                  f"SET LOCAL work_mem = '{WORK_MEM}'"):
                    cursor.execute(statement)
                cursor.execute(sql)
                rows = write_arrow_stream(cursor.fetch_record_batch(), target, dtypes)
                cursor.execute("COMMIT")
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("adbc_driver_manager", "adbc_driver_postgresql"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        lost = any(word in message.lower() for word in ("connection", "terminat", "server closed", "canceling",
                                                        "could not"))
        raise InputError(
            f"The {'connection to the warehouse failed' if lost else 'warehouse query failed'} while {what}: "
            f"{message}",
            where=redact(url),
            fix="Check that the database is running and reachable, then rerun the extract. Nothing was written: "
                "artifacts are only written after the whole read succeeds.",
        ) from None
    return rows


def iter_query_chunks(conn, sql: str, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """Stream a query's rows from a server-side cursor as DataFrames of ``chunk_rows`` rows."""
    size = int(chunk_rows or CHUNK_ROWS)
    result = conn.execution_options(stream_results=True, max_row_buffer=size).exec_driver_sql(sql)
    columns = list(result.keys())
    empty = True
    for rows in result.partitions(size):
        empty = False
        yield pd.DataFrame(dict(zip(columns, map(list, zip(*rows)))), columns=columns)
    if empty:
        yield pd.DataFrame({c: [] for c in columns}, columns=columns)


def _read(conn, sql: str) -> pd.DataFrame:
    chunks = list(iter_query_chunks(conn, sql))
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _table_name(conn, source: SqlSource, table: str) -> str:
    preparer = conn.dialect.identifier_preparer
    parts = ([source.schema_name] if source.schema_name else []) + table.split(".")
    return ".".join(preparer.quote(part) for part in parts)


def _columns(conn, name: str) -> list[str]:
    result = conn.exec_driver_sql(f"SELECT * FROM {name} WHERE 1 = 0")
    columns = list(result.keys())
    result.close()
    return columns


def _base_relation(conn, source: SqlSource, url: str, segments: list[str]) -> tuple[str, list[str]]:
    table = _table_name(conn, source, source.transactions_table)
    columns = _columns(conn, table)
    # Binary collation on the id in PostgreSQL: the results are ordered by customer_id COLLATE "C",
    # so groupings sorted in that collation stream straight into the output order (no final sort).
    collate = ' COLLATE "C"' if conn.dialect.name == "postgresql" else ""
    return canonical_relation(table, columns, segments, as_of=source.as_of, collate=collate,
                              where=f"{redact(url)}, table {table}")


#: SQLAlchemy dialect name -> the engine the statements are rendered for (dialects.render).
#: Snowflake, BigQuery and DuckDB URLs never get here: their ADBC drivers read them (sources/adbc.py).
SQLALCHEMY_ENGINES = {"postgresql": "postgres", "trino": "trino", "databricks": "databricks"}


def _engine_of(conn, url: str) -> str:
    """The dialect the extract statements are rendered in for this connection."""
    engine = SQLALCHEMY_ENGINES.get(conn.dialect.name)
    if engine not in ENGINES:
        raise InputError(f"The warehouse dialect {conn.dialect.name!r} has no rendering of the extract SQL.",
                         where=redact(url),
                         fix=f"Use one of: {', '.join(sorted(SQLALCHEMY_ENGINES))} (docs/warehouse.md, engines).")
    return engine


def _is_psycopg(conn) -> bool:
    """psycopg 3 underneath: COPY and exported snapshots are available."""
    return type(conn.connection.driver_connection).__module__.split(".")[0] == "psycopg"


#: PostgreSQL type OIDs read back from COPY's CSV as numbers, booleans or timestamps; every other
#: type stays text, as psycopg's objects (Decimal, date, ...) became text in the customer table.
_COPY_TYPES = {16: "bool", 20: "int64", 21: "int64", 23: "int64", 700: "float64", 701: "float64",
               1114: "timestamp", 1184: "timestamptz"}


def _copy_to_frame(conn, sql: str) -> pd.DataFrame:
    """A query's rows as a DataFrame through ``COPY ... TO STDOUT`` (CSV parsed by pyarrow).

    For the customer table: half a million rows as Python tuples took ~3 s, the COPY a fraction.
    Columns come back as ``_read`` would give them after the customer clean-up.
    """
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM ({sql}) AS copied LIMIT 0")
        described = [(d.name, _COPY_TYPES.get(d.type_code, "text")) for d in cursor.description]
        buffer = io.BytesIO()
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for block in copy:
                buffer.write(block)
    finally:
        cursor.close()
    arrow = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64(), "text": pa.string(),
             "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}
    convert = pa_csv.ConvertOptions(column_types={name: arrow[kind] for name, kind in described},
                                    null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
                                    true_values=["t"], false_values=["f"])
    buffer.seek(0)
    table = pa_csv.read_csv(buffer, convert_options=convert)
    return table.to_pandas()


def _customers(conn, source: SqlSource, url: str) -> pd.DataFrame | None:
    if not source.customers_table:
        return None
    table = _table_name(conn, source, source.customers_table)
    read = _copy_to_frame if _is_psycopg(conn) else _read
    return customer_frame(read(conn, f"SELECT * FROM {table}"), f"{redact(url)}, table {table}")


def _copy_to_parquet(conn, sql: str, target: Path, dtypes: dict[str, str]) -> int:
    """Stream a query's result into a Parquet file with ``COPY (...) TO STDOUT`` (CSV).

    Fetching millions of rows as Python tuples cost more than computing them; COPY sends plain
    text that pyarrow parses in C++. The CSV is spooled to a file beside ``target`` and
    converted batch by batch, so neither is held whole in memory. Returns the row count.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from cxpipeline.sources.aggregate import pandas_arrow_schema as _pandas_schema

    spool = target.with_name(target.name + ".csv")
    cursor = conn.connection.driver_connection.cursor()
    try:
        with open(spool, "wb") as out, cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for block in copy:
                out.write(block)
    finally:
        cursor.close()
    schema = _pandas_schema(dtypes)
    types = {f.name: pa.string() if pa.types.is_large_string(f.type) else f.type for f in schema}
    # Only an unquoted empty field is NULL (PostgreSQL's CSV null); "" stays an empty string.
    convert = pa_csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                    quoted_strings_can_be_null=False)
    rows = 0
    try:
        reader = pa_csv.open_csv(spool, convert_options=convert, read_options=pa_csv.ReadOptions(block_size=1 << 24))
        with pq.ParquetWriter(target, schema) as writer:
            for batch in reader:
                writer.write_batch(batch.select(schema.names).cast(schema))
                rows += batch.num_rows
    finally:
        spool.unlink(missing_ok=True)
    return rows


def _stream_chunks_to_parquet(conn, sql: str, target: Path, dtypes: dict[str, str]) -> int:
    """The same for drivers without COPY: server-side cursor chunks appended to the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cxpipeline.sources.aggregate import pandas_arrow_schema as _pandas_schema

    schema = _pandas_schema(dtypes)
    rows = 0
    with pq.ParquetWriter(target, schema) as writer:
        for chunk in iter_query_chunks(conn, sql):
            table = pa.Table.from_pandas(chunk.astype(dtypes), schema=schema, preserve_index=False)
            writer.write_table(table)
            rows += len(chunk)
    return rows


def extract_sql(
    source: SqlSource,
    period: Period,
    comparison: Period,
    segments: list[str],
    *,
    url: str | None = None,
    stage_dir: str | Path | None = None,
    time_zone: str = "UTC",
    instants: list | None = None,
    base_dir: str | Path = ".",
) -> PanelExtract:
    """Compute the panel, monthly panel, cadence, customers and accounting in the warehouse.

    All queries run in one consistent snapshot; only their results cross the network.

    Parameters
    ----------
    source
        The config's SQL source.
    period, comparison
        Reporting period and comparison period.
    segments
        Segment names from the config (those present as transaction columns are aggregated).
    url
        The database URL when it is resolved outside the config (an Airflow connection).
    stage_dir
        When given, the panels and cadence stream into Parquet files there (``PanelExtract.files``)
        instead of being returned as frames.
    time_zone
        The reporting zone (``Config.report_timezone``): periods start at its midnights.
    instants
        Where to measure the cadence (:func:`cxpipeline.periods.cadence_instants`).
    base_dir
        The folder a relative DuckDB database path is found in (the config file's).

    Raises
    ------
    InputError
        The database is unreachable, the connection drops, the table is missing or lacks columns.
    """
    target = resolve_url(source, url, base_dir)
    if adbc_driver(target) is not None:
        from cxpipeline.sources.adbc import extract_adbc

        result = extract_adbc(source, period, comparison, segments, url=target, stage_dir=stage_dir,
                              time_zone=time_zone, instants=instants)
    else:
        result = _extract_sqlalchemy(source, period, comparison, segments, target, stage_dir, time_zone, instants)
    if source.as_of and pd.Timestamp(source.as_of) < pd.Timestamp(period.end):
        result.quality.notes.append(
            f"The snapshot is bounded at {source.as_of} (source.as_of), before the end of {period.label}.")
    return result


def _extract_sqlalchemy(source: SqlSource, period: Period, comparison: Period, segments: list[str], target: str,
                        stage_dir: str | Path | None, time_zone: str, instants: list | None) -> PanelExtract:
    """:func:`extract_sql` through SQLAlchemy: one snapshot, results by COPY, ADBC or cursor chunks."""
    what = f"reading {source.transactions_table} for {period.label}"
    with snapshot(target, what, time_zone=time_zone) as conn:
        engine = _engine_of(conn, target)
        relation, present = _base_relation(conn, source, target, segments)
        customers = _customers(conn, source, target)
        stream = None
        if stage_dir is not None:
            if _is_psycopg(conn):
                snapshot_id = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()

                def stream(jobs: list) -> dict[str, tuple[Path, int]]:
                    rendered = [(render(sql, engine), name, dtypes) for sql, name, dtypes in jobs]
                    return _copy_in_shared_snapshot(target, snapshot_id, rendered, Path(stage_dir), what, time_zone)
            else:
                def stream(jobs: list) -> dict[str, tuple[Path, int]]:
                    return stage_each(jobs, stage_dir, lambda sql, path, dtypes: _stream_chunks_to_parquet(
                        conn, render(sql, engine), path, dtypes))

        result = extract_aggregates(
            lambda sql: _read(conn, render(sql, engine)), relation, period=period, comparison=comparison,
            segment_columns=present, customers=customers, description=describe(source, target),
            stream=stream, rules=RowRules.of(source), instants=instants,
        )
    return result


def sql_last_day(source: SqlSource, *, url: str | None = None, base_dir: str | Path = "."):
    """The last order date among usable rows (for the default period), read in the warehouse."""
    target = resolve_url(source, url, base_dir)
    last_sql = ("SELECT max(ordered_at) AS last_at FROM {relation} "
                "WHERE customer_id IS NOT NULL AND revenue IS NOT NULL")
    if adbc_driver(target) is not None:
        from cxpipeline.sources.adbc import adbc_relation

        with adbc_session(target, "finding the last order date") as session:
            relation, _ = adbc_relation(session, source, [])
            value = session.read(render(last_sql.format(relation=relation), session.engine)).iloc[0, 0]
    else:
        with snapshot(target, "finding the last order date") as conn:
            relation, _ = _base_relation(conn, source, target, [])
            value = _read(conn, last_sql.format(relation=relation)).iloc[0, 0]
    return None if pd.isna(value) else pd.Timestamp(value).date()


def load_sql_source(source: SqlSource, *, url: str | None = None, base_dir: str | Path = ".") -> SourceData:
    """The table as canonical transactions in pandas (for small tables and inspection).

    The pipeline does not use this: :func:`extract_sql` aggregates in the database instead.
    Rows without a customer id (and zero amounts, with ``exclude_zero_amounts``) are excluded
    and counted, as in the other sources.
    """
    target = resolve_url(source, url, base_dir)
    zero = "CAST(revenue AS DECIMAL(18, 2)) = 0" if source.exclude_zero_amounts else "false"
    what = f"reading {source.transactions_table}"

    def statements(relation: str) -> tuple[str, str]:
        accounting = f"""
            SELECT CASE WHEN revenue IS NULL THEN 'non-numeric amount'
                        WHEN ordered_at IS NULL THEN 'unparseable date'
                        WHEN customer_id IS NULL THEN 'missing customer id'
                        WHEN {zero} THEN 'zero amount' ELSE '' END AS reason,
                   count(*) AS count_rows,
                   CAST(coalesce(sum(CAST(coalesce(revenue, 0) AS DECIMAL(18, 2))), 0) * 100 AS BIGINT) AS revenue_cents
            FROM {relation} GROUP BY 1"""
        transactions = f"""
            SELECT order_id, customer_id, ordered_at,
                   CAST(revenue AS DOUBLE PRECISION) AS revenue, CAST(cost AS DOUBLE PRECISION) AS cost,
                   CAST(cost_to_serve AS DOUBLE PRECISION) AS cost_to_serve,
                   CAST(quantity AS DOUBLE PRECISION) AS quantity, is_return
            FROM {relation}
            WHERE revenue IS NOT NULL AND ordered_at IS NOT NULL AND customer_id IS NOT NULL
              AND NOT ({zero})
            ORDER BY customer_id COLLATE "C", ordered_at, order_id COLLATE "C" """
        return accounting, transactions

    if adbc_driver(target) is not None:
        from cxpipeline.sources.adbc import adbc_customers, adbc_relation

        with adbc_session(target, what) as session:
            relation, _ = adbc_relation(session, source, [])
            accounting, transactions = (session.read(render(sql, session.engine)) for sql in statements(relation))
            customers = adbc_customers(session, source)
    else:
        with snapshot(target, what) as conn:
            relation, _ = _base_relation(conn, source, target, [])
            accounting, transactions = (_read(conn, sql) for sql in statements(relation))
            customers = _customers(conn, source, target)
    quality = Exclusions(rows_in=int(accounting["count_rows"].sum()),
                         revenue_in_cents=int(accounting["revenue_cents"].sum()))
    for row in accounting.itertuples(index=False):
        if row.reason:
            quality.record(row.reason, int(row.count_rows), int(row.revenue_cents))
    transactions = validate_transactions(transactions, source=describe(source, target))
    return SourceData(transactions=transactions, customers=customers, quality=quality,
                      description=describe(source, target))
