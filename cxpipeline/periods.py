"""Reporting periods: ISO weeks, months, quarters and years, calendar or fiscal.

A :class:`Period` is the half-open interval ``[start, end)`` of dates. Labels:
``2026-W14`` (ISO week, Monday to Sunday), ``2024-11`` (month), ``2024-Q4`` (quarter), ``2024``
(year); with a fiscal year that does not start in January the labels are ``FY2025-Q1`` /
``FY2025`` where the fiscal year is named after the calendar year in which it ends. Months and
weeks keep calendar labels. A week belongs to its ISO year (the year of its Thursday): 29 Dec
2025 - 4 Jan 2026 is ``2026-W01``; a year has 52 or 53 ISO weeks. The same week "a year ago"
is the week with the same number in the previous ISO year (week 52 when that year has no
week 53).

Nothing here reads the clock: "latest complete period" is always relative to a date given
by the caller (usually the last date present in the data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from cxpipeline.errors import ConfigError

__all__ = [
    "PERIOD_TYPES",
    "PERIOD_LABEL_PATTERN",
    "Period",
    "iso_weeks_in_year",
    "parse_period",
    "period_containing",
    "latest_complete_period",
    "comparison_period",
    "periods_between",
    "cadence_instants",
    "trend_periods",
    "DEFAULT_TREND_PERIODS",
]

PERIOD_TYPES = ("week", "month", "quarter", "year")
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def iso_weeks_in_year(year: int) -> int:
    """52 or 53: the number of ISO weeks of ``year`` (28 December is always in its last week)."""
    return date(year, 12, 28).isocalendar()[1]


def _iso_week_start(year: int, week: int) -> date:
    return date.fromisocalendar(year, week, 1)


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period ``[start, end)``; ``fiscal_start_month`` anchors quarters and years."""

    start: date
    kind: str
    fiscal_start_month: int = 1

    def __post_init__(self) -> None:
        if self.kind not in PERIOD_TYPES:
            raise ConfigError(
                f"Unknown period type {self.kind!r}.", fix=f"Use one of {', '.join(PERIOD_TYPES)}."
            )
        if self.kind == "week" and self.start.weekday() != 0:
            raise ConfigError(f"A week starts on a Monday, not on {self.start:%A %Y-%m-%d}.",
                              fix="Use period_containing(day, 'week') for the week of a day.")

    @property
    def months(self) -> int:
        """Length in months (0 for a week, which is counted in days)."""
        return 0 if self.kind == "week" else _MONTHS[self.kind]

    @property
    def end(self) -> date:
        """First day after the period (exclusive end)."""
        if self.kind == "week":
            return self.start + timedelta(days=7)
        return _add_months(self.start, self.months)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def is_fiscal(self) -> bool:
        return self.fiscal_start_month != 1 and self.kind not in ("month", "week")

    @property
    def fiscal_year(self) -> int:
        """Calendar year in which this period's fiscal year ends."""
        year_start = _add_months(self.start, -((self.start.month - self.fiscal_start_month) % 12))
        return _add_months(year_start, 11).year

    @property
    def label(self) -> str:
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        if self.kind == "quarter":
            quarter = ((self.start.month - self.fiscal_start_month) % 12) // 3 + 1
            prefix = f"FY{self.fiscal_year}" if self.is_fiscal else f"{self.start.year}"
            return f"{prefix}-Q{quarter}"
        return f"FY{self.fiscal_year}" if self.is_fiscal else f"{self.start.year}"

    @property
    def title(self) -> str:
        """Human title, e.g. 'Q4 2024 (1 Oct - 31 Dec 2024)'."""
        span = f"{self.start:%-d %b %Y} - {self.last_day:%-d %b %Y}"
        return f"{self.label} ({span})"

    def shift(self, periods: int) -> "Period":
        if self.kind == "week":
            return Period(self.start + timedelta(days=7 * periods), self.kind, self.fiscal_start_month)
        return Period(_add_months(self.start, periods * self.months), self.kind, self.fiscal_start_month)

    def previous(self) -> "Period":
        return self.shift(-1)

    def year_ago(self) -> "Period":
        if self.kind == "week":  # same ISO week number; week 53 maps to 52 in a 52-week year
            year, week, _ = self.start.isocalendar()
            week = min(week, iso_weeks_in_year(year - 1))
            return Period(_iso_week_start(year - 1, week), self.kind, self.fiscal_start_month)
        return Period(_add_months(self.start, -12), self.kind, self.fiscal_start_month)

    def __str__(self) -> str:
        return self.label


def period_containing(day: date, kind: str, fiscal_start_month: int = 1) -> Period:
    """The period of type ``kind`` that contains ``day``."""
    if kind == "week":
        return Period(day - timedelta(days=day.weekday()), kind, fiscal_start_month)
    first = date(day.year, day.month, 1)
    if kind == "month":
        return Period(first, kind, fiscal_start_month)
    offset = (first.month - fiscal_start_month) % _MONTHS[kind]
    return Period(_add_months(first, -offset), kind, fiscal_start_month)


def latest_complete_period(last_day_of_data: date, kind: str, fiscal_start_month: int = 1) -> Period:
    """The latest period that ends on or before ``last_day_of_data`` (inclusive)."""
    candidate = period_containing(last_day_of_data, kind, fiscal_start_month)
    if candidate.last_day <= last_day_of_data:
        return candidate
    return candidate.previous()


def comparison_period(period: Period, basis: str) -> Period:
    """The comparison period P-1: ``previous`` period or the same period a ``year_ago``."""
    if basis == "previous":
        return period.previous()
    if basis == "year_ago":
        return period.year_ago()
    raise ConfigError(
        f"Unknown comparison basis {basis!r}.", fix="Use 'previous' or 'year_ago'."
    )


def periods_between(first: Period, last: Period) -> list[Period]:
    """All periods from ``first`` to ``last`` inclusive, same kind as ``last``."""
    out, current = [], period_containing(first.start, last.kind, last.fiscal_start_month)
    while current <= last:
        out.append(current)
        current = current.shift(1)
    return out


#: Years a period label may name.
MIN_YEAR, MAX_YEAR = 1900, 2200
_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE)
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
#: A JSON-schema / regex ``pattern`` every label :func:`parse_period` can read matches (the
#: DAG's ``period`` param uses it, so the trigger form refuses a typo).
PERIOD_LABEL_PATTERN = (r"^((FY)?[0-9]{4}(-?Q[1-4])?|[0-9]{4}-(0[1-9]|1[0-2])|[0-9]{4}-?W(0[1-9]|[1-4][0-9]|5[0-3]))$")
_QUARTER_RE = re.compile(r"^(FY)?(\d{4})-?Q([1-4])$", re.IGNORECASE)
_YEAR_RE = re.compile(r"^(FY)?(\d{4})$", re.IGNORECASE)


def parse_period(text: str, fiscal_start_month: int = 1) -> Period:
    """Parse ``2026-W14``, ``2024-11``, ``2024-Q4``, ``2024``, ``FY2025-Q1`` or ``FY2025``.

    Raises
    ------
    ConfigError
        If the text is not one of those forms.
    """
    value = str(text).strip()
    year_text = next((m.group(1) if r in (_MONTH_RE, _WEEK_RE) else m.group(2)
                      for r in (_WEEK_RE, _MONTH_RE, _QUARTER_RE, _YEAR_RE) if (m := r.match(value))), None)
    if year_text is not None and not MIN_YEAR <= int(year_text) <= MAX_YEAR:
        # Outside these years the comparison period (a year earlier) or pandas' timestamps
        # (1677-2262) cannot be represented.
        raise ConfigError(f"Cannot report period {value!r}: the year {year_text} is outside "
                          f"{MIN_YEAR}-{MAX_YEAR}.",
                          fix="Write the period of your data, e.g. 2024-Q4 or 2025-03.")
    if m := _WEEK_RE.match(value):
        year, week = int(m.group(1)), int(m.group(2))
        weeks = iso_weeks_in_year(year)
        if not 1 <= week <= weeks:
            raise ConfigError(f"Cannot read period {value!r}: {year} has ISO weeks 01-{weeks:02d}.",
                              fix=f"Write a week of {year} as {year}-W01 ... {year}-W{weeks:02d}.")
        return Period(_iso_week_start(year, week), "week", fiscal_start_month)
    if m := _MONTH_RE.match(value):
        year, month = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12:
            return Period(date(year, month, 1), "month", fiscal_start_month)
    if m := _QUARTER_RE.match(value):
        fiscal_year, quarter = int(m.group(2)), int(m.group(3))
        if fiscal_start_month == 1:
            return Period(date(fiscal_year, 1 + 3 * (quarter - 1), 1), "quarter", 1)
        year_start = date(fiscal_year - 1, fiscal_start_month, 1)
        return Period(_add_months(year_start, 3 * (quarter - 1)), "quarter", fiscal_start_month)
    if m := _YEAR_RE.match(value):
        fiscal_year = int(m.group(2))
        if fiscal_start_month == 1:
            return Period(date(fiscal_year, 1, 1), "year", 1)
        return Period(date(fiscal_year - 1, fiscal_start_month, 1), "year", fiscal_start_month)
    raise ConfigError(
        f"Cannot read period {value!r}.",
        fix="Write an ISO week as 2026-W14, a month as 2024-11, a quarter as 2024-Q4 (fiscal: FY2025-Q1), a year as 2024.",
    )


#: Periods the trend covers unless the config says otherwise (config ``trend.periods``).
DEFAULT_TREND_PERIODS = 8


def trend_periods(period: Period, count: int) -> list[Period]:
    """The ``count`` periods ending with ``period``, oldest first."""
    return [period.shift(-back) for back in range(count - 1, -1, -1)]


def cadence_instants(period: Period, comparison: Period, trend_periods_count: int = 0) -> list:
    """The instants at which the extract measures each customer's purchase cadence.

    The personal lapse rule (and the lapse sensitivity table, whatever the rule) needs it at the
    start and end of the period and of its comparison. Under the personal rule the trend
    (:mod:`cxpipeline.metrics.trend`) needs it at every boundary of its ``trend_periods_count``
    periods too, so that each trend period's ledger is the one that period's own pack computes
    (:attr:`cxpipeline.config.Config.cadence_trend_periods` says how many; 0 under the fixed
    rule, where the trend needs no cadence and the extract is spared those instants).
    """
    import pandas as pd

    trend = trend_periods(period, max(int(trend_periods_count), 1))
    edges = [p.start for p in trend] + [period.end, comparison.start, comparison.end]
    return sorted({pd.Timestamp(t) for t in edges})
