"""All metric tables of one run, computed from the extracted inputs.

:func:`compute_tables` is the one place that decides which tables a pack has; the pipeline
writes each returned table as Parquet + CSV and the report reads them back by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cxpipeline.config import Config
from cxpipeline.metrics.breakdown import customer_segments
from cxpipeline.metrics.bridge import classify_customers, revenue_bridge
from cxpipeline.metrics.families import customer_metric_tables
from cxpipeline.metrics.ledger import LapseRule, asset_ledger, customer_flows
from cxpipeline.periods import Period

__all__ = ["MetricInputs", "compute_tables", "headline"]


@dataclass
class MetricInputs:
    """What the extract stage hands to the metrics: the panel and its companions."""

    panel: pd.DataFrame
    customers: pd.DataFrame
    cadence: pd.DataFrame
    period: Period
    comparison: Period


def compute_tables(inputs: MetricInputs, config: Config) -> dict[str, pd.DataFrame]:
    """Compute every metric table for the period; keys are artifact table names."""
    period, comparison = inputs.period, inputs.comparison
    segments = customer_segments(inputs.panel["customer_id"], inputs.customers, config.segments)
    classified = classify_customers(
        inputs.panel, pd.Timestamp(period.start), pd.Timestamp(comparison.start), period_end=pd.Timestamp(period.end)
    )
    flows = customer_flows(
        inputs.panel, pd.Timestamp(period.start), pd.Timestamp(period.end),
        LapseRule.from_config(config.lapse), inputs.cadence,
    )
    tables = {
        "bridge_customers": classified,
        "bridge": revenue_bridge(classified, segments, config.segments),
        "ledger_customers": flows,
        "ledger": asset_ledger(flows, segments, config.segments),
    }
    tables.update(customer_metric_tables(
        inputs.panel, inputs.customers, inputs.cadence, period, comparison, config,
        segments=segments, classified=classified, flows=flows,
    ))
    return tables


def headline(tables: dict[str, pd.DataFrame]) -> dict[str, float | int | None]:
    """The overall numbers the executive summary and the email lead with."""
    bridge = tables["bridge"].query("segment == 'all'").set_index("bridge_class")
    ledger = tables["ledger"].query("segment == 'all'").set_index("ledger_line")
    flows = tables["ledger_customers"]
    opening = int(ledger.at["opening", "count_customers"])
    retained = int((flows["is_opening"] & flows["is_closing"]).sum())
    return {
        "count_gained": int(ledger.at["new", "count_customers"] + ledger.at["reactivated", "count_customers"]),
        "value_gained": round(float(ledger.at["new", "value"] + ledger.at["reactivated", "value"]), 2),
        "count_lost": int(ledger.at["lapsed", "count_customers"]),
        "value_lost": round(float(ledger.at["lapsed", "value"]), 2),
        "count_new": int(ledger.at["new", "count_customers"]),
        "value_new": float(ledger.at["new", "value"]),
        "count_reactivated": int(ledger.at["reactivated", "count_customers"]),
        "value_reactivated": float(ledger.at["reactivated", "value"]),
        "count_opening": opening,
        "count_closing": int(ledger.at["closing", "count_customers"]),
        "revenue_previous": float(bridge.at["previous", "value"]),
        "revenue_current": float(bridge.at["current", "value"]),
        "retention_rate": round(retained / opening, 4) if opening else None,
    }
