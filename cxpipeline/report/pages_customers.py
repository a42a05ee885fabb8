"""Pack pages of the metric families: tiers and migration, RFM segments, behaviour, lapse
sensitivity and retention, referrals, profitability, cohorts.

Every number comes from the run's metric tables (``migration``, ``rfm_segments``, ``behaviour``,
...; see :func:`cxpipeline.metrics.families.customer_metric_tables`); labels come from the
metric registry. The only arithmetic is presentation (picking rows, ordering, a ratio of two
printed numbers). A ratio written as 0 because its denominator is 0 is passed as ``None`` so
the page prints "n/a".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from cxpipeline.metrics.registry import label
from cxpipeline.metrics.rfm import RFM_SEGMENTS
from cxpipeline.metrics.tiers import LAPSED, MOVEMENTS, NEW, NOT_IN_BASE, WON_BACK
from cxpipeline.report.formatting import Formatter, tint

if TYPE_CHECKING:
    from cxpipeline.config import Config
    from cxpipeline.report.context import ArtifactTables

__all__ = [
    "MIGRATION_METRICS", "RFM_METRICS", "BEHAVIOUR_METRICS", "LAPSE_METRICS", "REFERRAL_METRICS",
    "PROFIT_METRICS", "COHORT_METRICS",
    "build_migration", "build_rfm", "build_behaviour", "build_lapse", "build_referrals",
    "build_profitability", "build_cohorts",
]

MIGRATION_METRICS = ("value_tier", "migration_count", "migration_value", "migration_up", "migration_down",
                     "within_tier_rose", "within_tier_steady", "within_tier_fell", "migration_new",
                     "migration_won_back", "migration_lapsed", "flag_top_to_lowest", "flag_top_to_at_risk",
                     "flag_top_to_lapsed")
RFM_METRICS = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment", "rfm_value",
               "movers_increased", "movers_decreased", "movers_within_tolerance")
BEHAVIOUR_METRICS = ("buying_customers", "orders_per_customer", "average_order_value", "days_between_orders",
                     "share_overdue", "share_buying_more_often", "effect_customers", "effect_frequency",
                     "effect_order_value")
LAPSE_METRICS = ("lapse_sensitivity", "count_retained", "retention_rate", "count_gained", "value_gained",
                 "count_lost", "value_lost")
REFERRAL_METRICS = ("referred_new", "referred_share_of_new", "top_referrers", "referral_story")
PROFIT_METRICS = ("margin_12m", "share_unprofitable", "share_value_unprofitable", "whale_curve")
COHORT_METRICS = ("cohort_share_active", "cohort_revenue_retained")

_MOVEMENT_METRIC = {"up": "migration_up", "down": "migration_down", "stayed_rose": "within_tier_rose",
                    "stayed_steady": "within_tier_steady", "stayed_fell": "within_tier_fell",
                    "new": "migration_new", "won_back": "migration_won_back", "lapsed": "migration_lapsed"}
_FLAG_METRIC = {"top_to_lowest": "flag_top_to_lowest", "top_to_at_risk": "flag_top_to_at_risk",
                "top_to_lapsed": "flag_top_to_lapsed"}
TOP_REFERRERS = 10
COHORT_ROWS, COHORT_COLUMNS = 8, 8


def _label(name: str, config: Config) -> str:
    text = label(name, customers=config.terminology.customers, customer=config.terminology.customer)
    return text[:1].upper() + text[1:]


def _or_none(value: float, denominator: float) -> float | None:
    return float(value) if denominator else None


def _segment_title(name: str) -> str:
    titles = {"value_tier": "Value tier at start", "rfm_segment": "RFM segment"}
    return titles.get(name, name.replace("_", " ").capitalize())


def _order_values(segment: str, values: list[str], config: Config) -> list[str]:
    if segment == "value_tier":
        order = [*config.tiers.names, NEW, WON_BACK, NOT_IN_BASE]
    elif segment == "rfm_segment":
        order = [*RFM_SEGMENTS, "No purchase"]
    else:
        return values
    return [v for v in order if v in values] + [v for v in values if v not in order]


def _rows_by(frame: pd.DataFrame, *keys: str) -> dict:
    """``frame``'s rows as plain dicts, keyed by the value of ``keys[0]``, or by the tuple of
    the values of several ``keys``. The pages read ~3,000 cells; pandas' ``.loc`` takes ~50 µs
    for each, a dict well under one (a third of building the pack's context otherwise)."""
    records = frame.to_dict("records")
    if len(keys) == 1:
        return {r[keys[0]]: r for r in records}
    return {tuple(r[k] for k in keys): r for r in records}


def _groups(frame: pd.DataFrame, config: Config) -> list[tuple[str, list[str]]]:
    """(segment, ordered values) for every breakdown of a table, overall first."""
    out = [("all", ["All"])]
    for segment in dict.fromkeys(frame["segment"]):
        if segment != "all":
            values = [str(v) for v in frame.loc[frame["segment"] == segment, "segment_value"].drop_duplicates()]
            out.append((str(segment), _order_values(str(segment), values, config)))
    return out


# -- tiers and migration ------------------------------------------------------------------

def _heat(source: str, to: str, share: float, names: list[str], config: Config) -> str:
    """Heat-map shade of a migration cell: the colour says the direction (up / stayed / down or
    lapsed), its strength the share of the row's customers who took that path."""
    if share <= 0:
        return "transparent"
    brand = config.brand
    if to == LAPSED:
        colour = brand.negative_color
    elif source not in names or names.index(to) < names.index(source):
        colour = brand.positive_color  # gained, or moved to a better tier
    elif names.index(to) == names.index(source):
        colour = brand.primary_color
    else:
        colour = brand.negative_color
    return tint(colour, 0.08 + 0.42 * min(share, 1.0))


def build_migration(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("migration"):
        return None
    names = list(config.tiers.names)
    migration = tables.table("migration").query("segment == 'all'")
    paths = _rows_by(migration, "from_tier", "to_tier")
    matrix = migration.set_index(["from_tier", "to_tier"])  # for the row and column sums
    rows_order, cols_order = [*names, NEW, WON_BACK], [*names, LAPSED]
    rows = []
    for source in rows_order:
        cells = [{"count": int(paths[(source, to)]["count_customers"]),
                  "value": float(paths[(source, to)]["value_lapsed" if to == LAPSED else "value_end"])}
                 for to in cols_order]
        row_total = sum(cell["count"] for cell in cells)
        for to, cell in zip(cols_order, cells):
            cell["heat"] = _heat(source, to, cell["count"] / row_total if row_total else 0.0, names, config)
        part = matrix.loc[source]
        start_value = float(part["value_start"].sum()) if source in names else None
        rows.append({"name": source, "cells": cells, "count": int(part["count_customers"].sum()),
                     "value_start": start_value, "is_outside": source not in names})
    totals = [{"count": int(matrix.xs(to, level="to_tier")["count_customers"].sum()),
               "value": float(matrix.xs(to, level="to_tier")["value_lapsed" if to == LAPSED else "value_end"].sum())}
              for to in cols_order]
    tiers = tables.table("value_tiers")
    tier_rows = [{"name": r.tier, "top_share": float(r.top_share),
                  "cut_value": float(r.cut_value) if math.isfinite(r.cut_value) else None,
                  "is_last": i == len(tiers) - 1, "count_start": int(r.count_start), "value_start": float(r.value_start),
                  "count_end": int(r.count_end), "value_end": float(r.value_end)}
                 for i, r in enumerate(tiers.itertuples(index=False))]
    summary = _rows_by(tables.table("migration_summary").query("segment == 'all'"), "movement")
    movements = [{"key": m, "label": _label(_MOVEMENT_METRIC[m], config),
                  "count": int(summary[m]["count_customers"]), "value_start": float(summary[m]["value_start"]),
                  "value_end": float(summary[m]["value_end"]), "value_change": float(summary[m]["value_change"]),
                  "value_lapsed": float(summary[m]["value_lapsed"])} for m in MOVEMENTS]
    flags = [{"label": _label(_FLAG_METRIC[str(r.path)], config), "from_tiers": str(r.from_tiers), "to": str(r.to),
              "count": int(r.count_customers), "value_start": float(r.value_start), "value_lapsed": float(r.value_lapsed),
              "value_end": float(r.value_end), "is_lapsed": str(r.path) == "top_to_lapsed"}
             for r in tables.table("migration_flags").itertuples(index=False)]
    return {"columns": cols_order, "rows": rows, "totals": totals, "tiers": tier_rows, "movements": movements,
            "flags": flags, "tolerance": config.tolerance,
            "labels": {k: _label(k, config) for k in ("migration_count", "migration_value", "value_tier")}}


# -- RFM ------------------------------------------------------------------------------------

def build_rfm(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("rfm_segments"):
        return None
    rfm = tables.table("rfm_segments").query("segment == 'all'")
    total_count, total_value = int(rfm["count_customers"].sum()), float(rfm["value"].sum())
    rows = [{"name": str(r.rfm_segment), "count": int(r.count_customers), "share_customers": _or_none(r.share_customers, total_count),
             "value": float(r.value), "share_value": _or_none(r.share_value, round(total_value, 2)),
             "recency": _or_none(r.mean_recency_days, r.count_customers)} for r in rfm.itertuples(index=False)]
    movers = tables.table("bridge_movers")
    blocks = []
    for segment in ("value_tier", "rfm_segment"):
        part = _rows_by(movers.loc[movers["segment"] == segment], "segment_value")
        if not part:
            continue
        order = _order_values(segment, [str(v) for v in part], config)
        blocks.append({"title": _segment_title(segment), "rows": [
            {"name": v, "count_increased": int(part[v]["count_increased"]), "value_increased": float(part[v]["value_increased"]),
             "count_decreased": int(part[v]["count_decreased"]), "value_decreased": float(part[v]["value_decreased"]),
             "count_within": int(part[v]["count_within_tolerance"])} for v in order]})
    overall = movers.loc[movers["segment"] == "all"].iloc[0]
    total = {"name": "Total", "count_increased": int(overall["count_increased"]), "value_increased": float(overall["value_increased"]),
             "count_decreased": int(overall["count_decreased"]), "value_decreased": float(overall["value_decreased"]),
             "count_within": int(overall["count_within_tolerance"])}
    return {"rows": rows, "total": {"count": total_count, "value": total_value}, "movers": blocks, "movers_total": total,
            "tolerance": config.tolerance,
            "labels": {k: _label(k, config) for k in RFM_METRICS}}


# -- behaviour ------------------------------------------------------------------------------

def build_behaviour(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("behaviour"):
        return None
    behaviour = tables.table("behaviour")
    keyed = _rows_by(behaviour, "segment", "segment_value", "period")
    blocks = []
    for segment, values in _groups(behaviour, config):
        rows = []
        for value in values:
            entry = {"name": "All" if segment == "all" else value}
            for role in ("current", "comparison"):
                r = keyed[(segment, value, role)]
                entry[role] = {
                    "customers": int(r["count_customers"]),
                    "orders_per_customer": _or_none(r["orders_per_customer"], r["count_customers"]),
                    "average_order_value": _or_none(r["average_order_value"], r["count_orders"]),
                    "days_between_orders": _or_none(r["days_between_orders"], r["count_gaps"]),
                    "share_overdue": _or_none(r["share_overdue"], r["count_with_cadence"]),
                    "share_more_often": _or_none(r["share_buying_more_often"], r["count_bought_both"]),
                }
            rows.append(entry)
        blocks.append({"title": "All " + config.terminology.customers if segment == "all" else _segment_title(segment),
                       "rows": rows})
    dec = tables.table("revenue_decomposition")
    dec_rows = _rows_by(dec, "segment", "segment_value")
    decomposition = []
    for segment, values in _groups(dec, config):
        for value in values:
            r = dec_rows[(segment, value)]
            decomposition.append({
                "name": "All" if segment == "all" else f"{_segment_title(segment)}: {value}", "is_total": segment == "all",
                "revenue_previous": float(r["revenue_previous"]), "revenue_current": float(r["revenue_current"]),
                "change": float(r["change"]), "customers": float(r["customers_effect"]),
                "frequency": float(r["frequency_effect"]), "order_value": float(r["order_value_effect"]),
                "method": str(r["method"]),
            })
    return {"blocks": blocks, "decomposition": decomposition,
            "has_fallback": any(d["method"] != "lmdi" for d in decomposition),
            "labels": {k: _label(k, config) for k in BEHAVIOUR_METRICS}}


# -- lapse sensitivity and retention ----------------------------------------------------------

def build_lapse(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("lapse_sensitivity"):
        return None
    sensitivity = [{"rule": str(r.rule), "opening": int(r.count_opening), "gained": int(r.count_gained),
                    "lapsed": int(r.count_lapsed), "value_lapsed": float(r.value_lapsed), "closing": int(r.count_closing),
                    "value_closing": float(r.value_closing), "is_configured": bool(r.is_configured)}
                   for r in tables.table("lapse_sensitivity").itertuples(index=False)]
    retention = tables.table("retention")
    blocks = []
    for segment, values in _groups(retention, config):
        part = _rows_by(retention.loc[retention["segment"] == segment], "segment_value")
        blocks.append({"title": "All " + config.terminology.customers if segment == "all" else _segment_title(segment),
                       "rows": [{"name": v, "opening": int(part[v]["count_opening"]),
                                 "gained": int(part[v]["count_gained"]), "value_gained": float(part[v]["value_gained"]),
                                 "lost": int(part[v]["count_lost"]), "value_lost": float(part[v]["value_lost"]),
                                 "retained": int(part[v]["count_retained"]),
                                 "rate": _or_none(part[v]["retention_rate"], part[v]["count_opening"])}
                                for v in values]})
    return {"sensitivity": sensitivity, "retention": blocks,
            "labels": {k: _label(k, config) for k in LAPSE_METRICS}}


# -- referrals ------------------------------------------------------------------------------

def _display_name(name, customer_id, config: Config, already_masked: bool = False) -> str:
    if config.delivery.mask_customers:
        if already_masked:  # the extract wrote tokens: never hash them twice
            return str(customer_id)
        # The same salted token as every other customer list of the pack (cxpipeline.masking).
        from cxpipeline.masking import mask_id, masking_salt

        return mask_id(customer_id, masking_salt(config))
    return Formatter.clip(name if name is not None and not pd.isna(name) else customer_id)


def _story(row, fmt, config: Config, already_masked: bool = False) -> str:
    referrer = _display_name(row.referrer_name, row.referrer_id, config, already_masked)
    customer = _display_name(row.customer_name, row.customer_id, config, already_masked)
    orders = int(row.count_orders)
    since = f" since {pd.Timestamp(row.first_order_at):%-d %b %Y}" if not pd.isna(row.first_order_at) else ""
    text = (f"{referrer} referred {customer}, who placed {orders} order{'s' if orders != 1 else ''} worth "
            f"{fmt.money(row.value)}{since}.")
    if int(row.referrer_count_referred_to_date) > 1:
        text += f" {referrer} has brought {int(row.referrer_count_referred_to_date)} {config.terminology.customers} to date."
    return text


def build_referrals(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("referrals"):
        return None
    summary = tables.table("referrals")
    overall = summary.loc[summary["segment"] == "all"].iloc[0]
    has_data = bool(overall["has_referral_data"])
    out = {"has_data": has_data, "labels": {k: _label(k, config) for k in REFERRAL_METRICS},
           "count_new": int(overall["count_new"]), "value_new": float(overall["value_new"]),
           "count_referred": int(overall["count_referred"]), "value_referred": float(overall["value_referred"]),
           "share": _or_none(overall["share_of_new"], overall["count_new"]),
           "share_value": _or_none(overall["share_of_new_value"], round(float(overall["value_new"]), 2)),
           "referrers": [], "stories": [], "segments": []}
    if not has_data:
        return out
    from cxpipeline.masking import is_masked

    masked = is_masked(tables.folder)
    for segment, values in _groups(summary, config)[1:]:
        part = _rows_by(summary.loc[summary["segment"] == segment], "segment_value")
        out["segments"].append({"title": _segment_title(segment), "rows": [
            {"name": v, "count_new": int(part[v]["count_new"]), "count_referred": int(part[v]["count_referred"]),
             "value_referred": float(part[v]["value_referred"]),
             "share": _or_none(part[v]["share_of_new"], part[v]["count_new"])} for v in values]})
    if tables.has("referral_referrers"):
        top = tables.table("referral_referrers").head(TOP_REFERRERS)
        out["referrers"] = [{"name": _display_name(r.referrer_name, r.referrer_id, config, masked),
                             "count": int(r.count_referred),
                             "value": float(r.value_referred), "to_date": int(r.count_referred_to_date)}
                            for r in top.itertuples(index=False)]
    if tables.has("referral_stories"):
        fmt = shared["fmt"]
        for r in tables.table("referral_stories").itertuples(index=False):
            note = None if pd.isna(r.referral_note) or config.delivery.mask_customers else str(r.referral_note)
            out["stories"].append({"text": _story(r, fmt, config, masked), "note": note})
    return out


# -- profitability ----------------------------------------------------------------------------

def _whale_chart(curve: pd.DataFrame, shared: dict) -> str:
    from cxpipeline.report.charts import _style, plt, svg_data_uri

    config, fmt = shared["config"], shared["fmt"]
    with plt.rc_context(_style(shared["templates_dir"] / "fonts")):
        fig, ax = plt.subplots(figsize=(4.8, 3.0))
        x, y = curve["share_customers"].to_numpy(), curve["cumulative_margin_share"].to_numpy()
        ax.plot(x, y, color=config.brand.primary_color, linewidth=1.6, zorder=2)
        ax.axhline(1.0, color="#C9CED6", linewidth=0.8, zorder=1)
        peak = curve.loc[curve["is_peak"]].iloc[0]
        ax.plot([peak["share_customers"]], [peak["cumulative_margin_share"]], "o", color=config.brand.accent_color, zorder=3)
        ax.annotate(f"peak {fmt.percent(peak['cumulative_margin_share'], 0)}", (peak["share_customers"], peak["cumulative_margin_share"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=7.5, color="#1B2230")
        ax.set_xlabel(f"Share of {config.terminology.customers}, most profitable first")
        ax.set_ylabel("Cumulative share of total margin")
        ax.xaxis.set_major_formatter(lambda v, _: fmt.percent(v, 0))
        ax.yaxis.set_major_formatter(lambda v, _: fmt.percent(v, 0))
        ax.grid(axis="y", color="#E3E6EB", linewidth=0.5, zorder=0)
        ax.set_xlim(0, 1)
        return svg_data_uri(fig)


def build_profitability(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("profitability"):
        return None
    table = tables.table("profitability")
    blocks = []
    for segment, values in _groups(table, config):
        part = _rows_by(table.loc[table["segment"] == segment], "segment_value")
        blocks.append({"title": "All " + config.terminology.customers if segment == "all" else _segment_title(segment),
                       "rows": [{"name": v, "count": int(part[v]["count_customers"]), "revenue": float(part[v]["revenue"]),
                                 "margin": float(part[v]["margin"]),
                                 "margin_rate": _or_none(part[v]["margin_rate"], round(float(part[v]["revenue"]), 2)),
                                 "unprofitable": int(part[v]["count_unprofitable"]),
                                 "share_unprofitable": _or_none(part[v]["share_unprofitable"], part[v]["count_customers"]),
                                 "revenue_unprofitable": float(part[v]["revenue_unprofitable"]),
                                 "share_value_unprofitable": _or_none(part[v]["share_value_unprofitable"], round(float(part[v]["revenue"]), 2))}
                                for v in values]})
    overall = table.loc[table["segment"] == "all"].iloc[0]
    curve = tables.table("whale_curve")
    has_curve = len(curve) > 1 and round(float(overall["margin"]), 2) != 0
    peak = curve.loc[curve["is_peak"]].iloc[0]
    fmt, customers = shared["fmt"], config.terminology.customers
    chart_alt = (f"Whale curve: cumulative share of total margin against share of {customers}, most profitable "
                 f"first. It peaks at {fmt.percent(peak['cumulative_margin_share'], 0)} of the margin with the "
                 f"most profitable {fmt.percent(peak['share_customers'], 0)} of {customers} and ends at "
                 f"{fmt.percent(curve['cumulative_margin_share'].iloc[-1], 0)} with all of them.")
    return {"blocks": blocks, "chart_alt": chart_alt, "has_costs": bool(round(float(overall["cost"]) + float(overall["cost_to_serve"]), 2) != 0),
            "chart": shared["charts"].draw(_whale_chart, curve, shared) if has_curve else None,
            "peak": {"share_customers": float(peak["share_customers"]), "share_margin": float(peak["cumulative_margin_share"])},
            "labels": {k: _label(k, config) for k in PROFIT_METRICS}}


# -- cohorts ----------------------------------------------------------------------------------

def build_cohorts(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("cohorts"):
        return None
    cohorts = tables.table("cohorts")
    if cohorts.empty:
        return None
    recent = list(dict.fromkeys(cohorts.sort_values("cohort_start")["cohort"]))[-COHORT_ROWS:]
    width = min(COHORT_COLUMNS, int(cohorts["periods_since"].max()) + 1)
    keyed = _rows_by(cohorts, "cohort", "periods_since")
    rows = []
    for cohort in recent:
        size = int(keyed[(cohort, 0)]["count_cohort"])
        cells = []
        for k in range(width):
            if (cohort, k) in keyed:
                r = keyed[(cohort, k)]
                cells.append({"share_active": float(r["share_active"]),
                              "revenue_retained": _or_none(r["revenue_retained"], r["revenue_first_period"] > 0),
                              "tint": round(min(max(float(r["share_active"]), 0.0), 1.0) * 0.55, 3)})
            else:
                cells.append(None)
        rows.append({"cohort": cohort, "size": size, "revenue_first": float(keyed[(cohort, 0)]["revenue_first_period"]),
                     "cells": cells})
    primary = config.brand.primary_color
    rgb = ", ".join(str(int(primary[i:i + 2], 16)) for i in (1, 3, 5))
    return {"rows": rows, "columns": list(range(width)), "period_kind": config.period.type, "rgb": rgb,
            "labels": {k: _label(k, config) for k in COHORT_METRICS}}
