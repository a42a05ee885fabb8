"""Profitability over the trailing 12 months (docs/architecture.md, "Profitability and lifetime value") and the whale curve.

Per customer with any transaction in the 12 months before the end of P:
margin = net revenue - cost of goods (net of returned goods) - cost to serve. A customer is
*unprofitable* when their margin is below zero (to the cent). Share of value unprofitable =
net revenue of unprofitable customers / net revenue of all (0 when revenue is 0).

The whale curve ranks customers by margin, best first, and gives the cumulative margin as a
share of the total margin at each share of customers: it rises above 100 % (the profitable
customers) and falls back to 100 % as the unprofitable ones give part of it away. The curve is
sampled at every 0.5 % of customers plus its peak, so the table is small for any base.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ids import as_ids

__all__ = ["profit_customers", "profitability_table", "whale_curve", "WHALE_POINTS"]

WHALE_POINTS = 200


def profit_customers(panel: pd.DataFrame, period_end: pd.Timestamp, months: int = 12) -> pd.DataFrame:
    """Trailing revenue, costs and margin per customer.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, revenue, cost, cost_to_serve, margin, is_unprofitable``.
    """
    end = pd.Timestamp(period_end)
    rows = panel.loc[(panel["period_start"] < end) & (panel["period_start"] >= end - pd.DateOffset(months=months))]
    out = rows.groupby("customer_id", observed=True)[["revenue", "cost", "cost_to_serve"]].sum().round(2)
    out["margin"] = ((np.rint(out["revenue"] * 100) - np.rint(out["cost"] * 100) - np.rint(out["cost_to_serve"] * 100)) / 100)
    out["is_unprofitable"] = np.rint(out["margin"] * 100) < 0
    out.index.name = "customer_id"
    out = out.reset_index()
    out["customer_id"] = as_ids(out["customer_id"])
    return out


def profitability_table(profits: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str]) -> pd.DataFrame:
    """Margin and the unprofitable share of customers and value, overall and per segment.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, count_customers, revenue, cost, cost_to_serve, margin,
        count_unprofitable, revenue_unprofitable, margin_unprofitable, share_unprofitable,
        share_value_unprofitable, margin_rate`` (ratios 0 when their denominator is 0).
    """
    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        bad = rows["is_unprofitable"]
        revenue = round(float(rows["revenue"].sum()), 2)
        margin = round(float(rows["margin"].sum()), 2)
        revenue_bad = round(float(rows.loc[bad, "revenue"].sum()), 2)
        return pd.DataFrame([{
            "count_customers": len(rows), "revenue": revenue,
            "cost": round(float(rows["cost"].sum()), 2), "cost_to_serve": round(float(rows["cost_to_serve"].sum()), 2),
            "margin": margin, "count_unprofitable": int(bad.sum()), "revenue_unprofitable": revenue_bad,
            "margin_unprofitable": round(float(rows.loc[bad, "margin"].sum()), 2),
            "share_unprofitable": int(bad.sum()) / len(rows) if len(rows) else 0.0,
            "share_value_unprofitable": revenue_bad / revenue if revenue else 0.0,
            "margin_rate": margin / revenue if revenue else 0.0,
        }])

    return by_segment(profits.merge(segments, on="customer_id", how="left"), list(segment_columns), summarise)


def whale_curve(profits: pd.DataFrame, points: int = WHALE_POINTS) -> pd.DataFrame:
    """Cumulative margin share by share of customers ranked by margin (best first).

    Returns
    -------
    pandas.DataFrame
        ``share_customers, count_customers, cumulative_margin, cumulative_margin_share,
        is_peak`` from (0, 0) to (1, total); ``cumulative_margin_share`` is 0 when the total
        margin is 0.
    """
    margins = np.sort(profits["margin"].to_numpy(dtype="float64"))[::-1]
    n = len(margins)
    cumulative = np.concatenate([[0.0], np.cumsum(margins)])
    counts = np.unique(np.concatenate([np.rint(np.linspace(0, n, points + 1)).astype("int64"), [int(np.argmax(cumulative))]]))
    total = cumulative[-1]
    out = pd.DataFrame({
        "share_customers": counts / n if n else np.zeros(len(counts)),
        "count_customers": counts,
        "cumulative_margin": np.round(cumulative[counts], 2),
    })
    out["cumulative_margin_share"] = out["cumulative_margin"] / total if round(total, 2) else 0.0
    out["is_peak"] = out["count_customers"] == int(np.argmax(cumulative))
    return out
