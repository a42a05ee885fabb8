"""At-risk model: no look-ahead, fallback, API shape, the demo backtest and the CLI command.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``backtest_lapse_rate``, ``backtest_roc_auc``, ``backtest_brier``, ``backtest_calibration``,
``base_rate_brier``, ``previous_list_review``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxpipeline.cli import main
from cxpipeline.model import (
    SCORE_COLUMNS,
    calibration_table,
    fit_and_score,
    review_previous_list,
    run_backtest,
    score_period,
    snapshot_features,
)
from cxpipeline.panel import build_panel
from cxpipeline.sources.demo import generate_demo
from tests.conftest import transactions_frame

SEGMENTS = ["region", "channel", "customer_type"]


@pytest.fixture(scope="module")
def small_demo():
    return generate_demo(1500, 4, 7, "2026-09-30")


def _with_later_purchases(transactions: pd.DataFrame, at: list[str]) -> pd.DataFrame:
    """Append purchases at the given instants by existing customers and by a brand-new one."""
    existing = transactions["customer_id"].iloc[[0, len(transactions) // 2, -1]].tolist()
    rows = [(c, when, 123.45, f"LATE{i}-{j}") for i, when in enumerate(at) for j, c in enumerate(existing + ["NEW1"])]
    extra = transactions_frame(rows)
    return pd.concat([transactions, extra[transactions.columns.intersection(extra.columns)]], ignore_index=True)


def test_a_purchase_after_the_cutoff_changes_no_training_row_and_no_feature(small_demo):
    transactions, customers = small_demo
    cutoff = pd.Timestamp("2026-01-01")
    later = _with_later_purchases(transactions, ["2026-01-01 00:00:00", "2026-01-02 09:30", "2026-05-01"])
    panel = build_panel(transactions, "month")
    panel_later = build_panel(later, "month")
    assert len(panel_later) > len(panel)

    scores, report, model = fit_and_score(panel, customers, cutoff, segment_columns=SEGMENTS)
    scores2, report2, model2 = fit_and_score(panel_later, customers, cutoff, segment_columns=SEGMENTS)
    assert model.method == "logistic" and len(model.training_rows) > 1000
    pd.testing.assert_frame_equal(model.training_rows, model2.training_rows)
    pd.testing.assert_frame_equal(snapshot_features(panel, cutoff), snapshot_features(panel_later, cutoff))
    pd.testing.assert_frame_equal(scores, scores2)
    assert report == report2


def test_backtest_mid_month_cutoff_ignores_everything_from_the_cutoff_on(small_demo):
    transactions, customers = small_demo
    cutoff = "2026-02-15"
    # Purchases on the cutoff day itself and after the outcome window: fit and outcome unchanged.
    later = _with_later_purchases(transactions, ["2026-02-15 00:00:00", "2026-06-30"])
    summary, scores = run_backtest(transactions, cutoff, 90, customers=customers, segment_columns=SEGMENTS)
    summary2, scores2 = run_backtest(later, cutoff, 90, customers=customers, segment_columns=SEGMENTS)
    assert summary["report"]["training_rows"] == summary2["report"]["training_rows"]
    keep = [c for c in scores.columns if c not in ("is_lapsed", "actual_value")]  # outcomes
    pd.testing.assert_frame_equal(scores[keep], scores2[keep])
    # ... but the purchase on the cutoff day is inside the outcome window: those customers did not lapse.
    buyers = later["customer_id"].iloc[-3:].tolist()
    assert set(scores2.loc[scores2["customer_id"].isin(buyers), "is_lapsed"]) == {0}
    assert "NEW1" not in set(scores2["customer_id"])  # never seen before the cutoff: not scored


def test_backtest_refuses_an_outcome_window_past_the_data(small_demo):
    from cxpipeline.errors import InputError

    transactions, _ = small_demo
    with pytest.raises(InputError, match="not fully observed") as info:
        run_backtest(transactions, "2026-08-01", 90)
    assert "2026-07-03" in str(info.value)  # the latest cutoff that works: 2026-09-30 - 89 days


def test_too_little_history_falls_back_to_a_recency_rule():
    rows = [(f"c{i}", f"2025-0{1 + i % 6}-1{i % 9}", 50.0 + i) for i in range(12)]
    rows += [("c0", "2025-08-01", 10.0)]
    panel = build_panel(transactions_frame(rows), "month")
    result = score_period(panel, None, "2025-09-30", horizon_days=60)
    assert result.report["method"] == "recency_rule"
    assert any("Too little history" in m for m in result.report["messages"])
    scores = result.scores.set_index("customer_id")
    assert len(scores) == 12
    # Every labelled row has the same outcome or too few rows: isotonic or the fixed rule, monotone in recency.
    ordered = scores.sort_values("recency_days")
    assert ordered["p_at_risk"].is_monotonic_increasing
    assert (scores["driver_1"].str.startswith("days since last purchase")).all()
    json.dumps(result.report, allow_nan=False)


def test_score_period_api_and_invariants(small_demo):
    transactions, customers = small_demo
    panel = build_panel(transactions, "month", end=pd.Timestamp("2026-07-01"))
    result = score_period(panel, customers, pd.Timestamp("2026-06-30").date(), segment_columns=SEGMENTS)
    scores = result.scores
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores["customer_id"].is_unique
    assert scores["at_risk_rank"].tolist() == list(range(1, len(scores) + 1))
    assert scores["value_at_risk"].is_monotonic_decreasing
    assert ((scores["p_at_risk"] >= 0) & (scores["p_at_risk"] <= 1)).all()
    assert (scores["predicted_value_12m"] >= 0).all()
    assert np.allclose(scores["value_at_risk"], (scores["p_at_risk"] * scores["predicted_value_12m"]).round(2))
    dnl = scores.loc[scores["is_do_not_lose"]]
    assert len(dnl) > 0
    assert (dnl["tenure_days"] > scores["tenure_days"].median()).all()
    assert (dnl["historical_value"] >= scores["historical_value"].quantile(0.8)).all()
    assert (dnl["predicted_value_12m"] < dnl["revenue_12m"]).all()
    top = scores.head(20)
    assert (top["driver_1"].str.len() > 0).all()
    backtest = result.backtest
    assert backtest["snapshot"] == "2026-04-01"  # latest month start with 90 days observed by 06-30
    assert {"n", "lapse_rate", "model", "recency_rule", "calibration"} <= set(backtest)
    assert sum(row["n"] for row in backtest["calibration"]) == backtest["n"]
    report = result.report
    assert report["logistic_fitted"] and report["snapshots"][-1] == "2026-04-01"
    # choice by evidence: the logistic model only when it beats BG/NBD's Brier score by > 2 standard errors
    paired = backtest["logistic_minus_bgnbd_brier"]
    assert paired["difference"] == pytest.approx(
        backtest["models"]["logistic"]["brier"] - backtest["models"]["bgnbd"]["brier"], abs=1e-4)
    expected = "logistic" if paired["difference"] < -2 * paired["standard_error"] else "bgnbd"
    assert report["method"] == backtest["preferred"] == expected
    assert report["method_choice"]["why"] == backtest["preferred_reason"]
    assert report["training_window"]["last_outcome_day"] == "2026-06-29"
    json.dumps(report, allow_nan=False)
    # Deterministic: refitting gives identical scores.
    again = score_period(panel, customers, "2026-06-30", segment_columns=SEGMENTS)
    pd.testing.assert_frame_equal(scores, again.scores)
    review = review_previous_list(scores, build_panel(transactions, "month"), "2026-06-30", "2026-09-30", top_n=10)
    assert review["top_n"] == 10 and review["days_observed"] == 92
    assert review["top_count_bought_again"] + review["top_count_no_purchase"] == 10
    # The backtest's fit at its snapshot is kept: exactly the list a fit for that instant gives
    # (the pipeline reuses it as last quarter's list instead of fitting it again).
    (instant, kept), = result.fits.items()
    assert instant == pd.Timestamp("2026-04-01")
    refit, _, _ = fit_and_score(panel, customers, instant, segment_columns=SEGMENTS, with_drivers=False,
                                method=report["method"], value_method=report["value_model"]["method"])
    pd.testing.assert_frame_equal(kept, refit)


def test_calibration_table_exact():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([0, 1, 0, 1])
    table = calibration_table(p, y, bins=2)
    assert [(r["n"], r["mean_predicted"], r["observed"]) for r in table] == [(2, 0.15, 0.5), (2, 0.35, 0.5)]
    assert all(r["within_5_points"] is None for r in table)  # fewer than 200 customers per decile


@pytest.fixture(scope="module")
def demo_20k_backtest():
    transactions, customers = generate_demo(20_000, 4, 7, "2026-09-30")
    return run_backtest(transactions, "2026-01-01", 90, customers=customers, segment_columns=SEGMENTS)


def test_demo_model_beats_the_recency_rule(demo_20k_backtest):
    summary, scores = demo_20k_backtest
    assert summary["n"] == len(scores) > 10_000
    assert summary["method"] == "logistic"
    assert summary["model"]["roc_auc"] > summary["recency_rule"]["roc_auc"]
    assert summary["model"]["brier"] < summary["recency_rule"]["brier"]
    assert summary["lapse_rate"] == pytest.approx(scores["is_lapsed"].mean(), abs=1e-4)


def test_demo_calibration_within_5_points_in_every_large_decile(demo_20k_backtest):
    summary, _ = demo_20k_backtest
    large = [row for row in summary["calibration"] if row["n"] >= 200]
    assert len(large) == 10
    for row in large:
        assert abs(row["observed"] - row["mean_predicted"]) <= 0.05, row


def test_cli_backtest_on_a_plain_transactions_csv(tmp_path, small_demo, capsys):
    transactions, _ = small_demo
    plain = transactions.loc[~transactions["is_return"], ["customer_id", "ordered_at", "revenue"]]
    plain = plain.rename(columns={"customer_id": "Customer", "ordered_at": "Date", "revenue": "Amount"})
    plain["Date"] = plain["Date"].dt.strftime("%Y-%m-%d")
    plain.to_csv(tmp_path / "sales.csv", index=False)
    (tmp_path / "pack.yaml").write_text(
        "pack_id: plain\nsource:\n  kind: file\n  path: sales.csv\n  columns:\n"
        "    customer_id: Customer\n    ordered_at: Date\n    revenue: Amount\nsegments: []\n")
    out = tmp_path / "scores.csv"
    code = main(["backtest", "--config", str(tmp_path / "pack.yaml"), "--cutoff", "2026-03-01",
                 "--horizon-days", "60", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "ROC-AUC" in printed and "recency rule" in printed and "lapse rate" in printed
    written = pd.read_csv(out)
    n = int(printed.split("customers scored (n): ")[1].split()[0])
    assert len(written) == n and {"p_at_risk", "p_recency_rule", "is_lapsed"} <= set(written.columns)

    code = main(["backtest", "--config", str(tmp_path / "pack.yaml"), "--cutoff", "2026-09-01",
                 "--horizon-days", "60"])
    assert code == 2
    assert "not fully observed" in capsys.readouterr().err


@pytest.mark.parametrize("max_rows", [600, 300_000])
def test_value_model_rows_equal_every_customers_features_thinned(small_demo, max_rows):
    """fit_value_model computes features from the chosen customers' rows only: the same training
    rows and coefficients as every customer's features thinned to evenly spaced ones."""
    from sklearn.linear_model import LinearRegression

    from cxpipeline.model.clv import VALUE_TERMS, fit_value_model, future_revenue, value_terms

    transactions, _ = small_demo
    t = pd.Timestamp("2026-07-01")
    panel = build_panel(transactions.loc[transactions["ordered_at"] < t], "month", end=t)
    stay = lambda f: 1.0 / (1.0 + f["recency_days"].to_numpy() / 90.0)  # noqa: E731
    model = fit_value_model(panel, t, stay, max_rows=max_rows)
    frames, targets = [], []
    for s in pd.to_datetime(model.snapshots):
        features = snapshot_features(panel, s)
        per_snapshot = max(1, max_rows // len(model.snapshots))
        if len(features) > per_snapshot:
            features = features.iloc[np.linspace(0, len(features) - 1, per_snapshot).astype(int)]
        frames.append(value_terms(features, stay(features)))
        targets.append(future_revenue(panel, s).reindex(features.index, fill_value=0.0).to_numpy())
    x = pd.concat(frames)
    reg = LinearRegression(fit_intercept=False, positive=True).fit(x.to_numpy(), np.concatenate(targets))
    assert model.training_rows == len(x)
    assert (len(x) == 600) == (max_rows == 600)  # thinned to 100 customers a snapshot, or not at all
    assert model.coefficients == {n: round(float(c), 6) for n, c in zip(VALUE_TERMS, reg.coef_)}


def test_categorical_customer_ids_give_the_same_scores_and_report_as_strings(small_demo):
    """The model stage hands score_period the ids as a categorical with sorted categories: every
    fit, backtest and label is the same as with the strings."""
    transactions, customers = small_demo
    panel = build_panel(transactions, "month")
    codes, ids = pd.factorize(panel["customer_id"], sort=True)
    coded = panel.assign(customer_id=pd.Categorical.from_codes(codes, categories=pd.Index(ids, dtype="string")))
    options = {"segment_columns": SEGMENTS}
    expected = score_period(panel, customers, "2026-06-30", **options)
    got = score_period(coded, customers, "2026-06-30", **options)
    pd.testing.assert_frame_equal(got.scores, expected.scores)
    assert got.report == expected.report
    assert got.backtest["available"] and got.report["value_backtest"]["available"]
