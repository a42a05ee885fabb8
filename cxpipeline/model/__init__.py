"""The at-risk model and customer value (docs/architecture.md, "At-risk model"); see docs/model.md.

Public API:

* :func:`score_period` -- scores at a period end plus the backtest on the latest fully observed
  snapshot (what the pipeline's ``score_customers`` stage calls);
* :func:`run_backtest` -- fit before a cutoff, score, compare with the next N days (the
  ``cxpipeline backtest`` command);
* :func:`fit_and_score`, :func:`snapshot_features`, :func:`review_previous_list` for finer use;
* :func:`rfm_summary`, :func:`fit_bgnbd`, :func:`fit_gamma_gamma` and the BG/NBD formulas in
  :mod:`cxpipeline.model.bgnbd` (label-free; any history, any horizon);
* :func:`value_backtest` -- predicted vs actual value on the latest fully observed snapshot.
"""

from cxpipeline.model.backtest import (
    backtest_snapshot,
    calibration_table,
    evaluate,
    format_summary,
    review_previous_list,
    run_backtest,
    value_backtest,
)
from cxpipeline.model.bgnbd import fit_bgnbd, fit_gamma_gamma, rfm_summary
from cxpipeline.model.features import FEATURE_LABELS, RAW_FEATURES, snapshot_features
from cxpipeline.model.period import score_period
from cxpipeline.model.score import SCORE_COLUMNS, ModelResult, fit_and_score

__all__ = [
    "FEATURE_LABELS",
    "RAW_FEATURES",
    "SCORE_COLUMNS",
    "ModelResult",
    "backtest_snapshot",
    "calibration_table",
    "evaluate",
    "fit_and_score",
    "format_summary",
    "review_previous_list",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "rfm_summary",
    "run_backtest",
    "score_period",
    "snapshot_features",
    "value_backtest",
]
