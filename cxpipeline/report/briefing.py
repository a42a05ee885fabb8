"""The executive email's content, written beside the PDF by the same render.

The email that carries the pack (:mod:`cxpipeline.delivery.message`) shows the pack's own
words and numbers: the summary's headline sentence, its five key figures (labelled from the
metric registry, formatted in the pack's locale and currency), the three things that changed
and the trend chart. The renderer writes them once, from the same context the PDF is laid out
from, so the email can never say something the pack does not:

- ``email.json``: plain strings (already formatted) and the brand's colours;
- ``email_trend.png``: the trend page's gained / lost chart as PNG (mail clients show no SVG);
- ``email_logo.png`` / ``.jpg``: the brand's logo (an SVG logo drawn as PNG with CairoSVG:
  mainstream mail clients do not display SVG).

Delivery reads these files; it imports nothing from the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from cxpipeline.artifacts import write_bytes, write_text
from cxpipeline.config import Config
from cxpipeline.metrics.registry import label
from cxpipeline.report.formatting import Formatter
from cxpipeline.report.pages_trend import gain_loss_panels, trend_alt_text

__all__ = ["BRIEFING_NAME", "TREND_IMAGE_NAME", "BRIEFING_FIGURES", "EMAIL_LOGO_HEIGHT", "key_figures",
           "trend_alt_text", "svg_logo_png", "write_briefing"]

#: The email's content in the artifact folder.
BRIEFING_NAME = "email.json"
#: The trend chart the email shows inline.
TREND_IMAGE_NAME = "email_trend.png"
#: The registry metrics of the five key figures, in the order the summary page shows them.
BRIEFING_FIGURES = ("revenue_current", "count_gained", "count_lost", "retention_rate", "ledger_closing")
_LOGO_FILES = {"image/png": "email_logo.png", "image/jpeg": "email_logo.jpg"}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def key_figures(headline: dict, fmt: Formatter, config: Config, comparison: str) -> list[dict]:
    """The summary page's five key figures: registry name, label, value and note (formatted).

    Parameters
    ----------
    headline
        ``metrics.json``'s ``headline`` numbers.
    fmt
        The pack's formatter (locale, currency).
    config
        Terminology for the labels.
    comparison
        The comparison period's label (``2026-Q2``).
    """
    terms = dict(customers=config.terminology.customers, customer=config.terminology.customer)
    previous, current = headline["revenue_previous"], headline["revenue_current"]
    change = current - previous
    change_text = fmt.signed_money(change)
    if previous:
        change_text += f" ({fmt.signed_percent(change / previous)})"
    values = {
        "revenue_current": (fmt.money(current), f"{change_text} vs {comparison}"),
        "count_gained": (fmt.count(headline["count_gained"]),
                         f"worth {fmt.money(headline['value_gained'])} a year"),
        "count_lost": (fmt.count(headline["count_lost"]), f"worth {fmt.money(headline['value_lost'])} a year"),
        "retention_rate": (fmt.percent(headline["retention_rate"]) if headline.get("retention_rate") is not None
                           else "n/a", "of the opening base still active"),
        "ledger_closing": (fmt.count(headline["count_closing"]),
                           f"{fmt.signed_count(headline['count_closing'] - headline['count_opening'])} from "
                           f"{fmt.count(headline['count_opening'])} at the start"),
    }
    return [{"name": name, "label": _sentence_case(label(name, **terms)), "value": values[name][0],
             "note": values[name][1]} for name in BRIEFING_FIGURES]


#: Height in pixels of an SVG logo drawn as PNG: three times the 36 px the email shows it at,
#: so it stays sharp on high-density screens.
EMAIL_LOGO_HEIGHT = 108


def svg_logo_png(svg: bytes) -> bytes:
    """An SVG logo (already checked by :func:`cxpipeline.logo.load_logo`) drawn as a PNG
    :data:`EMAIL_LOGO_HEIGHT` pixels high, for mail clients, which do not display SVG.
    CairoSVG's safe mode loads nothing but ``data:`` URIs: no file or network reads."""
    import cairosvg

    return cairosvg.svg2png(bytestring=svg, output_height=EMAIL_LOGO_HEIGHT, unsafe=False)


def _trend_png(rows: list[dict], fmt: Formatter, config: Config, terms: dict, templates_dir: Path) -> bytes:
    from cxpipeline.report.charts import gain_loss_chart, png_bytes

    brand = config.brand
    panels = gain_loss_panels(rows, fmt, terms)
    return gain_loss_chart(
        [r["period"] for r in rows], panels,
        colors={"grid": "#D5DAE1", "text": "#1B2230", "net": brand.primary_color,
                "gained": brand.positive_color, "lost": brand.negative_color},
        fonts_dir=templates_dir / "fonts", size_inches=(5.6, 3.4), encode=png_bytes,
    )


def write_briefing(folder: str | Path, context: dict, config: Config, templates_dir: str | Path) -> dict:
    """Write ``email.json`` (and the trend chart and raster logo it names) into ``folder``.

    Parameters
    ----------
    folder
        The run's artifact folder (holds ``metrics.json``).
    context
        The pack's template context (:func:`cxpipeline.report.context.build_context`): the
        summary's sentences are taken from it, so the email says what the pack says.
    config
        The pack configuration (brand, terminology, locale, currency).
    templates_dir
        The templates folder (the charts' fonts).

    Returns
    -------
    dict
        What was written to ``email.json``.
    """
    from cxpipeline.artifacts import read_json
    from cxpipeline.logo import load_logo
    from cxpipeline.report.context import headline_sentence

    folder = Path(folder)
    meta, terms = context["meta"], context["terms"]
    metrics = read_json(folder / "metrics.json")
    fmt = Formatter(config.locale, config.currency)
    pages = {section["id"]: section["data"] for section in context["sections"]}
    summary = pages.get("summary")
    headline = metrics["headline"]
    trend = pages.get("trend")
    briefing = {
        "lang": meta["lang"],
        "company": meta["company"],
        "pack_title": meta["pack_title"],
        "period": meta["period"],
        "period_title": meta["period_title"],
        "comparison_text": meta["comparison_text"],
        "colors": {key: context["brand"][key] for key in ("primary", "accent", "positive", "negative",
                                                            "primary_tint")},
        "headline": (summary["headline"] if summary else headline_sentence(headline, fmt, config)) + ".",
        "figures": key_figures(headline, fmt, config, meta["comparison"]),
        "changes_title": "Three things that changed most",
        "changes": list(summary["three_things"]) if summary else [],
        "trend": None,
        "logo": None,
    }
    if trend and trend["rows"]:
        rows = trend["rows"]
        write_bytes(folder / TREND_IMAGE_NAME,
                    _trend_png(rows, fmt, config, terms, Path(templates_dir)))
        briefing["trend"] = {
            "title": f"Across the last {len(rows)} {trend['kind_plural']}",
            "image": TREND_IMAGE_NAME,
            "alt": trend_alt_text(rows, fmt, terms, trend["kind"]),
            "sentences": list(summary["trend_sentences"]) if summary else [],
        }
    logo = load_logo(config)
    if logo is not None and logo[0] == "image/svg+xml":
        logo = ("image/png", svg_logo_png(logo[1]))
    if logo is not None and logo[0] in _LOGO_FILES:
        write_bytes(folder / _LOGO_FILES[logo[0]], logo[1])
        briefing["logo"] = {"image": _LOGO_FILES[logo[0]], "alt": meta["company"]}
    write_text(folder / BRIEFING_NAME, json.dumps(briefing, indent=2, ensure_ascii=False) + "\n")
    return briefing
