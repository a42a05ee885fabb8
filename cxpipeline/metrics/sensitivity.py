"""Lapse-rule sensitivity (docs/architecture.md, "Customer asset ledger") and the retention rate beside the raw flows.

The sensitivity table reruns the ledger for P under the fixed window and under the personal
rule with k = 1.5, 2 and 3 (floor and cap from the config), so the reader sees how much the
lapsed count and value depend on the rule. The configured rule is marked.

Retention rate = opening customers still active at the end of P / opening customers. It is
only ever written in a table that also holds the raw gained and lost counts and values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ledger import LapseRule, customer_flows_by_rule

__all__ = ["SENSITIVITY_K", "sensitivity_rules", "lapse_sensitivity", "retention_table"]

SENSITIVITY_K = (1.5, 2.0, 3.0)


def _line(flows: pd.DataFrame, flag: str, value: str) -> tuple[int, float]:
    mask = flows[flag]
    return int(mask.sum()), round(float(flows.loc[mask, value].sum()), 2)


def sensitivity_rules(rule: LapseRule, ks: Sequence[float] = SENSITIVITY_K) -> list[LapseRule]:
    """The rows of the sensitivity table: the fixed window, then the personal rule for each k
    (the configured rule, fixed or personal, is always one of them)."""
    if rule.mode == "personal":
        ks = sorted({*ks, rule.k})  # the configured k is always one of the rows
    rules = [LapseRule("fixed", rule.window_days, rule.k, rule.floor_days, rule.cap_days)]
    return rules + [rule.with_k(k) for k in ks]


def lapse_sensitivity(
    panel: pd.DataFrame,
    period_start: pd.Timestamp,
    period_end: pd.Timestamp,
    rule: LapseRule,
    cadence: pd.DataFrame | None,
    ks: Sequence[float] = SENSITIVITY_K,
    configured_flows: pd.DataFrame | None = None,
    flows_by_rule: Mapping[LapseRule, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Ledger lines of P under the fixed window and the personal rule for each k.

    ``configured_flows`` / ``flows_by_rule``: ledger flows already computed (for the
    configured rule / per rule of :func:`sensitivity_rules`); the others are computed here.

    Returns
    -------
    pandas.DataFrame
        ``rule, mode, k, window_days, count_opening, count_gained, count_lapsed,
        value_lapsed, count_closing, value_closing, is_configured`` (k = 0 for the fixed
        window; window_days = 0 for personal rules).
    """
    rules = sensitivity_rules(rule, ks)
    known = dict(flows_by_rule or {})

    def configured(candidate: LapseRule) -> bool:
        personal = candidate.mode == "personal"
        return candidate.mode == rule.mode and (candidate.k == rule.k if personal else True)

    # every rule's flows from one pass over the panel; the configured rule's are reused
    missing = [c for c in rules if c not in known and not (configured(c) and configured_flows is not None)]
    if missing:
        known.update(zip(missing, customer_flows_by_rule(panel, period_start, period_end, missing, cadence)))
    rows = []
    for candidate in rules:
        personal = candidate.mode == "personal"
        is_configured = configured(candidate)
        flows = configured_flows if is_configured and configured_flows is not None else known[candidate]
        name = (f"{candidate.k:g} x own median gap ({candidate.floor_days:g}-{candidate.cap_days:g} days)"
                if personal else f"Fixed {candidate.window_days:g} days")
        count_lapsed, value_lapsed = _line(flows, "is_lapsed", "value_lapsed")
        count_closing, value_closing = _line(flows, "is_closing", "value_closing")
        rows.append({
            "rule": name, "mode": candidate.mode, "k": float(candidate.k) if personal else 0.0,
            "window_days": 0.0 if personal else float(candidate.window_days),
            "count_opening": int(flows["is_opening"].sum()),
            "count_gained": int((flows["is_new"] | flows["is_reactivated"]).sum()),
            "count_lapsed": count_lapsed, "value_lapsed": value_lapsed,
            "count_closing": count_closing, "value_closing": value_closing,
            "is_configured": bool(is_configured),
        })
    return pd.DataFrame.from_records(rows).astype({"rule": "string", "mode": "string"})


def retention_table(flows: pd.DataFrame, segments: pd.DataFrame, segment_columns: Sequence[str]) -> pd.DataFrame:
    """Retention rate beside the raw gains and losses, overall and per segment.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, count_opening, count_retained, retention_rate,
        count_gained, value_gained, count_lost, value_lost`` (rate 0 when the opening base
        is empty).
    """
    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        opening = int(rows["is_opening"].sum())
        retained = int((rows["is_opening"] & rows["is_closing"]).sum())
        gained = rows["is_new"] | rows["is_reactivated"]
        return pd.DataFrame([{
            "count_opening": opening, "count_retained": retained,
            "retention_rate": retained / opening if opening else 0.0,
            "count_gained": int(gained.sum()), "value_gained": round(float(rows.loc[gained, "value_closing"].sum()), 2),
            "count_lost": int(rows["is_lapsed"].sum()),
            "value_lost": round(float(rows.loc[rows["is_lapsed"], "value_lapsed"].sum()), 2),
        }])

    return by_segment(flows.merge(segments, on="customer_id", how="left"), list(segment_columns), summarise)
