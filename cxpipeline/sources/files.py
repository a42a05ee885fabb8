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
from datetime import date, datetime
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from cxpipeline.config import FileSource
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.quality import Exclusions, to_cents
from cxpipeline.schema import TRANSACTION_COLUMNS, validate_customers, validate_transactions
from cxpipeline.sources.base import SourceData
from cxpipeline.sources.formats import (
    MIN_READ_SHARE,
    NULL_TOKENS,
    AmbiguousFormat,
    DateReading,
    decide_amount_format,
    decide_date_format,
)

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
    "date_before_reason",
    "date_after_reason",
    "MAX_UNREADABLE_SHARE",
]

REASON_NON_NUMERIC_AMOUNT = "non-numeric amount"
REASON_UNPARSEABLE_DATE = "unparseable date"
REASON_MISSING_CUSTOMER_ID = "missing customer id"
REASON_DUPLICATE_LINE = "exact duplicate line"
REASON_MISSING_CURRENCY = "missing currency"
REASON_ZERO_AMOUNT = "zero amount"

#: Fixed exclusion reasons, in the order they are applied (a row counts under the first).
#: ``date_before_reason`` / ``date_after_reason`` come after "unparseable date";
#: ``other_currency_reason(code)`` comes between "missing currency" and "zero amount".
#: Without an order id, identical rows are kept (``drop_identical_rows``), and zero amounts are
#: kept unless ``exclude_zero_amounts``: both are noted with their count either way.
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


def date_before_reason(earliest) -> str:
    """The exclusion reason for rows dated before ``source.earliest_date``."""
    return f"dated before {earliest:%Y-%m-%d}"


def date_after_reason(through) -> str:
    """The exclusion reason for rows dated after ``source.data_through``."""
    return f"dated after {through:%Y-%m-%d} (data_through)"


_MONEY_COLUMNS = ("revenue", "quantity", "unit_price", "cost", "cost_to_serve")
_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}
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
    """Where rows come from, for messages: the path and whether rows map to CSV lines or to
    the rows of one spreadsheet sheet; ``notes`` say how the file itself was read."""

    def __init__(self, path: Path, is_csv: bool, sheet: str | None = None):
        self.path = path
        self.is_csv = is_csv
        self.sheet = sheet  # the one sheet read (None: not a spreadsheet, or stacked sheets)
        self.notes: list[str] = []

    def row(self, position: int) -> str:
        """Describe 0-based data position ``position`` as a 1-based row (and CSV line)."""
        row = position + 1
        if self.is_csv:
            return f"row {row} (line {row + 1} of the file)"
        if self.sheet is not None:
            return f"row {row} (row {row + 1} of sheet {self.sheet!r})"
        return f"row {row}"

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
    if suffixes and suffixes[-1] in _SPREADSHEET_SUFFIXES:
        return "excel"
    raise InputError(
        f"Cannot tell whether {path.name!r} is CSV, Parquet or a spreadsheet from its extension.",
        where=str(path),
        fix="Set source.format: csv (or parquet, or excel), or name the file *.csv / *.parquet / *.xlsx.",
    )


_SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


def _read_spreadsheet(path: Path, source: FileSource, role: str) -> tuple[pd.DataFrame, _FileInfo]:
    """One sheet (``source.sheet``: name or 0-based index, default the first) or, with
    ``sheets: all``, every sheet stacked (they must share one header).

    Read by calamine (a maintained Rust reader for xlsx, xlsm, xls, xlsb and ods). Date cells
    come typed; text cells stay text and go through the same rules as CSV.
    """
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own errors for files it cannot open
        raise InputError(f"The file cannot be read as a spreadsheet: {exc}", where=str(path),
                         fix="Check that it is an .xlsx/.xlsm/.xls/.ods workbook (save it again from "
                             "the spreadsheet program), or export the sheet as CSV.") from None
    names = list(workbook.sheet_names)
    if role == "transactions" and source.sheets == "all":
        chosen = names
    else:
        wanted = source.sheet if role == "transactions" and source.sheet is not None else 0
        if isinstance(wanted, int):
            if not 0 <= wanted < len(names):
                raise InputError(f"The workbook has {len(names)} sheet(s); sheet index {wanted} does not exist.",
                                 where=str(path), fix=f"Set source.sheet to 0-{len(names) - 1} or to a name: "
                                                      + ", ".join(repr(n) for n in names) + ".")
            chosen = [names[wanted]]
        elif wanted not in names:
            raise InputError(f"The workbook has no sheet named {wanted!r}.", where=str(path),
                             fix="Set source.sheet to one of " + ", ".join(repr(n) for n in names) + ".")
        else:
            chosen = [wanted]
    frames = []
    for name in chosen:
        rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=True)
        rows = [row for row in rows if any(cell not in ("", None) for cell in row)]
        if not rows:
            if len(chosen) > 1:
                continue  # an empty sheet among several adds nothing
            raise InputError(f"Sheet {name!r} is empty.", where=str(path),
                             fix="Point source.sheet at the sheet that holds the data.")
        header = [str(c).strip() for c in rows[0]]
        body = [list(row) + [""] * (len(header) - len(row)) for row in rows[1:]]
        frame = pd.DataFrame([row[:len(header)] for row in body], columns=header, dtype=object)
        frames.append((name, frame))
    if not frames:
        raise InputError("Every sheet of the workbook is empty.", where=str(path),
                         fix="Export the data again, or point source.sheet at the sheet with data.")
    first_name, first = frames[0]
    for name, frame in frames[1:]:
        if list(frame.columns) != list(first.columns):
            raise InputError(
                f"Sheet {name!r} has another header than sheet {first_name!r} "
                f"({list(frame.columns)[:8]} against {list(first.columns)[:8]}).",
                where=str(path),
                fix="Stack only sheets with the same columns (remove 'sheets: all' and choose one "
                    "with source.sheet), or give every sheet the same header.")
    frame = pd.concat([f for _, f in frames], ignore_index=True) if len(frames) > 1 else first
    # Empty cells are missing, as in CSV; numbers, dates and text keep the types the reader gave.
    frame = frame.map(lambda cell: None if isinstance(cell, str) and not cell.strip() else cell)
    frame = frame.infer_objects()
    info = _FileInfo(path, is_csv=False, sheet=first_name if len(frames) == 1 else None)
    if len(frames) > 1:
        info.notes.append(f"{len(frames)} sheets stacked ({', '.join(repr(n) for n, _ in frames)}): "
                          f"{len(frame)} rows.")
    return frame, info


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
    if kind == "excel":
        frame, info = _read_spreadsheet(path, source, role)
        frame.columns = [str(c).strip().lstrip("\ufeff").strip() for c in frame.columns]
        _check_duplicate_header(frame, info, source)
        return frame, info
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
    if kind == "csv":
        short = _short_rows(path, source, frame)
        if short:
            info.notes.append(
                f"{len(short)} row(s) have fewer fields than the header (first: {info.row(short[0])}); "
                "their missing fields were read as empty.")
    return frame, info


def _short_rows(path: Path, source: FileSource, frame: pd.DataFrame) -> list[int]:
    """Data rows with fewer fields than the header (pandas fills them in silently).

    Only looked for when the last column has empty cells, since a short row leaves it empty.
    """
    import csv

    if frame.empty or not frame.iloc[:, -1].isna().any() or path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        return []  # (a compressed file is not scanned again)
    width = len(frame.columns)
    short = []
    with path.open(newline="", encoding=source.encoding, errors="replace") as handle:
        rows = csv.reader(handle, delimiter=source.delimiter)
        next(rows, None)
        position = 0
        for fields in rows:
            if not fields:  # pandas skips blank lines
                continue
            if len(fields) < width:
                short.append(position)
            position += 1
    return short


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
        return distinct.mask(distinct.str.lower().isin(NULL_TOKENS)).astype(object)

    text = _as_text(values)
    return pd.Series(_on_uniques(text, clean, None), index=values.index, dtype="string")


def _numbers(values: pd.Series, decimal: str | None, info: _FileInfo,
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
    text = _as_text(values)
    empty = text.isna().to_numpy()
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    try:
        reading = decide_amount_format(pd.Series(uniques, dtype="string"), decimal)
    except AmbiguousFormat as exc:
        shown = "; ".join(f"{value!r} is {a} or {b}" for value, a, b in exc.examples)
        raise InputError(
            f"The amounts in column '{column}' can be read with a decimal point or a decimal "
            f"comma, and the two disagree: {shown}.",
            where=info.where(column),
            fix="Set source.decimal: '.' (1,234.56) or source.decimal: ',' (1.234,56).",
        ) from None
    arr = reading.values[np.maximum(codes, 0)] if len(uniques) else np.full(len(text), np.nan)
    arr = np.where(codes < 0, np.nan, arr)
    note = reading.describe() if decimal is None or reading.is_grouped else None
    return arr, empty, (f"column '{column}': {note}" if note else None)


def _round_money(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Money rounded to the cent once, at read, so every page adds up to the same cents."""
    rounded = np.round(values, 2) + 0.0
    with np.errstate(invalid="ignore"):
        changed = int((np.isfinite(values) & (np.abs(rounded - values) > 1e-9)).sum())
    return rounded, changed


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


def _to_zone(parsed: pd.Series, is_aware: np.ndarray | bool, source_zone: str, report_zone: str) -> pd.Series:
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


class _DateColumn:
    """A date column read: values in the reporting zone, the empty mask and how it was read."""

    def __init__(self, values: pd.Series, empty: np.ndarray, reading: DateReading | None):
        self.values = values
        self.empty = empty
        self.reading = reading  # None: typed cells or a configured date_format

    @property
    def unreadable(self) -> np.ndarray:
        return self.values.isna().to_numpy() & ~self.empty


def _dates(values: pd.Series, date_format: str | None, source_zone: str, report_zone: str,
           info: _FileInfo, column: str) -> _DateColumn:
    """Parse a date column into naive wall-clock times of ``report_zone``.

    Typed cells (Parquet, Excel) are used as they are; text with ``date_format`` is read with
    it; other text is read in the one format :func:`.formats.decide_date_format` chooses for
    the whole column (an ambiguous column is an InputError asking for ``date_format``).
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            return _DateColumn(_to_zone(values, True, source_zone, report_zone), values.isna().to_numpy(), None)
        return _DateColumn(_to_zone(values, False, source_zone, report_zone), values.isna().to_numpy(), None)
    if values.dtype == object:
        # A spreadsheet column may mix typed date cells with dates typed in as text: the typed
        # ones are used as they are, the text ones read in the format decided for them alone.
        typed = values.map(lambda cell: isinstance(cell, (datetime, date))).to_numpy(dtype=bool)
        if typed.any():
            text_part = values.where(~typed, None)
            column_read = _dates(text_part.astype("string"), date_format, source_zone, report_zone, info, column)
            stamps = pd.Series(pd.DatetimeIndex([pd.Timestamp(cell) for cell in values[typed]]).as_unit("us"))
            local = _to_zone(stamps, False, source_zone, report_zone)
            column_read.values.iloc[np.flatnonzero(typed)] = local.to_numpy()
            column_read.empty = column_read.empty & ~typed
            return column_read
    text = _as_text(values)
    empty = text.isna().to_numpy()
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    distinct = pd.Series(uniques, dtype="string")
    reading = None
    if date_format is not None:
        parsed, aware = _parse_with_format(distinct, date_format)
    else:
        try:
            reading = decide_date_format(distinct)
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
        parsed, aware = reading.values, reading.is_aware
    local = _to_zone(parsed, aware, source_zone, report_zone).to_numpy()
    if len(uniques):
        out = local[np.maximum(codes, 0)]
        out[codes < 0] = np.datetime64("NaT", "us")
    else:
        out = np.full(len(text), np.datetime64("NaT", "us"))
    return _DateColumn(pd.Series(out, index=values.index, dtype="datetime64[us]"), empty, reading)


def _parse_with_format(distinct: pd.Series, date_format: str) -> tuple[pd.Series, np.ndarray]:
    """Distinct values read with a configured strptime format: (naive values, is UTC)."""
    is_aware = ("%z" in date_format) or ("%Z" in date_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(distinct, format=date_format, errors="coerce", utc=is_aware)
    if is_aware:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[us]"), np.full(len(distinct), is_aware)


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


def load_file_source(source: FileSource, base_dir: str | Path = ".",
                     report_timezone: str | None = None) -> SourceData:
    """Load a CSV / Parquet / Excel file as canonical transactions, counting every excluded row.

    Parameters
    ----------
    source
        The ``source`` section of the config (kind ``file``).
    base_dir
        Folder that relative paths (``path``, ``customers_path``) are resolved against,
        normally the config file's folder.
    report_timezone
        The zone whose midnights cut the periods (``Config.report_timezone``); ``ordered_at``
        comes out as naive wall-clock time in it. Default: ``source.timezone``.

    Returns
    -------
    SourceData
        ``transactions``: canonical columns (see :mod:`cxpipeline.schema`), then ``currency`` if
        mapped, then one string column per ``segment_columns`` key, in file order.
        ``customers``: the customer table if ``customers_path`` is set, else None.
        ``quality``: rows / revenue in, used and excluded by reason (see :data:`EXCLUSION_REASONS`),
        and notes saying how dates and amounts were read.

    Raises
    ------
    InputError
        The file cannot be read as configured; the message names file, column, row and fix.
    ConfigError
        Inconsistent settings (e.g. ``cancellation_prefix`` without an order id column).
    """
    _check_zone(source.timezone)
    report_zone = report_timezone or source.timezone
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

    transactions, quality = _transactions_from_frame(raw, source, info, report_zone)
    quality.notes[:0] = info.notes  # how the file itself was read comes first
    customers = read_customers(source, base_dir, report_zone) if source.customers_path else None
    return SourceData(transactions=transactions, customers=customers, quality=quality,
                      description=str(path))


class _Amounts:
    """The money columns of a file read as numbers, and the rows whose amounts are unreadable."""

    def __init__(self, raw: pd.DataFrame, source: FileSource, info: _FileInfo, notes: list[str]):
        cols = source.columns
        n = len(raw)
        self.numbers: dict[str, np.ndarray] = {}
        self.unreadable = np.zeros(n, dtype=bool)
        self.first_bad: tuple[int, str] | None = None
        rounded = 0
        for key in _MONEY_COLUMNS:
            column = getattr(cols, key)
            if column is None:
                continue
            values, empty, how = _numbers(raw[column], source.decimal, info, column)
            if how:
                notes.append(how + ".")
            bad = np.isnan(values)
            fix = (f"Set source.decimal to the column's decimal separator ('.' or ','), or map "
                   f"columns.{key} to another column.")
            _unreadable_check(bad, empty, raw[column], column, info, "numbers", fix)
            # Cost columns, and quantity / unit price when revenue is given, may be left empty
            # (unknown: 0); the amounts that make up revenue may not.
            optional = key in ("cost", "cost_to_serve") or cols.revenue is not None and key != "revenue"
            if optional:
                bad = bad & ~empty
                values = np.where(empty, 0.0, values)
            if key in ("revenue", "cost", "cost_to_serve"):
                values, changed = _round_money(values)
                rounded += changed
            self.numbers[key] = values
            new_bad = bad & ~self.unreadable
            if new_bad.any():
                position = int(np.flatnonzero(new_bad)[0])
                if self.first_bad is None or position < self.first_bad[0]:
                    self.first_bad = (position, column)
            self.unreadable |= bad
        if rounded:
            notes.append(f"{rounded} amount(s) had fractions of a cent and were rounded to the cent "
                         "once, as read, so every page adds up to the same cents.")
        if cols.revenue is not None:
            self.revenue = self.numbers["revenue"]
        else:  # the line total, to the cent as printed on the invoice
            self.revenue = np.round(self.numbers["quantity"] * self.numbers["unit_price"], 2)
        # Unreadable revenue is NaN and counts as 0 in the accounting; a readable revenue on a
        # line excluded for another unreadable amount (e.g. quantity 'x') counts at its value.
        self.quantity = self.numbers.get("quantity", np.full(n, np.nan))
        self.cost = self.numbers.get("cost", np.zeros(n))
        self.cost_to_serve = self.numbers.get("cost_to_serve", np.zeros(n))


def _order_ids(raw: pd.DataFrame, source: FileSource, notes: list[str]) -> pd.Series:
    """The order id of each row; rows without one get their own, ``row-<n>``."""
    column = source.columns.order_id
    synthetic = "row-" + pd.Series(np.arange(1, len(raw) + 1), index=raw.index).astype("string")
    if column is None:
        return synthetic
    order_id = _as_text(raw[column])
    if order_id.isna().any():
        notes.append(f"{int(order_id.isna().sum())} row(s) without an order id were given "
                     "their own order id 'row-<n>'.")
        order_id = order_id.fillna(synthetic)
    return order_id


def _mark_returns(amounts: _Amounts, order_id: pd.Series, raw: pd.DataFrame, source: FileSource,
                  info: _FileInfo, notes: list[str]) -> np.ndarray:
    """Returns / cancellations, with their amounts made negative in ``amounts``."""
    cols = source.columns
    marked = np.zeros(len(raw), dtype=bool)  # an explicit marker says "return / cancellation"
    if source.cancellation_prefix:
        marked |= order_id.str.startswith(source.cancellation_prefix).fillna(False).to_numpy(dtype=bool)
    if cols.is_return is not None:
        marked |= _booleans(raw[cols.is_return], info, cols.is_return)
    revenue, quantity = amounts.revenue, amounts.quantity
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
    amounts.revenue = np.where(is_return, -np.abs(revenue), revenue) + 0.0
    amounts.quantity = np.where(is_return, -np.abs(quantity), quantity) + 0.0
    amounts.cost = np.where(is_return, -np.abs(amounts.cost), amounts.cost) + 0.0
    return is_return


def _order_dates(raw: pd.DataFrame, source: FileSource, info: _FileInfo, report_zone: str,
                 notes: list[str]) -> _DateColumn:
    """The order dates, read in one format for the column; stops when too many are unreadable."""
    column = source.columns.ordered_at
    dates = _dates(raw[column], source.date_format, source.timezone, report_zone, info, column)
    unreadable = dates.unreadable
    if dates.reading is not None:
        described = dates.reading.describe()
        if described:
            notes.append(f"column '{column}': {described}.")
    if not unreadable.any():
        return dates
    text = _as_text(raw[column])
    suggestion = _suggest_date_format(text[unreadable])
    if dates.reading is None:  # typed cells or a configured format: only most-unreadable stops
        current = f"source.date_format is {source.date_format!r}; " if source.date_format else ""
        fix = (f"{current}set source.date_format to the format of these dates"
               + (f", e.g. date_format: '{suggestion}'" if suggestion else " (strptime codes, e.g. '%d/%m/%Y %H:%M')")
               + ".")
        _unreadable_check(unreadable, dates.empty, raw[column], column, info, "dates", fix)
        return dates
    # A format decided from the data is trusted only if it reads (nearly) every value.
    non_empty = int((~dates.empty).sum())
    share = 1 - unreadable.sum() / non_empty
    if share < MIN_READ_SHARE:
        position = int(np.flatnonzero(unreadable)[0])
        best = f" (the closest, {dates.reading.family}, reads {share:.1%})" if dates.reading.count_read else ""
        raise InputError(
            f"{int(unreadable.sum())} of {non_empty} dates in column '{column}' cannot be read in any "
            f"one known format{best}; first: {raw[column].iloc[position]!r}.",
            where=info.where(column, position),
            fix="Set source.date_format to the format of these dates"
                + (f", e.g. date_format: '{suggestion}'" if suggestion else " (strptime codes, e.g. '%d/%m/%Y %H:%M')")
                + "; rows it cannot read are then excluded and counted.",
        )
    return dates


def _currencies(raw: pd.DataFrame, source: FileSource, info: _FileInfo) -> pd.Series | None:
    column = source.columns.currency
    if column is None:
        return None
    currency = _as_text(raw[column]).str.upper()
    codes = sorted(currency.dropna().unique().tolist())
    if source.currency is None and len(codes) > 1:
        raise InputError(
            f"The file mixes currencies ({', '.join(codes)}) and no currency is chosen.",
            where=info.where(column),
            fix=f"Set source.currency to the one to report on, e.g. 'currency: {codes[0]}' "
                "(rows in other currencies are excluded and counted).",
        )
    return currency


def _money(cents_total: int) -> str:
    return f"{cents_total / 100:,.2f}"


def _transactions_from_frame(raw: pd.DataFrame, source: FileSource, info: _FileInfo,
                             report_zone: str | None = None) -> tuple[pd.DataFrame, Exclusions]:
    """Convert a raw frame (columns as in the file) into canonical transactions + exclusions."""
    cols = source.columns
    n = len(raw)
    notes: list[str] = []
    amounts = _Amounts(raw, source, info, notes)
    order_id = _order_ids(raw, source, notes)
    is_return = _mark_returns(amounts, order_id, raw, source, info, notes)
    quality = Exclusions.start(n, amounts.revenue)
    dates = _order_dates(raw, source, info, report_zone or source.timezone, notes)
    currency = _currencies(raw, source, info)

    work = pd.DataFrame({
        "order_id": order_id.astype("string"),
        "customer_id": _customer_ids(raw[cols.customer_id]),
        "ordered_at": dates.values,
        "revenue": amounts.revenue,
        "cost": amounts.cost,
        "cost_to_serve": amounts.cost_to_serve,
        "quantity": amounts.quantity,
        "is_return": is_return,
    }, index=raw.index)
    if currency is not None:
        work["currency"] = currency
    for name, column in source.segment_columns.items():
        work[name] = _as_text(raw[column])

    # --- exclusions, in the order of EXCLUSION_REASONS -------------------------------------
    def full(mask: np.ndarray) -> pd.Series:  # a row mask over the file, aligned by label
        return pd.Series(mask, index=raw.index)

    if amounts.unreadable.any():
        position, column = amounts.first_bad
        notes.append(_first_note(REASON_NON_NUMERIC_AMOUNT, int(amounts.unreadable.sum()), position,
                                 column, raw[column].iloc[position], info))
    work = quality.exclude(work, full(amounts.unreadable), REASON_NON_NUMERIC_AMOUNT, "revenue")

    date_bad = dates.values.isna().to_numpy()
    date_excluded = date_bad & ~amounts.unreadable
    if date_excluded.any():
        position = int(np.flatnonzero(date_excluded)[0])
        notes.append(_first_note(REASON_UNPARSEABLE_DATE, int(date_excluded.sum()), position,
                                 cols.ordered_at, raw[cols.ordered_at].iloc[position], info))
    work = quality.exclude(work, full(date_bad), REASON_UNPARSEABLE_DATE, "revenue")
    work = _exclude_out_of_range(work, quality, source, notes)
    work = quality.exclude(work, work["customer_id"].isna(), REASON_MISSING_CUSTOMER_ID, "revenue")
    work = _identical_rows(work, raw, quality, source, notes)
    if currency is not None:
        work = quality.exclude(work, work["currency"].isna(), REASON_MISSING_CURRENCY, "revenue")
        if source.currency is not None:
            keep = source.currency.strip().upper()
            for code in sorted(work.loc[work["currency"] != keep, "currency"].dropna().unique()):
                work = quality.exclude(work, work["currency"] == code, other_currency_reason(code), "revenue")
    work = _zero_amounts(work, quality, source, notes)

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


def _exclude_out_of_range(work: pd.DataFrame, quality: Exclusions, source: FileSource,
                          notes: list[str]) -> pd.DataFrame:
    """Rows dated before ``earliest_date`` or after ``data_through``: excluded and noted."""
    earliest = pd.Timestamp(source.earliest_date)
    before = work["ordered_at"] < earliest
    if before.any():
        notes.append(f"{int(before.sum())} row(s) dated before {earliest:%Y-%m-%d} (first: "
                     f"{work.loc[before, 'ordered_at'].min():%Y-%m-%d}) were excluded as implausible; "
                     "set source.earliest_date to keep older sales.")
    work = quality.exclude(work, before, date_before_reason(source.earliest_date), "revenue")
    if source.data_through is not None:
        after = work["ordered_at"] >= pd.Timestamp(source.data_through) + pd.Timedelta(days=1)
        if after.any():
            notes.append(f"{int(after.sum())} row(s) dated after source.data_through "
                         f"({source.data_through:%Y-%m-%d}) were excluded.")
        work = quality.exclude(work, after, date_after_reason(source.data_through), "revenue")
    return work


def _identical_rows(work: pd.DataFrame, raw: pd.DataFrame, quality: Exclusions, source: FileSource,
                    notes: list[str]) -> pd.DataFrame:
    """Rows equal in every column to an earlier one.

    With an order id they are export duplicates (the same line twice) and are dropped. Without
    one, two identical rows are most often two purchases (the same item bought twice on a day),
    so they are kept unless ``drop_identical_rows`` says otherwise; either way they are noted.
    """
    identical = _exact_duplicates(raw).reindex(work.index)
    if not identical.any():
        return work
    count, cents_total = int(identical.sum()), to_cents(work.loc[identical, "revenue"])
    if source.columns.order_id is not None:
        return quality.exclude(work, identical, REASON_DUPLICATE_LINE, "revenue")
    if source.drop_identical_rows:
        notes.append(f"{count} row(s) identical to an earlier row were dropped as export duplicates "
                     "(source.drop_identical_rows: true).")
        return quality.exclude(work, identical, REASON_DUPLICATE_LINE, "revenue")
    notes.append(f"{count} row(s) are identical to an earlier row (worth {_money(cents_total)}); with no "
                 "order id they are read as separate purchases and kept. If they are export "
                 "duplicates, set source.drop_identical_rows: true.")
    return work


def _zero_amounts(work: pd.DataFrame, quality: Exclusions, source: FileSource,
                  notes: list[str]) -> pd.DataFrame:
    """Zero-amount purchases (free samples, 100 % discounts) are kept unless the config says not."""
    zero = pd.Series(np.rint(work["revenue"].to_numpy() * 100) == 0, index=work.index)
    if not zero.any():
        return work
    if source.exclude_zero_amounts:
        return quality.exclude(work, zero, REASON_ZERO_AMOUNT, "revenue")
    notes.append(f"{int(zero.sum())} row(s) have a zero amount and are kept as purchases worth 0 "
                 "(a free sample or a 100 % discount still makes a customer); set "
                 "source.exclude_zero_amounts: true to leave them out.")
    return work


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


def read_customers(source: FileSource, base_dir: str | Path = ".",
                   report_zone: str | None = None) -> pd.DataFrame:
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
            read = _dates(raw[column], source.date_format, source.timezone,
                          report_zone or source.timezone, info, column)
            parsed, bad = read.values, read.unreadable
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
