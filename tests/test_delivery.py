"""Email delivery against a real SMTP server on localhost (aiosmtpd)."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta, timezone

import pypdf
import pytest

from cxpipeline.delivery import (
    LEDGER_NAME,
    SmtpSettings,
    read_ledger,
    send_pack,
    summary_lines,
    validate_recipients,
)
from cxpipeline.errors import CheckError, ConfigError, DeliveryError, is_transient
from tests.smtp_fixtures import attachment_of, free_port, start_smtp_server

SUMMARY = {
    "period": "2024-Q2",
    "period_title": "2024-Q2 (1 Apr 2024 - 30 Jun 2024)",
    "comparison": "2024-Q1",
    "headline": {"count_gained": 1234, "value_gained": 56789.5, "count_lost": 321,
                 "value_lost": 9876.25, "retention_rate": 0.875},
}
RECIPIENTS = ["ceo@example.com", "cfo@example.com", "board@example.org"]


def _pdf_bytes(text: str) -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": text})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.fixture()
def pack(tmp_path):
    folder = tmp_path / "demo" / "2024-Q2"
    folder.mkdir(parents=True)
    _write_checked_pdf(folder, _pdf_bytes("pack v1"))
    (folder / "metrics.json").write_text(json.dumps(SUMMARY))
    return folder


def _write_checked_pdf(folder, data: bytes) -> None:
    """A PDF and the checks.json that passed it (its sha256 recorded, as check_pack does)."""
    (folder / "board_pack.pdf").write_bytes(data)
    (folder / "checks.json").write_text(json.dumps(
        {"is_deliverable": True, "checks": [], "pdf_sha256": hashlib.sha256(data).hexdigest()}))


@pytest.fixture()
def server():
    srv = start_smtp_server()
    yield srv
    srv.stop()


class FakeClock:
    def __init__(self):
        self.now = datetime(2024, 7, 1, 6, 0, tzinfo=timezone.utc)

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now


def _send(folder, port, recipients=RECIPIENTS, **kwargs):
    smtp = SmtpSettings(host="127.0.0.1", port=port, from_address="reports@example.com", timeout=5)
    kwargs.setdefault("sleep", lambda seconds: None)
    return send_pack(folder / "board_pack.pdf", recipients, period_label="2024-Q2", pack_id="demo",
                     summary=SUMMARY, smtp=smtp, clock=FakeClock(), currency="GBP", **kwargs)


def test_one_email_per_recipient_with_identical_pdf(pack, server):
    report = _send(pack, server.port)
    assert report.sent == RECIPIENTS and report.ok and report.skipped == []
    handler = server.handler
    assert [rcpts for rcpts, _ in handler.messages] == [[r] for r in RECIPIENTS]
    expected = hashlib.sha256((pack / "board_pack.pdf").read_bytes()).hexdigest()
    for rcpts, message in handler.messages:
        content_type, filename, data, digest = attachment_of(message)
        assert content_type == "application/pdf"
        assert filename == "demo_2024-Q2_board_pack.pdf"
        assert digest == expected == report.content_sha256
        assert data == (pack / "board_pack.pdf").read_bytes()
        assert message["To"] == rcpts[0]
        assert message["Subject"] == "Board pack 2024-Q2"
        text = message.get_body(("plain",)).get_content()
        assert "£56,789.50" in text and "1,234" in text and "87.5%" in text
        assert str(pack.resolve()) not in text and "/tmp" not in text  # never a server path
        assert "£9,876.25" in message.get_body(("html",)).get_content()
    rows = read_ledger(pack / LEDGER_NAME)
    assert [(r["recipient"], r["result"], r["attempts"]) for r in rows] == [
        (r, "sent", 1) for r in RECIPIENTS]
    assert {r["content_sha256"] for r in rows} == {expected}
    assert rows[0]["sent_at"] == "2024-07-01T06:00:01+00:00"
    assert all(r["message_id"] for r in rows)


def test_rerun_sends_nothing_resend_sends_again(pack, server):
    _send(pack, server.port)
    again = _send(pack, server.port)
    assert again.sent == [] and again.skipped == RECIPIENTS
    assert len(server.handler.messages) == 3
    resent = _send(pack, server.port, resend=True)
    assert resent.sent == RECIPIENTS
    assert len(server.handler.messages) == 6
    assert len(read_ledger(pack / LEDGER_NAME)) == 6


def test_changed_pdf_is_a_new_pack(pack, server):
    _send(pack, server.port)
    _write_checked_pdf(pack, _pdf_bytes("pack v2 with corrected data"))  # rebuilt and re-checked
    report = _send(pack, server.port)
    assert report.sent == RECIPIENTS
    assert len(server.handler.messages) == 6


def test_rejected_recipient_is_the_only_one_sent_again(pack, server):
    server.handler.reject = {"cfo@example.com"}
    first = _send(pack, server.port)
    assert first.sent == ["ceo@example.com", "board@example.org"]
    assert list(first.failed) == ["cfo@example.com"] and "550" in first.failed["cfo@example.com"]
    with pytest.raises(DeliveryError, match="cfo@example.com"):
        first.raise_for_failures()
    failed_row = [r for r in read_ledger(pack / LEDGER_NAME) if r["result"] == "failed"]
    assert [(r["recipient"], r["attempts"]) for r in failed_row] == [("cfo@example.com", 1)]

    server.handler.reject = set()
    server.handler.messages.clear()
    second = _send(pack, server.port)
    assert second.sent == ["cfo@example.com"]
    assert second.skipped == ["ceo@example.com", "board@example.org"]
    assert server.handler.recipients() == ["cfo@example.com"]


def test_transient_failure_is_retried_with_backoff(pack, server):
    server.handler.transient_failures = 2
    waits = []
    report = _send(pack, server.port, recipients=["ceo@example.com"], retries=3,
                   backoff_seconds=0.5, sleep=waits.append)
    assert report.sent == ["ceo@example.com"]
    assert waits == [0.5, 1.0]
    assert read_ledger(pack / LEDGER_NAME)[0]["attempts"] == 3
    assert len(server.handler.messages) == 1


def test_server_down_retries_once_names_the_server_and_is_a_transient_failure(pack):
    port = free_port()  # nothing listens here
    waits = []
    report = _send(pack, port, recipients=["ceo@example.com", "cfo@example.com"], retries=2,
                   backoff_seconds=0.01, sleep=waits.append)
    assert report.sent == [] and set(report.failed) == {"ceo@example.com", "cfo@example.com"}
    error = report.failed["ceo@example.com"]
    assert "ConnectionRefusedError" in error
    assert f"127.0.0.1:{port}" in error and "CXPIPELINE_SMTP_" in error  # where to look
    assert report.failed["cfo@example.com"] == error
    # one short retry, for the first recipient only: the task's own retry waits out an outage
    assert waits == [0.01]
    rows = read_ledger(pack / LEDGER_NAME)
    assert [(r["result"], r["attempts"]) for r in rows] == [("failed", 2), ("failed", 0)]
    with pytest.raises(DeliveryError) as raised:
        report.raise_for_failures()
    assert raised.value.transient and is_transient(raised.value)


def test_rejected_recipient_is_a_permanent_failure(pack, server):
    server.handler.reject = {"cfo@example.com"}
    report = _send(pack, server.port, recipients=["ceo@example.com", "cfo@example.com"], retries=2,
                   backoff_seconds=0.01, sleep=lambda s: None)
    assert report.sent == ["ceo@example.com"] and report.transient == []
    with pytest.raises(DeliveryError) as raised:
        report.raise_for_failures()
    assert not raised.value.transient and not is_transient(raised.value)


def test_undeliverable_or_unchecked_pack_is_never_sent(pack, server):
    (pack / "checks.json").write_text(json.dumps({"is_deliverable": False, "checks": [
        {"name": "bridge reconciles", "is_passed": False}]}))
    with pytest.raises(CheckError, match=r"bridge reconciles"):
        _send(pack, server.port)
    (pack / "checks.json").unlink()
    with pytest.raises(CheckError, match="never checked"):
        _send(pack, server.port)
    assert server.handler.messages == []
    assert not (pack / LEDGER_NAME).exists()


def test_bad_address_stops_everything_before_sending(pack, server):
    with pytest.raises(ConfigError, match="not-an-address"):
        _send(pack, server.port, recipients=["ceo@example.com", "not-an-address"])
    with pytest.raises(ConfigError, match="outside the allowed domains"):
        _send(pack, server.port, allowed_domains=["example.com"])
    assert server.handler.messages == []


def test_dry_run_sends_and_writes_nothing(pack, server):
    report = _send(pack, server.port, dry_run=True)
    assert report.dry_run and report.would_send == RECIPIENTS and report.sent == []
    assert server.handler.messages == [] and not (pack / LEDGER_NAME).exists()


def test_validate_recipients_normalises_and_dedupes():
    assert validate_recipients("A@Example.COM, b@example.com;a@example.com") == [
        "A@example.com", "b@example.com"]
    assert validate_recipients(["x@sub.example.com"], ["example.com"]) == ["x@sub.example.com"]
    for bad in ["a@b", "a b@example.com", "Name <a@example.com>", "a@@example.com", "@example.com"]:
        with pytest.raises(ConfigError):
            validate_recipients([bad])
    with pytest.raises(ConfigError, match="No recipients"):
        validate_recipients([])


def test_settings_from_env_and_connection_hide_password():
    settings = SmtpSettings.from_env({
        "CXPIPELINE_SMTP_HOST": "mail.example.com", "CXPIPELINE_SMTP_FROM": "r@example.com",
        "CXPIPELINE_SMTP_USER": "bot", "CXPIPELINE_SMTP_PASSWORD": "s3cret-pw",
        "CXPIPELINE_SMTP_STARTTLS": "true"})
    assert (settings.host, settings.port, settings.starttls, settings.use_ssl) == (
        "mail.example.com", 587, True, False)
    assert "s3cret-pw" not in repr(settings) and settings.password == "s3cret-pw"
    with pytest.raises(ConfigError, match="CXPIPELINE_SMTP_HOST"):
        SmtpSettings.from_env({"CXPIPELINE_SMTP_FROM": "r@example.com"})
    with pytest.raises(ConfigError, match="yes/no"):
        SmtpSettings.from_env({"CXPIPELINE_SMTP_HOST": "h.example.com",
                               "CXPIPELINE_SMTP_FROM": "r@example.com", "CXPIPELINE_SMTP_SSL": "maybe"})
    conn = SmtpSettings.from_connection(host="127.0.0.1", port=1025, login=None, password=None,
                                        extra={"from_email": "r@example.com", "disable_ssl": "true",
                                               "disable_tls": True, "timeout": "10"})
    assert (conn.port, conn.use_ssl, conn.starttls, conn.timeout) == (1025, False, False, 10.0)
    default = SmtpSettings.from_connection(host="smtp.example.com", port=None, login="u",
                                           password="pw", extra={"from_email": "r@example.com"})
    assert (default.port, default.use_ssl, default.starttls) == (465, True, False)


def test_summary_lines_formats_by_kind():
    lines = dict(summary_lines(SUMMARY, currency="EUR", locale="de_DE"))
    assert lines["Customers gained"] == "1.234"
    assert lines["Customers lost"] == "321"
    assert lines["Value gained"] == "56.789,50\xa0€"
    assert lines["Retention rate"] == "87,5\xa0%"
    assert dict(summary_lines(SUMMARY, customers="donors"))["Donors gained"] == "1,234"


def test_cli_send_uses_env_smtp_and_the_ledger(tmp_path, server, monkeypatch, capsys):
    from cxpipeline.cli import main

    config = tmp_path / "pack.yaml"
    config.write_text("pack_id: demo\noutput:\n  root: out\ndelivery:\n  recipients: [ceo@example.com]\n"
                      "  subject: '{company} pack {period}'\n")
    folder = tmp_path / "out" / "demo" / "2024-Q2"
    folder.mkdir(parents=True)
    _write_checked_pdf(folder, _pdf_bytes("cli"))
    (folder / "metrics.json").write_text(json.dumps(SUMMARY))
    from cxpipeline.config import config_hash, load_config

    (folder / "manifest.json").write_text(json.dumps({"config_hash": config_hash(load_config(config))}))
    for key, value in {"CXPIPELINE_SMTP_HOST": "127.0.0.1", "CXPIPELINE_SMTP_PORT": str(server.port),
                       "CXPIPELINE_SMTP_FROM": "reports@example.com",
                       "CXPIPELINE_SMTP_PASSWORD": "never-printed"}.items():
        monkeypatch.setenv(key, value)
    args = ["send", "--config", str(config), "--period", "2024-Q2"]
    assert main(args) == 0
    assert main(args + ["--to", "cfo@example.com,ceo@example.com"]) == 0
    assert server.handler.recipients() == ["ceo@example.com", "cfo@example.com"]
    assert server.handler.messages[0][1]["Subject"] == "Demo Retail Ltd pack 2024-Q2"
    assert main(args + ["--dry-run", "--resend"]) == 0
    assert len(server.handler.messages) == 2
    out = capsys.readouterr()
    assert "never-printed" not in out.out + out.err
    assert main(["send", "--config", str(config), "--period", "2023-Q1"]) == 2
    assert "No built pack for 2023-Q1" in capsys.readouterr().err


def test_connection_retry_limit_and_permanent_vs_transient_errors():
    settings = SmtpSettings.from_connection(host="mail.example.com", port=2525, login=None, password=None,
                                            extra={"from_email": "r@example.com", "retry_limit": "1",
                                                   "disable_ssl": "true", "disable_tls": "true"},
                                            conn_id="smtp_reports")
    assert settings.retries == 1
    assert settings.server == "mail.example.com:2525 (Airflow connection 'smtp_reports')"
    # permanent: the library knows running again gives the same answer
    assert not is_transient(ConfigError("bad period"))
    assert not is_transient(CheckError("failed checks"))
    assert not is_transient(FileNotFoundError("no such file"))
    assert not is_transient(KeyError("a bug"))
    # transient: reaching something failed
    assert is_transient(ConnectionRefusedError(111, "refused"))
    assert is_transient(TimeoutError("timed out"))
    assert is_transient(type("OperationalError", (Exception,), {})("database is starting up"))
