"""Revenue bridge: exact classes on a hand-built case, reconciliation on generated data.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``bridge_new``, ``bridge_reactivated``, ``bridge_increased``, ``bridge_decreased``,
``bridge_flat``, ``bridge_stopped``, ``bridge_returns_only``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cxpipeline.metrics.breakdown import customer_segments
from cxpipeline.metrics.bridge import BRIDGE_ORDER, classify_customers, revenue_bridge
from cxpipeline.panel import build_panel
from cxpipeline.periods import parse_period
from tests.conftest import transactions_frame

Q1, Q2 = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01")


@pytest.fixture
def case():
    tx = transactions_frame(
        [
            ("new", "2024-04-03", 50),
            ("inc", "2024-01-02", 10), ("inc", "2024-04-02", 30),
            ("dec", "2024-01-02", 40), ("dec", "2024-05-02", 15.5),
            ("flat", "2024-02-02", 20), ("flat", "2024-06-30 23:59", 20),
            ("stop", "2024-03-31 23:59", 25),
            ("stopret", "2024-01-05", 25), ("stopret", "2024-04-05", -5),
            ("react", "2023-07-02", 9), ("react", "2024-05-02", 12),
            ("ret", "2023-07-02", 9), ("ret", "2024-04-10", -3),
            ("old", "2023-07-02", 9),
            ("later", "2024-07-01", 99),  # after P: ignored
        ]
    )
    panel = build_panel(tx, "quarter", end=pd.Timestamp("2024-07-01"))
    return panel


def test_classes_exact(case):
    got = classify_customers(case, Q2, Q1)
    expected = pd.DataFrame(
        {
            "customer_id": ["dec", "flat", "inc", "new", "react", "ret", "stop", "stopret"],
            "revenue_previous": [40.0, 20.0, 10.0, 0.0, 0.0, 0.0, 25.0, 25.0],
            "revenue_current": [15.5, 20.0, 30.0, 50.0, 12.0, -3.0, 0.0, -5.0],
            "change": [-24.5, 0.0, 20.0, 50.0, 12.0, -3.0, -25.0, -30.0],
            "bridge_class": ["decreased", "flat", "increased", "new", "reactivated", "returns_only", "stopped", "stopped"],
        }
    ).astype({"customer_id": "string"})
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_bridge_table_exact(case):
    classified = classify_customers(case, Q2, Q1)
    segments = pd.DataFrame(
        {"customer_id": classified["customer_id"], "region": ["N", "S", "N", "S", "N", "S", "N", "S"]}
    )
    table = revenue_bridge(classified, segments, ["region"])
    overall = table.query("segment == 'all'").set_index("bridge_class")
    assert list(overall.index) == BRIDGE_ORDER
    assert overall["count_customers"].to_dict() == {
        "previous": 5, "new": 1, "reactivated": 1, "increased": 1, "decreased": 1,
        "flat": 1, "stopped": 2, "returns_only": 1, "current": 5,
    }
    assert overall["value"].to_dict() == {
        "previous": 120.0, "new": 50.0, "reactivated": 12.0, "increased": 20.0, "decreased": -24.5,
        "flat": 0.0, "stopped": -55.0, "returns_only": -3.0, "current": 119.5,
    }
    north = table.query("segment_value == 'N'").set_index("bridge_class")["value"]
    assert north["previous"] == 40 + 10 + 25 and north["current"] == 15.5 + 30 + 12 + 0
    assert north["stopped"] == -25.0 and north["returns_only"] == 0.0


def test_unchanged_returns_stay_in_both_periods_revenue():
    # Returns of purchases made before the data starts, the same in both quarters: no change, but
    # -5.00 is in each quarter's revenue, so the bridge's first and last lines must hold it.
    tx = transactions_frame([("ret", "2024-02-01", -5), ("ret", "2024-05-01", -5), ("buy", "2024-01-10", 10),
                             ("buy", "2024-04-10", 10)])
    panel = build_panel(tx, "quarter", end=pd.Timestamp("2024-07-01"))
    got = classify_customers(panel, Q2, Q1).set_index("customer_id")
    assert got.loc["ret"].tolist() == [-5.0, -5.0, 0.0, "returns_only"]
    segments = pd.DataFrame({"customer_id": got.index, "region": ["N", "N"]})
    overall = revenue_bridge(got.reset_index(), segments).query("segment == 'all'").set_index("bridge_class")
    assert overall.loc["previous", "value"] == overall.loc["current", "value"] == 5.0  # 10 - 5 in each
    assert overall.loc["returns_only", ["count_customers", "value"]].tolist() == [1, 0.0]


def test_year_ago_basis_reactivated_not_new(case):
    # Compared with Q2 2023 (nothing), everyone buying in Q2 2024 but first seen before is reactivated.
    got = classify_customers(case, Q2, pd.Timestamp("2023-04-01")).set_index("customer_id")["bridge_class"]
    assert got["inc"] == "reactivated" and got["new"] == "new" and got["flat"] == "reactivated"
    assert "stop" not in got.index  # no revenue in either compared period


# --- generated data: the bridge reconciles to the cent, overall and per segment, for every period
_rows = st.lists(
    st.tuples(
        st.sampled_from([f"c{i}" for i in range(12)]),
        st.integers(min_value=0, max_value=3 * 365 - 1),  # day offset from 2022-01-01
        st.integers(min_value=-5000, max_value=40000),  # cents; negative = return
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows, kind=st.sampled_from(["month", "quarter", "year"]), basis=st.sampled_from(["previous", "year_ago"]))
@example(rows=[("c0", 0, -1), ("c0", 365, -1)], kind="quarter", basis="year_ago")  # the same return a year apart
def test_bridge_reconciles_on_generated_data(rows, kind, basis):
    start = pd.Timestamp("2022-01-01")
    tx = transactions_frame([(c, start + pd.Timedelta(days=d, hours=d % 24), cents / 100) for c, d, cents in rows])
    end = pd.Timestamp("2025-01-01")
    panel = build_panel(tx, kind, end=end)
    customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(12)], "tier": list("ABC") * 4})
    segments = customer_segments(panel["customer_id"], customers, ["tier"])
    period = parse_period({"month": "2024-06", "quarter": "2024-Q2", "year": "2024"}[kind])
    while period.start >= pd.Timestamp("2022-01-01").date():
        comparison = period.previous() if basis == "previous" else period.year_ago()
        classified = classify_customers(panel, pd.Timestamp(period.start), pd.Timestamp(comparison.start),
                                        period_end=pd.Timestamp(period.end))
        table = revenue_bridge(classified, segments, ["tier"])
        cents = np.rint(table["value"] * 100).astype("int64")
        for _, group in table.assign(cents=cents).groupby(["segment", "segment_value"]):
            by = dict(zip(group["bridge_class"], group["cents"]))
            assert by["previous"] + sum(by[c] for c in BRIDGE_ORDER[1:-1]) == by["current"]
        # revenue totals equal the panel's own totals for the two periods
        overall = table.query("segment == 'all'").set_index("bridge_class")["value"]
        assert round(overall["current"] * 100) == round(panel.loc[panel.period_start == pd.Timestamp(period.start), "revenue"].sum() * 100)
        assert round(overall["previous"] * 100) == round(panel.loc[panel.period_start == pd.Timestamp(comparison.start), "revenue"].sum() * 100)
        # segments add up to overall, class by class
        seg = table.query("segment == 'tier'").groupby("bridge_class")[["count_customers", "value"]].sum()
        all_ = table.query("segment == 'all'").set_index("bridge_class")
        assert (seg["count_customers"] == all_.loc[seg.index, "count_customers"]).all()
        assert (np.rint(seg["value"] * 100) == np.rint(all_.loc[seg.index, "value"] * 100)).all()
        period = period.shift(-3 if kind == "month" else -1)
