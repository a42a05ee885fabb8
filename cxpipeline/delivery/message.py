"""The email a board pack goes out in: the PDF attached as ``application/pdf`` and an executive
summary an executive will open, in two equivalent parts (plain text and HTML).

The summary is the pack's own: its headline sentence, the five key figures with the metric
registry's labels, the three things that changed most and the trend chart (an inline image,
referenced by ``Content-ID``), all read from ``email.json`` and ``email_trend.png``, which the
renderer writes beside the PDF (:mod:`cxpipeline.report.briefing`); numbers are formatted there,
in the pack's locale and currency. The HTML is table-laid-out with inline CSS in the brand's
colours (what mainstream mail clients render). A link is given only to a published pack with
an ``http(s)`` URL, never to a path on the server that built it.

A pack folder without ``email.json`` (built before it existed) gets the headline numbers of
``metrics.json`` that the registry knows, labelled from it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from cxpipeline.errors import ConfigError
from cxpipeline.links import public_link

__all__ = ["BRIEFING_NAME", "build_message", "read_briefing", "public_link", "summary_lines",
           "validate_recipients"]

#: The email's content in the pack folder (written by cxpipeline.report.briefing).
BRIEFING_NAME = "email.json"
_INLINE_IMAGES = {".png": "png", ".jpg": "jpeg"}

# A deliberately strict addr-spec: dot-atom local part and a dotted domain with a TLD.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def validate_recipients(recipients: Iterable[str], allowed_domains: Sequence[str] = (),
                        *, what: str = "recipient") -> list[str]:
    """Normalised, de-duplicated addresses (order kept); every problem reported at once.

    Raises
    ------
    ConfigError
        If an address is malformed or its domain is not allowed.
    """
    if isinstance(recipients, str):
        recipients = [part for part in re.split(r"[,;\s]+", recipients) if part]
    allowed = [d.strip().lower().lstrip("@") for d in allowed_domains if d.strip()]
    clean: list[str] = []
    problems: list[str] = []
    for raw in recipients:
        name, address = parseaddr(str(raw))
        address = address.strip()
        if not address or not _ADDRESS.match(address) or name:
            problems.append(f"{raw!r} is not a plain email address")
            continue
        local, domain = address.rsplit("@", 1)
        address = f"{local}@{domain.lower()}"
        domain = domain.lower()
        if allowed and not any(domain == d or domain.endswith("." + d) for d in allowed):
            problems.append(f"{address} is outside the allowed domains ({', '.join(allowed)})")
            continue
        if address.lower() not in {a.lower() for a in clean}:
            clean.append(address)
    if problems:
        raise ConfigError(f"Invalid {what} address(es): " + "; ".join(problems) + ".",
                          fix="Write addresses as name@example.com; check delivery.allowed_domains.")
    if what == "recipient" and not clean:
        raise ConfigError("No recipients to send the pack to.",
                          fix="Give recipients (--to, the 'recipients' param or delivery.recipients).")
    return clean


def _registry() -> dict[str, Any]:
    try:
        from cxpipeline.metrics.registry import METRICS
    except ImportError:  # delivery works without the registry (labels from the keys then)
        return {}
    return dict(METRICS)


def _format_value(unit: str, value: Any, currency: str | None, locale: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    from babel.numbers import format_currency, format_decimal, format_percent

    if unit == "count":
        return format_decimal(int(round(value)), locale=locale)
    if unit == "ratio":
        # one decimal, in the locale's own percent pattern (e.g. "87.5%", "87,5 %")
        return format_percent(round(value, 3), locale=locale, decimal_quantization=False)
    if unit == "money" and currency:
        return format_currency(value, currency, locale=locale)
    return format_decimal(value, format="#,##0.##", locale=locale)


def _unit_from_key(key: str) -> str:
    if key.startswith("count_"):
        return "count"
    if key.endswith(("_rate", "_share")):
        return "ratio"
    if key.startswith(("value_", "revenue_")):
        return "money"
    return "number"


def summary_lines(summary: Mapping[str, Any], *, currency: str | None = None,
                  locale: str = "en_GB", customers: str = "customers",
                  customer: str = "customer") -> list[tuple[str, str]]:
    """(label, formatted value) for each headline number of ``metrics.json``, in file order.

    Labels and units come from the metric registry (the same labels as the pack); a key the
    registry does not know is left out (only without the registry is it labelled from its name).
    """
    headline = summary.get("headline", summary)
    registry = _registry()
    lines = []
    for key, value in headline.items():
        if isinstance(value, (dict, list)):
            continue
        if key in registry:
            known = registry[key].render(customers, customer)
            label, unit = known.label, known.unit
        elif registry:  # an internal key is never shown to a reader
            continue
        else:
            label, unit = key.replace("_", " "), _unit_from_key(key)
        lines.append((label[:1].upper() + label[1:], _format_value(unit, value, currency, locale)))
    return lines


def read_briefing(folder: str | Path | None) -> dict[str, Any] | None:
    """``email.json`` of a pack folder, or ``None`` when there is none (an older pack)."""
    if folder is None:
        return None
    path = Path(folder) / BRIEFING_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _inline_image(folder: Path, name: str | None) -> tuple[bytes, str] | None:
    """(bytes, subtype) of an image the briefing names, from the pack folder only."""
    if not name or Path(name).name != name or Path(name).suffix.lower() not in _INLINE_IMAGES:
        return None
    path = folder / name
    if not path.is_file():
        return None
    return path.read_bytes(), _INLINE_IMAGES[Path(name).suffix.lower()]


_FONT = "font-family:Helvetica,Arial,sans-serif;"
_INK, _MUTED, _RULE = "#1B2230", "#5A6270", "#D5DAE1"


def _html_body(briefing: dict[str, Any], *, trend_cid: str | None, logo_cid: str | None,
               link: str | None, attachment_name: str) -> str:
    e = lambda value: html.escape(str(value), quote=True)  # noqa: E731
    colors = briefing["colors"]
    primary = colors["primary"]
    accent_of = {"count_gained": colors["positive"], "count_lost": colors["negative"]}
    # The logo sits on white above the coloured band: logos are drawn for a light background.
    logo = (f'<tr><td style="background:#FFFFFF;padding:16px 24px 12px 24px;">'
            f'<img src="cid:{logo_cid}" alt="{e(briefing["logo"]["alt"])}" height="36" '
            f'style="display:block;height:36px;width:auto;border:0;"></td></tr>') if logo_cid else ""
    figures = "".join(
        f'<tr><td style="padding:10px 12px;border-left:4px solid {e(accent_of.get(f["name"], primary))};'
        f'border-bottom:1px solid {_RULE};{_FONT}">'
        f'<div style="font-size:13px;color:{_MUTED};">{e(f["label"])}</div>'
        f'<div style="font-size:12px;color:{_MUTED};">{e(f["note"])}</div></td>'
        f'<td align="right" style="padding:10px 12px;border-bottom:1px solid {_RULE};{_FONT}'
        f'font-size:22px;font-weight:bold;color:{_INK};white-space:nowrap;">{e(f["value"])}</td></tr>'
        for f in briefing["figures"])
    trend = briefing.get("trend")
    trend_html = ""
    if trend and trend_cid:
        sentences = "".join(f'<p style="margin:6px 0 0 0;{_FONT}font-size:14px;color:{_INK};">{e(s)}</p>'
                            for s in trend.get("sentences", []))
        trend_html = (
            f'<tr><td style="padding:20px 24px 0 24px;{_FONT}">'
            f'<h2 style="margin:0 0 8px 0;font-size:16px;color:{primary};">{e(trend["title"])}</h2>'
            f'<img src="cid:{trend_cid}" width="552" alt="{e(trend["alt"])}" '
            f'style="display:block;width:100%;max-width:552px;height:auto;border:0;">{sentences}</td></tr>')
    changes = "".join(
        f'<tr><td valign="top" style="padding:6px 10px 6px 0;{_FONT}font-size:14px;font-weight:bold;'
        f'color:{e(colors["accent"])};">{n}.</td><td style="padding:6px 0;{_FONT}font-size:14px;'
        f'line-height:20px;color:{_INK};">{e(text)}</td></tr>'
        for n, text in enumerate(briefing.get("changes", []), start=1))
    changes_html = (f'<tr><td style="padding:20px 24px 0 24px;{_FONT}">'
                    f'<h2 style="margin:0 0 4px 0;font-size:16px;color:{primary};">{e(briefing["changes_title"])}</h2>'
                    f'<table role="presentation" cellpadding="0" cellspacing="0" border="0">{changes}</table>'
                    f'</td></tr>') if changes else ""
    link_html = (f' <a href="{e(link)}" style="color:{primary};font-weight:bold;">Open the published pack</a>.'
                 if link else "")
    return (
        f'<!DOCTYPE html><html lang="{e(briefing["lang"])}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{e(briefing["pack_title"])} {e(briefing["period"])}</title></head>'
        f'<body style="margin:0;padding:0;background:#F3F5F8;">'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="background:#F3F5F8;"><tr><td align="center" style="padding:16px 8px;">'
        f'<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;max-width:600px;background:#FFFFFF;border-collapse:collapse;">'
        f'{logo}<tr><td style="background:{primary};padding:20px 24px;border-bottom:4px solid {e(colors["accent"])};{_FONT}">'
        f'<div style="font-size:13px;color:#FFFFFF;opacity:0.85;">{e(briefing["company"])}</div>'
        f'<div style="font-size:20px;font-weight:bold;color:#FFFFFF;">{e(briefing["pack_title"])}</div>'
        f'<div style="font-size:14px;color:#FFFFFF;">{e(briefing["period_title"])}</div></td></tr>'
        f'<tr><td style="padding:20px 24px 4px 24px;{_FONT}">'
        f'<p style="margin:0;font-size:19px;line-height:26px;font-weight:bold;color:{_INK};">'
        f'{e(briefing["headline"])}</p>'
        f'<p style="margin:6px 0 0 0;font-size:13px;color:{_MUTED};">{e(briefing["comparison_text"])}.</p>'
        f'</td></tr>'
        f'<tr><td style="padding:12px 24px 0 24px;">'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;border-collapse:collapse;">{figures}</table></td></tr>'
        f'{trend_html}{changes_html}'
        f'<tr><td style="padding:20px 24px 24px 24px;{_FONT}font-size:13px;line-height:19px;color:{_MUTED};">'
        f'The full pack is attached ({e(attachment_name)}).{link_html}</td></tr>'
        f'</table></td></tr></table></body></html>'
    )


def _text_body(briefing: dict[str, Any], *, link: str | None, attachment_name: str) -> str:
    width = max(len(f["label"]) for f in briefing["figures"])
    lines = [f"{briefing['company']}: {briefing['pack_title']}, {briefing['period_title']}", "",
             briefing["headline"], f"{briefing['comparison_text']}.", ""]
    lines += [f"  {f['label'].ljust(width)}  {f['value']}  ({f['note']})" for f in briefing["figures"]]
    trend = briefing.get("trend")
    if trend:
        lines += ["", trend["title"] + ":"] + [f"  {s}" for s in trend.get("sentences", [])]
        lines += [f"  Chart: {trend['alt']}"]
    if briefing.get("changes"):
        lines += ["", briefing["changes_title"] + ":"]
        lines += [f"  {n}. {text}" for n, text in enumerate(briefing["changes"], start=1)]
    lines += ["", f"The full pack is attached ({attachment_name})."]
    if link:
        lines += [f"The published pack: {link}"]
    return "\n".join(lines) + "\n"


def _fallback_bodies(summary: Mapping[str, Any], period_label: str, *, currency: str | None, locale: str,
                     customers: str, link: str | None, attachment_name: str) -> tuple[str, str]:
    """Plain text and HTML for a pack folder without ``email.json``: registry-labelled numbers."""
    title = summary.get("period_title") or period_label
    lines = summary_lines(summary, currency=currency, locale=locale, customers=customers)
    width = max((len(label) for label, _ in lines), default=0)
    tail = f"The full pack is attached ({attachment_name})." + (f" The published pack: {link}" if link else "")
    text = "\n".join([f"Board pack for {title}.", ""]
                     + [f"  {label.ljust(width)}  {value}" for label, value in lines] + ["", tail, ""])
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td style=\"text-align:right\">"
                   f"{html.escape(value)}</td></tr>" for label, value in lines)
    link_html = f' <a href="{html.escape(link, quote=True)}">The published pack</a>.' if link else ""
    body_html = (f"<html><body><p>Board pack for <strong>{html.escape(str(title))}</strong>.</p>"
                 f"<table cellpadding=\"4\">{rows}</table>"
                 f"<p>The full pack is attached ({html.escape(attachment_name)}).{link_html}</p></body></html>")
    return text, body_html


def build_message(*, pdf_bytes: bytes, recipient: str, sender: str, subject: str,
                  attachment_name: str, summary: Mapping[str, Any], period_label: str,
                  link: str | None, sent_at: datetime, currency: str | None = None,
                  locale: str = "en_GB", customers: str = "customers",
                  folder: str | Path | None = None) -> EmailMessage:
    """One email: the executive summary as plain text and branded HTML (with its inline
    images), the PDF attached as ``application/pdf``.

    Parameters
    ----------
    pdf_bytes, attachment_name
        The checked PDF and the file name it is attached under.
    recipient, sender, subject, sent_at
        The headers.
    summary, period_label, currency, locale, customers
        ``metrics.json`` and how to format it: used only when ``folder`` holds no ``email.json``.
    link
        The published PDF's address; linked only if it is an ``http(s)`` URL (:func:`public_link`):
        never a path, a bucket URL or the published pointer.
    folder
        The pack folder holding ``email.json`` and the images it names.

    Returns
    -------
    EmailMessage
        ``multipart/mixed``: ``multipart/alternative`` (text; ``multipart/related`` of the HTML
        and its ``Content-ID`` images), then the PDF.
    """
    link = public_link(link)
    briefing = read_briefing(folder)
    domain = sender.rsplit("@", 1)[1]
    images: list[tuple[bytes, str, str]] = []
    if briefing is not None:
        folder = Path(folder)  # type: ignore[arg-type]
        trend = _inline_image(folder, (briefing.get("trend") or {}).get("image"))
        logo = _inline_image(folder, (briefing.get("logo") or {}).get("image"))
        trend_cid = logo_cid = None
        if trend is not None:
            trend_cid = make_msgid("trend", domain=domain)
            images.append((*trend, trend_cid))
        if logo is not None:
            logo_cid = make_msgid("logo", domain=domain)
            images.append((*logo, logo_cid))
        text = _text_body(briefing, link=link, attachment_name=attachment_name)
        body_html = _html_body(briefing, trend_cid=trend_cid and trend_cid[1:-1],
                               logo_cid=logo_cid and logo_cid[1:-1], link=link,
                               attachment_name=attachment_name)
    else:
        text, body_html = _fallback_bodies(summary, period_label, currency=currency, locale=locale,
                                           customers=customers, link=link, attachment_name=attachment_name)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    message.add_alternative(body_html, subtype="html")
    html_part = message.get_payload()[1]
    for data, subtype, cid in images:
        html_part.add_related(data, maintype="image", subtype=subtype, cid=cid,
                              disposition="inline")
    message.add_attachment(pdf_bytes, maintype="application", subtype="pdf",
                           filename=attachment_name)
    return message
