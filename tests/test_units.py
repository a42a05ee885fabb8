"""Per-unit packs: each unit's pack is the company pack computed on its customers alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import cxpipeline.checks as checks_module
from cxpipeline.config import config_from_dict
from cxpipeline.errors import ConfigError
from cxpipeline.pipeline import run_pack
from cxpipeline.units import find_units, run_units, unit_config

SECTIONS = ["summary", "bridge", "ledger", "data-quality"]


def _config(root, **units):
    return config_from_dict({
        "pack_id": "units", "source": {"kind": "demo", "customers": 400, "years": 2},
        "output": {"root": str(root), "sections": SECTIONS},
        "delivery": {"allowed_domains": ["example.com"]},
        "units": {"by": "region", "recipients": {"West": ["west@example.com"]}, **units},
    }, origin="test units")


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    config = _config(root)
    result = run_pack(config, "2026-Q2")
    built, failed = run_units(config, result.period)
    return config, result, built, failed


def _bridge(folder):
    table = pd.read_parquet(folder / "bridge.parquet")
    return table.loc[table["segment"] == "all"].set_index("bridge_class")[["count_customers", "value"]]


def test_each_unit_pack_reconciles_and_the_units_add_up_to_the_company(company):
    config, result, built, failed = company
    assert failed == {}
    names = [b["unit"] for b in built]
    assert names == ["East", "International", "North", "South", "West"]
    for unit in built:
        checks = json.loads((Path(unit["folder"]) / "checks.json").read_text())
        assert checks["is_deliverable"] is True  # its own bridge and ledger reconcile
    total = sum(_bridge(Path(b["folder"])) for b in built)
    company_bridge = _bridge(result.folder)
    assert (total["count_customers"] == company_bridge["count_customers"]).all()
    assert (total["value"].round(2) == company_bridge["value"].round(2)).all()
    assert sum(b["count_customers"] for b in built) == len(pd.read_parquet(result.folder / "customers.parquet"))


def test_a_unit_pack_names_its_unit_and_keeps_only_its_customers(company):
    config, result, built, _ = company
    west = next(b for b in built if b["unit"] == "West")
    assert west["pack_id"] == "units--west" and west["folder"].endswith("units--west/2026-Q2")
    assert west["recipients"] == ["west@example.com"]
    customers = pd.read_parquet(f"{west['folder']}/customers.parquet")
    assert set(customers["region"]) == {"West"} and len(customers) == west["count_customers"]
    scores = pd.read_parquet(f"{west['folder']}/scores.parquet")
    assert set(scores["customer_id"]) <= set(customers["customer_id"])
    assert list(scores["at_risk_rank"]) == list(range(1, len(scores) + 1))
    dq = json.loads((Path(west["folder"]) / "data_quality.json").read_text())
    assert dq["unit"] == "West" and dq["tie_out"] == [] and dq["company_tie_out"]  # no company total as the unit's
    uconfig = unit_config(config, "West")
    assert uconfig.brand.company_name == "Demo Retail Ltd - West"
    assert "region" not in uconfig.segments
    import pypdf

    first_page = pypdf.PdfReader(west["pdf"]).pages[0].extract_text()
    assert "Demo Retail Ltd - West" in first_page


def test_units_edition_board_gives_unit_packs_of_the_board_section_only(company):
    config, result, built, _ = company
    assert unit_config(config, "West").output.edition == "full"  # default: the company's edition
    board = config.model_copy(update={"units": config.units.model_copy(update={"edition": "board"})})
    assert unit_config(board, "West").output.edition == "board" and board.output.edition == "full"
    [west], failed = run_units(board, result.period, only=["West"])
    assert failed == {} and west["is_deliverable"] is True
    import pypdf

    pages = [page.extract_text() for page in pypdf.PdfReader(west["pdf"]).pages]
    text = " ".join(pages)
    assert "Data quality" not in text and "Appendix" not in text  # the appendix page is not built
    assert "Demo Retail Ltd - West" in pages[0] and "Revenue bridge" in text
    assert len(pages) == 2 + 3  # cover, contents, and the three board pages of SECTIONS
    company_text = " ".join(page.extract_text() for page in pypdf.PdfReader(result.folder / "board_pack.pdf").pages)
    assert "Data quality" in company_text  # the company pack keeps its edition


def test_a_unit_failing_its_checks_stops_only_that_unit(company, monkeypatch):
    config, result, _, _ = company
    real = checks_module.run_checks

    def failing_for_north(folder, cfg):
        report = real(folder, cfg)
        if cfg.pack_id == "units--north":
            report["is_deliverable"] = False
            report["checks"].append({"name": "forced", "is_passed": False, "detail": "test"})
        return report

    monkeypatch.setattr(checks_module, "run_checks", failing_for_north)
    built, failed = run_units(config, result.period, only=["North", "south"])
    assert [b["unit"] for b in built] == ["South"]
    assert list(failed) == ["North"] and "failed 1 check(s)" in failed["North"]


def test_two_level_units_and_unknown_unit_names_are_refused(company, tmp_path):
    config, result, _, _ = company
    two = config.model_copy(update={"units": config.units.model_copy(update={"by": ["region", "channel"],
                                                                            "recipients": {}})})
    units = find_units(two, result.folder)
    assert "North / Online" in [u.name for u in units] and units[0].slug.count("-") >= 1
    typo = config.model_copy(update={"units": config.units.model_copy(update={"recipients": {"Wset": []}})})
    with pytest.raises(ConfigError, match="Wset"):
        find_units(typo, result.folder)
    with pytest.raises(ConfigError, match="No unit named 'Nowhere'"):
        run_units(config, result.period, only=["Nowhere"])
    with pytest.raises(ConfigError, match="outside the allowed domains"):
        _config(tmp_path, recipients={"West": ["west@elsewhere.org"]})


def test_cli_builds_one_unit_and_sends_it_once(tmp_path, monkeypatch, capsys):
    from cxpipeline.cli import main
    from tests.smtp_fixtures import attachment_of, start_smtp_server

    pack = tmp_path / "units.yaml"
    pack.write_text("pack_id: cli_units\nsource: {kind: demo, customers: 300, years: 2}\n"
                    "output: {root: out, sections: [summary, bridge]}\n"
                    "delivery: {recipients: [board@example.com], subject: '{company} pack {period}'}\n"
                    "units: {by: region, recipients: {West: [west@example.com]}}\n")
    assert main(["run", "--config", str(pack), "--period", "2026-Q2", "--unit", "west"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].endswith("cli_units--west/2026-Q2/board_pack.pdf")  # the unit's, then the company's
    assert lines[-1].endswith("cli_units/2026-Q2/board_pack.pdf")
    server = start_smtp_server()
    try:
        for key, value in {"CXPIPELINE_SMTP_HOST": "127.0.0.1", "CXPIPELINE_SMTP_PORT": str(server.port),
                           "CXPIPELINE_SMTP_FROM": "reports@example.com"}.items():
            monkeypatch.setenv(key, value)
        send = ["send", "--config", str(pack), "--period", "2026-Q2", "--unit", "West"]
        assert main(send) == 0
        assert main(send) == 0  # resend off: nothing twice
        assert server.handler.recipients() == ["west@example.com"]
        message = server.handler.messages[0][1]
        assert message["Subject"] == "Demo Retail Ltd - West pack 2026-Q2"
        assert attachment_of(message)[1] == "cli_units--west_2026-Q2_board_pack.pdf"
        ledger = [json.loads(line) for line in
                  (tmp_path / "out" / "cli_units--west" / "2026-Q2" / "delivery_ledger.jsonl").read_text().splitlines()]
        assert [(r["unit"], r["recipient"], r["result"]) for r in ledger] == [("West", "west@example.com", "sent")]
    finally:
        server.stop()
    assert main(["run", "--config", str(pack), "--period", "2026-Q2", "--unit", "Nowhere"]) == 2
    assert "No unit named 'Nowhere'" in capsys.readouterr().err


def test_pack_folders_are_resolved_paths(tmp_path):
    from cxpipeline.pipeline import pack_folder
    from cxpipeline.periods import parse_period

    (tmp_path / "packs").mkdir()
    config = config_from_dict({"pack_id": "p", "output": {"root": "../out"}}, base_dir=tmp_path / "packs")
    folder = pack_folder(config, parse_period("2026-W14"))
    assert ".." not in folder.parts and folder == (tmp_path / "out" / "p" / "2026-W14").resolve()


def test_pack_header_defaults_are_the_configs(tmp_path):
    from cxpipeline.config import config_from_dict
    from cxpipeline.runs import fallback_pack_id, read_pack_header

    pack = tmp_path / "minimal.yaml"
    pack.write_text("source: {kind: demo}\n")
    header, config = read_pack_header(pack), config_from_dict({"source": {"kind": "demo"}})
    assert (header.pack_id, header.kind, header.fiscal_year_start_month, header.smtp_conn_id,
            header.company_name) == (config.pack_id, config.period.type, config.period.fiscal_year_start_month,
                                     config.delivery.smtp_conn_id, config.brand.company_name)
    broken = tmp_path / "broken.yaml"
    broken.write_text("pack_id: retail_uk  # the UK\nperiod:\n  type: year\n  fiscal_year_start_month: 4\n"
                      "brand: [oops\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_pack_header(broken)
    assert fallback_pack_id(broken) == ("retail_uk", "year", 4)


def test_long_unit_names_that_begin_alike_get_folders_of_their_own():
    from cxpipeline.units import unit_pack_id, unit_slug

    company = "northwind-traders-enterprise-board-pack"  # 39 characters
    east, west = (unit_pack_id(company, unit_slug(f"North America Enterprise Accounts {side}"))
                  for side in ("East", "West"))
    assert east != west and len(east) <= 64 and len(west) <= 64
    assert east.startswith(company + "--north-america-") and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", east)
    assert unit_pack_id("units", "west") == "units--west"  # short ids are as they were
    assert unit_pack_id(company, "x" * 40) == unit_pack_id(company, "x" * 40)  # the same folder every run
