"""Reading a transactions or customer file into a raw frame: CSV (as text), Parquet, or a
spreadsheet (xlsx, xlsm, xls, xlsb, ods), with errors that name the file, line and fix.

Nothing here converts a value: every CSV column stays text, so ids such as 00123 and dates are
never type-guessed (the conversion is :mod:`cxpipeline.sources.columns`). :class:`FileInfo`
turns row positions into the file's own row and line numbers for messages, and carries notes on
how the file itself was read (stacked sheets, short rows).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pandas as pd

from cxpipeline.config import FileSource
from cxpipeline.errors import ConfigError, InputError

__all__ = ["FileInfo", "resolve_path", "read_frame", "check_columns", "SPREADSHEET_SUFFIXES"]

_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}


# --------------------------------------------------------------------------------------------
# Reading


class FileInfo:
    """Where rows come from, for messages: the path and whether rows map to CSV lines or to
    the rows of one spreadsheet sheet; ``notes`` say how the file itself was read."""

    def __init__(self, path: Path, is_csv: bool, sheet: str | None = None, header: bool = True, skip: int = 0):
        self.path = path
        self.is_csv = is_csv
        self.sheet = sheet  # the one sheet read (None: not a spreadsheet, or stacked sheets)
        self.skip = skip  # lines before the header (Excel's "sep=;")
        self.header_lines = (1 if header else 0) + skip  # lines before the first data line
        self.notes: list[str] = []
        self.currency_marks: dict[str, str] = {}  # column -> the currency mark its amounts carry

    def row(self, position: int) -> str:
        """Describe 0-based data position ``position`` as a 1-based row (and CSV line)."""
        row = position + 1
        if self.is_csv:
            return f"row {row} (line {row + self.header_lines} of the file)"
        if self.sheet is not None:
            return f"row {row} (row {row + self.header_lines} of sheet {self.sheet!r})"
        return f"row {row}"

    def where(self, column: str | None = None, position: int | None = None) -> str:
        parts = [str(self.path)]
        if column is not None:
            parts.append(f"column '{column}'")
        if position is not None:
            parts.append(self.row(position))
        return ", ".join(parts)


def resolve_path(path: str, base_dir: str | Path) -> Path:
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
    if suffixes and suffixes[-1] in SPREADSHEET_SUFFIXES:
        return "excel"
    raise InputError(
        f"Cannot tell whether {path.name!r} is CSV, Parquet or a spreadsheet from its extension.",
        where=str(path),
        fix="Set source.format: csv (or parquet, or excel), or name the file *.csv / *.parquet / *.xlsx.",
    )


SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


def _read_spreadsheet(path: Path, source: FileSource, role: str,
                      header: bool = True) -> tuple[pd.DataFrame, FileInfo]:
    """One sheet (``source.sheet``: name or 0-based index, default the first) or, with
    ``sheets: all``, every sheet stacked (they must share one header).

    Read by calamine (a maintained Rust reader for xlsx, xlsm, xls, xlsb and ods). Date cells
    come typed; text cells stay text and go through the same rules as CSV.
    """
    from python_calamine import CalamineWorkbook

    _check_expansion(path)
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
    unread = [] if role != "transactions" or source.sheets == "all" else [n for n in names if n not in chosen]
    if unread and source.sheet is None and header:
        # Exports split by year put each year on its own sheet (Online Retail II): reading the first
        # alone would leave the others' revenue out of the pack without a word.
        alike = [n for n in unread
                 if _header_row(workbook.get_sheet_by_name(n).iter_rows(), mapped_names(source, role)) is not None]
        if alike:
            raise InputError(
                f"The workbook has {len(alike) + 1} sheets with the mapped columns ("
                + ", ".join(repr(n) for n in [chosen[0], *alike]) + f"); only the first, {chosen[0]!r}, would be read.",
                where=str(path),
                fix="Set source.sheets: all to stack them (lines in two sheets are found as exact duplicates and "
                    "dropped and counted), or set source.sheet to the one sheet to read.")
    frames, titles = [], []
    for name in chosen:
        rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=True)
        # A report's title rows (and blank rows) above the header are counted as the sheet has them.
        title = header_index(rows, mapped_names(source, role)) if header else 0
        if title:
            titles.append((name, title))
        rows = [row for row in rows[title:] if any(cell not in ("", None) for cell in row)]
        if not rows:
            if len(chosen) > 1:
                continue  # an empty sheet among several adds nothing
            raise InputError(f"Sheet {name!r} is empty.", where=str(path),
                             fix="Point source.sheet at the sheet that holds the data.")
        names = ([str(c).strip() for c in rows[0]] if header
                 else numbered_columns(max(len(row) for row in rows)))
        body = [list(row) + [""] * (len(names) - len(row)) for row in rows[1 if header else 0:]]
        frame = pd.DataFrame([row[:len(names)] for row in body], columns=names, dtype=object)
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
    # (calamine gives "" for an empty cell; cells of spaces are stripped to empty later, as in CSV.)
    frame = frame.replace("", None).infer_objects()
    info = FileInfo(path, is_csv=False, sheet=first_name if len(frames) == 1 else None, header=header,
                    skip=titles[0][1] if titles and len(frames) == 1 else 0)
    info.notes.extend(f"Sheet {name!r}: the {count} row(s) above the header (a report's title) were skipped."
                      for name, count in titles)
    if len(frames) > 1:
        info.notes.append(f"{len(frames)} sheets stacked ({', '.join(repr(n) for n, _ in frames)}): "
                          f"{len(frame)} rows.")
    if unread:
        info.notes.append(f"Sheet {chosen[0]!r} was read; the workbook's other sheet(s) "
                          + ", ".join(repr(n) for n in unread) + " were not"
                          + (" (they do not name the mapped columns)." if source.sheet is None and header else "."))
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


#: ``delimiter: whitespace``: fields separated by runs of spaces or tabs (fixed-width text
#: exports such as CDNOW's ``00001 19970101  1  11.77``).
WHITESPACE = "whitespace"


def _separator(source: FileSource) -> str:
    return r"\s+" if source.delimiter == WHITESPACE else source.delimiter


def numbered_columns(width: int) -> list[str]:
    """Column names of a file without a header: its positions, ``"1"`` for the first."""
    return [str(number) for number in range(1, width + 1)]


#: A compressed export expands 5-20x; one that expands more than this, past
#: :data:`BOMB_MIN_BYTES`, is refused before pandas inflates it into memory.
MAX_EXPANSION = 200
BOMB_MIN_BYTES = 256 * 1024 * 1024
_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma", ".zst": "zstandard"}


def _is_compressed(path: Path) -> bool:
    """A CSV pandas decompresses (by its suffix): its lines cannot be read from the raw bytes."""
    return path.suffix.lower() in (*_OPENERS, ".zip", ".zst")


def _check_expansion(path: Path) -> None:
    """Refuse a decompression bomb: a compressed CSV that inflates more than
    :data:`MAX_EXPANSION` times its size (and past :data:`BOMB_MIN_BYTES`). Read in chunks, so
    only a few megabytes are ever held; it stops as soon as the limit is passed."""
    import importlib
    import zipfile

    limit = max(BOMB_MIN_BYTES, MAX_EXPANSION * path.stat().st_size)

    def refuse(inflated: str) -> InputError:
        return InputError(
            f"The compressed file inflates to {inflated} bytes, over {MAX_EXPANSION} times its "
            f"{path.stat().st_size:,} bytes: a real export compresses 5-20 times, so this is refused rather than "
            "read into memory.",
            where=str(path),
            fix="Check where the file came from; export the data again, uncompressed or as Parquet.")

    if path.suffix.lower() == ".zip" or path.suffix.lower() in SPREADSHEET_SUFFIXES:
        # A zipped CSV, and xlsx / xlsm / xlsb / ods workbooks, which are zip files of XML: their
        # directory says how large each member inflates (xls is not a zip: nothing to check).
        try:
            with zipfile.ZipFile(path) as archive:
                declared = sum(member.file_size for member in archive.infolist())
        except (OSError, zipfile.BadZipFile, ValueError):  # not a zip: the reader says what it is
            return
        if declared > limit:
            raise refuse(f"{declared:,}")
        return
    module = _OPENERS.get(path.suffix.lower())
    if module is None:
        return
    inflated = 0
    try:
        with importlib.import_module(module).open(path, "rb") as stream:
            while chunk := stream.read(4 * 1024 * 1024):
                inflated += len(chunk)
                if inflated > limit:
                    raise refuse(f"more than {limit:,}")
    except (OSError, EOFError, ValueError, ImportError):  # not really compressed, or truncated: pandas says so
        return


#: How far down a report's title lines may push its header.
MAX_TITLE_LINES = 20


def mapped_names(source: FileSource, role: str) -> set[str]:
    """The column names the config maps in the ``role`` file (transactions or customers)."""
    if role == "transactions":
        return ({c for c in source.columns.model_dump().values() if c} | set(source.segment_columns.values())
                | set(source.exclude_rows))
    return set(source.customer_columns.values())


def header_index(rows, needed: set[str]) -> int:
    """Index of the first of the first :data:`MAX_TITLE_LINES` rows that names every mapped
    column: reports put a title, a date or a blank line above their header. 0 when the first row
    does, or when none does (the first row is then the header, and the missing columns are
    reported as such)."""
    return _header_row(rows, needed) or 0


def _header_row(rows, needed: set[str]) -> int | None:
    """Index of the first of the first :data:`MAX_TITLE_LINES` rows that names every column in
    ``needed``, or None (none does, or nothing is needed)."""
    if not needed:
        return None
    for index, row in enumerate(rows):
        if index >= MAX_TITLE_LINES:
            break
        if needed <= {str(cell).strip().lstrip("\ufeff").strip() for cell in row if cell is not None}:
            return index
    return None


def _title_lines(path: Path, source: FileSource, role: str, skip: int) -> int:
    """Lines of a CSV's title above its header (after ``skip`` lines), see :func:`header_index`."""
    import csv
    import itertools

    if _is_compressed(path):
        return 0
    try:
        with path.open(newline="", encoding=source.encoding, errors="replace") as handle:
            lines = itertools.islice(handle, skip, skip + MAX_TITLE_LINES)
            rows = ((line.split() for line in lines) if source.delimiter == WHITESPACE
                    else csv.reader(lines, delimiter=source.delimiter))
            return header_index(rows, mapped_names(source, role))
    except (OSError, csv.Error, LookupError, ValueError):  # UnicodeError is a ValueError
        return 0  # read (and reported) by _read_csv


def _excel_separator(path: Path, source: FileSource) -> tuple[FileSource, int, str | None]:
    """Excel writes ``sep=;`` as the first line of a CSV to name its delimiter. When the file has
    one, the source with that delimiter, the one line to skip and a note; else ``source``, 0."""
    if _is_compressed(path):
        return source, 0, None
    try:
        with path.open("rb") as handle:
            first = handle.readline(64)
    except OSError:
        return source, 0, None
    match = re.fullmatch(rb"(?:\xef\xbb\xbf)?sep=(.)\r?\n?", first)
    if not match:
        return source, 0, None
    declared = match.group(1).decode("latin-1")
    if declared == "\t":
        shown = "'\\t' (tab)"
    else:
        shown = repr(declared)
    if "delimiter" in source.model_fields_set and source.delimiter != declared:
        raise InputError(f"The file's first line, 'sep={declared}', says its delimiter is {shown}; the config "
                         f"sets delimiter {source.delimiter!r}.", where=f"{path}, line 1",
                         fix=f"Remove source.delimiter (the file's own line is used), or set it to {shown}.")
    note = (f"The file's first line 'sep={declared}' (written by Excel) names its delimiter {shown}: "
            "the file was read with it, from line 2.")
    return source.model_copy(update={"delimiter": declared}), 1, note


def _read_csv(path: Path, source: FileSource, header: bool = True, skip: int = 0) -> pd.DataFrame:
    _check_wide_encoding(path, source)
    _check_expansion(path)
    try:
        # Every column as text: ids such as 00123 / 17850 and dates must not be type-guessed.
        # Only empty cells are missing ("NA" is a country code, not a null).
        frame = pd.read_csv(
            path, sep=_separator(source), encoding=source.encoding, dtype=str,
            keep_default_na=False, na_values=[""], skipinitialspace=False,
            header=0 if header else None, skiprows=skip,
        )
        if not header:
            frame.columns = numbered_columns(len(frame.columns))
        return frame
    except UnicodeDecodeError as exc:
        line = _first_undecodable_line(path, source.encoding)
        if "encoding" not in source.model_fields_set:
            raise _NotDefaultEncoding(line) from None
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
        raise InputError("The file is empty" + (" (no header line)." if header else "."), where=str(path),
                         fix="Export the data again" + (" with a header line of column names." if header
                                                        else ".")) from None
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


class _NotDefaultEncoding(Exception):
    """The file is not in the default encoding (UTF-8), which the config did not set."""

    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


def _read_csv_any_encoding(path: Path, source: FileSource, header: bool,
                           skip: int = 0) -> tuple[pd.DataFrame, FileSource, str | None]:
    """The CSV read in ``source.encoding``; when that is the default (UTF-8, not set in the
    config) and the file is not valid UTF-8, read as Windows-1252, what Excel on Windows writes
    (Latin-1 where a byte is undefined in it). Returns the frame, the source as read and a note
    saying so. Only text changes with the encoding (names, segment values), never an amount or
    a date, and every byte still maps to one character, so customer ids stay apart. An encoding
    set in the config is used as set: a file not in it is an error."""
    try:
        return _read_csv(path, source, header, skip), source, None
    except _NotDefaultEncoding as exc:
        where = f" (first at line {exc.line})" if exc.line and not _is_compressed(path) else ""
    for fallback, name in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        chosen = source.model_copy(update={"encoding": fallback})  # now set: a failure is an error
        try:
            frame = _read_csv(path, chosen, header, skip)
        except InputError:
            if fallback == "latin-1":
                raise
            continue
        note = (f"The file is not UTF-8{where}; it was read as {name}, the usual encoding of exports made "
                "on Windows. If names or segment values look wrong, set source.encoding to the file's "
                "encoding (e.g. latin-2, cp1250, shift_jis).")
        return frame, chosen, note
    raise AssertionError("unreachable: Latin-1 decodes every byte")


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


def _check_duplicate_header(frame: pd.DataFrame, info: FileInfo, source: FileSource) -> None:
    """Refuse a header naming a column twice: pandas renames the second 'amount' to
    'amount.1', so a mapping would silently read the first of the two."""
    if not info.header_lines:
        return  # columns named by position
    if info.is_csv:
        try:
            header = pd.read_csv(info.path, sep=_separator(source), encoding=source.encoding, header=None,
                                 skiprows=info.skip,
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


def read_frame(path: Path, source: FileSource, role: str) -> tuple[pd.DataFrame, FileInfo]:
    if not path.is_file():
        raise InputError(
            f"The {role} file does not exist.", where=str(path),
            fix="Check the path; a relative path is read from the config file's folder.",
        )
    kind = _file_format(path, source.format if role == "transactions" else None)
    header = source.header or role != "transactions"  # header: false is about the transactions file
    if kind == "excel":
        frame, info = _read_spreadsheet(path, source, role, header)
        frame.columns = [str(c).strip().lstrip("\ufeff").strip() for c in frame.columns]
        _check_duplicate_header(frame, info, source)
        return frame, info
    encoding_note, skip, sep_note, title_note = None, 0, None, None
    if kind == "csv":
        source, skip, sep_note = _excel_separator(path, source)
        title = _title_lines(path, source, role, skip) if header else 0
        if title:
            title_note = (f"The header is on line {skip + title + 1}: the {title} line(s) above it (a report's "
                          "title) were skipped.")
            skip += title
        frame, source, encoding_note = _read_csv_any_encoding(path, source, header, skip)
    else:
        frame = _read_parquet(path)
    if kind == "csv" and not isinstance(frame.index, pd.RangeIndex):
        # pandas quietly turns the first column into the index when the first data line has
        # one field more than the header, shifting every value one column to the left.
        raise InputError(
            "The first data line has more fields than the header, so every column would be "
            "shifted by one.",
            where=f"{path}, line {2 + skip}",
            fix="Remove the extra field (or add the missing header name); a field that contains "
                f"the delimiter {source.delimiter!r} must be in double quotes.",
        )
    # Header cells often carry stray spaces or a byte-order mark.
    frame.columns = [str(c).strip().lstrip("\ufeff").strip() for c in frame.columns]
    info = FileInfo(path, kind == "csv", header=header, skip=skip)
    info.notes.extend(note for note in (sep_note, title_note, encoding_note) if note)
    _check_duplicate_header(frame, info, source)
    if kind == "csv":
        short = _short_rows(path, source, frame, header, skip)
        if short:
            info.notes.append(
                f"{len(short)} row(s) have fewer fields than the header (first: {info.row(short[0])}); "
                "their missing fields were read as empty.")
    return frame, info


def _short_rows(path: Path, source: FileSource, frame: pd.DataFrame, header: bool = True,
                skip: int = 0) -> list[int]:
    """Data rows with fewer fields than the header (pandas fills them in silently).

    Only looked for when the last column has empty cells, since a short row leaves it empty.
    """
    import csv

    if frame.empty or not frame.iloc[:, -1].isna().any() or path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        return []  # (a compressed file is not scanned again)
    width = len(frame.columns)
    short = []
    with path.open(newline="", encoding=source.encoding, errors="replace") as handle:
        rows = ((line.split() for line in handle) if source.delimiter == WHITESPACE
                else csv.reader(handle, delimiter=source.delimiter))
        for _ in range(skip + (1 if header else 0)):
            next(rows, None)
        position = 0
        for fields in rows:
            if not fields:  # pandas skips blank lines
                continue
            if len(fields) < width:
                short.append(position)
            position += 1
    return short


def check_columns(frame: pd.DataFrame, needed: dict[str, str], info: FileInfo,
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
    fix = ("Correct the column names in the config (source.columns / source.segment_columns / "
           "source.customer_columns) to the file's header.")
    if not info.header_lines:
        fix = (f"The file has no header line (header: false), so its columns are named by position, "
               f"1 to {len(columns)}: map each one by its number, e.g. customer_id: 1.")
    elif columns and all(re.fullmatch(r"[\d.,:/ +-]+", c) for c in columns):
        fix = ("The first line looks like data, not column names. If the file has no header line, set "
               "source.header: false and map the columns by position (customer_id: 1 for the first).")
    raise InputError(
        "Mapped column(s) not found in the file:\n  - " + "\n  - ".join(lines)
        + f"\nThe file has the columns: {shown}.",
        where=info.where(), fix=fix,
    )


