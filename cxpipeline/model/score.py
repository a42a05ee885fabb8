"""Fit at an instant and score every customer: P(at risk), value, value at risk, drivers.

:func:`fit_and_score` is the one procedure behind both the pack (:func:`score_period`) and the
backtest command: refit per run (nothing is pickled), using only panel rows before the instant.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from cxpipeline.model.clv import do_not_lose, fit_value_model
from cxpipeline.model.features import (
    FEATURE_LABELS,
    driver_texts,
    rows_before,
    segment_levels,
    snapshot_features,
    sorted_by_period,
    to_instant,
)
from cxpipeline.model.train import (
    MIN_TRAINING_ROWS,
    AtRiskModel,
    fit_at_risk,
    training_rows,
    training_snapshots,
)

__all__ = ["SCORE_COLUMNS", "ModelResult", "fit_and_score", "score_period", "library_versions"]

SCORE_COLUMNS = [
    "customer_id", "at_risk_rank", "p_at_risk", "predicted_value_12m", "historical_value",
    "value_at_risk", "revenue_12m", "recency_days", "tenure_days", "orders_total",
    "driver_1", "driver_2", "driver_3", "is_do_not_lose",
]


@dataclass
class ModelResult:
    """Scores, the backtest on the latest fully observed snapshot and a JSON-able report."""

    scores: pd.DataFrame
    backtest: dict
    report: dict
    model: AtRiskModel | None = field(default=None, repr=False)
    #: Scores (without drivers) fitted along the way, by fit instant (the backtest's snapshot).
    fits: dict = field(default_factory=dict, repr=False)


def library_versions() -> dict[str, str]:
    import sklearn

    return {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__}


def _drivers(model: AtRiskModel, features: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
    """The three largest positive contributions (towards at risk) per customer, as text."""
    n = len(features)
    texts = {k: np.full(n, "", dtype=object) for k in (1, 2, 3)}
    if n and model.method != "logistic":
        texts[1][:] = driver_texts("log_recency", features, np.arange(n))
    elif n:
        contrib = model.contributions(features, customers).to_numpy(copy=True)
        # The season is the same for every customer at a snapshot: not a reason for one score.
        season = np.array([name.startswith("season:") for name in model.feature_columns])
        contrib[:, season] = -np.inf
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :3]
        for k in range(3):
            idx = order[:, k]
            positive = contrib[np.arange(n), idx] > 0
            for j in np.unique(idx[positive]):
                rows = np.flatnonzero(positive & (idx == j))
                texts[k + 1][rows] = driver_texts(model.feature_columns[j], features, rows)
    return pd.DataFrame({f"driver_{k}": pd.array(texts[k], dtype="string") for k in (1, 2, 3)})


def fit_and_score(
    panel_monthly: pd.DataFrame,
    customers: pd.DataFrame | None,
    fit_instant: date | datetime | pd.Timestamp,
    *,
    horizon_days: int = 90,
    random_state: int = 0,
    segment_columns: Sequence[str] = (),
    max_snapshots: int = 24,
    max_training_rows: int = 300_000,
    with_drivers: bool = True,
) -> tuple[pd.DataFrame, dict, AtRiskModel]:
    """Fit on snapshots whose outcome ends by ``fit_instant``; score everyone who bought before it.

    Parameters
    ----------
    panel_monthly
        Monthly panel (schema.PANEL_COLUMNS). Rows with ``period_start >= fit_instant`` are dropped
        first, so later data can change nothing.
    customers
        Optional customer table with the ``segment_columns`` (one-hot encoded features).
    fit_instant
        The instant scores describe: midnight after the last day of data used.

    Returns
    -------
    (scores, report, model)
        ``scores`` ranked by value at risk (columns :data:`SCORE_COLUMNS`); ``report`` JSON-able.
    """
    t = to_instant(fit_instant)
    panel = rows_before(sorted_by_period(panel_monthly), t)
    # Work on integer customer codes (sorted like the ids): grouping, isin and reindexing on
    # strings dominated the run time at 500k customers. Ids are restored at the end.
    codes, ids = pd.factorize(panel["customer_id"], sort=True)
    ids = pd.Index(ids, dtype="string")
    panel = panel.assign(customer_id=codes.astype("int64"))
    if customers is not None:
        positions = ids.get_indexer(customers["customer_id"].astype("string"))
        customers = customers.loc[positions >= 0].assign(customer_id=positions[positions >= 0])
    levels = segment_levels(customers, segment_columns)  # from customers seen before t only
    snapshots = training_snapshots(panel, t, horizon_days, max_snapshots)
    rows, sample_info = training_rows(panel, snapshots, horizon_days, max_training_rows=max_training_rows,
                                      random_state=random_state, id_labels=ids)
    model = fit_at_risk(rows, customers, levels, horizon_days, random_state=random_state)

    features = snapshot_features(panel, t)
    p = model.predict(features, customers)
    value_model = fit_value_model(panel, t, lambda f: model.predict(f, customers),
                                  max_rows=max_training_rows)
    predicted = value_model.predict(features, p)
    scores = pd.DataFrame({
        "customer_id": pd.Series(ids[features.index.to_numpy()], dtype="string").to_numpy(),
        "p_at_risk": p,
        "predicted_value_12m": predicted,
        "historical_value": features["historical_value"].to_numpy(),
        "value_at_risk": np.round(p * predicted, 2),
        "revenue_12m": features["revenue_12m"].to_numpy(),
        "recency_days": features["recency_days"].to_numpy(),
        "tenure_days": features["tenure_days"].to_numpy(),
        "orders_total": features["orders_total"].to_numpy().astype("int64"),
        "is_do_not_lose": do_not_lose(features, predicted),
    })
    if with_drivers:
        scores = pd.concat([scores, _drivers(model, features, customers)], axis=1)
    else:
        for k in (1, 2, 3):
            scores[f"driver_{k}"] = pd.Series([""] * len(scores), dtype="string")
    scores = scores.sort_values(["value_at_risk", "p_at_risk", "customer_id"],
                                ascending=[False, False, True], kind="stable", ignore_index=True)
    scores["at_risk_rank"] = np.arange(1, len(scores) + 1, dtype="int64")
    scores = scores[SCORE_COLUMNS]

    returns_only = int(len(ids) - len(features))
    if len(rows):
        rows["customer_id"] = pd.array(ids[rows["customer_id"].to_numpy()], dtype="string")
    model.training_rows = rows
    messages = list(model.messages) + list(value_model.messages)
    if returns_only:
        messages.append(f"{returns_only} customer(s) with returns but no purchase before "
                        f"{t:%Y-%m-%d} are not scored (no last purchase to measure recency from).")
    coefficients = model.coefficients()
    report = {
        "fit_instant": f"{t:%Y-%m-%d}",
        "horizon_days": int(horizon_days),
        "method": model.method,
        "target": f"no purchase in the {horizon_days} days starting at the snapshot",
        "training_window": {
            "first_snapshot": f"{snapshots[0]:%Y-%m-%d}" if snapshots else None,
            "last_snapshot": f"{snapshots[-1]:%Y-%m-%d}" if snapshots else None,
            "last_outcome_day": (f"{snapshots[-1] + pd.Timedelta(days=horizon_days - 1):%Y-%m-%d}"
                                 if snapshots else None),
        },
        "snapshots": [f"{s:%Y-%m-%d}" for s in snapshots],
        "training_rows": int(len(rows)),
        "training_rows_before_sampling": int(sample_info["rows_before_sampling"]),
        "customer_sample_fraction": sample_info["customer_sample_fraction"],
        "training_lapse_rate": round(float(rows["is_lapsed"].mean()), 4) if len(rows) else None,
        "min_training_rows": MIN_TRAINING_ROWS,
        "features": model.feature_columns or ["log_recency"],
        "feature_labels": FEATURE_LABELS,
        "gap_estimate": "mean gap between purchases from the monthly panel (first/last purchase, "
                        "order count); not the median, which needs every order date",
        "coefficients": {k: round(float(v), 6) for k, v in coefficients.items()},
        "recency_rule": model.recency_rule.description,
        "value_model": {"method": value_model.method, "coefficients": value_model.coefficients,
                        "training_rows": value_model.training_rows, "snapshots": value_model.snapshots,
                        "formula": "b1*revenue_last6 + b2*revenue_prior6 + b3*aov*(1-p_at_risk), >= 0"
                        if value_model.method == "regression" else "(1-p_at_risk)*revenue_12m"},
        "calibration": "isotonic, out-of-fold by snapshot groups" if model.method == "logistic" else None,
        "random_state": int(random_state),
        "versions": library_versions(),
        "scores_summary": {
            "customers_scored": int(len(scores)),
            "customers_not_scored_returns_only": returns_only,
            "mean_p_at_risk": round(float(scores["p_at_risk"].mean()), 4) if len(scores) else None,
            "total_predicted_value_12m": round(float(scores["predicted_value_12m"].sum()), 2),
            "total_value_at_risk": round(float(scores["value_at_risk"].sum()), 2),
            "count_do_not_lose": int(scores["is_do_not_lose"].sum()),
        },
        "messages": messages,
    }
    return scores, report, model


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
) -> ModelResult:
    """Scores at the end of a reporting period, with the backtest on the latest observed snapshot.

    Parameters
    ----------
    panel_monthly
        Monthly panel (rows after ``period_end`` are ignored).
    period_end
        Last day of the period (inclusive). Features use data up to and including it.

    Returns
    -------
    ModelResult
        ``.scores`` ranked by value at risk, ``.backtest`` (see
        :func:`cxpipeline.model.backtest.backtest_snapshot`), ``.report`` (JSON-able).
    """
    from cxpipeline.model.backtest import backtest_snapshot

    t = to_instant(period_end).normalize() + pd.Timedelta(days=1)
    panel_monthly = sorted_by_period(panel_monthly)  # sorted once: every snapshot is then a slice
    scores, report, model = fit_and_score(
        panel_monthly, customers, t, horizon_days=horizon_days, random_state=random_state,
        segment_columns=segment_columns, max_snapshots=max_snapshots,
        max_training_rows=max_training_rows)
    fits: dict = {}
    backtest = backtest_snapshot(
        rows_before(panel_monthly, t), customers, t, horizon_days=horizon_days,
        random_state=random_state, segment_columns=segment_columns, max_snapshots=max_snapshots,
        max_training_rows=max_training_rows, fitted=fits)
    report["period_end"] = f"{to_instant(period_end):%Y-%m-%d}"
    report["backtest"] = backtest
    report["messages"] = report["messages"] + backtest.get("messages", [])
    return ModelResult(scores=scores, backtest=backtest, report=report, model=model, fits=fits)
