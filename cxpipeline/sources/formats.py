"""How a text column of dates or amounts is read: decided once per column, never value by value.

A finance export writes ``03/01/19`` for 3 January 2019 and ``3.527,60`` for three thousand
five hundred. Reading each value with whatever format happens to fit would read some dates
day-first and others month-first in one column, and would read ``3.527`` as three. So each
column's format is chosen once, from a list of candidate conventions, by looking at every
distinct value of the column:

* exactly one candidate reads every value: it is used, and the choice is reported (the
  data-quality notes, ``validate`` and the manifest say e.g. "dates read as day/month/year:
  03/01/19 = 3 January 2019");
* several read every value and disagree on some (dates whose day is never above 12, amounts
  like ``1,234`` with no decimals): :class:`~cxpipeline.errors.InputError` asking for
  ``source.date_format`` / ``source.decimal`` and showing two example values;
* none reads every value: the best is used only when it reads at least
  :data:`MIN_READ_SHARE` of the distinct values (dates); the rest are unreadable and counted
  by the caller; otherwise the column's format is wrong and the run stops.

Both functions work on the *distinct* non-empty values of a column (a pandas ``string``
Series) and return one reading per distinct value; the caller spreads them back to rows.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = [
    "NULL_TOKENS",
    "MIN_READ_SHARE",
    "DateReading",
    "AmountReading",
    "AmbiguousFormat",
    "MixedCurrencies",
    "currency_mark_matches",
    "decide_date_format",
    "decide_amount_format",
    "DATE_FAMILIES",
]

#: Text that means "no value" in an id column (compared in lower case); "NA" alone is a country.
NULL_TOKENS = ("nan", "none", "null", "na", "n/a", "<na>", "nat")

#: Without a configured format, the best date candidate is used only if it reads this share of
#: the column's non-empty values; below it the column is taken to be in a format we do not know.
MIN_READ_SHARE = 0.999


class AmbiguousFormat(ValueError):
    """Several candidate formats read every value of a column and disagree on some.

    ``examples`` holds up to two ``(value, reading_a, reading_b)`` triples for the message.
    """

    def __init__(self, names: tuple[str, str], examples: list[tuple[str, str, str]]):
        super().__init__(f"ambiguous between {names[0]} and {names[1]}")
        self.names = names
        self.examples = examples


# --------------------------------------------------------------------------------------------
# Dates

_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p", "T%H:%M", "T%H:%M:%S")
_SEPARATORS = ("/", ".", "-")


def _numeric_formats(order: str) -> tuple[str, ...]:
    """strptime formats for dates written with numbers in ``order`` ("dmy", "mdy" or "ymd")."""
    formats = []
    for sep in _SEPARATORS:
        for year in ("%Y", "%y"):
            parts = {"d": "%d", "m": "%m", "y": year}
            if order == "ymd" and year == "%y":
                continue  # 19/03/01 is not read as year-first
            date = sep.join(parts[c] for c in order)
            formats += [date + time for time in _TIMES]
    return tuple(formats)


@dataclass(frozen=True)
class _Family:
    name: str  # "day/month/year"
    formats: tuple[str, ...]
    iso: bool = False  # first try pandas' ISO 8601 parser (zones, 'T', fractions)
    unix: bool = False  # whole seconds (10 digits) or milliseconds (13) since 1970-01-01 UTC
    serial: bool = False  # spreadsheet day numbers (days since 1899-12-30), with a time as a fraction


#: The candidate conventions, in the order they are preferred when they agree on every value.
DATE_FAMILIES: tuple[_Family, ...] = (
    _Family("ISO year-month-day", _numeric_formats("ymd"), iso=True),
    _Family("day/month/year", _numeric_formats("dmy")),
    _Family("month/day/year", _numeric_formats("mdy")),
    _Family("yyyymmdd", ("%Y%m%d", "%Y%m%d%H%M%S", "%Y%m%d %H:%M:%S", "%Y%m%d %H%M%S")),
    _Family("day month-name year", tuple(
        d + t for d in ("%d %b %Y", "%d-%b-%Y", "%d %B %Y", "%d-%b-%y", "%d %b %y", "%d. %B %Y", "%d.%b.%Y")
        for t in _TIMES[:3])),
    _Family("month-name day, year", tuple(
        d + t for d in ("%b %d %Y", "%b %d, %Y", "%B %d, %Y", "%B %d %Y") for t in _TIMES[:3])),
    # Database and API exports (Stripe, event logs) write instants as Unix time; 10 or 13 digits
    # cannot be mistaken for yyyymmdd (8).
    _Family("Unix time (seconds since 1970, UTC)", (), unix=True),
    # A date column that a spreadsheet exported in "General" format: 45292 is 1 January 2024.
    # Five-digit day numbers from 32874 (1990) to 73050 (2099) only.
    _Family("spreadsheet day numbers (days since 30 December 1899)", (), serial=True),
)

# A time followed by a zone (Z, UTC, +01:00, -0500, +01): the string is time-zone aware.
_AWARE = re.compile(r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|UTC|[+-]\d\d(?::?\d\d)?)$")


@dataclass
class DateReading:
    """The chosen reading of a date column's distinct values.

    ``values``: naive timestamps for naive text, UTC-converted naive timestamps where the
    text carried a zone (``is_aware`` marks those), NaT where unreadable.
    """

    family: str | None  # None: a configured date_format
    values: pd.Series  # datetime64[us], aligned with the distinct values given
    is_aware: np.ndarray
    count_read: int
    count_values: int
    example: tuple[str, pd.Timestamp] | None = None

    def describe(self) -> str | None:
        """'dates read as day/month/year: 03/01/19 = 3 January 2019' (None for ISO or a set format)."""
        if self.family is None or self.example is None or self.family == "ISO year-month-day":
            return None
        text, value = self.example
        if self.family.startswith("Unix"):
            return f"dates read as {self.family}: {text} = {value.day} {value:%B %Y %H:%M} UTC"
        return f"dates read as {self.family}: {text} = {value.day} {value:%B %Y}"


def _quiet_to_datetime(values: pd.Series, fmt: str, utc: bool = False) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(values, format=fmt, errors="coerce", utc=utc)


_DIRECTIVES = {"d": r"\d{1,2}", "m": r"\d{1,2}", "Y": r"\d{4}", "y": r"\d{2}", "H": r"\d{1,2}",
               "I": r"\d{1,2}", "M": r"\d{2}", "S": r"\d{2}", "f": r"\d{1,9}", "p": r"(?:[AaPp][Mm])",
               "b": r"[A-Za-z]{3,4}\.?", "B": r"[A-Za-z]{3,9}"}


def _format_pattern(fmt: str) -> str:
    """A regular expression matching the text a strptime format can read (no anchors)."""
    parts = re.split(r"(%[A-Za-z])", fmt)
    return "".join(_DIRECTIVES[p[1]] if p.startswith("%") else re.escape(p) for p in parts if p)


def _read_family(text: pd.Series, family: _Family) -> tuple[pd.Series, np.ndarray]:
    """Read each value with the first of the family's formats that fits; NaT where none does."""
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    aware = np.zeros(len(text), dtype=bool)
    pending = np.ones(len(text), dtype=bool)
    if family.serial:
        shaped = text.str.fullmatch(r"[3-7]\d{4}(?:\.\d+)?", na=False).to_numpy(dtype=bool)
        if shaped.any():
            days = pd.to_numeric(text[shaped], errors="coerce").to_numpy(dtype="float64")
            ok = (days >= 32874) & (days < 73051)
            stamps = pd.Timestamp("1899-12-30") + pd.to_timedelta(np.round(days[ok] * 86400), unit="s")
            result.iloc[np.flatnonzero(shaped)[ok]] = pd.Series(stamps).astype("datetime64[us]").to_numpy()
        return result, aware
    if family.unix:
        for digits, unit in ((10, "s"), (13, "ms")):
            shaped = text.str.fullmatch(rf"\d{{{digits}}}", na=False).to_numpy(dtype=bool)
            if shaped.any():
                numbers = pd.to_numeric(text[shaped], errors="coerce").astype("int64")
                result.iloc[np.flatnonzero(shaped)] = pd.to_datetime(numbers, unit=unit).astype("datetime64[us]")
                aware[shaped] = True  # an instant in UTC
        return result, aware
    if family.iso:
        zoned = text.str.contains(_AWARE, regex=True, na=False).to_numpy(dtype=bool)
        if zoned.any():
            values = text[zoned].str.replace(r"\s*UTC$", "+00:00", regex=True)
            parsed = _quiet_to_datetime(values, "ISO8601", utc=True)
            ok = parsed.notna().to_numpy()
            result.iloc[np.flatnonzero(zoned)[ok]] = parsed[ok].dt.tz_localize(None).astype("datetime64[us]")
            aware[np.flatnonzero(zoned)[ok]] = True
            pending[zoned] = False  # a zoned value that ISO cannot read is unreadable
        plain = pending & text.str.match(r"^\d{4}-\d{1,2}-\d{1,2}", na=False).to_numpy(dtype=bool)
        if plain.any():
            parsed = _quiet_to_datetime(text[plain], "ISO8601")
            if getattr(parsed.dt, "tz", None) is not None:  # pragma: no cover - zoned handled above
                parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
            ok = parsed.notna().to_numpy()
            result.iloc[np.flatnonzero(plain)[ok]] = parsed[ok].astype("datetime64[us]")
            pending[np.flatnonzero(plain)[ok]] = False
    # Only values shaped like one of the family's formats are tried at all (one pass over the
    # column); then each format parses only the values shaped like it. A value shaped like a
    # format that still fails (13/25/2024 month-first) is not tried again: no other format of
    # the family has its shape. A failed parse costs far more than a regular-expression test.
    pending &= text.str.fullmatch(_family_pattern(family), na=False).to_numpy(dtype=bool)
    for fmt in family.formats:
        if not pending.any():
            break
        candidates = np.flatnonzero(pending)
        shaped = text.iloc[candidates].str.fullmatch(_format_pattern(fmt), na=False).to_numpy(dtype=bool)
        positions = candidates[shaped]
        if not len(positions):
            continue
        parsed = _quiet_to_datetime(text.iloc[positions], fmt)
        ok = parsed.notna().to_numpy()
        if ok.any():
            result.iloc[positions[ok]] = parsed[ok].astype("datetime64[us]")
        pending[positions] = False
    return result, aware


def _family_pattern(family: _Family) -> str:
    return "(?:" + "|".join(_format_pattern(fmt) for fmt in family.formats) + ")"


def decide_date_format(distinct: pd.Series) -> DateReading:
    """Choose one reading for a text date column from :data:`DATE_FAMILIES`.

    Parameters
    ----------
    distinct
        The column's distinct non-empty values (``string`` dtype, stripped).

    Returns
    -------
    DateReading
        The family that reads every value (or the best one, with ``count_read`` below
        ``count_values``; the caller decides whether that is enough).

    Raises
    ------
    AmbiguousFormat
        Two families read every value (or the same, largest number of them) and disagree on
        at least one: the caller asks for ``source.date_format``.
    """
    distinct = distinct.reset_index(drop=True)
    n = len(distinct)
    # The order of day, month and year is a property of the date part alone. When every value
    # starts with a numeric date (03/01/2019 14:05, 2019-01-03T10:00Z), the candidates are tried
    # on the distinct date parts (a few thousand days, not a million timestamps), and only the
    # chosen family then reads the whole values.
    heads = distinct.str.extract(_NUMERIC_HEAD, expand=False)
    if n and heads.notna().all():
        unique_heads = pd.Series(heads.unique(), dtype="string")
        first_full = pd.Series(distinct.to_numpy(), index=heads.to_numpy())
        first_full = first_full[~first_full.index.duplicated()]
        family = _choose(unique_heads, lambda i: str(first_full[unique_heads.iloc[i]]))[0]
        values, aware = _read_family(distinct, family)
    else:
        family, values, aware = _choose(distinct, lambda i: str(distinct.iloc[i]))
    count = int(values.notna().sum())
    example = None
    if count:
        # An example that shows the order: a day above 12 if there is one, else day != month.
        read = values.notna() & (values.dt.day > 12)
        if not read.any():
            read = values.notna() & (values.dt.day != values.dt.month)
        position = int(np.flatnonzero(read.to_numpy())[0]) if read.any() else int(np.flatnonzero(values.notna().to_numpy())[0])
        example = (str(distinct.iloc[position]), values.iloc[position])
    return DateReading(family=family.name, values=values, is_aware=aware, count_read=count,
                       count_values=n, example=example)


# A numeric date at the start of a value, followed by the end, a space or 'T' (a time).
_NUMERIC_HEAD = r"^(\d{1,4}[/.\-]\d{1,2}[/.\-]\d{2,4})(?:[ T]|$)"


def _choose(values: pd.Series, shown) -> tuple[_Family, pd.Series, np.ndarray]:
    """The family reading most values; AmbiguousFormat if another reads as many and disagrees.

    ``shown(i)`` is the text to show for value ``i`` in the error (the whole original value).
    """
    readings = []
    for family in DATE_FAMILIES:
        parsed, aware = _read_family(values, family)
        readings.append((family, parsed, aware, int(parsed.notna().sum())))
    best = max(count for *_, count in readings)
    top = [r for r in readings if r[3] == best]
    chosen = top[0]
    for other in top[1:]:
        both = chosen[1].notna() & other[1].notna()
        differ = both & (chosen[1] != other[1])
        if differ.any():
            positions = np.flatnonzero(differ.to_numpy())[:2]
            examples = [(shown(p), _spoken(chosen[1].iloc[p]), _spoken(other[1].iloc[p])) for p in positions]
            raise AmbiguousFormat((chosen[0].name, other[0].name), examples)
    return chosen[0], chosen[1], chosen[2]


def _spoken(value: pd.Timestamp) -> str:
    return f"{value.day} {value:%B %Y}" + ("" if value == value.normalize() else f" {value:%H:%M}")


# --------------------------------------------------------------------------------------------
# Amounts

_SEPARATORS_OF = {".": ",'\u2019\u00a0\u202f ", ",": ".'\u2019\u00a0\u202f "}
_GROUPS = {decimal: "[" + re.escape(chars) + "]" for decimal, chars in _SEPARATORS_OF.items()}
_CURRENCY_SYMBOLS = "£$€¥₹₩₽₺"


def _amount_pattern(decimal: str) -> re.Pattern:
    point = re.escape(decimal)
    # One separator throughout a number (no back-reference, so the engine is pyarrow's RE2);
    # a leading 0 is no thousands group (0.336 is not 336).
    groups = [rf"[1-9]\d{{0,2}}(?:{re.escape(sep)}\d{{3}})+" for sep in _SEPARATORS_OF[decimal]]
    if decimal == ".":  # Indian grouping (lakh, crore): 1,23,456.00 and 12,34,56,789
        groups.append(r"[1-9]\d?(?:,\d\d)+,\d{3}")
    grouped = "(?:" + "|".join(groups) + ")"
    exponent = r"(?:[eE][-+]?\d+)?"
    return re.compile(rf"^[-+]?(?:{grouped}(?:{point}\d*)?|\d+(?:{point}\d*)?{exponent}|{point}\d+{exponent})$")


_PATTERNS = {decimal: _amount_pattern(decimal) for decimal in (".", ",")}
_NAMES = {".": "decimal point (1,234.56)", ",": "decimal comma (1.234,56)"}


@dataclass
class AmountReading:
    """The chosen reading of an amount column's distinct values (NaN where unreadable)."""

    decimal: str
    values: np.ndarray
    count_read: int
    count_values: int
    is_grouped: bool  # some values carry thousands separators
    #: the currency marks the readable values carry ("$", "USD", "US$"), at most one
    marks: tuple[str, ...] = ()

    def describe(self) -> str | None:
        parts = []
        if self.is_grouped or self.decimal != ".":
            parts.append(f"amounts read with a {_NAMES[self.decimal]}")
        if self.marks and not set(self.marks) <= set(_CURRENCY_SYMBOLS):
            parts.append(f"amounts marked {self.marks[0]}, read without the mark")
        return "; ".join(parts) or None


class MixedCurrencies(ValueError):
    """The readable values of an amount column carry more than one currency mark."""

    def __init__(self, marks: tuple[str, ...], examples: list[str]):
        super().__init__(f"mixed currencies: {', '.join(marks)}")
        self.marks = marks
        self.examples = examples


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


# A currency mark before or after the number: a symbol, a symbol with a country prefix (US$,
# CA$, A$), or a three-letter code (checked against ISO 4217: "PCS 12" keeps "PCS").
_MARK = r"(?:[A-Z]{1,2}\$|[" + _CURRENCY_SYMBOLS + r"]|[A-Z]{3}(?![A-Za-z]))"
_LEADING_MARK = re.compile(r"^([-+(]?)\s*(" + _MARK + r")\s*(.*)$")
_TRAILING_MARK = re.compile(r"^(.*?\S)\s*(" + _MARK.replace("(?![A-Za-z])", "") + r")([-)]?)$")


def _split_mark(value: str) -> tuple[str, str | None]:
    """``("-12.50", "$")`` for ``"-$12.50"``; a three-letter mark only if it is an ISO code."""
    for pattern, rebuild in ((_LEADING_MARK, lambda m: m.group(1) + m.group(3)),
                             (_TRAILING_MARK, lambda m: m.group(1) + m.group(3))):
        match = pattern.match(value)
        if match:
            mark = match.group(2)
            if len(mark) == 3 and mark.isalpha() and mark not in _iso_codes():
                continue
            if match.re is _TRAILING_MARK and len(mark) == 3 and match.group(1)[-1:].isalpha():
                continue  # "ABCUSD" is a word, not an amount
            return rebuild(match), mark
    return value, None


def _normalised(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Currency marks taken off (and returned: the mark of each value, or missing), (12.50) and
    12.50- made -12.50, the minus sign U+2212 (typeset exports: −12.50) read as a minus, spaces
    around the sign removed."""
    text = text.str.strip().str.replace("\u2212", "-", regex=False)
    marks = pd.Series(pd.NA, index=text.index, dtype="string")
    # Only values with a letter or a symbol can carry a mark: the plain numbers skip the loop.
    marked = text.str.contains(r"[A-Z" + _CURRENCY_SYMBOLS + r"]", regex=True, na=False)
    if marked.any():
        split = [_split_mark(v) for v in text[marked]]
        text = text.copy()
        text[marked] = pd.Series([v for v, _ in split], index=text.index[marked], dtype="string").str.strip()
        marks[marked] = pd.Series([m for _, m in split], index=text.index[marked], dtype="string")
    text = text.str.replace(r"^\((.*)\)$", r"-\1", regex=True)
    text = text.str.replace(r"^([^-+].*)-$", r"-\1", regex=True)
    return text.str.replace(r"^([-+])\s*", r"\1", regex=True), marks


def _read_amounts(text: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, is_grouped): NaN where ``text`` is not a number in the ``decimal`` convention."""
    fits = text.str.match(_PATTERNS[decimal].pattern, na=False).to_numpy(dtype=bool)
    group = _GROUPS[decimal]
    digits = text.str.replace(group, "", regex=True)
    if decimal == ",":
        digits = digits.str.replace(",", ".", regex=False)
    values = pd.to_numeric(digits.where(fits), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    values = np.where(np.isfinite(values), values, np.nan)
    grouped = fits & text.str.contains(group + r"\d{3}", regex=True, na=False).to_numpy(dtype=bool)
    return values, grouped


def decide_amount_format(distinct: pd.Series, decimal: str | None) -> AmountReading:
    """Read an amount column's distinct values in one convention for the whole column.

    Parameters
    ----------
    distinct
        The column's distinct non-empty values (``string`` dtype).
    decimal
        ``"."`` or ``","`` when configured (``source.decimal``); None to decide from the data.
        Thousands separators of the convention are accepted either way: with a decimal point
        ``,`` ``'`` and spaces, with a decimal comma ``.`` ``'`` and spaces.

    Raises
    ------
    AmbiguousFormat
        ``decimal`` is None and both conventions read every value but disagree on some
        (``1,234`` is 1234 or 1.234): the caller asks for ``source.decimal``.
    """
    distinct = distinct.reset_index(drop=True)
    text, marks = _normalised(distinct.astype("string"))
    n = len(distinct)
    if decimal is not None:
        values, grouped = _read_amounts(text, decimal)
        return _with_marks(AmountReading(decimal, values, int(np.isfinite(values).sum()), n, bool(grouped.any())),
                           marks, distinct)
    point, point_grouped = _read_amounts(text, ".")
    comma, comma_grouped = _read_amounts(text, ",")
    count_point, count_comma = int(np.isfinite(point).sum()), int(np.isfinite(comma).sum())
    if count_point == count_comma:
        both = np.isfinite(point) & np.isfinite(comma)
        differ = both & (point != comma)
        if differ.any():
            positions = np.flatnonzero(differ)[:2]
            examples = [(str(distinct.iloc[p]), _plain(point[p]), _plain(comma[p])) for p in positions]
            raise AmbiguousFormat((_NAMES["."], _NAMES[","]), examples)
    if count_comma > count_point:
        return _with_marks(AmountReading(",", comma, count_comma, n, bool(comma_grouped.any())), marks, distinct)
    return _with_marks(AmountReading(".", point, count_point, n, bool(point_grouped.any())), marks, distinct)


def _with_marks(reading: AmountReading, marks: pd.Series, distinct: pd.Series) -> AmountReading:
    """``reading`` with the currency marks of its readable values; two different marks raise
    :class:`MixedCurrencies` (adding dollars to euros is never a plain reading)."""
    readable = np.isfinite(reading.values)
    found = marks[readable].dropna()
    kinds = tuple(sorted(found.unique()))
    if len(kinds) > 1:
        examples = [str(distinct[found.index[found == kind][0]]) for kind in kinds[:3]]
        raise MixedCurrencies(kinds, examples)
    reading.marks = kinds
    return reading


def _plain(value: float) -> str:
    return f"{value:.10g}"


def currency_mark_matches(mark: str, currency: str) -> bool:
    """Whether the amounts' mark (``$``, ``US$``, ``€``, ``USD``) can be the pack's ``currency``
    (an ISO code): the code itself, its symbol (``$`` is any dollar), or ``XX$`` for a
    currency whose code starts with XX (US$ = USD, CA$ = CAD, A$ = AUD)."""
    from babel.numbers import get_currency_symbol

    if len(mark) == 3 and mark.isalpha():
        return mark == currency
    if mark.endswith("$") and len(mark) > 1:
        return currency.startswith(mark[:-1]) and "$" in get_currency_symbol(currency, "en")
    return mark in get_currency_symbol(currency, "en")
