"""The executive email, read from a real SMTP server (aiosmtpd) after a real pack was built and
checked (demo brand: English, GBP; second brand: donors, EUR, de_DE): the pack's headline
sentence, the registry's labels (never internal keys), the trend chart inline by Content-ID,
the three things, a plain-text part that says the same, and no path on the building server."""

from __future__ import annotations

import io
import re
from html import unescape
from pathlib import Path

import pytest

from cxpipeline.artifacts import read_json
from cxpipeline.config import config_from_dict, load_config
from cxpipeline.delivery import SmtpSettings, send_pack
from cxpipeline.metrics.registry import METRICS, label
from cxpipeline.pipeline import run_pack
from cxpipeline.report.briefing import BRIEFING_FIGURES, EMAIL_LOGO_HEIGHT, svg_logo_png
from cxpipeline.report.formatting import Formatter
from tests.conftest import pdf_pages
from tests.smtp_fixtures import attachment_of

ROOT = Path(__file__).resolve().parents[1]
SOURCE = {"kind": "demo", "customers": 1200, "years": 4}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = config_from_dict({"pack_id": "email-demo", "source": SOURCE, "segments": ["region"]})
    return config, run_pack(config, "2026-Q3", tmp_path_factory.mktemp("packs")).folder


@pytest.fixture(scope="module")
def helfen(tmp_path_factory):
    config = load_config(ROOT / "examples" / "brands" / "helfen.yaml")
    config = config.model_copy(update={"source": config_from_dict({"source": SOURCE}).source})
    return config, run_pack(config, "2026-Q3", tmp_path_factory.mktemp("packs")).folder


def _send(config, folder: Path, server, **kwargs):
    server.handler.messages.clear()
    smtp = SmtpSettings(host="127.0.0.1", port=server.port, from_address="reports@example.com", timeout=5)
    report = send_pack(folder / "board_pack.pdf", ["ceo@example.com"], period_label="2026-Q3",
                       pack_id=config.pack_id, summary=read_json(folder / "metrics.json"), smtp=smtp,
                       currency=config.currency, locale=config.locale, customers=config.terminology.customers,
                       resend=True, sleep=lambda seconds: None, **kwargs)
    assert report.sent == ["ceo@example.com"]
    [(_, message)] = server.handler.messages
    return message


def _check_email(config, folder: Path, message) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()
    html = unescape(message.get_body(("html",)).get_content())
    pdf_text = " ".join(pdf_pages(folder / "board_pack.pdf", layout=False))
    headline = read_json(folder / "email.json")["headline"]
    # the pack's own sentence, as the PDF prints it (the PDF has no final full stop)
    flat = lambda words: " ".join(words.split())  # noqa: E731 - the locale's no-break spaces as spaces
    assert headline.startswith("Gained ") and flat(headline.rstrip(".")) in pdf_text
    assert headline in text and headline in html
    # five key figures, labelled from the registry, formatted as the pack formats them
    fmt = Formatter(config.locale, config.currency)
    numbers = read_json(folder / "metrics.json")["headline"]
    terms = dict(customers=config.terminology.customers, customer=config.terminology.customer)
    for name in BRIEFING_FIGURES:
        wanted = label(name, **terms)
        wanted = wanted[:1].upper() + wanted[1:]
        assert wanted in text and wanted in html, name
    assert fmt.money(numbers["revenue_current"]) in text
    assert fmt.count(numbers["count_gained"]) in html and fmt.count(numbers["count_lost"]) in html
    # never an internal key, in either part
    for body in (text, html):
        for key in numbers:
            assert key not in body, key
            spelled = key.replace("_", " ").capitalize()  # "Count closing"
            if key not in METRICS or spelled.lower() != label(key, **terms).lower():
                assert spelled not in body, key
    # the three things that changed, as in the pack
    changes = read_json(folder / "email.json")["changes"]
    assert len(changes) == 3
    for thing in changes:
        assert thing in text and thing in html
        assert flat(" ".join(thing.split()[:6])) in pdf_text
    # the trend chart: an inline PNG whose Content-ID the HTML references, with alt text
    images = [part for part in message.walk() if part.get_content_maintype() == "image"]
    trend = [part for part in images if part["Content-ID"] and "trend" in part["Content-ID"]]
    assert len(trend) == 1 and trend[0].get_content_type() == "image/png"
    assert trend[0].get_content().startswith(b"\x89PNG")
    cid = trend[0]["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html
    assert re.search(rf'src="cid:{re.escape(cid)}" width="\d+" alt="Bar chart of {terms["customers"]} gained', html)
    # branded: the brand's colour and company name; table layout with inline CSS
    assert config.brand.primary_color in html and config.brand.company_name in html
    assert '<table role="presentation"' in html and "<style" not in html and "class=" not in html
    # the PDF still attached, and no path of the server that built it
    content_type, _, data, _ = attachment_of(message)
    assert content_type == "application/pdf" and data == (folder / "board_pack.pdf").read_bytes()
    for body in (text, html):
        assert str(folder) not in body and str(folder.resolve()) not in body and "/tmp" not in body
        assert "file:" not in body
    return text, html


def test_demo_email_from_a_real_smtp_sink(demo, smtp_sink):
    config, folder = demo
    message = _send(config, folder, smtp_sink, artifact_location=str(folder.resolve()))
    text, html = _check_email(config, folder, message)
    assert "£" in text and "Customers gained" in html
    assert "<a href" not in html and "http" not in text  # not published: no link at all


def test_published_pack_is_linked(demo, smtp_sink):
    config, folder = demo
    url = "https://packs.example.com/email-demo/2026-Q3/board_pack.pdf"
    message = _send(config, folder, smtp_sink, link=url)
    text, html = _check_email(config, folder, message)
    assert f'href="{url}"' in html and url in text
    # a bucket URL is not something an executive can open: no link
    message = _send(config, folder, smtp_sink, link="s3://bucket/email-demo/2026-Q3/LATEST.json")
    text, html = _check_email(config, folder, message)
    assert "s3://" not in text + html and "<a href" not in html
    # where the artifacts are (the ledger's location) is never the email's link, even over https
    pointer = "https://packs.example.com/email-demo/2026-Q3/LATEST.json"
    message = _send(config, folder, smtp_sink, artifact_location=pointer)
    text, html = _check_email(config, folder, message)
    assert "LATEST.json" not in text + html and "<a href" not in html


def test_second_brand_email_donors_eur_de(helfen, smtp_sink):
    config, folder = helfen
    message = _send(config, folder, smtp_sink)
    text, html = _check_email(config, folder, message)
    assert "Donors gained" in html and "Donors lost" in text
    assert "customer" not in text.lower() and "customer" not in html.lower()
    assert "€" in text and re.search(r"\d\.\d{3}", text)  # de_DE grouping
    assert 'lang="de"' in html and "#0F5C4C" in html
    assert "Stiftung Helfen e.V." in text
    # its SVG logo arrives as an inline PNG drawn from the SVG, referenced by its Content-ID
    logos = [part for part in message.walk() if part["Content-ID"] and "logo" in part["Content-ID"]]
    assert len(logos) == 1 and logos[0].get_content_type() == "image/png"
    from PIL import Image

    with Image.open(io.BytesIO(logos[0].get_content())) as image:
        assert image.height == EMAIL_LOGO_HEIGHT and image.width > image.height  # a wide logo, drawn
        assert len(set(image.convert("RGBA").getdata())) > 2  # not blank
    assert f'src="cid:{logos[0]["Content-ID"].strip("<>")}" alt="Stiftung Helfen e.V."' in html


def test_svg_logo_png_loads_no_file_or_url(tmp_path):
    from PIL import Image

    secret = tmp_path / "secret.png"
    Image.new("RGB", (50, 50), "red").save(secret)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" '
           f'height="50"><image xlink:href="{secret.as_uri()}" width="100" height="50"/>'
           f'<image href="http://127.0.0.1:9/x.png" width="100" height="50"/></svg>').encode()
    with Image.open(io.BytesIO(svg_logo_png(svg))) as image:
        assert image.convert("RGBA").getextrema()[0] == (0, 0)  # no red: the file was not read


def test_registry_labels_cover_the_figures():
    assert set(BRIEFING_FIGURES) <= set(METRICS)
