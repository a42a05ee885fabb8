"""DAG integrity and the reporting-period timetable (Airflow runs in child processes)."""

from __future__ import annotations

import shutil

import pytest

from tests.airflow_fixtures import REPO, airflow_env, run_script

PACK = REPO / "examples" / "airflow" / "packs" / "demo.yaml"
STAGES = ["validate", "extract", "metrics", "model", "render", "check", "deliver"]


def test_example_packs_parse_fast_without_db_or_connections(tmp_path):
    # No metadata DB exists at all: any query at parse time would show up (or fail).
    env = airflow_env(tmp_path / "home", database=f"sqlite:///{tmp_path / 'absent' / 'none.db'}")
    result = run_script("parse_dags.py", env, str(REPO / "dags"))
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["cx_board_pack_demo_airflow"]
    assert result["tasks"]["cx_board_pack_demo_airflow"] == STAGES
    assert result["queries"] == [] and result["connects"] == [] and result["lookups"] == []
    for stat in result["stats"]:
        assert stat["duration"] < 0.5, stat
    assert result["timetable"]["cx_board_pack_demo_airflow"] == "quarter +6h"


def test_one_dag_per_pack_and_a_broken_pack_hides_nothing(tmp_path):
    packs = tmp_path / "packs"
    packs.mkdir()
    shutil.copy(PACK, packs / "demo.yaml")
    (packs / "retail_fy.yaml").write_text(
        "pack_id: retail_fy\nperiod:\n  type: year\n  fiscal_year_start_month: 7\n")
    (packs / "broken.yaml").write_text("pack_id: [unclosed\n")
    env = airflow_env(tmp_path / "home", CXPIPELINE_PACKS_DIR=str(packs))
    result = run_script("parse_dags.py", env, str(REPO / "dags"))
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["cx_board_pack_demo_airflow", "cx_board_pack_invalid_broken",
                                 "cx_board_pack_retail_fy"]
    assert result["tasks"]["cx_board_pack_invalid_broken"] == ["config_error"]
    assert result["timetable"]["cx_board_pack_retail_fy"] == "year FY@7 +6h"


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
