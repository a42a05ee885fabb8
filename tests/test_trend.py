"""The trend: exact values on a hand-built panel, and every trend row equal to what that
period's own pack computes (the real extract and compute_metrics run for two past periods),
under both lapse modes and both comparison bases.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``trend_gained``, ``trend_lost``, ``trend_net``, ``trend_active_base``, ``trend_revenue``,
``trend_revenue_movement``, ``trend_value_at_risk``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cxpipeline.artifacts import read_table
from cxpipeline.config import config_from_dict
from cxpipeline.metrics.ledger import LapseRule
from cxpipeline.metrics.trend import span_note, trend_span, trend_tables
from cxpipeline.panel import build_panel, customer_cadence
from cxpipeline.periods import cadence_instants, comparison_period, parse_period, trend_periods
from cxpipeline.pipeline import compute_metrics, extract
from tests.conftest import transactions_frame

Q1, Q2, Q3 = parse_period("2024-Q1"), parse_period("2024-Q2"), parse_period("2024-Q3")


@pytest.fixture
def panel():
    tx = transactions_frame(
        [
            ("a", "2023-02-10", 100), ("a", "2024-02-01", 50), ("a", "2024-08-01", 70),  # steady
            ("b", "2023-01-05", 40),  # lapses on 2024-01-04 (365 days): lost in Q1
            ("c", "2024-05-10", 30), ("c", "2024-05-20", -10),  # new in Q2, partly returned
            ("d", "2022-06-01", 80), ("d", "2024-07-15", 25),  # lapsed long ago, won back in Q3
            ("e", "2023-04-01", 60), ("e", "2024-03-01", 20),  # bought in Q1, nothing after
        ]
    )
    return build_panel(tx, "quarter", end=pd.Timestamp(Q3.end))


def _rows(frame: pd.DataFrame, period: str, key: str) -> dict:
    part = frame.loc[frame["period"] == period]
    return {row[key]: (row["count_customers"], row["value"]) for _, row in part.iterrows()}


def test_trend_exact_values(panel):
    ledger, bridge = trend_tables(panel, [Q1, Q2, Q3], "previous", LapseRule())
    assert list(ledger["period"].unique()) == ["2024-Q1", "2024-Q2", "2024-Q3"]
    # Q1: opening a, b, e (d lapsed in 2023); b lapses; nobody gained. Closing value: the 12
    # months before 1 Apr 2024 (a: 50; e: 60 + 20).
    assert _rows(ledger, "2024-Q1", "ledger_line") == {
        "opening": (3, 100 + 40 + 60), "new": (0, 0.0), "reactivated": (0, 0.0),
        "lapsed": (1, 40.0), "closing": (2, 50 + 60 + 20)}
    # Q2: c new (trailing value at the end of Q2: 30 - 10 = 20).
    assert _rows(ledger, "2024-Q2", "ledger_line") == {
        "opening": (2, 50 + 60 + 20), "new": (1, 20.0), "reactivated": (0, 0.0),
        "lapsed": (0, 0.0), "closing": (3, 50 + 20 + 20)}
    # Q3: d won back (value 25); a's trailing value 50 + 70; e's 20.
    assert _rows(ledger, "2024-Q3", "ledger_line") == {
        "opening": (3, 50 + 20 + 20), "new": (0, 0.0), "reactivated": (1, 25.0),
        "lapsed": (0, 0.0), "closing": (4, 120 + 20 + 25 + 20)}
    # Bridge of Q2 against Q1: a and e stopped (-50, -20), c new (+20).
    assert _rows(bridge, "2024-Q2", "bridge_class") == {
        "previous": (2, 70.0), "new": (1, 20.0), "reactivated": (0, 0.0), "increased": (0, 0.0),
        "decreased": (0, 0.0), "flat": (0, 0.0), "stopped": (2, -70.0), "returns_only": (0, 0.0),
        "current": (1, 20.0)}
    # Bridge of Q3 against Q2: a reactivated (+70), d reactivated (+25), c stopped (-20).
    q3 = _rows(bridge, "2024-Q3", "bridge_class")
    assert q3["previous"] == (1, 20.0) and q3["reactivated"] == (2, 95.0)
    assert q3["stopped"] == (1, -20.0) and q3["current"] == (2, 95.0)
    assert set(bridge.loc[bridge["period"] == "2024-Q3", "comparison"]) == {"2024-Q2"}


def test_trend_year_ago_basis_compares_with_the_same_quarter(panel):
    _, bridge = trend_tables(panel, [Q1], "year_ago", LapseRule())
    # 2024-Q1 against 2023-Q1: a (100 -> 50) decreased, b (40 -> 0) stopped, e (0 -> 20) reactivated.
    got = _rows(bridge, "2024-Q1", "bridge_class")
    assert got["previous"] == (2, 140.0) and got["decreased"] == (1, -50.0)
    assert got["stopped"] == (1, -40.0) and got["reactivated"] == (1, 20.0) and got["current"] == (2, 70.0)
    assert set(bridge["comparison"]) == {"2023-Q1"}


def test_trend_personal_rule_uses_the_cadence_at_each_boundary(panel):
    tx = transactions_frame([("p", "2023-01-01", 10), ("p", "2023-01-31", 10), ("p", "2023-03-02", 10)])
    small = build_panel(tx, "quarter", end=pd.Timestamp(Q3.end))
    cadence = customer_cadence(tx, cadence_instants(Q3, Q2, 3))
    # Median gap 30 days, k = 2: window 60 days; last purchase 2 Mar 2023 -> lapsed on 1 May 2023,
    # before the trend: not in any period's base. With the fixed 365-day window: lost in Q1 2024.
    personal, _ = trend_tables(small, [Q1, Q2, Q3], "previous", LapseRule("personal"), cadence)
    fixed, _ = trend_tables(small, [Q1, Q2, Q3], "previous", LapseRule(), cadence)
    assert personal["count_customers"].sum() == 0
    assert _rows(fixed, "2024-Q1", "ledger_line")["lapsed"] == (1, 30.0)
    with pytest.raises(ValueError, match="cadence"):
        trend_tables(small, [Q1], "previous", LapseRule("personal"), None)


def test_trend_span_fewer_periods_said_plainly():
    q = parse_period("2024-Q4")
    span = trend_span(q, 8, "previous", pd.Timestamp("2023-10-01"))
    assert [p.label for p in span.periods] == ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
    assert span.reason == "history" and span.first_data == "2023-Q4"
    note = span_note("quarter", 8, 4, span.reason, "2024-Q1", span.first_data)
    assert note == ("The trend shows 4 quarters, not 8: the data starts in 2023-Q4, and a quarter is shown only "
                    "when the data covers the quarter it is compared with (from 2024-Q1).")
    # A year-ago comparison needs a year more history.
    assert [p.label for p in trend_span(q, 8, "year_ago", pd.Timestamp("2023-10-01")).periods] == ["2024-Q4"]
    # Personal rule: only periods whose boundaries have cadence.
    instants = cadence_instants(q, q.previous(), 3)
    span = trend_span(q, 8, "previous", pd.Timestamp("2020-01-01"), instants)
    assert [p.label for p in span.periods] == ["2024-Q2", "2024-Q3", "2024-Q4"] and span.reason == "cadence"
    full = trend_span(q, 8, "previous", pd.Timestamp("2020-01-01"), cadence_instants(q, q.previous(), 8))
    assert len(full.periods) == 8 and full.reason == "" and span_note("quarter", 8, 8, "", "", "") is None


def test_trend_periods_must_be_consecutive(panel):
    with pytest.raises(ValueError, match="consecutive"):
        trend_tables(panel, [Q1, Q3], "previous", LapseRule())


def test_cadence_instants_cover_every_trend_boundary():
    q = parse_period("2024-Q4")
    instants = cadence_instants(q, comparison_period(q, "year_ago"), 8)
    boundaries = {pd.Timestamp(p.start) for p in trend_periods(q, 8)} | {pd.Timestamp(q.end)}
    assert boundaries <= set(instants)
    assert pd.Timestamp("2023-10-01") in instants and pd.Timestamp("2024-01-01") in instants  # its comparison


# -- the trend rows against the packs of past periods (the real stages) -------------------

def _config(mode: str, basis: str) -> object:
    return config_from_dict({
        "pack_id": f"trend-{mode}-{basis}",
        "source": {"kind": "demo", "customers": 1500, "years": 4},
        "period": {"type": "quarter", "comparison": basis},
        "lapse": {"mode": mode},
        "segments": ["region"],
    })


def _overall(folder, name: str, key: str) -> pd.DataFrame:
    table = read_table(folder, name).query("segment == 'all'")
    return table[[key, "count_customers", "value"]].reset_index(drop=True)


@pytest.mark.parametrize("mode,basis", [("fixed", "previous"), ("personal", "year_ago")])
def test_trend_rows_equal_the_packs_of_past_periods(tmp_path, mode, basis):
    config = _config(mode, basis)
    later = parse_period("2026-Q3")
    past = [parse_period("2025-Q4"), parse_period("2026-Q1")]
    folders = {}
    for period in [*past, later]:
        extract(config, period, tmp_path)
        folders[period.label] = compute_metrics(config, period, tmp_path)["folder"]
    trend_ledger = read_table(folders[later.label], "trend_ledger")
    trend_bridge = read_table(folders[later.label], "trend_bridge")
    assert trend_ledger["period"].nunique() == 8
    for period in past:
        own = folders[period.label]
        ledger = trend_ledger.loc[trend_ledger["period"] == period.label,
                                  ["ledger_line", "count_customers", "value"]].reset_index(drop=True)
        bridge = trend_bridge.loc[trend_bridge["period"] == period.label,
                                  ["bridge_class", "count_customers", "value"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(ledger, _overall(own, "ledger", "ledger_line"), check_exact=True)
        pd.testing.assert_frame_equal(bridge, _overall(own, "bridge", "bridge_class"), check_exact=True)
        assert set(trend_bridge.loc[trend_bridge["period"] == period.label, "comparison"]) == {
            comparison_period(period, basis).label}
    # and the last trend period is the run's own ledger and bridge
    last = trend_ledger.loc[trend_ledger["period"] == later.label, ["ledger_line", "count_customers", "value"]]
    pd.testing.assert_frame_equal(last.reset_index(drop=True), _overall(folders[later.label], "ledger", "ledger_line"))


def test_trend_reconciles_on_generated_data(tmp_path):
    """Every period: opening + gained - lapsed = closing; previous + classes = current, to the cent;
    each period's opening is the previous period's closing (count and value)."""
    config = _config("fixed", "previous")
    period = parse_period("2026-Q3")
    extract(config, period, tmp_path)
    folder = compute_metrics(config, period, tmp_path)["folder"]
    ledger, bridge = read_table(folder, "trend_ledger"), read_table(folder, "trend_bridge")
    closing_before = None
    for label, rows in ledger.groupby("period", sort=False):
        n = dict(zip(rows["ledger_line"], rows["count_customers"]))
        v = dict(zip(rows["ledger_line"], (rows["value"] * 100).round().astype("int64")))
        assert n["opening"] + n["new"] + n["reactivated"] - n["lapsed"] == n["closing"]
        if closing_before is not None:
            assert (n["opening"], v["opening"]) == closing_before, label
        closing_before = (n["closing"], v["closing"])
    for label, rows in bridge.groupby("period", sort=False):
        c = dict(zip(rows["bridge_class"], (rows["value"] * 100).round().astype("int64")))
        assert c["previous"] + sum(v for k, v in c.items() if k not in ("previous", "current")) == c["current"]
    # the bridge's current revenue of each period is the previous revenue of the next
    revenue = bridge.pivot(index="period", columns="bridge_class", values="value")
    assert (revenue["current"].iloc[:-1].to_numpy() == revenue["previous"].iloc[1:].to_numpy()).all()


@pytest.mark.parametrize("kind,fiscal,basis,mode", [
    ("month", 1, "year_ago", "fixed"), ("quarter", 4, "previous", "personal"), ("year", 1, "previous", "fixed"),
    ("week", 1, "year_ago", "fixed")])
def test_trend_equals_the_per_period_functions_for_every_period_kind(kind, fiscal, basis, mode):
    """Weeks, months, fiscal quarters and years: each trend period's rows equal the ledger and
    bridge functions run for that period alone (generated data, to the cent)."""
    from cxpipeline.metrics.bridge import classify_customers, revenue_bridge
    from cxpipeline.metrics.ledger import asset_ledger, customer_flows
    from cxpipeline.periods import latest_complete_period
    from cxpipeline.sources import load_source

    config = config_from_dict({"source": {"kind": "demo", "customers": 800, "years": 6}})
    tx = load_source(config).transactions
    last = latest_complete_period(tx["ordered_at"].max().date(), kind, fiscal)
    periods = trend_periods(last, 3)
    cadence = customer_cadence(tx, cadence_instants(last, comparison_period(last, basis), 3))
    panel = build_panel(tx, kind, fiscal, end=pd.Timestamp(last.end))
    rule = LapseRule(mode)
    ledger, bridge = trend_tables(panel, periods, basis, rule, cadence)
    for each in periods:
        s, e = pd.Timestamp(each.start), pd.Timestamp(each.end)
        flows = customer_flows(panel.loc[panel["period_start"] < e], s, e, rule, cadence)
        own_ledger = asset_ledger(flows, flows[["customer_id"]], [])
        classified = classify_customers(panel, s, pd.Timestamp(comparison_period(each, basis).start), period_end=e)
        own_bridge = revenue_bridge(classified, classified[["customer_id"]], [])
        got = ledger.loc[ledger["period"] == each.label, ["ledger_line", "count_customers", "value"]]
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      own_ledger[["ledger_line", "count_customers", "value"]], check_exact=True)
        got = bridge.loc[bridge["period"] == each.label, ["bridge_class", "count_customers", "value"]]
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      own_bridge[["bridge_class", "count_customers", "value"]], check_exact=True)
        assert own_ledger.loc[own_ledger["ledger_line"] == "lapsed", "count_customers"].iloc[0] > 0


def test_trend_periods_config():
    from cxpipeline.errors import ConfigError

    assert config_from_dict({}).trend.periods == 8
    assert config_from_dict({"trend": {"periods": 12}}).trend.periods == 12
    for bad in (1, 37, "many"):
        with pytest.raises(ConfigError):
            config_from_dict({"trend": {"periods": bad}})
    with pytest.raises(ConfigError):
        config_from_dict({"trend": {"period": 8}})  # unknown keys are errors
