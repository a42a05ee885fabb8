"""Converting a file's columns, vectorised: amounts, dates in the reporting time zone, ids,
yes/no flags, each read in one convention for the whole column (:mod:`cxpipeline.sources.formats`
decides which), with the unreadable cells marked for the caller to count.

Distinct values are converted once and spread back (:func:`on_uniques`): invoice lines repeat
timestamps, prices and ids heavily.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from datetime import date, datetime

import numpy as np
import pandas as pd

from cxpipeline.errors import InputError
from cxpipeline.sources.file_readers import FileInfo
from cxpipeline.sources.formats import (
    DATE_FAMILIES,
    NULL_TOKENS,
    AmbiguousFormat,
    DateReading,
    MixedCurrencies,
    decide_amount_format,
    decide_date_format,
)

__all__ = [
    "MAX_UNREADABLE_SHARE", "as_text", "customer_ids", "read_numbers", "round_money", "read_booleans",
    "to_zone", "on_uniques", "DateColumn", "read_dates", "suggest_date_format",
    "unreadable_check", "first_note",
]

#: If more than this share of the non-empty values of a date or amount column cannot be read,
#: the column's format is wrong (not a few bad rows): raise instead of excluding most rows.
MAX_UNREADABLE_SHARE = 0.5

# --------------------------------------------------------------------------------------------
# Converting columns (vectorised)


def as_text(values: pd.Series) -> pd.Series:
    """Strip text; empty -> missing. Integral floats (a column read as float) lose '.0'."""
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        integral = np.isfinite(arr) & (np.floor(arr) == arr) & (np.abs(arr) < 2**53)
        text = pd.Series(arr, index=values.index).astype("string")
        whole = pd.Series(np.where(integral, arr, 0).astype("int64"), index=values.index).astype("string")
        return text.where(~integral, whole).astype("string")
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def customer_ids(values: pd.Series) -> pd.Series:
    """Customer / referrer ids as clean strings: '17850.0' -> '17850', 'nan' -> missing."""
    def clean(distinct: pd.Series) -> pd.Series:
        distinct = distinct.str.replace(r"^(-?\d+)\.0*$", r"\1", regex=True)
        return distinct.mask(distinct.str.lower().isin(NULL_TOKENS)).astype(object)

    text = as_text(values)
    return pd.Series(on_uniques(text, clean, None), index=values.index, dtype="string")


def read_numbers(values: pd.Series, decimal: str | None, info: FileInfo,
             column: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Parse amounts in one convention for the whole column (see :mod:`.formats`).

    Returns (float64 values with NaN where unreadable, empty-cell mask, a note saying how the
    column was read, or None when it was plain numbers).
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype("float64")
    if pd.api.types.is_numeric_dtype(values.dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        return np.where(np.isfinite(arr), arr, np.nan), np.isnan(arr), None
    text = as_text(values)
    empty = text.isna().to_numpy()
    readings = []

    def convert(distinct: pd.Series) -> pd.Series:
        try:
            readings.append(decide_amount_format(distinct, decimal))
        except AmbiguousFormat as exc:
            shown = "; ".join(f"{value!r} is {a} or {b}" for value, a, b in exc.examples)
            raise InputError(
                f"The amounts in column '{column}' can be read with a decimal point or a decimal "
                f"comma, and the two disagree: {shown}.",
                where=info.where(column),
                fix="Set source.decimal: '.' (1,234.56) or source.decimal: ',' (1.234,56).",
            ) from None
        except MixedCurrencies as exc:
            raise InputError(
                f"The amounts in column '{column}' are in more than one currency "
                f"({', '.join(exc.marks)}; e.g. {', '.join(map(repr, exc.examples))}): adding them up "
                "would mix currencies.",
                where=info.where(column),
                fix="Export one currency per file, or export the currency in a column of its own, map it "
                    "as columns.currency and set source.currency to the currency to report.",
            ) from None
        return pd.Series(readings[0].values, dtype="float64")

    arr = on_uniques(text, convert, np.nan).astype("float64")
    reading = readings[0]
    if reading.marks:
        info.currency_marks[column] = reading.marks[0]
    note = reading.describe() if decimal is None or reading.is_grouped else None
    return arr, empty, (f"column '{column}': {note}" if note else None)


def round_money(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Money rounded to the cent once, at read, so every page adds up to the same cents."""
    rounded = np.round(values, 2) + 0.0
    with np.errstate(invalid="ignore"):
        changed = int((np.isfinite(values) & (np.abs(rounded - values) > 1e-9)).sum())
    return rounded, changed


def read_booleans(values: pd.Series, info: FileInfo, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return (values.fillna(0).to_numpy(dtype="float64") != 0)
    text = as_text(values).str.lower()
    true = text.isin(["1", "true", "t", "yes", "y", "1.0"])
    false = text.isin(["0", "false", "f", "no", "n", "0.0"]) | text.isna()
    bad = ~(true | false)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"Value {values.iloc[position]!r} is not a yes/no value.",
            where=info.where(column, position),
            fix="Use true/false, yes/no or 1/0 in the column mapped as columns.is_return.",
        )
    return true.to_numpy(dtype=bool)


def to_zone(parsed: pd.Series, is_aware: np.ndarray | bool, source_zone: str, report_zone: str) -> pd.Series:
    """Naive wall-clock times in ``report_zone`` (datetime64[us]).

    ``parsed`` holds naive values: where ``is_aware`` they are UTC, else wall-clock times in
    ``source_zone``. Clocks going back: the standard-time reading is taken; going forward:
    times in the gap are shifted past it.
    """
    parsed = parsed.astype("datetime64[us]")
    aware = np.broadcast_to(np.asarray(is_aware, dtype=bool), (len(parsed),))
    out = parsed.copy()
    for mask, zone in ((aware, "UTC"), (~aware, source_zone)):
        if not mask.any() or zone == report_zone:
            continue
        part = parsed[mask]
        ambiguous = np.zeros(len(part), dtype=bool)
        local = (part.dt.tz_localize(zone, ambiguous=ambiguous, nonexistent="shift_forward")
                 .dt.tz_convert(report_zone).dt.tz_localize(None))
        out[mask] = local.astype("datetime64[us]")
    return out


def on_uniques(text: pd.Series, convert, missing) -> np.ndarray:
    """Apply ``convert`` (Series -> Series) to the distinct values only, then spread back.

    Invoice lines repeat timestamps, prices and ids heavily, so parsing the distinct values is
    several times faster than parsing every row. ``missing`` fills rows whose text is missing.
    """
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    converted = convert(pd.Series(uniques, dtype="string")).to_numpy()
    if len(converted) == 0:
        return np.full(len(text), missing, dtype=converted.dtype)
    out = converted[np.maximum(codes, 0)]
    out[codes < 0] = missing
    return out


class DateColumn:
    """A date column read: values in the reporting zone, the empty mask and how it was read."""

    def __init__(self, values: pd.Series, empty: np.ndarray, reading: DateReading | None):
        self.values = values
        self.empty = empty
        self.reading = reading  # None: typed cells or a configured date_format

    @property
    def unreadable(self) -> np.ndarray:
        return self.values.isna().to_numpy() & ~self.empty


def read_dates(values: pd.Series, date_format: str | None, source_zone: str, report_zone: str,
           info: FileInfo, column: str) -> DateColumn:
    """Parse a date column into naive wall-clock times of ``report_zone``.

    Typed cells (Parquet, Excel) are used as they are; text with ``date_format`` is read with
    it; other text is read in the one format :func:`.formats.decide_date_format` chooses for
    the whole column (an ambiguous column is an InputError asking for ``date_format``).
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            return DateColumn(to_zone(values, True, source_zone, report_zone), values.isna().to_numpy(), None)
        return DateColumn(to_zone(values, False, source_zone, report_zone), values.isna().to_numpy(), None)
    if values.dtype == object:
        # A spreadsheet column may mix typed date cells with dates typed in as text: the typed
        # ones are used as they are, the text ones read in the format decided for them alone.
        typed = values.map(lambda cell: isinstance(cell, (datetime, date))).to_numpy(dtype=bool)
        if typed.any():
            text_part = values.where(~typed, None)
            column_read = read_dates(text_part.astype("string"), date_format, source_zone, report_zone, info, column)
            stamps = pd.Series(pd.DatetimeIndex([pd.Timestamp(cell) for cell in values[typed]]).as_unit("us"))
            local = to_zone(stamps, False, source_zone, report_zone)
            column_read.values.iloc[np.flatnonzero(typed)] = local.to_numpy()
            column_read.empty = column_read.empty & ~typed
            return column_read
    text = as_text(values)
    empty = text.isna().to_numpy()
    readings: list[DateReading] = []

    def convert(distinct: pd.Series) -> pd.Series:
        if date_format is not None:
            parsed, aware = _parse_with_format(distinct, date_format)
        else:
            readings.append(_decide_dates(distinct, info, column))
            parsed, aware = readings[0].values, readings[0].is_aware
        return to_zone(parsed, aware, source_zone, report_zone)

    out = on_uniques(text, convert, np.datetime64("NaT", "us"))
    reading = readings[0] if readings else None
    return DateColumn(pd.Series(out, index=values.index, dtype="datetime64[us]"), empty, reading)


def _decide_dates(distinct: pd.Series, info: FileInfo, column: str) -> DateReading:
    """:func:`.formats.decide_date_format`, its ambiguity turned into an error that says which
    ``date_format`` to set."""
    try:
        return decide_date_format(distinct)
    except AmbiguousFormat as exc:
        shown = "; ".join(f"{value!r} is {a} ({exc.names[0]}) or {b} ({exc.names[1]})"
                          for value, a, b in exc.examples)
        first = exc.examples[0][0]
        time = (" %H:%M:%S" if first.count(":") == 2 else " %H:%M") if ":" in first else ""
        year = "%Y" if re.search(r"\d{4}", first) else "%y"
        sep = next((s for s in "/.-" if s in first), "/")
        order = {"day/month/year": f"%d{sep}%m{sep}{year}{time}",
                 "month/day/year": f"%m{sep}%d{sep}{year}{time}"}
        hint = " or ".join(repr(order[n]) for n in exc.names if n in order) or "'%d/%m/%Y'"
        raise InputError(
            f"The dates in column '{column}' can be read in more than one way, and the readings "
            f"disagree: {shown}.",
            where=info.where(column),
            fix=f"Set source.date_format to the order the export uses: date_format: {hint}.",
        ) from None


def _parse_with_format(distinct: pd.Series, date_format: str) -> tuple[pd.Series, np.ndarray]:
    """Distinct values read with a configured strptime format: (naive values, is UTC)."""
    is_aware = ("%z" in date_format) or ("%Z" in date_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(distinct, format=date_format, errors="coerce", utc=is_aware)
    if is_aware:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[us]"), np.full(len(distinct), is_aware)


def suggest_date_format(text: pd.Series) -> str | None:
    """The first strptime format of :data:`~cxpipeline.sources.formats.DATE_FAMILIES` (the
    conventions the reader decides between, in their order of preference) that reads every
    one of the first 200 values; for the error raised when a set ``date_format`` fails."""
    sample = text.dropna().head(200)
    if sample.empty:
        return None
    for fmt in (f for family in DATE_FAMILIES for f in family.formats):
        parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        if parsed.notna().all():
            return fmt
    return None


def unreadable_check(bad: np.ndarray, empty: np.ndarray, raw: pd.Series, column: str,
                      info: FileInfo, what: str, fix: str | Callable[[], str]) -> None:
    """Raise when most non-empty values of ``column`` are unreadable (a format problem)."""
    unreadable = bad & ~empty
    non_empty = int((~empty).sum())
    if non_empty and unreadable.sum() > MAX_UNREADABLE_SHARE * non_empty:
        position = int(np.flatnonzero(unreadable)[0])
        share = unreadable.sum() / non_empty
        raise InputError(
            f"{share:.0%} of the values in column '{column}' cannot be read as {what} "
            f"(first: {raw.iloc[position]!r}).",
            where=info.where(column, position),
            fix=fix if isinstance(fix, str) else fix(),
        )


def first_note(reason: str, count: int, position: int, column: str, value: object,
                info: FileInfo) -> str:
    shown = "(blank)" if pd.isna(value) or str(value).strip() == "" else repr(value)
    return (f"{reason}: {count} row(s) excluded; first at {info.row(position)}, "
            f"column '{column}', value {shown}.")


