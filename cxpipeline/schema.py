"""The canonical transaction schema, the customer table and the customer-period panel.

Every source (demo, files, SQL) produces transactions in this shape; everything downstream
relies on it. :func:`validate_transactions` checks a frame and raises an :class:`InputError`
that names the column, the first bad row and the fix.

Transactions (one row per order or order line; returns are rows with negative revenue):

==============  =================  ===================================================
column          dtype              meaning
==============  =================  ===================================================
order_id        string             order / invoice number; lines of one order share it
customer_id     string             never null (rows without one are excluded upstream)
ordered_at      datetime64[us]     naive UTC timestamp
revenue         float64            net revenue of the line, negative for a return
cost            float64            cost of goods (negative for a returned line), 0 if unknown
cost_to_serve   float64            cost to serve the line (shipping, handling, support), >= 0
quantity        float64            units, negative for a return
is_return       bool               the line is a return / cancellation
==============  =================  ===================================================

Optional transaction columns: ``currency`` and any segment column named in the config.

Customers (optional, one row per customer): ``customer_id`` plus segment attributes
(e.g. ``region``, ``channel``, ``customer_type``), ``referred_by`` (customer_id or null),
``acquired_at``, ``referral_note``, ``customer_name``.
"""

from __future__ import annotations

import pandas as pd

from cxpipeline.errors import InputError

__all__ = [
    "TRANSACTION_COLUMNS",
    "PANEL_COLUMNS",
    "validate_transactions",
    "validate_customers",
]

TRANSACTION_COLUMNS: dict[str, str] = {
    "order_id": "string",
    "customer_id": "string",
    "ordered_at": "datetime64[us]",
    "revenue": "float64",
    "cost": "float64",
    "cost_to_serve": "float64",
    "quantity": "float64",
    "is_return": "bool",
}

#: The customer-period panel: one row per customer per period in which they had any
#: transaction. Money is net of returns and rounded to the cent.
PANEL_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "period_start": "datetime64[us]",  # first day of the period
    "revenue": "float64",  # net revenue (sales - returns)
    "gross_revenue": "float64",  # sales before returns
    "returns": "float64",  # returned value, positive
    "cost": "float64",  # cost of goods, net of returned goods
    "cost_to_serve": "float64",
    "count_orders": "int64",  # distinct purchase orders (positive revenue)
    "count_returns": "int64",  # distinct return orders
    "first_order_at": "datetime64[us]",  # first purchase in the period (NaT if only returns)
    "last_order_at": "datetime64[us]",  # last purchase in the period (NaT if only returns)
}


def _fail(column: str, row: int | None, what: str, fix: str, source: str) -> None:
    where = f"{source}, column '{column}'" + (f", row {row}" if row is not None else "")
    raise InputError(what, where=where, fix=fix)


def validate_transactions(df: pd.DataFrame, source: str = "transactions") -> pd.DataFrame:
    """Check a canonical transaction frame; return it with canonical dtypes.

    Parameters
    ----------
    df
        Frame with at least the columns in :data:`TRANSACTION_COLUMNS`.
    source
        Name used in error messages (file path, table name).

    Raises
    ------
    InputError
        Naming the column, the first offending row (0-based position) and the fix.
    """
    missing = [c for c in TRANSACTION_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"Missing canonical column(s): {', '.join(missing)}.",
            where=source,
            fix="Map these columns in the config's source.columns section.",
        )
    out = df.copy()
    for column in ("revenue", "cost", "cost_to_serve", "quantity"):
        values = pd.to_numeric(out[column], errors="coerce")
        bad = (values.isna() & out[column].notna()) | (values.abs() >= 1e13)
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            _fail(column, row, f"Value {out[column].iloc[row]!r} is not a usable number.",
                  "Use plain numbers with '.' as decimal separator, below 10 trillion.", source)
        out[column] = values.fillna(0.0).astype("float64")
    if out["customer_id"].isna().any():
        row = int(out["customer_id"].isna().to_numpy().nonzero()[0][0])
        _fail("customer_id", row, "Missing customer id.",
              "Rows without a customer must be excluded by the source (they are counted).", source)
    out["customer_id"] = out["customer_id"].astype("string")
    out["order_id"] = out["order_id"].astype("string")
    ordered_at = pd.to_datetime(out["ordered_at"], errors="coerce", format="mixed")
    if ordered_at.isna().any():
        row = int(ordered_at.isna().to_numpy().nonzero()[0][0])
        _fail("ordered_at", row, f"Date {out['ordered_at'].iloc[row]!r} cannot be read.",
              "Set source.date_format to the format of the dates (e.g. '%Y%m%d').", source)
    if getattr(ordered_at.dt, "tz", None) is not None:
        ordered_at = ordered_at.dt.tz_convert("UTC").dt.tz_localize(None)
    out["ordered_at"] = ordered_at.astype("datetime64[us]")
    out["is_return"] = out["is_return"].fillna(False).astype(bool)
    return out


def validate_customers(df: pd.DataFrame, source: str = "customers") -> pd.DataFrame:
    """Check a customer table: one row per ``customer_id``, ids not null."""
    if "customer_id" not in df.columns:
        raise InputError("The customer table has no 'customer_id' column.", where=source,
                         fix="Map the customer id column in source.customer_columns.")
    out = df.copy()
    if out["customer_id"].isna().any():
        row = int(out["customer_id"].isna().to_numpy().nonzero()[0][0])
        _fail("customer_id", row, "Missing customer id in the customer table.",
              "Remove the row or fill in its id.", source)
    out["customer_id"] = out["customer_id"].astype("string")
    duplicated = out["customer_id"].duplicated()
    if duplicated.any():
        row = int(duplicated.to_numpy().nonzero()[0][0])
        _fail("customer_id", row, f"Customer {out['customer_id'].iloc[row]!r} appears twice.",
              "Keep one row per customer in the customer table.", source)
    if "referred_by" in out.columns:
        out["referred_by"] = out["referred_by"].astype("string")
    return out
