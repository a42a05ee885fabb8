"""Honest backtests: fit before a cutoff, score, then compare with what customers actually did.

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
from cxpipeline.model.score import fit_and_score

__all__ = [
    "CALIBRATION_MIN_DECILE",
    "evaluate",
    "calibration_table",
    "backtest_snapshot",
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


def _summary(snapshot: pd.Timestamp, horizon_days: int, p: np.ndarray, p_rule: np.ndarray,
             recency: np.ndarray, y: np.ndarray, report: dict) -> dict:
    calibration = calibration_table(p, y)
    checked = [row["within_5_points"] for row in calibration if row["within_5_points"] is not None]
    model_metrics = evaluate(p, y)
    rule_metrics = evaluate(p_rule, y, ranking=recency)
    beats = (None if model_metrics["roc_auc"] is None else
             bool(model_metrics["roc_auc"] > rule_metrics["roc_auc"] and model_metrics["brier"] < rule_metrics["brier"]))
    return {
        "available": True,
        "snapshot": f"{snapshot:%Y-%m-%d}",
        "horizon_days": int(horizon_days),
        "outcome_window": f"{snapshot:%Y-%m-%d} to {snapshot + pd.Timedelta(days=horizon_days - 1):%Y-%m-%d}",
        "method": report["method"],
        "n": int(len(y)),
        "lapse_rate": round(float(y.mean()), 4) if len(y) else None,
        "model": model_metrics,
        "recency_rule": rule_metrics,
        "model_beats_rule": beats,
        "calibration": calibration,
        "calibration_deciles_checked": len(checked),
        "calibration_within_5_points": all(checked) if checked else None,
        "training_window": report["training_window"],
        "training_rows": report["training_rows"],
        "messages": list(report["messages"]),
    }


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
) -> dict:
    """Backtest on the latest month start ``s`` whose outcome window ends by ``data_end``.

    Fits exactly as the live model would have at ``s`` (only windows ending by ``s``), scores the
    customers who bought before ``s`` and labels them from the panel. ``fitted``: a dict that
    receives ``{s: scores}`` (without drivers), for a caller that needs the scores at ``s`` too.
    """
    end = to_instant(data_end)
    latest = end - pd.Timedelta(days=horizon_days)
    s = pd.Timestamp(year=latest.year, month=latest.month, day=1)
    panel = rows_before(sorted_by_period(panel_monthly), end)
    first = panel["first_order_at"].min()
    if pd.isna(first) or s <= first:
        return {"available": False, "horizon_days": int(horizon_days),
                "messages": [f"No backtest: the data do not cover a full {horizon_days}-day outcome "
                             f"window after any month start with earlier purchases."]}
    scores, report, model = fit_and_score(
        panel, customers, s, horizon_days=horizon_days, random_state=random_state,
        segment_columns=segment_columns, max_snapshots=max_snapshots,
        max_training_rows=max_training_rows, with_drivers=False)
    if fitted is not None:
        fitted[s] = scores
    y = lapse_labels(panel, s, horizon_days, pd.Index(scores["customer_id"]))
    recency = scores["recency_days"].to_numpy()
    p_rule = model.recency_rule.predict(recency)
    return _summary(s, horizon_days, scores["p_at_risk"].to_numpy(), p_rule, recency, y, report)


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
        ``summary``: n, lapse rate, ROC-AUC and Brier for the model and the recency rule,
        calibration by decile, the fit report. ``scores``: one row per customer with a purchase
        before the cutoff, ranked by value at risk, plus ``p_recency_rule`` and the actual
        outcome ``is_lapsed``.

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
        raise InputError(
            f"The outcome window {t:%Y-%m-%d} + {horizon_days} days is not fully observed: "
            f"the data end on {last_day:%Y-%m-%d}.",
            where="backtest",
            fix=f"Choose a cutoff on or before {latest_ok:%Y-%m-%d}, or a shorter --horizon-days.")
    before = transactions.loc[ordered_at < t]
    customers = _with_transaction_segments(customers, before, segment_columns)
    panel = build_panel(before, "month", end=t)
    scores, report, model = fit_and_score(
        panel, customers, t, horizon_days=horizon_days, random_state=random_state,
        segment_columns=segment_columns, max_snapshots=max_snapshots,
        max_training_rows=max_training_rows)
    window = transactions.loc[(ordered_at >= t) & (ordered_at < window_end)]
    window_panel = build_panel(window, "month", end=window_end)
    bought = pd.Index(window_panel.loc[window_panel["count_orders"] > 0, "customer_id"].unique())
    y = (~scores["customer_id"].isin(bought)).to_numpy().astype("int64")
    recency = scores["recency_days"].to_numpy()
    p_rule = model.recency_rule.predict(recency)
    summary = _summary(t, horizon_days, scores["p_at_risk"].to_numpy(), p_rule, recency, y, report)
    summary["cutoff"] = f"{t:%Y-%m-%d}"
    summary["report"] = report
    out = scores.copy()
    out["p_recency_rule"] = p_rule
    out["is_lapsed"] = y
    return summary, out


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
        f"method: {summary['method']}; training rows: {summary['training_rows']}; "
        f"training snapshots {summary['training_window']['first_snapshot']} .. "
        f"{summary['training_window']['last_snapshot']}",
        f"customers scored (n): {summary['n']}",
        f"lapse rate: {summary['lapse_rate']:.1%}" if summary["lapse_rate"] is not None else "lapse rate: n/a",
        "",
        f"{'':14}{'ROC-AUC':>9}{'Brier':>9}",
    ]
    for name, key in (("model", "model"), ("recency rule", "recency_rule")):
        m = summary[key]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        brier = "n/a" if m["brier"] is None else f"{m['brier']:.4f}"
        lines.append(f"{name:14}{auc:>9}{brier:>9}")
    lines += ["", "calibration by decile of predicted P(at risk):",
              f"{'decile':>6}{'n':>9}{'predicted':>11}{'observed':>10}{'diff':>8}"]
    for row in summary["calibration"]:
        flag = {True: "", False: "  > 5 points", None: "  (n < 200, not checked)"}[row["within_5_points"]]
        lines.append(f"{row['decile']:>6}{row['n']:>9}{row['mean_predicted']:>11.3f}{row['observed']:>10.3f}"
                     f"{row['difference']:>+8.3f}{flag}")
    for message in summary.get("messages", []):
        lines.append(f"note: {message}")
    return "\n".join(lines)
