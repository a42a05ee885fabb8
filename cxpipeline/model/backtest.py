"""Honest backtests: fit before a cutoff, score, then compare with what customers actually did.

One module of ~640 lines on purpose: the at-risk backtest, the value backtest and the CLI's
cutoff backtest share one time convention (below) and one set of metric helpers; split, each
part would re-state the convention.

Conventions (the same everywhere in the model):

* a *cutoff* / snapshot is an instant, midnight at the start of a day: training and features use
  transactions strictly before it;
* the outcome window is the ``horizon_days`` days starting on the cutoff day,
  ``[cutoff, cutoff + horizon_days)``; a customer *lapsed* if they made no purchase in it;
* the population is every customer with a purchase before the cutoff.

The recency-only rule is given its best shot: its ROC-AUC is computed on days since last purchase
itself (any increasing map of recency has the same AUC) and its Brier score on the isotonic lapse
rate by recency fitted on the same training rows as the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import brier_score_loss, roc_auc_score

from cxpipeline.errors import InputError
from cxpipeline.model.features import lapse_labels, rows_before, sorted_by_period, to_instant
from cxpipeline.model.score import METHOD_LABELS, METHODS, VALUE_METHOD_LABELS, VALUE_METHODS, fit_and_score

__all__ = [
    "CALIBRATION_MIN_DECILE",
    "evaluate",
    "calibration_table",
    "backtest_plan",
    "backtest_snapshot",
    "paired_brier_difference",
    "preferred_method",
    "summary_for_method",
    "value_backtest",
    "run_backtest",
    "review_previous_list",
    "format_summary",
]

#: Deciles with at least this many customers are held to the 5-point calibration check.
CALIBRATION_MIN_DECILE = 200


def evaluate(p: np.ndarray, y: np.ndarray, ranking: np.ndarray | None = None) -> dict:
    """ROC-AUC (on ``ranking`` if given, else ``p``) and Brier score of ``p`` against ``y``."""
    p = np.asarray(p, dtype="float64")
    y = np.asarray(y, dtype="int64")
    both = len(np.unique(y)) == 2
    ranking = p if ranking is None else np.asarray(ranking, dtype="float64")
    return {
        "roc_auc": round(float(roc_auc_score(y, ranking)), 4) if both else None,
        "brier": round(float(brier_score_loss(y, p)), 4) if len(y) else None,
    }


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Mean predicted vs observed lapse rate by decile of predicted probability.

    Deciles are equal-count groups of customers ordered by ``p`` (ties broken by position).
    ``within_5_points`` is given for deciles with at least :data:`CALIBRATION_MIN_DECILE` customers.
    """
    p = np.asarray(p, dtype="float64")
    y = np.asarray(y, dtype="int64")
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(p)))
    table = []
    for k, idx in enumerate(groups, start=1):
        mean_p = float(p[idx].mean())
        observed = float(y[idx].mean())
        row = {"decile": k, "n": int(len(idx)), "mean_predicted": round(mean_p, 4),
               "observed": round(observed, 4), "difference": round(observed - mean_p, 4),
               "within_5_points": (abs(observed - mean_p) <= 0.05) if len(idx) >= CALIBRATION_MIN_DECILE
               else None}
        table.append(row)
    return table


def _metrics_with_calibration(p: np.ndarray, y: np.ndarray, ranking: np.ndarray | None = None) -> dict:
    calibration = calibration_table(p, y)
    checked = [row["within_5_points"] for row in calibration if row["within_5_points"] is not None]
    return {**evaluate(p, y, ranking), "calibration": calibration,
            "calibration_deciles_checked": len(checked),
            "calibration_within_5_points": all(checked) if checked else None}


def paired_brier_difference(p_a: np.ndarray, p_b: np.ndarray, y: np.ndarray) -> dict:
    """Mean per-customer difference of squared errors, ``(p_a - y)^2 - (p_b - y)^2`` (the Brier
    score of ``a`` minus that of ``b``), and its standard error over customers."""
    y = np.asarray(y, dtype="float64")
    d = (np.asarray(p_a, dtype="float64") - y) ** 2 - (np.asarray(p_b, dtype="float64") - y) ** 2
    n = len(d)
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return {"difference": round(float(d.mean()), 6) if n else None, "standard_error": round(se, 6)}


def preferred_method(models: dict, paired: dict | None = None) -> tuple[str | None, str]:
    """The method the evidence prefers among the fitted models (logistic, BG/NBD).

    The BG/NBD model needs no labelled history and assumes less about how representative past
    snapshots are, so the logistic model is preferred only when its Brier score is lower than
    BG/NBD's by more than two standard errors of the paired per-customer difference (``paired``,
    from :func:`paired_brier_difference` of logistic vs BG/NBD). Without ``paired`` the lower
    Brier score wins (ties: the higher ROC-AUC).

    Returns
    -------
    (method, reason)
        ``None`` when neither was evaluated; ``reason`` is a sentence for the report.
    """
    evaluated = [m for m in ("logistic", "bgnbd") if m in models and models[m]["brier"] is not None]
    if not evaluated:
        return None, "No model could be evaluated in the backtest."
    if len(evaluated) == 1:
        only = evaluated[0]
        why = ("no labelled outcome window fitted before the backtest snapshot, so the logistic model could not "
               "be trained there" if only == "bgnbd" else "the BG/NBD model could not be fitted")
        return only, f"Only the {METHOD_LABELS[only]} could be evaluated ({why})."
    lg, bg = models["logistic"], models["bgnbd"]
    scores = (f"Brier {lg['brier']:.4f} vs {bg['brier']:.4f}, ROC-AUC {lg['roc_auc']:.4f} vs "
              f"{bg['roc_auc']:.4f} for the logistic and BG/NBD models")
    if paired is not None and paired.get("difference") is not None:
        diff, se = paired["difference"], paired["standard_error"]
        if diff < -2 * se:
            return "logistic", (f"The calibrated logistic model beat the BG/NBD model in the backtest by more than "
                                f"chance: its Brier score was lower by {-diff:.4f} (standard error {se:.4f}; {scores}).")
        return "bgnbd", (f"The calibrated logistic model did not beat the label-free BG/NBD model by more than "
                         f"chance in the backtest (Brier difference {diff:+.4f}, standard error {se:.4f}; {scores}), "
                         f"so the simpler model is used.")
    best = min(evaluated, key=lambda m: (models[m]["brier"], -(models[m]["roc_auc"] or 0.0), METHODS.index(m)))
    other = next(m for m in evaluated if m != best)
    return best, (f"The {METHOD_LABELS[best]} had the lower Brier score in the backtest "
                  f"({models[best]['brier']:.4f} vs {models[other]['brier']:.4f} for the {METHOD_LABELS[other]}; "
                  f"ROC-AUC {models[best]['roc_auc']:.4f} vs {models[other]['roc_auc']:.4f}).")


def _summary(snapshot: pd.Timestamp, horizon_days: int, candidates: dict[str, np.ndarray], method: str,
             recency: np.ndarray, y: np.ndarray, report: dict) -> dict:
    """Every candidate's ROC-AUC, Brier and calibration against outcomes ``y``.

    ``method`` is the method whose probabilities ``model`` / ``calibration`` describe (the one the
    pack uses); ``models`` holds all of them; ``base_rate`` the Brier score of predicting the
    observed lapse rate for everyone (a probability worse than that is not worth printing).
    """
    models = {}
    for name in METHODS:
        if name in candidates:
            ranking = recency if name == "recency_rule" else None
            models[name] = {"label": METHOD_LABELS[name],
                            **_metrics_with_calibration(np.asarray(candidates[name]), y, ranking)}
    chosen = models[method]
    rule = models["recency_rule"]
    beats = (None if chosen["roc_auc"] is None or method == "recency_rule" else
             bool(chosen["roc_auc"] > rule["roc_auc"] and chosen["brier"] < rule["brier"]))
    lapse_rate = float(y.mean()) if len(y) else None
    paired = (paired_brier_difference(candidates["logistic"], candidates["bgnbd"], y)
              if "logistic" in candidates and "bgnbd" in candidates and len(y) > 1 else None)
    preferred, reason = preferred_method(models, paired)
    return {
        "available": True,
        "snapshot": f"{snapshot:%Y-%m-%d}",
        "horizon_days": int(horizon_days),
        "outcome_window": f"{snapshot:%Y-%m-%d} to {snapshot + pd.Timedelta(days=horizon_days - 1):%Y-%m-%d}",
        "method": method,
        "method_label": METHOD_LABELS[method],
        "n": int(len(y)),
        "lapse_rate": round(lapse_rate, 4) if lapse_rate is not None else None,
        "model": {k: chosen[k] for k in ("roc_auc", "brier")},
        "recency_rule": {k: rule[k] for k in ("roc_auc", "brier")},
        "models": models,
        "base_rate": {"lapse_rate": round(lapse_rate, 4) if lapse_rate is not None else None,
                      "brier": round(lapse_rate * (1 - lapse_rate), 4) if lapse_rate is not None else None},
        "logistic_minus_bgnbd_brier": paired,
        "preferred": preferred,
        "preferred_reason": reason,
        "model_beats_rule": beats,
        "calibration": chosen["calibration"],
        "calibration_deciles_checked": chosen["calibration_deciles_checked"],
        "calibration_within_5_points": chosen["calibration_within_5_points"],
        "training_window": report["training_window"],
        "training_rows": report["training_rows"],
        "messages": list(report["messages"]),
    }


def summary_for_method(summary: dict, method: str) -> dict:
    """The backtest summary with ``method`` as the model it describes (``model``, ``calibration``,
    ``model_beats_rule``): after the pack has chosen its method by this very backtest."""
    models = summary.get("models", {})
    if method not in models:
        return summary
    m, rule = models[method], summary["recency_rule"]
    out = dict(summary)
    out.update({
        "method": method, "method_label": METHOD_LABELS[method],
        "model": {k: m[k] for k in ("roc_auc", "brier")},
        "calibration": m["calibration"],
        "calibration_deciles_checked": m["calibration_deciles_checked"],
        "calibration_within_5_points": m["calibration_within_5_points"],
        "model_beats_rule": (None if m["roc_auc"] is None or method == "recency_rule" else
                             bool(m["roc_auc"] > rule["roc_auc"] and m["brier"] < rule["brier"])),
    })
    return out


def backtest_plan(panel_monthly: pd.DataFrame, data_end: date | datetime | pd.Timestamp,
                  horizon_days: int) -> tuple[pd.Timestamp, int, str | None] | None:
    """The backtest snapshot and horizon that the data allow.

    The latest month start ``s`` whose ``horizon_days`` window ends by ``data_end`` and that has
    purchases before it. When the horizon is longer than the history allows, the longest
    horizon that leaves at least half of the history for fitting: ``s`` is the month start
    nearest the middle of [first purchase, data end] (at least one month after the first
    purchase) and the horizon runs from ``s`` to ``data_end``.

    Returns
    -------
    (snapshot, horizon_days, note) or None
        ``note`` explains a shortened horizon; ``None`` when no backtest fits at all.
    """
    end = to_instant(data_end)
    first = panel_monthly["first_order_at"].min()
    if pd.isna(first):
        return None
    first = pd.Timestamp(first)
    latest = end - pd.Timedelta(days=horizon_days)
    s = pd.Timestamp(year=latest.year, month=latest.month, day=1)
    if s > first:
        return s, int(horizon_days), None
    earliest = pd.Timestamp(year=first.year, month=first.month, day=1) + pd.DateOffset(months=1)
    middle = first + (end - first) / 2
    s = max(earliest, pd.Timestamp(year=middle.year, month=middle.month, day=1)
            + pd.DateOffset(months=1 if middle.day > 15 else 0))
    shortened = int((end - s).days)
    if shortened < 1:
        return None
    note = (f"The {horizon_days}-day horizon is longer than the history allows a fully observed backtest "
            f"(purchases from {first:%Y-%m-%d} to {end - pd.Timedelta(days=1):%Y-%m-%d}): the backtest uses "
            f"the longest horizon that leaves half of the history for fitting, {shortened} days from "
            f"{s:%Y-%m-%d}.")
    return s, shortened, note


def backtest_snapshot(
    panel_monthly: pd.DataFrame,
    customers: pd.DataFrame | None,
    data_end: date | datetime | pd.Timestamp,
    *,
    horizon_days: int = 90,
    random_state: int = 0,
    segment_columns: Sequence[str] = (),
    max_snapshots: int = 24,
    max_training_rows: int = 300_000,
    fitted: dict | None = None,
    fitted_candidates: dict | None = None,
) -> dict:
    """Backtest on the latest month start ``s`` whose outcome window ends by ``data_end``.

    Fits exactly as the live model would have at ``s`` (only windows ending by ``s``), scores the
    customers who bought before ``s`` with every method (logistic when it can be trained, BG/NBD,
    the recency rule) and labels them from the panel. ``preferred`` names the method the pack
    should use. When the horizon does not fit in the history, see :func:`backtest_plan`.
    ``fitted``: a dict that receives ``{s: scores}`` (without drivers), for a caller that needs
    the scores at ``s`` too; ``fitted_candidates`` receives ``{s: every method's P and value}``
    in the same row order (see :func:`cxpipeline.model.score.rescore`).
    """
    end = to_instant(data_end)
    panel = rows_before(sorted_by_period(panel_monthly), end)
    plan = backtest_plan(panel, end, horizon_days)
    if plan is None:
        return {"available": False, "horizon_days": int(horizon_days), "horizon_requested": int(horizon_days),
                "messages": ["No backtest: the data do not cover any outcome window after a month start "
                             "with earlier purchases."]}
    s, used, note = plan
    scores, report, model = fit_and_score(
        panel, customers, s, horizon_days=used, random_state=random_state,
        segment_columns=segment_columns, max_snapshots=max_snapshots,
        max_training_rows=max_training_rows, with_drivers=False)
    if fitted is not None and used == horizon_days:
        fitted[s] = scores
        if fitted_candidates is not None:
            fitted_candidates[s] = model.candidates
    y = lapse_labels(panel, s, used, pd.Index(scores["customer_id"]))
    candidates = {c[2:]: model.candidates[c].to_numpy() for c in model.candidates.columns if c.startswith("p_")}
    summary = _summary(s, used, candidates, model.chosen_method, scores["recency_days"].to_numpy(), y, report)
    summary["horizon_requested"] = int(horizon_days)
    if note:
        summary["shortened_note"] = note
        summary["messages"] = [note] + summary["messages"]
    return summary


def _value_metrics(predicted: np.ndarray, actual: np.ndarray, bins: int = 10) -> dict:
    """MAE, totals and lift by decile of predicted value (highest first)."""
    predicted = np.asarray(predicted, dtype="float64")
    actual = np.asarray(actual, dtype="float64")
    n = len(actual)
    total_actual = float(actual.sum())
    mean_actual = total_actual / n if n else 0.0
    deciles = []
    if n:
        order = np.argsort(-predicted, kind="stable")
        for k, idx in enumerate(np.array_split(order, min(bins, n)), start=1):
            part = float(actual[idx].sum())
            deciles.append({"decile": k, "n": int(len(idx)), "predicted": round(float(predicted[idx].sum()), 2),
                            "actual": round(part, 2),
                            "share_of_actual": round(part / total_actual, 4) if total_actual else None,
                            "lift": round(part / len(idx) / mean_actual, 3) if mean_actual else None})
    return {"mae": round(float(np.abs(predicted - actual).mean()), 2) if n else None,
            "total_predicted": round(float(predicted.sum()), 2), "total_actual": round(total_actual, 2),
            "top_decile_share": deciles[0]["share_of_actual"] if deciles else None,
            "deciles": deciles}


def _value_summary(snapshot: pd.Timestamp, days: int, predictions: dict[str, np.ndarray], naive: np.ndarray,
                   actual: np.ndarray, note: str | None) -> dict:
    models = {name: {"label": VALUE_METHOD_LABELS[name], **_value_metrics(p, actual)}
              for name, p in predictions.items()}
    naive_metrics = {"label": VALUE_METHOD_LABELS["naive"], **_value_metrics(naive, actual)}
    evaluated = [m for m in ("regression", "bgnbd") if m in models and models[m]["mae"] is not None]
    preferred = min(evaluated, key=lambda m: (models[m]["mae"], VALUE_METHODS.index(m))) if evaluated else None
    reason = None
    if preferred:
        others = "; ".join(f"{VALUE_METHOD_LABELS[m]}: {models[m]['mae']:.2f}" for m in evaluated if m != preferred)
        reason = (f"The {VALUE_METHOD_LABELS[preferred]} value model had the smallest mean absolute error in the "
                  f"value backtest ({models[preferred]['mae']:.2f}; {others + '; ' if others else ''}"
                  f"same as last 12 months: {naive_metrics['mae']:.2f}).")
    out = {"available": True, "snapshot": f"{snapshot:%Y-%m-%d}", "horizon_days": int(days),
           "outcome_window": f"{snapshot:%Y-%m-%d} to {snapshot + pd.Timedelta(days=days - 1):%Y-%m-%d}",
           "n": int(len(actual)), "models": models, "naive": naive_metrics,
           "preferred": preferred, "preferred_reason": reason, "messages": [note] if note else []}
    return out


def value_backtest(
    panel_monthly: pd.DataFrame,
    data_end: date | datetime | pd.Timestamp,
    *,
    max_training_rows: int = 300_000,
) -> dict:
    """Predicted vs actual next-12-month value on the latest fully observed snapshot.

    At the latest month start ``s`` with 12 whole months observed by ``data_end``: the regression
    value model and BG/NBD x Gamma-Gamma, both fitted on data before ``s`` only, against each
    customer's net revenue in those 12 months, and against the naive "same as the last 12
    months". With less history, the horizon is shortened as in :func:`backtest_plan` (BG/NBD x
    Gamma-Gamma and the naive value scaled to the horizon; the regression needs 12 months).
    ``preferred``: the model with the smaller mean absolute error.
    """
    from cxpipeline.model.bgnbd import fit_latent
    from cxpipeline.model.clv import fit_value_model, future_revenue
    from cxpipeline.model.features import snapshot_features

    end = to_instant(data_end)
    panel = rows_before(sorted_by_period(panel_monthly), end)
    # Integer customer codes sorted like the ids (the same rows, features and subsets; only
    # aggregates leave this function): grouping strings ~7 times dominated its run time.
    panel = panel.assign(customer_id=pd.factorize(panel["customer_id"], sort=True)[0].astype("int64"))
    latest = end - pd.DateOffset(months=12)
    s = pd.Timestamp(year=latest.year, month=latest.month, day=1)
    first = panel["first_order_at"].min()
    if pd.isna(first):
        return {"available": False, "messages": ["No value backtest: no purchases."]}
    note = None
    if s > pd.Timestamp(first):
        days = int((s + pd.DateOffset(months=12) - s).days)
        actual_window = future_revenue(panel, s, 12)
    else:
        plan = backtest_plan(panel, end, 365)
        if plan is None:
            return {"available": False, "messages": ["No value backtest: the history is too short."]}
        s, days, _ = plan
        note = (f"Less than 12 months of outcomes after a snapshot with history: the value backtest compares "
                f"the next {days} days from {s:%Y-%m-%d} (the naive value is the last 12 months scaled to "
                f"{days} days; the regression needs 12 months and is not tested).")
        actual_window = rows_before(panel, end, start=s).groupby("customer_id", observed=True)["revenue"].sum()
    features = snapshot_features(panel, s)
    actual = actual_window.reindex(features.index, fill_value=0.0).to_numpy("float64")
    latent = fit_latent(features)
    predictions = {}
    if days >= 365:
        value_model = fit_value_model(panel, s, latent.p_alive if latent.bgnbd is not None
                                      else (lambda f: np.ones(len(f))), max_rows=max_training_rows)
        if value_model.method == "regression" and latent.bgnbd is not None:
            predictions["regression"] = value_model.predict(features, latent.p_alive(features))
    bgnbd_value = latent.value(features, days)
    if bgnbd_value is not None:
        predictions["bgnbd"] = bgnbd_value
    naive = features["revenue_12m"].to_numpy("float64") * (1.0 if days >= 365 else days / 365.0)
    return _value_summary(s, days, predictions, naive, actual, note)


def run_backtest(
    transactions: pd.DataFrame,
    cutoff: date | datetime | pd.Timestamp | str,
    horizon_days: int,
    *,
    customers: pd.DataFrame | None = None,
    segment_columns: Sequence[str] = (),
    random_state: int = 0,
    max_snapshots: int = 24,
    max_training_rows: int = 300_000,
) -> tuple[dict, pd.DataFrame]:
    """Fit on transactions before ``cutoff``, score, and check against the next ``horizon_days``.

    Parameters
    ----------
    transactions
        Canonical transactions (schema.TRANSACTION_COLUMNS); only ``customer_id``, ``ordered_at``,
        ``revenue``, ``order_id`` and ``is_return`` matter.
    cutoff
        First day NOT used for fitting; the outcome window starts on it.

    Returns
    -------
    (summary, scores)
        ``summary``: n, lapse rate, ROC-AUC, Brier and calibration by decile for every method
        (logistic when labelled windows fit before the cutoff, BG/NBD, the recency rule), the
        constant base rate, which method the pack would use at the cutoff and why (chosen by a
        backtest on data before the cutoff only), the value backtest (``value``) over the next
        12 months or as much as the data cover, and the fit report. ``scores``: one row per
        customer with a purchase before the cutoff, ranked by value at risk, plus every
        method's probability (``p_logistic``, ``p_bgnbd``, ``p_recency_rule``), value, and the
        actual outcome ``is_lapsed`` and ``actual_value``.

    Raises
    ------
    InputError
        If the data do not cover the whole outcome window or hold nothing before the cutoff.
    """
    from cxpipeline.panel import build_panel

    t = to_instant(cutoff).normalize()
    window_end = t + pd.Timedelta(days=horizon_days)
    ordered_at = pd.to_datetime(transactions["ordered_at"])
    if not (ordered_at < t).any():
        raise InputError(f"No transactions before the cutoff {t:%Y-%m-%d}.", where="backtest",
                         fix="Choose a cutoff after the first transaction "
                             f"({ordered_at.min():%Y-%m-%d}).")
    last_day = ordered_at.max().normalize()
    if last_day < window_end - pd.Timedelta(days=1):
        latest_ok = last_day - pd.Timedelta(days=horizon_days - 1)
        longest = int((last_day - t).days) + 1
        raise InputError(
            f"The outcome window {t:%Y-%m-%d} + {horizon_days} days is not fully observed: "
            f"the data end on {last_day:%Y-%m-%d}.",
            where="backtest",
            fix=f"Choose a cutoff on or before {latest_ok:%Y-%m-%d}, or --horizon-days {longest} or less "
                f"(the longest window observed after this cutoff).")
    before = transactions.loc[ordered_at < t]
    customers = _with_transaction_segments(customers, before, segment_columns)
    panel = build_panel(before, "month", end=t)
    options = {"horizon_days": horizon_days, "random_state": random_state, "segment_columns": segment_columns,
               "max_snapshots": max_snapshots, "max_training_rows": max_training_rows}
    scores, report, model = fit_and_score(panel, customers, t, **options)
    choice, choice_reason = model.chosen_method, "the only model that could be fitted at the cutoff"
    if "logistic" in report["methods_available"] and "bgnbd" in report["methods_available"]:
        # What the pack would do: a backtest on data before the cutoff decides between them.
        inner = backtest_snapshot(panel, customers, t, **options)
        if inner.get("available") and inner["horizon_days"] == horizon_days and inner["preferred"]:
            choice = inner["preferred"]
            choice_reason = f"in its own backtest at {inner['snapshot']} (data before the cutoff only), " \
                            + inner["preferred_reason"][0].lower() + inner["preferred_reason"][1:].rstrip(".")
        else:
            choice_reason = "no backtest fitted before the cutoff, so the default (logistic) is kept"
    window = transactions.loc[(ordered_at >= t) & (ordered_at < window_end)]
    window_panel = build_panel(window, "month", end=window_end)
    bought = pd.Index(window_panel.loc[window_panel["count_orders"] > 0, "customer_id"].unique())
    y = (~scores["customer_id"].isin(bought)).to_numpy().astype("int64")
    recency = scores["recency_days"].to_numpy()
    candidates = {c[2:]: model.candidates[c].to_numpy() for c in model.candidates.columns if c.startswith("p_")}
    summary = _summary(t, horizon_days, candidates, choice, recency, y, report)
    summary["cutoff"] = f"{t:%Y-%m-%d}"
    summary["pack_method"] = choice
    summary["pack_method_reason"] = f"The pack would use the {METHOD_LABELS[choice]}: {choice_reason}."
    summary["value"] = _cutoff_value_backtest(transactions, ordered_at, t, last_day, panel, model, scores)
    summary["report"] = report
    out = scores.copy()
    out["p_at_risk"] = candidates[choice]
    for column in model.candidates.columns[1:]:
        out[column] = model.candidates[column].to_numpy()
    out["is_lapsed"] = y
    out["actual_value"] = summary["value"].pop("actual", None) if summary["value"].get("available") else np.nan
    return summary, out


def _cutoff_value_backtest(transactions: pd.DataFrame, ordered_at: pd.Series, t: pd.Timestamp,
                           last_day: pd.Timestamp, panel: pd.DataFrame, model, scores: pd.DataFrame) -> dict:
    """The value models fitted at the cutoff against net revenue in the next 12 months (or as many
    days as the data cover after the cutoff)."""
    from cxpipeline.model.features import snapshot_features

    full_end = t + pd.DateOffset(months=12)
    days = int((full_end - t).days) if last_day >= full_end - pd.Timedelta(days=1) else int((last_day - t).days) + 1
    window = transactions.loc[(ordered_at >= t) & (ordered_at < t + pd.Timedelta(days=days))]
    actual = (window.groupby(window["customer_id"].astype("string"), observed=True)["revenue"].sum()
              .reindex(pd.Index(scores["customer_id"].astype("string")), fill_value=0.0).to_numpy("float64"))
    features = snapshot_features(panel, t)
    features.index = pd.Index(features.index.astype("string"))
    features = features.reindex(pd.Index(scores["customer_id"].astype("string")))
    predictions = {}
    full = days >= 365
    if full and "value_regression" in model.candidates:
        predictions["regression"] = model.candidates["value_regression"].to_numpy()
    bgnbd_value = model.latent.value(features, days) if model.latent is not None else None
    if bgnbd_value is not None:
        predictions["bgnbd"] = bgnbd_value
    naive = features["revenue_12m"].to_numpy("float64") * (1.0 if full else days / 365.0)
    note = None if full else (f"Only {days} days observed after the cutoff: values compared over {days} days "
                              f"(naive: last 12 months scaled; the regression predicts 12 months and is not tested).")
    out = _value_summary(t, days, predictions, naive, actual, note)
    out["actual"] = actual
    return out


def _with_transaction_segments(
    customers: pd.DataFrame | None, before: pd.DataFrame, segment_columns: Sequence[str]
) -> pd.DataFrame | None:
    """Add segments carried on transactions (e.g. ``country``): each customer's latest value
    before the cutoff. Columns already in the customer table win."""
    have = set(customers.columns) if customers is not None else set()
    extra = [c for c in segment_columns if c in before.columns and c not in have]
    if not extra:
        return customers
    latest = (before.sort_values("ordered_at", kind="stable")
              .groupby("customer_id", observed=True)[extra].last().reset_index())
    latest["customer_id"] = latest["customer_id"].astype("string")
    if customers is None:
        return latest
    return customers.merge(latest, on="customer_id", how="outer")


def review_previous_list(
    previous_scores: pd.DataFrame,
    panel_monthly: pd.DataFrame,
    previous_period_end: date | datetime | pd.Timestamp,
    period_end: date | datetime | pd.Timestamp,
    *,
    top_n: int = 50,
) -> dict:
    """Last period's at-risk list against what happened since: who bought again.

    ``previous_scores`` is last period's ``scores`` (ranked by value at risk). Purchases are
    counted from the day after ``previous_period_end`` through ``period_end``; when that is
    shorter than the model horizon the outcome is still partial (``days_observed`` says so).
    Exact when ``previous_period_end`` is a month end.
    """
    start = to_instant(previous_period_end).normalize() + pd.Timedelta(days=1)
    end = to_instant(period_end).normalize() + pd.Timedelta(days=1)
    window = rows_before(panel_monthly, end, start=start)
    bought = pa.array(window.loc[window["count_orders"] > 0, "customer_id"].astype("string"))

    def has_bought(ids: pd.Series) -> np.ndarray:  # Arrow's hash lookup: pandas' isin on strings is ~20x slower
        return pc.is_in(pa.array(ids.astype("string")), value_set=bought).to_numpy(zero_copy_only=False)

    ranked = previous_scores.sort_values("at_risk_rank") if "at_risk_rank" in previous_scores else previous_scores
    top = ranked.head(top_n)
    top_bought = has_bought(top["customer_id"])
    all_bought = has_bought(previous_scores["customer_id"])
    return {
        "from": f"{start:%Y-%m-%d}",
        "to": f"{end - pd.Timedelta(days=1):%Y-%m-%d}",
        "days_observed": int((end - start).days),
        "top_n": int(len(top)),
        "top_count_bought_again": int(top_bought.sum()),
        "top_count_no_purchase": int((~top_bought).sum()),
        "top_mean_p_at_risk": round(float(top["p_at_risk"].mean()), 4) if len(top) else None,
        "top_value_at_risk": round(float(top["value_at_risk"].sum()), 2),
        "all_customers": int(len(previous_scores)),
        "all_share_no_purchase": round(float(1 - all_bought.mean()), 4) if len(all_bought) else None,
        "all_mean_p_at_risk": round(float(previous_scores["p_at_risk"].mean()), 4) if len(previous_scores) else None,
    }


def format_summary(summary: dict) -> str:
    """The backtest as plain text (what the CLI prints)."""
    lines = [
        f"Backtest at cutoff {summary.get('cutoff', summary.get('snapshot'))}, horizon {summary['horizon_days']} days "
        f"(outcome window {summary['outcome_window']})",
        f"training rows (logistic): {summary['training_rows']}; "
        f"training snapshots {summary['training_window']['first_snapshot']} .. "
        f"{summary['training_window']['last_snapshot']}",
        f"customers scored (n): {summary['n']}",
        f"lapse rate: {summary['lapse_rate']:.1%}" if summary["lapse_rate"] is not None else "lapse rate: n/a",
        "",
        f"{'':30}{'ROC-AUC':>9}{'Brier':>9}",
    ]
    models = summary.get("models", {})
    for name in METHODS:
        if name not in models:
            if name == "logistic":
                lines.append(f"{'logistic model':30}{'n/a':>9}{'n/a':>9}  (no labelled windows fit before the cutoff)")
            continue
        m = models[name]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        brier = "n/a" if m["brier"] is None else f"{m['brier']:.4f}"
        mark = "  <- the pack's model" if name == summary["method"] else ""
        lines.append(f"{METHOD_LABELS[name]:30}{auc:>9}{brier:>9}{mark}")
    base = summary.get("base_rate", {})
    if base.get("brier") is not None:
        lines.append(f"{'constant: observed lapse rate':30}{'0.5000':>9}{base['brier']:>9.4f}")
    reason = summary.get("pack_method_reason") or summary.get("preferred_reason")
    if reason:
        lines += ["", reason]
    for name in METHODS:
        if name not in models or name == "recency_rule":
            continue
        if name != summary["method"] and name != "bgnbd":
            continue
        lines += ["", f"calibration by decile of predicted P(at risk), {METHOD_LABELS[name]}:",
                  f"{'decile':>6}{'n':>9}{'predicted':>11}{'observed':>10}{'diff':>8}"]
        for row in models[name]["calibration"]:
            flag = {True: "", False: "  > 5 points", None: "  (n < 200, not checked)"}[row["within_5_points"]]
            lines.append(f"{row['decile']:>6}{row['n']:>9}{row['mean_predicted']:>11.3f}{row['observed']:>10.3f}"
                         f"{row['difference']:>+8.3f}{flag}")
    value = summary.get("value")
    if value and value.get("available"):
        lines += ["", f"value backtest: predicted vs actual net revenue, {value['outcome_window']} "
                      f"({value['horizon_days']} days), n {value['n']}",
                  f"{'':34}{'MAE':>10}{'predicted':>14}{'actual':>14}{'top decile':>12}"]
        rows = [(name, m) for name, m in value["models"].items()] + [("naive", value["naive"])]
        for name, m in rows:
            top = "n/a" if m["top_decile_share"] is None else f"{m['top_decile_share']:.1%}"
            lines.append(f"{m['label']:34}{m['mae']:>10.2f}{m['total_predicted']:>14,.0f}{m['total_actual']:>14,.0f}"
                         f"{top:>12}")
        if value.get("preferred_reason"):
            lines.append(value["preferred_reason"])
        lines.append("top decile: share of the actual value bought by the 10 % with the highest prediction")
        for message in value.get("messages", []):
            lines.append(f"note: {message}")
    for message in summary.get("messages", []):
        lines.append(f"note: {message}")
    return "\n".join(lines)
