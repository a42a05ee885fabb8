"""Email delivery of a board pack, with a ledger so nobody gets the same pack twice.

:func:`send_pack` emails one message per recipient with the PDF attached as
``application/pdf`` and a short plain-text + HTML summary (the headline numbers of
``metrics.json``). Every outcome is recorded in a delivery ledger (JSON lines, rewritten
atomically) in the pack's artifact folder::

    {"recipient", "unit", "period", "pack_id", "content_sha256", "sent_at", "result", "error",
     "attempts", "message_id", "location", "link"}

(``unit``: the unit of a per-unit pack, ``null`` for the company pack; ``location``: where the
pack's artifacts are, for the operator: the published pointer's URL or the local folder;
``link``: the ``http(s)`` URL of the published PDF the email links, ``null`` when it links
nothing.)

Rules:

- Nothing is sent unless the pack's ``checks.json`` says ``"is_deliverable": true`` and names
  the sha256 of the very PDF being sent (a PDF swapped after its checks is refused), and, when
  the caller gives a config hash, the pack's ``manifest.json`` names that config.
- All addresses are validated (and checked against the allowed domains) before the first
  email goes out, so a typo never leaves a half-sent pack.
- A recipient who already received this exact PDF (same sha256) for this pack, unit and
  period is skipped, unless ``resend=True``; after a partial failure a rerun therefore sends only to
  the recipients that failed.
- Transient failures (4xx replies, dropped or refused connections, timeouts) are retried with
  exponential backoff; permanent ones (5xx, e.g. a rejected recipient) are recorded as failed
  at once. A server that cannot be reached at all (refused connection, timeout) is tried twice
  (at most) for the first recipient only; the others are recorded as failed with the same error
  (which names the host, port and connection) instead of waiting again each: waiting out an
  outage is the caller's retry (Airflow retries the task with backoff).
- A delivery whose failures were all transient raises a ``DeliveryError`` marked transient
  (:func:`cxpipeline.errors.is_transient`): Airflow retries it; a permanent one fails at once.
- A dry run checks all of that, needs complete SMTP settings, builds every message it would
  send (headers, attachment, size) and reports ``would_send``; it sends and writes nothing.
- The SMTP password is never logged, printed or written.

The package: :mod:`.message` builds the email, :mod:`.transport` talks to the SMTP server,
:mod:`.ledger` records who got what; this module holds the rules above (:func:`send_pack`). It
does not import Airflow: the DAG converts its SMTP connection into :class:`SmtpSettings` with
:meth:`SmtpSettings.from_connection`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from cxpipeline.artifacts import read_json
from cxpipeline.delivery.ledger import LEDGER_NAME, locked, read_ledger, write_ledger
from cxpipeline.delivery.message import (
    build_message,
    public_link,
    summary_lines,
    validate_recipients,
)
from cxpipeline.delivery.transport import Permanent, Session, SmtpSettings, Unreachable, classify
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
    transient: list[str] = field(default_factory=list)  # failed recipients worth a later retry
    unit: str | None = None
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
               "failed": dict(self.failed), "dry_run": self.dry_run, "unit": self.unit}
        if self.dry_run:
            out["would_send"] = list(self.would_send)
            out["messages"] = [dict(m) for m in self.messages]
        return out

    def raise_for_failures(self) -> None:
        """Raise :class:`DeliveryError` if any recipient failed (marked transient when every
        failure was transient: a later attempt may succeed)."""
        if self.failed:
            detail = "; ".join(f"{r}: {e}" for r, e in self.failed.items())
            raise DeliveryError(
                f"{len(self.failed)} of {len(self.failed) + len(self.sent) + len(self.skipped)} "
                f"recipient(s) did not receive pack {self.pack_id} {self.period}: {detail}",
                where=self.ledger_path,
                fix="Fix the addresses or the SMTP server and rerun: only the failed "
                    "recipients are sent to again.",
                transient=set(self.failed) <= set(self.transient))


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
    link: str | None = None,
    currency: str | None = None,
    locale: str = "en_GB",
    customers: str = "customers",
    retries: int | None = None,
    backoff_seconds: float = 2.0,
    unit: str | None = None,
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
    artifact_location
        Where the pack's artifacts are (recorded in the ledger, never printed in the email);
        default: the local folder.
    link
        The published PDF's address the email links; only an ``http(s)`` URL is used
        (:func:`cxpipeline.delivery.message.public_link`), anything else links nothing.
    config_hash
        The hash (:func:`cxpipeline.config.config_hash`) of the config this send is for; the
        pack's ``manifest.json`` must name it (a pack of another config is refused).
    currency, locale, customers
        How the headline numbers are formatted and labelled (config currency, locale and
        terminology).
    allowed_domains
        If given, every recipient's domain must be one of these (or a subdomain).
    retries, backoff_seconds
        Retries of a transient failure (default: ``smtp.retries``), waiting
        ``backoff_seconds * 2**n`` before retry n.
    unit
        The unit of a per-unit pack (recorded in the ledger; reruns skip per unit, recipient,
        period and sha256).
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
                            ledger_path=str(ledger), dry_run=dry_run, unit=unit)
    retries = smtp.retries if retries is None else int(retries)
    subject = subject or f"Board pack {period_label}"
    location = artifact_location or str(folder.resolve())
    link = public_link(link)
    attachment_name = f"{pack_id}_{period_label}_board_pack.pdf"

    with locked(ledger):
        rows = read_ledger(ledger)
        delivered = {row["recipient"].lower() for row in rows
                     if row.get("result") == "sent" and row.get("pack_id") == pack_id
                     and row.get("unit") == unit and row.get("period") == period_label
                     and row.get("content_sha256") == content_sha256}
        todo = []
        for address in addresses:
            (todo if resend or address.lower() not in delivered else report.skipped).append(address)
        message_args = dict(pdf_bytes=pdf_bytes, sender=smtp.from_address, subject=subject,
                            attachment_name=attachment_name, summary=summary,
                            period_label=period_label, link=link,
                            currency=currency, locale=locale, customers=customers,
                            folder=folder)  # email.json and its images, written by the render
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

        session = Session(smtp)
        unreachable: str | None = None  # the server could not be reached after every retry
        try:
            for address in todo:
                attempts, error, message_id, sent_at = 0, None, None, None
                is_transient = False
                while unreachable is None:
                    attempts += 1
                    sent_at = clock()
                    message = _build(recipient=address, sent_at=sent_at, **message_args)
                    try:
                        session.send(message, address)
                        message_id, error = message["Message-ID"], None
                        break
                    except Exception as exc:  # noqa: BLE001 - classified right below
                        kind = classify(exc, address, smtp)
                        error, is_transient = str(kind), not isinstance(kind, Permanent)
                        # An unreachable server is tried twice at most here: the caller (Airflow's
                        # task retry, with its own backoff) waits out an outage, not each email.
                        limit = min(retries, 1) if isinstance(kind, Unreachable) else retries
                        if isinstance(kind, Permanent) or attempts > limit:
                            if isinstance(kind, Unreachable):
                                unreachable = error
                            break
                        wait = backoff_seconds * 2 ** (attempts - 1)
                        log.warning("transient SMTP failure for %s (attempt %d of %d): %s; "
                                    "retrying in %.1f s", address, attempts, retries + 1, error, wait)
                        sleep(wait)
                if unreachable is not None and error is None:  # not tried: the server is down
                    error, is_transient, sent_at = unreachable, True, clock()
                row = {"recipient": address, "unit": unit, "period": period_label, "pack_id": pack_id,
                       "content_sha256": content_sha256,
                       "sent_at": sent_at.astimezone(timezone.utc).isoformat(),
                       "result": "sent" if error is None else "failed", "error": error,
                       "attempts": attempts, "message_id": message_id, "location": location,
                       "link": link}
                rows.append(row)
                write_ledger(ledger, rows)  # after every email: a crash loses no record
                if error is None:
                    report.sent.append(address)
                    log.info("sent %s %s to %s", pack_id, period_label, address)
                else:
                    report.failed[address] = error
                    if is_transient:
                        report.transient.append(address)
                    log.error("could not send %s %s to %s: %s", pack_id, period_label, address, error)
        finally:
            session.close()
    return report
