"""Behaviour patterns, the revenue decomposition and bridge movers: exact hand-built cases.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``movers_increased``, ``movers_decreased``, ``movers_within_tolerance``, ``buying_customers``,
``effect_customers``, ``effect_frequency``, ``effect_order_value``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cxpipeline.metrics.behaviour import (
    behaviour_customers,
    behaviour_table,
    bridge_movers,
    decompose_revenue,
    revenue_decomposition,
)
from cxpipeline.metrics.ledger import LapseRule
from cxpipeline.panel import build_panel, customer_cadence
from tests.conftest import transactions_frame

T = pd.Timestamp


def test_lmdi_exact_and_sums_back():
    parts = decompose_revenue([10], [20], [1000.0], [12], [30], [1500.0])
    assert parts["customers_effect"][0] == round(500 * math.log(1.2) / math.log(1.5), 2) == 224.83
    assert parts["frequency_effect"][0] == 275.17 and parts["order_value_effect"][0] == 0.0
    assert parts["customers_ratio"][0] * parts["frequency_ratio"][0] * parts["order_value_ratio"][0] == 1.5
    assert parts["method"][0] == "lmdi"


def test_decomposition_fallbacks_sum_to_the_change():
    # a segment with no customers before: everything is the customers effect
    parts = decompose_revenue([0, 4], [0, 4], [0.0, 100.0], [3, 4], [6, 5], [90.0, -20.0])
    assert list(parts["method"]) == ["customers_only", "sequential"]
    assert parts["customers_effect"][0] == 90.0 and parts["frequency_effect"][0] == 0 and parts["order_value_effect"][0] == 0
    # chained: (c1-c0) f0 a0 = 0, c1 (f1-f0) a0 = 4 x 0.25 x 25 = 25, c1 f1 (a1-a0) = 5 x (-4 - 25) = -145
    assert (parts["customers_effect"][1], parts["frequency_effect"][1], parts["order_value_effect"][1]) == (0.0, 25.0, -145.0)
    assert parts["customers_ratio"][0] == 0.0  # undefined ratio written as 0


def _case():
    tx = transactions_frame([
        ("x", "2023-11-01", 10), ("x", "2024-02-01", 20),
        ("x", "2024-04-01", 30), ("x", "2024-04-11", 30), ("x", "2024-04-21", 30),
        ("y", "2024-01-10", 50), ("y", "2024-01-20", 50), ("y", "2024-05-20", 40),
        ("z", "2024-06-01", 100),
    ])
    end = T("2024-07-01")
    panel = build_panel(tx, "quarter", end=end)
    cadence = customer_cadence(tx, [T("2024-01-01"), T("2024-04-01"), end])
    per_customer = behaviour_customers(
        panel, starts={"current": T("2024-04-01"), "comparison": T("2024-01-01")},
        ends={"current": end, "comparison": T("2024-04-01")},
        befores={"current": T("2024-01-01"), "comparison": T("2023-10-01")},
        rule=LapseRule(), cadence=cadence, customer_ids=panel["customer_id"])
    segments = pd.DataFrame({"customer_id": ["x", "y", "z"], "region": ["N", "N", "S"]}).astype("string")
    return behaviour_table(per_customer, segments, ["region"])


def test_behaviour_exact():
    table = _case()
    cur = table.query("segment == 'all' and period == 'current'").iloc[0]
    assert (cur.count_customers, cur.count_orders, cur.revenue) == (3, 5, 230.0)
    assert cur.orders_per_customer == 5 / 3 and cur.average_order_value == 46.0
    assert cur.days_between_orders == 10.0  # x: 20 days over 2 gaps
    # x: median gap 35 days, 71 days since -> overdue; y: median 65.5, 41 days since -> not
    assert (cur.count_with_cadence, cur.count_overdue, cur.share_overdue) == (2, 1, 0.5)
    assert (cur.count_bought_both, cur.count_buying_more_often, cur.share_buying_more_often) == (2, 1, 0.5)
    prev = table.query("segment == 'all' and period == 'comparison'").iloc[0]
    assert (prev.count_customers, prev.count_orders, prev.revenue) == (2, 3, 120.0)
    assert prev.orders_per_customer == 1.5 and prev.average_order_value == 40.0 and prev.days_between_orders == 10.0
    assert (prev.count_overdue, prev.share_overdue) == (1, 0.5)  # y: 71 days since, median 10
    assert (prev.count_bought_both, prev.share_buying_more_often) == (1, 0.0)
    south = table.query("segment_value == 'S' and period == 'comparison'").iloc[0]
    assert south.count_customers == 0 and south.orders_per_customer == 0.0  # undefined -> 0 beside its count

    dec = revenue_decomposition(table).set_index("segment_value")
    overall = dec.loc["All"]
    assert overall.change == 110.0
    assert round(overall.customers_effect + overall.frequency_effect + overall.order_value_effect, 2) == 110.0
    assert dec.loc["S", "method"] == "customers_only" and dec.loc["S", "customers_effect"] == 100.0


def test_bridge_movers_exact():
    classified = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "revenue_previous": [100.0, 100.0, 100.0, 50.0, 0.0],
        "revenue_current": [130.0, 95.0, 60.0, 55.0, 10.0],
        "change": [30.0, -5.0, -40.0, 5.0, 10.0],
        "bridge_class": ["increased", "decreased", "decreased", "increased", "new"],
    }).astype({"customer_id": "string"})
    segments = pd.DataFrame({"customer_id": list("abcde"), "tier": ["T", "T", "B", "B", "B"]}).astype("string")
    table = bridge_movers(classified, segments, ["tier"], 0.10).set_index("segment_value")
    assert table.loc["All"].to_dict() == {
        "segment": "all", "count_increased": 2, "value_increased": 35.0, "count_decreased": 2, "value_decreased": -45.0,
        "count_within_tolerance": 2, "value_within_tolerance": 0.0}  # b (-5 of 100) and d (+5 of 50)
    assert table.loc["B", "count_decreased"] == 1 and table.loc["T", "value_increased"] == 30.0
    assert np.isclose(table.loc[["T", "B"], "value_decreased"].sum(), table.loc["All", "value_decreased"])
