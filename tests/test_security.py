"""Security: hostile data stays text, the renderer fetches nothing, secrets leak nowhere,
customers can be masked, recipients are validated.

Real components: the whole pipeline (file and PostgreSQL sources), WeasyPrint output read back
with pypdf, a real HTTP server on localhost that must never see a request, the real CLI.
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import threading
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader

from cxpipeline.config import config_from_dict, load_config
from cxpipeline.errors import ConfigError
from cxpipeline.masking import mask_customers, mask_id, masking_salt
from tests.conftest import scratch_database
from tests.test_concurrency import ROWS, write_case

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "cxpipeline"


class _Counting(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_spy():
    _Counting.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Counting.requests
    finally:
        server.shutdown()
        server.server_close()


HOSTILE = {
    "C1": ('<img src="{http}/name.png">Evil Corp', '<link rel="stylesheet" href="{http}/note.css">'),
    "C2": ("<script>document.write('pwned')</script>", '<iframe src="file:///etc/passwd"></iframe>'),
    "C3": ("</td></tr></table><h1>Forged heading</h1>", "<style>@import url({http}/imp.css);</style>"),
    "C4": ("<object data='file:///etc/shadow'></object>", "url(file:///etc/hostname)"),
    "C5": ("Plain Five", ""),
    "C6": ("N" * 50_000, ""),  # one unbroken 50,000-character name
}


def _hostile_case(folder: Path, http: str, *, mask: bool) -> Path:
    config_path = write_case(folder, pack_id="secure")
    lines = ["id,name,note"]
    for customer, (name, note) in HOSTILE.items():
        quote = lambda s: '"' + s.format(http=http).replace('"', '""') + '"'  # noqa: E731
        lines.append(f"{customer},{quote(name)},{quote(note)}")
    (folder / "customers.csv").write_text("\n".join(lines) + "\n")
    text = config_path.read_text().replace(
        "  segment_columns: {region: region}\n",
        "  segment_columns: {region: region}\n  customers_path: customers.csv\n"
        "  customer_columns: {customer_id: id, customer_name: name, referral_note: note}\n")
    text += f"delivery: {{mask_customers: {'true' if mask else 'false'}}}\n"
    config_path.write_text(text)
    return config_path


def _run_with_fetch_spy(config_path: Path, out: Path, monkeypatch) -> tuple[object, list[str]]:
    """run_pack with every URL WeasyPrint asks for recorded (the spy wraps the real fetcher)."""
    from cxpipeline.pipeline import run_pack
    from cxpipeline.report import render

    asked: list[str] = []
    original = render.TemplateOnlyFetcher.fetch

    def spy(self, url, headers=None):
        asked.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(render.TemplateOnlyFetcher, "fetch", spy)
    result = run_pack(load_config(config_path), "2024-06", out)
    return result, asked


def test_hostile_names_and_notes_are_printed_as_text_and_nothing_is_fetched(tmp_path, http_spy, monkeypatch):
    http, requests = http_spy
    result, asked = _run_with_fetch_spy(_hostile_case(tmp_path / "case", http, mask=False), tmp_path / "out",
                                        monkeypatch)
    from cxpipeline.report.render import TEMPLATES_DIR

    templates = TEMPLATES_DIR.resolve().as_uri()
    assert requests == [], "the renderer never reached the network"
    # cx-chart:N: the pack's own charts, drawn by a second process (ChartBook.start), served as data: URIs
    assert all(url.startswith(("data:", templates + "/")) or re.fullmatch(r"cx-chart:\d+", url) for url in asked), asked
    html = (result.folder / "board_pack.html").read_text(encoding="utf-8")
    for needle in ("<script>document", "<iframe", "<h1>Forged", "<object", "<img src=\"http", "<link rel=\"stylesheet\" href=\"http"):
        assert needle not in html, needle
    text = "".join("".join((p.extract_text() or "") for p in PdfReader(result.pdf_path).pages).split())
    # The at-risk list prints customer names: the hostile ones appear literally, as text.
    assert "<script>document.write('pwned')</script>" in text
    assert "pwned" not in text.replace("<script>document.write('pwned')</script>", "")
    assert "root:x:0" not in text
    # The 50,000-character name is cut to 80 characters and wraps inside its cell.
    assert "N" * 79 + "\u2026" in text and "N" * 80 not in text
    import pdfplumber

    with pdfplumber.open(result.pdf_path) as pdf:
        for page in pdf.pages:
            if "NNNNNNNNNN" in (page.extract_text() or ""):
                assert max(char["x1"] for char in page.chars) <= page.width, "text runs off the page"


def test_masked_pack_shows_tokens_not_ids_or_names(tmp_path, http_spy, monkeypatch):
    http, requests = http_spy
    monkeypatch.setenv("CXPIPELINE_MASK_SALT", "s3cret-salt-for-test")
    config_path = _hostile_case(tmp_path / "case", http, mask=True)
    # Distinctive ids, so "not in the PDF" means something.
    data = config_path.parent / "data.csv"
    data.write_text(data.read_text().replace(",C", ",CUSTOMER-00"))
    customers = config_path.parent / "customers.csv"
    customers.write_text(customers.read_text().replace("\nC", "\nCUSTOMER-00"))
    result, _ = _run_with_fetch_spy(config_path, tmp_path / "out", monkeypatch)
    pages = [p.extract_text() or "" for p in PdfReader(result.pdf_path).pages]
    text = "".join("".join(pages).split())
    html = (result.folder / "board_pack.html").read_text(encoding="utf-8")
    assert "CUSTOMER-00" not in text and "CUSTOMER-00" not in html
    for name in ("Plain Five", "N" * 10, "Evil Corp", "Forged"):
        assert name.replace(" ", "") not in text and name not in html
    tokens = {mask_id(f"CUSTOMER-00{n}", "s3cret-salt-for-test") for n in range(1, 7)}
    assert any(token in text for token in tokens), "the at-risk list prints the salted tokens"
    assert requests == []


def test_masking_is_stable_salted_and_hides_text():
    config = config_from_dict({"pack_id": "p"})
    frame = pd.DataFrame({"customer_id": ["A", "B", "A", None], "referred_by": ["B", None, None, None],
                          "customer_name": ["Ann", "Bob", "Ann", "X"], "revenue": [1.0, 2.0, 3.0, 4.0]})
    masked = mask_customers(frame, config, salt="one")
    assert masked["customer_id"].iloc[0] == masked["customer_id"].iloc[2] == mask_id("A", "one")
    assert masked["referred_by"].iloc[0] == masked["customer_id"].iloc[1], "same customer, same token"
    assert pd.isna(masked["customer_id"].iloc[3]) and masked["customer_name"].isna().all()
    assert masked["revenue"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert mask_id("A", "one") != mask_id("A", "two") and len(mask_id("A", "one")) == 14
    assert frame["customer_id"].iloc[0] == "A", "the input is not modified"
    assert masking_salt(config, {}) == "cxpipeline-mask:p"
    assert masking_salt(config, {"CXPIPELINE_MASK_SALT": "x"}) == "x"


def test_autoescape_is_on_and_undefined_is_an_error():
    import jinja2

    from cxpipeline.report import Formatter, make_environment

    env = make_environment(Formatter("en_GB", "GBP"))
    assert env.from_string("{{ v }}").render(v="<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()


def test_recipients_are_addresses_within_the_allowed_domains():
    ok = config_from_dict({"delivery": {"recipients": ["ceo@example.com", "cfo@eu.example.com"],
                                        "allowed_domains": ["@Example.com"]}})
    assert ok.delivery.allowed_domains == ["example.com"]
    for bad in (["ceo@example.com", "Eve <eve@example.com>"], ["ceo@example"], ["x@example.com.evil.io"]):
        with pytest.raises(ConfigError) as caught:
            config_from_dict({"delivery": {"recipients": bad, "allowed_domains": ["example.com"]}})
        assert "delivery: recipients:" in str(caught.value)


# -- secrets ---------------------------------------------------------------------------------

PASSWORD = "Pa55-word-that-must-not-leak"
SMTP_PASSWORD = "smtp-Secret-9876"
@pytest.fixture()
def database():
    import psycopg

    with scratch_database("cx_security_test") as DB:
        yield _fill_database(psycopg, DB)


def _fill_database(psycopg, DB: str) -> str:
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={DB}", autocommit=True) as conn:
        conn.execute("CREATE TABLE transactions (order_id text, customer_id text, ordered_at timestamp, "
                     "revenue double precision, cost double precision, cost_to_serve double precision, "
                     "quantity double precision, is_return boolean, region text)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO transactions VALUES (%s, %s, %s, %s, 0, 0, %s, %s, %s)",
                [(f"o{i}", c, d, a, 1 if a > 0 else -1, a < 0, "North" if c in ("C1", "C3", "C5") else "South")
                 for i, (c, d, a) in enumerate(ROWS)])
    return DB


def test_secrets_never_reach_logs_manifests_or_the_pack(tmp_path, database):
    """Trust auth ignores the password, so the run succeeds while carrying it everywhere it
    could leak: the URL (from the env), the SMTP env, verbose logging, every artifact."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "pack_id: secret\nsource: {kind: sql, url_env: CX_WAREHOUSE_URL, customers_table: null}\n"
        "period: {type: month}\nsegments: [region]\noutput: {root: out}\n")
    env = {**os.environ,
           "CX_WAREHOUSE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{database}",
           "CXPIPELINE_SMTP_PASSWORD": SMTP_PASSWORD}
    run = subprocess.run([str(CLI), "-v", "run", "--config", str(config), "--period", "2024-06"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    # A failing connection must not print it either (wrong port: the error names the URL).
    env_bad = {**env, "CX_WAREHOUSE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/{database}"}
    failed = subprocess.run([str(CLI), "-v", "run", "--config", str(config), "--period", "2024-06"],
                            capture_output=True, text=True, env=env_bad, cwd=tmp_path, timeout=300)
    assert failed.returncode == 2 and "127.0.0.1:1" in failed.stderr, failed.stderr
    for output in (run.stdout, run.stderr, failed.stdout, failed.stderr):
        assert PASSWORD not in output and SMTP_PASSWORD not in output
    artifacts = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "board_pack.pdf" for p in artifacts) and any(p.name == "manifest.json" for p in artifacts)
    for path in artifacts:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and SMTP_PASSWORD.encode() not in data, path
    pdf_text = "".join((p.extract_text() or "") for p in PdfReader(tmp_path / "out/secret/2024-06/board_pack.pdf").pages)
    assert PASSWORD not in pdf_text
