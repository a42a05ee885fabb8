"""Report context: the artifact folder's metric tables turned into plain dicts for the templates.

One module of ~610 lines on purpose: the page list (PAGES), the shared context and the board
section's own pages (summary, bridge, ledger, data quality, definitions) are built together;
the other pages' builders live in ``pages_*.py``.

Every number printed in the pack is read here from the tables of the same run (``bridge``,
``ledger``, ``metrics.json``, ``data_quality.json``, ...). Nothing is recomputed from raw data;
the only arithmetic is presentation (a change between two printed numbers, a share of a
printed total) and picking which numbers to mention in the words of the executive summary.

Pages are a list: :data:`PAGES` holds ``Page(id, title, template, builder, metrics)``. A builder
takes ``(tables, config, shared)`` and returns the page's dict, or ``None`` when the run has no
data for it (the page and its TOC entry are then left out). ``metrics`` names the registry
metrics the page prints; the definitions page lists exactly those of the pages in the pack.
Adding a page = a partial in ``templates/pages/`` + a builder + one line in :data:`PAGES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import Config
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.metrics.bridge import BRIDGE_CLASSES, BRIDGE_ORDER
from cxpipeline.metrics.ledger import LEDGER_LINES
from cxpipeline.report.charts import ChartBook, waterfall_chart
from cxpipeline.report.formatting import Formatter, tint
from cxpipeline.report.pages_customers import (
    BEHAVIOUR_METRICS,
    COHORT_METRICS,
    LAPSE_METRICS,
    MIGRATION_METRICS,
    PROFIT_METRICS,
    REFERRAL_METRICS,
    RFM_METRICS,
    build_behaviour,
    build_cohorts,
    build_lapse,
    build_migration,
    build_profitability,
    build_referrals,
    build_rfm,
)
from cxpipeline.report.pages_trend import TREND_METRICS, build_trend, trend_rows, trend_sentences
from cxpipeline.report.pages_model import (
    AT_RISK_METRICS,
    BACKTEST_METRICS,
    VALUE_BACKTEST_METRICS,
    VALUE_METRICS,
    build_at_risk,
    build_backtest,
    build_value_backtest,
    build_value_comparison,
)

__all__ = ["Page", "PAGES", "ArtifactTables", "build_context", "headline_sentence", "sentence_case"]

WATERFALL_CLASSES = ["new", "reactivated", "increased", "decreased", "stopped", "returns_only"]


def sentence_case(text: str) -> str:
    """Capitalise the first letter only (labels start with the terminology, e.g. 'donors ...')."""
    return text[:1].upper() + text[1:]


class ArtifactTables:
    """Read-once access to a run's artifact folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._cache: dict[str, object] = {}

    def has(self, name: str) -> bool:
        return (self.folder / name).exists() or (self.folder / f"{name}.parquet").exists()

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            if not (self.folder / f"{name}.parquet").exists():
                raise InputError(f"The metric table {name!r} is missing.", where=str(self.folder),
                                 fix="Run the compute_metrics stage for this period first.")
            self._cache[name] = read_table(self.folder, name)
        return self._cache[name]  # type: ignore[return-value]

    def json(self, name: str) -> dict:
        if name not in self._cache:
            path = self.folder / name
            if not path.exists():
                raise InputError(f"{name} is missing.", where=str(self.folder),
                                 fix="Run the extract and compute_metrics stages for this period first.")
            self._cache[name] = read_json(path)
        return self._cache[name]  # type: ignore[return-value]


@dataclass(frozen=True)
class Page:
    id: str
    title: str  # may contain {customers} / {Customers}
    template: str
    builder: Callable[[ArtifactTables, Config, dict], dict | None]
    #: registry names of the metrics this page prints (its entries on the definitions page)
    metrics: tuple[str, ...] = ()
    #: in the board section (one page each, read alone); the others go to the appendix
    board: bool = False
    #: a board page's detail (what does not fit its one page) in the appendix under this title;
    #: the template is given ``part`` = ``"board"`` / ``"detail"`` (``"all"`` for other pages)
    detail: str | None = None
    #: the data key that must be non-empty for the detail to have anything to show
    detail_needs: str | None = None


# -- helpers ----------------------------------------------------------------------------

def _labels(config: Config) -> dict[str, str]:
    """Display labels for bridge classes and ledger lines, from the metric registry."""
    from cxpipeline.metrics.registry import label

    terms = dict(customers=config.terminology.customers, customer=config.terminology.customer)
    out = {"previous": label("revenue_previous", **terms), "current": label("revenue_current", **terms)}
    out.update({c: label(f"bridge_{c}", **terms) for c in BRIDGE_CLASSES})
    out.update({f"ledger_{line}": label(f"ledger_{line}", **terms) for line in LEDGER_LINES})
    return {key: sentence_case(value) for key, value in out.items()}


def _segment_title(name: str) -> str:
    return sentence_case(name.replace("_", " "))


def _check_finite(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    for column in columns:
        if frame[column].isna().any():
            raise InputError(f"The metric table {name!r} has missing values in {column!r}.",
                             fix="Rerun compute_metrics; a NaN must never reach the board pack.")


def _pivot(frame: pd.DataFrame, key: str, order: list[str], table: str) -> dict[tuple[str, str], dict]:
    """{(segment, segment_value): {line: {"count": int, "value": float}}} in table order."""
    _check_finite(frame, table, ["count_customers", "value"])
    out: dict[tuple[str, str], dict] = {}
    for row in frame.itertuples(index=False):
        entry = out.setdefault((str(row.segment), str(row.segment_value)), {})
        entry[str(getattr(row, key))] = {"count": int(row.count_customers), "value": float(row.value)}
    for (segment, value), lines in out.items():
        missing = [line for line in order if line not in lines]
        if missing:
            raise InputError(f"The {table} table lacks {missing} for {segment}={value!r}.",
                             fix="Rerun compute_metrics; every segment row needs every line.")
    return out


def _segment_order(frame: pd.DataFrame) -> list[str]:
    seen: list[str] = []
    for segment in frame["segment"]:
        if segment != "all" and segment not in seen:
            seen.append(str(segment))
    return seen


def _logo_data_uri(config: Config) -> str | None:
    # Checked (confined to the config's folder, bounded, decoded) and embedded as data: so the
    # renderer never needs to read files outside templates/.
    from cxpipeline.logo import logo_data_uri

    return logo_data_uri(config)


_PAGE_MM = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}


def _page_setup(size: str, orientation: str) -> dict:
    short, long = _PAGE_MM[size]
    width, height = (long, short) if orientation == "landscape" else (short, long)
    return {"size": size, "orientation": orientation, "width_mm": width, "height_mm": height}


def headline_sentence(headline: dict, fmt: Formatter, config: Config) -> str:
    """'Gained N customers worth X, lost M customers worth Y' with formatted numbers."""
    def noun(count: int) -> str:
        return config.terminology.customer if count == 1 else config.terminology.customers

    return (
        f"Gained {fmt.count(headline['count_gained'])} {noun(headline['count_gained'])} worth "
        f"{fmt.money(headline['value_gained'])}, lost {fmt.count(headline['count_lost'])} "
        f"{noun(headline['count_lost'])} worth {fmt.money(headline['value_lost'])}"
    )


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole and math.isfinite(part / whole) else None


# -- page builders ------------------------------------------------------------------------

def _bridge_steps(lines: dict, labels: dict) -> list[dict]:
    steps = [{"label": labels["previous"], "value": lines["previous"]["value"], "kind": "total"}]
    steps += [{"label": labels[c], "value": lines[c]["value"], "kind": "change"} for c in WATERFALL_CLASSES
              if c != "returns_only" or lines[c]["count"]]
    steps.append({"label": labels["current"], "value": lines["current"]["value"], "kind": "total"})
    return steps


def _waterfall(lines: dict, shared: dict, size: tuple[float, float]) -> str:
    import textwrap

    steps = [dict(s, label=textwrap.fill(s["label"], 12)) for s in _bridge_steps(lines, shared["labels"])]
    fmt: Formatter = shared["fmt"]
    brand = shared["config"].brand
    return shared["charts"].draw(
        waterfall_chart, steps,
        colors={"total": brand.primary_color, "positive": brand.positive_color,
                "negative": brand.negative_color, "grid": "#D5DAE1", "text": "#1B2230"},
        label_money=fmt.money_compact, label_signed=fmt.signed_money_compact,
        fonts_dir=shared["templates_dir"] / "fonts", size_inches=size,
    )


def _overall_waterfall(shared: dict) -> str:
    """The overall bridge's waterfall, drawn once per context: the executive summary and the
    revenue bridge page show the same chart (one matplotlib draw less per render)."""
    if "overall_waterfall" not in shared:
        shared["overall_waterfall"] = _waterfall(shared["bridge"][("all", "All")], shared, (6.3, 3.0))
    return shared["overall_waterfall"]


def _waterfall_alt(shared: dict) -> str:
    """The overall waterfall's description from its numbers (the PDF's alt text for the chart)."""
    fmt: Formatter = shared["fmt"]
    steps = _bridge_steps(shared["bridge"][("all", "All")], shared["labels"])
    parts = [f"{s['label']} {fmt.money(s['value']) if s['kind'] == 'total' else fmt.signed_money(s['value'])}"
             for s in steps]
    return "Revenue bridge waterfall chart: " + "; ".join(parts) + "."


def _three_things(bridge: dict, shared: dict) -> list[str]:
    """The three movements worth a sentence: the largest gain, the largest loss, the segment
    whose revenue changed most."""
    fmt: Formatter = shared["fmt"]
    labels, terms = shared["labels"], shared["terms"]
    overall = bridge[("all", "All")]
    things = []
    movers = [(c, overall[c]) for c in BRIDGE_CLASSES if c != "flat" and round(overall[c]["value"], 2) != 0]
    gains = sorted((m for m in movers if m[1]["value"] > 0), key=lambda m: -m[1]["value"])
    losses = sorted((m for m in movers if m[1]["value"] < 0), key=lambda m: m[1]["value"])
    previous = overall["previous"]["value"]
    for kind, verb in ((gains, "added"), (losses, "took away")):
        if kind:
            cls, line = kind[0]
            share = _ratio(abs(line["value"]), previous)
            share_text = f", {fmt.percent(share)} of the comparison period's revenue" if share is not None else ""
            noun = terms["customer"] if line["count"] == 1 else terms["customers"]
            things.append(f"{labels[cls]} {verb} {fmt.money(abs(line['value']))} "
                          f"({fmt.count(line['count'])} {noun}){share_text}.")
    changes = []
    for (segment, value), lines in bridge.items():
        if segment == "all":
            continue
        delta = lines["current"]["value"] - lines["previous"]["value"]
        changes.append((abs(delta), delta, segment, value, lines))
    if changes:
        _, delta, segment, value, lines = max(changes, key=lambda c: c[0])
        pct = _ratio(delta, lines["previous"]["value"])
        pct_text = f" ({fmt.signed_percent(pct)})" if pct is not None else ""
        direction = "rose" if delta > 0 else "fell"
        things.append(f"{_segment_title(segment)} {value}: revenue {direction} by {fmt.money(abs(delta))}"
                      f"{pct_text}, from {fmt.money(lines['previous']['value'])} to "
                      f"{fmt.money(lines['current']['value'])} — the largest change of any segment.")
    return things


def build_executive_summary(tables: ArtifactTables, config: Config, shared: dict) -> dict:
    headline = shared["metrics"]["headline"]
    fmt: Formatter = shared["fmt"]
    bridge = shared["bridge"]
    overall = bridge[("all", "All")]
    previous, current = overall["previous"]["value"], overall["current"]["value"]
    return {
        "headline": headline_sentence(headline, fmt, config),
        "headline_numbers": headline,
        "revenue_previous": previous,
        "revenue_current": current,
        "revenue_change": current - previous,
        "revenue_change_pct": _ratio(current - previous, previous),
        "base_change": headline["count_closing"] - headline["count_opening"],
        "three_things": _three_things(bridge, shared),
        "trend_sentences": trend_sentences(shared.get("trend_rows") or [], fmt, shared["terms"], config.period.type),
        "trend_count": len(shared.get("trend_rows") or []),
        "trend_kind": config.period.type,
        "chart": _overall_waterfall(shared),
        "chart_alt": _waterfall_alt(shared),
        "tie_out_note": _tie_out_note(tables, fmt),
    }


def _tie_out_note(tables: ArtifactTables, fmt: Formatter) -> str | None:
    """The summary's footnote: does the period's revenue equal the source's total for it?"""
    if not tables.has("data_quality.json"):
        return None
    dq = tables.json("data_quality.json")
    ties = dq.get("tie_out") or []
    if not ties:
        return None
    tie = ties[0]
    if tie["is_revenue_equal"]:
        return (f"Revenue of {tie['period']} ({fmt.money(tie['revenue_used'])}) equals the source's total "
                f"for the period: every row dated in it was used.")
    left_out = tie["revenue_source"] - tie["revenue_used"]
    return (f"Revenue of {tie['period']} ({fmt.money(tie['revenue_used'])}) differs from the source's total "
            f"for the period ({fmt.money(tie['revenue_source'])}) by {fmt.money(left_out)} of rows excluded; "
            "see Data quality.")


def build_bridge(tables: ArtifactTables, config: Config, shared: dict) -> dict:
    overall = shared["bridge"][("all", "All")]
    previous = overall["previous"]["value"]
    rows = []
    for line in BRIDGE_ORDER:
        entry = overall[line]
        rows.append({
            "key": line, "label": shared["labels"][line], "count": entry["count"], "value": entry["value"],
            "share": _ratio(entry["value"], previous) if line not in ("previous",) else None,
            "is_total": line in ("previous", "current"),
        })
    return {"rows": rows, "chart": _overall_waterfall(shared), "chart_alt": _waterfall_alt(shared)}


def build_bridge_by_segment(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    bridge = shared["bridge"]
    segments = [s for s in shared["segment_order"]["bridge"]]
    if not segments:
        return None
    out = []
    for segment in segments:
        rows = []
        for (seg, value), lines in bridge.items():
            if seg == segment:
                rows.append({"name": value, "lines": lines,
                             "change_pct": _ratio(lines["current"]["value"] - lines["previous"]["value"],
                                                  lines["previous"]["value"])})
        total = bridge[("all", "All")]
        out.append({
            "segment": segment, "title": _segment_title(segment), "rows": rows,
            "total": {"name": "Total", "lines": total,
                      "change_pct": _ratio(total["current"]["value"] - total["previous"]["value"],
                                           total["previous"]["value"])},
        })
    return {"columns": [{"key": c, "label": shared["labels"][c]} for c in BRIDGE_ORDER], "segments": out}


def build_ledger(tables: ArtifactTables, config: Config, shared: dict) -> dict:
    ledger = shared["ledger"]
    headline = shared["metrics"]["headline"]
    overall = ledger[("all", "All")]
    signs = {"opening": "", "new": "+", "reactivated": "+", "lapsed": "\u2212", "closing": "="}
    rows = [{"key": line, "sign": signs[line], "label": shared["labels"][f"ledger_{line}"],
             "count": overall[line]["count"], "value": overall[line]["value"],
             "is_total": line in ("opening", "closing")} for line in LEDGER_LINES]
    by_segment = []
    for segment in shared["segment_order"]["ledger"]:
        seg_rows = [{"name": value, "lines": lines,
                     "net": lines["closing"]["count"] - lines["opening"]["count"]}
                    for (seg, value), lines in ledger.items() if seg == segment]
        by_segment.append({"segment": segment, "title": _segment_title(segment), "rows": seg_rows,
                           "total": {"name": "Total", "lines": overall,
                                     "net": overall["closing"]["count"] - overall["opening"]["count"]}})
    lapse = config.lapse
    if lapse.mode == "fixed":
        rule = f"lapsed after {lapse.window_days} days without a purchase"
    else:
        rule = (f"lapsed after {lapse.k:g} times their own median gap between orders "
                f"(at least {lapse.floor_days}, at most {lapse.cap_days} days)")
    return {
        "rows": rows, "segments": by_segment, "lapse_rule": rule,
        "gained": {"count": headline["count_gained"], "value": headline["value_gained"]},
        "lost": {"count": headline["count_lost"], "value": headline["value_lost"]},
        "retention_rate": headline["retention_rate"],
        "columns": [{"key": line, "label": shared["labels"][f"ledger_{line}"]} for line in LEDGER_LINES],
    }


def build_data_quality(tables: ArtifactTables, config: Config, shared: dict) -> dict | None:
    if not tables.has("data_quality.json"):
        return None
    dq = tables.json("data_quality.json")
    cents = lambda v: round(float(v) * 100)  # noqa: E731
    difference = cents(dq["revenue_in"]) - cents(dq["revenue_used"]) - cents(dq["revenue_excluded"])
    reasons = [{"reason": sentence_case(str(r["reason"])), "rows": int(r["rows"]), "revenue": float(r["revenue"]),
                "share_rows": _ratio(int(r["rows"]), dq["rows_in"])} for r in dq["excluded_by_reason"]]
    return {
        "rows_in": int(dq["rows_in"]), "rows_used": int(dq["rows_used"]), "rows_excluded": int(dq["rows_excluded"]),
        "revenue_in": float(dq["revenue_in"]), "revenue_used": float(dq["revenue_used"]),
        "revenue_excluded": float(dq["revenue_excluded"]),
        "used_share": _ratio(int(dq["rows_used"]), dq["rows_in"]),
        "reasons": reasons,
        "reconciles": difference == 0,
        "difference": difference / 100,
        "notes": [str(n) for n in dq.get("notes", [])],
        "rows_after_period_end": dq.get("rows_after_period_end"),
        "tie_out": [{**tie, "role": "this period" if i == 0 else "comparison",
                     "excluded_rows": sum(int(e["rows"]) for e in tie["excluded"]),
                     "excluded_revenue": round(sum(float(e["revenue"]) for e in tie["excluded"]), 2),
                     "reasons": ", ".join(f"{sentence_case(e['reason'])} {e['rows']}" for e in tie["excluded"])}
                    for i, tie in enumerate(dq.get("tie_out") or [])],
        "report_timezone": dq.get("report_timezone") or "UTC",
    }


def build_definitions(tables: ArtifactTables, config: Config, shared: dict) -> dict:
    from cxpipeline.metrics.registry import METRICS

    terms = dict(customers=config.terminology.customers, customer=config.terminology.customer)
    units = {"count": "count", "money": config.currency, "ratio": "%", "days": "days", "number": "number"}
    # Only the metrics the pack prints (declared by the pages built so far), in registry order.
    shown = shared.get("shown_metrics")
    unknown = sorted(set(shown or ()) - set(METRICS))
    if unknown:
        raise InputError(f"Pages declare metrics that are not in the registry: {unknown}.",
                         where="cxpipeline/report PAGES", fix="Define them in cxpipeline/metrics/metrics.yaml.")
    items = []
    for metric in METRICS.values():
        if shown is not None and metric.name not in shown:
            continue
        rendered = metric.render(**terms)
        items.append({"name": metric.name, "label": sentence_case(rendered.label),
                      "definition": sentence_case(rendered.definition), "unit": units.get(metric.unit, metric.unit)})
    return {"metrics": items}


_BRIDGE_METRICS = ("revenue_previous", "revenue_current", *(f"bridge_{c}" for c in BRIDGE_CLASSES))
_LEDGER_METRICS = (*(f"ledger_{line}" for line in LEDGER_LINES), "count_gained", "value_gained",
                   "count_lost", "value_lost", "retention_rate")

PAGES: list[Page] = [
    Page("summary", "Executive summary", "pages/summary.html", build_executive_summary,
         ("revenue_previous", "revenue_current", "count_gained", "value_gained", "count_lost", "value_lost",
          "retention_rate", "ledger_closing", *_BRIDGE_METRICS[2:], "trend_gained", "trend_lost", "trend_net",
          "trend_active_base"), board=True),
    Page("trend", "{Customer} asset trend", "pages/trend.html", build_trend, TREND_METRICS, board=True,
         detail="{Customer} asset trend: revenue movements"),
    Page("bridge", "Revenue bridge", "pages/bridge.html", build_bridge, _BRIDGE_METRICS, board=True),
    Page("bridge-segments", "Revenue bridge by segment", "pages/bridge_segments.html", build_bridge_by_segment,
         _BRIDGE_METRICS),
    Page("ledger", "{Customer} asset ledger", "pages/ledger.html", build_ledger, _LEDGER_METRICS, board=True,
         detail="{Customer} asset ledger by segment", detail_needs="segments"),
    Page("migration", "Value tiers and migration", "pages/migration.html", build_migration, MIGRATION_METRICS,
         board=True, detail="Value tiers and migration: values, flagged paths, tier cuts"),
    Page("rfm", "{Customer} segments (RFM)", "pages/rfm.html", build_rfm, RFM_METRICS),
    Page("behaviour", "Behaviour patterns", "pages/behaviour.html", build_behaviour, BEHAVIOUR_METRICS),
    Page("lapse", "Lapse rule and retention", "pages/lapse.html", build_lapse, LAPSE_METRICS),
    Page("at-risk", "At-risk {customers} and value at risk", "pages/at_risk.html", build_at_risk, AT_RISK_METRICS,
         board=True, detail="At-risk {customers}: the full list and those not to lose"),
    Page("value", "Historical vs predicted value", "pages/value.html", build_value_comparison, VALUE_METRICS),
    Page("profitability", "Profitability", "pages/profitability.html", build_profitability, PROFIT_METRICS),
    Page("referrals", "Referrals", "pages/referrals.html", build_referrals, REFERRAL_METRICS),
    Page("cohorts", "Cohorts", "pages/cohorts.html", build_cohorts, COHORT_METRICS),
    Page("model", "Model backtest", "pages/model.html", build_backtest, BACKTEST_METRICS),
    Page("value-backtest", "Value model backtest", "pages/value_backtest.html", build_value_backtest,
         VALUE_BACKTEST_METRICS),
    Page("data-quality", "Data quality", "pages/data_quality.html", build_data_quality),
    Page("definitions", "Definitions", "pages/definitions.html", build_definitions),
]


def _selected_pages(config: Config) -> list[Page]:
    """The pages of :data:`PAGES` chosen by ``output.sections`` (all when unset), in pack order."""
    wanted = config.output.sections
    if wanted is None:
        return list(PAGES)
    known = [page.id for page in PAGES]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigError(
            f"Unknown section(s) in output.sections: {', '.join(unknown)}.",
            where="config key 'output.sections'",
            fix=f"Use page ids from: {', '.join(known)}.",
        )
    return [page for page in PAGES if page.id in wanted]


def _board_and_appendix(tables: ArtifactTables, config: Config, shared: dict,
                        terms: dict) -> tuple[list[dict], list[dict]]:
    """The board section's and the appendix's sections (plain dicts), in pack order.

    The board section holds the pages marked ``board`` (their one page: ``part`` "board"); the
    appendix holds, in :data:`PAGES` order, each board page's detail and every other page. The
    board edition (``output.edition: board``) has no appendix and builds none of its pages.
    Sections are numbered 01, 02... on the board and A1, A2... in the appendix; without any
    board page the appendix is the pack (numbered 01, 02...) and has no divider.
    """
    full = config.output.edition == "full"
    board: list[dict] = []
    appendix: list[dict] = []
    shared["shown_metrics"] = set()
    pages = _selected_pages(config)
    if not full and not any(page.board for page in pages):
        raise ConfigError("output.edition is 'board' but output.sections names no board page.",
                          where="config key 'output.edition'",
                          fix="Add a board page (" + ", ".join(p.id for p in PAGES if p.board)
                              + ") to output.sections, or set output.edition: full.")
    for page in pages:
        if not (page.board or full):
            continue  # not in this edition: not built
        data = page.builder(tables, config, shared)
        if data is None:
            continue
        shared["shown_metrics"].update(page.metrics)
        section = {"id": page.id, "title": page.title.format(**terms), "template": page.template, "data": data,
                   "part": "all"}
        if not page.board:
            appendix.append(section)
            continue
        board.append(section)
        if page.detail and (page.detail_needs is None or data.get(page.detail_needs)):
            section["part"] = "board"
            if full:
                appendix.append({**section, "id": f"{page.id}-detail", "title": page.detail.format(**terms),
                                 "part": "detail"})
    if not board:
        board, appendix = appendix, []
    for number, section in enumerate(board, start=1):
        section["number"], section["group"] = f"{number:02d}", "board"
    for number, section in enumerate(appendix, start=1):
        section["number"], section["group"] = f"A{number}", "appendix"
    return board, appendix


def build_context(folder: str | Path, config: Config, *, templates_dir: str | Path | None = None,
                  charts: ChartBook | None = None) -> dict:
    """The template context for a run's artifact folder (plain dicts, lists, str, int, float).

    Parameters
    ----------
    folder
        The run's artifact folder (``<output_root>/<pack_id>/<period>/``).
    config
        The pack configuration (brand, terminology, locale, currency, page setup).
    templates_dir
        Template folder (fonts for the charts); defaults to the project's ``templates/``.
    charts
        Where the charts are drawn; by default at once, as ``data:`` URIs in the context. A
        deferred :class:`~cxpipeline.report.charts.ChartBook` leaves tokens to resolve later.

    Raises
    ------
    InputError
        If a required metric table is missing or holds NaN.
    """
    from cxpipeline.report.render import TEMPLATES_DIR

    templates_dir = Path(templates_dir or TEMPLATES_DIR)
    tables = ArtifactTables(folder)
    metrics = tables.json("metrics.json")
    fmt = Formatter(config.locale, config.currency)
    terms = {
        "customer": config.terminology.customer, "customers": config.terminology.customers,
        "Customer": sentence_case(config.terminology.customer),
        "Customers": sentence_case(config.terminology.customers),
    }
    bridge_frame, ledger_frame = tables.table("bridge"), tables.table("ledger")
    shared = {
        "config": config, "fmt": fmt, "terms": terms, "metrics": metrics, "templates_dir": templates_dir,
        "charts": charts if charts is not None else ChartBook(),
        "labels": _labels(config),
        "bridge": _pivot(bridge_frame, "bridge_class", BRIDGE_ORDER, "bridge"),
        "ledger": _pivot(ledger_frame, "ledger_line", LEDGER_LINES, "ledger"),
        "segment_order": {"bridge": _segment_order(bridge_frame), "ledger": _segment_order(ledger_frame)},
    }
    shared["trend_rows"] = trend_rows(tables)  # the trend page and the summary's sentences
    for name in ("bridge", "ledger"):
        if ("all", "All") not in shared[name]:
            raise InputError(f"The {name} table has no overall row (segment 'all').", where=str(folder),
                             fix="Rerun compute_metrics for this period.")

    board, appendix = _board_and_appendix(tables, config, shared, terms)
    sections = board + appendix

    period_kind = config.period.type
    basis = metrics["comparison_basis"]
    basis_text = (f"the previous {period_kind}" if basis == "previous"
                  else f"the same {period_kind} one year earlier")
    brand = config.brand
    return {
        "meta": {
            "company": brand.company_name,
            "pack_title": f"{terms['Customer']} asset board pack",
            "period": metrics["period"],
            "period_title": metrics["period_title"],
            "comparison": metrics["comparison"],
            "comparison_text": f"Compared with {basis_text} ({metrics['comparison']})",
            "segments": [_segment_title(s) for s in metrics.get("segments", [])],
            "locale": config.locale,
            "lang": config.locale.split("_")[0],
            "currency": config.currency,
        },
        "brand": {
            "primary": brand.primary_color, "accent": brand.accent_color,
            "positive": brand.positive_color, "negative": brand.negative_color,
            "primary_tint": tint(brand.primary_color, 0.08), "accent_tint": tint(brand.accent_color, 0.12),
            "logo": _logo_data_uri(config),
        },
        "page_setup": _page_setup(config.output.page_size, config.output.orientation),
        "terms": terms,
        "labels": shared["labels"],
        "edition": config.output.edition,
        "sections": sections,  # every section, board then appendix
        "board_sections": board,
        "appendix_sections": appendix,
    }
