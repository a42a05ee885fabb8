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


_MONDAY = pd.Timestamp("1970-01-05")  # weeks are counted from a Monday


def _month_index(values: pd.Series, kind: str = "month") -> np.ndarray:
    """Months since year 0, or for weekly periods weeks since 1970-01-05 (a Monday)."""
    if kind == "week":
        return ((values - _MONDAY).dt.days // 7).to_numpy(dtype="int64")
    return (values.dt.year * 12 + values.dt.month - 1).to_numpy(dtype="int64")


def _starts(index: np.ndarray, kind: str) -> pd.Series:
    """The period starts of :func:`_month_index` values."""
    if kind == "week":
        return pd.Series(_MONDAY + pd.to_timedelta(index * 7, unit="D")).astype("datetime64[us]")
    return pd.to_datetime(pd.DataFrame({"year": index // 12, "month": index % 12 + 1, "day": 1})).astype("datetime64[us]")


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
    kind = period.kind
    step = 1 if kind == "week" else period.months
    first = rows.groupby("customer_id", observed=True)["period_start"].min().rename("cohort_start")
    rows = rows.join(first, on="customer_id")
    rows["periods_since"] = (_month_index(rows["period_start"], kind) - _month_index(rows["cohort_start"], kind)) // step
    rows["is_active"] = rows["count_orders"] > 0
    cells = rows.groupby(["cohort_start", "periods_since"]).agg(count_active=("is_active", "sum"), revenue=("revenue", "sum"))
    sizes = first.value_counts().sort_index()

    last_index = int(_month_index(pd.Series([pd.Timestamp(period.start)]), kind)[0])
    cohort_idx = _month_index(pd.Series(sizes.index), kind)
    lengths = (last_index - cohort_idx) // step + 1
    grid = pd.DataFrame({
        "cohort_start": np.repeat(sizes.index.to_numpy(), lengths),
        "periods_since": np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.array([], dtype="int64"),
    })
    grid = grid.join(cells, on=["cohort_start", "periods_since"]).fillna({"count_active": 0, "revenue": 0.0})
    grid["count_cohort"] = grid["cohort_start"].map(sizes).astype("int64")
    index = _month_index(grid["cohort_start"], kind) + grid["periods_since"].to_numpy(dtype="int64") * step
    grid["period_start"] = _starts(index, kind).to_numpy()
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
