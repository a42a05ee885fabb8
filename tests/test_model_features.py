"""At-risk model features and labels: exact values on a tiny hand-built monthly panel.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here: ``p_at_risk``,
``predicted_value_12m``, ``value_at_risk``, ``score_drivers``, ``do_not_lose``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpipeline.errors import InputError
from cxpipeline.model.features import (
    NO_PURCHASE,
    first_purchases,
    instant_us,
    lapse_labels,
    model_matrix,
    snapshot_features,
)
from cxpipeline.model.train import training_rows, training_snapshots
from cxpipeline.panel import build_panel
from cxpipeline.schema import PANEL_COLUMNS
from tests.conftest import transactions_frame

NaT = pd.NaT

# Customer A: four purchases in three months and a returns-only month; B: one purchase;
# C: only a return (never scored); D: first purchase after the snapshot 2025-01-01.
TRANSACTIONS = [
    ("A", "2024-01-10 00:00", 100.0),
    ("A", "2024-03-05 00:00", 50.0),
    ("A", "2024-03-20 00:00", 30.0),
    ("A", "2024-09-15 00:00", -20.0),
    ("A", "2024-12-01 12:00", 40.0),
    ("B", "2024-11-30 00:00", 200.0),
    ("C", "2024-06-01 00:00", -10.0),
    ("D", "2025-01-05 00:00", 70.0),
]


def hand_panel() -> pd.DataFrame:
    ts = pd.Timestamp
    rows = [
        # customer, period_start, revenue, gross, returns, orders, returns_n, first, last
        ("A", ts("2024-01-01"), 100.0, 100.0, 0.0, 1, 0, ts("2024-01-10"), ts("2024-01-10")),
        ("A", ts("2024-03-01"), 80.0, 80.0, 0.0, 2, 0, ts("2024-03-05"), ts("2024-03-20")),
        ("A", ts("2024-09-01"), -20.0, 0.0, 20.0, 0, 1, NaT, NaT),
        ("A", ts("2024-12-01"), 40.0, 40.0, 0.0, 1, 0, ts("2024-12-01 12:00"), ts("2024-12-01 12:00")),
        ("B", ts("2024-11-01"), 200.0, 200.0, 0.0, 1, 0, ts("2024-11-30"), ts("2024-11-30")),
        ("C", ts("2024-06-01"), -10.0, 0.0, 10.0, 0, 1, NaT, NaT),
        ("D", ts("2025-01-01"), 70.0, 70.0, 0.0, 1, 0, ts("2025-01-05"), ts("2025-01-05")),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "period_start", "revenue", "gross_revenue", "returns",
                                        "count_orders", "count_returns", "first_order_at", "last_order_at"])
    frame["cost"] = 0.6 * frame["revenue"]
    frame["cost_to_serve"] = 2.0
    return frame[list(PANEL_COLUMNS)].astype(PANEL_COLUMNS)


def test_hand_panel_matches_the_sql_panel():
    built = build_panel(transactions_frame(TRANSACTIONS), "month")
    expected = hand_panel()
    columns = ["customer_id", "period_start", "revenue", "gross_revenue", "returns", "count_orders",
               "count_returns", "first_order_at", "last_order_at"]
    pd.testing.assert_frame_equal(built[columns].reset_index(drop=True), expected[columns])


def test_exact_features_at_a_month_start():
    features = snapshot_features(hand_panel(), "2025-01-01")
    assert list(features.index) == ["A", "B"]  # C only returned, D bought after the snapshot
    a = features.loc["A"]
    gap_days = (pd.Timestamp("2024-12-01 12:00") - pd.Timestamp("2024-01-10")) / pd.Timedelta(days=1)
    assert a["recency_days"] == 30.5
    assert a["tenure_days"] == 357.0
    assert a["orders_total"] == 4 and a["orders_12m"] == 4
    assert a["revenue_12m"] == 200.0
    assert a["revenue_last6"] == 20.0 and a["revenue_prior6"] == 180.0
    assert a["spend_trend"] == pytest.approx(-0.8)
    assert a["aov"] == 55.0
    assert a["return_share"] == pytest.approx(20 / 220)
    assert a["mean_gap_days"] == pytest.approx(gap_days / 3)
    assert a["gap_ratio"] == pytest.approx(30.5 / (gap_days / 3))
    assert a["is_single_order"] == 0.0
    assert a["historical_value"] == 200.0
    assert a["snapshot_month"] == 1.0
    b = features.loc["B"]
    assert (b["recency_days"], b["tenure_days"], b["orders_total"]) == (32.0, 32.0, 1.0)
    assert b["is_single_order"] == 1.0 and b["gap_ratio"] == 0.0 and np.isnan(b["mean_gap_days"])
    assert (b["revenue_last6"], b["revenue_prior6"], b["spend_trend"]) == (200.0, 0.0, 1.0)


def test_exact_features_earlier_snapshot_use_only_earlier_rows():
    features = snapshot_features(hand_panel(), "2024-07-01")
    assert list(features.index) == ["A"]
    a = features.loc["A"]
    assert a["recency_days"] == (pd.Timestamp("2024-07-01") - pd.Timestamp("2024-03-20")).days
    assert (a["orders_total"], a["revenue_12m"], a["revenue_last6"], a["revenue_prior6"]) == (3, 180, 180, 0)
    assert a["return_share"] == 0.0 and a["historical_value"] == 180.0


def test_trailing_windows_are_calendar_months():
    # At 2025-07-01 the 12 months are Jul 2024..Jun 2025: A's January and March rows drop out.
    a = snapshot_features(hand_panel(), "2025-07-01").loc["A"]
    assert (a["orders_12m"], a["revenue_12m"], a["orders_total"]) == (1, 20.0, 4)
    # last 6 = Jan..Jun 2025 (nothing), prior 6 = Jul..Dec 2024 (-20 return + 40 purchase)
    assert (a["revenue_last6"], a["revenue_prior6"], a["spend_trend"]) == (0.0, 20.0, -1.0)


def test_a_panel_row_holding_the_future_is_refused():
    with pytest.raises(InputError, match="on or after the snapshot"):
        snapshot_features(hand_panel(), "2024-03-10")  # March row holds a purchase on 03-20


def test_mid_month_snapshot_is_fine_with_a_panel_built_to_it():
    panel = build_panel(transactions_frame(TRANSACTIONS), "month", end=pd.Timestamp("2024-03-10"))
    a = snapshot_features(panel, "2024-03-10").loc["A"]
    assert (a["orders_total"], a["recency_days"]) == (2, 5.0)


@pytest.mark.parametrize(
    ("snapshot", "horizon", "expected"),
    [
        ("2024-10-01", 90, [0, 0]),  # A bought 12-01, B 11-30, both inside [10-01, 12-30)
        ("2024-07-01", 60, [1, 1]),  # A's September row is a return, not a purchase
        ("2024-09-01", 91, [1, 0]),  # window ends 12-01 00:00 (exclusive): A's 12:00 purchase is out
        ("2024-09-01", 92, [0, 0]),
    ],
)
def test_lapse_labels_exact(snapshot, horizon, expected):
    labels = lapse_labels(hand_panel(), snapshot, horizon, pd.Index(["A", "B"]))
    assert labels.tolist() == expected
    # string ids (Arrow lookup) and integer customer codes (pandas isin) give the same labels
    panel = hand_panel().astype({"customer_id": "string[pyarrow]"})
    assert lapse_labels(panel, snapshot, horizon, pd.Index(["A", "B"], dtype="string")).tolist() == expected
    coded = panel.assign(customer_id=panel["customer_id"].map({"A": 0, "B": 1, "C": 2, "D": 3}).astype("int64"))
    assert lapse_labels(coded, snapshot, horizon, pd.Index([0, 1])).tolist() == expected


def test_training_snapshots_end_their_windows_by_the_fit_instant():
    panel = hand_panel()
    snapshots = training_snapshots(panel, pd.Timestamp("2025-01-01"), 90)
    assert snapshots[-1] == pd.Timestamp("2024-10-01")  # 10-01 + 90 days = 12-30 <= 2025-01-01
    assert snapshots[0] == pd.Timestamp("2024-02-01")  # first month start after the first purchase
    assert all(s + pd.Timedelta(days=90) <= pd.Timestamp("2025-01-01") for s in snapshots)
    rows, info = training_rows(panel, snapshots, 90)
    assert info["customer_sample_fraction"] == 1.0
    october = rows.loc[rows["snapshot"] == pd.Timestamp("2024-10-01")].set_index("customer_id")
    assert october["is_lapsed"].to_dict() == {"A": 0}  # B had not bought yet on 10-01


def test_model_matrix_logs_and_season():
    features = snapshot_features(hand_panel(), "2025-01-01")
    x = model_matrix(features)
    assert x.loc["A", "log_recency"] == pytest.approx(np.log1p(30.5))
    assert x.loc["B", "log_gap_ratio"] == 0.0
    assert x.loc["A", "season:month=1"] == 1.0 and x.loc["A", "season:month=2"] == 0.0


def test_first_purchases_exact():
    codes, ids, first = first_purchases(hand_panel())
    assert ids.tolist() == ["A", "B", "C", "D"]
    assert codes.tolist() == [0, 0, 0, 0, 1, 2, 3]
    us = [instant_us(pd.Timestamp(d)) for d in ("2024-01-10", "2024-11-30", "2025-01-05")]
    assert first.tolist() == [us[0], us[1], NO_PURCHASE, us[2]]  # C returned only


def test_first_purchases_of_integer_customer_codes_need_no_factorize():
    # codes 0..4 with no row for code 3: its own code, without a purchase
    coded = hand_panel().assign(customer_id=lambda f: f["customer_id"].map({"A": 0, "B": 1, "C": 2, "D": 4}))
    codes, ids, first = first_purchases(coded)
    assert ids.tolist() == [0, 1, 2, 3, 4]
    assert codes.tolist() == [0, 0, 0, 0, 1, 2, 4]
    us = [instant_us(pd.Timestamp(d)) for d in ("2024-01-10", "2024-11-30", "2025-01-05")]
    assert first.tolist() == [us[0], us[1], NO_PURCHASE, NO_PURCHASE, us[2]]
    # ids beyond the row count are factorized like any others (no array as long as the largest id)
    _, ids, first = first_purchases(coded.assign(customer_id=coded["customer_id"] * 1000))
    assert ids.tolist() == [0, 1000, 2000, 4000] and first.tolist() == [us[0], us[1], NO_PURCHASE, us[2]]


def test_scores_tied_on_value_at_risk_and_probability_rank_by_customer_id():
    from cxpipeline.model.score import fit_and_score

    # Identical histories give identical scores; ids chosen so that id order differs from the
    # order of first appearance in the panel.
    rows = [(cid, "2024-01-10 00:00", 100.0) for cid in ("Z9", "A1", "M5")]
    rows += [("Q7", "2024-02-10 00:00", 100.0), ("Q7", "2024-03-10 00:00", 50.0)]
    panel = build_panel(transactions_frame(rows), "month")
    scores, _, _ = fit_and_score(panel, None, "2024-05-01")
    tied = scores.loc[scores["customer_id"] != "Q7"]
    assert tied["value_at_risk"].nunique() == 1 and tied["p_at_risk"].nunique() == 1
    assert tied["customer_id"].tolist() == ["A1", "M5", "Z9"]
    assert tied["at_risk_rank"].tolist() == sorted(tied["at_risk_rank"].tolist())
