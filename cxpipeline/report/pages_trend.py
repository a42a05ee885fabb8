"""The trend page and the summary's trend sentences: where the customer asset is heading.

Every number comes from the run's ``trend_ledger`` and ``trend_bridge`` tables (see
:mod:`cxpipeline.metrics.trend`: per period, the overall rows of that period's own ledger and
bridge) and, for the reporting period only, the ``scores`` table's value at risk. The only
arithmetic is presentation: gained = new + won back, net = gained - lost, a revenue change =
current - previous, and the streaks and records the sentences name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from cxpipeline.errors import InputError
from cxpipeline.metrics.bridge import BRIDGE_CLASSES
from cxpipeline.metrics.trend import span_note

if TYPE_CHECKING:
    from cxpipeline.config import Config
    from cxpipeline.report.context import ArtifactTables

__all__ = ["TREND_METRICS", "MOVEMENT_CLASSES", "trend_rows", "trend_sentences", "build_trend", "ordinal",
           "gain_loss_panels", "trend_alt_text", "movement_alt_text"]

TREND_METRICS = ("trend_gained", "trend_lost", "trend_net", "trend_active_base", "trend_revenue",
                 "trend_revenue_movement", "trend_value_at_risk", "count_gained", "value_gained",
                 "count_lost", "value_lost", "ledger_closing")
#: bridge classes drawn in the movement chart (``flat`` moves nothing)
MOVEMENT_CLASSES = [c for c in BRIDGE_CLASSES if c != "flat"]


def ordinal(number: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``21st``."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def _check(frame: pd.DataFrame, name: str) -> None:
    if frame.empty or frame[["count_customers", "value"]].isna().to_numpy().any():
        raise InputError(f"The metric table {name!r} is empty or has missing values.",
                         fix="Rerun compute_metrics; a NaN must never reach the board pack.")


def trend_rows(tables: ArtifactTables) -> list[dict] | None:
    """One plain dict per period of the trend (oldest first), or ``None`` without trend tables."""
    if not (tables.has("trend_ledger") and tables.has("trend_bridge")):
        return None
    ledger, bridge = tables.table("trend_ledger"), tables.table("trend_bridge")
    _check(ledger, "trend_ledger")
    _check(bridge, "trend_bridge")
    lines = {(r.period, r.ledger_line): (int(r.count_customers), float(r.value)) for r in ledger.itertuples()}
    classes = {(r.period, r.bridge_class): (int(r.count_customers), float(r.value)) for r in bridge.itertuples()}
    comparisons = dict(zip(bridge["period"], bridge["comparison"]))
    rows = []
    for period in dict.fromkeys(ledger["period"]):
        line = lambda name: lines[(period, name)]  # noqa: E731
        cls = lambda name: classes[(period, name)]  # noqa: E731
        gained_count = line("new")[0] + line("reactivated")[0]
        gained_value = round(line("new")[1] + line("reactivated")[1], 2)
        lost_count, lost_value = line("lapsed")
        previous, current = cls("previous")[1], cls("current")[1]
        rows.append({
            "period": str(period), "comparison": str(comparisons[period]),
            "count_new": line("new")[0], "count_reactivated": line("reactivated")[0],
            "count_gained": gained_count, "value_gained": gained_value,
            "count_lost": lost_count, "value_lost": lost_value,
            "net_count": gained_count - lost_count, "net_value": round(gained_value - lost_value, 2),
            "count_opening": line("opening")[0], "count_closing": line("closing")[0],
            "value_closing": line("closing")[1],
            "revenue_previous": previous, "revenue_current": current,
            "revenue_change": round(current - previous, 2),
            "movements": {c: cls(c)[1] for c in BRIDGE_CLASSES},
        })
    return rows


def _plural(word: str, count: int) -> str:
    return word if count == 1 else f"{word}s"


def trend_sentences(rows: list[dict], fmt, terms: dict, kind: str, limit: int = 2) -> list[str]:
    """The summary's sentences about the trend (at most ``limit``, short: they share the page).

    In order: the run of periods in which the asset lost (or gained) more value than it gained
    (or lost); a record among the periods shown (largest or smallest intake of new
    {customers}, most or fewest lost); failing those, how the active base moved over the
    periods shown (the summary's tile already gives this period's change).
    """
    if len(rows) < 2:
        return []
    out = []
    now, n = rows[-1], len(rows)
    asset = f"The {terms['customer']} asset"

    def sign(row: dict) -> int:
        return (row["net_value"] > 0) - (row["net_value"] < 0)

    if sign(now):
        run = 0
        for row in reversed(rows):
            if sign(row) != sign(now):
                break
            run += 1
        verb = "lost more value than it gained" if sign(now) < 0 else "gained more value than it lost"
        if run >= 2:
            out.append(f"{asset} {verb} for the {ordinal(run)} {kind} running.")
        else:
            before = rows[-2]
            after = ("after breaking even in" if not sign(before)
                     else "after gaining more in" if sign(now) < 0 else "after losing more in")
            out.append(f"{asset} {verb} in {now['period']}, {after} {before['period']}.")
    if n >= 3:
        others, span = rows[:-1], f"{n} {_plural(kind, n)}"
        records = []
        for key, most, least in (("count_new", f"The largest intake of new {terms['customers']}",
                                  f"The smallest intake of new {terms['customers']}"),
                                 ("count_lost", f"The most {terms['customers']} lost",
                                  f"The fewest {terms['customers']} lost")):
            value = now[key]
            if value > max(r[key] for r in others):
                records.append(f"{most} in {span}: {fmt.count(value)}.")
            elif value < min(r[key] for r in others):
                records.append(f"{least} in {span}: {fmt.count(value)}.")
        out.extend(records[:1])
    if out:
        return out[:limit]
    first = rows[0]
    change = now["count_closing"] - first["count_opening"]
    out.append(f"Active {terms['customers']}: {fmt.count(now['count_closing'])}, {fmt.signed_count(change)} "
               f"since the start of {first['period']}.")
    return out[:limit]


def _value_at_risk(tables: ArtifactTables) -> dict | None:
    """The reporting period's value at risk (the at-risk page's total), when the model ran."""
    if not (tables.has("scores") and tables.has("model_report.json")):
        return None
    scores = tables.table("scores")
    if "value_at_risk" not in scores.columns or scores["value_at_risk"].isna().any():
        raise InputError("The scores table has missing values in 'value_at_risk'.", where=str(tables.folder),
                         fix="Rerun score_customers; a NaN must never reach the board pack.")
    return {"value": round(float(scores["value_at_risk"].sum()), 2), "count": int(len(scores))}


def _charts(rows: list[dict], shared: dict) -> tuple[str, str]:
    from cxpipeline.report.charts import gain_loss_chart, movement_chart
    from cxpipeline.report.formatting import tint as _mix

    fmt, brand, terms = shared["fmt"], shared["config"].brand, shared["terms"]
    labels = [r["period"] for r in rows]
    base = {"grid": "#D5DAE1", "text": "#1B2230", "net": brand.primary_color}
    panels = gain_loss_panels(rows, fmt, terms)
    gain_loss = shared["charts"].draw(
        gain_loss_chart, labels, panels,
        colors={**base, "gained": brand.positive_color, "lost": brand.negative_color},
        fonts_dir=shared["templates_dir"] / "fonts",
    )
    shades = {"new": (brand.positive_color, 1.0), "reactivated": (brand.positive_color, 0.7),
              "increased": (brand.positive_color, 0.42), "decreased": (brand.negative_color, 0.42),
              "stopped": (brand.negative_color, 1.0), "returns_only": ("#8A93A3", 0.8)}
    series = [{"label": shared["labels"][c], "values": [r["movements"][c] for r in rows],
               "color": _mix(*shades[c])} for c in MOVEMENT_CLASSES]
    movement = shared["charts"].draw(
        movement_chart, labels, series, [r["revenue_change"] for r in rows],
        colors=base, label_value=fmt.money_compact, fonts_dir=shared["templates_dir"] / "fonts",
        net_label="Revenue change",
    )
    return gain_loss, movement


def trend_alt_text(rows: list[dict], fmt, terms: dict, kind: str) -> str:
    """The gained-vs-lost chart's description from its numbers (the PDF's alt text for screen
    readers, and the email's for blocked images)."""
    first, last = rows[0], rows[-1]
    return (f"Bar chart of {terms['customers']} gained and lost per {kind}, {first['period']} to "
            f"{last['period']}, in count and in 12-month value. In {last['period']}: "
            f"{fmt.count(last['count_gained'])} gained worth {fmt.money(last['value_gained'])}, "
            f"{fmt.count(last['count_lost'])} lost worth {fmt.money(last['value_lost'])}, "
            f"net {fmt.signed_count(last['net_count'])} ({fmt.signed_money(last['net_value'])}).")


def movement_alt_text(rows: list[dict], fmt, labels: dict[str, str], kind: str) -> str:
    """The revenue-movement chart's description from its numbers: the span, then the latest
    period's movement per class and its revenue change."""
    first, last = rows[0], rows[-1]
    moves = ", ".join(f"{labels[c]} {fmt.signed_money(last['movements'][c])}" for c in MOVEMENT_CLASSES)
    return (f"Stacked bar chart of revenue movement by class per {kind}, {first['period']} to {last['period']}. "
            f"In {last['period']}: {moves}; revenue change {fmt.signed_money(last['revenue_change'])}.")


def build_trend(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    """The trend page: gained vs lost per period, revenue movements by class, the table."""
    rows = shared.get("trend_rows")
    if not rows:
        return None
    kind = config.period.type
    span = tables.table("trend_span").iloc[0] if tables.has("trend_span") else None
    note = None
    if span is not None:
        note = span_note(kind, int(span["requested"]), len(rows), str(span["reason"]), rows[0]["period"],
                         str(span["first_data"]), customer=shared["terms"]["customer"])
    gain_loss, movement = _charts(rows, shared)
    var = _value_at_risk(tables)
    period = rows[-1]["period"]
    if var is not None:
        var_note = (f"Value at risk at the end of {period}: {shared['fmt'].money(var['value'])} over "
                    f"{shared['fmt'].count(var['count'])} scored {shared['terms']['customers']} (see the at-risk page). "
                    f"It is given for {period} only: this run fitted the at-risk model once, at the end of "
                    f"{period}, so there is no value at risk for the earlier {kind}s.")
    else:
        var_note = (f"No at-risk model ran for this pack, so no value at risk is shown for any {kind}.")
    basis = config.period.comparison
    comparison_text = (f"the previous {kind}" if basis == "previous" else f"the same {kind} a year earlier")
    return {
        "rows": rows,
        "count": len(rows),
        "kind": kind,
        "kind_plural": _plural(kind, len(rows)),
        "note": note,
        "chart_gain_loss": gain_loss,
        "chart_movement": movement,
        "chart_gain_loss_alt": trend_alt_text(rows, shared["fmt"], shared["terms"], kind),
        "chart_movement_alt": movement_alt_text(rows, shared["fmt"], shared["labels"], kind),
        "value_at_risk": var,
        "value_at_risk_note": var_note,
        "comparison_text": comparison_text,
        "movement_rows": [{"key": c, "label": shared["labels"][c],
                           "cells": [r["movements"][c] for r in rows]} for c in MOVEMENT_CLASSES],
    }


def gain_loss_panels(rows: list[dict], fmt, terms: dict) -> list[dict]:
    """The two panels of the gained-vs-lost chart (count, then value), for the trend page and
    the executive email alike."""
    return [
        {"title": f"{terms['Customers']} gained and lost", "gained": [r["count_gained"] for r in rows],
         "lost": [r["count_lost"] for r in rows], "net": [r["net_count"] for r in rows], "label_value": fmt.count},
        {"title": "Value gained and lost (12 months)", "gained": [r["value_gained"] for r in rows],
         "lost": [r["value_lost"] for r in rows], "net": [r["net_value"] for r in rows],
         "label_value": fmt.money_compact},
    ]
