"""Training rows stacked over earlier snapshots, and the at-risk classifier.

Training snapshots are month starts ``s`` whose whole outcome window ``[s, s + H days)`` ends on
or before the instant ``T`` the model is fitted for (no look-ahead): the latest ones first, up to
``max_snapshots`` (default 24, i.e. two years of monthly snapshots). Each snapshot contributes one
row per customer with a purchase before ``s``; the label is 1 when the customer made no purchase in
the window. Large bases are subsampled by customer (fixed seed) to at most ``max_training_rows``.

The classifier is ``StandardScaler + LogisticRegression`` inside ``CalibratedClassifierCV``
(isotonic, out-of-fold predictions from folds that hold out whole snapshots, so the calibration is
learned on snapshots the scorer never saw). One logistic model explains the score: the driver of a
customer's score is ``coefficient x standardized feature value``.

With too little history (fewer than ``MIN_TRAINING_ROWS`` labelled rows or a single class) no model
is fitted: the score is a recency rule (isotonic on days since last purchase when both classes
exist, else ``recency / (recency + H)``), and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from cxpipeline.model.features import (
    BGNBD_FEATURE,
    NO_PURCHASE,
    instant_us,
    first_purchases,
    lapse_labels,
    model_matrix,
    segment_dummies,
    snapshot_features,
    to_instant,
)

__all__ = [
    "MIN_TRAINING_ROWS",
    "training_snapshots",
    "training_rows",
    "RecencyRule",
    "AtRiskModel",
    "fit_recency_rule",
    "fit_at_risk",
]

MIN_TRAINING_ROWS = 200


def single_thread_blas():
    """BLAS on one thread: the matrices are tall and thin (rows x ~40 features), where threads
    gain little and, on a busy machine, oversubscribed BLAS threads were measured 10x slower."""
    return threadpool_limits(limits=1, user_api="blas")


def training_snapshots(
    panel: pd.DataFrame, fit_instant: pd.Timestamp, horizon_days: int, max_snapshots: int = 24
) -> list[pd.Timestamp]:
    """Month starts whose outcome window ends by ``fit_instant``, newest last, after the first purchase."""
    t = to_instant(fit_instant)
    latest = t - pd.Timedelta(days=horizon_days)
    latest = pd.Timestamp(year=latest.year, month=latest.month, day=1)  # window ends <= t
    purchases = panel["first_order_at"].dropna()
    if purchases.empty:
        return []
    first = pd.Timestamp(purchases.min())
    snapshots = []
    s = latest
    while len(snapshots) < max_snapshots and s > first:
        snapshots.append(s)
        s = s - pd.DateOffset(months=1)
    return sorted(snapshots)


def training_rows(
    panel: pd.DataFrame,
    snapshots: list[pd.Timestamp],
    horizon_days: int,
    *,
    max_training_rows: int = 300_000,
    random_state: int = 0,
    id_labels: pd.Index | None = None,
    with_bgnbd: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Stack raw features and labels over ``snapshots``.

    ``with_bgnbd``: add :data:`~cxpipeline.model.features.BGNBD_FEATURE`, the BG/NBD P(no
    purchase in the horizon) from a BG/NBD model fitted at each snapshot on that snapshot's
    (sampled) customers only, so the stacked feature never sees its own outcome window.
    Snapshots where BG/NBD cannot be fitted (too few customers or no repeat purchase) are left
    out (``info["snapshots_without_bgnbd"]``).

    ``id_labels``: when the panel's ``customer_id`` holds integer codes (fast path of
    :func:`~cxpipeline.model.score.fit_and_score`), the real ids they index; the customer sample
    is drawn from a hash of the real id either way.

    Returns
    -------
    (rows, info)
        ``rows``: raw features plus ``customer_id``, ``snapshot`` and ``is_lapsed``;
        ``info``: rows before sampling, the customer sampling fraction.
    """
    info = {"rows_before_sampling": 0, "customer_sample_fraction": 1.0, "snapshots_without_bgnbd": []}
    if not snapshots:
        return pd.DataFrame(), info
    codes, ids, first = first_purchases(panel)
    buyers = np.flatnonzero(first != NO_PURCHASE)  # positions in ids, in id order
    expected = int(sum((first[buyers] < instant_us(s)).sum() for s in snapshots))
    info["rows_before_sampling"] = expected
    if expected > max_training_rows:
        # Sample whole customers (all their snapshots) with a fixed seed: fewer rows, same design.
        # The draw is a hash of the id (salted by random_state), so whether a customer is kept
        # does not depend on which other customers exist (no dependence on later arrivals).
        fraction = max_training_rows / expected
        buyer_ids = ids[buyers]
        real_ids = id_labels[buyer_ids] if id_labels is not None else buyer_ids
        keep = _uniform_from_ids(pd.Index(real_ids), random_state) < fraction
        kept = np.zeros(len(ids), dtype=bool)
        kept[buyers[keep]] = True
        panel = panel.loc[kept[codes]]
        info["customer_sample_fraction"] = round(fraction, 6)
    frames = []
    for s in snapshots:
        features = snapshot_features(panel, s)
        if with_bgnbd:
            from cxpipeline.model.bgnbd import fit_latent

            latent = fit_latent(features, spend=False)
            if latent.bgnbd is None:
                info["snapshots_without_bgnbd"].append(f"{s:%Y-%m-%d}")
                continue
            features[BGNBD_FEATURE] = latent.p_no_purchase(features, horizon_days)
        features["is_lapsed"] = lapse_labels(panel, s, horizon_days, features.index)
        features["snapshot"] = s
        frames.append(features.reset_index())
    if not frames:
        return pd.DataFrame(), info
    return pd.concat(frames, ignore_index=True), info


def _uniform_from_ids(ids: pd.Index, salt: int) -> np.ndarray:
    hashed = pd.util.hash_pandas_object(pd.Series(ids.astype("string")), index=False, hash_key=f"{salt:016d}"[:16])
    return (hashed.to_numpy() >> np.uint64(11)).astype("float64") / float(1 << 53)


@dataclass
class RecencyRule:
    """P(at risk) from days since last purchase alone."""

    horizon_days: int
    isotonic: IsotonicRegression | None = None  # None: the fixed recency / (recency + H) rule

    @property
    def description(self) -> str:
        if self.isotonic is None:
            return f"fixed rule recency / (recency + {self.horizon_days}) (no labelled history)"
        return "isotonic fit of the lapse rate on days since last purchase"

    def predict(self, recency_days: np.ndarray | pd.Series) -> np.ndarray:
        r = np.asarray(recency_days, dtype="float64")
        if self.isotonic is None:
            return r / (r + self.horizon_days)
        return np.clip(self.isotonic.predict(r), 0.0, 1.0)


def fit_recency_rule(rows: pd.DataFrame, horizon_days: int) -> RecencyRule:
    """Isotonic (increasing) lapse rate by recency on the training rows; fixed rule without labels."""
    if rows.empty or rows["is_lapsed"].nunique() < 2:
        return RecencyRule(horizon_days)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(rows["recency_days"].to_numpy(), rows["is_lapsed"].to_numpy())
    return RecencyRule(horizon_days, iso)


@dataclass
class AtRiskModel:
    """A fitted at-risk scorer: the calibrated logistic model, or the recency rule fallback."""

    method: str  # "logistic" or "recency_rule"
    horizon_days: int
    recency_rule: RecencyRule
    feature_columns: list[str] = field(default_factory=list)
    segment_levels: dict[str, list[str]] = field(default_factory=dict)
    calibrated: CalibratedClassifierCV | None = None
    messages: list[str] = field(default_factory=list)
    training_rows: pd.DataFrame | None = field(default=None, repr=False)  # the stacked rows it saw
    #: Set by :func:`cxpipeline.model.score.fit_and_score`: the label-free BG/NBD + Gamma-Gamma
    #: fit, every method's P(at risk) and value per scored customer (rows in the order of the
    #: scores), and which method the scores use.
    latent: object | None = field(default=None, repr=False)
    candidates: pd.DataFrame | None = field(default=None, repr=False)
    chosen_method: str = ""

    def matrix(self, features: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
        dummies = segment_dummies(features.index, customers, self.segment_levels)
        return model_matrix(features, dummies).reindex(columns=self.feature_columns, fill_value=0.0)

    def predict(self, features: pd.DataFrame, customers: pd.DataFrame | None) -> np.ndarray:
        """Calibrated P(no purchase in the next H days) for each row of ``features``."""
        if self.method != "logistic":
            return self.recency_rule.predict(features["recency_days"])
        x = self.matrix(features, customers).to_numpy()
        with single_thread_blas():
            return self.calibrated.predict_proba(x)[:, 1]

    @property
    def pipeline(self) -> Pipeline | None:
        """The single scaler + logistic pipeline behind the calibrated scores."""
        if self.calibrated is None:
            return None
        return self.calibrated.calibrated_classifiers_[0].estimator

    def coefficients(self) -> pd.Series:
        """Logistic coefficients per standardized feature (empty for the recency rule)."""
        if self.pipeline is None:
            return pd.Series(dtype="float64")
        coef = self.pipeline.named_steps["logistic"].coef_[0]
        return pd.Series(coef, index=self.feature_columns)

    def contributions(self, features: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
        """coefficient x standardized value per customer and feature (log-odds units)."""
        if self.pipeline is None:
            return pd.DataFrame(index=features.index)
        z = self.pipeline.named_steps["scale"].transform(self.matrix(features, customers).to_numpy())
        coef = self.pipeline.named_steps["logistic"].coef_[0]
        return pd.DataFrame(z * coef, index=features.index, columns=self.feature_columns)


def fit_at_risk(
    rows: pd.DataFrame,
    customers: pd.DataFrame | None,
    segment_levels: dict[str, list[str]],
    horizon_days: int,
    *,
    random_state: int = 0,
) -> AtRiskModel:
    """Fit the calibrated logistic model on stacked rows, or fall back to the recency rule."""
    rule = fit_recency_rule(rows, horizon_days)
    n = len(rows)
    classes = rows["is_lapsed"].nunique() if n else 0
    if n < MIN_TRAINING_ROWS or classes < 2:
        why = (f"only {n} labelled customer-snapshots (need {MIN_TRAINING_ROWS})" if n < MIN_TRAINING_ROWS
               else "every labelled customer-snapshot has the same outcome")
        message = (f"Too little history to fit the at-risk model: {why}. "
                   f"Scores use the recency rule instead ({rule.description}).")
        return AtRiskModel("recency_rule", horizon_days, rule, messages=[message], training_rows=rows)

    features = rows.set_index("customer_id")
    dummies = segment_dummies(features.index, customers, segment_levels)
    x = model_matrix(features, dummies)
    y = rows["is_lapsed"].to_numpy()
    groups = rows["snapshot"].to_numpy()
    n_groups = len(np.unique(groups))
    if n_groups >= 3:
        # Calibrate on snapshots held out of the fold's fit (time blocks, not random rows).
        splits = list(GroupKFold(n_splits=3).split(x, y, groups))
    else:
        splits = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=random_state).split(x, y))
    pipeline = Pipeline([
        ("scale", StandardScaler()),
        ("logistic", LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200, random_state=random_state)),
    ])
    calibrated = CalibratedClassifierCV(pipeline, method="isotonic", cv=splits, ensemble=False)
    with single_thread_blas():
        calibrated.fit(x.to_numpy(), y)
    return AtRiskModel(
        "logistic",
        horizon_days,
        rule,
        feature_columns=list(x.columns),
        segment_levels=segment_levels,
        calibrated=calibrated,
        training_rows=rows,
    )
