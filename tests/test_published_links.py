"""The email links the published PDF itself, over http(s), and nothing else; unit packs are
published like the company pack, each under its own ``<pack_id>--<unit>/<period>/`` with its own
``LATEST.json``, and each unit's email links its own PDF.

Real components: packs built from the demo data, a ``file://`` artifact store (as in
tests/test_object_storage.py) served over HTTP by a local web server (what
``$CXPIPELINE_ARTIFACT_PUBLIC_URL`` names), and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.request
from html import unescape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cxpipeline import runs
from cxpipeline.delivery import SmtpSettings
from cxpipeline.errors import ConfigError
from cxpipeline.publish import read_pointer, read_published
from tests.smtp_fixtures import attachment_of

PACK = ("pack_id: links\nsource: {kind: demo, customers: 400, years: 2}\n"
        "output: {root: out, sections: [summary, bridge]}\n"
        "delivery: {recipients: [board@example.com], allowed_domains: [example.com]}\n"
        "units: {by: region, recipients: {West: [west@example.com]}}\n")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """A file:// store and an HTTP server serving it (its public address)."""
    store = tmp_path_factory.mktemp("store")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(store)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield store, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def built(tmp_path_factory, web):
    """The company pack and the West unit's pack of 2026-Q2, each published to the store."""
    store, public = web
    root = tmp_path_factory.mktemp("links")
    pack = root / "links.yaml"
    pack.write_text(PACK)
    out = root / "out"
    checked = runs.start_run(pack, period="2026-Q2", output_root=out)
    for stage in ("validate", "metrics", "model", "render", "check"):
        checked = runs.run_stage(stage, pack, checked, out)
    company = runs.publish(checked, store.as_uri(), public_url=public, published_at="2026-07-01T06:00:00+00:00")
    [west] = runs.run_units(pack, "2026-Q2", out, only="West")
    unit = runs.build_unit(pack, "2026-Q2", west, out, store=store.as_uri(), public_url=public,
                           published_at="2026-07-01T06:00:00+00:00")
    return pack, out, company, unit


def _deliver(pack, folder, server, **kwargs):
    server.handler.messages.clear()
    settings = SmtpSettings(host="127.0.0.1", port=server.port, from_address="reports@example.com", timeout=5)
    report = runs.deliver(pack, folder, smtp=settings, resend=True, backoff_seconds=0, **kwargs)
    assert report["failed"] == {} and report["sent"]
    [(_, message)] = server.handler.messages
    return message


def _bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), unescape(message.get_body(("html",)).get_content())


def _no_path_nor_pointer(message, *folders: Path) -> None:
    for body in _bodies(message):
        assert "LATEST.json" not in body and "file:" not in body and "/tmp" not in body
        for folder in folders:
            assert str(folder) not in body and str(Path(folder).resolve()) not in body


def test_the_email_links_the_published_pdf_over_http_and_it_opens(built, web, smtp_sink):
    pack, out, company, _ = built
    store, public = web
    published = company["published"]
    link = published["pdf_link"]
    assert link == f"{public}/links/2026-Q2/{published['version']}/board_pack.pdf"
    message = _deliver(pack, company["folder"], smtp_sink, published=published)
    text, html = _bodies(message)
    assert f'href="{link}"' in html and f"The published pack: {link}" in text
    _no_path_nor_pointer(message, out, store)
    # the link opens the very PDF that is attached, checked and published
    with urllib.request.urlopen(link, timeout=10) as response:
        opened = response.read()
    pdf = Path(company["folder"], "board_pack.pdf").read_bytes()
    assert opened == pdf == attachment_of(message)[2] == read_published(store / "links" / "2026-Q2")
    # the ledger keeps the pointer for the operator and the link the email gave
    row = json.loads(Path(company["folder"], "delivery_ledger.jsonl").read_text().splitlines()[-1])
    assert row["location"] == published["pointer"] and row["link"] == link


def test_without_publishing_or_without_a_web_address_the_email_links_nothing(built, smtp_sink):
    pack, out, company, _ = built
    for published in (None, {"url": None}, {**company["published"], "pdf_link": None}):
        message = _deliver(pack, company["folder"], smtp_sink, published=published)
        text, html = _bodies(message)
        assert "<a href" not in html and "http" not in text, published
        _no_path_nor_pointer(message, out)
    # a published copy in a bucket, with no web address: the pointer and the s3:// URL stay out
    bucket = {**company["published"], "pointer": "s3://bucket/links/2026-Q2/LATEST.json",
              "pdf_url": "s3://bucket/links/2026-Q2/.v-0/board_pack.pdf", "pdf_link": None}
    message = _deliver(pack, company["folder"], smtp_sink, published=bucket)
    assert "s3://" not in "".join(_bodies(message)) and "<a href" not in _bodies(message)[1]


def test_a_unit_pack_is_published_under_its_own_prefix_and_its_email_links_its_own_pdf(built, web, smtp_sink):
    pack, out, company, unit = built
    store, public = web
    destination = store / "links--west" / "2026-Q2"
    pointer = read_pointer(destination)
    assert pointer["pack_id"] == "links--west" and pointer["period"] == "2026-Q2"
    unit_pdf = Path(unit["folder"], "board_pack.pdf").read_bytes()
    assert read_published(destination) == unit_pdf != Path(company["folder"], "board_pack.pdf").read_bytes()
    assert unit["published"]["pointer"] == (destination / "LATEST.json").as_uri()
    assert read_pointer(store / "links" / "2026-Q2")["pdf_sha256"] == company["published"]["pdf_sha256"]
    link = unit["published"]["pdf_link"]
    assert link.startswith(f"{public}/links--west/2026-Q2/.v-")
    message = _deliver(pack, unit["folder"], smtp_sink, unit="West", published=unit["published"])
    assert message["To"] == "west@example.com"
    text, html = _bodies(message)
    assert f'href="{link}"' in html and link in text
    _no_path_nor_pointer(message, out, store)
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == unit_pdf == attachment_of(message)[2]


def test_cli_run_units_publishes_each_unit_and_send_links_its_pdf(tmp_path, web, smtp_sink, monkeypatch, capsys):
    from cxpipeline.cli import main

    store, public = web
    pack = tmp_path / "cli_links.yaml"
    pack.write_text(PACK.replace("pack_id: links", "pack_id: cli_links"))
    monkeypatch.setenv("CXPIPELINE_ARTIFACT_URL", store.as_uri())
    monkeypatch.setenv("CXPIPELINE_ARTIFACT_PUBLIC_URL", public + "/")
    assert main(["run", "--config", str(pack), "--period", "2026-Q2", "--unit", "West"]) == 0
    err = capsys.readouterr().err
    for prefix in ("cli_links", "cli_links--west"):
        destination = store / prefix / "2026-Q2"
        assert read_published(destination) == (tmp_path / "out" / prefix / "2026-Q2" / "board_pack.pdf").read_bytes()
        assert f"published {(destination / 'LATEST.json').as_uri()}" in err
    for key, value in {"CXPIPELINE_SMTP_HOST": "127.0.0.1", "CXPIPELINE_SMTP_PORT": str(smtp_sink.port),
                       "CXPIPELINE_SMTP_FROM": "reports@example.com"}.items():
        monkeypatch.setenv(key, value)
    smtp_sink.handler.messages.clear()
    assert main(["send", "--config", str(pack), "--period", "2026-Q2", "--unit", "West"]) == 0
    assert main(["send", "--config", str(pack), "--period", "2026-Q2"]) == 0
    (_, unit_message), (_, company_message) = smtp_sink.handler.messages
    for message, prefix in ((unit_message, "cli_links--west"), (company_message, "cli_links")):
        version = read_pointer(store / prefix / "2026-Q2")["version"]
        link = f"{public}/{prefix}/2026-Q2/{version}/board_pack.pdf"
        text, html = _bodies(message)
        assert f'href="{link}"' in html and link in text
        _no_path_nor_pointer(message, tmp_path, store)
    # the same send without a store: no link at all
    monkeypatch.delenv("CXPIPELINE_ARTIFACT_URL")
    monkeypatch.delenv("CXPIPELINE_ARTIFACT_PUBLIC_URL")
    smtp_sink.handler.messages.clear()
    assert main(["send", "--config", str(pack), "--period", "2026-Q2", "--resend"]) == 0
    text, html = _bodies(smtp_sink.handler.messages[0][1])
    assert "<a href" not in html and "http" not in text


def test_a_public_url_must_be_http_and_name_a_store():
    with pytest.raises(ConfigError, match="not an http"):
        runs.artifact_store({"CXPIPELINE_ARTIFACT_URL": "s3://b/p", "CXPIPELINE_ARTIFACT_PUBLIC_URL": "/srv/packs"})
    with pytest.raises(ConfigError, match="CXPIPELINE_ARTIFACT_URL is not"):
        runs.artifact_store({"CXPIPELINE_ARTIFACT_PUBLIC_URL": "https://packs.example.com"})
    store = runs.artifact_store({"CXPIPELINE_ARTIFACT_URL": " ", "CXPIPELINE_ARTIFACT_CONN_ID": "aws"})
    assert store.url is None and store.root() is None and store.conn_id == "aws"
    assert re.match(r"^https://", runs.artifact_store({"CXPIPELINE_ARTIFACT_URL": "s3://b/p",
                                                       "CXPIPELINE_ARTIFACT_PUBLIC_URL": "https://x.example.com"
                                                       }).public_url)
