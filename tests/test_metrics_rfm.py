"""RFM: exact quintile scores and named segments on five hand-built customers.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``rfm_recency``, ``rfm_frequency``, ``rfm_monetary``, ``rfm_value``.
"""

from __future__ import annotations

import pandas as pd

from cxpipeline.metrics.rfm import RFM_GRID, RFM_SEGMENTS, quintile_scores, rfm_customers, rfm_segments
from cxpipeline.panel import build_panel
from tests.conftest import transactions_frame

END = pd.Timestamp("2024-07-01")


def test_quintile_scores_exact():
    assert list(quintile_scores(range(1, 11))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert list(quintile_scores([1, 1, 1, 2])) == [3, 3, 3, 5]  # ties share the average rank


def test_grid_names_every_segment_once_at_least():
    assert {name for row in RFM_GRID for name in row} == set(RFM_SEGMENTS)


def test_segments_exact():
    tx = transactions_frame([
        *(("A", d, 100) for d in ["2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-25"]),
        ("B", "2024-06-01", 10),
        *(("C", d, 50) for d in ["2023-11-01", "2024-02-01", "2024-05-01"]),
        *(("D", d, 75) for d in ["2023-04-01", "2023-07-01", "2023-10-01", "2024-01-01"]),
        *(("E", d, 40) for d in ["2022-06-01", "2023-01-01"]),
        ("F", "2024-08-01", 999),  # after the end: not scored
    ])
    panel = build_panel(tx, "quarter", end=pd.Timestamp("2024-10-01"))
    got = rfm_customers(panel, END).set_index("customer_id")
    assert list(got.index) == ["A", "B", "C", "D", "E"]
    assert got["recency_days"].to_dict() == {"A": 6.0, "B": 30.0, "C": 61.0, "D": 182.0, "E": 547.0}
    assert got["frequency"].to_dict() == {"A": 5, "B": 1, "C": 3, "D": 4, "E": 2}
    assert got["r_score"].to_dict() == {"A": 5, "B": 4, "C": 3, "D": 2, "E": 1}
    assert got["fm_score"].to_dict() == {"A": 5, "B": 1, "C": 3, "D": 4, "E": 2}
    assert got["rfm_segment"].to_dict() == {"A": "Champions", "B": "Promising", "C": "Need Attention",
                                            "D": "At Risk", "E": "Hibernating"}
    assert got["value_12m"].to_dict() == {"A": 500.0, "B": 10.0, "C": 150.0, "D": 225.0, "E": 0.0}

    segments = pd.DataFrame({"customer_id": list("ABCDE"), "region": ["N", "N", "S", "S", "S"]}).astype("string")
    table = rfm_segments(got.reset_index(), segments, ["region"])
    overall = table.query("segment == 'all'").set_index("rfm_segment")
    assert list(overall.index) == RFM_SEGMENTS
    assert overall.loc["Champions", "count_customers"] == 1 and overall.loc["Champions", "value"] == 500.0
    assert overall.loc["Champions", "share_value"] == 500 / 885
    assert overall.loc["Lost", "count_customers"] == 0 and overall.loc["Lost", "mean_recency_days"] == 0.0
    south = table.query("segment_value == 'S'").set_index("rfm_segment")["count_customers"]
    assert south.sum() == 3 and south["At Risk"] == 1
