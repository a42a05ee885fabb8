"""Value tiers and migration: exact cuts, tiers, matrix, movements and flags on a hand-built base.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``value_tier``, ``migration_count``, ``migration_value``, ``migration_up``, ``migration_down``,
``within_tier_rose``, ``within_tier_steady``, ``within_tier_fell``, ``migration_new``,
``migration_won_back``, ``migration_lapsed``, ``flag_top_to_lowest``, ``flag_top_to_at_risk``,
``flag_top_to_lapsed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpipeline.metrics.tiers import (
    assign_tiers,
    migration_flags,
    migration_matrix,
    migration_summary,
    tier_customers,
    tier_cuts,
    tier_summary,
    top_tiers,
)

NAMES, SHARES = ["Top", "Mid", "Low"], [0.2, 0.5]


def test_cuts_and_assignment_exact():
    values = [1000, 500, 300, 200, 100, 50, 40, 30, 20, 10]
    cuts = tier_cuts(values, SHARES)  # 2nd and 5th best of 10
    assert list(cuts) == [500.0, 100.0]
    assert list(assign_tiers([1000, 500, 499.99, 100, 99.99, -5], cuts, NAMES)) == ["Top", "Top", "Mid", "Mid", "Low", "Low"]
    assert list(tier_cuts([], SHARES)) == [np.inf, np.inf]
    # 0.1 x 30 must give the 3rd value, not the 4th (float rounding)
    assert tier_cuts(list(range(30, 0, -1)), [0.1])[0] == 28
    assert top_tiers(["A", "B", "C", "D"]) == ["A", "B"] and top_tiers(["A", "B"]) == ["A"]


@pytest.fixture
def flows():
    rows = [
        # id, opening, closing, new, reactivated, lapsed, value_opening, value_closing, value_lapsed
        ("a", 1, 1, 0, 0, 0, 1000, 1200, 0),  # Top -> Top, rose (> 1100)
        ("b", 1, 1, 0, 0, 0, 500, 60, 0),  # Top -> Low: down, flagged
        ("c", 1, 1, 0, 0, 0, 300, 600, 0),  # Mid -> Top: up
        ("d", 1, 1, 0, 0, 0, 200, 205, 0),  # Mid -> Mid steady
        ("e", 1, 0, 0, 0, 1, 100, 0, 150),  # Mid -> Lapsed
        ("f", 1, 1, 0, 0, 0, 50, 45, 0),  # Low -> Low: exactly -10 % is steady
        ("g", 1, 1, 0, 0, 0, 40, 30, 0),  # Low -> Low fell
        ("h", 1, 1, 0, 0, 0, 30, 100, 0),  # Low -> Mid: up
        ("i", 1, 1, 0, 0, 0, 20, 20, 0),
        ("j", 1, 1, 0, 0, 0, 10, 10, 0),
        ("n1", 0, 1, 1, 0, 0, 0, 80, 0),  # New -> Low
        ("n2", 0, 0, 1, 0, 1, 0, 5, 5),  # New -> Lapsed
        ("w1", 0, 1, 0, 1, 0, 0, 700, 0),  # Won back -> Top
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "is_opening", "is_closing", "is_new", "is_reactivated", "is_lapsed",
                                        "value_opening", "value_closing", "value_lapsed"])
    for flag in ("is_opening", "is_closing", "is_new", "is_reactivated", "is_lapsed"):
        frame[flag] = frame[flag].astype(bool)
    return frame.astype({"customer_id": "string", "value_opening": float, "value_closing": float, "value_lapsed": float})


def test_tier_customers_exact(flows):
    tiers, cuts = tier_customers(flows, NAMES, SHARES, 0.10)
    got = tiers.set_index("customer_id")
    assert list(cuts) == [500.0, 100.0]
    assert got["tier_start"].to_dict() == {"a": "Top", "b": "Top", "c": "Mid", "d": "Mid", "e": "Mid", "f": "Low", "g": "Low",
                                           "h": "Low", "i": "Low", "j": "Low", "n1": "New", "n2": "New", "w1": "Won back"}
    assert got["tier_end"].to_dict() == {"a": "Top", "b": "Low", "c": "Top", "d": "Mid", "e": "Lapsed", "f": "Low", "g": "Low",
                                         "h": "Mid", "i": "Low", "j": "Low", "n1": "Low", "n2": "Lapsed", "w1": "Top"}
    assert got["movement"].to_dict() == {"a": "stayed_rose", "b": "down", "c": "up", "d": "stayed_steady", "e": "lapsed",
                                         "f": "stayed_steady", "g": "stayed_fell", "h": "up", "i": "stayed_steady",
                                         "j": "stayed_steady", "n1": "new", "n2": "lapsed", "w1": "won_back"}
    summary = tier_summary(tiers, cuts, NAMES, SHARES).set_index("tier")
    assert summary["count_start"].to_dict() == {"Top": 2, "Mid": 3, "Low": 5}
    assert summary["count_end"].to_dict() == {"Top": 3, "Mid": 2, "Low": 6}
    assert summary["value_end"].to_dict() == {"Top": 2500.0, "Mid": 305.0, "Low": 245.0}
    assert summary["cut_value"].to_dict() == {"Top": 500.0, "Mid": 100.0, "Low": 10.0}


def test_migration_matrix_and_summary_exact(flows):
    tiers, _ = tier_customers(flows, NAMES, SHARES, 0.10)
    segments = pd.DataFrame({"customer_id": flows["customer_id"], "region": ["N"] * 7 + ["S"] * 6})
    matrix = migration_matrix(tiers, segments, ["region"], NAMES)
    overall = matrix.query("segment == 'all'").set_index(["from_tier", "to_tier"])
    assert len(overall) == 5 * 4  # full grid, zeros included
    counts = overall["count_customers"]
    assert counts[counts > 0].to_dict() == {
        ("Top", "Top"): 1, ("Top", "Low"): 1, ("Mid", "Top"): 1, ("Mid", "Mid"): 1, ("Mid", "Lapsed"): 1,
        ("Low", "Mid"): 1, ("Low", "Low"): 4, ("New", "Low"): 1, ("New", "Lapsed"): 1, ("Won back", "Top"): 1}
    assert overall.loc[("Low", "Low"), "value_start"] == 120.0 and overall.loc[("Low", "Low"), "value_end"] == 105.0
    assert overall.loc[("Mid", "Lapsed"), "value_lapsed"] == 150.0
    # rows: opening base (count 10, value 2250); columns: closing base (count 11) and lapsed (2, 155)
    tier_rows = overall.loc[NAMES]
    assert tier_rows["count_customers"].sum() == 10 and tier_rows["value_start"].sum() == 2250.0
    closing = overall.loc[pd.IndexSlice[:, NAMES], :]
    assert closing["count_customers"].sum() == 11 and closing["value_end"].sum() == 3050.0
    assert overall.xs("Lapsed", level="to_tier")["value_lapsed"].sum() == 155.0
    north = matrix.query("segment_value == 'N'").set_index(["from_tier", "to_tier"])["count_customers"]
    assert north.sum() == 7 and north[("Top", "Low")] == 1

    summary = migration_summary(tiers, segments, ["region"]).query("segment == 'all'").set_index("movement")
    assert summary["count_customers"].to_dict() == {"up": 2, "down": 1, "stayed_rose": 1, "stayed_steady": 4,
                                                    "stayed_fell": 1, "new": 1, "won_back": 1, "lapsed": 2}
    assert summary.loc["up", "value_change"] == 370.0  # upward migration value
    assert summary.loc["down", "value_change"] == -440.0  # downward migration value
    assert summary.loc["lapsed", "value_lapsed"] == 155.0


def test_flags_exact(flows):
    tiers, _ = tier_customers(flows, NAMES, SHARES, 0.10)
    rfm = pd.DataFrame({"customer_id": ["a", "b", "e"], "rfm_segment": ["At Risk", "Champions", "Lost"]}).astype("string")
    flags = migration_flags(tiers, rfm, NAMES).set_index("path")
    assert flags["count_customers"].to_dict() == {"top_to_lowest": 1, "top_to_at_risk": 1, "top_to_lapsed": 0}
    assert flags.loc["top_to_lowest", "value_start"] == 500.0 and flags.loc["top_to_at_risk", "value_end"] == 1200.0
    assert set(flags["from_tiers"]) == {"Top"}
