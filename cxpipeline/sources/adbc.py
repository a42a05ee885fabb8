"""Warehouses read through ADBC drivers: Snowflake, BigQuery and DuckDB database files.

``source.kind: sql`` with a ``snowflake://``, ``bigquery://`` or ``duckdb://`` URL is read with
that engine's ADBC (Arrow Database Connectivity) driver instead of SQLAlchemy. The statements are
the same as every SQL source's (:mod:`cxpipeline.sources.aggregate`), rendered for the engine by
:func:`cxpipeline.sources.dialects.render`; what changes is how results come back: as Arrow, from
the driver. The panels and the cadence are written to Parquet batch by batch as the driver
streams them (``cursor.fetch_record_batch()``); the small results (accounting, customers,
segment counts, tie-outs) arrive as one Arrow table each. No row becomes a Python tuple.

Which engines run in the tests (DuckDB does; Snowflake and BigQuery are reached up to their
login) and what each reads as one point in time: ``docs/warehouse.md``, "ADBC warehouses".

A driver that is not installed is a :class:`~cxpipeline.errors.ConfigError` naming the package to
install; a failed login, a lost connection or a failing query is an
:class:`~cxpipeline.errors.InputError` naming the warehouse without its password. Nothing is
written by this module before every result has been read (the pipeline writes artifacts after).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxpipeline.errors import ConfigError, InputError
from cxpipeline.sources.aggregate import RowRules, extract_aggregates, stage_each, write_arrow_stream
from cxpipeline.sources.dialects import render
from cxpipeline.sources.warehouse import canonical_relation, customer_frame, describe, redact, warehouse_error

__all__ = [
    "AdbcDriver",
    "ADBC_DRIVERS",
    "adbc_driver",
    "local_database",
    "connect_arguments",
    "AdbcSession",
    "adbc_session",
    "adbc_relation",
    "adbc_customers",
    "extract_adbc",
]


@dataclass(frozen=True)
class AdbcDriver:
    """An ADBC driver: the URL scheme it serves, its DBAPI module, its pip package, and the
    engine (:data:`cxpipeline.sources.dialects.ENGINES`) the statements are rendered for."""

    scheme: str
    module: str
    package: str
    engine: str
    quote: str  # the identifier quote of the engine


#: URL scheme -> driver. The URLs are the SQLAlchemy forms users already write for these engines.
ADBC_DRIVERS = {
    driver.scheme: driver
    for driver in (
        AdbcDriver("snowflake", "adbc_driver_snowflake.dbapi", "adbc-driver-snowflake", "snowflake", '"'),
        AdbcDriver("bigquery", "adbc_driver_bigquery.dbapi", "adbc-driver-bigquery", "bigquery", "`"),
        AdbcDriver("duckdb", "adbc_driver_duckdb.dbapi", "duckdb", "duckdb", '"'),
    )
}

#: Identifiers written without quotes (then each engine resolves their case as it does for its
#: own users: Snowflake reads ``transactions`` as ``TRANSACTIONS``).
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def adbc_driver(url: str) -> AdbcDriver | None:
    """The ADBC driver for a URL's scheme (``snowflake://...``), or None for SQLAlchemy URLs."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    return ADBC_DRIVERS.get(scheme)


def local_database(url: str, base_dir: str | Path = ".") -> str:
    """``url`` with a relative DuckDB database path anchored in ``base_dir``; other URLs unchanged."""
    driver = adbc_driver(url)
    prefix = "duckdb:///"
    if driver is None or driver.scheme != "duckdb" or not url.startswith(prefix):
        return url
    path = url[len(prefix):]
    if not path or path.startswith(("/", "md:", ":memory:")):
        return url
    return prefix + str((Path(base_dir) / path).resolve())


def connect_arguments(url: str) -> dict:
    """The keyword arguments of the driver's ``dbapi.connect`` for a warehouse URL.

    * ``snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE``: the driver
      takes the URL as it is (its DSN form, with every query parameter).
    * ``bigquery://PROJECT/DATASET?credentials_path=KEY.json&location=EU``: the project and the
      default dataset; a service-account key file, else Google's default credentials
      (``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``).
    * ``duckdb:///relative.duckdb`` or ``duckdb:////absolute/path.duckdb``: a DuckDB database file.

    Raises
    ------
    InputError
        The URL lacks what the driver needs (a BigQuery project, a DuckDB path).
    """
    from sqlalchemy.engine import make_url

    driver = adbc_driver(url)
    if driver is None:
        raise ValueError(f"not an ADBC warehouse URL: {redact(url)}")
    if driver.scheme == "snowflake":
        return {"uri": url}
    parsed = make_url(url)
    if driver.scheme == "duckdb":
        if not parsed.database:
            raise InputError("The DuckDB URL names no database file.", where=redact(url),
                             fix="Write duckdb:///relative/path.duckdb or duckdb:////absolute/path.duckdb.")
        # Reading must not create a database: DuckDB would make an empty file at a mistyped path.
        if not parsed.database.startswith("md:") and not Path(parsed.database).is_file():
            raise InputError(f"There is no DuckDB database file at {parsed.database}.", where=redact(url),
                             fix="Check the path in source.url: duckdb:///relative/path.duckdb or "
                                 "duckdb:////absolute/path.duckdb.")
        return {"path": parsed.database}
    if not parsed.host:
        raise InputError("The BigQuery URL names no project.", where=redact(url),
                         fix="Write bigquery://PROJECT/DATASET (optionally ?credentials_path=KEY.json).")
    options = {"adbc.bigquery.sql.project_id": parsed.host}
    if parsed.database:
        options["adbc.bigquery.sql.dataset_id"] = parsed.database
    if parsed.query.get("location"):
        options["adbc.bigquery.sql.location"] = parsed.query["location"]
    if parsed.query.get("credentials_path"):
        options["adbc.bigquery.sql.auth_type"] = "adbc.bigquery.sql.auth_type.json_credential_file"
        options["adbc.bigquery.sql.auth_credentials"] = parsed.query["credentials_path"]
    return {"db_kwargs": options}


def _password(url: str) -> str | None:
    """The URL's password, never to be repeated in a message."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password or None
    except Exception:  # not a URL SQLAlchemy parses: redact() names it generically too
        return None


class AdbcSession:
    """One ADBC connection: statements rendered for its engine, results read as Arrow."""

    def __init__(self, connection, driver: AdbcDriver, url: str):
        self.connection = connection
        self.driver = driver
        self.engine = driver.engine
        self.where = redact(url)
        self._cursor = connection.cursor()

    def quote(self, name: str) -> str:
        """An identifier as the engine reads it: plain names unquoted, others quoted."""
        if _PLAIN_IDENTIFIER.fullmatch(name):
            return name
        q = self.driver.quote
        return q + name.replace(q, q + q) + q

    def table(self, name: str, schema_name: str | None = None) -> str:
        """A (possibly dotted) table name, with ``schema_name`` in front when given."""
        parts = ([schema_name] if schema_name else []) + name.split(".")
        return ".".join(self.quote(part) for part in parts)

    def _execute(self, sql: str) -> None:
        self._cursor.execute(sql)

    def read(self, sql: str) -> pd.DataFrame:
        """A small result as a DataFrame (one Arrow table from the driver)."""
        self._execute(sql)
        table = self._cursor.fetch_arrow_table()
        return table.rename_columns(_names(table.schema.names)).to_pandas()

    def batches(self, sql: str) -> Iterator:
        """A result as the driver streams it: Arrow record batches, one held at a time."""
        self._execute(sql)
        for batch in self._cursor.fetch_record_batch():
            yield batch.rename_columns(_names(batch.schema.names))

    def columns(self, table: str) -> list[str]:
        """The table's columns, named as the engine reports them."""
        self._execute(f"SELECT * FROM {table} WHERE 1 = 0")
        return [field.name for field in self._cursor.fetch_arrow_table().schema]

    def close(self) -> None:
        for thing in (self._cursor, self.connection):
            try:
                thing.close()
            except Exception:  # already closed by a failure: nothing left to release
                pass


def _names(names: list[str]) -> list[str]:
    """Snowflake answers unquoted aliases in upper case (``COUNT_ROWS``); the extract reads them in
    lower case, as SQLAlchemy's Snowflake dialect gives them. Mixed-case names are kept."""
    return [name.lower() if name.isupper() else name for name in names]


def _load_driver(driver: AdbcDriver):
    try:
        return importlib.import_module(driver.module)
    except ImportError:
        raise ConfigError(
            f"The {driver.scheme} warehouse is read with the ADBC driver {driver.package!r}, which is not installed.",
            where="source.url",
            fix=f"pip install {driver.package} (docs/warehouse.md, ADBC warehouses).",
        ) from None


def _connect(module, driver: AdbcDriver, arguments: dict):
    """A DBAPI connection; a DuckDB file is opened read only: a read never writes to it, and
    several runs (packs of other periods or configs) can read it at the same time."""
    if driver.scheme != "duckdb":
        return module.connect(**arguments)
    import adbc_driver_duckdb
    import adbc_driver_manager
    import adbc_driver_manager.dbapi

    database = adbc_driver_manager.AdbcDatabase(driver=adbc_driver_duckdb.driver_path(), entrypoint="duckdb_adbc_init",
                                                path=arguments["path"], access_mode="READ_ONLY")
    return adbc_driver_manager.dbapi.Connection(database, adbc_driver_manager.AdbcConnection(database))


def _is_driver_error(exc: Exception) -> bool:
    return type(exc).__module__.split(".")[0].startswith(("adbc_driver", "duckdb"))


def _driver_error(exc: Exception, url: str, what: str) -> InputError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = _password(url)
    if password:
        message = message.replace(password, "***")
    lost = type(exc).__name__ in ("OperationalError", "IOError") or any(
        word in message.lower() for word in ("connection", "dial tcp", "login", "credentials", "unauthenticated",
                                             "invalid_state"))  # a connection closed under the read
    return warehouse_error(message, url, what, lost=lost, check="the account, the credentials (from the "
                           "environment or an Airflow connection) and that the warehouse is reachable")


@contextmanager
def adbc_session(url: str, what: str = "reading the warehouse", *, time_zone: str = "UTC"):
    """An :class:`AdbcSession` on the warehouse at ``url``, as one read.

    DuckDB: one transaction (the connection is not in autocommit), so every statement sees the same
    snapshot. Snowflake: the session's zone is ``time_zone`` (a ``TIMESTAMP_LTZ`` is read as wall
    clock time there); each statement reads what was committed when it started. BigQuery: each
    statement reads what was committed when it started; ``TIMESTAMP`` columns are read in UTC.

    Raises
    ------
    ConfigError
        The driver is not installed.
    InputError
        The login, the connection or a statement fails (the password is never in the message).
    """
    driver = adbc_driver(url)
    module = _load_driver(driver)
    arguments = connect_arguments(url)
    session = None
    try:
        session = AdbcSession(_connect(module, driver, arguments), driver, url)
        zone = time_zone.replace("'", "")
        if driver.scheme == "snowflake":
            session._execute(f"ALTER SESSION SET TIMEZONE = '{zone}'")
        elif driver.scheme == "duckdb":
            session._execute(f"SET TimeZone = '{zone}'")
        yield session
    except (InputError, ConfigError):
        raise
    except Exception as exc:
        if not _is_driver_error(exc):
            raise
        raise _driver_error(exc, url, what) from None
    finally:
        if session is not None:
            session.close()


def write_batches(session: AdbcSession, sql: str, target: Path, dtypes: dict[str, str]) -> int:
    """Stream one result into a Parquet file as the driver sends it; returns the rows."""
    return write_arrow_stream(session.batches(sql), target, dtypes)


def adbc_relation(session: AdbcSession, source, segments: list[str]) -> tuple[str, list[str]]:
    """The canonical transactions relation on the session's table (see ``canonical_relation``)."""
    table = session.table(source.transactions_table, source.schema_name)
    return canonical_relation(table, session.columns(table), segments, as_of=source.as_of,
                              where=f"{session.where}, table {table}")


def adbc_customers(session: AdbcSession, source) -> pd.DataFrame | None:
    """The customer table (``source.customers_table``), or None."""
    if not source.customers_table:
        return None
    table = session.table(source.customers_table, source.schema_name)
    return customer_frame(session.read(f"SELECT * FROM {table}"), f"{session.where}, table {table}")


def extract_adbc(source, period, comparison, segments: list[str], *, url: str, stage_dir: str | Path | None = None,
                 time_zone: str = "UTC", instants: list | None = None):
    """The extract of :func:`cxpipeline.sources.sql.extract_sql` on an ADBC warehouse (which adds
    the ``as_of`` note for both paths).

    The statements run one after another on one connection (one transaction on DuckDB); the
    panels and the cadence stream into ``stage_dir`` as Parquet when it is given.
    """
    what = f"reading {source.transactions_table} for {period.label}"
    with adbc_session(url, what, time_zone=time_zone) as session:
        relation, present = adbc_relation(session, source, segments)
        customers = adbc_customers(session, source)
        stream = None
        if stage_dir is not None:
            def stream(jobs: list) -> dict[str, tuple[Path, int]]:
                return stage_each(jobs, stage_dir, lambda sql, path, dtypes: write_batches(
                    session, render(sql, session.engine), path, dtypes))

        return extract_aggregates(
            lambda sql: session.read(render(sql, session.engine)), relation, period=period, comparison=comparison,
            segment_columns=present, customers=customers, description=describe(source, url),
            stream=stream, rules=RowRules.of(source), instants=instants,
        )
