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
from cxpipeline.metrics.ids import CustomerCodes
from cxpipeline.metrics.ledger import LapseRule, asset_ledger, customer_flows_by_rule
from cxpipeline.metrics.referrals import clean_text
from cxpipeline.metrics.sensitivity import sensitivity_rules
from cxpipeline.metrics.trend import trend_span, trend_tables
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


#: Tables whose customer id column has always been written as plain Python strings (object).
_OBJECT_ID_TABLES = ("tier_customers",)


def _coded_inputs(inputs: MetricInputs) -> tuple[MetricInputs, CustomerCodes]:
    """The inputs with every customer id (and ``referred_by``) replaced by its integer code."""
    customers = inputs.customers
    columns = [inputs.panel["customer_id"]]
    if customers is not None:
        columns.append(customers["customer_id"])
        if "referred_by" in customers.columns:
            columns.append(clean_text(customers["referred_by"]))
    if inputs.cadence is not None:
        columns.append(inputs.cadence["customer_id"])
    codes, coded = CustomerCodes.build(columns)
    coded = iter(coded)
    panel = inputs.panel.assign(customer_id=next(coded))
    if customers is not None:
        customers = customers.assign(customer_id=next(coded))
        if "referred_by" in customers.columns:
            customers["referred_by"] = next(coded)
    cadence = inputs.cadence.assign(customer_id=next(coded)) if inputs.cadence is not None else None
    return MetricInputs(panel, customers, cadence, inputs.period, inputs.comparison), codes


def compute_tables(inputs: MetricInputs, config: Config) -> dict[str, pd.DataFrame]:
    """Compute every metric table for the period; keys are artifact table names.

    The metrics run on integer customer codes (see :mod:`cxpipeline.metrics.ids`); the
    returned tables carry the string ids.
    """
    coded, codes = _coded_inputs(inputs)
    tables = _compute_tables(coded, config)
    out = {}
    for name, table in tables.items():
        table = codes.decode_table(table)
        if name in _OBJECT_ID_TABLES:
            table["customer_id"] = table["customer_id"].astype(object)
        out[name] = table
    return out


def _compute_tables(inputs: MetricInputs, config: Config) -> dict[str, pd.DataFrame]:
    """The tables from inputs whose ids are codes or strings alike (ids come out as they went in)."""
    period, comparison = inputs.period, inputs.comparison
    segments = customer_segments(inputs.panel["customer_id"], inputs.customers, config.segments)
    classified = classify_customers(
        inputs.panel, pd.Timestamp(period.start), pd.Timestamp(comparison.start), period_end=pd.Timestamp(period.end)
    )
    # the configured rule's flows and the sensitivity table's other rules from one pass
    rule = LapseRule.from_config(config.lapse)
    rules = sensitivity_rules(rule)
    flows_by_rule = dict(zip(rules, customer_flows_by_rule(
        inputs.panel, pd.Timestamp(period.start), pd.Timestamp(period.end), rules, inputs.cadence)))
    flows = flows_by_rule[rule]
    tables = {
        "bridge_customers": classified,
        "bridge": revenue_bridge(classified, segments, config.segments),
        "ledger_customers": flows,
        "ledger": asset_ledger(flows, segments, config.segments),
    }
    tables.update(_trend(inputs, config, rule))
    tables.update(customer_metric_tables(
        inputs.panel, inputs.customers, inputs.cadence, period, comparison, config,
        segments=segments, classified=classified, flows=flows, flows_by_rule=flows_by_rule,
    ))
    return tables


def _trend(inputs: MetricInputs, config: Config, rule: LapseRule) -> dict[str, pd.DataFrame]:
    """The trend tables: this period's and the earlier periods' overall ledger and bridge."""
    instants = None
    if rule.mode == "personal" and inputs.cadence is not None:
        instants = pd.to_datetime(inputs.cadence["as_of"]).unique()
    span = trend_span(inputs.period, config.trend.periods, config.period.comparison,
                      inputs.panel["period_start"].min() if len(inputs.panel) else None, instants)
    ledger, bridge = trend_tables(inputs.panel, span.periods, config.period.comparison, rule, inputs.cadence)
    return {"trend_ledger": ledger, "trend_bridge": bridge, "trend_span": span.table()}


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
        # full precision: rounding here and again when formatted made 93.45% show as 93.4%
        # in the summary and 93.5% on the lapse page (which divides the raw counts)
        "retention_rate": retained / opening if opening else None,
    }
