"""ISO weeks as reporting periods: labels, year boundaries, comparison weeks, panels, cohorts."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest

from cxpipeline.config import config_from_dict
from cxpipeline.errors import ConfigError
from cxpipeline.metrics.cohorts import cohort_table
from cxpipeline.panel import build_panel
from cxpipeline.periods import (
    PERIOD_LABEL_PATTERN,
    Period,
    comparison_period,
    iso_weeks_in_year,
    latest_complete_period,
    parse_period,
    period_containing,
    periods_between,
)


def test_week_53_of_2026_and_week_1_of_2027_cross_the_calendar_year():
    assert iso_weeks_in_year(2026) == 53 and iso_weeks_in_year(2027) == 52
    w53 = parse_period("2026-W53")
    assert (w53.start, w53.end, w53.kind) == (date(2026, 12, 28), date(2027, 1, 4), "week")
    assert w53.title == "2026-W53 (28 Dec 2026 - 3 Jan 2027)"
    w01 = w53.shift(1)
    assert w01.label == "2027-W01" and w01.start == date(2027, 1, 4)
    assert w01.previous() == w53
    # 1-3 January 2027 belong to 2026's last week; 31 Dec 2024 to 2025-W01
    assert period_containing(date(2027, 1, 3), "week").label == "2026-W53"
    assert period_containing(date(2024, 12, 31), "week").label == "2025-W01"
    assert [p.label for p in periods_between(parse_period("2026-W52"), parse_period("2027-W02"))] == [
        "2026-W52", "2026-W53", "2027-W01", "2027-W02"]


def test_comparison_weeks_previous_and_same_week_last_year():
    w14 = parse_period("2026-W14")
    assert w14.start == date(2026, 3, 30)  # Monday start
    assert comparison_period(w14, "previous").label == "2026-W13"
    assert comparison_period(w14, "year_ago").label == "2025-W14"
    # 2025 has no week 53: the same week last year of 2026-W53 is 2025-W52
    assert comparison_period(parse_period("2026-W53"), "year_ago").label == "2025-W52"
    assert comparison_period(parse_period("2027-W01"), "year_ago").label == "2026-W01"


def test_latest_complete_week_and_bad_labels():
    assert latest_complete_period(date(2026, 9, 30), "week").label == "2026-W39"  # Wed: W40 incomplete
    assert latest_complete_period(date(2026, 10, 4), "week").label == "2026-W40"  # Sunday ends it
    assert parse_period("2026w05").label == "2026-W05"
    with pytest.raises(ConfigError, match="2027 has ISO weeks 01-52"):
        parse_period("2027-W53")
    with pytest.raises(ConfigError, match="2026 has ISO weeks 01-53"):
        parse_period("2026-W00")
    with pytest.raises(ConfigError, match="starts on a Monday"):
        Period(date(2026, 4, 1), "week")


@pytest.mark.parametrize("label", ["2026-W14", "2026-W53", "2024-11", "2024-Q4", "2024Q4", "2024",
                                   "FY2025-Q1", "FY2025"])
def test_the_param_pattern_accepts_every_label_the_library_reads(label):
    assert re.fullmatch(PERIOD_LABEL_PATTERN, label)
    parse_period(label, 4)


@pytest.mark.parametrize("label", ["2026-W54", "2024-13", "2024-Q5", "Q4-2024", "24-11", "2024-11 ", "last"])
def test_the_param_pattern_refuses_typos(label):
    assert not re.fullmatch(PERIOD_LABEL_PATTERN, label)


def test_config_accepts_week_and_fiscal_start_does_not_move_weeks():
    config = config_from_dict({"period": {"type": "week", "fiscal_year_start_month": 4}})
    assert config.period.type == "week"
    week = period_containing(date(2026, 4, 1), "week", 4)
    assert week.label == "2026-W14" and not week.is_fiscal


def test_weekly_panel_and_cohorts_count_each_purchase_in_its_iso_week():
    tx = pd.DataFrame({
        "customer_id": ["a", "a", "b", "b", "c"],
        "order_id": ["1", "2", "3", "4", "5"],
        "ordered_at": pd.to_datetime(["2026-12-27 23:00", "2026-12-28 08:00", "2027-01-03 10:00",
                                      "2027-01-04 00:00", "2027-01-05 12:00"]),
        "revenue": [10.0, 20.0, 30.0, 40.0, 50.0], "cost": 0.0, "cost_to_serve": 0.0, "is_return": False,
    })
    panel = build_panel(tx, "week", end=pd.Timestamp("2027-01-11"))
    by_week = panel.groupby(panel["period_start"].dt.strftime("%Y-%m-%d"))["revenue"].sum().to_dict()
    assert by_week == {"2026-12-21": 10.0, "2026-12-28": 50.0, "2027-01-04": 90.0}
    cohorts = cohort_table(panel, parse_period("2027-W01"))
    assert sorted(cohorts["cohort"].unique()) == ["2026-W52", "2026-W53", "2027-W01"]
    a = cohorts.loc[cohorts["cohort"] == "2026-W52"]
    assert list(a["period"]) == ["2026-W52", "2026-W53", "2027-W01"]
    assert list(a["count_active"]) == [1, 1, 0]
    # summed over cohorts, each week's revenue is the panel's
    assert cohorts.groupby("period")["revenue"].sum().to_dict() == {"2026-W52": 10.0, "2026-W53": 50.0,
                                                                     "2027-W01": 90.0}
