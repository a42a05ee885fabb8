"""Lapse sensitivity (k = 1.5 / 2 / 3 and the fixed window) and retention beside raw flows: exact."""

from __future__ import annotations

import pandas as pd

from cxpipeline.metrics.ledger import LapseRule, customer_flows
from cxpipeline.metrics.sensitivity import lapse_sensitivity, retention_table
from cxpipeline.panel import build_panel, customer_cadence
from tests.conftest import transactions_frame

S, E = pd.Timestamp("2024-04-01"), pd.Timestamp("2024-07-01")


def _data():
    tx = transactions_frame([
        ("q", "2024-01-01", 10), ("q", "2024-02-01", 10),  # median gap 31 days; 60 days since at S
        ("r", "2023-10-01", 7), ("r", "2024-01-01", 7),  # median gap 92 days; 91 days since at S
    ])
    return build_panel(tx, "quarter", end=E), customer_cadence(tx, [S, E])


def test_sensitivity_exact():
    panel, cadence = _data()
    table = lapse_sensitivity(panel, S, E, LapseRule(), cadence).set_index("rule")
    assert list(table.index) == ["Fixed 365 days", "1.5 x own median gap (30-730 days)",
                                 "2 x own median gap (30-730 days)", "3 x own median gap (30-730 days)"]
    assert table["count_opening"].tolist() == [2, 1, 2, 2]
    assert table["count_lapsed"].tolist() == [0, 1, 1, 1]
    assert table["value_lapsed"].tolist() == [0.0, 14.0, 20.0, 20.0]  # r lapses at k=1.5, q at k=2 and 3
    assert table["count_closing"].tolist() == [2, 0, 1, 1]
    assert table["is_configured"].tolist() == [True, False, False, False]
    personal = lapse_sensitivity(panel, S, E, LapseRule(mode="personal", k=2.5), cadence)
    assert personal["k"].tolist() == [0.0, 1.5, 2.0, 2.5, 3.0]  # the configured k is always a row
    assert personal.loc[personal["is_configured"], "k"].tolist() == [2.5]


def test_retention_beside_raw_numbers_exact():
    panel, cadence = _data()
    flows = customer_flows(panel, S, E, LapseRule(mode="personal", k=1.5), cadence)
    segments = pd.DataFrame({"customer_id": ["q", "r"], "region": ["N", "S"]}).astype("string")
    table = retention_table(flows, segments, ["region"]).set_index("segment_value")
    assert table.loc["All"].drop("segment").to_dict() == {
        "count_opening": 1, "count_retained": 0, "retention_rate": 0.0, "count_gained": 0, "value_gained": 0.0,
        "count_lost": 1, "value_lost": 14.0}
    assert "N" not in table.index  # q is not in the ledger of P at k = 1.5 (lapsed before P)
