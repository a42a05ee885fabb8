"""Pack pages of the at-risk model: the at-risk list, historical vs predicted value, the backtest.

One module of ~570 lines on purpose: the four model pages read one ``model_report.json`` and
share its presentation rules (which probabilities are shown, the verdict words).

Every number comes from the run's ``scores`` table (columns :data:`cxpipeline.model.SCORE_COLUMNS`)
and ``model_report.json`` (written by the pipeline's ``score_customers`` stage). The only
arithmetic is presentation: totals and shares of printed columns, band sums of the scores table,
and which words the verdict uses. A page returns ``None`` when the run has no scores (the model
stage did not run), so it and its TOC entry are left out.

Empty content never reaches the page silently: an empty list or a missing backtest is replaced by
a sentence saying why (``<p class="empty">``), which the pre-delivery check looks for.
"""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING

import pandas as pd
from babel.numbers import format_decimal

from cxpipeline.errors import ConfigError, InputError
from cxpipeline.model.features import FEATURE_LABELS
from cxpipeline.report.charts import calibration_chart, grouped_bar_alt, grouped_bar_chart
from cxpipeline.report.formatting import MINUS, Formatter

if TYPE_CHECKING:  # context.py imports this module; no import cycle at run time
    from cxpipeline.config import Config
    from cxpipeline.report.context import ArtifactTables

__all__ = [
    "AT_RISK_LIST_SIZE",
    "DO_NOT_LOSE_LIST_SIZE",
    "AT_RISK_METRICS",
    "VALUE_METRICS",
    "BACKTEST_METRICS",
    "build_at_risk",
    "build_value_comparison",
    "build_backtest",
    "build_value_backtest",
    "VALUE_BACKTEST_METRICS",
    "customer_display",
    "value_bands",
]

#: Rows of the ranked at-risk list and of the "do not lose them" list printed in the pack (the
#: full ranking is the ``scores`` table / CSV of the run).
AT_RISK_LIST_SIZE = 20
DO_NOT_LOSE_LIST_SIZE = 10

AT_RISK_METRICS = ("p_at_risk", "predicted_value_12m", "historical_value", "value_at_risk", "score_drivers",
                   "do_not_lose")
VALUE_METRICS = ("historical_value", "predicted_value_12m", "value_at_risk", "p_at_risk", "do_not_lose")
BACKTEST_METRICS = ("backtest_lapse_rate", "backtest_roc_auc", "backtest_brier", "backtest_calibration",
                    "bgnbd_model", "recency_rule", "base_rate_brier", "previous_list_review", "p_at_risk")
VALUE_BACKTEST_METRICS = ("predicted_value_12m", "value_backtest_mae", "value_backtest_totals", "value_backtest_lift",
                          "naive_value")

#: Column order of the backtest table (methods the report may hold, then the constant).
_METHOD_ORDER = ("logistic", "bgnbd", "recency_rule")
_SHORT_LABELS = {"logistic": "logistic model", "bgnbd": "BG/NBD", "recency_rule": "recency rule"}
METHOD_NAMES = {"logistic": "calibrated logistic model", "bgnbd": "BG/NBD purchase model",
                "recency_rule": "recency rule"}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole and math.isfinite(part / whole) else None


def _model_inputs(tables: ArtifactTables) -> tuple[pd.DataFrame, dict] | None:
    """The scores table and the model report, or ``None`` when the model stage has not run."""
    if not (tables.has("scores") and tables.has("model_report.json")):
        return None
    scores = tables.table("scores")
    numeric = ["p_at_risk", "predicted_value_12m", "historical_value", "value_at_risk", "revenue_12m"]
    missing = [c for c in ["customer_id", "at_risk_rank", *numeric, "driver_1", "driver_2", "driver_3",
                           "is_do_not_lose"] if c not in scores.columns]
    if missing:
        raise InputError(f"The scores table lacks the columns {missing}.", where=str(tables.folder),
                         fix="Rerun the score_customers stage for this period.")
    for column in numeric:
        if scores[column].isna().any():
            raise InputError(f"The scores table has missing values in {column!r}.", where=str(tables.folder),
                             fix="Rerun score_customers; a NaN must never reach the board pack.")
    return scores.sort_values("at_risk_rank", kind="stable"), tables.json("model_report.json")


def customer_display(ids: pd.Series, names: pd.Series | None, config: Config, *,
                     already_masked: bool = False) -> list[dict]:
    """``[{"name": str, "id": str}]`` as the pack prints customers.

    With ``delivery.mask_customers`` the masking helper (:mod:`cxpipeline.masking`) decides what
    is shown; without it, the pack refuses to print customers rather than leak them.
    ``already_masked``: the ids are tokens already (the extract masked the folder); they are
    printed as they are, never hashed twice, and names are hidden.
    """
    ids = ids.astype("string").reset_index(drop=True)
    names = (names.astype("string").reset_index(drop=True) if names is not None
             else pd.Series([pd.NA] * len(ids), dtype="string"))
    if config.delivery.mask_customers and already_masked:
        names = pd.Series([pd.NA] * len(ids), dtype="string")
    elif config.delivery.mask_customers:
        try:
            from cxpipeline import masking
        except ImportError as exc:
            raise ConfigError("delivery.mask_customers is set but cxpipeline.masking is not available.",
                              where="config key 'delivery.mask_customers'",
                              fix="Install a cxpipeline version with the masking helper, or set it to false.") from exc
        masked = masking.mask_customers(pd.DataFrame({"customer_id": ids, "customer_name": names}), config)
        ids, names = masked["customer_id"].astype("string"), masked["customer_name"].astype("string")
    out = []
    for cid, name in zip(ids, names):
        name = "" if pd.isna(name) else str(name).strip()
        out.append({"name": name or str(cid), "id": str(cid) if name else ""})
    return out


def _names(tables: ArtifactTables, ids: pd.Series) -> pd.Series | None:
    if not tables.has("customers"):
        return None
    customers = tables.table("customers")
    if "customer_name" not in customers.columns:
        return None
    wanted = ids.astype("string")
    # only the listed customers' rows: the lookup of the whole base cost ~0.3 s per list at 500k
    customers = customers.loc[customers["customer_id"].astype("string").isin(wanted.dropna().unique())]
    lookup = customers.drop_duplicates("customer_id").set_index(customers["customer_id"].drop_duplicates()
                                                                .astype("string"))["customer_name"]
    return wanted.map(lookup)


def _driver_text(text: str, config: Config) -> str:
    """A driver as the pack prints it: a segment names its attribute as the pack does
    ('customer_type: X' -> 'Customer type: X'); a number is written in the pack's locale and
    money in its currency ('net revenue in the last 12 months: 16288' -> '... : £16,288',
    '16.288 €' in de_DE). The scores table keeps the plain text."""
    for segment in config.segments:
        if text.startswith(f"{segment}: "):
            return _sentence_case(segment.replace("_", " ")) + text[len(segment):]
    label, separator, rest = text.partition(": ")
    number = re.fullmatch(r"(-?\d+)(?:\.(\d+))?(.*)", rest)
    if not separator or number is None:
        return text
    value, decimals, suffix = float(number[1] + "." + (number[2] or "0")), len(number[2] or ""), number[3]
    fmt = _formatter(config.locale, config.currency)
    if label in _MONEY_DRIVERS:
        shown = fmt.money(value)
    elif label == FEATURE_LABELS["is_single_order"]:
        return f"{label}: {'yes' if value else 'no'}"
    else:
        shown = format_decimal(value, format="#,##0" + ("." + "0" * decimals if decimals else ""),
                               locale=config.locale).replace("-", MINUS)
    space = "\u00a0" if suffix == "%" and config.locale.split("_")[0] in _SPACED_PERCENT else ""
    return f"{label}: {shown}{space}{suffix}"


_MONEY_DRIVERS = (FEATURE_LABELS["log_revenue_12m"], FEATURE_LABELS["log_aov"])
_SPACED_PERCENT = ("de", "fr", "sv", "nb", "da", "fi", "cs", "pl")  # '12 %' in these languages


@functools.lru_cache(maxsize=8)
def _formatter(locale: str, currency: str) -> Formatter:
    return Formatter(locale, currency)


def _list_rows(frame: pd.DataFrame, tables: ArtifactTables, config: Config) -> list[dict]:
    from cxpipeline.masking import is_masked

    shown = customer_display(frame["customer_id"], _names(tables, frame["customer_id"]), config,
                             already_masked=is_masked(tables.folder))
    rows = []
    for who, row in zip(shown, frame.itertuples(index=False)):
        drivers = [_driver_text(str(d), config) for d in (row.driver_1, row.driver_2, row.driver_3)
                   if not pd.isna(d) and str(d)]
        rows.append({
            "rank": int(row.at_risk_rank), "name": who["name"], "id": who["id"],
            "p_at_risk": float(row.p_at_risk), "predicted_value_12m": float(row.predicted_value_12m),
            "historical_value": float(row.historical_value), "value_at_risk": float(row.value_at_risk),
            "revenue_12m": float(row.revenue_12m), "drivers": drivers,
        })
    return rows


def _totals(frame: pd.DataFrame) -> dict:
    return {"count": int(len(frame)), "value_at_risk": round(float(frame["value_at_risk"].sum()), 2),
            "predicted_value_12m": round(float(frame["predicted_value_12m"].sum()), 2),
            "historical_value": round(float(frame["historical_value"].sum()), 2),
            "revenue_12m": round(float(frame["revenue_12m"].sum()), 2)}


def _fallback_note(report: dict, terms: dict) -> str | None:
    if report.get("method") in ("logistic", "bgnbd"):
        return None
    reasons = " ".join(str(m) for m in report.get("messages", []))
    return (f"Too little history for the model, so these scores come from a recency rule: the longer since "
            f"a {terms['customer']}'s last purchase, the higher P(at risk). {reasons}").strip()


def _method_note(report: dict) -> str | None:
    """Which model the scores come from and why (the pipeline's choice, in its own words)."""
    choice = report.get("method_choice")
    if not choice:
        return None
    return f"P(at risk) comes from the {choice['label']}. {choice['why']}"


def _probabilities(report: dict) -> tuple[bool, str | None]:
    check = report.get("probabilities") or {}
    return bool(check.get("shown", True)), check.get("note")


def build_at_risk(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    """The ranked at-risk list by value at risk, the totals and the 'do not lose them' list."""
    inputs = _model_inputs(tables)
    if inputs is None:
        return None
    scores, report = inputs
    terms = shared["terms"]
    top = scores.head(AT_RISK_LIST_SIZE)
    keep = scores.loc[scores["is_do_not_lose"].astype(bool)]
    totals = _totals(scores)
    return {
        "horizon_days": int(report["horizon_days"]),
        "fit_instant": report.get("fit_instant"),
        "method": report.get("method"),
        "method_note": _method_note(report),
        "show_probability": _probabilities(report)[0],
        "probability_note": _probabilities(report)[1],
        "fallback_note": _fallback_note(report, terms),
        "totals": totals,
        "mean_p_at_risk": float(scores["p_at_risk"].mean()) if len(scores) else None,
        "rows": _list_rows(top, tables, config),
        "list_totals": _totals(top),
        "list_share_of_value_at_risk": _share(float(top["value_at_risk"].sum()), totals["value_at_risk"]),
        "empty_note": (None if len(scores) else
                       f"No {terms['customer']} had a purchase before the end of the period, so nobody was scored."),
        "keep": {
            "rows": _list_rows(keep.head(DO_NOT_LOSE_LIST_SIZE), tables, config),
            "totals": _totals(keep),
            "share_of_value_at_risk": _share(float(keep["value_at_risk"].sum()), totals["value_at_risk"]),
            "empty_note": (None if len(keep) else
                           f"No {terms['customer']} is long-standing, in the top 20 % by historical value and "
                           f"predicted to spend less than in the last 12 months this period."),
        },
    }


def value_bands(scores: pd.DataFrame, names: list[str], top_shares: list[float]) -> pd.DataFrame:
    """Scored customers in bands by historical value (best first), with band sums.

    Band ``k`` holds positions ``[ceil(top_shares[k-1] * n), ceil(top_shares[k] * n))`` of the
    ranking by historical value (descending, ties by customer id); the last band takes the rest.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    # Arrow's sort on (value, id): pandas' lexsort factorized half a million string ids first.
    # Ids compare bytewise in UTF-8, which is code point order, as Python compares strings.
    keys = pa.table({"value": scores["historical_value"].to_numpy("float64"),
                     "id": pa.array(scores["customer_id"].astype("string"))})
    order = pc.sort_indices(keys, sort_keys=[("value", "descending"), ("id", "ascending")])
    ranked = scores.take(order.to_numpy())
    n = len(ranked)
    cuts = [0, *[math.ceil(share * n) for share in top_shares], n]
    rows = []
    for k, name in enumerate(names):
        part = ranked.iloc[cuts[k]:cuts[k + 1]]  # bands are runs of the ranking
        rows.append({"band": name, "count_customers": int(len(part)),
                     "historical_value": round(float(part["historical_value"].sum()), 2),
                     "revenue_12m": round(float(part["revenue_12m"].sum()), 2),
                     "predicted_value_12m": round(float(part["predicted_value_12m"].sum()), 2),
                     "value_at_risk": round(float(part["value_at_risk"].sum()), 2),
                     "mean_p_at_risk": float(part["p_at_risk"].mean()) if len(part) else None,
                     "count_do_not_lose": int(part["is_do_not_lose"].astype(bool).sum())})
    return pd.DataFrame(rows)


def _colors(config: Config) -> dict:
    brand = config.brand
    return {"primary": brand.primary_color, "accent": brand.accent_color, "positive": brand.positive_color,
            "negative": brand.negative_color, "grid": "#D5DAE1", "text": "#1B2230", "muted": "#9AA3AF"}


def build_value_comparison(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    """Historical value to date beside the last 12 months and the predicted next 12 months,
    by band of historical value, and the 'do not lose them' quadrant in figures."""
    inputs = _model_inputs(tables)
    if inputs is None:
        return None
    scores, report = inputs
    fmt = shared["fmt"]
    terms = shared["terms"]
    names = list(config.tiers.names)
    bands = value_bands(scores, names, list(config.tiers.top_shares))
    totals = _totals(scores)
    rows = []
    for band in bands.to_dict("records"):
        # An empty band's mean is None, which the DataFrame round trip turned into NaN.
        if band["mean_p_at_risk"] is not None and math.isnan(band["mean_p_at_risk"]):
            band["mean_p_at_risk"] = None
        rows.append({**band,
                     "change": band["predicted_value_12m"] - band["revenue_12m"],
                     "change_pct": _share(band["predicted_value_12m"] - band["revenue_12m"], band["revenue_12m"]),
                     "share_historical": _share(band["historical_value"], totals["historical_value"]),
                     "share_predicted": _share(band["predicted_value_12m"], totals["predicted_value_12m"])})
    chart, chart_alt, chart_note = None, None, None
    if len(scores) and totals["historical_value"] > 0 and totals["predicted_value_12m"] > 0:
        colors = _colors(config)
        series = [
            {"label": "Share of historical value", "color": colors["primary"],
             "values": [r["share_historical"] or 0.0 for r in rows]},
            {"label": "Share of predicted 12-month value", "color": colors["accent"],
             "values": [r["share_predicted"] or 0.0 for r in rows]},
        ]
        chart = shared["charts"].draw(grouped_bar_chart, names, series, colors=colors,
                                      label_value=lambda v: fmt.percent(v, 0),
                                      fonts_dir=shared["templates_dir"] / "fonts", size_inches=(6.3, 2.5))
        chart_alt = grouped_bar_alt(f"share of historical and predicted 12-month value by band of historical "
                                    f"value", names, series, lambda v: fmt.percent(v, 0))
    else:
        chart_note = (f"No chart: the {terms['customers']} scored have no positive historical or predicted value "
                      f"to compare.")
    keep = scores.loc[scores["is_do_not_lose"].astype(bool)]
    keep_totals = _totals(keep)
    return {
        "rows": rows,
        "total": {"band": "Total", **{k: totals[k] for k in ("historical_value", "revenue_12m",
                                                             "predicted_value_12m", "value_at_risk")},
                  "count_customers": totals["count"],
                  "change": totals["predicted_value_12m"] - totals["revenue_12m"],
                  "change_pct": _share(totals["predicted_value_12m"] - totals["revenue_12m"], totals["revenue_12m"]),
                  "mean_p_at_risk": float(scores["p_at_risk"].mean()) if len(scores) else None,
                  "count_do_not_lose": int(len(keep))},
        "chart": chart,
        "chart_alt": chart_alt,
        "chart_note": chart_note,
        "keep": {**keep_totals,
                 "change": keep_totals["predicted_value_12m"] - keep_totals["revenue_12m"],
                 "share_historical": _share(keep_totals["historical_value"], totals["historical_value"])},
        "value_method": report.get("value_model", {}).get("method"),
        "value_note": _value_note(report),
        "show_probability": _probabilities(report)[0],
        "fallback_note": _fallback_note(report, terms),
        "empty_note": (None if len(scores) else
                       f"No {terms['customer']} had a purchase before the end of the period, so nobody was scored."),
    }


def _is_value_note(message: str) -> bool:
    """A model-report message about the value models (shown on the value backtest page)."""
    return any(key in message for key in ("value model", "Gamma-Gamma", "Predicted 12-month value"))


def _value_note(report: dict, with_choice: bool = True) -> str:
    """How predicted value was computed, and why that model (from the report)."""
    value = report.get("value_model", {})
    method = value.get("method")
    how = {"regression": "a regression on the last six months' revenue, the six months before and average order "
                         "value x the BG/NBD chance of still being active, fitted on earlier snapshots",
           "bgnbd": "the BG/NBD model's expected orders in the next 12 months x the Gamma-Gamma model's expected "
                    "spend per order (no labelled window needed)",
           "fallback": "(1 − P(at risk)) × last 12 months, as neither value model could be fitted"}.get(
               method, "(1 − P(at risk)) × last 12 months")
    choice = value.get("choice")
    return f"Predicted value: {how}." + (f" {choice}" if with_choice and choice and method != "fallback" else "")


def _decimal(value: float | None, config: Config) -> str:
    if value is None:
        return "n/a"
    return format_decimal(value, format="0.0000", locale=config.locale)


def _verdict(backtest: dict, fmt, config: Config) -> list[str]:
    """Plain-words reading of the backtest, from its numbers."""
    model, rule = backtest["model"], backtest["recency_rule"]
    words = []
    if model["roc_auc"] is None:
        return ["Everyone in the backtest had the same outcome, so the ranking cannot be scored (ROC-AUC needs "
                "both lapsers and buyers)."]
    better_auc = model["roc_auc"] > rule["roc_auc"]
    better_brier = model["brier"] < rule["brier"]
    auc, rule_auc = _decimal(model["roc_auc"], config), _decimal(rule["roc_auc"], config)
    brier, rule_brier = _decimal(model["brier"], config), _decimal(rule["brier"], config)
    label = backtest.get("method_label")
    name = f"The {label}" if label else "The model"
    if backtest.get("method") == "recency_rule":
        words.append(f"The backtest itself used the recency rule (too little history at the snapshot), so model "
                     f"and rule are the same method here (ROC-AUC {auc} vs {rule_auc}).")
    elif better_auc and better_brier:
        words.append(f"{name} beats the recency rule on both measures: it ranks those who lapsed above those "
                     f"who bought more often (ROC-AUC {auc} vs {rule_auc}) and its probabilities are closer to "
                     f"what happened (Brier {brier} vs {rule_brier}).")
    elif better_auc or better_brier:
        won, lost = (("ranking", "probabilities") if better_auc else ("probabilities", "ranking"))
        words.append(f"Mixed result: {name[0].lower() + name[1:]} beats the recency rule on its {won} but not on its {lost} "
                     f"(ROC-AUC {auc} vs {rule_auc}; Brier {brier} vs {rule_brier}). Read the list as a ranking "
                     f"close to 'longest since last purchase first'.")
    else:
        words.append(f"{name} does not beat the recency rule (ROC-AUC {auc} vs {rule_auc}; Brier {brier} vs "
                     f"{rule_brier}): days since last purchase alone would rank these {config.terminology.customers} "
                     f"as well.")
    checked = [row for row in backtest["calibration"] if row["within_5_points"] is not None]
    off = [row for row in checked if not row["within_5_points"]]
    if not checked:
        words.append("No decile has 200 or more people, so calibration is shown but not held to the 5-point test.")
    elif not off:
        words.append(f"Its probabilities are well calibrated: every one of the {len(checked)} deciles with 200 or "
                     f"more {config.terminology.customers} is within 5 points of what happened.")
    else:
        worst = max(off, key=lambda r: abs(r["difference"]))
        words.append(f"{len(off)} of {len(checked)} deciles are more than 5 points off; the largest gap is "
                     f"{fmt.percent(abs(worst['difference']))} points in decile {worst['decile']}, so read "
                     f"those probabilities as rough.")
    return words


def build_backtest(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    """The backtest on the latest fully observed snapshot, and last period's list checked."""
    inputs = _model_inputs(tables)
    if inputs is None:
        return None
    _, report = inputs
    fmt = shared["fmt"]
    terms = shared["terms"]
    backtest = report.get("backtest") or {"available": False, "messages": ["The model report holds no backtest."]}
    out = {
        "method": report.get("method"),
        "horizon_days": int(report["horizon_days"]),
        "fallback_note": _fallback_note(report, terms),
        "available": bool(backtest.get("available")),
        "unavailable_note": None,
        "training": report.get("training_window", {}),
        "training_rows": report.get("training_rows"),
        # Notes from the live fit only: the backtest's and the value backtest's own notes stay in the
        # model report (their gist is on the page: the shortened horizon, the unfitted models).
        "messages": [str(m) for m in report.get("messages", [])
                     if not str(m).startswith(("Backtest at ", "Value backtest: "))
                     and "P(at risk) comes from the BG/NBD purchase model" not in str(m)
                     and not _is_value_note(str(m))],
        "fit_instant": report.get("fit_instant"),
        "customers_scored": (report.get("scores_summary") or {}).get("customers_scored"),
    }
    out["choice_note"] = _method_note(report)
    out["show_probability"], out["probability_note"] = _probabilities(report)
    if out["available"]:
        calibration = [dict(row, difference_points=row["difference"]) for row in backtest["calibration"]]
        models = backtest.get("models") or {backtest.get("method", "model"): backtest["model"],
                                            "recency_rule": backtest["recency_rule"]}
        base = backtest.get("base_rate") or {}
        columns = [{"key": k, "label": _sentence_case(_SHORT_LABELS[k]), "is_used": k == report.get("method")}
                   for k in _METHOD_ORDER if k in models]
        if base.get("brier") is not None:
            columns.append({"key": "base_rate", "label": "Base rate", "is_used": False})
        other_calibration = [
            {"label": {"logistic": "Logistic", "bgnbd": "BG/NBD"}[k], "rows": models[k]["calibration"]}
            for k in ("logistic", "bgnbd") if k in models and k != backtest.get("method") and models[k].get("calibration")]
        colors = _colors(config)
        out.update({
            "snapshot": backtest["snapshot"], "outcome_window": backtest["outcome_window"],
            "n": int(backtest["n"]), "lapse_rate": backtest["lapse_rate"],
            "backtest_method": backtest.get("method"),
            "columns": columns,
            "outcome_window_days": int(backtest["horizon_days"]),
            "measures": [
                {"label": "ROC-AUC", "note": "higher is better; 0.5 = chance",
                 "cells": [_decimal(models[c["key"]]["roc_auc"], config) if c["key"] in models else
                            _decimal(0.5, config) for c in columns],
                 "model": _decimal(backtest["model"]["roc_auc"], config),
                 "rule": _decimal(backtest["recency_rule"]["roc_auc"], config),
                 "model_better": (None if backtest["model"]["roc_auc"] is None else
                                  backtest["model"]["roc_auc"] > backtest["recency_rule"]["roc_auc"])},
                {"label": "Brier score", "note": "lower is better",
                 "cells": [_decimal(models[c["key"]]["brier"] if c["key"] in models else base.get("brier"), config)
                            for c in columns],
                 "model": _decimal(backtest["model"]["brier"], config),
                 "rule": _decimal(backtest["recency_rule"]["brier"], config),
                 "model_better": (None if backtest["model"]["brier"] is None else
                                  backtest["model"]["brier"] < backtest["recency_rule"]["brier"])},
            ],
            "method_label": backtest.get("method_label") or "model",
            "other_calibration": other_calibration,
            "shortened_note": backtest.get("shortened_note"),
            "calibration": calibration,
            "calibration_alt": (
                "Calibration chart of predicted against observed lapse rate by decile: "
                + "; ".join(f"decile {r['decile']}: {fmt.percent(r['mean_predicted'], 0)} predicted, "
                            f"{fmt.percent(r['observed'], 0)} observed" for r in calibration)
                + ".") if calibration else None,
            "calibration_chart": (shared["charts"].draw(
                calibration_chart, [r["mean_predicted"] for r in calibration], [r["observed"] for r in calibration],
                colors={"model": colors["primary"], "diagonal": colors["muted"], "grid": colors["grid"],
                        "text": colors["text"]},
                label_percent=lambda v: fmt.percent(v, 0), fonts_dir=shared["templates_dir"] / "fonts",
                size_inches=(3.6, 3.1)) if calibration else None),
            "verdict": ([] if report.get("method") in models else [
                f"The {METHOD_NAMES.get(report.get('method'), 'model')} the pack uses could not be fitted at the "
                f"backtest snapshot (too little data then), so it is not in this backtest."]) + _verdict(backtest, fmt, config),
        })
    else:
        out["unavailable_note"] = " ".join(str(m) for m in backtest.get("messages", [])) or "No backtest was run."
        shown = {f"Backtest at {backtest.get('snapshot', 'n/a')}: {m}" for m in backtest.get("messages", [])}
        out["messages"] = [m for m in out["messages"] if m not in shown]
    review = report.get("previous_list_review")
    if review:
        out["review"] = {
            **review,
            "top_share_no_purchase": _share(review["top_count_no_purchase"], review["top_n"]),
            "is_partial": review["days_observed"] < out["horizon_days"],
        }
        out["review_note"] = None if review["top_n"] else (
            f"Last period's list was empty: no {terms['customer']} had been scored by then.")
    else:
        out["review"] = None
        out["review_note"] = "Last period's list was not checked in this run (no review in the model report)."
    return out


def build_value_backtest(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    """Predicted vs actual value on the latest fully observed snapshot: every value model and the
    naive "same as last 12 months", with mean absolute error, totals and lift by decile."""
    inputs = _model_inputs(tables)
    if inputs is None:
        return None
    _, report = inputs
    fmt = shared["fmt"]
    terms = shared["terms"]
    vbt = report.get("value_backtest") or {"available": False,
                                           "messages": ["The model report holds no value backtest."]}
    used = report.get("value_model", {}).get("method")
    out = {"available": bool(vbt.get("available")), "used": used, "value_note": _value_note(report, with_choice=False),
           "unavailable_note": None}
    if out["available"] and not vbt.get("models"):
        out["available"] = False
        vbt = {"messages": [f"No value model could be fitted at the value backtest snapshot {vbt['snapshot']} "
                            f"(too few {terms['customers']} then), so there is nothing to set against "
                            f"\"same as last 12 months\"."]}
    if not out["available"]:
        out["unavailable_note"] = " ".join(str(m) for m in vbt.get("messages", [])) or "No value backtest was run."
        return out
    models = [{**m, "key": key, "label": _sentence_case(m["label"]), "is_used": key == used}
              for key, m in vbt["models"].items()]
    naive = {**vbt["naive"], "key": "naive", "label": _sentence_case(vbt["naive"]["label"]), "is_used": False}
    rows = models + [naive]
    for row in rows:
        row["ratio"] = _share(row["total_predicted"], row["total_actual"])
    shown = next((m for m in models if m["is_used"]), models[0] if models else None)
    lift = []
    if shown is not None:
        for mine, base in zip(shown["deciles"], naive["deciles"]):
            lift.append({"decile": mine["decile"], "n": mine["n"], "predicted": mine["predicted"],
                         "actual": mine["actual"], "share": mine["share_of_actual"], "lift": mine["lift"],
                         "naive_share": base["share_of_actual"], "naive_lift": base["lift"]})
    chart, chart_alt = None, None
    if lift and all(r["share"] is not None and r["naive_share"] is not None for r in lift):
        colors = _colors(config)
        series = [{"label": f"{shown['label']}", "color": colors["primary"], "values": [r["share"] for r in lift]},
                  {"label": naive["label"], "color": colors["muted"], "values": [r["naive_share"] for r in lift]}]
        chart = shared["charts"].draw(grouped_bar_chart, [str(r["decile"]) for r in lift], series, colors=colors,
                                      label_value=lambda v: fmt.percent(v, 0),
                                      fonts_dir=shared["templates_dir"] / "fonts", size_inches=(5.2, 2.3))
        chart_alt = grouped_bar_alt("share of actual value by decile of predicted value, highest first",
                                    [f"decile {r['decile']}" for r in lift], series, lambda v: fmt.percent(v, 0))
    out.update({
        "snapshot": vbt["snapshot"], "outcome_window": vbt["outcome_window"], "horizon_days": vbt["horizon_days"],
        "n": vbt["n"], "rows": rows, "shown": shown, "lift": lift, "chart": chart, "chart_alt": chart_alt,
        "chart_note": None if chart else f"No chart: no {terms['customer']} spent anything in the window.",
        "choice": vbt.get("preferred_reason"),
        "messages": [str(m) for m in vbt.get("messages", [])]
        + [str(m) for m in report.get("messages", []) if _is_value_note(str(m)) and not str(m).startswith("Backtest at ")],
    })
    return out
