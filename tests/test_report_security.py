"""The renderer fetches nothing outside templates/ and no network URL; data is escaped.

A real HTTP server on localhost counts requests: a hostile stylesheet or image URL in the
document must never reach it.
"""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader

from cxpipeline.config import config_from_dict
from cxpipeline.report import TEMPLATES_DIR, TemplateOnlyFetcher, render_board_pack, render_pdf
from cxpipeline.report.render import css_string


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).requests.append(self.path)
        body = b"body { background: red }"
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    _CountingHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _CountingHandler.requests
    finally:
        server.shutdown()
        server.server_close()


def test_fetcher_refuses_files_outside_templates_and_network(http_server, tmp_path):
    base, requests = http_server
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not really")
    html = f"""<!DOCTYPE html><html><head>
      <link rel="stylesheet" href="{base}/evil.css">
      <style>@import url("{base}/imported.css"); body {{ font-family: Inter; }}</style>
      </head><body><p>text</p>
      <img src="file:///etc/passwd">
      <img src="{secret.as_uri()}">
      <img src="../pyproject.toml">
      <img src="{base}/pixel.png">
      <img src="https://example.invalid/logo.png">
      <img src="fonts/OFL.txt">
    </body></html>"""
    fetcher = TemplateOnlyFetcher(TEMPLATES_DIR)
    pdf = render_pdf(html, TEMPLATES_DIR, fetcher=fetcher)
    assert pdf.startswith(b"%PDF-")
    assert requests == []  # nothing reached the network
    blocked = " ".join(fetcher.blocked)
    for url in ["file:///etc/passwd", secret.as_uri(), "pyproject.toml", f"{base}/evil.css",
                f"{base}/imported.css", f"{base}/pixel.png", "https://example.invalid/logo.png"]:
        assert url in blocked, url
    assert "OFL.txt" not in blocked  # a file inside templates/ is served (not an image, but fetched)


def test_fetcher_refuses_a_symlink_that_leaves_the_templates_folder(tmp_path):
    root = tmp_path / "templates"
    root.mkdir()
    outside = tmp_path / "outside.svg"
    outside.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    os.symlink(outside, root / "link.svg")
    (root / "inside.svg").write_text(outside.read_text())
    fetcher = TemplateOnlyFetcher(root)
    with pytest.raises(PermissionError):
        fetcher.fetch((root / "link.svg").as_uri())
    assert fetcher.fetch((root / "inside.svg").as_uri()).read().startswith(b"<svg")
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"
    for url in ["ftp://example.com/x", "file://otherhost/etc/passwd", "http://127.0.0.1:1/"]:
        with pytest.raises(PermissionError):
            fetcher.fetch(url)


def test_hostile_data_is_escaped_and_fetches_nothing(http_server, tmp_path):
    base, requests = http_server
    from cxpipeline.report.fixture import write_fixture_folder

    hostile_regions = ['<img src="file:///etc/passwd">', f'<link rel="stylesheet" href="{base}/x.css">',
                       "South", "West"]
    folder = write_fixture_folder(tmp_path / "pack", regions=hostile_regions)
    company = f'Evil "Co" </style><style>@import url({base}/y.css);</style><img src="{base}/z.png">'
    config = config_from_dict({"brand": {"company_name": company},
                               "terminology": {"customer": "<b>member</b>", "customers": "<b>members</b>"}})
    result = render_board_pack(folder, config)
    html = Path(result["html"]).read_text(encoding="utf-8")
    assert requests == [] and result["blocked_urls"] == []
    assert '<img src="file:///etc/passwd">' not in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    assert f'<link rel="stylesheet" href="{base}' not in html
    assert "</style><style>@import" not in html
    assert "<b>members</b>" not in html
    # in the running header (CSS content) the company name is hex-escaped, not raw
    assert css_string(company) in html
    text = "\n".join(p.extract_text() for p in PdfReader(result["pdf"]).pages)
    assert '<imgsrc="file:///etc/passwd">' in "".join(text.split())  # shown as the literal text it is
    assert "root:x:0:0" not in text


def test_css_string_escapes_everything_but_letters_digits_and_spaces():
    assert css_string('a"b') == '"a\\000022 b"'
    assert css_string("</style>") == '"\\00003c \\00002f style\\00003e "'
    assert css_string("Café 1") == '"Caf\\0000e9  1"'
