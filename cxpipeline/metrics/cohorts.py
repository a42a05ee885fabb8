"""Acquisition cohorts (docs/architecture.md, "Cohorts"): share still active and revenue retained.

A customer's acquisition cohort is the first period in which they have any transaction (their
first purchase for everyone but the rare customer whose earliest rows are returns; using the
first transaction keeps every revenue row inside a cohort, so cohort totals equal period
totals). For each cohort and each period from its acquisition to P (a full triangle, zeros
included):

- active = cohort members with a purchase order in that period; share active = active /
  cohort size;
- revenue = net revenue of the cohort's members in that period; revenue retained = revenue /
  the cohort's revenue in its acquisition period (0 when that revenue is not positive).

Summed over cohorts, active counts and revenue equal the panel's totals for each period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxpipeline.periods import Period

__all__ = ["cohort_table"]


def _month_index(values: pd.Series) -> np.ndarray:
    return (values.dt.year * 12 + values.dt.month - 1).to_numpy(dtype="int64")


def cohort_table(panel: pd.DataFrame, period: Period) -> pd.DataFrame:
    """The cohort x periods-since-acquisition table up to and including ``period``.

    Returns
    -------
    pandas.DataFrame
        ``cohort, cohort_start, period, period_start, periods_since, count_cohort,
        count_active, share_active, revenue, revenue_first_period, revenue_retained``.
    """
    end = pd.Timestamp(period.end)
    rows = panel.loc[panel["period_start"] < end, ["customer_id", "period_start", "revenue", "count_orders"]]
    step = period.months
    first = rows.groupby("customer_id", observed=True)["period_start"].min().rename("cohort_start")
    rows = rows.join(first, on="customer_id")
    rows["periods_since"] = (_month_index(rows["period_start"]) - _month_index(rows["cohort_start"])) // step
    rows["is_active"] = rows["count_orders"] > 0
    cells = rows.groupby(["cohort_start", "periods_since"]).agg(count_active=("is_active", "sum"), revenue=("revenue", "sum"))
    sizes = first.value_counts().sort_index()

    last_index = (pd.Timestamp(period.start).year * 12 + pd.Timestamp(period.start).month - 1)
    cohort_idx = _month_index(pd.Series(sizes.index))
    lengths = (last_index - cohort_idx) // step + 1
    grid = pd.DataFrame({
        "cohort_start": np.repeat(sizes.index.to_numpy(), lengths),
        "periods_since": np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.array([], dtype="int64"),
    })
    grid = grid.join(cells, on=["cohort_start", "periods_since"]).fillna({"count_active": 0, "revenue": 0.0})
    grid["count_cohort"] = grid["cohort_start"].map(sizes).astype("int64")
    month = _month_index(grid["cohort_start"]) + grid["periods_since"].to_numpy(dtype="int64") * step
    grid["period_start"] = pd.to_datetime(pd.DataFrame({"year": month // 12, "month": month % 12 + 1, "day": 1})).astype("datetime64[us]")
    grid["cohort_start"] = grid["cohort_start"].astype("datetime64[us]")
    grid["count_active"] = grid["count_active"].astype("int64")
    grid["revenue"] = grid["revenue"].round(2)
    grid["share_active"] = grid["count_active"] / grid["count_cohort"]
    first_revenue = grid.loc[grid["periods_since"] == 0].set_index("cohort_start")["revenue"]
    grid["revenue_first_period"] = grid["cohort_start"].map(first_revenue).astype("float64")
    positive = grid["revenue_first_period"] > 0
    grid["revenue_retained"] = np.where(positive, grid["revenue"] / grid["revenue_first_period"].where(positive, 1.0), 0.0)
    starts = pd.DatetimeIndex(pd.concat([grid["cohort_start"], grid["period_start"]])).unique()
    labels = {start: Period(start.date(), period.kind, period.fiscal_start_month).label for start in starts}
    grid["cohort"] = grid["cohort_start"].map(labels).astype("string")
    grid["period"] = grid["period_start"].map(labels).astype("string")
    grid["periods_since"] = grid["periods_since"].astype("int64")
    return grid[["cohort", "cohort_start", "period", "period_start", "periods_since", "count_cohort", "count_active",
                 "share_active", "revenue", "revenue_first_period", "revenue_retained"]]
