"""Print how ReportingPeriodTimetable schedules a set of cases (one JSON line)."""
import json

import pendulum

from airflow import plugins_manager
from airflow.timetables.base import DataInterval, TimeRestriction
from cx_timetables import ReportingPeriodTimetable


def iso(interval):
    return [interval.start.isoformat(), interval.end.isoformat()]


def runs(timetable, earliest, latest, n=6):
    out, last = [], None
    restriction = TimeRestriction(pendulum.parse(earliest), pendulum.parse(latest), catchup=True)
    for _ in range(n):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            break
        out.append(iso(info.data_interval) + [info.run_after.isoformat()])
        last = info.data_interval
    return out


cases = {
    "quarter": runs(ReportingPeriodTimetable("quarter"), "2024-01-01", "2024-12-31"),
    "quarter_unaligned_start": runs(ReportingPeriodTimetable("quarter"), "2024-02-15", "2024-09-30"),
    "month": runs(ReportingPeriodTimetable("month", delay_hours=0), "2024-11-01", "2025-02-01", n=3),
    "fiscal_quarter_april": runs(ReportingPeriodTimetable("quarter", 4), "2024-04-01", "2025-01-01"),
    "fiscal_year_july": runs(ReportingPeriodTimetable("year", 7), "2023-01-01", "2025-06-30"),
    # ISO weeks across a year boundary: 2026 has 53 weeks, W53 runs 28 Dec 2026 - 3 Jan 2027
    "week_year_boundary": runs(ReportingPeriodTimetable("week", delay_hours=2), "2026-12-21", "2027-01-10", n=5),
    "week_unaligned_start": runs(ReportingPeriodTimetable("week", delay_hours=0), "2026-12-23", "2027-01-03", n=5),
    "berlin_month": runs(ReportingPeriodTimetable("month", delay_hours=0, timezone="Europe/Berlin"),
                         "2024-03-01T00:00:00+01:00", "2024-04-30T00:00:00+02:00"),
}
tt = ReportingPeriodTimetable("quarter", 4)
cases["manual_after_q"] = iso(tt.infer_manual_data_interval(run_after=pendulum.datetime(2024, 7, 3, 9)))
cases["manual_week"] = iso(ReportingPeriodTimetable("week").infer_manual_data_interval(
    run_after=pendulum.datetime(2027, 1, 1, 9)))
cases["week_description"] = ReportingPeriodTimetable("week").description
cases["manual_on_boundary"] = iso(tt.infer_manual_data_interval(run_after=pendulum.datetime(2024, 7, 1)))
no_catchup = tt.next_dagrun_info(
    last_automated_data_interval=None,
    restriction=TimeRestriction(pendulum.datetime(2020, 1, 1), None, catchup=False))
cases["no_catchup_first"] = iso(no_catchup.data_interval)
cases["no_catchup_first_contains_past_only"] = no_catchup.data_interval.end <= pendulum.now("UTC")
cases["no_catchup_next_after_now"] = (no_catchup.data_interval.end.add(months=3) > pendulum.now("UTC"))
cases["roundtrip"] = ReportingPeriodTimetable.deserialize(tt.serialize()).serialize()
cases["summary"] = tt.summary
cases["description"] = tt.description
cases["registered"] = sorted(plugins_manager.get_timetables_plugins())
errors = []
for bad in (ReportingPeriodTimetable("fortnight"), ReportingPeriodTimetable("quarter", 13)):
    try:
        bad.validate()
    except Exception as exc:  # AirflowTimetableInvalid
        errors.append(type(exc).__name__)
cases["invalid"] = errors
print(json.dumps(cases))
