"""Spark source: the extract aggregated in Spark, only panel-level rows back, as Arrow.

``source.kind: spark`` reads a catalog table (``table``) or a Parquet / Delta path (``path``)
in a Spark session reached through Spark Connect (``remote: sc://host:15002``, how Databricks
and managed Spark expose it) or a classic ``master`` (``local[2]``, a cluster manager). The
accounting, panel, monthly panel and cadence are the statements of
:mod:`cxpipeline.sources.aggregate`, rendered in Spark SQL by
:func:`cxpipeline.sources.dialects.render`. The panels and cadence come back as Arrow batches
over Spark Connect's gRPC stream and are written to Parquet as they arrive (one batch held at a
time); a classic session returns each as one table (``DataFrame.toArrow()``, from the JVM). Each
is cast to the pandas schema. Transactions never leave Spark.

A session that dies mid-extract (a killed driver, a lost Connect server, a cancelled job)
raises :class:`~cxpipeline.errors.InputError` naming the engine without its token; the
pipeline writes artifacts only after every result has been read, so nothing partial is left.

Credentials: the ``sc://`` URL may hold ``${ENV}`` references (a Databricks token), or
``remote_env`` names a variable with the whole URL; the DAG may resolve an Airflow connection
and pass ``remote=`` (this module never imports Airflow).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pandas as pd

from cxpipeline.config import SparkSource
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import Period
from cxpipeline.schema import TRANSACTION_COLUMNS, validate_customers
from cxpipeline.sources.aggregate import (
    PanelExtract,
    RowRules,
    extract_aggregates,
    stage_each,
    write_arrow_stream,
)
from cxpipeline.sources.base import expand_env
from cxpipeline.sources.dialects import render

__all__ = [
    "ENGINE",
    "LOCAL_SETTINGS",
    "resolve_remote",
    "redact_remote",
    "spark_session",
    "extract_spark",
    "spark_last_day",
]

#: The SQLGlot dialect the statements are rendered in.
ENGINE = "spark"

#: Settings for a Spark this process starts (``master``): few shuffle partitions (the results are
#: panel-sized; 200 partitions of a few thousand rows cost more in task overhead than they save),
#: no web UI, and Arrow for results.
LOCAL_SETTINGS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "2g",
}



def resolve_remote(source: SparkSource, remote: str | None = None) -> str | None:
    """The Spark Connect URL (``sc://...``) with ``${ENV}`` expanded, or None for a ``master``.

    Raises
    ------
    ConfigError
        A referenced environment variable is not set, or the URL is not ``sc://``.
    """
    value = remote or source.remote
    if value is None and source.remote_env:
        value = os.environ.get(source.remote_env)
        if not value:
            raise ConfigError(f"The environment variable {source.remote_env} (source.remote_env) is not set.",
                              where="source.remote_env",
                              fix=f"Export {source.remote_env}=sc://HOST:15002 (with ;token=... for Databricks).")
    if value is None:
        return None

    value = expand_env(value, "source.remote")
    if not value.startswith("sc://"):
        raise ConfigError(f"source.remote must be a Spark Connect URL, got {redact_remote(value)!r}.",
                          where="source.remote", fix="Write sc://HOST:15002 (Databricks: sc://WORKSPACE:443/;"
                          "token=${DATABRICKS_TOKEN};x-databricks-cluster-id=...).")
    return value


def redact_remote(url: str) -> str:
    """A Spark Connect URL without its token or other parameters' secrets, for messages."""
    return re.sub(r"(?i)(token|password|secret)=[^;]*", r"\1=***", url)


def spark_session(source: SparkSource, remote: str | None = None):
    """The Spark session for ``source`` (an active one for the same master is reused).

    The session zone is UTC: timestamps are wall-clock times, as in the other engines.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - pyspark is a dependency
        raise ConfigError("source.kind: spark needs pyspark.", where="source.kind",
                          fix="pip install 'pyspark[connect]'") from None
    url = resolve_remote(source, remote)
    if url is not None:
        # The Connect client class itself: it also works beside a classic session in this process.
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        session = ConnectSession.builder.remote(url).getOrCreate()
    else:
        builder = SparkSession.builder.master(source.master).appName("cxpipeline")
        for key, value in LOCAL_SETTINGS.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


def _where(source: SparkSource, remote: str | None) -> str:
    url = remote or source.remote or (f"${source.remote_env}" if source.remote_env else None)
    engine = f"Spark Connect {redact_remote(url)}" if url else f"Spark master {source.master}"
    return f"{engine}, {'table ' + source.table if source.table else source.format + ' ' + str(source.path)}"


def _spark_error(exc: Exception, where: str, what: str) -> InputError:
    text = str(exc).strip()
    message = text.splitlines()[0][:300] if text else type(exc).__name__
    names = f"{type(exc).__module__}.{type(exc).__name__}"
    missing = any(code in text for code in ("TABLE_OR_VIEW_NOT_FOUND", "PATH_NOT_FOUND", "UNRESOLVED_COLUMN"))
    if missing:
        return InputError(f"Spark cannot read the transactions while {what}: {message}", where=where,
                          fix="Check source.table / source.path and that it has the canonical columns "
                              "(docs/warehouse.md); map other layouts with a view.")
    return InputError(
        f"The Spark session failed while {what}: {message} ({names})",
        where=where,
        fix="Check that the Spark cluster or Connect server is running and reachable, then rerun the "
            "extract. Nothing was written: artifacts are only written after the whole read succeeds.",
    )


def _to_arrow(session, sql: str):
    """One statement (source dialect) rendered for Spark, its result as an Arrow table."""
    return _wall_clock(session.sql(render(sql, ENGINE)).toArrow())


def _wall_clock(table):
    import pyarrow as pa

    # Spark's TIMESTAMP carries the session zone (UTC): the artifacts hold wall-clock times.
    fields = [pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def _is_connect(session) -> bool:
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:  # pyspark without the Connect client: a classic session
        return False
    return isinstance(session, ConnectSession)


def _arrow_stream(session, sql: str):
    """One statement's result as Arrow tables, in order, for writing to Parquet as they come.

    Spark Connect: batch by batch as they arrive over the gRPC stream (pyspark's own iterator,
    the one behind ``DataFrame.toLocalIterator``, read as Arrow instead of rows), so one batch is
    held at a time. A classic session has no such stream: one table (``toArrow()``).
    """
    import pyarrow as pa

    frame = session.sql(render(sql, ENGINE)) if _is_connect(session) else None
    # Not public API (pyspark 4's Connect client): without it, the one-table path.
    plan = getattr(frame, "_plan", None)
    client = getattr(session, "client", None) if frame is not None else None
    if plan is None or not hasattr(client, "to_table_as_iterator"):
        yield _to_arrow(session, sql)
        return
    for item in client.to_table_as_iterator(plan.to_proto(client), plan.observations):
        if isinstance(item, pa.Table):  # the first item is the result's schema
            yield _wall_clock(item)


def _frame(table) -> pd.DataFrame:
    import pyarrow as pa

    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}.get)
    return frame




def _source_view(session, source: SparkSource, base_dir: str | Path, segments: list[str]) -> tuple[str, list[str]]:
    """Register the normalised transactions as a temporary view; returns its name and segments present."""
    if source.table:
        frame = session.table(source.table)
    else:
        path = Path(source.path).expanduser()
        location = source.path if "://" in source.path else str(path if path.is_absolute() else Path(base_dir) / path)
        frame = session.read.format(source.format).load(location)
    columns = list(frame.columns)
    missing = [c for c in TRANSACTION_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"The Spark transactions lack canonical column(s): {', '.join(missing)}.",
                         where=source.table or str(source.path),
                         fix="Create a view with the canonical columns (docs/warehouse.md) and set source.table "
                             "to it.")
    raw = f"cx_raw_{uuid.uuid4().hex[:12]}"
    frame.createOrReplaceTempView(raw)
    present = [c for c in segments if c in columns]
    # Spark SQL quotes identifiers with backticks ("Sales Region" is one column).
    segment_sql = "".join(f",\n           NULLIF(trim(CAST(`{c.replace('`', '``')}` AS STRING)), '') AS "
                          f"`{c.replace('`', '``')}`" for c in present)
    # The same clean-up as the warehouse source (trimmed ids, blanks missing, amounts to the cent).
    view = f"cx_rows_{uuid.uuid4().hex[:12]}"
    session.sql(f"""CREATE OR REPLACE TEMPORARY VIEW {view} AS
    SELECT CAST(order_id AS STRING) AS order_id,
           NULLIF(trim(CAST(customer_id AS STRING)), '') AS customer_id,
           CAST(ordered_at AS TIMESTAMP) AS ordered_at,
           round(CAST(revenue AS DOUBLE), 2) AS revenue,
           round(coalesce(CAST(cost AS DOUBLE), 0D), 2) AS cost,
           round(coalesce(CAST(cost_to_serve AS DOUBLE), 0D), 2) AS cost_to_serve,
           coalesce(CAST(quantity AS DOUBLE), 0D) AS quantity,
           coalesce(CAST(is_return AS BOOLEAN), false) AS is_return,
           coalesce(isnan(CAST(revenue AS DOUBLE)), false) AS isnan_revenue,
           false AS is_duplicate{segment_sql}
    FROM {raw}""")
    return view, present


def _customers(session, source: SparkSource, base_dir: str | Path) -> pd.DataFrame | None:
    if source.customers_table:
        frame, where = session.table(source.customers_table), f"table {source.customers_table}"
    elif source.customers_path:
        path = Path(source.customers_path).expanduser()
        location = (source.customers_path if "://" in source.customers_path
                    else str(path if path.is_absolute() else Path(base_dir) / path))
        frame, where = session.read.parquet(location), location
    else:
        return None
    customers = _frame(_to_arrow(session, f"SELECT * FROM {_temp(frame)}"))
    for column in customers.columns:
        if column == "acquired_at":
            customers[column] = pd.to_datetime(customers[column]).astype("datetime64[us]")
        elif column in ("customer_id", "referred_by"):
            customers[column] = customers[column].astype("string").str.strip().replace("", pd.NA)
        elif customers[column].dtype == object or pd.api.types.is_string_dtype(customers[column]):
            customers[column] = customers[column].astype("string")
    return validate_customers(customers, source=where)


def _temp(frame) -> str:
    name = f"cx_customers_{uuid.uuid4().hex[:12]}"
    frame.createOrReplaceTempView(name)
    return name


def extract_spark(
    source: SparkSource,
    period: Period,
    comparison: Period,
    segments: list[str],
    *,
    base_dir: str | Path = ".",
    stage_dir: str | Path | None = None,
    remote: str | None = None,
    instants: list | None = None,
) -> PanelExtract:
    """Compute the accounting, panels, cadence and customers in Spark; results back as Arrow.

    Parameters
    ----------
    source
        The config's Spark source.
    period, comparison
        Reporting period and comparison period.
    segments
        Segment names from the config (those present as transaction columns are aggregated).
    base_dir
        Folder a relative ``path`` is resolved against (the config file's).
    stage_dir
        When given, the panels and cadence are written there as Parquet (``PanelExtract.files``);
        otherwise they are returned as frames.
    remote
        A Spark Connect URL resolved outside the config (an Airflow connection).

    Raises
    ------
    InputError
        The session cannot start or dies mid-extract, the input is missing or lacks columns, or no
        row is usable.
    ConfigError
        An environment variable named by the source is not set.
    """
    where = _where(source, remote)
    what = f"reading the transactions for {period.label}"
    try:
        session = spark_session(source, remote)
        view, present = _source_view(session, source, base_dir, segments)
        customers = _customers(session, source, base_dir)

        def query(sql: str) -> pd.DataFrame:
            return _frame(_to_arrow(session, sql))

        stream = None
        if stage_dir is not None:
            def stream(jobs: list) -> dict[str, tuple[Path, int]]:
                return stage_each(jobs, stage_dir, lambda sql, path, dtypes: write_arrow_stream(
                    _arrow_stream(session, sql), path, dtypes))

        result = extract_aggregates(query, view, period=period, comparison=comparison, segment_columns=present,
                                    customers=customers, description=where, stream=stream,
                                    rules=RowRules.of(source), instants=instants)
        if resolve_remote(source, remote) is not None:
            session.stop()  # release the Connect session on the server (a classic one is the process's)
        return result
    except (InputError, ConfigError):
        raise
    except Exception as exc:
        if not _is_spark_error(exc):
            raise
        raise _spark_error(exc, where, what) from None


def _is_spark_error(exc: Exception) -> bool:
    """An error from Spark, its JVM bridge or the Connect channel (not a bug in this package)."""
    root = type(exc).__module__.split(".")[0]
    return root in ("pyspark", "py4j", "grpc") or isinstance(exc, (ConnectionError, EOFError))


def spark_last_day(source: SparkSource, *, base_dir: str | Path = ".", remote: str | None = None):
    """The last order date among usable rows (for the default period), read in Spark."""
    try:
        session = spark_session(source, remote)
        view, _ = _source_view(session, source, base_dir, [])
        value = _frame(_to_arrow(session, f"SELECT max(ordered_at) AS last_at FROM {view} "
                                          "WHERE customer_id IS NOT NULL AND revenue IS NOT NULL")).iloc[0, 0]
    except Exception as exc:
        if not _is_spark_error(exc):
            raise
        raise _spark_error(exc, _where(source, remote), "finding the last order date") from None
    return None if pd.isna(value) else pd.Timestamp(value).date()
