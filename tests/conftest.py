"""Shared test fixtures. Integration tests use the real services on this machine."""

from __future__ import annotations

import os

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
