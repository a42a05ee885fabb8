"""The customer asset ledger (docs/architecture.md, "Customer asset ledger"): the active base as a stock with flows.

A customer is *active* at instant t if their last purchase before t is no more than the lapse
window before t. The window is fixed (``window_days``) or personal: k x the customer's median
gap between purchase orders before t, clipped to [floor, cap]; customers with a single order
use the fixed window. For period P = [s, e)::

    opening  = active at s
    new      = first-ever purchase in P
    reactivated = bought in P, bought before s, not active at s
    lapsed   = (active at s, or new, or reactivated) and not active at e
    closing  = active at e
    opening + new + reactivated - lapsed == closing   (exact, per segment)

It is exact because a customer who does not buy in P keeps the same last purchase and the same
order history, hence the same window, at s and at e.

Value is trailing-12-month net revenue at the period boundary (the 12 months before s for the
opening base; before e for new, reactivated and closing). Lapsed value is the trailing
12-month value up to the end of the period of their last purchase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxpipeline.metrics.ids import as_ids

__all__ = [
    "LapseRule",
    "LEDGER_LINES",
    "last_purchase_before",
    "active_at",
    "is_active",
    "trailing_value",
    "customer_flows",
    "customer_flows_by_rule",
    "asset_ledger",
]

LEDGER_LINES = ["opening", "new", "reactivated", "lapsed", "closing"]


@dataclass(frozen=True)
class LapseRule:
    """How long after the last purchase a customer counts as lapsed."""

    mode: str = "fixed"  # "fixed" or "personal"
    window_days: float = 365
    k: float = 2.0
    floor_days: float = 30
    cap_days: float = 730

    @classmethod
    def from_config(cls, lapse) -> "LapseRule":
        return cls(lapse.mode, lapse.window_days, lapse.k, lapse.floor_days, lapse.cap_days)

    def with_k(self, k: float) -> "LapseRule":
        return LapseRule("personal", self.window_days, k, self.floor_days, self.cap_days)


def last_purchase_before(panel: pd.DataFrame, instant: pd.Timestamp) -> pd.Series:
    """Last purchase timestamp per customer among panel periods starting before ``instant``.

    ``instant`` must be a period boundary, so a whole period is either before or after it.
    """
    rows = panel.loc[(panel["period_start"] < instant) & panel["last_order_at"].notna(), ["customer_id", "last_order_at"]]
    return rows.groupby("customer_id", observed=True)["last_order_at"].max()


def _cadence_at(customers: pd.Index, cadence: pd.DataFrame | None, instant: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """(median gap days, order count) per customer from the cadence rows at ``instant``."""
    if cadence is None:
        raise ValueError("the personal lapse rule needs the cadence table (customer_cadence)")
    at = cadence.loc[cadence["as_of"] == instant].set_index("customer_id")
    median = at["median_gap_days"].reindex(customers).to_numpy(dtype="float64")
    orders = at["count_orders"].reindex(customers).fillna(0).to_numpy()
    return median, orders


def _windows(customers: pd.Index, rule: LapseRule, cadence: pd.DataFrame | None, instant: pd.Timestamp,
             cadence_at: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    fixed = np.full(len(customers), float(rule.window_days))
    if rule.mode != "personal":
        return fixed
    median, orders = cadence_at if cadence_at is not None else _cadence_at(customers, cadence, instant)
    personal = np.clip(rule.k * median, rule.floor_days, rule.cap_days)
    return np.where((orders >= 2) & ~np.isnan(median), personal, fixed)


def active_at(
    panel: pd.DataFrame, instant: pd.Timestamp, rule: LapseRule, cadence: pd.DataFrame | None = None
) -> pd.Series:
    """Boolean per customer who bought before ``instant``: active at ``instant``."""
    instant = pd.Timestamp(instant)
    last = last_purchase_before(panel, instant)
    return pd.Series(is_active(last, instant, rule, cadence), index=last.index, name="is_active")


def is_active(last_purchase: pd.Series, instant: pd.Timestamp, rule: LapseRule, cadence: pd.DataFrame | None = None) -> np.ndarray:
    """Active at ``instant`` given each customer's last purchase before it (index: customer id)."""
    days_since = _days_since(pd.Timestamp(instant), last_purchase)
    return days_since <= _windows(last_purchase.index, rule, cadence, pd.Timestamp(instant))


def trailing_value(panel: pd.DataFrame, instant: pd.Timestamp, months: int = 12) -> pd.Series:
    """Net revenue per customer in the ``months`` months before ``instant`` (period-aligned)."""
    instant = pd.Timestamp(instant)
    start = instant - pd.DateOffset(months=months)
    rows = panel.loc[(panel["period_start"] >= start) & (panel["period_start"] < instant), ["customer_id", "revenue"]]
    return rows.groupby("customer_id", observed=True)["revenue"].sum()


def _lapsed_value(panel: pd.DataFrame, lapsed_ids: pd.Index | None, period_months: int, end: pd.Timestamp) -> pd.Series:
    """Trailing 12-month value up to the end of the period holding each customer's last purchase.

    ``lapsed_ids=None`` computes it for every customer (each customer's value only depends on
    their own rows, so it is the same number as when computed for a subset).
    """
    rows = panel.loc[panel["period_start"] < end, ["customer_id", "period_start", "revenue", "last_order_at"]]
    if lapsed_ids is not None:
        rows = rows.loc[rows["customer_id"].isin(lapsed_ids)]
    last_period = rows.loc[rows["last_order_at"].notna()].groupby("customer_id", observed=True)["period_start"].max()
    rows = rows.join(last_period.rename("last_period"), on="customer_id")
    window_start = rows["last_period"] + pd.DateOffset(months=period_months) - pd.DateOffset(months=12)
    inside = (rows["period_start"] <= rows["last_period"]) & (rows["period_start"] >= window_start)
    return rows.loc[inside].groupby("customer_id", observed=True)["revenue"].sum()


def _days_since(instant: pd.Timestamp, last: pd.Series) -> np.ndarray:
    return (instant - last).dt.total_seconds().to_numpy() / 86400


def customer_flows(
    panel: pd.DataFrame,
    period_start: pd.Timestamp,
    period_end: pd.Timestamp,
    rule: LapseRule,
    cadence: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per customer touched by the ledger in P, with flags and values.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, is_opening, is_new, is_reactivated, is_lapsed, is_closing,
        value_opening, value_closing, value_lapsed`` (values: trailing 12-month net revenue).
    """
    return customer_flows_by_rule(panel, period_start, period_end, [rule], cadence)[0]


def customer_flows_by_rule(
    panel: pd.DataFrame,
    period_start: pd.Timestamp,
    period_end: pd.Timestamp,
    rules: Sequence[LapseRule],
    cadence: pd.DataFrame | None = None,
) -> list[pd.DataFrame]:
    """:func:`customer_flows` for several lapse rules at once (one frame per rule, in order).

    What does not depend on the rule (last purchase at s and e, first purchase, trailing
    values, the lapsed value of every customer) is computed once.
    """
    s, e = pd.Timestamp(period_start), pd.Timestamp(period_end)
    columns = ["customer_id", "period_start", "revenue", "count_orders", "first_order_at", "last_order_at"]
    panel = panel.loc[panel["period_start"] < e, columns]
    months = round((e - s).days / 30.4375)
    last_s, last_e = last_purchase_before(panel, s), last_purchase_before(panel, e)
    since_s, since_e = _days_since(s, last_s), _days_since(e, last_e)
    first = panel.loc[panel["first_order_at"].notna()].groupby("customer_id", observed=True)["first_order_at"].min()
    bought = panel.loc[(panel["period_start"] == s) & (panel["count_orders"] > 0), "customer_id"].unique()

    ids = last_e.index.union(last_s.index).rename("customer_id")
    is_bought = ids.isin(bought)
    first_in_p = (first.reindex(ids) >= s).fillna(False).to_numpy(dtype=bool)
    value_s, value_e = trailing_value(panel, s), trailing_value(panel, e)
    personal = any(rule.mode == "personal" for rule in rules)
    cadence_s = _cadence_at(last_s.index, cadence, s) if personal else None
    cadence_e = _cadence_at(last_e.index, cadence, e) if personal else None
    lapsed_values: pd.Series | None = None

    results = []
    for rule in rules:
        active_s = pd.Series(since_s <= _windows(last_s.index, rule, cadence, s, cadence_s), index=last_s.index)
        active_e = pd.Series(since_e <= _windows(last_e.index, rule, cadence, e, cadence_e), index=last_e.index)
        out = pd.DataFrame(index=ids)
        out["is_opening"] = active_s.reindex(ids, fill_value=False).astype(bool)
        out["is_closing"] = active_e.reindex(ids, fill_value=False).astype(bool)
        out["is_new"] = is_bought & first_in_p
        out["is_reactivated"] = is_bought & ~first_in_p & ~out["is_opening"].to_numpy()
        was_in = out["is_opening"] | out["is_new"] | out["is_reactivated"]
        out["is_lapsed"] = was_in & ~out["is_closing"]
        out = out.loc[was_in | out["is_closing"]]

        out["value_opening"] = value_s.reindex(out.index, fill_value=0.0)
        out["value_closing"] = value_e.reindex(out.index, fill_value=0.0)
        if len(rules) == 1:  # one rule: only the lapsed customers' rows are needed
            lapsed = _lapsed_value(panel, out.index[out["is_lapsed"]], months, e)
        else:
            if lapsed_values is None:
                lapsed_values = _lapsed_value(panel, None, months, e)
            lapsed = lapsed_values
        out["value_lapsed"] = lapsed.reindex(out.index, fill_value=0.0)
        out.loc[~out["is_lapsed"], "value_lapsed"] = 0.0
        out = out.reset_index()
        out["customer_id"] = as_ids(out["customer_id"])
        results.append(out)
    return results


def _summarise(flows: pd.DataFrame) -> pd.DataFrame:
    def line(name: str, flag: str, value: str) -> tuple[str, int, float]:
        mask = flows[flag]
        return name, int(mask.sum()), round(float(flows.loc[mask, value].sum()), 2)

    rows = [
        line("opening", "is_opening", "value_opening"),
        line("new", "is_new", "value_closing"),
        line("reactivated", "is_reactivated", "value_closing"),
        line("lapsed", "is_lapsed", "value_lapsed"),
        line("closing", "is_closing", "value_closing"),
    ]
    return pd.DataFrame(rows, columns=["ledger_line", "count_customers", "value"]).astype(
        {"count_customers": "int64", "value": "float64"}
    )


def asset_ledger(flows: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The ledger table overall and per segment value.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, ledger_line, count_customers, value`` with lines in
        :data:`LEDGER_LINES`.
    """
    from cxpipeline.metrics.breakdown import by_segment

    frame = flows.merge(segments, on="customer_id", how="left")
    return by_segment(frame, list(segment_columns), _summarise)
