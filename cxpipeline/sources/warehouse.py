"""What every warehouse source shares (:mod:`cxpipeline.sources.sql` through SQLAlchemy,
:mod:`cxpipeline.sources.adbc` through ADBC drivers): the transactions as the extract reads them,
the customer table's types, and URLs without their password for messages.
"""

from __future__ import annotations

import pandas as pd

from cxpipeline.errors import InputError
from cxpipeline.schema import TRANSACTION_COLUMNS, validate_customers
from cxpipeline.sources.aggregate import quoted

__all__ = ["redact", "describe", "warehouse_error", "canonical_relation", "customer_frame"]


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database URL"


def describe(source, url: str) -> str:
    """Where the rows come from, for messages and data_quality.json: the URL without its password,
    the table and the ``as_of`` bound."""
    table = ".".join(([source.schema_name] if source.schema_name else []) + [source.transactions_table])
    bound = f", rows before {source.as_of}" if source.as_of else ""
    return f"{redact(url)} table {table}{bound}"


def warehouse_error(message: str, url: str, what: str, *, lost: bool,
                    check: str = "that the database is running and reachable") -> InputError:
    """The error of a failed read: the connection (``lost``; ``check`` says what to look at) or
    the query (then the table and its columns are what to check)."""
    if lost:
        return InputError(
            f"The connection to the warehouse failed while {what}: {message}",
            where=redact(url),
            fix=f"Check {check}, then rerun the extract. Nothing was written: artifacts are only written after "
                "the whole read succeeds.",
        )
    return InputError(
        f"The warehouse query failed while {what}: {message}",
        where=redact(url),
        fix="Check source.transactions_table / customers_table / schema_name and that the table has the "
            "canonical columns (docs/warehouse.md); map other layouts with a view.",
    )


def _ts(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def canonical_relation(table: str, columns: list[str], segments: list[str], *, as_of: str | None = None,
                       collate: str = "", where: str = "") -> tuple[str, list[str]]:
    """The transactions as the extract reads them: canonical columns, trimmed ids, zeros for
    missing costs, and the segment columns ``segments`` the table has (returned as the second item).

    ``table`` is the quoted table name; ``columns`` the table's columns; ``as_of`` bounds the rows
    to those ordered before it; ``where`` names the table in the error for missing columns.
    """
    # Matched regardless of case: Snowflake reports an unquoted column as ORDER_ID, and reads
    # the extract's unquoted order_id as that column.
    actual = {c.lower(): c for c in reversed(columns)} | {c: c for c in columns}
    missing = [c for c in TRANSACTION_COLUMNS if c not in actual and c.lower() not in actual]
    if missing:
        raise InputError(
            f"The transactions table lacks canonical column(s): {', '.join(missing)}.",
            where=where or table,
            fix="Create a view with the canonical columns (docs/warehouse.md) and set "
                "source.transactions_table to it.",
        )
    present = [c for c in segments if c in actual or c.lower() in actual]
    segment_sql = "".join(f",\n           NULLIF(trim(CAST({quoted(actual.get(c) or actual[c.lower()])} AS VARCHAR)), '') "
                          f"AS {quoted(c)}" for c in present)
    bound = f"\n    WHERE ordered_at < TIMESTAMP '{_ts(as_of)}'" if as_of else ""
    relation = f"""(
    SELECT CAST(order_id AS VARCHAR) AS order_id,
           NULLIF(trim(CAST(customer_id AS VARCHAR)), ''){collate} AS customer_id,
           CAST(ordered_at AS TIMESTAMP) AS ordered_at,
           revenue, coalesce(cost, 0) AS cost, coalesce(cost_to_serve, 0) AS cost_to_serve,
           coalesce(quantity, 0) AS quantity, coalesce(is_return, false) AS is_return,
           false AS isnan_revenue, false AS is_duplicate{segment_sql}
    FROM {table}{bound}
) AS source_rows"""
    return relation, present


def customer_frame(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """A customer table as read from a warehouse, with the types the pipeline's customers have."""
    for column in frame.columns:
        if column == "acquired_at":
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
        elif frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].astype("string")
    return validate_customers(frame, source=where)
