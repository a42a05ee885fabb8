"""Shared test fixtures. Integration tests use the real services on this machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest

IS_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def transactions_frame(rows: list[tuple], *, segment: str | None = None) -> pd.DataFrame:
    """Canonical transactions from (customer_id, ordered_at, revenue[, order_id]) tuples.

    Negative revenue is a return. Cost is 60 % of revenue, cost to serve 2.00 per line.
    """
    records = []
    for i, row in enumerate(rows):
        customer, at, revenue = row[:3]
        order = row[3] if len(row) > 3 else f"o{i}"
        records.append(
            {
                "order_id": order,
                "customer_id": customer,
                "ordered_at": pd.Timestamp(at),
                "revenue": float(revenue),
                "cost": round(0.6 * float(revenue), 2),
                "cost_to_serve": 2.0,
                "quantity": 1.0 if revenue >= 0 else -1.0,
                "is_return": revenue < 0,
            }
        )
    frame = pd.DataFrame.from_records(records)
    return frame.astype(
        {"order_id": "string", "customer_id": "string", "ordered_at": "datetime64[us]", "is_return": bool}
    )


def require_service(name: str, reason: str) -> None:
    """Skip outside CI when a service is absent; under CI=true fail instead (never skip)."""
    if IS_CI:
        pytest.fail(f"{name} is required under CI but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards; yields its name.

    The name carries the process id so parallel test workers never share one.
    """
    import psycopg

    name = f"{prefix}_{os.getpid()}"
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", str(exc))
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
