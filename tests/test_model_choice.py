"""Choice by evidence between the logistic and BG/NBD models; short histories; the value backtest.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``value_backtest_mae``, ``value_backtest_totals``, ``value_backtest_lift``, ``naive_value``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpipeline.cli import main
from cxpipeline.model import fit_and_score, format_summary, run_backtest, score_period
from cxpipeline.model.backtest import _value_metrics, backtest_plan, paired_brier_difference, preferred_method
from cxpipeline.model.period import _probability_check
from cxpipeline.panel import build_panel
from tests.conftest import transactions_frame

CDNOW_TRANSACTIONS = Path(__file__).parent / "data" / "cdnow_sample_transactions.txt"  # see cdnow_sample.LICENSE.txt


@pytest.fixture(scope="module")
def cdnow():
    """The CDNOW 1/10 sample: one acquisition cohort (Jan-Mar 1997), 2,357 customers, to 1998-06-30."""
    raw = pd.read_csv(CDNOW_TRANSACTIONS, sep=r"\s+", header=None, names=["id", "sample_id", "date", "cds", "amount"],
                      dtype={"id": str, "date": str})
    rows = [(r.id, pd.Timestamp(r.date), r.amount, f"o{i}") for i, r in enumerate(raw.itertuples())]
    return transactions_frame(rows)


def test_short_history_long_horizon_uses_bgnbd_and_beats_the_base_rate(cdnow):
    # 9 months of history, 273-day horizon: no labelled window fits before the cutoff.
    summary, scores = run_backtest(cdnow, "1997-10-01", 273)
    assert summary["n"] == 2357 and summary["lapse_rate"] == pytest.approx(0.71, abs=0.01)
    assert summary["method"] == summary["pack_method"] == "bgnbd"
    assert "logistic" not in summary["models"] and summary["report"]["training_rows"] == 0
    bgnbd, rule, base = summary["models"]["bgnbd"], summary["recency_rule"], summary["base_rate"]
    assert base["brier"] == pytest.approx(summary["lapse_rate"] * (1 - summary["lapse_rate"]), abs=1e-4)
    assert bgnbd["brier"] < base["brier"] - 0.03  # measured 0.163 vs 0.206
    assert rule["brier"] > base["brier"]  # the old fallback, recency / (recency + H): worse than the base rate
    assert bgnbd["roc_auc"] > 0.7
    assert np.allclose(scores["p_at_risk"], scores["p_bgnbd"])
    # value: BG/NBD x Gamma-Gamma against the naive "same as last 12 months", over the 273 days observed
    value = summary["value"]
    assert value["horizon_days"] == 273 and value["preferred"] == "bgnbd"
    assert value["models"]["bgnbd"]["mae"] < value["naive"]["mae"]
    assert value["models"]["bgnbd"]["total_actual"] == pytest.approx(scores["actual_value"].sum(), abs=0.05)
    text = format_summary(summary)
    assert "BG/NBD purchase model" in text and "no labelled windows" in text and "value backtest" in text


def test_short_history_pack_scores_say_which_model_and_why(cdnow):
    panel = build_panel(cdnow, "month")
    result = score_period(panel, None, "1997-09-30", horizon_days=273)
    report = result.report
    assert report["method"] == "bgnbd" and not report["logistic_fitted"]
    assert "too few labelled 273-day outcome windows" in report["method_choice"]["why"].lower()
    # the backtest runs at the longest horizon that leaves half of the history for fitting
    backtest = result.backtest
    assert backtest["available"] and backtest["horizon_requested"] == 273
    assert (backtest["snapshot"], backtest["horizon_days"]) == ("1997-06-01", 122)
    assert "longer than the history allows" in backtest["shortened_note"]
    assert backtest["models"]["bgnbd"]["brier"] < backtest["base_rate"]["brier"]
    assert report["probabilities"]["shown"]
    assert report["value_model"]["method"] == "bgnbd"
    scores = result.scores
    assert (scores["driver_1"].str.startswith("days since last purchase")).all()
    assert ((scores["p_at_risk"] > 0) & (scores["p_at_risk"] <= 1)).all()
    assert (scores["predicted_value_12m"] >= 0).all() and scores["predicted_value_12m"].sum() > 0
    json.dumps(report, allow_nan=False)


def test_a_purchase_after_the_cutoff_changes_nothing_for_bgnbd(cdnow):
    panel = build_panel(cdnow, "month")
    later = pd.concat([cdnow, transactions_frame([("00004", "1997-10-01", 10.0, "L1"), ("NEW", "1997-10-02", 5.0, "L2")])],
                      ignore_index=True)
    a = fit_and_score(panel, None, "1997-10-01", horizon_days=273)
    b = fit_and_score(build_panel(later, "month"), None, "1997-10-01", horizon_days=273)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[2].candidates, b[2].candidates)
    assert a[1] == b[1]


def test_backtest_plan_exact():
    panel = build_panel(transactions_frame([("a", "2025-01-10", 10.0), ("b", "2025-03-05", 20.0)]), "month")
    # 90 days fit: the latest month start whose window ends by the data end
    assert backtest_plan(panel, "2025-10-01", 90) == (pd.Timestamp("2025-07-01"), 90, None)
    # 273 days do not fit: the middle of 2025-01-10 .. 2025-10-01 is 2025-05-22 -> 2025-06-01, 122 days
    s, days, note = backtest_plan(panel, "2025-10-01", 273)
    assert (s, days) == (pd.Timestamp("2025-06-01"), 122)
    assert "273-day horizon is longer" in note and "122 days from 2025-06-01" in note
    # nothing fits at all: one month of data
    assert backtest_plan(panel, "2025-02-01", 90) is None


def test_preferred_method_lowest_brier_then_auc():
    models = {"logistic": {"brier": 0.13, "roc_auc": 0.88}, "bgnbd": {"brier": 0.12, "roc_auc": 0.87},
              "recency_rule": {"brier": 0.05, "roc_auc": 0.99}}  # the rule is a baseline, never chosen
    method, reason = preferred_method(models)
    assert method == "bgnbd" and "0.1200 vs 0.1300" in reason
    models["bgnbd"]["brier"] = 0.13
    assert preferred_method(models)[0] == "logistic"  # tie on Brier: higher ROC-AUC
    assert preferred_method({"bgnbd": {"brier": 0.2, "roc_auc": 0.7}})[0] == "bgnbd"
    assert preferred_method({"recency_rule": {"brier": 0.2, "roc_auc": 0.7}})[0] is None
    # with the paired difference: the logistic model must win by more than two standard errors
    models["bgnbd"]["brier"] = 0.135
    assert preferred_method(models, {"difference": -0.005, "standard_error": 0.002})[0] == "logistic"
    method, reason = preferred_method(models, {"difference": -0.003, "standard_error": 0.002})
    assert method == "bgnbd" and "did not beat the label-free BG/NBD model by more than chance" in reason


def test_paired_brier_difference_exact():
    y = np.array([1, 0, 1, 0])
    a = np.array([0.9, 0.1, 0.6, 0.4])  # squared errors .01 .01 .16 .16
    b = np.array([0.5, 0.5, 0.5, 0.5])  # .25 each
    d = np.array([0.01, 0.01, 0.16, 0.16]) - 0.25
    out = paired_brier_difference(a, b, y)
    assert out["difference"] == pytest.approx(d.mean(), abs=1e-6)
    assert out["standard_error"] == pytest.approx(d.std(ddof=1) / 2, abs=1e-6)


def test_a_probability_worse_than_the_base_rate_is_not_shown():
    backtest = {"available": True, "base_rate": {"brier": 0.21}, "models": {"bgnbd": {"brier": 0.166},
                                                                          "recency_rule": {"brier": 0.275}}}
    assert _probability_check("bgnbd", backtest)["shown"]
    hidden = _probability_check("recency_rule", backtest)
    assert not hidden["shown"] and "0.2750" in hidden["note"] and "ranking only" in hidden["note"]
    # no backtest: the fixed rule has nothing to be calibrated against
    assert not _probability_check("recency_rule", {"available": False})["shown"]
    assert _probability_check("bgnbd", {"available": False})["shown"]


def test_value_metrics_exact():
    predicted = np.array([10.0, 0.0, 5.0, 1.0])
    actual = np.array([8.0, 2.0, 0.0, 2.0])
    m = _value_metrics(predicted, actual, bins=2)
    assert m["mae"] == pytest.approx((2 + 2 + 5 + 1) / 4)
    assert (m["total_predicted"], m["total_actual"]) == (16.0, 12.0)
    # deciles by predicted value, highest first: {10, 5} then {1, 0}
    assert [(d["n"], d["predicted"], d["actual"]) for d in m["deciles"]] == [(2, 15.0, 8.0), (2, 1.0, 4.0)]
    assert m["deciles"][0]["share_of_actual"] == pytest.approx(8 / 12, abs=1e-4)
    assert m["deciles"][0]["lift"] == pytest.approx((8 / 2) / (12 / 4), abs=1e-3)


def test_cli_backtest_prints_every_model_and_the_value_backtest(tmp_path, cdnow, capsys):
    plain = cdnow.loc[:, ["customer_id", "ordered_at", "revenue"]].copy()
    plain["ordered_at"] = plain["ordered_at"].dt.strftime("%Y-%m-%d")
    plain.to_csv(tmp_path / "sales.csv", index=False)
    (tmp_path / "pack.yaml").write_text(
        "pack_id: cdnow\nsource:\n  kind: file\n  path: sales.csv\n  columns:\n"
        "    customer_id: customer_id\n    ordered_at: ordered_at\n    revenue: revenue\nsegments: []\n")
    out = tmp_path / "scores.csv"
    assert main(["backtest", "--config", str(tmp_path / "pack.yaml"), "--cutoff", "1997-10-01",
                 "--horizon-days", "273", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "BG/NBD purchase model" in printed and "<- the pack's model" in printed
    assert "constant: observed lapse rate" in printed and "BG/NBD x Gamma-Gamma" in printed
    written = pd.read_csv(out)
    assert {"p_at_risk", "p_bgnbd", "p_recency_rule", "value_bgnbd", "is_lapsed", "actual_value"} <= set(written.columns)
    assert main(["backtest", "--config", str(tmp_path / "pack.yaml"), "--cutoff", "1998-01-01",
                 "--horizon-days", "273"]) == 2
    assert "--horizon-days 181 or less" in capsys.readouterr().err
