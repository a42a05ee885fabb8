"""Cohorts: exact share active and revenue retained on a hand-built panel.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``cohort_share_active``, ``cohort_revenue_retained``.
"""

from __future__ import annotations

import pandas as pd

from cxpipeline.metrics.cohorts import cohort_table
from cxpipeline.panel import build_panel
from cxpipeline.periods import parse_period
from tests.conftest import transactions_frame


def test_cohorts_exact():
    tx = transactions_frame([
        ("a", "2024-01-05", 100), ("a", "2024-04-05", 50), ("a", "2024-07-05", 80),
        ("b", "2024-02-05", 100), ("b", "2024-08-05", -10),  # a return only: not active, revenue counted
        ("c", "2024-05-05", 40), ("c", "2024-08-01", 40),
    ])
    period = parse_period("2024-Q3")
    table = cohort_table(build_panel(tx, "quarter", end=pd.Timestamp(period.end)), period)
    got = {(r.cohort, r.period): (r.periods_since, r.count_cohort, r.count_active, r.revenue, r.revenue_retained)
           for r in table.itertuples()}
    assert got == {
        ("2024-Q1", "2024-Q1"): (0, 2, 2, 200.0, 1.0),
        ("2024-Q1", "2024-Q2"): (1, 2, 1, 50.0, 0.25),
        ("2024-Q1", "2024-Q3"): (2, 2, 1, 70.0, 0.35),
        ("2024-Q2", "2024-Q2"): (0, 1, 1, 40.0, 1.0),
        ("2024-Q2", "2024-Q3"): (1, 1, 1, 40.0, 1.0),
    }
    assert table.loc[table["period"] == "2024-Q2", "share_active"].tolist() == [0.5, 1.0]
