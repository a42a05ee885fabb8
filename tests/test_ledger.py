"""Customer asset ledger: exact flows on a hand-built case; stock-flow identity on generated data.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``ledger_opening``, ``ledger_new``, ``ledger_reactivated``, ``ledger_lapsed``,
``ledger_closing``, ``count_gained``, ``value_gained``, ``count_lost``, ``value_lost``,
``retention_rate``.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxpipeline.metrics.breakdown import customer_segments
from cxpipeline.metrics.ledger import LapseRule, active_at, asset_ledger, customer_flows
from cxpipeline.panel import build_panel, customer_cadence
from cxpipeline.periods import parse_period
from tests.conftest import transactions_frame

S, E = pd.Timestamp("2024-04-01"), pd.Timestamp("2024-07-01")


@pytest.fixture
def tx():
    return transactions_frame(
        [
            ("steady", "2023-10-01", 100), ("steady", "2024-05-01", 40),  # active throughout
            ("lapser", "2023-05-15", 70), ("lapser", "2023-06-20", 30),  # crosses 365 days during Q2
            ("new", "2024-06-30 12:00", 25),  # first purchase in Q2
            ("back", "2022-01-10", 80), ("back", "2024-04-02", 60),  # lapsed, then bought again
            ("gone", "2022-12-01", 55),  # already lapsed before Q2
            ("quiet", "2024-01-15", 10),  # active, no purchase in Q2
            ("ret", "2024-02-01", 20), ("ret", "2024-05-01", -20),  # return is not a purchase
        ]
    )


def test_fixed_window_flows_exact(tx):
    panel = build_panel(tx, "quarter", end=E)
    flows = customer_flows(panel, S, E, LapseRule()).set_index("customer_id").sort_index()
    assert list(flows.index) == ["back", "lapser", "new", "quiet", "ret", "steady"]
    assert flows["is_opening"].to_dict() == {"back": False, "lapser": True, "new": False, "quiet": True, "ret": True, "steady": True}
    assert flows["is_new"].to_dict() == {"back": False, "lapser": False, "new": True, "quiet": False, "ret": False, "steady": False}
    assert flows["is_reactivated"].to_dict() == {"back": True, "lapser": False, "new": False, "quiet": False, "ret": False, "steady": False}
    assert flows["is_lapsed"].to_dict() == {"back": False, "lapser": True, "new": False, "quiet": False, "ret": False, "steady": False}
    assert flows["is_closing"].sum() == 5
    # values: trailing 12 months before s / e; lapsed: 12 months up to the end of the last purchase's quarter
    assert flows.loc["steady", "value_opening"] == 100 and flows.loc["steady", "value_closing"] == 140
    assert flows.loc["lapser", "value_lapsed"] == 100
    assert flows.loc["back", "value_closing"] == 60 and flows.loc["ret", "value_closing"] == 0


def test_ledger_table_exact(tx):
    panel = build_panel(tx, "quarter", end=E)
    flows = customer_flows(panel, S, E, LapseRule())
    segments = pd.DataFrame({"customer_id": ["steady", "lapser", "new", "back", "gone", "quiet", "ret"],
                             "region": ["N", "N", "S", "S", "N", "N", "S"]})
    table = asset_ledger(flows, segments, ["region"])
    got = {(r.segment_value, r.ledger_line): (r.count_customers, r.value) for r in table.itertuples()}
    assert got[("All", "opening")] == (4, 100 + 100 + 10 + 20)
    assert got[("All", "new")] == (1, 25.0)
    assert got[("All", "reactivated")] == (1, 60.0)
    assert got[("All", "lapsed")] == (1, 100.0)
    assert got[("All", "closing")] == (5, 140 + 25 + 60 + 10 + 0)
    assert got[("N", "opening")][0] == 3 and got[("N", "closing")][0] == 2
    assert got[("S", "opening")][0] == 1 and got[("S", "closing")][0] == 3


def test_personal_window(tx):
    # steady: one gap of 213 days; k=1.5 -> 319.5 day window. At e, 61 days since last purchase: active.
    extra = transactions_frame([("fast", "2024-01-01", 10), ("fast", "2024-01-11", 10), ("fast", "2024-01-21", 10)])
    panel = build_panel(pd.concat([tx, extra]), "quarter", end=E)
    cadence = customer_cadence(pd.concat([tx, extra]), [S, E])
    rule = LapseRule(mode="personal", k=2.0, floor_days=30, cap_days=730)
    state = active_at(panel, E, rule, cadence)
    # fast buys every 10 days: window = clip(2 x 10, 30, 730) = 30 days; 162 days since -> lapsed
    assert not state["fast"]
    assert not active_at(panel, S, rule, cadence)["fast"]
    # single-order customers fall back to the fixed window
    assert state["new"] and state["quiet"]
    flows = customer_flows(panel, S, E, rule, cadence).set_index("customer_id")
    assert "fast" not in flows.index  # lapsed before P: not part of P's ledger
    assert (flows["is_opening"].sum() + flows["is_new"].sum() + flows["is_reactivated"].sum()
            - flows["is_lapsed"].sum()) == flows["is_closing"].sum()


_rows = st.lists(
    st.tuples(
        st.sampled_from([f"c{i}" for i in range(10)]),
        st.integers(min_value=0, max_value=3 * 365 - 1),
        st.integers(min_value=-3000, max_value=30000),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=_rows,
    kind=st.sampled_from(["month", "quarter", "year"]),
    mode=st.sampled_from(["fixed", "personal"]),
    window=st.sampled_from([30, 90, 365]),
)
def test_ledger_reconciles_on_generated_data(rows, kind, mode, window):
    start = pd.Timestamp("2022-01-01")
    tx = transactions_frame([(c, start + pd.Timedelta(days=d, hours=d % 24), cents / 100) for c, d, cents in rows])
    panel = build_panel(tx, kind, end=pd.Timestamp("2025-01-01"))
    customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(10)], "tier": list("AB") * 5})
    segments = customer_segments(panel["customer_id"], customers, ["tier"])
    rule = LapseRule(mode=mode, window_days=window, k=1.5, floor_days=20, cap_days=400)
    period = parse_period({"month": "2024-12", "quarter": "2024-Q4", "year": "2024"}[kind])
    periods = [period.shift(-i) for i in range(3)]
    instants = sorted({pd.Timestamp(p.start) for p in periods} | {pd.Timestamp(p.end) for p in periods})
    cadence = customer_cadence(tx, instants)
    closing_before = None
    for p in reversed(periods):
        flows = customer_flows(panel, pd.Timestamp(p.start), pd.Timestamp(p.end), rule, cadence)
        table = asset_ledger(flows, segments, ["tier"])
        for _, group in table.groupby(["segment", "segment_value"]):
            n = dict(zip(group["ledger_line"], group["count_customers"]))
            assert n["opening"] + n["new"] + n["reactivated"] - n["lapsed"] == n["closing"]
        overall = table.query("segment == 'all'").set_index("ledger_line")["count_customers"]
        by_tier = table.query("segment == 'tier'").groupby("ledger_line")["count_customers"].sum()
        assert (by_tier == overall.loc[by_tier.index]).all()
        if closing_before is not None:  # closing of one period is the opening of the next
            assert overall["opening"] == closing_before
        closing_before = overall["closing"]
