"""A data-interval timetable whose every run covers exactly one reporting period.

``ReportingPeriodTimetable(kind="quarter", fiscal_year_start_month=4)`` schedules one run per
fiscal quarter (April-June, July-September, ...). The run's data interval is the period
``[first day, first day of the next period)`` and the run starts ``delay_hours`` after the
period ends (so late-arriving sales land first). ISO weeks (Monday to Monday), months,
quarters and years, calendar or fiscal, use the same period arithmetic as the library (:mod:`cxpipeline.periods`), so the DAG's
data interval and the pack's period label can never disagree.

- ``catchup=False``: the first run is the latest period that has ended.
- Backfills (``airflow backfill create --from-date ... --to-date ...``) create one run per
  period whose start lies in the range.
- Manual runs get the latest period that ended before the trigger time.

Airflow 3 needs custom timetables registered through a plugin (the scheduler deserialises them
by import path), which :class:`CxTimetablesPlugin` does.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pendulum
from pendulum import DateTime

from airflow.exceptions import AirflowTimetableInvalid
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from cxpipeline.periods import PERIOD_TYPES, Period, period_containing

__all__ = ["ReportingPeriodTimetable", "CxTimetablesPlugin"]

_MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December"]
_ADJECTIVE = {"week": "Weekly (ISO, Monday start)", "month": "Monthly", "quarter": "Quarterly", "year": "Yearly"}


class ReportingPeriodTimetable(Timetable):
    """One run per reporting period, after the period ends.

    Parameters
    ----------
    kind
        ``week``, ``month``, ``quarter`` or ``year``.
    fiscal_year_start_month
        First month of the (fiscal) year, 1-12; anchors quarters and years.
    delay_hours
        Hours after the period's end before the run starts.
    timezone
        Zone in which periods start at midnight.
    """

    def __init__(self, kind: str = "quarter", fiscal_year_start_month: int = 1,
                 delay_hours: int = 6, timezone: str = "UTC") -> None:
        self.kind = kind
        self.fiscal_year_start_month = int(fiscal_year_start_month)
        self.delay_hours = int(delay_hours)
        self.timezone_name = timezone
        fiscal = (f", fiscal year from {_MONTH_NAMES[self.fiscal_year_start_month - 1]}"
                  if 1 <= self.fiscal_year_start_month <= 12 and self.fiscal_year_start_month != 1
                  and kind not in ("month", "week") else "")
        self.description = (f"{_ADJECTIVE.get(kind, kind)} reporting periods{fiscal}; runs "
                            f"{self.delay_hours} h after each period ends ({timezone})")

    # --- serialisation (the scheduler rebuilds the timetable from this) ---
    def serialize(self) -> dict[str, Any]:
        return {"kind": self.kind, "fiscal_year_start_month": self.fiscal_year_start_month,
                "delay_hours": self.delay_hours, "timezone": self.timezone_name}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> "ReportingPeriodTimetable":
        return cls(**data)

    def validate(self) -> None:
        if self.kind not in PERIOD_TYPES:
            raise AirflowTimetableInvalid(f"kind must be one of {PERIOD_TYPES}, not {self.kind!r}")
        if not 1 <= self.fiscal_year_start_month <= 12:
            raise AirflowTimetableInvalid("fiscal_year_start_month must be 1-12")
        if not 0 <= self.delay_hours <= 24 * 31:
            raise AirflowTimetableInvalid("delay_hours must be between 0 and 744")

    @property
    def summary(self) -> str:
        fiscal = f" FY@{self.fiscal_year_start_month}" if self.fiscal_year_start_month != 1 else ""
        return f"{self.kind}{fiscal} +{self.delay_hours}h"

    # --- period arithmetic ---
    def period_of(self, moment: DateTime) -> Period:
        """The reporting period containing ``moment`` (in the timetable's zone)."""
        local = pendulum.instance(moment).in_timezone(self.timezone_name)
        return period_containing(local.date(), self.kind, self.fiscal_year_start_month)

    def _at(self, day: date) -> DateTime:
        return pendulum.datetime(day.year, day.month, day.day, tz=self.timezone_name)

    def _info(self, period: Period) -> DagRunInfo:
        start, end = self._at(period.start), self._at(period.end)
        return DagRunInfo(run_after=end.add(hours=self.delay_hours),
                          data_interval=DataInterval(start=start, end=end))

    def _first_period_from(self, moment: DateTime) -> Period:
        """The first period starting at or after ``moment``."""
        period = self.period_of(moment)
        return period if self._at(period.start) >= moment else period.shift(1)

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        # The latest period that has ended by the time of the trigger.
        period = self.period_of(run_after).previous()
        return DataInterval(start=self._at(period.start), end=self._at(period.end))

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            period = self.period_of(last_automated_data_interval.start).shift(1)
        elif restriction.earliest is None:
            return None  # no start_date: nothing to schedule
        else:
            period = self._first_period_from(restriction.earliest)
        if not restriction.catchup:
            # Never go further back than the latest period that has already ended.
            latest_ended = self.period_of(pendulum.now(self.timezone_name)).previous()
            period = max(period, latest_ended, key=lambda p: p.start)
            if restriction.earliest is not None:
                period = max(period, self._first_period_from(restriction.earliest),
                             key=lambda p: p.start)
        if restriction.latest is not None and self._at(period.start) > restriction.latest:
            return None
        return self._info(period)


class CxTimetablesPlugin(AirflowPlugin):
    name = "cx_timetables"
    timetables = [ReportingPeriodTimetable]
