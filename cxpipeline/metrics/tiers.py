"""Value tiers and the migration matrix (docs/architecture.md, "Segments and movement across them"): how the base moved between tiers in P.

Tiers rank customers by trailing 12-month net revenue. The cut values are computed once, on
the base active at the start of P (the ledger's opening base), and held fixed for the end of
P, so a customer changes tier only because their own value changed, not because others were
re-ranked. With cumulative top shares ``q_1 < q_2 < ...`` and the opening base sorted by value
(descending, N customers), cut ``i`` is the value of the ``ceil(q_i x N)``-th customer; a
customer is in the first tier whose cut their value reaches, else in the last tier. Ties at a
cut all go to the higher tier.

Migration rows are the start-of-P tier of the opening base plus the outside rows ``New`` and
``Won back`` (the ledger's new and reactivated customers); columns are the end-of-P tier of the
closing base plus the outside column ``Lapsed``. Every customer of the ledger flows has exactly
one row and one column, so the matrix totals equal the ledger's lines in count and value:

- tier rows: count and ``value_start`` = ledger opening; ``New`` / ``Won back`` rows:
  count and ``value_end`` = ledger new / reactivated;
- tier columns: count and ``value_end`` = ledger closing; ``Lapsed`` column: count and
  ``value_lapsed`` = ledger lapsed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ids import as_ids

__all__ = [
    "NEW",
    "WON_BACK",
    "LAPSED",
    "NOT_IN_BASE",
    "MOVEMENTS",
    "AT_RISK_RFM",
    "tier_cuts",
    "assign_tiers",
    "tier_customers",
    "tier_summary",
    "migration_matrix",
    "migration_summary",
    "migration_flags",
    "top_tiers",
]

NEW, WON_BACK, LAPSED = "New", "Won back", "Lapsed"
NOT_IN_BASE = "Not in base at start"
#: Movement classes: a partition of the ledger's customers by their migration path.
MOVEMENTS = ["up", "down", "stayed_rose", "stayed_steady", "stayed_fell", "new", "won_back", "lapsed"]
#: RFM segments that count as "at risk" for the flagged paths (still active, weakening).
AT_RISK_RFM = ("At Risk", "Can't Lose Them", "About to Sleep")


def tier_cuts(values: pd.Series | np.ndarray, top_shares: Sequence[float]) -> np.ndarray:
    """Cut values (minimum value to enter each tier but the last), best tier first.

    An empty base has cuts of +inf (everyone lands in the last tier).
    """
    ordered = np.sort(np.asarray(values, dtype="float64"))[::-1]
    n = len(ordered)
    if n == 0:
        return np.full(len(top_shares), np.inf)
    positions = [min(max(math.ceil(round(q * n, 9)) - 1, 0), n - 1) for q in top_shares]
    return ordered[positions]


def assign_tiers(values: pd.Series | np.ndarray, cuts: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Tier name per value: the first tier whose cut the value reaches, else the last tier."""
    v = np.asarray(values, dtype="float64")
    index = (v[:, None] < np.asarray(cuts)[None, :]).sum(axis=1)
    return np.asarray(names, dtype=object)[index]


def top_tiers(names: Sequence[str]) -> list[str]:
    """The tiers watched by the flagged paths: all but the two lowest (at least the first)."""
    return list(names[: max(1, len(names) - 2)])


def tier_customers(flows: pd.DataFrame, names: Sequence[str], top_shares: Sequence[float], tolerance: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Start and end tier, values and movement class for every customer of the ledger flows.

    Parameters
    ----------
    flows
        Output of :func:`cxpipeline.metrics.ledger.customer_flows`.
    names, top_shares
        Tier names (best first) and cumulative cut points (``config.tiers``).
    tolerance
        Relative band for within-tier movement (``config.tolerance``).

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        ``customer_id, tier_start, tier_end, value_start, value_end, value_lapsed, movement``
        (``tier_start`` is New / Won back outside the opening base, ``tier_end`` is Lapsed
        outside the closing base) and the cut values.
    """
    opening = flows["is_opening"].to_numpy(dtype=bool)
    closing = flows["is_closing"].to_numpy(dtype=bool)
    start_value = flows["value_opening"].to_numpy(dtype="float64")
    end_value = flows["value_closing"].to_numpy(dtype="float64")
    cuts = tier_cuts(start_value[opening], top_shares)
    start_tier = np.where(opening, assign_tiers(start_value, cuts, names),
                          np.where(flows["is_new"].to_numpy(dtype=bool), NEW, WON_BACK))
    end_tier = np.where(closing, assign_tiers(end_value, cuts, names), LAPSED)

    rank = {name: i for i, name in enumerate(names)}
    start_rank = pd.Series(start_tier).map(rank).to_numpy(dtype="float64")
    end_rank = pd.Series(end_tier).map(rank).to_numpy(dtype="float64")
    both = opening & closing
    band = tolerance * np.abs(start_value)
    cents = lambda a: np.rint(a * 100)  # noqa: E731 - compare money in cents
    rose = cents(end_value) > cents(start_value + band)
    fell = cents(end_value) < cents(start_value - band)
    conditions = [
        ~closing,
        ~opening & flows["is_new"].to_numpy(dtype=bool),
        ~opening,
        both & (end_rank < start_rank),
        both & (end_rank > start_rank),
        rose,
        fell,
    ]
    choices = ["lapsed", "new", "won_back", "up", "down", "stayed_rose", "stayed_fell"]
    out = pd.DataFrame({
        "customer_id": as_ids(flows["customer_id"]).to_numpy(),
        "tier_start": pd.array(start_tier, dtype="string"),
        "tier_end": pd.array(end_tier, dtype="string"),
        "value_start": start_value,
        "value_end": end_value,
        "value_lapsed": flows["value_lapsed"].to_numpy(dtype="float64"),
        "movement": np.select(conditions, choices, default="stayed_steady"),
    })
    out["movement"] = out["movement"].astype("string")
    return out, cuts


def _money(values: pd.Series) -> float:
    return round(float(values.sum()), 2)


def tier_summary(tiers: pd.DataFrame, cuts: np.ndarray, names: Sequence[str], top_shares: Sequence[float]) -> pd.DataFrame:
    """One row per tier: cut value (minimum value to enter it; for the last tier the lowest
    opening value) and the tier's count and value at the start and end of P."""
    opening = tiers.loc[tiers["tier_start"].isin(list(names)), "value_start"]
    opening_floor = opening.min() if len(opening) else 0.0
    start = tiers.groupby("tier_start", observed=True).agg(count_start=("value_start", "size"), value_start=("value_start", "sum"))
    end = tiers.groupby("tier_end", observed=True).agg(count_end=("value_end", "size"), value_end=("value_end", "sum"))
    out = pd.DataFrame({
        "tier": list(names),
        "top_share": [*top_shares, 1.0],
        # the last tier has no cut: its floor is the lowest value in the opening base
        "cut_value": [*(float(c) for c in cuts), float(opening_floor)],
    })
    out = out.join(start, on="tier").join(end, on="tier").fillna({"count_start": 0, "count_end": 0, "value_start": 0.0, "value_end": 0.0})
    out = out.astype({"count_start": "int64", "count_end": "int64"})
    out["value_start"] = out["value_start"].round(2)
    out["value_end"] = out["value_end"].round(2)
    return out


def migration_matrix(tiers: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str], names: Sequence[str]) -> pd.DataFrame:
    """The full migration grid (every from/to pair, zeros included), overall and per segment.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, from_tier, to_tier, count_customers, value_start, value_end,
        value_lapsed`` with from_tier in names + New + Won back and to_tier in names + Lapsed.
    """
    grid = pd.MultiIndex.from_product([[*names, NEW, WON_BACK], [*names, LAPSED]], names=["from_tier", "to_tier"])

    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        cells = rows.groupby(["tier_start", "tier_end"], observed=True).agg(
            count_customers=("value_start", "size"), value_start=("value_start", "sum"),
            value_end=("value_end", "sum"), value_lapsed=("value_lapsed", "sum"))
        cells.index.names = ["from_tier", "to_tier"]
        cells = cells.reindex(grid, fill_value=0).reset_index()
        return cells

    out = by_segment(tiers.merge(segments, on="customer_id", how="left"), list(segment_columns), summarise)
    out = out.astype({"from_tier": "string", "to_tier": "string", "count_customers": "int64"})
    for column in ("value_start", "value_end", "value_lapsed"):
        out[column] = out[column].astype("float64").round(2)
    return out


def migration_summary(tiers: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str]) -> pd.DataFrame:
    """Count and value per movement class (:data:`MOVEMENTS`), overall and per segment.

    ``value_change = value_end - value_start``: for ``up`` it is the upward migration value,
    for ``down`` the downward one (negative when their value fell).
    """
    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        grouped = rows.groupby("movement", observed=True).agg(
            count_customers=("value_start", "size"), value_start=("value_start", "sum"),
            value_end=("value_end", "sum"), value_lapsed=("value_lapsed", "sum"))
        grouped = grouped.reindex(MOVEMENTS, fill_value=0)
        grouped.index.name = "movement"
        return grouped.reset_index()

    out = by_segment(tiers.merge(segments, on="customer_id", how="left"), list(segment_columns), summarise)
    out = out.astype({"movement": "string", "count_customers": "int64"})
    for column in ("value_start", "value_end", "value_lapsed"):
        out[column] = out[column].astype("float64").round(2)
    out["value_change"] = (out["value_end"] - out["value_start"]).round(2)
    return out


def migration_flags(tiers: pd.DataFrame, rfm_segment: pd.DataFrame | None, names: Sequence[str]) -> pd.DataFrame:
    """The paths an executive must see: top tiers at the start of P moving to the lowest tier,
    to an at-risk RFM segment (still active) or to lapsed. Flags may overlap (not a partition).

    Parameters
    ----------
    rfm_segment
        ``customer_id, rfm_segment`` at the end of P (``None``: that path counts zero).

    Returns
    -------
    pandas.DataFrame
        ``path, from_tiers, to, count_customers, value_start, value_end, value_lapsed``.
    """
    top = top_tiers(names)
    from_top = tiers["tier_start"].isin(top).to_numpy(dtype=bool)
    segment = (tiers[["customer_id"]].merge(rfm_segment, on="customer_id", how="left")["rfm_segment"]
               if rfm_segment is not None else pd.Series(pd.NA, index=tiers.index, dtype="string"))
    at_risk = segment.isin(AT_RISK_RFM).to_numpy(dtype=bool) & (tiers["tier_end"] != LAPSED).to_numpy(dtype=bool)
    paths = [
        ("top_to_lowest", names[-1], from_top & (tiers["tier_end"] == names[-1]).to_numpy(dtype=bool)),
        ("top_to_at_risk", "At-risk RFM segment (" + ", ".join(AT_RISK_RFM) + ")", from_top & at_risk),
        ("top_to_lapsed", LAPSED, from_top & (tiers["tier_end"] == LAPSED).to_numpy(dtype=bool)),
    ]
    rows = [(key, ", ".join(top), to, int(mask.sum()), _money(tiers.loc[mask, "value_start"]),
             _money(tiers.loc[mask, "value_end"]), _money(tiers.loc[mask, "value_lapsed"])) for key, to, mask in paths]
    out = pd.DataFrame(rows, columns=["path", "from_tiers", "to", "count_customers", "value_start", "value_end", "value_lapsed"])
    return out.astype({"path": "string", "from_tiers": "string", "to": "string", "count_customers": "int64"})
