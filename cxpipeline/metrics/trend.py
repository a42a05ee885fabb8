"""The trend across meetings: the ledger and the bridge of each of the last N periods.

A board asks where the customer asset is heading, not only what happened this period. For each
period of the trend this module computes, in one pass over the panel the run already has, the
overall rows of that period's own asset ledger (:mod:`cxpipeline.metrics.ledger`) and revenue
bridge (:mod:`cxpipeline.metrics.bridge`, under the configured comparison basis). Every number
is the one the period's own pack prints: same definitions, same lapse rule (personal windows
from the cadence at each boundary), money summed in integer cents.

One pass: customers are coded once, the panel is sorted by customer and period once, and every
period is a column of small customer x boundary matrices (last purchase before each boundary,
trailing 12-month value at each boundary, revenue per period) instead of a rerun of the
per-period functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from cxpipeline.metrics.bridge import BRIDGE_CLASSES, bridge_class_codes
from cxpipeline.metrics.ledger import LEDGER_LINES, LapseRule
from cxpipeline.periods import Period, comparison_period, period_containing, trend_periods
from cxpipeline.quality import cents

__all__ = ["TREND_LEDGER_COLUMNS", "TREND_BRIDGE_COLUMNS", "TrendSpan", "trend_span", "span_note", "trend_tables"]

TREND_LEDGER_COLUMNS = ["period", "period_start", "ledger_line", "count_customers", "value"]
TREND_BRIDGE_COLUMNS = ["period", "period_start", "comparison", "bridge_class", "count_customers", "value"]

_NAT = np.iinfo("int64").min


@dataclass(frozen=True)
class TrendSpan:
    """The periods a trend covers and, when fewer than asked, why.

    Attributes
    ----------
    periods
        Consecutive periods, oldest first, ending with the reporting period.
    requested
        How many periods the config asked for.
    reason
        ``""`` when all requested periods are covered, ``"history"`` when the data does not
        reach back far enough, ``"cadence"`` when the extract did not measure the purchase
        cadence (personal lapse rule) at the earlier boundaries.
    first_data
        Label of the first period with data (``""`` without data).
    """

    periods: tuple[Period, ...]
    requested: int
    reason: str
    first_data: str

    def table(self) -> pd.DataFrame:
        """One row (``requested, shown, reason, first_data``) for the artifact ``trend_span``."""
        return pd.DataFrame({"requested": [self.requested], "shown": [len(self.periods)],
                             "reason": [self.reason], "first_data": [self.first_data]}).astype(
            {"requested": "int64", "shown": "int64", "reason": "string", "first_data": "string"})


def span_note(kind: str, requested: int, shown: int, reason: str, first_shown: str, first_data: str,
              customer: str = "customer") -> str | None:
    """The plain sentence the trend page prints when it shows fewer periods than asked."""
    if shown >= requested or not reason:
        return None
    plural = lambda count: kind if count == 1 else f"{kind}s"  # noqa: E731
    told = f"The trend shows {shown} {plural(shown)}, not {requested}"
    if reason == "cadence":
        return (f"{told}: the personal lapse rule needs each {customer}'s purchase cadence at every "
                f"{kind} boundary, and the extract measured it only from the start of {first_shown}.")
    return (f"{told}: the data starts in {first_data}, and a {kind} is shown only when the data covers "
            f"the {kind} it is compared with (from {first_shown}).")


def trend_span(
    period: Period,
    requested: int,
    basis: str,
    first_period_start: date | pd.Timestamp | None,
    cadence_instants: Sequence[pd.Timestamp] | None = None,
) -> TrendSpan:
    """The periods of the trend ending with ``period``: ``requested`` of them, or fewer.

    A period is kept when the data covers its comparison period (the data's first period starts
    on or before the comparison period's start): before that its bridge would compare with
    a period the data does not hold. Under the personal lapse rule a period is kept only when
    the cadence was measured at both of its boundaries (``cadence_instants``; ``None`` means
    no constraint). Only the latest periods are kept, so the trend has no gaps; the reporting
    period itself is always kept (its own pack is printed whatever the history).

    Parameters
    ----------
    period
        The reporting period (the last period of the trend).
    requested
        Periods asked for (config ``trend.periods``).
    basis
        ``previous`` or ``year_ago`` (config ``period.comparison``).
    first_period_start
        Start of the earliest panel period (the first period with any data).
    cadence_instants
        The instants the extract measured cadence at, when the personal rule needs them.
    """
    wanted = trend_periods(period, requested)
    kept: list[Period] = []
    reason = ""
    instants = None if cadence_instants is None else {pd.Timestamp(t) for t in cadence_instants}
    first = None if first_period_start is None or pd.isna(first_period_start) else pd.Timestamp(first_period_start)
    for each in reversed(wanted):
        if first is None or pd.Timestamp(comparison_period(each, basis).start) < first:
            reason = "history"
            break
        if instants is not None and not {pd.Timestamp(each.start), pd.Timestamp(each.end)} <= instants:
            reason = "cadence"
            break
        kept.append(each)
    if not kept:
        kept = [period]
    first_data = "" if first is None else period_containing(first.date(), period.kind, period.fiscal_start_month).label
    return TrendSpan(tuple(reversed(kept)), requested, reason if len(kept) < requested else "", first_data)


def trend_tables(
    panel: pd.DataFrame,
    periods: Sequence[Period],
    basis: str,
    rule: LapseRule,
    cadence: pd.DataFrame | None = None,
    *,
    customer_col: str = "customer_id",
    period_col: str = "period_start",
    revenue_col: str = "revenue",
    orders_col: str = "count_orders",
    first_order_col: str = "first_order_at",
    last_order_col: str = "last_order_at",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The overall ledger and bridge rows of every period of the trend, in one pass.

    Parameters
    ----------
    panel
        Customer-period panel (:data:`cxpipeline.schema.PANEL_COLUMNS`) of the kind of
        ``periods``, covering all history up to the end of the last period.
    periods
        Consecutive periods, oldest first (see :func:`trend_span`).
    basis
        The comparison basis of each period's bridge: ``previous`` or ``year_ago``.
    rule
        The lapse rule of the ledger.
    cadence
        ``customer_id, as_of, median_gap_days, count_orders`` at every boundary of ``periods``
        (needed by the personal rule only).

    Returns
    -------
    tuple of pandas.DataFrame
        ``trend_ledger`` (:data:`TREND_LEDGER_COLUMNS`, lines in
        :data:`cxpipeline.metrics.ledger.LEDGER_LINES`) and ``trend_bridge``
        (:data:`TREND_BRIDGE_COLUMNS`, classes in :data:`cxpipeline.metrics.bridge.BRIDGE_ORDER`),
        one block of rows per period; each block equals the ``segment == 'all'`` rows of the
        ``ledger`` and ``bridge`` tables of that period's own pack.
    """
    periods = list(periods)
    if not periods:
        raise ValueError("the trend needs at least one period")
    first_p, last_p = periods[0], periods[-1]
    n = len(periods)
    if periods != trend_periods(last_p, n):
        raise ValueError("the trend periods must be consecutive, oldest first")
    if first_p.kind == "week":
        # Twelve months are not a whole number of weeks, and a week a year ago is matched by its
        # ISO number: the one-pass matrices below assume month-aligned periods, so weeks take the
        # per-period functions themselves (a trend of weeks is small: ~8 x the panel's weeks).
        return _trend_by_period(panel, periods, basis, rule, cadence, customer_col=customer_col,
                                period_col=period_col)
    per_year = 12 // first_p.months  # periods in the 12 months of a trailing value
    lag = 1 if basis == "previous" else per_year
    comparison_period(last_p, basis)  # validates the basis

    end = pd.Timestamp(last_p.end)
    starts = panel[period_col].to_numpy()
    keep_rows = starts < end.to_datetime64()
    every = bool(keep_rows.all())

    def column(name: str, dtype: str | None = None) -> np.ndarray:
        values = panel[name].to_numpy(dtype=dtype)
        return values if every else values[keep_rows]

    codes, uniques = pd.factorize(panel[customer_col] if every else panel[customer_col][keep_rows], sort=False)
    count = len(uniques)
    months = column(period_col).astype("datetime64[M]").astype("int64")  # months since 1970-01
    month0 = (first_p.start.year - 1970) * 12 + first_p.start.month - 1
    rel = (months - month0) // first_p.months  # trend period k has rel k
    rel_min = int(rel.min()) if len(rel) else 0
    span = int(max(rel.max() if len(rel) else 0, n) - rel_min + 2)
    key = codes.astype("int64") * span + (rel - rel_min)
    order = None if (len(key) < 2 or bool(np.all(key[1:] >= key[:-1]))) else np.argsort(key, kind="stable")

    def take(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    key, codes, rel = take(key), take(codes), take(rel)
    revenue = take(cents(column(revenue_col)))
    bought_row = take(column(orders_col) > 0)
    dtype = panel[last_order_col].dtype
    unit = np.datetime_data(dtype)[0] if dtype.kind == "M" else "us"
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    last_at = take(column(last_order_col, f"datetime64[{unit}]").astype("int64"))
    first_at = take(column(first_order_col, f"datetime64[{unit}]").astype("int64"))
    has_last, has_first = last_at != _NAT, first_at != _NAT

    # Boundaries b_0 .. b_n (b_k = start of trend period k, b_n = end of the last).
    bounds = [pd.Timestamp(p.start) for p in periods] + [end]
    bound_int = np.array([b.to_datetime64().astype(f"datetime64[{unit}]").astype("int64") for b in bounds])

    # Customer x boundary (or period) matrices are column-major: the loop below reads columns.
    # Last purchase before each boundary: the latest purchase row before the trend (per
    # customer), then one row per customer and trend period; a running maximum across them.
    # Rows are sorted by customer then period, so positions grow with time per customer.
    position = np.arange(len(key))
    last_pos = np.full((count, n + 1), -1, dtype="int64", order="F")
    before = has_last & (rel < 0)
    np.maximum.at(last_pos[:, 0], codes[before], position[before])
    inside = has_last & (rel >= 0) & (rel < n)
    last_pos[codes[inside], rel[inside] + 1] = position[inside]
    np.maximum.accumulate(last_pos, axis=1, out=last_pos)
    # last_pos[:, j]: position of the last purchase row before b_j (-1: none)
    known_at = last_pos >= 0
    last_before = last_at[np.where(known_at, last_pos, 0)]
    last_before[~known_at] = _NAT

    # First purchase ever (the earliest row with a first order), per customer.
    first = np.full(count, np.iinfo("int64").max, dtype="int64")
    np.minimum.at(first, codes[has_first], first_at[has_first])
    first[first == np.iinfo("int64").max] = _NAT
    bought = np.zeros((count, n), dtype=bool, order="F")
    sel = (rel >= 0) & (rel < n) & bought_row
    bought[codes[sel], rel[sel]] = True

    active = _active_matrix(last_before, known_at, bound_int, bounds, per_second, rule, cadence, uniques,
                            customer_col)

    # Revenue per customer and period from per_year periods before the trend to its end (a
    # customer has one row a period), and which customers have a row: the bridge's columns. Its
    # running sum along the periods gives the trailing 12-month value at every boundary.
    width = n + per_year + 1  # column 0 stays 0; period rel is column rel + per_year + 1
    near = (rel >= -per_year) & (rel < n)
    running = np.zeros((count, width), dtype="int64", order="F")
    present = np.zeros((count, width), dtype=bool, order="F")
    running[codes[near], rel[near] + per_year + 1] = revenue[near]
    present[codes[near], rel[near] + per_year + 1] = True
    np.cumsum(running, axis=1, out=running)

    def trailing(j: int) -> np.ndarray:  # the 12 months before b_j
        return running[:, j + per_year] - running[:, j]

    def period_revenue(k: int) -> tuple[np.ndarray, np.ndarray]:  # revenue of period rel k, has a row
        col = k + per_year + 1
        return running[:, col] - running[:, col - 1], present[:, col]

    # Lapsed value: the 12 months up to the end of the period of the last purchase, which may
    # lie before the trend's columns: summed from the customer's sorted rows.
    cum = np.concatenate([[0], np.cumsum(revenue)])

    def value_up_to(rows_at: np.ndarray) -> int:
        cust, end_rel = codes[rows_at].astype("int64"), rel[rows_at]
        # Offsets below -1 would reach into the previous customer's keys.
        lo = np.searchsorted(key, cust * span + np.maximum(end_rel - per_year - rel_min, -1), side="right")
        return int((cum[rows_at + 1] - cum[lo]).sum())

    ledger_rows, bridge_rows = [], []
    for k, each in enumerate(periods):
        known = known_at[:, k + 1]  # bought before the end of the period
        opening, closing = active[:, k], active[:, k + 1]
        is_new = bought[:, k] & (first >= bound_int[k]) & (first != _NAT) & known
        is_reactivated = bought[:, k] & ~is_new & ~opening & known
        lapsed = (opening | is_new | is_reactivated) & ~closing
        start_value, end_value = trailing(k), trailing(k + 1)
        counts = {"opening": opening.sum(), "new": is_new.sum(), "reactivated": is_reactivated.sum(),
                  "lapsed": lapsed.sum(), "closing": closing.sum()}
        values = {"opening": int(start_value[opening].sum()), "new": int(end_value[is_new].sum()),
                  "reactivated": int(end_value[is_reactivated].sum()), "closing": int(end_value[closing].sum()),
                  "lapsed": value_up_to(last_pos[lapsed, k + 1])}
        for line in LEDGER_LINES:
            ledger_rows.append((each.label, pd.Timestamp(each.start), line, int(counts[line]), values[line] / 100))
        cur, has_cur = period_revenue(k)
        prev, has_prev = period_revenue(k - lag)
        is_new_bridge = (first != _NAT) & (first >= bound_int[k]) & (first < bound_int[k + 1])
        bridge_rows.extend(_bridge_block(each, basis, cur, prev, has_cur | has_prev, is_new_bridge))

    ledger = pd.DataFrame(ledger_rows, columns=TREND_LEDGER_COLUMNS).astype(
        {"count_customers": "int64", "value": "float64", "period_start": "datetime64[us]"})
    bridge = pd.DataFrame(bridge_rows, columns=TREND_BRIDGE_COLUMNS).astype(
        {"count_customers": "int64", "value": "float64", "period_start": "datetime64[us]"})
    return ledger, bridge


def _active_matrix(last_before: np.ndarray, known: np.ndarray, bound_int: np.ndarray, bounds: list[pd.Timestamp],
                   per_second: int, rule: LapseRule, cadence: pd.DataFrame | None, uniques,
                   customer_col: str) -> np.ndarray:
    """Active at each boundary: days since the last purchase within the lapse window there."""
    # Days as the ledger measures them: seconds (float) / 86400.
    days = (bound_int[None, :] - last_before) / per_second / 86400
    if rule.mode != "personal":
        return known & (days <= float(rule.window_days))
    if cadence is None:
        raise ValueError("the personal lapse rule needs the cadence table (customer_cadence)")
    who = pd.Index(uniques).get_indexer(cadence[customer_col])
    when = pd.Index(bounds).get_indexer(pd.to_datetime(cadence["as_of"]))
    rows = (who >= 0) & (when >= 0)
    median = np.full(last_before.shape, np.nan, order="F")
    orders = np.zeros(last_before.shape, order="F")
    median[who[rows], when[rows]] = cadence["median_gap_days"].to_numpy(dtype="float64")[rows]
    orders[who[rows], when[rows]] = cadence["count_orders"].to_numpy(dtype="float64")[rows]
    personal = np.clip(rule.k * median, rule.floor_days, rule.cap_days)
    windows = np.where((orders >= 2) & ~np.isnan(median), personal, float(rule.window_days))
    return known & (days <= windows)


def _bridge_block(each: Period, basis: str, cur: np.ndarray, prev: np.ndarray, present: np.ndarray,
                  is_new: np.ndarray) -> list[tuple]:
    """The bridge's overall rows of one period from each customer's revenue cents in it and in
    its comparison period (see :func:`cxpipeline.metrics.bridge.classify_customers`)."""
    klass = bridge_class_codes(prev, cur, is_new)
    keep = present & (klass >= 0)
    klass, cur, prev = klass[keep], cur[keep], prev[keep]
    counts = np.bincount(klass, minlength=len(BRIDGE_CLASSES))
    changes = np.bincount(klass, weights=(cur - prev).astype("float64"), minlength=len(BRIDGE_CLASSES))
    comparison = comparison_period(each, basis).label
    start = pd.Timestamp(each.start)
    out = [(each.label, start, comparison, "previous", int((prev > 0).sum()), int(prev.sum()) / 100)]
    out += [(each.label, start, comparison, name, int(counts[i]), round(float(changes[i])) / 100)
            for i, name in enumerate(BRIDGE_CLASSES)]
    out.append((each.label, start, comparison, "current", int((cur > 0).sum()), int(cur.sum()) / 100))
    return out


def _trend_by_period(panel: pd.DataFrame, periods: list[Period], basis: str, rule: LapseRule,
                     cadence: pd.DataFrame | None, *, customer_col: str, period_col: str
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trend rows computed period by period with the ledger and bridge functions that each
    period's own pack uses (for weeks, see :func:`trend_tables`)."""
    from cxpipeline.metrics.bridge import classify_customers, revenue_bridge
    from cxpipeline.metrics.ledger import asset_ledger, customer_flows

    ledger_rows, bridge_rows = [], []
    for each in periods:
        start, end = pd.Timestamp(each.start), pd.Timestamp(each.end)
        comparison = comparison_period(each, basis)
        flows = customer_flows(panel.loc[panel[period_col] < end], start, end, rule, cadence)
        own_ledger = asset_ledger(flows, flows[[customer_col]], [])
        for row in own_ledger.itertuples(index=False):
            ledger_rows.append((each.label, start, row.ledger_line, int(row.count_customers), float(row.value)))
        classified = classify_customers(panel, start, pd.Timestamp(comparison.start), period_end=end)
        own_bridge = revenue_bridge(classified, classified[[customer_col]], [])
        for row in own_bridge.itertuples(index=False):
            bridge_rows.append((each.label, start, comparison.label, row.bridge_class, int(row.count_customers),
                                float(row.value)))
    ledger = pd.DataFrame(ledger_rows, columns=TREND_LEDGER_COLUMNS).astype(
        {"count_customers": "int64", "value": "float64", "period_start": "datetime64[us]"})
    bridge = pd.DataFrame(bridge_rows, columns=TREND_BRIDGE_COLUMNS).astype(
        {"count_customers": "int64", "value": "float64", "period_start": "datetime64[us]"})
    return ledger, bridge
