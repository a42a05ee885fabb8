"""Behaviour patterns and the revenue decomposition (docs/architecture.md, "Behaviour patterns"), and bridge movers by segment.

For a period X (P, and the comparison period P-1 for the comparison column), per group:

- customers: customers with at least one purchase order in X;
- orders per customer = purchase orders / customers;
- average order value = net revenue of X (returns included) / purchase orders, so that
  revenue = customers x orders per customer x average order value exactly;
- days between orders = sum over customers with 2+ orders in X of (last - first order) /
  sum of (orders - 1): the average gap between consecutive orders inside X;
- share overdue (weakening) = among customers active at the end of X (ledger lapse rule)
  with 2+ orders to date, the share whose days since last purchase exceed their own median
  gap between orders (cadence table);
- share buying more often (strengthening) = among customers with orders both in X and in X's
  own comparison period, the share with more orders in X.

A ratio whose denominator is zero is written as 0; the denominator is always in the table
(``count_*`` columns) and the pack prints "n/a" for it.

The decomposition splits R1 - R0 into customers, frequency and order-value effects with the
additive log-mean Divisia index (LMDI-I): effect_x = L(R1, R0) x ln(x1 / x0), L(a, b) =
(a - b) / (ln a - ln b), which sums exactly to R1 - R0 when every factor is positive in both
periods. When a group has no customers in one period the whole change is the customers
effect; when net revenue is not positive in a period (returns exceed sales) the chained
(sequential) decomposition is used. Effects are rounded to the cent and any rounding cent is
put on the largest effect, so the three effects always add back to the change to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ids import as_ids
from cxpipeline.metrics.ledger import LapseRule, is_active, last_purchase_before

__all__ = [
    "PERIOD_ROLES",
    "behaviour_customers",
    "behaviour_table",
    "decompose_revenue",
    "revenue_decomposition",
    "bridge_movers",
]

PERIOD_ROLES = ["current", "comparison"]


def _period_rows(panel: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    rows = panel.loc[panel["period_start"] == pd.Timestamp(start),
                     ["customer_id", "revenue", "count_orders", "first_order_at", "last_order_at"]]
    return rows.groupby("customer_id", observed=True).agg(
        revenue=("revenue", "sum"), orders=("count_orders", "sum"),
        first=("first_order_at", "min"), last=("last_order_at", "max"))


def _overdue(panel: pd.DataFrame, instant: pd.Timestamp, rule: LapseRule, cadence: pd.DataFrame | None) -> tuple[pd.Series, pd.Series]:
    """(has_cadence, is_overdue) per customer active at ``instant`` with 2+ orders to date."""
    instant = pd.Timestamp(instant)
    last = last_purchase_before(panel, instant)
    active = is_active(last, instant, rule, cadence)
    since_last = ((instant - last).dt.total_seconds() / 86400)[active]
    active = pd.Series(True, index=last.index[active])
    if cadence is None or not (cadence["as_of"] == instant).any():
        empty = pd.Series(False, index=active.index)
        return empty, empty
    at = cadence.loc[cadence["as_of"] == instant].set_index("customer_id")
    median = at["median_gap_days"].reindex(active.index)
    orders = at["count_orders"].reindex(active.index).fillna(0)
    has = median.notna() & (orders >= 2)
    return has, has & (since_last > median)


def behaviour_customers(
    panel: pd.DataFrame,
    starts: dict[str, pd.Timestamp],
    ends: dict[str, pd.Timestamp],
    befores: dict[str, pd.Timestamp],
    rule: LapseRule,
    cadence: pd.DataFrame | None,
    customer_ids: pd.Series,
) -> pd.DataFrame:
    """Per customer and role (current / comparison): the quantities the behaviour table sums.

    Parameters
    ----------
    starts, ends
        Start and exclusive end of each role's period (``{"current": ..., "comparison": ...}``).
    befores
        Start of each role's own comparison period (for "buying more often").
    customer_ids
        Every customer of the run (rows for all of them, zeros where they did nothing).
    """
    ids = pd.Index(as_ids(pd.Series(customer_ids)).drop_duplicates(), name="customer_id")
    out = pd.DataFrame(index=ids)
    for role in PERIOD_ROLES:
        this = _period_rows(panel, starts[role]).reindex(ids)
        before = _period_rows(panel, befores[role])["orders"].reindex(ids).fillna(0)
        orders = this["orders"].fillna(0).to_numpy(dtype="int64")
        multi = orders >= 2
        span = (this["last"] - this["first"]).dt.total_seconds().to_numpy() / 86400
        out[f"revenue_{role}"] = this["revenue"].fillna(0.0).to_numpy()
        out[f"orders_{role}"] = orders
        out[f"span_days_{role}"] = np.where(multi, np.nan_to_num(span), 0.0)
        out[f"gaps_{role}"] = np.where(multi, orders - 1, 0)
        bought_both = (orders > 0) & (before.to_numpy() > 0)
        out[f"bought_both_{role}"] = bought_both
        out[f"more_often_{role}"] = bought_both & (orders > before.to_numpy())
        has, overdue = _overdue(panel, ends[role], rule, cadence)  # only rows before the end count
        out[f"has_cadence_{role}"] = has.reindex(ids, fill_value=False).to_numpy(dtype=bool)
        out[f"overdue_{role}"] = overdue.reindex(ids, fill_value=False).to_numpy(dtype=bool)
    return out.reset_index()


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _summarise_behaviour(rows: pd.DataFrame) -> pd.DataFrame:
    records = []
    for role in PERIOD_ROLES:
        customers = int((rows[f"orders_{role}"] > 0).sum())
        orders = int(rows[f"orders_{role}"].sum())
        revenue = round(float(rows[f"revenue_{role}"].sum()), 2)
        gaps = int(rows[f"gaps_{role}"].sum())
        with_cadence = int(rows[f"has_cadence_{role}"].sum())
        both = int(rows[f"bought_both_{role}"].sum())
        records.append({
            "period": role, "count_customers": customers, "count_orders": orders, "revenue": revenue,
            "orders_per_customer": _ratio(orders, customers),
            "average_order_value": _ratio(revenue, orders),
            "count_gaps": gaps, "days_between_orders": _ratio(rows[f"span_days_{role}"].sum(), gaps),
            "count_with_cadence": with_cadence,
            "count_overdue": int(rows[f"overdue_{role}"].sum()),
            "share_overdue": _ratio(rows[f"overdue_{role}"].sum(), with_cadence),
            "count_bought_both": both,
            "count_buying_more_often": int(rows[f"more_often_{role}"].sum()),
            "share_buying_more_often": _ratio(rows[f"more_often_{role}"].sum(), both),
        })
    return pd.DataFrame.from_records(records)


def behaviour_table(per_customer: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str]) -> pd.DataFrame:
    """Behaviour per group and period role (``current`` / ``comparison``).

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, period, count_customers, count_orders, revenue,
        orders_per_customer, average_order_value, count_gaps, days_between_orders,
        count_with_cadence, count_overdue, share_overdue, count_bought_both,
        count_buying_more_often, share_buying_more_often``.
    """
    frame = per_customer.merge(segments, on="customer_id", how="left")
    out = by_segment(frame, list(segment_columns), _summarise_behaviour)
    return out.astype({"period": "string"})


def _log_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (a - b) / (np.log(a) - np.log(b))
    return np.where(np.isclose(a, b, rtol=0, atol=1e-12), a, value)


def decompose_revenue(c0, o0, r0, c1, o1, r1) -> dict[str, np.ndarray]:
    """Customers x orders per customer x average order value, for arrays of groups.

    Parameters
    ----------
    c0, o0, r0, c1, o1, r1
        Customers (with a purchase), purchase orders and net revenue in P-1 and P.

    Returns
    -------
    dict
        ``customers_effect, frequency_effect, order_value_effect`` (cents-rounded, summing to
        ``r1 - r0`` to the cent), ``customers_ratio, frequency_ratio, order_value_ratio``
        (0 where undefined) and ``method`` (``lmdi``, ``customers_only`` or ``sequential``).
    """
    c0, o0, r0, c1, o1, r1 = (np.asarray(x, dtype="float64") for x in (c0, o0, r0, c1, o1, r1))
    with np.errstate(divide="ignore", invalid="ignore"):
        f0, f1 = np.where(c0 > 0, o0 / c0, 0.0), np.where(c1 > 0, o1 / c1, 0.0)
        a0, a1 = np.where(o0 > 0, r0 / o0, 0.0), np.where(o1 > 0, r1 / o1, 0.0)
        lmdi_ok = (c0 > 0) & (c1 > 0) & (r0 > 0) & (r1 > 0)
        weight = _log_mean(np.where(lmdi_ok, r1, 1.0), np.where(lmdi_ok, r0, 1.0))
        ln = lambda x1, x0: np.log(np.where(lmdi_ok, x1, 1.0) / np.where(lmdi_ok, x0, 1.0))  # noqa: E731
        lmdi = [weight * ln(c1, c0), weight * ln(f1, f0), weight * ln(a1, a0)]
    no_customers = (c0 == 0) | (c1 == 0)
    sequential = [(c1 - c0) * f0 * a0, c1 * (f1 - f0) * a0, c1 * f1 * (a1 - a0)]
    change_cents = np.rint(r1 * 100) - np.rint(r0 * 100)
    effects = []
    for i in range(3):
        only_customers = (r1 - r0) if i == 0 else np.zeros_like(r1)
        value = np.where(lmdi_ok, lmdi[i], np.where(no_customers, only_customers, sequential[i]))
        effects.append(np.rint(np.nan_to_num(value) * 100))
    stacked = np.vstack(effects)
    residual = change_cents - stacked.sum(axis=0)
    largest = np.argmax(np.abs(stacked), axis=0)
    stacked[largest, np.arange(stacked.shape[1])] += residual
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = [np.where((x0 != 0) & (x1 != 0), x1 / np.where(x0 != 0, x0, 1.0), 0.0) for x0, x1 in ((c0, c1), (f0, f1), (a0, a1))]
    method = np.where(lmdi_ok, "lmdi", np.where(no_customers, "customers_only", "sequential"))
    return {
        "customers_effect": stacked[0] / 100, "frequency_effect": stacked[1] / 100, "order_value_effect": stacked[2] / 100,
        "customers_ratio": ratios[0], "frequency_ratio": ratios[1], "order_value_ratio": ratios[2], "method": method,
    }


def revenue_decomposition(behaviour: pd.DataFrame) -> pd.DataFrame:
    """The decomposition per group, from the behaviour table's two period rows.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, revenue_previous, revenue_current, change,
        customers_previous, customers_current, orders_per_customer_previous/_current,
        average_order_value_previous/_current, customers_ratio, frequency_ratio,
        order_value_ratio, customers_effect, frequency_effect, order_value_effect, method``.
    """
    keys = ["segment", "segment_value"]
    cur = behaviour.loc[behaviour["period"] == "current"].set_index(keys)
    prev = behaviour.loc[behaviour["period"] == "comparison"].set_index(keys).reindex(cur.index)
    parts = decompose_revenue(prev["count_customers"], prev["count_orders"], prev["revenue"],
                              cur["count_customers"], cur["count_orders"], cur["revenue"])
    out = pd.DataFrame({
        "revenue_previous": prev["revenue"], "revenue_current": cur["revenue"],
        "change": (cur["revenue"] - prev["revenue"]).round(2),
        "customers_previous": prev["count_customers"], "customers_current": cur["count_customers"],
        "orders_per_customer_previous": prev["orders_per_customer"], "orders_per_customer_current": cur["orders_per_customer"],
        "average_order_value_previous": prev["average_order_value"], "average_order_value_current": cur["average_order_value"],
    }, index=cur.index)
    for key, value in parts.items():
        out[key] = value
    out["method"] = out["method"].astype("string")
    return out.reset_index()


def bridge_movers(classified: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str], tolerance: float) -> pd.DataFrame:
    """Increased and decreased customers (bridge classes) by segment, count and value.

    ``within tolerance``: customers buying in both periods whose change is at most
    ``tolerance`` x their comparison revenue (the "steady" band of DESIGN §3.1).

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, count_increased, value_increased, count_decreased,
        value_decreased, count_within_tolerance, value_within_tolerance``.
    """
    frame = classified.merge(segments, on="customer_id", how="left")
    both = frame["bridge_class"].isin(["increased", "decreased", "flat"])
    band = np.rint(frame["change"].abs() * 100) <= np.rint(tolerance * frame["revenue_previous"].abs() * 100)
    frame["is_within"] = both & band

    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        inc, dec, within = rows["bridge_class"] == "increased", rows["bridge_class"] == "decreased", rows["is_within"]
        return pd.DataFrame([{
            "count_increased": int(inc.sum()), "value_increased": round(float(rows.loc[inc, "change"].sum()), 2),
            "count_decreased": int(dec.sum()), "value_decreased": round(float(rows.loc[dec, "change"].sum()), 2),
            "count_within_tolerance": int(within.sum()),
            "value_within_tolerance": round(float(rows.loc[within, "change"].sum()), 2),
        }])

    return by_segment(frame, list(segment_columns), summarise)
