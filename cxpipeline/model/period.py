"""The scores a pack prints for a period: backtest first, then the model the evidence prefers.

:func:`score_period` is what the pipeline's model stage calls. It sits above both
:mod:`cxpipeline.model.score` (fit and score at an instant) and :mod:`cxpipeline.model.backtest`
(fit before a cutoff and compare with what happened): it runs the backtest on the latest fully
observed snapshot, lets it choose the at-risk and value methods (docs/model.md, "Choice by
evidence"), scores every customer with them and says which was used and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime

import pandas as pd

from cxpipeline.model.backtest import backtest_snapshot, summary_for_method, value_backtest
from cxpipeline.model.features import rows_before, sorted_by_period, to_instant
from cxpipeline.model.score import METHOD_LABELS, ModelResult, fit_and_score, rescore

__all__ = ["score_period"]


def score_period(
    panel_monthly: pd.DataFrame,
    customers: pd.DataFrame | None,
    period_end: date | datetime | pd.Timestamp,
    *,
    horizon_days: int = 90,
    random_state: int = 0,
    segment_columns: Sequence[str] = (),
    max_snapshots: int = 24,
    max_training_rows: int = 300_000,
    score_features: Callable[[pd.Timestamp], tuple[pd.DataFrame, int]] | None = None,
) -> ModelResult:
    """Scores at the end of a reporting period, with the backtest on the latest observed snapshot.

    Parameters
    ----------
    panel_monthly
        Monthly panel (rows after ``period_end`` are ignored).
    period_end
        Last day of the period (inclusive). Features use data up to and including it.
    score_features
        When ``panel_monthly`` is a sample of the customers: gives every customer's features at
        an instant (see :func:`cxpipeline.model.score.fit_and_score`); the backtests and fits use
        the sample, the scores cover every customer.

    Returns
    -------
    ModelResult
        ``.scores`` ranked by value at risk, ``.backtest`` (see
        :func:`cxpipeline.model.backtest.backtest_snapshot`), ``.report`` (JSON-able).
    """
    t = to_instant(period_end).normalize() + pd.Timedelta(days=1)
    panel_monthly = sorted_by_period(panel_monthly)  # sorted once: every snapshot is then a slice
    options = {"horizon_days": horizon_days, "random_state": random_state, "segment_columns": segment_columns,
               "max_snapshots": max_snapshots, "max_training_rows": max_training_rows}
    fits: dict = {}
    fit_candidates: dict = {}
    before = rows_before(panel_monthly, t)
    backtest = backtest_snapshot(before, customers, t, fitted=fits, fitted_candidates=fit_candidates, **options)
    value_bt = value_backtest(before, t, max_training_rows=max_training_rows)
    # Choice by evidence: the at-risk method the backtest at the full horizon preferred.
    method = backtest.get("preferred") if (backtest.get("available")
                                           and backtest["horizon_days"] == horizon_days) else None
    value_method = value_bt.get("preferred") if value_bt.get("available") and value_bt["horizon_days"] >= 365 \
        else None
    scores, report, model = fit_and_score(panel_monthly, customers, t, method=method, value_method=value_method,
                                          score_features=None if score_features is None else score_features(t),
                                          **options)
    chosen = report["method"]
    if backtest.get("available") and backtest["horizon_days"] == horizon_days:
        backtest = summary_for_method(backtest, chosen)  # the page shows the method the pack uses
    # The backtest's own fit, as the pack would print it with this choice (last period's list).
    fits = {s: rescore(sc, fit_candidates[s], chosen, report["value_model"]["method"]) for s, sc in fits.items()}
    report["period_end"] = f"{to_instant(period_end):%Y-%m-%d}"
    report["backtest"] = backtest
    report["value_backtest"] = value_bt
    report["method_choice"] = _method_choice(chosen, method, backtest, report)
    report["value_model"]["choice"] = (value_bt.get("preferred_reason") if value_method == report["value_model"]["method"]
                                       else "No 12-month value backtest could choose: the first value model that "
                                            "could be fitted is used (regression, else BG/NBD x Gamma-Gamma).")
    report["probabilities"] = _probability_check(chosen, backtest)
    report["messages"] = (report["messages"]
                          + [f"Backtest at {backtest.get('snapshot', 'n/a')}: {m}" for m in backtest.get("messages", [])]
                          + [f"Value backtest: {m}" for m in value_bt.get("messages", [])]
                          + ([report["probabilities"]["note"]] if not report["probabilities"]["shown"] else []))
    return ModelResult(scores=scores, backtest=backtest, report=report, model=model, fits=fits)


def _method_choice(chosen: str, preferred: str | None, backtest: dict, report: dict) -> dict:
    """Which at-risk method the pack uses, and why, in words."""
    label = METHOD_LABELS[chosen]
    if preferred == chosen:
        why = backtest["preferred_reason"]
    elif chosen == "bgnbd" and not report["logistic_fitted"]:
        why = (f"Too few labelled {report['horizon_days']}-day outcome windows fit in the history before "
               f"{report['fit_instant']} to train the logistic model ({report['training_rows']} labelled "
               f"{'row' if report['training_rows'] == 1 else 'rows'}); "
               f"the BG/NBD model needs none.")
        bgnbd = backtest.get("models", {}).get("bgnbd") if backtest.get("available") else None
        if bgnbd and bgnbd["brier"] is not None:
            why += (f" In its backtest ({backtest['horizon_days']} days from {backtest['snapshot']}) its Brier score "
                    f"was {bgnbd['brier']:.4f}, against {backtest['base_rate']['brier']:.4f} for the base rate.")
    elif backtest.get("available") and backtest["horizon_days"] != report["horizon_days"]:
        why = "The backtest ran at a shorter horizon than the scores, so it cannot choose; the default is kept."
    else:
        why = "No backtest evidence to choose by; the default order (logistic, then BG/NBD) is kept."
    return {"method": chosen, "label": label, "why": why}


def _probability_check(chosen: str, backtest: dict) -> dict:
    """Whether P(at risk) is printed as a probability: only when its backtest Brier score beats
    predicting the constant base rate (and never for the fixed rule fitted without labels)."""
    base = backtest.get("base_rate", {}).get("brier") if backtest.get("available") else None
    brier = backtest.get("models", {}).get(chosen, {}).get("brier") if backtest.get("available") else None
    if brier is not None and base is not None:
        shown = brier < base
        note = None if shown else (
            f"P(at risk) is not shown as a probability: in the backtest the {METHOD_LABELS[chosen]} had a Brier "
            f"score of {brier:.4f}, no better than the {base:.4f} of predicting the base rate for everyone. "
            f"The list is a ranking only.")
    else:
        shown = chosen in ("logistic", "bgnbd")
        note = None if shown else (
            "P(at risk) is not shown as a probability: the scores come from a fixed recency rule with no "
            "outcome to calibrate it against. The list is a ranking only.")
    return {"shown": shown, "method_brier": brier, "base_rate_brier": base, "note": note}
