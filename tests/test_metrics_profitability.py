"""Profitability: exact margins, unprofitable shares by segment and the whale curve.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``margin_12m``.
"""

from __future__ import annotations

import pandas as pd

from cxpipeline.metrics.profitability import profit_customers, profitability_table, whale_curve
from cxpipeline.panel import build_panel
from tests.conftest import transactions_frame

END = pd.Timestamp("2024-07-01")


def test_profitability_exact():
    # cost = 60 % of revenue, cost to serve 2.00 per line (tests.conftest)
    tx = transactions_frame([("p", "2024-03-01", 100), ("u", "2024-05-01", 3), ("v", "2024-01-10", 50),
                             ("v", "2024-02-10", -50), ("old", "2023-06-30", 500)])  # old: outside 12 months
    panel = build_panel(tx, "quarter", end=END)
    profits = profit_customers(panel, END).set_index("customer_id")
    assert profits["margin"].to_dict() == {"p": 38.0, "u": -0.8, "v": -4.0}
    assert profits["is_unprofitable"].to_dict() == {"p": False, "u": True, "v": True}
    segments = pd.DataFrame({"customer_id": ["p", "u", "v", "old"], "region": ["N", "N", "S", "S"]}).astype("string")
    table = profitability_table(profits.reset_index(), segments, ["region"]).set_index("segment_value")
    overall = table.loc["All"]
    assert (overall.count_customers, overall.count_unprofitable, overall.revenue, overall.margin) == (3, 2, 103.0, 33.2)
    assert overall.share_unprofitable == 2 / 3 and overall.share_value_unprofitable == 3 / 103
    assert overall.revenue_unprofitable == 3.0 and overall.margin_unprofitable == -4.8
    assert table.loc["S", "share_value_unprofitable"] == 0.0  # v's net revenue is 0: no denominator

    curve = whale_curve(profits.reset_index(), points=3)
    assert curve["count_customers"].tolist() == [0, 1, 2, 3]
    assert curve["cumulative_margin"].tolist() == [0.0, 38.0, 37.2, 33.2]
    assert curve.loc[curve["is_peak"], "count_customers"].tolist() == [1]
    assert curve["cumulative_margin_share"].iloc[-1] == 1.0 and curve["cumulative_margin_share"].iloc[1] == 38 / 33.2
