"""Named RFM segments at the end of P (docs/architecture.md, "Segments and movement across them"), with the value they hold.

Scored customers: everyone with at least one purchase before the end of P.

- Recency R: days from the last purchase to the end of P (fewer days = better).
- Frequency F: purchase orders to date.
- Monetary M: net revenue to date.

Each is turned into a quintile score 1-5 among the scored customers: ``score = ceil(5 x p)``
where ``p`` is the customer's percentile rank (ties share the average rank, so equal values
always get the same score); recency is ranked so the most recent buyers score 5. The segment
comes from R and FM = round-half-up((F + M) / 2) through the grid :data:`RFM_GRID` — the
widely used R x F segment map, with the single cell R=1, FM=1 named "Lost". Value held =
trailing 12-month net revenue at the end of P.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ids import as_ids

__all__ = ["RFM_SEGMENTS", "RFM_GRID", "quintile_scores", "rfm_customers", "rfm_segments"]

RFM_SEGMENTS = [
    "Champions", "Loyal", "Potential Loyalists", "New", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
]

#: RFM_GRID[r - 1][fm - 1] -> segment name (r = recency score, fm = frequency-monetary score).
RFM_GRID = [
    ["Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],  # R = 1
    ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],  # R = 2
    ["About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"],  # R = 3
    ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal", "Loyal"],  # R = 4
    ["New", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],  # R = 5
]


def quintile_scores(values: pd.Series | np.ndarray) -> np.ndarray:
    """Score 1-5 by percentile rank (higher value = higher score; ties share a score)."""
    ranks = pd.Series(np.asarray(values, dtype="float64")).rank(method="average", pct=True).to_numpy()
    return np.clip(np.ceil(np.round(ranks * 5, 9)), 1, 5).astype("int64")


def rfm_customers(panel: pd.DataFrame, period_end: pd.Timestamp) -> pd.DataFrame:
    """RFM inputs, scores and segment for every customer with a purchase before ``period_end``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, recency_days, frequency, monetary, value_12m, r_score, f_score,
        m_score, fm_score, rfm_segment``.
    """
    end = pd.Timestamp(period_end)
    rows = panel.loc[panel["period_start"] < end]
    grouped = rows.groupby("customer_id", observed=True)
    frame = pd.DataFrame({
        "last_order_at": grouped["last_order_at"].max(),
        "frequency": grouped["count_orders"].sum(),
        "monetary": grouped["revenue"].sum().round(2),
    })
    trailing = rows.loc[rows["period_start"] >= end - pd.DateOffset(months=12)]
    frame["value_12m"] = trailing.groupby("customer_id", observed=True)["revenue"].sum().reindex(frame.index, fill_value=0.0).round(2)
    frame = frame.loc[frame["last_order_at"].notna() & (frame["frequency"] > 0)]
    frame.index.name = "customer_id"
    frame = frame.reset_index()
    frame["customer_id"] = as_ids(frame["customer_id"])
    frame["recency_days"] = (end - frame["last_order_at"]).dt.total_seconds() / 86400
    frame["r_score"] = quintile_scores(-frame["recency_days"])
    frame["f_score"] = quintile_scores(frame["frequency"])
    frame["m_score"] = quintile_scores(frame["monetary"])
    frame["fm_score"] = np.floor((frame["f_score"] + frame["m_score"]) / 2 + 0.5).astype("int64")
    grid = np.asarray(RFM_GRID, dtype=object)
    frame["rfm_segment"] = pd.array(grid[frame["r_score"].to_numpy() - 1, frame["fm_score"].to_numpy() - 1], dtype="string")
    frame["frequency"] = frame["frequency"].astype("int64")
    return frame[["customer_id", "recency_days", "frequency", "monetary", "value_12m", "r_score", "f_score",
                  "m_score", "fm_score", "rfm_segment"]]


def rfm_segments(customers: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str]) -> pd.DataFrame:
    """Count and value held per RFM segment (all 11, zeros included), overall and per segment.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, rfm_segment, count_customers, value, share_customers,
        share_value, mean_recency_days`` (shares of the group's total; 0 when the total is 0;
        mean recency 0 for an empty RFM segment).
    """
    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        grouped = rows.groupby("rfm_segment", observed=True).agg(
            count_customers=("value_12m", "size"), value=("value_12m", "sum"), recency=("recency_days", "sum"))
        grouped = grouped.reindex(RFM_SEGMENTS, fill_value=0)
        grouped.index.name = "rfm_segment"
        total_count, total_value = grouped["count_customers"].sum(), grouped["value"].sum()
        grouped["share_customers"] = grouped["count_customers"] / total_count if total_count else 0.0
        grouped["share_value"] = grouped["value"] / total_value if round(total_value, 2) else 0.0
        grouped["mean_recency_days"] = np.where(grouped["count_customers"] > 0,
                                                grouped["recency"] / grouped["count_customers"].clip(lower=1), 0.0)
        return grouped.drop(columns="recency").reset_index()

    out = by_segment(customers.merge(segments, on="customer_id", how="left"), list(segment_columns), summarise)
    out = out.astype({"rfm_segment": "string", "count_customers": "int64", "value": "float64"})
    out["value"] = out["value"].round(2)
    return out
