"""Email delivery of a board pack, with a ledger so nobody gets the same pack twice.

:func:`send_pack` emails one message per recipient with the PDF attached as
``application/pdf`` and a short plain-text + HTML summary (the headline numbers of
``metrics.json``). Every outcome is recorded in a delivery ledger (JSON lines, rewritten
atomically) in the pack's artifact folder::

    {"recipient", "period", "pack_id", "content_sha256", "sent_at", "result", "error",
     "attempts", "message_id", "location"}

(``location``: the artifact location named in the email, e.g. the published pointer's URL.)

Rules:

- Nothing is sent unless the pack's ``checks.json`` says ``"is_deliverable": true`` and names
  the sha256 of the very PDF being sent (a PDF swapped after its checks is refused), and, when
  the caller gives a config hash, the pack's ``manifest.json`` names that config.
- All addresses are validated (and checked against the allowed domains) before the first
  email goes out, so a typo never leaves a half-sent pack.
- A recipient who already received this exact PDF (same sha256) for this pack and period is
  skipped, unless ``resend=True``; after a partial failure a rerun therefore sends only to
  the recipients that failed.
- Transient failures (4xx replies, dropped or refused connections, timeouts) are retried with
  exponential backoff; permanent ones (5xx, e.g. a rejected recipient) are recorded as failed
  at once.
- A dry run checks all of that, needs complete SMTP settings, builds every message it would
  send (headers, attachment, size) and reports ``would_send``; it sends and writes nothing.
- The SMTP password is never logged, printed or written.

This module does not import Airflow: the DAG converts its SMTP connection into
:class:`SmtpSettings` with :meth:`SmtpSettings.from_connection`.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import json
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from cxpipeline.artifacts import read_json, write_text
from cxpipeline.errors import CheckError, ConfigError, DeliveryError

__all__ = [
    "SmtpSettings",
    "DeliveryReport",
    "LEDGER_NAME",
    "send_pack",
    "validate_recipients",
    "read_ledger",
    "build_message",
    "summary_lines",
]

log = logging.getLogger(__name__)

LEDGER_NAME = "delivery_ledger.jsonl"

# A deliberately strict addr-spec: dot-atom local part and a dotted domain with a TLD.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value.", where="environment",
                      fix=f"Set {name} to true or false.")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail. The password is excluded from ``repr``.

    Parameters
    ----------
    host, port
        SMTP server.
    from_address
        The ``From:`` address (also the envelope sender).
    user, password
        Login, when the server needs one.
    starttls
        Upgrade a plain connection with STARTTLS.
    use_ssl
        Connect with implicit TLS (SMTPS, usually port 465).
    timeout
        Socket timeout in seconds.
    """

    host: str
    port: int
    from_address: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.starttls and self.use_ssl:
            raise ConfigError("SMTP settings ask for both implicit SSL and STARTTLS.",
                              fix="Use SSL (port 465) or STARTTLS (port 587), not both.")
        validate_recipients([self.from_address], what="sender")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SmtpSettings":
        """Read ``CXPIPELINE_SMTP_HOST/PORT/USER/PASSWORD/FROM/STARTTLS/SSL/TIMEOUT``.

        Raises
        ------
        ConfigError
            If the host or sender is missing or a value cannot be read.
        """
        env = os.environ if environ is None else environ
        host = env.get("CXPIPELINE_SMTP_HOST", "").strip()
        sender = env.get("CXPIPELINE_SMTP_FROM", "").strip()
        missing = [name for name, value in (("CXPIPELINE_SMTP_HOST", host),
                                            ("CXPIPELINE_SMTP_FROM", sender)) if not value]
        if missing:
            raise ConfigError(f"SMTP settings missing: {', '.join(missing)}.", where="environment",
                              fix="Export CXPIPELINE_SMTP_HOST and CXPIPELINE_SMTP_FROM "
                                  "(and PORT/USER/PASSWORD/STARTTLS/SSL as needed).")
        use_ssl = _env_bool(env, "CXPIPELINE_SMTP_SSL", False)
        starttls = _env_bool(env, "CXPIPELINE_SMTP_STARTTLS", False)
        port_text = env.get("CXPIPELINE_SMTP_PORT", "").strip()
        try:
            port = int(port_text) if port_text else (465 if use_ssl else 587 if starttls else 25)
            timeout = float(env.get("CXPIPELINE_SMTP_TIMEOUT", "30"))
        except ValueError:
            raise ConfigError("CXPIPELINE_SMTP_PORT / CXPIPELINE_SMTP_TIMEOUT must be numbers.",
                              where="environment", fix="e.g. CXPIPELINE_SMTP_PORT=587") from None
        return cls(host=host, port=port, from_address=sender,
                   user=env.get("CXPIPELINE_SMTP_USER") or None,
                   password=env.get("CXPIPELINE_SMTP_PASSWORD") or None,
                   starttls=starttls, use_ssl=use_ssl, timeout=timeout)

    @classmethod
    def from_connection(cls, *, host: str | None, port: int | None, login: str | None,
                        password: str | None, extra: Mapping[str, Any] | None,
                        default_from: str | None = None) -> "SmtpSettings":
        """Build settings from the fields of an Airflow SMTP connection.

        Mirrors the SMTP provider's extras: ``from_email``, ``disable_ssl``, ``disable_tls``
        (both default to false, i.e. SSL on) and ``timeout``.
        """
        extra = dict(extra or {})

        def flag(name: str) -> bool:
            value = extra.get(name, False)
            return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE

        use_ssl = not flag("disable_ssl")
        starttls = not flag("disable_tls") and not use_ssl
        sender = extra.get("from_email") or default_from
        if not host or not sender:
            raise ConfigError("The SMTP connection needs a host and a from_email extra.",
                              where="Airflow connection",
                              fix="e.g. smtp://mail:1025?from_email=reports%40example.com"
                                  "&disable_ssl=true&disable_tls=true")
        return cls(host=host, port=int(port or (465 if use_ssl else 587 if starttls else 25)),
                   from_address=str(sender), user=login or None, password=password or None,
                   starttls=starttls, use_ssl=use_ssl, timeout=float(extra.get("timeout", 30)))


@dataclass
class DeliveryReport:
    """What one delivery attempt did, per recipient."""

    pack_id: str
    period: str
    content_sha256: str
    ledger_path: str
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already had this exact pack
    failed: dict[str, str] = field(default_factory=dict)  # recipient -> error
    dry_run: bool = False
    would_send: list[str] = field(default_factory=list)  # dry run: who would be sent the pack
    messages: list[dict[str, Any]] = field(default_factory=list)  # dry run: the built messages

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        out = {"pack_id": self.pack_id, "period": self.period,
               "content_sha256": self.content_sha256, "ledger_path": self.ledger_path,
               "sent": list(self.sent), "skipped": list(self.skipped),
               "failed": dict(self.failed), "dry_run": self.dry_run}
        if self.dry_run:
            out["would_send"] = list(self.would_send)
            out["messages"] = [dict(m) for m in self.messages]
        return out

    def raise_for_failures(self) -> None:
        """Raise :class:`DeliveryError` if any recipient failed."""
        if self.failed:
            detail = "; ".join(f"{r}: {e}" for r, e in self.failed.items())
            raise DeliveryError(
                f"{len(self.failed)} of {len(self.failed) + len(self.sent) + len(self.skipped)} "
                f"recipient(s) did not receive pack {self.pack_id} {self.period}: {detail}",
                where=self.ledger_path,
                fix="Fix the addresses or the SMTP server and rerun: only the failed "
                    "recipients are sent to again.")


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


# --- the ledger -------------------------------------------------------------------------

def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    """All ledger rows (oldest first); an absent ledger is empty.

    Raises
    ------
    DeliveryError
        If a line is not JSON (the ledger is never guessed at: it decides who gets mail).
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise DeliveryError("The delivery ledger is corrupt.", where=f"{path}, line {number}",
                                fix="Repair or remove that line; the ledger decides who is "
                                    "sent the pack again.") from None
    return rows


def _write_ledger(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


@contextmanager
def _locked(path: Path):
    """Serialise deliveries of the same pack (two runs must not both send)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the message ------------------------------------------------------------------------

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


# --- SMTP -------------------------------------------------------------------------------

class _Permanent(Exception):
    """A failure that retrying will not fix."""


class _Transient(Exception):
    """A failure worth retrying (4xx, connection trouble)."""


def _classify(exc: BaseException, recipient: str) -> Exception:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (550, b""))
        reason = f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return _Transient(reason) if 400 <= code < 500 else _Permanent(reason)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        reason = f"{exc.smtp_code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return _Transient(reason) if 400 <= exc.smtp_code < 500 else _Permanent(reason)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return _Permanent(f"server does not support this: {exc}")
    if isinstance(exc, (smtplib.SMTPServerDisconnected, OSError)):
        return _Transient(f"{type(exc).__name__}: {exc}")
    return _Permanent(f"{type(exc).__name__}: {exc}")


class _Session:
    """A lazily (re)opened SMTP connection shared by the messages of one delivery."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.use_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            client.ehlo()
            if s.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if s.user:
                client.login(s.user, s.password or "")
        except BaseException:
            self.close()
            client.close()
            raise
        return client

    def send(self, message: EmailMessage, recipient: str) -> None:
        if self.client is None:
            self.client = self._connect()
        try:
            self.client.send_message(message, from_addr=self.settings.from_address,
                                     to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused:
            self.client.rset()  # the connection is still good; clear the envelope
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


_CHECK_STAMP = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _utc_now() -> datetime:
    # Only used to stamp when an email actually left; never for choosing data or periods.
    return datetime.now(timezone.utc)


def _check_deliverable(checks_path: Path) -> dict[str, Any]:
    if not checks_path.exists():
        raise CheckError("The pack has no checks.json, so it was never checked.",
                         where=str(checks_path),
                         fix="Run the check step (cxpipeline run, or the DAG's check task) first.")
    checks = read_json(checks_path)
    if checks.get("is_deliverable") is not True:
        failed = [c.get("name", "?") for c in checks.get("checks", []) if isinstance(c, dict)
                  and (c.get("is_passed") is False or c.get("passed") is False)]
        raise CheckError("The pack failed its pre-delivery checks; nothing was sent.",
                         where=str(checks_path),
                         fix="Fix the failing checks" + (f" ({', '.join(failed)})" if failed else "")
                             + " and rebuild the pack.")
    return checks


def _check_is_checked_pdf(checks: Mapping[str, Any], pdf_path: Path, content_sha256: str) -> None:
    """The PDF must be the very file that passed the checks (publishing refuses the same way)."""
    recorded = checks.get("pdf_sha256")
    if recorded != content_sha256:
        raise CheckError("board_pack.pdf is not the PDF that passed the checks "
                         + ("(it changed after checking)" if recorded else "(checks.json names no PDF)")
                         + "; nothing was sent.",
                         where=str(pdf_path),
                         fix="Rebuild the period (cxpipeline run) so the checks see the PDF that is sent.")


def _message_facts(message: EmailMessage) -> dict[str, Any]:
    """What a dry run reports about a built message (headers, attachment, size)."""
    attachments = [{"filename": part.get_filename(), "content_type": part.get_content_type(),
                    "bytes": len(part.get_content())} for part in message.iter_attachments()]
    return {"to": message["To"], "from": message["From"], "subject": message["Subject"],
            "attachments": attachments, "bytes": len(message.as_bytes())}


def _build(**kwargs: Any) -> EmailMessage:
    try:
        return build_message(**kwargs)
    except ValueError as exc:  # e.g. a header value with a line break
        raise ConfigError(f"The email cannot be built: {exc}.", where="delivery.subject / brand.company_name",
                          fix="Write the subject and company name on one line.") from None


def send_pack(
    pdf_path: str | Path,
    recipients: Iterable[str] | str,
    *,
    period_label: str,
    pack_id: str,
    summary: Mapping[str, Any],
    smtp: SmtpSettings | None,
    ledger_path: str | Path | None = None,
    checks_path: str | Path | None = None,
    resend: bool = False,
    dry_run: bool = False,
    allowed_domains: Sequence[str] = (),
    config_hash: str | None = None,
    subject: str | None = None,
    artifact_location: str | None = None,
    currency: str | None = None,
    locale: str = "en_GB",
    customers: str = "customers",
    retries: int = 3,
    backoff_seconds: float = 2.0,
    clock: Callable[[], datetime] = _utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Email the pack to each recipient who has not already received this exact PDF.

    Parameters
    ----------
    pdf_path
        The pack's ``board_pack.pdf``; its folder holds ``checks.json`` and the ledger.
    recipients
        Addresses (a list, or one string separated by commas).
    period_label, pack_id
        Recorded in the ledger and used in the subject / attachment name.
    summary
        The pack's ``metrics.json`` (its ``headline`` numbers go in the body).
    smtp
        Server settings; may be ``None`` only with ``dry_run``.
    ledger_path, checks_path
        Default to ``delivery_ledger.jsonl`` / ``checks.json`` beside the PDF.
    resend
        Send even to recipients who already received this exact PDF.
    dry_run
        Check everything, build each message that would go out and report ``would_send``
        (with each message's headers, attachment and size); send nothing, write nothing.
    config_hash
        The hash (:func:`cxpipeline.config.config_hash`) of the config this send is for; the
        pack's ``manifest.json`` must name it (a pack of another config is refused).
    currency, locale, customers
        How the headline numbers are formatted and labelled (config currency, locale and
        terminology).
    allowed_domains
        If given, every recipient's domain must be one of these (or a subdomain).
    retries, backoff_seconds
        Retries of a transient failure, waiting ``backoff_seconds * 2**n`` before retry n.
    clock, sleep
        Injected for tests; ``clock`` stamps ``sent_at`` (the moment an email left).

    Returns
    -------
    DeliveryReport
        Sent / skipped / failed recipients. Call ``raise_for_failures()`` to fail loudly.

    Raises
    ------
    CheckError
        If ``checks.json`` is missing or says the pack is not deliverable, the PDF is not the
        one the checks recorded, or ``manifest.json`` names another config than ``config_hash``.
    ConfigError
        If an address is invalid or outside ``allowed_domains``, SMTP settings are missing
        (also for a dry run) or the message cannot be built.
    """
    pdf_path = Path(pdf_path)
    folder = pdf_path.parent
    ledger = Path(ledger_path) if ledger_path else folder / LEDGER_NAME
    checks = _check_deliverable(Path(checks_path) if checks_path else folder / "checks.json")
    if config_hash is not None:
        from cxpipeline.provenance import verify_built_from

        verify_built_from(folder, config_hash)
    addresses = validate_recipients(recipients, allowed_domains)
    if not pdf_path.is_file():
        raise CheckError("The pack PDF does not exist.", where=str(pdf_path),
                         fix="Run the render step first.")
    if smtp is None:
        raise ConfigError("No SMTP settings given" + (" (a dry run checks them too)." if dry_run else "."),
                          fix="Set CXPIPELINE_SMTP_* or an SMTP connection.")
    pdf_bytes = pdf_path.read_bytes()
    content_sha256 = hashlib.sha256(pdf_bytes).hexdigest()
    _check_is_checked_pdf(checks, pdf_path, content_sha256)
    report = DeliveryReport(pack_id=pack_id, period=period_label, content_sha256=content_sha256,
                            ledger_path=str(ledger), dry_run=dry_run)
    subject = subject or f"Board pack {period_label}"
    location = artifact_location or str(folder.resolve())
    attachment_name = f"{pack_id}_{period_label}_board_pack.pdf"

    with _locked(ledger):
        rows = read_ledger(ledger)
        delivered = {row["recipient"].lower() for row in rows
                     if row.get("result") == "sent" and row.get("pack_id") == pack_id
                     and row.get("period") == period_label
                     and row.get("content_sha256") == content_sha256}
        todo = []
        for address in addresses:
            (todo if resend or address.lower() not in delivered else report.skipped).append(address)
        message_args = dict(pdf_bytes=pdf_bytes, sender=smtp.from_address, subject=subject,
                            attachment_name=attachment_name, summary=summary,
                            period_label=period_label, artifact_location=location,
                            currency=currency, locale=locale, customers=customers)
        # Every message is built before the first one leaves: a header that cannot be
        # written stops the whole delivery, not the second half of it.
        # (Stamped with a fixed date: these are checks; each real send is stamped when it leaves.)
        built = [_build(recipient=address, sent_at=_CHECK_STAMP, **message_args) for address in todo]
        if dry_run:
            report.would_send = todo
            report.messages = [_message_facts(message) for message in built]
            log.info("dry run: would send %s %s to %s; skip %s", pack_id, period_label,
                     todo, report.skipped)
            return report

        session = _Session(smtp)
        try:
            for address in todo:
                attempts, error, message_id, sent_at = 0, None, None, None
                while True:
                    attempts += 1
                    sent_at = clock()
                    message = _build(recipient=address, sent_at=sent_at, **message_args)
                    try:
                        session.send(message, address)
                        message_id, error = message["Message-ID"], None
                        break
                    except Exception as exc:  # noqa: BLE001 - classified right below
                        kind = _classify(exc, address)
                        error = str(kind)
                        if isinstance(kind, _Permanent) or attempts > retries:
                            break
                        wait = backoff_seconds * 2 ** (attempts - 1)
                        log.warning("transient SMTP failure for %s (attempt %d of %d): %s; "
                                    "retrying in %.1f s", address, attempts, retries + 1, error, wait)
                        sleep(wait)
                row = {"recipient": address, "period": period_label, "pack_id": pack_id,
                       "content_sha256": content_sha256,
                       "sent_at": sent_at.astimezone(timezone.utc).isoformat(),
                       "result": "sent" if error is None else "failed", "error": error,
                       "attempts": attempts, "message_id": message_id, "location": location}
                rows.append(row)
                _write_ledger(ledger, rows)  # after every email: a crash loses no record
                if error is None:
                    report.sent.append(address)
                    log.info("sent %s %s to %s", pack_id, period_label, address)
                else:
                    report.failed[address] = error
                    log.error("could not send %s %s to %s: %s", pack_id, period_label, address, error)
        finally:
            session.close()
    return report
