"""The email a board pack goes out in: the PDF attached as ``application/pdf`` and a short
plain-text + HTML summary of the headline numbers (``metrics.json``), labelled from the metric
registry."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from cxpipeline.errors import ConfigError

__all__ = ["build_message", "summary_lines", "validate_recipients"]

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
    registry does not know is labelled from its name.
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
        else:
            label, unit = key.replace("_", " "), _unit_from_key(key)
        lines.append((label[:1].upper() + label[1:], _format_value(unit, value, currency, locale)))
    return lines


def build_message(*, pdf_bytes: bytes, recipient: str, sender: str, subject: str,
                  attachment_name: str, summary: Mapping[str, Any], period_label: str,
                  artifact_location: str, sent_at: datetime, currency: str | None = None,
                  locale: str = "en_GB", customers: str = "customers") -> EmailMessage:
    """One email: plain text and HTML summary, the PDF attached as ``application/pdf``."""
    title = summary.get("period_title") or period_label
    lines = summary_lines(summary, currency=currency, locale=locale, customers=customers)
    width = max((len(label) for label, _ in lines), default=0)
    text = "\n".join(
        [f"Board pack for {title}.", "", "Headline:"]
        + [f"  {label.ljust(width)}  {value}" for label, value in lines]
        + ["", f"The PDF is attached. All artifacts: {artifact_location}", ""]
    )
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td style=\"text-align:right\">"
                   f"{html.escape(value)}</td></tr>" for label, value in lines)
    body_html = (
        f"<html><body><p>Board pack for <strong>{html.escape(str(title))}</strong>.</p>"
        f"<table cellpadding=\"4\">{rows}</table>"
        f"<p>The PDF is attached. All artifacts: <code>{html.escape(artifact_location)}</code></p>"
        "</body></html>"
    )
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[1])
    message.set_content(text)
    message.add_alternative(body_html, subtype="html")
    message.add_attachment(pdf_bytes, maintype="application", subtype="pdf",
                           filename=attachment_name)
    return message


