"""File source: CSV or Parquet transactions (e.g. an invoice-line export) with a column mapping.

Real exports never use our column names and are never clean. This module turns one file into
canonical transactions (:data:`cxpipeline.schema.TRANSACTION_COLUMNS`, plus one column per
``segment_columns`` entry and ``currency`` when mapped) and accounts for every row it leaves out.

What it copes with
------------------
* revenue given directly, or computed as quantity x unit price (rounded to the cent);
* no order id column (each row is its own order: ``row-<n>``, n = 1-based data row) or an
  invoice number shared by the lines of one order;
* returns / cancellations marked by a negative quantity or amount, by an invoice-number prefix
  (``cancellation_prefix``, e.g. ``"C"``) or by a boolean ``is_return`` column. They are *kept*
  with negative revenue, quantity and cost: a cancellation really reduces net revenue. A marked
  line whose sign is positive is made negative and counted in the notes;
* dates in any strptime format (``date_format``), with or without time and zone: aware
  timestamps are converted to UTC, naive ones are read in ``timezone`` and converted to UTC;
  the result is naive UTC;
* customer ids read as floats by another tool (``"17850.0"`` becomes ``"17850"``);
* CSV options: delimiter, encoding, decimal separator. CSV is read as text first, so ids and
  dates are never mangled by type guessing, then converted column by column (vectorised).

Rows left out, each counted with its revenue under one stable reason (first that applies,
in this order): see :data:`EXCLUSION_REASONS`, plus ``"other currency (XXX)"`` per currency.
``revenue_in == revenue_used + revenue_excluded`` holds to the cent.

A file that cannot be read as intended (wrong delimiter, encoding, missing columns, broken
quoting, a date or amount column that is mostly unreadable, mixed currencies without a choice)
raises :class:`~cxpipeline.errors.InputError` naming the file, column and row and the fix.

Row numbers in messages are 1-based data rows (the header is not counted); for CSV the file
line is given as well (row + 1, exact unless quoted fields span several lines).
"""

from __future__ import annotations

import difflib
import re
import warnings
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from cxpipeline.config import FileSource
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.quality import Exclusions
from cxpipeline.schema import TRANSACTION_COLUMNS, validate_customers, validate_transactions
from cxpipeline.sources import SourceData

__all__ = [
    "load_file_source",
    "read_customers",
    "EXCLUSION_REASONS",
    "REASON_NON_NUMERIC_AMOUNT",
    "REASON_UNPARSEABLE_DATE",
    "REASON_MISSING_CUSTOMER_ID",
    "REASON_DUPLICATE_LINE",
    "REASON_MISSING_CURRENCY",
    "REASON_ZERO_AMOUNT",
    "other_currency_reason",
    "MAX_UNREADABLE_SHARE",
]

REASON_NON_NUMERIC_AMOUNT = "non-numeric amount"
REASON_UNPARSEABLE_DATE = "unparseable date"
REASON_MISSING_CUSTOMER_ID = "missing customer id"
REASON_DUPLICATE_LINE = "exact duplicate line"
REASON_MISSING_CURRENCY = "missing currency"
REASON_ZERO_AMOUNT = "zero amount"

#: Fixed exclusion reasons, in the order they are applied (a row counts under the first).
#: ``other_currency_reason(code)`` comes between "missing currency" and "zero amount".
EXCLUSION_REASONS: tuple[str, ...] = (
    REASON_NON_NUMERIC_AMOUNT,
    REASON_UNPARSEABLE_DATE,
    REASON_MISSING_CUSTOMER_ID,
    REASON_DUPLICATE_LINE,
    REASON_MISSING_CURRENCY,
    REASON_ZERO_AMOUNT,
)

#: If more than this share of the non-empty values of a date or amount column cannot be read,
#: the column's format is wrong (not a few bad rows): raise instead of excluding most rows.
MAX_UNREADABLE_SHARE = 0.5


def other_currency_reason(code: str) -> str:
    """The exclusion reason for rows in a currency other than ``source.currency``."""
    return f"other currency ({code})"


_MONEY_COLUMNS = ("revenue", "quantity", "unit_price", "cost", "cost_to_serve")
_NULL_TOKENS = ("nan", "none", "null", "na", "n/a", "<na>", "nat")
_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}
# A time followed by a zone (Z, UTC, +01:00, -0500, +01): the string is time-zone aware.
# (\Z, not $, so that pandas runs it in pyarrow's RE2 engine.)
_AWARE_PATTERN = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|UTC|[+-]\d\d(?::?\d\d)?)\Z"
_ISO_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}")
# Tried on a sample when a date column cannot be read, to suggest a date_format.
_CANDIDATE_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y%m%d", "%Y%m%d%H%M%S", "%Y/%m/%d",
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%m/%d/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d-%m-%Y %H:%M", "%d-%m-%Y",
    "%d %b %Y", "%d-%b-%Y", "%b %d %Y",
)


# --------------------------------------------------------------------------------------------
# Reading


class _FileInfo:
    """Where rows come from, for messages: the path and whether rows map to CSV lines."""

    def __init__(self, path: Path, is_csv: bool):
        self.path = path
        self.is_csv = is_csv

    def row(self, position: int) -> str:
        """Describe 0-based data position ``position`` as a 1-based row (and CSV line)."""
        row = position + 1
        return f"row {row} (line {row + 1} of the file)" if self.is_csv else f"row {row}"

    def where(self, column: str | None = None, position: int | None = None) -> str:
        parts = [str(self.path)]
        if column is not None:
            parts.append(f"column '{column}'")
        if position is not None:
            parts.append(self.row(position))
        return ", ".join(parts)


def _resolve(path: str, base_dir: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def _file_format(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and (suffixes[-1] in (".csv", ".txt", ".tsv")
                     or (len(suffixes) > 1 and suffixes[-2] == ".csv")):  # data.csv.gz
        return "csv"
    raise InputError(
        f"Cannot tell whether {path.name!r} is CSV or Parquet from its extension.",
        where=str(path),
        fix="Set source.format: csv (or parquet), or name the file *.csv / *.parquet.",
    )


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    """1-based line number of the first line that does not decode (error path only)."""
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


def _read_csv(path: Path, source: FileSource) -> pd.DataFrame:
    _check_wide_encoding(path, source)
    try:
        # Every column as text: ids such as 00123 / 17850 and dates must not be type-guessed.
        # Only empty cells are missing ("NA" is a country code, not a null).
        return pd.read_csv(
            path, sep=source.delimiter, encoding=source.encoding, dtype=str,
            keep_default_na=False, na_values=[""], skipinitialspace=False,
        )
    except UnicodeDecodeError as exc:
        line = _first_undecodable_line(path, source.encoding)
        where = f"{path}, line {line}" if line else str(path)
        raise InputError(
            f"The file is not valid {source.encoding} text ({exc.reason} at byte {exc.start} "
            "of the chunk being read).",
            where=where,
            fix="Set source.encoding to the file's encoding, e.g. 'encoding: latin-1' "
                "(or cp1252 for Windows exports).",
        ) from None
    except UnicodeError as exc:  # e.g. "UTF-16 stream does not start with BOM"
        raise InputError(f"The file is not valid {source.encoding} text ({exc}).", where=str(path),
                         fix="Set source.encoding to the file's real encoding (most exports are utf-8).") from None
    except LookupError:
        raise ConfigError(f"Unknown encoding {source.encoding!r}.", where="source.encoding",
                          fix="Use a Python codec name such as utf-8, latin-1 or cp1252.") from None
    except pd.errors.EmptyDataError:
        raise InputError("The file is empty (no header line).", where=str(path),
                         fix="Export the data again with a header line of column names.") from None
    except pd.errors.ParserError as exc:
        message = str(exc).strip()
        line = re.search(r"line (\d+)", message)
        row = re.search(r"starting at row (\d+)", message)  # 0-based line index of the quote
        where = str(path)
        if line:
            where += f", line {line.group(1)}"
        elif row:
            where += f", line {int(row.group(1)) + 1} (an opening quote that is never closed)"
        raise InputError(
            f"The CSV file cannot be split into columns: {message}",
            where=where,
            fix="Look at that line: every line needs as many fields as the header, and a field "
                f"that contains the delimiter {source.delimiter!r} or a line break must be in "
                "double quotes (\"...\", with inner quotes doubled). If the whole file uses another "
                "delimiter, set source.delimiter.",
        ) from None
    except OSError as exc:
        raise InputError(f"The file cannot be read: {exc.strerror or exc}.", where=str(path),
                         fix="Check the path and the file's permissions.") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except OSError as exc:
        raise InputError(f"The file cannot be read as Parquet: {exc}", where=str(path),
                         fix="Check that it is a Parquet file, or set source.format: csv.") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends for non-Parquet bytes
        raise InputError(f"The file cannot be read as Parquet: {exc}", where=str(path),
                         fix="Check that it is a Parquet file, or set source.format: csv.") from None


def _check_wide_encoding(path: Path, source: FileSource) -> None:
    """A file declared UTF-16/32 must look like it: such text has a byte-order mark or NUL
    bytes (its delimiters and digits are ASCII); without either, pandas reads UTF-8 as garbage
    column names or fails with a bare UnicodeError."""
    import codecs

    try:
        name = codecs.lookup(source.encoding).name
    except LookupError:
        return  # reported by _read_csv
    if not name.startswith(("utf-16", "utf-32")):
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return  # reported by _read_csv
    boms = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
    if head and not head.startswith(boms) and b"\0" not in head:
        raise InputError(
            f"The file is declared {source.encoding} but is not: it has no byte-order mark and "
            "no NUL bytes, so it is single-byte or UTF-8 text.",
            where=f"{path}, line 1",
            fix="Set source.encoding to the file's real encoding, e.g. 'encoding: utf-8' (or "
                "remove the key: utf-8 is the default).")


def _check_duplicate_header(frame: pd.DataFrame, info: _FileInfo, source: FileSource) -> None:
    """Refuse a header naming a column twice: pandas renames the second 'amount' to
    'amount.1', so a mapping would silently read the first of the two."""
    if info.is_csv:
        try:
            header = pd.read_csv(info.path, sep=source.delimiter, encoding=source.encoding, header=None,
                                 nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
        except (ValueError, OSError, IndexError):  # already read once: nothing new to report
            return
        names = [str(c).strip().lstrip("\ufeff").strip() for c in header]
    else:
        names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"The header names {', '.join(repr(n) for n in repeated)} more than once; the "
            "columns cannot be told apart.",
            where=f"{info.path}, line 1" if info.is_csv else str(info.path),
            fix="Rename or remove the duplicate column in the export so every header name is unique.")


def _read_frame(path: Path, source: FileSource, role: str) -> tuple[pd.DataFrame, _FileInfo]:
    if not path.is_file():
        raise InputError(
            f"The {role} file does not exist.", where=str(path),
            fix="Check the path; a relative path is read from the config file's folder.",
        )
    kind = _file_format(path, source.format if role == "transactions" else None)
    frame = _read_csv(path, source) if kind == "csv" else _read_parquet(path)
    if kind == "csv" and not isinstance(frame.index, pd.RangeIndex):
        # pandas quietly turns the first column into the index when the first data line has
        # one field more than the header, shifting every value one column to the left.
        raise InputError(
            "The first data line has more fields than the header, so every column would be "
            "shifted by one.",
            where=f"{path}, line 2",
            fix="Remove the extra field (or add the missing header name); a field that contains "
                f"the delimiter {source.delimiter!r} must be in double quotes.",
        )
    # Header cells often carry stray spaces or a byte-order mark.
    frame.columns = [str(c).strip().lstrip("\ufeff").strip() for c in frame.columns]
    info = _FileInfo(path, kind == "csv")
    _check_duplicate_header(frame, info, source)
    return frame, info


def _check_columns(frame: pd.DataFrame, needed: dict[str, str], info: _FileInfo,
                   delimiter: str | None) -> None:
    """Raise one InputError listing every mapped column the file lacks, with suggestions."""
    columns = list(frame.columns)
    missing = {key: col for key, col in needed.items() if col not in columns}
    if not missing:
        return
    if delimiter is not None and len(columns) == 1 and len(set(needed.values())) > 1:
        header = columns[0]
        others = [d for d in _DELIMITERS if d != delimiter and d in header]
        fix = (f"Set source.delimiter: {_DELIMITERS[others[0]]} (the header contains it)."
               if others else "Set source.delimiter to the character that separates the columns.")
        raise InputError(
            f"Only one column was found with delimiter {delimiter!r}: {header[:120]!r}.",
            where=info.where(), fix=fix,
        )
    lines = []
    for key, col in missing.items():
        close = difflib.get_close_matches(col, columns, n=1, cutoff=0.5)
        if not close:  # case / spacing differences, e.g. 'customerid' vs 'Customer ID'
            squashed = {re.sub(r"[\W_]", "", c).lower(): c for c in columns}
            match = squashed.get(re.sub(r"[\W_]", "", col).lower())
            close = [match] if match else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        lines.append(f"{key}: {col!r}{hint}")
    shown = ", ".join(repr(c) for c in columns[:40]) + (" ..." if len(columns) > 40 else "")
    raise InputError(
        "Mapped column(s) not found in the file:\n  - " + "\n  - ".join(lines)
        + f"\nThe file has the columns: {shown}.",
        where=info.where(),
        fix="Correct the column names in the config (source.columns / source.segment_columns / "
            "source.customer_columns) to the file's header.",
    )


# --------------------------------------------------------------------------------------------
# Converting columns (vectorised)


def _as_text(values: pd.Series) -> pd.Series:
    """Strip text; empty -> missing. Integral floats (a column read as float) lose '.0'."""
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        integral = np.isfinite(arr) & (np.floor(arr) == arr) & (np.abs(arr) < 2**53)
        text = pd.Series(arr, index=values.index).astype("string")
        whole = pd.Series(np.where(integral, arr, 0).astype("int64"), index=values.index).astype("string")
        return text.where(~integral, whole).astype("string")
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _customer_ids(values: pd.Series) -> pd.Series:
    """Customer / referrer ids as clean strings: '17850.0' -> '17850', 'nan' -> missing."""
    def clean(distinct: pd.Series) -> pd.Series:
        distinct = distinct.str.replace(r"^(-?\d+)\.0*$", r"\1", regex=True)
        return distinct.mask(distinct.str.lower().isin(_NULL_TOKENS)).astype(object)

    text = _as_text(values)
    return pd.Series(_on_uniques(text, clean, None), index=values.index, dtype="string")


def _numbers(values: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse amounts. Returns (float64 values with NaN where unreadable, empty-cell mask)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype("float64")
    if pd.api.types.is_numeric_dtype(values.dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        return np.where(np.isfinite(arr), arr, np.nan), np.isnan(arr)
    text = _as_text(values)
    empty = text.isna().to_numpy()
    if decimal != ".":
        text = text.str.replace(decimal, ".", regex=False)
    arr = _on_uniques(
        text, lambda u: pd.Series(pd.to_numeric(u, errors="coerce"), dtype="float64"), np.nan
    ).astype("float64")
    return np.where(np.isfinite(arr), arr, np.nan), empty


def _booleans(values: pd.Series, info: _FileInfo, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return (values.fillna(0).to_numpy(dtype="float64") != 0)
    text = _as_text(values).str.lower()
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


def _check_zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"Unknown time zone {timezone!r}.", where="source.timezone",
                          fix="Use an IANA zone name such as UTC, Europe/London or America/New_York.") from None


def _to_naive_utc(parsed: pd.Series, timezone: str) -> pd.Series:
    """Aware -> UTC; naive -> read in ``timezone`` then UTC. Returns naive datetime64[us]."""
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    elif timezone != "UTC":
        # Clocks going back: take the standard-time reading; going forward: shift past the gap.
        ambiguous = np.zeros(len(parsed), dtype=bool)
        parsed = (parsed.dt.tz_localize(timezone, ambiguous=ambiguous, nonexistent="shift_forward")
                  .dt.tz_convert("UTC").dt.tz_localize(None))
    return parsed.astype("datetime64[us]")


def _parse_text_dates(text: pd.Series, date_format: str | None, utc: bool) -> pd.Series:
    fmt = date_format
    if fmt is None:
        first = text.dropna()
        if len(first) and _ISO_PATTERN.match(str(first.iloc[0])):
            fmt = "ISO8601"  # dates with and without a time in one column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format" - unreadable rows are counted
        return pd.to_datetime(text, format=fmt, errors="coerce", utc=utc)


def _on_uniques(text: pd.Series, convert, missing) -> np.ndarray:
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


def _parse_distinct_dates(text: pd.Series, date_format: str | None, timezone: str) -> pd.Series:
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    if date_format is not None:
        aware = pd.Series(("%z" in date_format) or ("%Z" in date_format), index=text.index)
    else:
        aware = text.str.contains(_AWARE_PATTERN, regex=True, na=False).astype(bool)
    if aware.any():
        zoned = text[aware]
        if date_format is None:  # ISO parsing knows 'Z' and offsets but not a ' UTC' suffix
            zoned = zoned.str.replace(r"\s*UTC\Z", "+00:00", regex=True)
        parsed = _parse_text_dates(zoned, date_format, utc=True)
        result[aware] = parsed.dt.tz_localize(None).astype("datetime64[us]")
    naive = ~aware
    if naive.any():
        parsed = _parse_text_dates(text[naive], date_format, utc=False)
        if getattr(parsed.dt, "tz", None) is not None:  # a format with %z applied to naive text
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        result[naive] = _to_naive_utc(parsed.astype("datetime64[us]"), timezone)
    return result


def _dates(values: pd.Series, date_format: str | None, timezone: str) -> tuple[pd.Series, np.ndarray]:
    """Parse timestamps to naive UTC. Returns (datetime64[us] with NaT where unreadable, empty mask)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _to_naive_utc(values, timezone), values.isna().to_numpy()
    text = _as_text(values)
    empty = text.isna().to_numpy()
    parsed = _on_uniques(text, lambda u: _parse_distinct_dates(u, date_format, timezone),
                         np.datetime64("NaT", "us"))
    return pd.Series(parsed, index=values.index, dtype="datetime64[us]"), empty


def _suggest_date_format(text: pd.Series) -> str | None:
    sample = text.dropna().head(200)
    if sample.empty:
        return None
    for fmt in _CANDIDATE_DATE_FORMATS:
        parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        if parsed.notna().all():
            return fmt
    return None


def _unreadable_check(bad: np.ndarray, empty: np.ndarray, raw: pd.Series, column: str,
                      info: _FileInfo, what: str, fix: str | Callable[[], str]) -> None:
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


def _first_note(reason: str, count: int, position: int, column: str, value: object,
                info: _FileInfo) -> str:
    value = None if pd.isna(value) else value
    return (f"{reason}: {count} row(s) excluded; first at {info.row(position)}, "
            f"column '{column}', value {value!r}.")


# --------------------------------------------------------------------------------------------
# The source


def load_file_source(source: FileSource, base_dir: str | Path = ".") -> SourceData:
    """Load a CSV / Parquet file as canonical transactions, counting every excluded row.

    Parameters
    ----------
    source
        The ``source`` section of the config (kind ``file``).
    base_dir
        Folder that relative paths (``path``, ``customers_path``) are resolved against,
        normally the config file's folder.

    Returns
    -------
    SourceData
        ``transactions``: canonical columns (see :mod:`cxpipeline.schema`), then ``currency`` if
        mapped, then one string column per ``segment_columns`` key, in file order.
        ``customers``: the customer table if ``customers_path`` is set, else None.
        ``quality``: rows / revenue in, used and excluded by reason (see :data:`EXCLUSION_REASONS`).

    Raises
    ------
    InputError
        The file cannot be read as configured; the message names file, column, row and fix.
    ConfigError
        Inconsistent settings (e.g. ``cancellation_prefix`` without an order id column).
    """
    _check_zone(source.timezone)
    cols = source.columns
    if source.cancellation_prefix and not cols.order_id:
        raise ConfigError(
            "source.cancellation_prefix is set but no invoice column is mapped.",
            where="source.columns.order_id",
            fix="Map columns.order_id to the invoice-number column, or remove cancellation_prefix.",
        )
    path = _resolve(source.path, base_dir)
    raw, info = _read_frame(path, source, "transactions")

    mapped = {f"columns.{key}": col for key, col in cols.model_dump().items() if col is not None}
    mapped.update({f"segment_columns.{key}": col for key, col in source.segment_columns.items()})
    _check_columns(raw, mapped, info, source.delimiter if info.is_csv else None)

    transactions, quality = _transactions_from_frame(raw, source, info)
    customers = read_customers(source, base_dir) if source.customers_path else None
    return SourceData(transactions=transactions, customers=customers, quality=quality,
                      description=str(path))


def _transactions_from_frame(raw: pd.DataFrame, source: FileSource,
                             info: _FileInfo) -> tuple[pd.DataFrame, Exclusions]:
    """Convert a raw frame (columns as in the file) into canonical transactions + exclusions."""
    cols = source.columns
    n = len(raw)
    notes: list[str] = []

    # --- amounts ---------------------------------------------------------------------------
    numbers: dict[str, np.ndarray] = {}
    unreadable_amount = np.zeros(n, dtype=bool)
    first_bad_amount: tuple[int, str] | None = None
    for key in _MONEY_COLUMNS:
        column = getattr(cols, key)
        if column is None:
            continue
        values, empty = _numbers(raw[column], source.decimal)
        bad = np.isnan(values)

        def amount_fix(text: pd.Series = raw[column], key: str = key) -> str:
            comma = text.astype("string").str.fullmatch(r"\s*-?\d+,\d+\s*", na=False).any()
            first = ("Set source.decimal: ',' (the numbers use a decimal comma)"
                     if source.decimal == "." and comma else "Use plain numbers in this column")
            return first + f", or map columns.{key} to another column."

        _unreadable_check(bad, empty, raw[column], column, info, "numbers", amount_fix)
        # Cost columns, and quantity / unit price when revenue is given, may be left empty
        # (unknown: 0); the amounts that make up revenue may not.
        optional = key in ("cost", "cost_to_serve") or cols.revenue is not None and key != "revenue"
        if optional:
            bad = bad & ~empty
            values = np.where(empty, 0.0, values)
        numbers[key] = values
        new_bad = bad & ~unreadable_amount
        if new_bad.any():
            position = int(np.flatnonzero(new_bad)[0])
            if first_bad_amount is None or position < first_bad_amount[0]:
                first_bad_amount = (position, column)
        unreadable_amount |= bad

    if cols.revenue is not None:
        revenue = numbers["revenue"]
    else:  # the line total, to the cent as printed on the invoice
        revenue = np.round(numbers["quantity"] * numbers["unit_price"], 2)
    # Unreadable revenue is NaN and counts as 0 in the accounting; a readable revenue on a line
    # excluded for another unreadable amount (e.g. quantity 'x') is counted at its value.
    quantity = numbers.get("quantity", np.full(n, np.nan))
    cost = numbers.get("cost", np.zeros(n))
    cost_to_serve = numbers.get("cost_to_serve", np.zeros(n))

    # --- orders, returns and signs ---------------------------------------------------------
    row_numbers = pd.Series(np.arange(1, n + 1), index=raw.index)
    synthetic = "row-" + row_numbers.astype("string")
    if cols.order_id is not None:
        order_id = _as_text(raw[cols.order_id])
        if order_id.isna().any():
            notes.append(f"{int(order_id.isna().sum())} row(s) without an order id were given "
                         "their own order id 'row-<n>'.")
            order_id = order_id.fillna(synthetic)
    else:
        order_id = synthetic

    marked = np.zeros(n, dtype=bool)  # an explicit marker says "return / cancellation"
    if source.cancellation_prefix:
        marked |= order_id.str.startswith(source.cancellation_prefix).fillna(False).to_numpy(dtype=bool)
    if cols.is_return is not None:
        marked |= _booleans(raw[cols.is_return], info, cols.is_return)
    with np.errstate(invalid="ignore"):
        is_return = marked | (quantity < 0) | (revenue < 0)
        wrong_sign = is_return & ((revenue > 0) | (quantity > 0))
    if wrong_sign.any():
        position = int(np.flatnonzero(wrong_sign)[0])
        notes.append(
            f"{int(wrong_sign.sum())} return/cancellation line(s) had a positive quantity or "
            f"amount; made negative (first at {info.row(position)})."
        )
    # "+ 0.0" turns -0.0 (a returned line with no cost) into a plain 0.0.
    revenue = np.where(is_return, -np.abs(revenue), revenue) + 0.0
    quantity = np.where(is_return, -np.abs(quantity), quantity) + 0.0
    cost = np.where(is_return, -np.abs(cost), cost) + 0.0

    quality = Exclusions.start(n, revenue)

    # --- dates -----------------------------------------------------------------------------
    ordered_at, date_empty = _dates(raw[cols.ordered_at], source.date_format, source.timezone)
    date_bad = ordered_at.isna().to_numpy()
    if (date_bad & ~date_empty).any():
        text = _as_text(raw[cols.ordered_at])
        suggestion = _suggest_date_format(text[date_bad & ~date_empty])
        current = f"source.date_format is {source.date_format!r}; " if source.date_format else ""
        fix = (f"{current}set source.date_format to the format of these dates"
               + (f", e.g. date_format: '{suggestion}'" if suggestion else " (strptime codes, e.g. '%d/%m/%Y %H:%M')")
               + ".")
        _unreadable_check(date_bad, date_empty, raw[cols.ordered_at], cols.ordered_at, info,
                          "dates", fix)

    # --- customers, currency, segments -----------------------------------------------------
    customer_id = _customer_ids(raw[cols.customer_id])
    currency = None
    if cols.currency is not None:
        currency = _as_text(raw[cols.currency]).str.upper()
        codes = sorted(currency.dropna().unique().tolist())
        if source.currency is None and len(codes) > 1:
            raise InputError(
                f"The file mixes currencies ({', '.join(codes)}) and no currency is chosen.",
                where=info.where(cols.currency),
                fix=f"Set source.currency to the one to report on, e.g. 'currency: {codes[0]}' "
                    "(rows in other currencies are excluded and counted).",
            )

    work = pd.DataFrame({
        "order_id": order_id.astype("string"),
        "customer_id": customer_id,
        "ordered_at": ordered_at,
        "revenue": revenue,
        "cost": cost,
        "cost_to_serve": cost_to_serve,
        "quantity": quantity,
        "is_return": is_return,
    }, index=raw.index)
    if currency is not None:
        work["currency"] = currency
    for name, column in source.segment_columns.items():
        work[name] = _as_text(raw[column])

    # --- exclusions, in the order of EXCLUSION_REASONS -------------------------------------
    def full(mask: np.ndarray) -> pd.Series:  # a row mask over the file, aligned by label
        return pd.Series(mask, index=raw.index)

    if unreadable_amount.any():
        position, column = first_bad_amount
        notes.append(_first_note(REASON_NON_NUMERIC_AMOUNT, int(unreadable_amount.sum()), position,
                                 column, raw[column].iloc[position], info))
    work = quality.exclude(work, full(unreadable_amount), REASON_NON_NUMERIC_AMOUNT, "revenue")

    date_excluded = date_bad & ~unreadable_amount
    if date_excluded.any():
        position = int(np.flatnonzero(date_excluded)[0])
        notes.append(_first_note(REASON_UNPARSEABLE_DATE, int(date_excluded.sum()), position,
                                 cols.ordered_at, raw[cols.ordered_at].iloc[position], info))
    work = quality.exclude(work, full(date_bad), REASON_UNPARSEABLE_DATE, "revenue")
    work = quality.exclude(work, work["customer_id"].isna(), REASON_MISSING_CUSTOMER_ID, "revenue")
    work = quality.exclude(work, _exact_duplicates(raw), REASON_DUPLICATE_LINE, "revenue")
    if currency is not None:
        work = quality.exclude(work, work["currency"].isna(), REASON_MISSING_CURRENCY, "revenue")
        if source.currency is not None:
            keep = source.currency.strip().upper()
            for code in sorted(work.loc[work["currency"] != keep, "currency"].dropna().unique()):
                work = quality.exclude(work, work["currency"] == code, other_currency_reason(code), "revenue")
    work = quality.exclude(work, np.rint(work["revenue"].to_numpy() * 100) == 0, REASON_ZERO_AMOUNT, "revenue")

    if work.empty:
        summary = "; ".join(f"{reason}: {v['rows']}" for reason, v in sorted(quality.by_reason.items()))
        raise InputError(
            f"No usable rows: all {n} rows were excluded ({summary or 'the file has no data rows'}).",
            where=info.where(),
            fix="Check the column mapping (source.columns) and the reasons above.",
        )
    quality.notes.extend(notes)

    extra = [c for c in work.columns if c not in TRANSACTION_COLUMNS]
    work = work.reset_index(drop=True)
    transactions = validate_transactions(work, source=str(info.path))
    transactions = transactions[list(TRANSACTION_COLUMNS) + extra]
    for column in extra:
        transactions[column] = transactions[column].astype("string")
    return transactions, quality


def _exact_duplicates(raw: pd.DataFrame) -> pd.Series:
    """Rows equal in every column to an earlier row (the first of each group is kept).

    A 64-bit row hash finds candidates fast; candidates are then compared exactly.
    """
    hashes = pd.util.hash_pandas_object(raw, index=False)
    candidates = hashes.duplicated(keep=False).to_numpy()
    result = np.zeros(len(raw), dtype=bool)
    if candidates.any():
        subset = raw.loc[candidates]
        result[np.flatnonzero(candidates)] = subset.duplicated(keep="first").to_numpy()
    return pd.Series(result, index=raw.index)


def read_customers(source: FileSource, base_dir: str | Path = ".") -> pd.DataFrame:
    """Read ``source.customers_path`` with ``source.customer_columns`` (canonical -> column).

    Ids are cleaned like transaction ids; ``acquired_at`` (if mapped) is parsed with the
    source's date settings; the table is checked with :func:`cxpipeline.schema.validate_customers`.
    """
    if not source.customers_path:
        raise ConfigError("source.customers_path is not set.", where="source.customers_path",
                          fix="Set it to the customer table file, or do not ask for customers.")
    mapping = dict(source.customer_columns)
    if "customer_id" not in mapping:
        raise ConfigError(
            "source.customer_columns does not map 'customer_id'.",
            where="source.customer_columns",
            fix="Add 'customer_id: <column with the customer id>' to source.customer_columns.",
        )
    path = _resolve(source.customers_path, base_dir)
    raw, info = _read_frame(path, source, "customers")
    _check_columns(raw, {f"customer_columns.{k}": v for k, v in mapping.items()}, info,
                   source.delimiter if info.is_csv else None)
    out = pd.DataFrame(index=raw.index)
    for canonical, column in mapping.items():
        if canonical in ("customer_id", "referred_by"):
            out[canonical] = _customer_ids(raw[column])
        elif canonical == "acquired_at":
            parsed, empty = _dates(raw[column], source.date_format, source.timezone)
            bad = parsed.isna().to_numpy() & ~empty
            if bad.any():
                position = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"Date {raw[column].iloc[position]!r} cannot be read.",
                    where=info.where(column, position),
                    fix="Use the same date format as the transactions (source.date_format), "
                        "or leave the cell empty.",
                )
            out[canonical] = parsed
        else:
            out[canonical] = _as_text(raw[column])
    missing = out["customer_id"].isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise InputError("Missing customer id in the customer table.",
                         where=info.where(mapping["customer_id"], position),
                         fix="Fill in the id or remove the row.")
    return validate_customers(out.reset_index(drop=True), source=str(path))
