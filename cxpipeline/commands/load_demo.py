"""``cxpipeline load-demo``: load the demo retailer into PostgreSQL with COPY.

The tables follow the warehouse schema documented in ``docs/warehouse.md``: ``customers`` (one
row per customer) and ``transactions`` (one row per order line; returns are separate lines with
``is_return`` true and negative amounts). Customers are generated in chunks
(:func:`cxpipeline.sources.demo.iter_demo_chunks`) and each chunk is streamed to the server with
``COPY ... FROM STDIN`` (psycopg 3), so memory stays bounded and no row is inserted one by one.
Everything happens in one transaction: a failed load leaves no half-filled tables behind.
Indexes are built after the data is in, then the tables are analysed.
"""

from __future__ import annotations

import io
import time

from cxpipeline.commands._common import progress

__all__ = ["register", "run", "load_demo_into_postgres", "WAREHOUSE_DDL", "libpq_url"]

#: Table definitions ({schema} is "" or a quoted schema name followed by a dot).
WAREHOUSE_DDL = """
CREATE TABLE {schema}customers (
    customer_id    text PRIMARY KEY,
    customer_name  text,
    region         text,
    channel        text,
    customer_type  text,
    acquired_at    timestamp,
    referred_by    text,
    referral_note  text
);
CREATE TABLE {schema}transactions (
    order_id       text           NOT NULL,
    customer_id    text,
    ordered_at     timestamp      NOT NULL,
    revenue        numeric(14, 2) NOT NULL,
    cost           numeric(14, 2) NOT NULL,
    cost_to_serve  numeric(14, 2) NOT NULL,
    quantity       numeric(14, 3) NOT NULL,
    is_return      boolean        NOT NULL
);
"""

#: Built after loading (faster than maintaining them row by row during COPY).
WAREHOUSE_INDEXES = """
CREATE INDEX {prefix}transactions_ordered_at_idx ON {schema}transactions (ordered_at);
CREATE INDEX {prefix}transactions_customer_idx ON {schema}transactions (customer_id, ordered_at);
CREATE INDEX {prefix}customers_referred_by_idx ON {schema}customers (referred_by);
"""

_TRANSACTION_COLUMNS = ["order_id", "customer_id", "ordered_at", "revenue", "cost", "cost_to_serve",
                        "quantity", "is_return"]
_CUSTOMER_COLUMNS = ["customer_id", "customer_name", "region", "channel", "customer_type", "acquired_at",
                     "referred_by", "referral_note"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "load-demo",
        help="load the demo retailer into PostgreSQL (COPY; tables customers and transactions)",
        description="Generate the deterministic demo retailer in chunks and COPY it into PostgreSQL "
        "(schema: docs/warehouse.md). Runs in one transaction; builds indexes and analyses the tables.",
    )
    parser.add_argument("--db", required=True, metavar="URL",
                        help="database URL, e.g. postgresql://postgres@127.0.0.1:5432/warehouse "
                        "(a SQLAlchemy URL such as postgresql+psycopg://... works too)")
    parser.add_argument("--customers", type=int, required=True, help="number of customers")
    parser.add_argument("--years", type=int, default=4, help="years of history (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--end-date", default="2026-09-30", help="last day of data (default 2026-09-30)")
    parser.add_argument("--schema", default=None, help="database schema for the tables (default: search path)")
    parser.add_argument("--replace", action="store_true", help="drop existing customers/transactions tables first")
    parser.add_argument("--chunk-customers", type=int, default=100_000,
                        help="customers generated and copied per chunk (bounds memory)")
    parser.set_defaults(func=run)


def libpq_url(url: str) -> str:
    """A libpq connection URI from a libpq or SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    from sqlalchemy.engine import make_url

    from cxpipeline.errors import InputError

    try:
        parsed = make_url(url)
    except Exception:
        raise InputError(f"{url!r} is not a database URL.", where="--db",
                         fix="Write it as postgresql://USER@HOST:PORT/DATABASE.") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise InputError(f"load-demo needs PostgreSQL, got {parsed.get_backend_name()!r}.", where="--db",
                         fix="Pass a postgresql:// URL.")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _csv_bytes(frame) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


def load_demo_into_postgres(
    url: str,
    customers: int,
    years: int = 4,
    seed: int = 7,
    end_date: str = "2026-09-30",
    *,
    schema: str | None = None,
    replace: bool = False,
    chunk_customers: int = 100_000,
) -> dict:
    """Create the warehouse tables and COPY the demo retailer into them (one transaction).

    Returns
    -------
    dict
        ``{"transactions": rows, "customers": rows, "seconds": float, "schema": schema}``.

    Raises
    ------
    InputError
        The database cannot be reached, or the tables exist and ``replace`` is false.
    """
    import psycopg
    from psycopg import sql

    from cxpipeline.errors import InputError
    from cxpipeline.sources.demo import iter_demo_chunks

    started = time.perf_counter()
    target = libpq_url(url)
    where = f"{_redacted(url)}" + (f", schema {schema}" if schema else "")
    try:
        conn = psycopg.connect(target, autocommit=False)
    except psycopg.OperationalError as exc:
        raise InputError(f"Cannot connect to the database: {str(exc).strip().splitlines()[0]}", where=where,
                         fix="Check that PostgreSQL is running and the URL (host, port, user, database).") from None
    prefix = sql.SQL("") if schema is None else sql.SQL("{}.").format(sql.Identifier(schema))
    index_prefix = "" if schema is None else f"{schema}_"
    rows = 0
    count = 0
    try:
        with conn.transaction(), conn.cursor() as cur:
            if schema is not None:
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            if replace:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {p}transactions, {p}customers").format(p=prefix))
            else:
                cur.execute("SELECT to_regclass(%s), to_regclass(%s)",
                            [f"{schema + '.' if schema else ''}transactions", f"{schema + '.' if schema else ''}customers"])
                existing = [name for name in cur.fetchone() if name]
                if existing:
                    raise InputError(
                        f"Table(s) {', '.join(map(str, existing))} already exist.", where=where,
                        fix="Pass --replace to drop and reload them, or choose another --schema.",
                    )
            cur.execute(sql.SQL(WAREHOUSE_DDL.replace("{schema}", "{p}")).format(p=prefix))
            copy_transactions = sql.SQL("COPY {p}transactions ({cols}) FROM STDIN (FORMAT csv)").format(
                p=prefix, cols=sql.SQL(", ").join(map(sql.Identifier, _TRANSACTION_COLUMNS)))
            copy_customers = sql.SQL("COPY {p}customers ({cols}) FROM STDIN (FORMAT csv)").format(
                p=prefix, cols=sql.SQL(", ").join(map(sql.Identifier, _CUSTOMER_COLUMNS)))
            for transactions, people in iter_demo_chunks(customers, years, seed, end_date, chunk_customers):
                with cur.copy(copy_customers) as copy:
                    copy.write(_csv_bytes(people[_CUSTOMER_COLUMNS]))
                with cur.copy(copy_transactions) as copy:
                    copy.write(_csv_bytes(transactions[_TRANSACTION_COLUMNS]))
                rows += len(transactions)
                count += len(people)
                progress(f"copied {rows:,} transactions, {count:,} customers")
            cur.execute(sql.SQL(WAREHOUSE_INDEXES.replace("{schema}", "{p}").replace("{prefix}", index_prefix))
                        .format(p=prefix))
            # Statistics for the planner (ANALYZE may run inside the transaction).
            cur.execute(sql.SQL("ANALYZE {p}transactions").format(p=prefix))
            cur.execute(sql.SQL("ANALYZE {p}customers").format(p=prefix))
            progress("indexes built, tables analysed")
    except psycopg.Error as exc:
        raise InputError(f"Loading the demo failed: {str(exc).strip().splitlines()[0]}", where=where,
                         fix="Nothing was committed; fix the cause above and rerun load-demo.") from None
    finally:
        conn.close()
    return {"transactions": rows, "customers": count, "seconds": round(time.perf_counter() - started, 3),
            "schema": schema}


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database URL"


def run(args) -> int:
    result = load_demo_into_postgres(
        args.db, args.customers, args.years, args.seed, args.end_date,
        schema=args.schema, replace=args.replace, chunk_customers=args.chunk_customers,
    )
    progress(f"loaded {result['transactions']:,} transactions and {result['customers']:,} customers "
             f"in {result['seconds']:.1f} s")
    print(_redacted(args.db))
    return 0
