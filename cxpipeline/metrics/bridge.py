"""The revenue bridge (docs/architecture.md, "Revenue bridge"): why revenue moved from P-1 to P, customer by customer.

Every customer with revenue in either period falls in exactly one class; the class value is
the customer's signed change ``r(P) - r(P-1)``, so the bridge reconciles to the cent::

    revenue(P-1) + new + reactivated + increased + decreased + flat + stopped + returns_only
        == revenue(P)

(``decreased`` and ``stopped`` are negative). Classes, with r = net revenue:

- new: first-ever purchase is in P
- reactivated: not new, r(P-1) <= 0 and r(P) > 0 (bought before, nothing in P-1)
- increased / decreased / flat: r(P-1) > 0 and r(P) > 0, compared in cents
- stopped: r(P-1) > 0 and r(P) <= 0 (a return in P with no purchase makes it more negative)
- returns_only: not new, r(P-1) <= 0 and r(P) <= 0, not both zero (returns of older purchases
  and no purchase in either period, the change may be 0); usually tiny, kept so that the bridge's
  first and last lines are each period's revenue.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxpipeline.metrics.ids import as_ids
from cxpipeline.quality import cents

__all__ = ["BRIDGE_CLASSES", "BRIDGE_ORDER", "bridge_class_codes", "classify_customers", "revenue_bridge"]

BRIDGE_CLASSES = ["new", "reactivated", "increased", "decreased", "flat", "stopped", "returns_only"]
BRIDGE_ORDER = ["previous", *BRIDGE_CLASSES, "current"]


def bridge_class_codes(previous_cents: np.ndarray, current_cents: np.ndarray, is_new: np.ndarray) -> np.ndarray:
    """Each customer's bridge class as an index into :data:`BRIDGE_CLASSES` (the rules in the
    module docstring), -1 for no revenue in either period; revenues in integer cents.

    Used by :func:`classify_customers` and by the trend's bridge of every earlier period.
    """
    prev, cur = previous_cents, current_cents
    conditions = [
        is_new,
        (prev <= 0) & (cur > 0),
        (prev > 0) & (cur > prev),
        (prev > 0) & (cur > 0) & (cur < prev),
        (prev > 0) & (cur == prev),
        (prev > 0) & (cur <= 0),
        # Returns only, even unchanged: -5.00 in both periods is in both periods' revenue.
        (prev != 0) | (cur != 0),
    ]
    return np.select(conditions, np.arange(len(BRIDGE_CLASSES)), default=-1)


def classify_customers(
    panel: pd.DataFrame,
    period_start: pd.Timestamp,
    comparison_start: pd.Timestamp,
    *,
    customer_col: str = "customer_id",
    period_col: str = "period_start",
    revenue_col: str = "revenue",
    first_order_col: str = "first_order_at",
    period_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per customer with revenue in P or P-1: both revenues, change and bridge class.

    Parameters
    ----------
    panel
        Customer-period panel (see :data:`cxpipeline.schema.PANEL_COLUMNS`) covering at least
        all periods up to P; earlier periods are needed to tell new from reactivated.
    period_start, comparison_start
        First day of P and of the comparison period P-1 (previous period or a year earlier).
    period_end
        Exclusive end of P; rows at or after it are ignored. Defaults to all rows.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, revenue_previous, revenue_current, change, bridge_class``.
    """
    period_start, comparison_start = pd.Timestamp(period_start), pd.Timestamp(comparison_start)
    rows = panel if period_end is None else panel[panel[period_col] < pd.Timestamp(period_end)]
    first_purchase = rows.groupby(customer_col, observed=True)[first_order_col].min()
    current = rows.loc[rows[period_col] == period_start].groupby(customer_col, observed=True)[revenue_col].sum()
    previous = rows.loc[rows[period_col] == comparison_start].groupby(customer_col, observed=True)[revenue_col].sum()
    out = pd.DataFrame({"revenue_previous": previous, "revenue_current": current}).fillna(0.0)
    out.index.name = customer_col
    out = out.reset_index()
    out[customer_col] = as_ids(out[customer_col])

    prev_c, cur_c = cents(out["revenue_previous"]), cents(out["revenue_current"])
    first = first_purchase.reindex(out[customer_col]).to_numpy(dtype="datetime64[us]")
    is_new = (first >= np.datetime64(period_start)) & ~np.isnat(first)
    codes = bridge_class_codes(prev_c, cur_c, is_new)
    out["bridge_class"] = np.array(BRIDGE_CLASSES, dtype=object)[np.maximum(codes, 0)]
    out["change"] = (cur_c - prev_c) / 100
    out = out.loc[codes >= 0]
    return out[[customer_col, "revenue_previous", "revenue_current", "change", "bridge_class"]].reset_index(drop=True)


def _summarise(customers: pd.DataFrame) -> pd.DataFrame:
    counts = customers.groupby("bridge_class").size()
    values = customers.groupby("bridge_class")["change"].sum()
    rows = [
        ("previous", int((cents(customers["revenue_previous"]) > 0).sum()), customers["revenue_previous"].sum()),
        *((c, int(counts.get(c, 0)), float(values.get(c, 0.0))) for c in BRIDGE_CLASSES),
        ("current", int((cents(customers["revenue_current"]) > 0).sum()), customers["revenue_current"].sum()),
    ]
    out = pd.DataFrame(rows, columns=["bridge_class", "count_customers", "value"])
    out["value"] = out["value"].round(2)
    return out.astype({"count_customers": "int64", "value": "float64"})


def revenue_bridge(classified: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The bridge table, overall and per segment value.

    Parameters
    ----------
    classified
        Output of :func:`classify_customers`.
    segments
        ``customer_id`` + one column per segment attribute (see
        :func:`cxpipeline.metrics.breakdown.customer_segments`).

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, bridge_class, count_customers, value`` with classes in
        :data:`BRIDGE_ORDER`; ``previous``/``current`` hold the period revenues.
    """
    from cxpipeline.metrics.breakdown import by_segment

    frame = classified.merge(segments, on="customer_id", how="left")
    return by_segment(frame, list(segment_columns), _summarise)
