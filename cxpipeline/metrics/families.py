"""The metric families beyond the bridge and the ledger, computed together for one run.

:func:`customer_metric_tables` is called by :func:`cxpipeline.metrics.tables.compute_tables`
with what it has already computed (segments, bridge classes, ledger flows) and returns the
tables of docs/architecture.md ("Segments and movement", "Behaviour patterns", "Referrals",
"Profitability", "Cohorts") and the lapse sensitivity of the ledger. Besides the configured
attribute segments, two derived dimensions are used where they help the reader:

- ``value_tier``: the customer's value tier at the start of P (fixed), ``New`` / ``Won back``
  for customers gained in P, ``Not in base at start`` otherwise;
- ``rfm_segment``: the named RFM segment at the end of P, ``No purchase`` without one.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from cxpipeline.config import Config
from cxpipeline.metrics.behaviour import behaviour_customers, behaviour_table, bridge_movers, revenue_decomposition
from cxpipeline.metrics.cohorts import cohort_table
from cxpipeline.metrics.ledger import LapseRule
from cxpipeline.metrics.profitability import profit_customers, profitability_table, whale_curve
from cxpipeline.metrics.referrals import (
    has_referral_data,
    referral_customers,
    referral_stories,
    referral_summary,
    top_referrers,
)
from cxpipeline.metrics.rfm import rfm_customers, rfm_segments
from cxpipeline.metrics.sensitivity import lapse_sensitivity, retention_table
from cxpipeline.metrics.tiers import (
    NOT_IN_BASE,
    migration_flags,
    migration_matrix,
    migration_summary,
    tier_customers,
    tier_summary,
)
from cxpipeline.periods import Period, comparison_period

__all__ = ["NO_PURCHASE", "customer_metric_tables"]

NO_PURCHASE = "No purchase"


def customer_metric_tables(
    panel: pd.DataFrame,
    customers: pd.DataFrame | None,
    cadence: pd.DataFrame | None,
    period: Period,
    comparison: Period,
    config: Config,
    *,
    segments: pd.DataFrame,
    classified: pd.DataFrame,
    flows: pd.DataFrame,
    flows_by_rule: Mapping[LapseRule, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of the metric families; keys are artifact table names.

    Tables whose name ends in ``_customers`` hold one row per customer (the reader of a
    number in the pack can find who is behind it); ``referral_referrers`` and
    ``referral_stories`` are only present when there is something to list.
    """
    s, e = pd.Timestamp(period.start), pd.Timestamp(period.end)
    attrs = list(config.segments)
    rule = LapseRule.from_config(config.lapse)
    names, shares = list(config.tiers.names), list(config.tiers.top_shares)

    tiers, cuts = tier_customers(flows, names, shares, config.tolerance)
    rfm = rfm_customers(panel, e)
    extended = segments.merge(tiers[["customer_id", "tier_start"]].rename(columns={"tier_start": "value_tier"}),
                              on="customer_id", how="left")
    extended = extended.merge(rfm[["customer_id", "rfm_segment"]], on="customer_id", how="left")
    extended["value_tier"] = extended["value_tier"].fillna(NOT_IN_BASE).astype("string")
    extended["rfm_segment"] = extended["rfm_segment"].fillna(NO_PURCHASE).astype("string")


    def dims(*columns: str) -> pd.DataFrame:
        return extended[["customer_id", *columns]]

    tables: dict[str, pd.DataFrame] = {
        "tier_customers": tiers.merge(rfm[["customer_id", "rfm_segment"]], on="customer_id", how="left"),
        "value_tiers": tier_summary(tiers, cuts, names, shares),
        "migration": migration_matrix(tiers, dims(*attrs), attrs, names),
        "migration_summary": migration_summary(tiers, dims(*attrs), attrs),
        "migration_flags": migration_flags(tiers, rfm[["customer_id", "rfm_segment"]], names),
        "rfm_customers": rfm,
        "rfm_segments": rfm_segments(rfm, dims(*attrs), attrs),
        "bridge_movers": bridge_movers(classified, dims(*attrs, "value_tier", "rfm_segment"), [*attrs, "value_tier", "rfm_segment"], config.tolerance),
    }

    before_current = comparison_period(period, config.period.comparison)
    before_comparison = comparison_period(comparison, config.period.comparison)
    per_customer = behaviour_customers(
        panel,
        starts={"current": s, "comparison": pd.Timestamp(comparison.start)},
        ends={"current": e, "comparison": pd.Timestamp(comparison.end)},
        befores={"current": pd.Timestamp(before_current.start), "comparison": pd.Timestamp(before_comparison.start)},
        rule=rule, cadence=cadence, customer_ids=segments["customer_id"],
    )
    behaviour = behaviour_table(per_customer, dims(*attrs, "value_tier"), [*attrs, "value_tier"])
    tables["behaviour"] = behaviour
    tables["revenue_decomposition"] = revenue_decomposition(behaviour)

    tables["lapse_sensitivity"] = lapse_sensitivity(panel, s, e, rule, cadence, configured_flows=flows, flows_by_rule=flows_by_rule)
    tables["retention"] = retention_table(flows, dims(*attrs, "value_tier"), [*attrs, "value_tier"])

    has_data = has_referral_data(customers)
    referred = referral_customers(flows, customers, panel, s)
    tables["referrals"] = referral_summary(referred, has_data, dims(*attrs), attrs)
    if has_data:
        referrers = top_referrers(referred, customers, panel, e)
        stories = referral_stories(referred, customers, referrers)
        if len(referrers):
            tables["referral_referrers"] = referrers
        if len(stories):
            tables["referral_stories"] = stories

    profits = profit_customers(panel, e)
    tables["profit_customers"] = profits
    tables["profitability"] = profitability_table(profits, dims(*attrs, "value_tier", "rfm_segment"), [*attrs, "value_tier", "rfm_segment"])
    tables["whale_curve"] = whale_curve(profits)
    tables["cohorts"] = cohort_table(panel, period)
    return tables
