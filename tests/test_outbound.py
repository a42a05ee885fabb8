"""What leaves the building (issue 20): spreadsheet-safe CSVs, strict YAML and config values,
only the checked PDF of the right config, a dry run that builds the real message, masking in
every published file, bounded and confined logos.

Real components: Arrow's CSV writer read back with the csv module and pandas, the real YAML
loader, the whole pipeline on a tiny file source, a real SMTP server (aiosmtpd), the CLI.
"""

from __future__ import annotations

import csv
import re

import pandas as pd
import pytest

from cxpipeline.artifacts import neutralise_formulas, write_table
from cxpipeline.config import load_config
from cxpipeline.errors import ConfigError

HOSTILE_CELLS = ['=HYPERLINK("http://evil.example/x","click")', "+cmd|' /C calc'!A0", "-2+3",
                 "@SUM(A1:A9)", "\tTAB", "\rCR"]


def test_csv_cells_a_spreadsheet_would_evaluate_are_prefixed_and_parquet_keeps_them(tmp_path):
    frame = pd.DataFrame({
        "customer_id": pd.Series(HOSTILE_CELLS + ["C7", "-12.5", "+44", None], dtype="string"),
        "segment_value": pd.Categorical(["=1+1"] * 5 + ["North"] * 5),
        "value": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
    })
    write_table(tmp_path, "bridge_movers", frame)
    with open(tmp_path / "bridge_movers.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    ids = [row["customer_id"] for row in rows]
    assert ids[:6] == ["'" + cell for cell in HOSTILE_CELLS]
    assert ids[6:] == ["C7", "-12.5", "+44", ""], "plain numbers and ordinary text are untouched"
    assert {row["segment_value"] for row in rows} == {"'=1+1", "North"}, "categoricals too"
    assert rows[0]["value"] == "-1.5", "numeric columns are numbers, not text"
    for row in rows:  # nothing a spreadsheet would run is left
        for cell in row.values():
            assert not cell[:1] in ("=", "+", "@", "\t", "\r") or cell in ("+44",), cell
    raw = pd.read_parquet(tmp_path / "bridge_movers.parquet")
    assert raw["customer_id"].tolist()[:6] == HOSTILE_CELLS, "the Parquet twin keeps raw values"


def test_neutralise_formulas_leaves_tables_without_text_alone():
    import pyarrow as pa

    table = pa.table({"n": [1, -2], "d": pa.array([None, None], pa.string())})
    assert neutralise_formulas(table).equals(table)


@pytest.mark.parametrize("text, phrase, line", [
    ("pack_id: x\ndelivery:\n  allowed_domains: [example.com]\n  recipients: [a@example.com]\n"
     "delivery:\n  recipients: [leak@gmail.com]\n", "'delivery' appears twice", 5),
    ("pack_id: x\nbrand: {company_name: A, company_name: B}\n", "'company_name' appears twice", 2),
    ("pack_id: x\nsegments: " + "[" * 10_000 + "]" * 10_000 + "\n", "nested more than 32 levels", 2),
])
def test_yaml_duplicate_keys_and_deep_nesting_are_config_errors(tmp_path, text, phrase, line):
    path = tmp_path / "pack.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=phrase) as caught:
        load_config(path)
    assert caught.value.where == f"{path}, line {line}" and caught.value.fix


def _config_error(tmp_path, text: str) -> ConfigError:
    path = tmp_path / "pack.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


@pytest.mark.parametrize("text, phrase", [
    ("delivery: {subject: '{company.__class__}'}\n", "placeholder {company.__class__} is not allowed"),
    ("delivery: {subject: '{period[0]} pack'}\n", "placeholder {period[0]} is not allowed"),
    ("delivery: {subject: '{ceo} pack'}\n", "placeholder {ceo} is not allowed"),
    ("delivery: {subject: '{company!r}'}\n", "placeholder {company!r} is not allowed"),
    ("delivery: {subject: 'Pack {'}\n", "not a valid template"),
    ('delivery: {subject: "Pack\\r\\nBcc: x@evil.example"}\n', "subject contains a line break"),
    ('brand: {company_name: "Acme\\nBcc: x@evil.example"}\n', "company_name contains a line break"),
    ("output: {sections: []}\n", "sections is empty"),
    ("output: {sections: [summary, summry]}\n", "unknown section id(s) 'summry'"),
    ("currency: ABC\n", "'ABC' is not an ISO 4217 currency code"),
    ("model: {random_state: -1}\n", "model.random_state: Input should be greater than or equal to 0"),
    ("model: {random_state: 4294967296}\n", "model.random_state: Input should be less than or equal to"),
    ("segments: [region, all]\n", "'all' is reserved"),
])
def test_config_values_that_fail_late_are_refused_when_the_config_loads(tmp_path, text, phrase):
    error = _config_error(tmp_path, "pack_id: x\n" + text)
    assert phrase in str(error) and error.where and error.fix


def test_section_ids_are_the_renderer_pages():
    from cxpipeline.config import SECTION_IDS
    from cxpipeline.report.context import PAGES

    assert SECTION_IDS == tuple(page.id for page in PAGES)


def test_documented_placeholders_still_work(tmp_path):
    path = tmp_path / "pack.yaml"
    path.write_text("pack_id: x\ncurrency: EUR\ndelivery: {subject: '{company} {{board}} {period} {pack_id}'}\n")
    assert load_config(path).delivery.subject == "{company} {{board}} {period} {pack_id}"


# --- only the checked PDF, only the right config's pack --------------------------------------


def _company_config(folder, company: str, ceo: str, out):
    """A monthly file-source pack (tests.test_concurrency rows) for ``company``, two quick pages."""
    from tests.test_concurrency import write_case

    path = write_case(folder, pack_id="board")
    path.write_text(path.read_text().replace(
        "output: {root: out}\n", f"output: {{root: '{out}', sections: [summary, data-quality]}}\n")
        + f"brand: {{company_name: {company}}}\n"
        + f"delivery: {{recipients: ['{ceo}'], subject: '{{company}} board pack {{period}}'}}\n")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Company A's pack for 2024-06, built once by the CLI; tests work on copies of its root."""
    from cxpipeline.cli import main

    base = tmp_path_factory.mktemp("companies")
    out = base / "out"
    a = _company_config(base / "a", "Alpha Ltd", "ceo@alpha.example", out)
    b = _company_config(base / "b", "Beta plc", "ceo@beta.example", out)
    assert main(["run", "--config", str(a), "--period", "2024-06"]) == 0
    return {"a": a, "b": b, "out": out}


@pytest.fixture()
def smtp_env(monkeypatch):
    from tests.smtp_fixtures import start_smtp_server

    server = start_smtp_server()
    monkeypatch.setenv("CXPIPELINE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CXPIPELINE_SMTP_PORT", str(server.port))
    monkeypatch.setenv("CXPIPELINE_SMTP_FROM", "reports@alpha.example")
    yield server
    server.stop()


def _copy(built, tmp_path):
    import shutil

    shutil.copytree(built["out"], tmp_path / "out")
    return tmp_path / "out" / "board" / "2024-06"


def test_second_config_with_the_same_pack_id_and_root_is_refused_before_it_builds(built, capsys):
    from cxpipeline.cli import main

    folder = built["out"] / "board" / "2024-06"
    pdf_before = (folder / "board_pack.pdf").read_bytes()
    assert main(["run", "--config", str(built["b"]), "--period", "2024-06"]) == 2
    err = capsys.readouterr().err
    assert "were built from another config" in err and "Alpha Ltd" in err
    assert "loading source" not in err, "refused before the source is read"
    assert "\n  where: " in err and "pack_id / output.root" in err and "\n  fix:   " in err
    assert (folder / "board_pack.pdf").read_bytes() == pdf_before, "A's pack was not touched"
    assert (folder / "checks.json").is_file()


def test_send_with_another_companys_config_is_refused(built, smtp_env, tmp_path, capsys):
    from cxpipeline.cli import main

    _copy(built, tmp_path)
    for dry in ([], ["--dry-run"]):
        code = main(["send", "--config", str(built["b"]), "--period", "2024-06",
                     "--out", str(tmp_path / "out"), *dry])
        assert code == 2
        err = capsys.readouterr().err
        assert "The pack was not built from this config" in err and "fix:" in err
    assert smtp_env.handler.messages == []


def test_send_refuses_a_pdf_swapped_after_its_checks(built, smtp_env, tmp_path, capsys):
    from cxpipeline.cli import main
    from cxpipeline.delivery import LEDGER_NAME

    folder = _copy(built, tmp_path)
    # Another company's checked PDF, copied over this one after the checks.
    other = tmp_path / "other"
    other.write_bytes((folder / "board_pack.pdf").read_bytes() + b"\n% another pack\n")
    (folder / "board_pack.pdf").write_bytes(other.read_bytes())
    args = ["send", "--config", str(built["a"]), "--period", "2024-06", "--out", str(tmp_path / "out")]
    for dry in (["--dry-run"], []):
        assert main(args + dry) == 2
        err = capsys.readouterr().err
        assert "is not the PDF that passed the checks" in err and "Rebuild the period" in err
    assert smtp_env.handler.messages == [] and not (folder / LEDGER_NAME).exists()


def test_dry_run_builds_the_real_message_and_checks_smtp_settings(built, smtp_env, tmp_path, capsys, monkeypatch):
    import hashlib
    import json

    from cxpipeline.cli import main
    from cxpipeline.delivery import LEDGER_NAME

    folder = _copy(built, tmp_path)
    args = ["send", "--config", str(built["a"]), "--period", "2024-06", "--out", str(tmp_path / "out"),
            "--dry-run"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sent"] == [] and report["would_send"] == ["ceo@alpha.example"] and report["dry_run"]
    [message] = report["messages"]
    pdf = (folder / "board_pack.pdf").read_bytes()
    assert message["subject"] == "Alpha Ltd board pack 2024-06" and message["to"] == "ceo@alpha.example"
    assert message["attachments"] == [{"filename": "board_2024-06_board_pack.pdf",
                                       "content_type": "application/pdf", "bytes": len(pdf)}]
    assert message["bytes"] > len(pdf), "the whole MIME message, base64 attachment included"
    assert report["content_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert smtp_env.handler.messages == [] and not (folder / LEDGER_NAME).exists()
    monkeypatch.delenv("CXPIPELINE_SMTP_HOST")
    assert main(args) == 2
    assert "SMTP settings missing: CXPIPELINE_SMTP_HOST" in capsys.readouterr().err
    # and the real send goes out, once, with the checked PDF
    monkeypatch.setenv("CXPIPELINE_SMTP_HOST", "127.0.0.1")
    assert main(args[:-1]) == 0
    [(rcpts, sent)] = smtp_env.handler.messages
    assert rcpts == ["ceo@alpha.example"] and sent["Subject"] == "Alpha Ltd board pack 2024-06"


# --- masking reaches every file that leaves the machine --------------------------------------

def _file_text(path) -> str:
    """Everything a reader of ``path`` can see, as text (Parquet cells, PDF text, raw bytes)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return " ".join(frame.columns) + "\n" + frame.astype("string").fillna("").to_csv(index=False)
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "".join((page.extract_text() or "") for page in PdfReader(path).pages)
    if path.suffix in (".png", ".jpg"):
        # the email's trend chart (periods and totals, drawn from the trend tables) and the logo
        assert path.name in ("email_trend.png", "email_logo.png", "email_logo.jpg"), path.name
        return ""
    return path.read_text(encoding="utf-8")


def test_masking_reaches_every_published_file_and_the_private_copy_stays_outside(tmp_path, monkeypatch):
    from cxpipeline.masking import mask_id, private_folder
    from cxpipeline.pipeline import run_pack
    from cxpipeline.publish import pack_files, publish_pack
    from tests.test_security import HOSTILE, _hostile_case

    monkeypatch.setenv("CXPIPELINE_MASK_SALT", "salt-for-outbound-test")
    config_path = _hostile_case(tmp_path / "case", "http://127.0.0.1:9", mask=True)
    for name in ("data.csv", "customers.csv"):  # distinctive ids: "not found" then means something
        path = config_path.parent / name
        path.write_text(path.read_text().replace(",C", ",CUSTOMER-00").replace("\nC", "\nCUSTOMER-00"))
    config_path.write_text(config_path.read_text().replace(
        "delivery: {mask_customers: true}", "delivery: {mask_customers: true, keep_unmasked: true}"))
    result = run_pack(load_config(config_path), "2024-06", tmp_path / "out")
    folder = result.folder
    names = [name for name, _ in HOSTILE.values()]
    published = pack_files(folder)
    assert {"scores.csv", "scores.parquet", "customers.parquet", "panel.parquet", "bridge_movers.csv",
            "board_pack.pdf", "board_pack.html", "model_report.json"} <= set(published)
    tokens_seen = set()
    for name in published:
        text = _file_text(folder / name)
        squashed = "".join(text.split())
        assert "CUSTOMER-00" not in text, name
        for person in ("Plain Five", "Plain Six", "Evil Corp", "Forged heading", "pwned"):
            assert person not in text and person.replace(" ", "") not in squashed, (name, person)
        tokens_seen |= {n for n in range(1, 7) if mask_id(f"CUSTOMER-00{n}", "salt-for-outbound-test") in text}
    assert tokens_seen == set(range(1, 7)), "the published files carry the salted tokens instead"
    scores = pd.read_csv(folder / "scores.csv")
    assert scores["customer_id"].str.fullmatch(r"C-[0-9a-f]{12}").all()
    # the PDF prints the same tokens as the files (hashed once, not twice)
    pdf = _file_text(folder / "board_pack.pdf")
    assert any(mask_id(f"CUSTOMER-00{n}", "salt-for-outbound-test") in pdf for n in range(1, 7))
    # the private raw copy lives outside the published, linked folder, owner-only
    private = private_folder(folder)
    assert not private.is_relative_to(folder) and (private.stat().st_mode & 0o777) == 0o700
    raw = pd.read_parquet(private / "customers.parquet")
    assert set(raw["customer_name"].dropna()) >= {n for n in names if n.startswith("Plain")}
    id_map = pd.read_parquet(private / "id_map.parquet")
    assert dict(zip(id_map["customer_id"], id_map["token"]))["CUSTOMER-001"] == mask_id(
        "CUSTOMER-001", "salt-for-outbound-test")
    # what a publish uploads is exactly that set
    store = tmp_path / "store"
    publish_pack(folder, store)
    uploaded = [p for p in store.rglob("*") if p.is_file() and p.name != "LATEST.json"]
    assert sorted(p.name for p in uploaded) == sorted(published)
    assert all("CUSTOMER-00" not in _file_text(p) for p in uploaded if p.suffix != ".pdf")
    # without keep_unmasked a rerun removes the private copy
    config_path.write_text(config_path.read_text().replace(", keep_unmasked: true", ""))
    run_pack(load_config(config_path), "2024-06", tmp_path / "out")
    assert not private.exists()


# --- logos: bounded, decoded, confined, never logged -----------------------------------------

def _png(width: int, height: int, *, pixels: bytes | None = None) -> bytes:
    """A PNG with the given header; ``pixels`` None: a real 8-bit grey image of that size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if pixels is None:
        pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _logo_config(tmp_path, name: str):
    from cxpipeline.config import config_from_dict

    return config_from_dict({"pack_id": "logo", "brand": {"logo": name}}, base_dir=tmp_path)


def test_a_good_logo_is_embedded_and_bad_ones_are_clear_errors(tmp_path):
    import os

    from cxpipeline.logo import load_logo, logo_data_uri

    (tmp_path / "good.png").write_bytes(_png(40, 20))
    (tmp_path / "good.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
                                       '<g><rect width="120" height="40" fill="#1F3A5F"/></g></svg>')
    assert load_logo(_logo_config(tmp_path, "good.png"))[0] == "image/png"
    assert logo_data_uri(_logo_config(tmp_path, "good.svg")).startswith("data:image/svg+xml;base64,")

    (tmp_path / "corrupt.png").write_bytes(_png(40, 20)[:60] + b"garbage" * 10)
    (tmp_path / "huge.png").write_bytes(_png(30_000, 30_000, pixels=b"x"))
    (tmp_path / "wide.png").write_bytes(_png(5000, 10, pixels=b"x"))
    (tmp_path / "deep.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg">' + "<g>" * 5000
                                       + "</g>" * 5000 + "</svg>")
    (tmp_path / "entities.svg").write_text('<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>')
    (tmp_path / "big.png").write_bytes(_png(40, 20) + b"\0" * (12 * 1024 * 1024))
    (tmp_path / "jpeg_named.png").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    os.symlink("/etc/passwd", tmp_path / "passwd.png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "good.png", tmp_path / "sub" / "linked.png")  # a link inside: fine
    assert load_logo(_logo_config(tmp_path, "sub/linked.png"))[0] == "image/png"
    cases = {
        "corrupt.png": "cannot be decoded as PNG",
        "huge.png": "pixels",
        "wide.png": "is 5,000 x 10 pixels; the limit is 4,096 a side",
        "deep.svg": "nests elements more than 32 deep",
        "entities.svg": "declares a DTD or entities",
        "big.png": "is 12.0 MB; the limit is 1024 KB",
        "jpeg_named.png": "cannot be decoded as PNG",
        "passwd.png": "is outside the config's folder (it is a link)",
        "../outside.png": "is outside the config's folder",
        "missing.png": "does not exist",
        "logo.gif": "is not an SVG, PNG or JPEG file",
    }
    for name, phrase in cases.items():
        with pytest.raises(ConfigError, match=re.escape(phrase)) as caught:
            load_logo(_logo_config(tmp_path, name))
        error = str(caught.value)
        assert "brand.logo" in caught.value.where and caught.value.fix, name
        assert "root:" not in error and "base64" not in error and len(error) < 600, error


def test_data_uris_never_reach_the_log(caplog):
    import base64
    import logging

    import cxpipeline.report.render  # noqa: F401 - installs the filter

    secret = base64.b64encode(b"root:x:0:0:root:/root:/bin/bash\n" * 50).decode()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("weasyprint").warning('Failed to load image at "data:image/png;base64,%s"', secret)
    [record] = [r for r in caplog.records if r.name == "weasyprint"]
    assert secret[:20] not in record.getMessage() and "characters)" in record.getMessage()


def test_validate_refuses_a_bad_logo_before_reading_any_data(tmp_path, capsys):
    from cxpipeline.cli import main

    (tmp_path / "logo.png").write_bytes(_png(40, 20)[:60])
    (tmp_path / "pack.yaml").write_text("pack_id: x\nsource: {kind: file, path: absent.csv, columns: "
                                        "{customer_id: c, ordered_at: d, revenue: r}}\nbrand: {logo: logo.png}\n")
    assert main(["validate", "--config", str(tmp_path / "pack.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cannot be decoded as PNG" in err and "absent.csv" not in err


def test_a_pack_folder_belongs_to_one_config_but_edits_and_copies_are_the_same_config(tmp_path):
    import shutil

    from cxpipeline.provenance import OWNER_NAME, claim_pack_root

    root = tmp_path / "out" / "board"
    a = tmp_path / "a" / "pack.yaml"
    a.parent.mkdir()
    a.write_text("pack_id: board\nbrand: {company_name: Alpha Ltd}\n")
    claim_pack_root(load_config(a), root)
    a.write_text("pack_id: board\nbrand: {company_name: Alpha Ltd}\ntolerance: 0.2\n")  # edited
    claim_pack_root(load_config(a), root)
    copy = tmp_path / "mounted" / "pack.yaml"  # the same content under another path
    copy.parent.mkdir()
    shutil.copy(a, copy)
    claim_pack_root(load_config(copy), root)
    b = tmp_path / "b" / "pack.yaml"
    b.parent.mkdir()
    b.write_text("pack_id: board\nbrand: {company_name: Beta plc}\n")
    with pytest.raises(ConfigError, match="built from another config") as caught:
        claim_pack_root(load_config(b), root)
    assert str(a.resolve()) in str(caught.value) and str(root / OWNER_NAME) in caught.value.fix
    # `cxpipeline demo` rerun with other options: the same origin, so the same pack
    from cxpipeline.config import config_from_dict

    demo_root = tmp_path / "out" / "demo"
    for customers in (10, 20):
        claim_pack_root(config_from_dict({"source": {"kind": "demo", "customers": customers}},
                                         origin="cxpipeline demo"), demo_root)
    # the config file path is never taken from the YAML itself
    b.write_text("pack_id: board\nconfig_origin: " + str(a.resolve()) + "\n")
    assert load_config(b).config_origin == str(b.resolve())
