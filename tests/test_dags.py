"""DAG integrity and the reporting-period timetable (Airflow runs in child processes)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.airflow_fixtures import REPO, airflow_env, run_script

PACK = REPO / "examples" / "airflow" / "packs" / "demo.yaml"
STAGES = ["extract", "validate", "metrics", "model", "render", "check", "publish", "deliver"]
STORE = "memory://cx-published"  # the artifact store of the dag.test scenario (fsspec, in-process)
UNITS_STORE, UNITS_PUBLIC = "memory://cx-units", "https://packs.example.com/cx"  # the units scenario's


def test_example_packs_parse_fast_without_db_or_connections(tmp_path):
    # No metadata DB exists at all: any query at parse time would show up (or fail).
    env = airflow_env(tmp_path / "home", database=f"sqlite:///{tmp_path / 'absent' / 'none.db'}")
    result = run_script("parse_dags.py", env, str(REPO / "dags"))
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["cx_board_pack_demo_airflow", "cx_board_pack_regions_weekly"]
    assert result["tasks"]["cx_board_pack_demo_airflow"] == STAGES
    assert result["tasks"]["cx_board_pack_regions_weekly"] == STAGES + ["units", "unit.pack", "unit.deliver"]
    assert result["queries"] == [] and result["connects"] == [] and result["lookups"] == []
    # heavy imports happen inside tasks, never at parse time (the parse's duration is printed
    # by the processor; it is not asserted here: it depends on the machine's load)
    assert result["heavy_modules"] == [], result["heavy_modules"]
    assert result["timetable"]["cx_board_pack_demo_airflow"] == "quarter +6h"
    assert result["timetable"]["cx_board_pack_regions_weekly"] == "week +6h"
    # the chain reads as it runs: one edge per step, the units branching off the model
    assert sorted(result["edges"]["cx_board_pack_demo_airflow"]) == sorted(map(list, zip(STAGES, STAGES[1:])))
    assert sorted(result["edges"]["cx_board_pack_regions_weekly"]) == sorted(
        list(map(list, zip(STAGES, STAGES[1:]))) + [["model", "units"], ["model", "unit.pack"],
                                                     ["units", "unit.pack"], ["unit.pack", "unit.deliver"]])
    # operators read a Markdown page per pack, and every task has a doc
    doc = result["doc_md"]["cx_board_pack_regions_weekly"]
    assert "every ISO week" in doc and "north@example.com" in doc and "resend" in doc
    assert result["undocumented_tasks"] == []
    period = result["params"]["cx_board_pack_demo_airflow"]["period"]
    assert period["schema"]["pattern"].startswith("^") and "empty" in period["description"].lower()


def test_one_dag_per_pack_and_a_broken_pack_keeps_its_dag_id_and_schedule(tmp_path):
    packs = tmp_path / "packs"
    packs.mkdir()
    shutil.copy(PACK, packs / "demo.yaml")
    (packs / "retail_fy.yaml").write_text(
        "pack_id: retail_fy\nperiod:\n  type: year\n  fiscal_year_start_month: 7\n")
    # a YAML typo in an existing pack: its DAG keeps its id and weekly schedule, and fails
    (packs / "weekly.yaml").write_text("pack_id: weekly_trading\nperiod:\n  type: week\ndelivery: [unclosed\n")
    env = airflow_env(tmp_path / "home", CXPIPELINE_PACKS_DIR=str(packs))
    result = run_script("parse_dags.py", env, str(REPO / "dags"))
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["cx_board_pack_demo_airflow", "cx_board_pack_retail_fy",
                                 "cx_board_pack_weekly_trading"]
    assert result["tasks"]["cx_board_pack_weekly_trading"] == ["config_error"]
    assert result["timetable"]["cx_board_pack_weekly_trading"] == "week +6h"
    assert "weekly.yaml, line 5" in result["doc_md"]["cx_board_pack_weekly_trading"]
    assert result["timetable"]["cx_board_pack_retail_fy"] == "year FY@7 +6h"


@pytest.mark.parametrize("packs_dir", ["", "missing", "empty"])
def test_no_pack_folder_is_an_import_error_not_zero_dags(tmp_path, packs_dir):
    (tmp_path / "empty").mkdir()
    folder = "" if packs_dir == "" else str(tmp_path / packs_dir)
    dags = tmp_path / "dags"  # the DAG file copied to a deployment: no examples folder beside it
    dags.mkdir()
    shutil.copy(REPO / "dags" / "cx_board_pack.py", dags)
    env = airflow_env(tmp_path / "home", CXPIPELINE_PACKS_DIR=folder)
    result = run_script("parse_dags.py", env, str(dags))
    assert result["dag_ids"] == []
    [error] = result["import_errors"].values()
    assert "CXPIPELINE_PACKS_DIR" in error
    assert {"": "is not set", "missing": "does not exist", "empty": "holds no *.yaml"}[packs_dir] in error


@pytest.fixture(scope="module")
def timetable_cases(tmp_path_factory):
    return run_script("timetable_cases.py", airflow_env(tmp_path_factory.mktemp("tt")))


def test_quarters_run_after_each_quarter_ends(timetable_cases):
    assert timetable_cases["quarter"] == [
        ["2024-01-01T00:00:00+00:00", "2024-04-01T00:00:00+00:00", "2024-04-01T06:00:00+00:00"],
        ["2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00", "2024-07-01T06:00:00+00:00"],
        ["2024-07-01T00:00:00+00:00", "2024-10-01T00:00:00+00:00", "2024-10-01T06:00:00+00:00"],
        ["2024-10-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00", "2025-01-01T06:00:00+00:00"],
    ]
    # a start date inside a quarter begins with the next whole quarter
    assert [r[0] for r in timetable_cases["quarter_unaligned_start"]] == [
        "2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00"]


def test_months_fiscal_quarters_and_fiscal_years(timetable_cases):
    assert [r[:2] for r in timetable_cases["month"]] == [
        ["2024-11-01T00:00:00+00:00", "2024-12-01T00:00:00+00:00"],
        ["2024-12-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"],
        ["2025-01-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00"],
    ]
    assert [r[0][:10] for r in timetable_cases["fiscal_quarter_april"]] == [
        "2024-04-01", "2024-07-01", "2024-10-01", "2025-01-01"]
    assert [r[:2] for r in timetable_cases["fiscal_year_july"]] == [
        ["2023-07-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00"],
        ["2024-07-01T00:00:00+00:00", "2025-07-01T00:00:00+00:00"],
    ]
    assert [r[:2] for r in timetable_cases["berlin_month"]] == [
        ["2024-03-01T00:00:00+01:00", "2024-04-01T00:00:00+02:00"],
        ["2024-04-01T00:00:00+02:00", "2024-05-01T00:00:00+02:00"],
    ]


def test_iso_weeks_across_a_year_boundary(timetable_cases):
    assert timetable_cases["week_year_boundary"] == [
        ["2026-12-21T00:00:00+00:00", "2026-12-28T00:00:00+00:00", "2026-12-28T02:00:00+00:00"],  # 2026-W52
        ["2026-12-28T00:00:00+00:00", "2027-01-04T00:00:00+00:00", "2027-01-04T02:00:00+00:00"],  # 2026-W53
        ["2027-01-04T00:00:00+00:00", "2027-01-11T00:00:00+00:00", "2027-01-11T02:00:00+00:00"],  # 2027-W01
    ]
    # a start date on a Wednesday begins with the next Monday's week
    assert [r[0][:10] for r in timetable_cases["week_unaligned_start"]] == ["2026-12-28"]
    # triggered on Friday 1 Jan 2027, a manual run covers the last whole week, 2026-W52
    assert timetable_cases["manual_week"] == ["2026-12-21T00:00:00+00:00", "2026-12-28T00:00:00+00:00"]
    assert timetable_cases["week_description"].startswith("Weekly (ISO, Monday start) reporting periods")


def test_manual_runs_catchup_and_registration(timetable_cases):
    q1_fy2025 = ["2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00"]
    assert timetable_cases["manual_after_q"] == q1_fy2025
    assert timetable_cases["manual_on_boundary"] == q1_fy2025
    assert timetable_cases["no_catchup_first_contains_past_only"] is True
    assert timetable_cases["no_catchup_next_after_now"] is True
    assert timetable_cases["roundtrip"] == {"kind": "quarter", "fiscal_year_start_month": 4,
                                            "delay_hours": 6, "timezone": "UTC"}
    assert timetable_cases["registered"] == ["cx_timetables.ReportingPeriodTimetable"]
    assert timetable_cases["invalid"] == ["AirflowTimetableInvalid", "AirflowTimetableInvalid"]
    assert timetable_cases["description"].startswith("Quarterly reporting periods, fiscal year from April")


# --- dag.test() on the demo data, with a real SMTP server ------------------------------------------


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Eight dag.test() runs in one child process (see airflow_scripts/dag_test_scenario.py)."""
    root = tmp_path_factory.mktemp("dagtest")
    packs = root / "packs"
    packs.mkdir()
    shutil.copy(PACK, packs / "demo.yaml")
    env = airflow_env(root / "home", CXPIPELINE_PACKS_DIR=str(packs),
                      CXPIPELINE_OUTPUT_ROOT=str(root / "out"), CXPIPELINE_ALERT_TO="ops@example.com",
                      CXPIPELINE_SMTP_BACKOFF_SECONDS="0.05", CXPIPELINE_ARTIFACT_URL=STORE)
    result = run_script("dag_test_scenario.py", env, "cx_board_pack_demo_airflow", str(root / "out"),
                        timeout=600)
    return {run["name"]: run for run in result["runs"]}


def _recipients(run):
    return [rcpt for email in run["emails"] for rcpt in email["to"]]


def test_scheduled_period_emails_each_recipient_the_identical_pdf(scenario):
    first = scenario["first"]
    assert first["state"] == "success", first["tasks"]
    assert first["data_interval"] == ["2025-01-01 00:00:00+00:00", "2025-04-01 00:00:00+00:00"]
    assert first["metrics"]["period"] == "2025-Q1"
    assert _recipients(first) == ["ceo@example.com", "cfo@example.com"]
    for email in first["emails"]:
        assert email["content_type"] == "application/pdf"
        assert email["filename"] == "demo_airflow_2025-Q1_board_pack.pdf"
        assert email["sha256"] == first["pdf_sha256"]
        assert email["subject"] == "Demo Retail Ltd board pack 2025-Q1"
    assert [(r["recipient"], r["result"]) for r in first["ledger"]] == [
        ("ceo@example.com", "sent"), ("cfo@example.com", "sent")]
    assert first["tasks"] == {name: "success" for name in STAGES}


def test_checked_pack_is_published_and_the_ledger_records_the_pointer(scenario):
    first, rerun = scenario["first"], scenario["rerun"]
    published = first["published"]
    pointer_url = f"{STORE}/demo_airflow/2025-Q1/LATEST.json"
    assert published["pointer_url"] == pointer_url
    # the store's committed PDF, the local checked PDF and every attachment are the same bytes
    assert published["pdf_sha256"] == first["pdf_sha256"]
    assert published["versions"] == [published["version"]]
    for email in first["emails"]:
        # The email links only a URL an executive can open (http/https); a memory:// or s3://
        # store is recorded in the ledger but never printed, and no server path either.
        assert pointer_url not in email["text"] and "memory://" not in email["text"]
    assert {row["location"] for row in first["ledger"]} == {pointer_url}
    # the rerun republished the rebuilt folder; one version is kept
    assert rerun["published"]["pdf_sha256"] == first["pdf_sha256"]
    assert rerun["published"]["versions"] == [rerun["published"]["version"]]
    for name in ("after_fix", "backfill_q3", "backfill_q4"):
        assert scenario[name]["published"]["pdf_sha256"] == scenario[name]["pdf_sha256"]


def test_validate_stops_a_period_the_data_does_not_cover(scenario):
    uncovered = scenario["uncovered"]
    assert uncovered["state"] == "failed"
    assert uncovered["tasks"]["extract"] == "success" and uncovered["tasks"]["validate"] == "failed"
    assert {uncovered["tasks"][t] for t in STAGES[2:]} == {"upstream_failed"}
    assert "published" not in uncovered and "pdf_sha256" not in uncovered
    [alert] = uncovered["emails"]  # nothing to the recipients, one alert to ops
    assert alert["to"] == ["ops@example.com"] and "failed at validate" in alert["subject"]
    assert "does not cover 2027-Q1" in alert["body"]


def test_rerun_sends_nothing_and_resend_sends_again(scenario):
    rerun, resend = scenario["rerun"], scenario["resend"]
    assert rerun["state"] == resend["state"] == "success"
    assert rerun["pdf_sha256"] == scenario["first"]["pdf_sha256"]  # rebuilt byte for byte
    assert rerun["emails"] == [] and len(rerun["ledger"]) == 2
    assert _recipients(resend) == ["ceo@example.com", "cfo@example.com"]
    assert {e["sha256"] for e in resend["emails"]} == {scenario["first"]["pdf_sha256"]}
    assert len(resend["ledger"]) == 4


def test_dry_run_checks_and_builds_but_sends_and_records_nothing(scenario):
    dry = scenario["dry_run"]
    assert dry["state"] == "success", dry["tasks"]
    assert dry["tasks"]["deliver"] == "success"
    assert dry["emails"] == [] and len(dry["ledger"]) == 4  # the resend's four rows, no more


def test_rejected_recipient_fails_the_run_and_only_they_get_it_after(scenario):
    rejected, after = scenario["rejected"], scenario["after_fix"]
    assert rejected["state"] == "failed"
    assert rejected["tasks"]["deliver"] == "failed"
    assert rejected["tasks"]["check"] == rejected["tasks"]["publish"] == "success"
    pack_emails = [e for e in rejected["emails"] if e["to"] != ["ops@example.com"]]
    alerts = [e for e in rejected["emails"] if e["to"] == ["ops@example.com"]]
    assert [e["to"] for e in pack_emails] == [["ceo@example.com"]]
    assert pack_emails[0]["filename"] == "demo_airflow_2025-Q2_board_pack.pdf"
    assert len(alerts) == 1 and "failed at deliver" in alerts[0]["subject"]
    assert "cfo@example.com" in alerts[0]["body"] and "550" in alerts[0]["body"]
    assert after["state"] == "success"
    assert after["data_interval"][0].startswith("2025-07-01")  # its own interval is Q3 ...
    assert after["metrics"]["period"] == "2025-Q2"  # ... but params.period wins
    assert _recipients(after) == ["cfo@example.com"]
    assert after["emails"][0]["sha256"] == after["pdf_sha256"] == rejected["pdf_sha256"]


def test_backfill_of_four_quarters_gives_four_consistent_packs(scenario):
    runs = [scenario[name] for name in ("first", "rejected", "backfill_q3", "backfill_q4")]
    assert [r["data_interval"][0][:10] for r in runs] == ["2025-01-01", "2025-04-01", "2025-07-01", "2025-10-01"]
    packs = [scenario[name] for name in ("first", "after_fix", "backfill_q3", "backfill_q4")]
    assert [r["state"] for r in packs] == ["success"] * 4
    assert [r["metrics"]["period"] for r in packs] == ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]
    headlines = [r["metrics"]["headline"] for r in packs]
    assert len({json.dumps(h, sort_keys=True) for h in headlines}) == 4
    assert len({r["pdf_sha256"] for r in packs}) == 4
    # each quarter's comparison revenue is the previous quarter's revenue, to the cent
    for earlier, later in zip(headlines, headlines[1:]):
        assert round(later["revenue_previous"], 2) == round(earlier["revenue_current"], 2)
    for run in packs[2:]:
        assert _recipients(run) == ["board@example.com"]
        assert run["emails"][0]["sha256"] == run["pdf_sha256"]


# --- mapped unit packs, fail-fast and retried errors (dag.test, real SMTP) -------------------------


@pytest.fixture(scope="module")
def units_scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("dagunits")
    packs = root / "packs"
    packs.mkdir()
    text = (REPO / "examples" / "airflow" / "packs" / "regions_weekly.yaml").read_text()
    (packs / "regions_weekly.yaml").write_text(
        text.replace("customers: 1200", "customers: 500").replace(
            "sections: [summary, bridge, ledger, at-risk, data-quality]", "sections: [summary, bridge]"))
    env = airflow_env(root / "home", CXPIPELINE_PACKS_DIR=str(packs), CXPIPELINE_OUTPUT_ROOT=str(root / "out"),
                      CXPIPELINE_TASK_RETRIES="2", CXPIPELINE_RETRY_DELAY_SECONDS="1",
                      CXPIPELINE_ARTIFACT_URL=UNITS_STORE, CXPIPELINE_ARTIFACT_PUBLIC_URL=UNITS_PUBLIC)
    result = run_script("dag_test_units.py", env, str(root / "out"), timeout=900)
    return {run["name"]: run for run in result["runs"]}


def _tis(run, task):
    """{unit name (the mapped instance's name in the UI) or map index: (state, tries)}."""
    names = {ti[1]: ti[4] for ti in run["tis"] if ti[0] == "unit.pack"}  # a skipped task renders no name
    return {names.get(ti[1]) or ti[1]: (ti[2], ti[3]) for ti in run["tis"] if ti[0] == task}


def test_weekly_run_builds_and_sends_each_unit_pack_and_one_failing_unit_fails_alone(units_scenario):
    run = units_scenario["weekly"]
    assert run["data_interval"] == ["2026-09-21 00:00:00+00:00", "2026-09-28 00:00:00+00:00"]  # 2026-W39
    assert run["state"] == "failed"  # North failed its checks ...
    packs = _tis(run, "unit.pack")
    assert packs["North"] == ("failed", 1)  # ... at once, no retry
    assert {name: state for name, (state, _) in packs.items() if name != "North"} == {
        "East": "success", "International": "success", "South": "success", "West": "success"}
    delivered = _tis(run, "unit.deliver")  # each unit's delivery waits for its own pack only
    assert delivered["North"][0] == "upstream_failed"
    assert {name: state for name, (state, _) in delivered.items() if name != "North"} == {
        "East": "success", "International": "success", "South": "success", "West": "success"}
    assert _tis(run, "deliver")[-1] == ("success", 1)  # the company pack is unaffected
    by_rcpt = {tuple(e["to"]): e for e in run["emails"]}
    assert set(by_rcpt) == {("trading@example.com",), ("south@example.com",), ("east@example.com",),
                            ("west@example.com",), ("intl@example.com",)}
    assert by_rcpt[("south@example.com",)]["subject"] == "Demo Retail Ltd - South weekly pack 2026-W39"
    assert by_rcpt[("south@example.com",)]["filename"] == "regions_weekly--south_2026-W39_board_pack.pdf"
    assert by_rcpt[("trading@example.com",)]["subject"] == "Demo Retail Ltd weekly pack 2026-W39"


def test_each_unit_pack_is_published_under_its_own_prefix_and_its_email_links_its_own_pdf(units_scenario):
    run = units_scenario["weekly"]
    pointers = run["published"]  # pack folder name -> its LATEST.json in the store
    # the company pack and each unit that passed its checks; North failed them: not published
    assert sorted(pointers) == ["regions_weekly"] + [f"regions_weekly--{u}" for u in
                                                      ("east", "international", "south", "west")]
    by_rcpt = {e["to"][0]: e for e in run["emails"]}
    for prefix, rcpt in [("regions_weekly", "trading@example.com"), ("regions_weekly--south", "south@example.com"),
                         ("regions_weekly--west", "west@example.com")]:
        pointer, email = pointers[prefix], by_rcpt[rcpt]
        assert pointer["pack_id"] == prefix and pointer["period"] == "2026-W39"
        assert pointer["pdf_sha256"] == email["sha256"]  # the attachment is the published PDF
        link = f"{UNITS_PUBLIC}/{prefix}/2026-W39/{pointer['version']}/board_pack.pdf"
        assert f"The published pack: {link}" in email["text"].splitlines()  # its own PDF over https
        assert "memory://" not in email["text"] and "LATEST.json" not in email["text"]


def test_rerun_sends_nothing_twice_and_one_unit_can_be_rerun_by_name(units_scenario):
    assert units_scenario["rerun"]["emails"] == []
    one = units_scenario["one_unit"]
    assert list(_tis(one, "unit.pack")) == ["South"]
    assert sorted(e["to"][0] for e in one["emails"]) == ["south@example.com", "trading@example.com"]


def test_permanent_errors_fail_at_once_and_smtp_outages_are_retried(units_scenario):
    permanent = units_scenario["permanent"]
    assert permanent["state"] == "failed"
    assert _tis(permanent, "validate")[-1] == ("failed", 1)  # 2027-W01 is not in the data: no retry
    down = units_scenario["smtp_down"]
    assert down["state"] == "failed"
    assert _tis(down, "deliver")[-1] == ("failed", 3)  # connection refused: tried 1 + 2 retries
    assert _tis(down, "unit.pack")["East"] == ("success", 1)
    assert _tis(down, "unit.deliver")["East"] == ("failed", 3)
