"""Fit at an instant and score every customer: P(at risk), value, value at risk, drivers.

:func:`fit_and_score` is the one procedure behind both the pack (:func:`score_period`) and the
backtest command: refit per run (nothing is pickled), using only panel rows before the instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from cxpipeline.model.bgnbd import fit_latent
from cxpipeline.versions import library_versions
from cxpipeline.model.clv import ValueModel, do_not_lose, fit_value_model
from cxpipeline.model.features import (
    BGNBD_FEATURE,
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

__all__ = ["SCORE_COLUMNS", "METHODS", "METHOD_LABELS", "VALUE_METHODS", "VALUE_METHOD_LABELS",
           "ModelResult", "default_method", "fit_and_score", "rescore"]

#: At-risk methods, in the order of the default choice when no backtest has been run.
METHODS = ("logistic", "bgnbd", "recency_rule")
METHOD_LABELS = {"logistic": "calibrated logistic model", "bgnbd": "BG/NBD purchase model",
                 "recency_rule": "recency rule"}
#: Value methods, in the order of the default choice.
VALUE_METHODS = ("regression", "bgnbd", "fallback")
VALUE_METHOD_LABELS = {"regression": "regression on recent revenue", "bgnbd": "BG/NBD x Gamma-Gamma",
                       "fallback": "(1 - P(at risk)) x last 12 months", "naive": "same as last 12 months"}

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


def default_method(available: Sequence[str]) -> str:
    """The at-risk method used without backtest evidence: the first of :data:`METHODS` available."""
    return next(m for m in METHODS if m in available)


def _drivers(model: AtRiskModel, features: pd.DataFrame, customers: pd.DataFrame | None,
             method: str | None = None) -> pd.DataFrame:
    """The three largest positive contributions (towards at risk) per customer, as text.

    For BG/NBD, its inputs instead: days since last purchase, then (repeat buyers) time since
    last order vs usual gap, or "bought only once", then orders to date.
    """
    method = method or model.method
    n = len(features)
    texts = {k: np.full(n, "", dtype=object) for k in (1, 2, 3)}
    if n and method == "bgnbd":
        everyone = np.arange(n)
        texts[1][:] = driver_texts("log_recency", features, everyone)
        repeat = np.flatnonzero(features["orders_total"].to_numpy() > 1)
        once = np.flatnonzero(features["orders_total"].to_numpy() <= 1)
        texts[2][repeat] = driver_texts("log_gap_ratio", features, repeat)
        texts[2][once] = FEATURE_LABELS["is_single_order"]
        texts[3][:] = driver_texts("log_orders_total", features, everyone)
    elif n and method != "logistic":
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


def rescore(scores: pd.DataFrame, candidates: pd.DataFrame, method: str, value_method: str) -> pd.DataFrame:
    """Scores (without drivers) from :func:`fit_and_score` switched to another method and value
    model: the same as refitting with ``method=`` / ``value_method=`` (every method is fitted on
    every run), without refitting. Unavailable methods are left as they are."""
    p_col, v_col = f"p_{method}", f"value_{value_method}"
    if p_col not in candidates or v_col not in candidates:
        return scores
    out = scores.copy()
    out["p_at_risk"] = candidates[p_col].to_numpy()
    out["predicted_value_12m"] = candidates[v_col].to_numpy()
    out["value_at_risk"] = np.round(out["p_at_risk"] * out["predicted_value_12m"], 2)
    out["is_do_not_lose"] = do_not_lose(out, out["predicted_value_12m"].to_numpy())
    out = out.sort_values(["value_at_risk", "p_at_risk", "customer_id"], ascending=[False, False, True],
                          kind="stable", ignore_index=True)
    out["at_risk_rank"] = np.arange(1, len(out) + 1, dtype="int64")
    return out


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
    method: str | None = None,
    value_method: str | None = None,
    score_features: tuple[pd.DataFrame, int] | None = None,
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
    method
        The at-risk method behind ``p_at_risk``: ``"logistic"``, ``"bgnbd"`` or
        ``"recency_rule"`` (e.g. the one the backtest preferred). ``None`` or a method that
        cannot be fitted here: :func:`default_method` (logistic, else BG/NBD, else the rule).
    value_method
        ``"regression"``, ``"bgnbd"`` or ``None`` (the first available of :data:`VALUE_METHODS`).
    score_features
        When ``panel_monthly`` is a sample of the customers (``panel_monthly_model``, see
        :func:`cxpipeline.panel.write_model_sample`): every customer's features at ``fit_instant``
        and their count (:func:`cxpipeline.model.features.features_in_chunks` on the whole panel).
        The models are fitted on the sample and score these; ``None``: fit and score the panel.

    Returns
    -------
    (scores, report, model)
        ``scores`` ranked by value at risk (columns :data:`SCORE_COLUMNS`); ``report`` JSON-able;
        ``model.candidates`` holds every method's P(at risk) and value in the order of ``scores``.
    """
    t = to_instant(fit_instant)
    panel = rows_before(sorted_by_period(panel_monthly), t)
    # Work on integer customer codes (sorted like the ids): grouping, isin and reindexing on
    # strings dominated the run time at 500k customers. Ids are restored at the end.
    codes, ids = pd.factorize(panel["customer_id"], sort=True)
    ids = pd.Index(ids, dtype="string")
    if score_features is not None:  # codes over every scored customer and the sample's
        ids = ids.union(pd.Index(score_features[0].index, dtype="string")).sort_values()
        codes = ids.get_indexer(panel["customer_id"].astype("string"))
    panel = panel.assign(customer_id=codes.astype("int64"))
    if customers is not None:
        positions = ids.get_indexer(customers["customer_id"].astype("string"))
        customers = customers.loc[positions >= 0].assign(customer_id=positions[positions >= 0])
    levels = segment_levels(customers, segment_columns)  # from customers seen before t only
    features = snapshot_features(panel, t)
    latent = fit_latent(features)  # label-free: fitted on the customers' histories at t only
    stacked = latent.bgnbd is not None
    if stacked:  # the logistic model gets BG/NBD's probability as one more input (stacking)
        features[BGNBD_FEATURE] = latent.p_no_purchase(features, horizon_days)
    snapshots = training_snapshots(panel, t, horizon_days, max_snapshots)
    rows, sample_info = training_rows(panel, snapshots, horizon_days, max_training_rows=max_training_rows,
                                      random_state=random_state, id_labels=ids, with_bgnbd=stacked)
    model = fit_at_risk(rows, customers, levels, horizon_days, random_state=random_state)
    count_customers = len(ids)
    if score_features is not None:  # fitted on the sample: every customer is scored from here on
        positions = ids.get_indexer(pd.Index(score_features[0].index, dtype="string"))
        features = score_features[0].set_axis(pd.Index(positions.astype("int64"), name="customer_id"))
        if stacked:
            features[BGNBD_FEATURE] = latent.p_no_purchase(features, horizon_days)
        count_customers = score_features[1]

    candidates = {"recency_rule": model.recency_rule.predict(features["recency_days"])}
    if model.method == "logistic":
        candidates["logistic"] = model.predict(features, customers)
    p_bgnbd = latent.p_no_purchase(features, horizon_days)
    if p_bgnbd is not None:
        candidates["bgnbd"] = p_bgnbd
    choice_messages = []
    chosen = method if method in candidates else default_method(candidates)
    if method is not None and method != chosen:
        choice_messages.append(f"The {METHOD_LABELS.get(method, method)} was asked for but could not be fitted "
                               f"at {t:%Y-%m-%d}; scores use the {METHOD_LABELS[chosen]}.")
    p = candidates[chosen]

    def stay(f: pd.DataFrame) -> np.ndarray:
        """Probability of staying for the regression value model: BG/NBD P(alive), else 1 - P."""
        alive = latent.p_alive(f)
        if alive is not None:
            return alive
        return 1.0 - (model.predict(f, customers) if chosen == "logistic"
                      else model.recency_rule.predict(f["recency_days"]))

    value_model = fit_value_model(panel, t, stay, max_rows=max_training_rows)
    values = {}
    if value_model.method == "regression":
        values["regression"] = value_model.predict(features, stay(features))
    bgnbd_value = latent.value(features, 365)
    if bgnbd_value is not None:
        values["bgnbd"] = bgnbd_value
    if not values:
        values["fallback"] = ValueModel("fallback").predict(features, 1.0 - p)
    chosen_value = value_method if value_method in values else next(m for m in VALUE_METHODS if m in values)
    if value_method is not None and value_method != chosen_value:
        choice_messages.append(f"The {VALUE_METHOD_LABELS.get(value_method, value_method)} value model was asked "
                               f"for but could not be fitted; predicted value uses "
                               f"{VALUE_METHOD_LABELS[chosen_value]}.")
    if chosen_value == "fallback":
        choice_messages.append("Predicted 12-month value is (1 - P(at risk)) x the last 12 months' revenue: "
                               "neither the regression nor the BG/NBD x Gamma-Gamma value model could be fitted.")
    predicted = values[chosen_value]
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
    extra = pd.DataFrame({**{f"p_{name}": values_ for name, values_ in candidates.items()},
                          **{f"value_{name}": v for name, v in values.items()}})
    if with_drivers:
        scores = pd.concat([scores, _drivers(model, features, customers, chosen)], axis=1)
    else:
        for k in (1, 2, 3):
            scores[f"driver_{k}"] = pd.Series([""] * len(scores), dtype="string")
    # Ranked by value at risk, then P(at risk), both descending (NaN last), then customer_id: the
    # rows are in customer_id order here (features are indexed by codes sorted like the ids), so
    # a stable lexsort of the two numbers breaks ties by id without sorting 500k strings.
    order = np.lexsort((-scores["p_at_risk"].to_numpy("float64"), -scores["value_at_risk"].to_numpy("float64")))
    scores = scores.take(order).reset_index(drop=True)
    scores["at_risk_rank"] = np.arange(1, len(scores) + 1, dtype="int64")
    scores = scores[SCORE_COLUMNS]
    model.latent = latent
    model.candidates = pd.concat([scores[["customer_id"]], extra.take(order).reset_index(drop=True)], axis=1)
    model.chosen_method = chosen

    returns_only = int(count_customers - len(features))
    if len(rows):
        rows["customer_id"] = pd.array(ids[rows["customer_id"].to_numpy()], dtype="string")
    model.training_rows = rows
    messages = list(model.messages) if chosen != "bgnbd" else []
    if chosen == "bgnbd" and model.method != "logistic":
        messages.append(f"Too few labelled {horizon_days}-day outcome windows before {t:%Y-%m-%d} for the logistic "
                        f"model ({len(rows)} labelled rows, need {MIN_TRAINING_ROWS} with both outcomes): "
                        f"P(at risk) comes from the BG/NBD purchase model, which needs no labelled window.")
    messages += list(latent.messages) + choice_messages
    if chosen_value == "regression" or "regression" not in values:
        messages += list(value_model.messages)
    if returns_only:
        messages.append(f"{returns_only} customer(s) with returns but no purchase before "
                        f"{t:%Y-%m-%d} are not scored (no last purchase to measure recency from).")
    coefficients = model.coefficients()
    report = {
        "fit_instant": f"{t:%Y-%m-%d}",
        "horizon_days": int(horizon_days),
        "method": chosen,
        "method_label": METHOD_LABELS[chosen],
        "methods_available": [m for m in METHODS if m in candidates],
        "logistic_fitted": model.method == "logistic",
        "target": f"no purchase in the {horizon_days} days starting at the snapshot",
        "training_window": {
            "first_snapshot": f"{snapshots[0]:%Y-%m-%d}" if snapshots else None,
            "last_snapshot": f"{snapshots[-1]:%Y-%m-%d}" if snapshots else None,
            "last_outcome_day": (f"{snapshots[-1] + pd.Timedelta(days=horizon_days - 1):%Y-%m-%d}"
                                 if snapshots else None),
        },
        "snapshots": [f"{s:%Y-%m-%d}" for s in snapshots],
        "training_rows": int(len(rows)),
        "stacked_on_bgnbd": bool(stacked and model.method == "logistic"),
        "snapshots_without_bgnbd": sample_info["snapshots_without_bgnbd"],
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
        "latent": latent.report(),
        "value_model": {"method": chosen_value, "label": VALUE_METHOD_LABELS[chosen_value],
                        "methods_available": [m for m in VALUE_METHODS if m in values],
                        "regression": {"coefficients": value_model.coefficients,
                                       "training_rows": value_model.training_rows,
                                       "snapshots": value_model.snapshots,
                                       "formula": "b1*revenue_last6 + b2*revenue_prior6 + b3*aov*p_stay, >= 0; "
                                                  "p_stay = " + ("BG/NBD P(alive)" if latent.bgnbd is not None
                                                                 else "1 - p_at_risk")}
                        if value_model.method == "regression" else None,
                        "formula": {"regression": "b1*revenue_last6 + b2*revenue_prior6 + b3*aov*p_stay, >= 0",
                                    "bgnbd": "BG/NBD expected purchases in 365 days x Gamma-Gamma expected "
                                             "spend per order",
                                    "fallback": "(1-p_at_risk)*revenue_12m"}[chosen_value]},
        "calibration": ("isotonic, out-of-fold by snapshot groups" if chosen == "logistic" else
                        "none needed: BG/NBD probabilities come from the fitted purchase process"
                        if chosen == "bgnbd" else None),
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
