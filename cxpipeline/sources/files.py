"""File source: CSV, Parquet or spreadsheet transactions (e.g. an invoice-line export) with a
column mapping.

One module of ~530 lines on purpose: the rules of the plain reading and the order in which rows
are excluded are read together (reading the file and converting its columns are split out).

Real exports never use our column names and are never clean. This module turns one file into
canonical transactions (:data:`cxpipeline.schema.TRANSACTION_COLUMNS`, plus one column per
``segment_columns`` entry and ``currency`` when mapped) and accounts for every row it leaves out.
Reading the file is :mod:`cxpipeline.sources.file_readers`; converting its columns is
:mod:`cxpipeline.sources.columns` (formats decided once per column by
:mod:`cxpipeline.sources.formats`); this module applies the rules of the plain reading
(docs/reliability.md, "Reading a real export").

What it copes with
------------------
* revenue given directly, or computed as quantity x unit price (rounded to the cent); amounts
  with thousands separators in either convention, rounded to the cent once, as read;
* no order id column (each row is its own order: ``row-<n>``, n = 1-based data row; identical
  rows are then separate purchases) or an invoice number shared by the lines of one order;
* returns / cancellations marked by a negative quantity or amount, by an invoice-number prefix
  (``cancellation_prefix``, e.g. ``"C"``) or by a boolean ``is_return`` column. They are *kept*
  with negative revenue, quantity and cost: a cancellation really reduces net revenue. A marked
  line whose sign is positive is made negative and counted in the notes;
* dates in one format per column (decided from the data, or ``date_format``), with or without
  time and zone: naive ones are wall-clock times of ``timezone``, aware ones are converted; the
  result is naive wall-clock time of the reporting zone (``period.timezone``, by default
  ``timezone``), so periods start at the business's midnight;
* customer ids read as floats by another tool (``"17850.0"`` becomes ``"17850"``);
* CSV options: delimiter, encoding, decimal separator. CSV is read as text first, so ids and
  dates are never mangled by type guessing, then converted column by column (vectorised).

Rows left out, each counted with its revenue under one stable reason (first that applies,
in this order): see :data:`EXCLUSION_REASONS`, plus ``"other currency (XXX)"`` per currency.
``revenue_in == revenue_used + revenue_excluded`` holds to the cent.

A file that cannot be read as intended (wrong delimiter, encoding, missing columns, broken
quoting, an ambiguous or mostly unreadable date or amount column, mixed currencies without a
choice) raises :class:`~cxpipeline.errors.InputError` naming the file, column and row and the fix.

Row numbers in messages are 1-based data rows (the header is not counted); for CSV the file
line is given as well (row + 1, exact unless quoted fields span several lines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxpipeline.config import FileSource
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.quality import Exclusions, to_cents
from cxpipeline.schema import (
    TRANSACTION_COLUMNS,
    validate_customers,
    validate_transactions,
)
from cxpipeline.sources.aggregate import REASON_CONFIG_PREFIX, REASON_TOTAL_ROW
from cxpipeline.sources.base import SourceData
from cxpipeline.sources.columns import (
    MAX_UNREADABLE_SHARE,
    DateColumn,
    as_text,
    customer_ids,
    first_note,
    read_booleans,
    read_dates,
    read_numbers,
    round_money,
    suggest_date_format,
    unreadable_check,
)
from cxpipeline.sources.file_readers import (
    FileInfo,
    check_columns,
    read_frame,
    resolve_path,
)
from cxpipeline.sources.formats import MIN_READ_SHARE

__all__ = [
    "load_file_source",
    "check_currency_marks",
    "read_customers",
    "EXCLUSION_REASONS",
    "REASON_NON_NUMERIC_AMOUNT",
    "REASON_UNPARSEABLE_DATE",
    "REASON_MISSING_CUSTOMER_ID",
    "REASON_DUPLICATE_LINE",
    "REASON_MISSING_CURRENCY",
    "REASON_ZERO_AMOUNT",
    "REASON_TOTAL_ROW",
    "total_rows",
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
    REASON_TOTAL_ROW,
    REASON_NON_NUMERIC_AMOUNT,
    REASON_UNPARSEABLE_DATE,
    REASON_MISSING_CUSTOMER_ID,
    REASON_DUPLICATE_LINE,
    REASON_MISSING_CURRENCY,
    REASON_ZERO_AMOUNT,
)



def other_currency_reason(code: str) -> str:
    """The exclusion reason for rows in a currency other than ``source.currency``."""
    return f"other currency ({code})"


def date_before_reason(earliest) -> str:
    """The exclusion reason for rows dated before ``source.earliest_date``."""
    return f"dated before {earliest:%Y-%m-%d}"


def date_after_reason(through) -> str:
    """The exclusion reason for rows dated after ``source.data_through``."""
    return f"dated after {through:%Y-%m-%d} (data_through)"


_MONEY_COLUMNS = ("revenue", "quantity", "unit_price", "cost", "profit", "cost_to_serve")


# --------------------------------------------------------------------------------------------
# The source


def load_file_source(source: FileSource, base_dir: str | Path = ".",
                     report_timezone: str | None = None, pack_currency: str | None = None) -> SourceData:
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
    pack_currency
        The currency the pack prints (``Config.currency``): amounts marked with another
        currency (``$12.00`` in a GBP pack) are refused (:func:`check_currency_marks`).

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
    report_zone = report_timezone or source.timezone
    cols = source.columns
    if source.cancellation_prefix and not cols.order_id:
        raise ConfigError(
            "source.cancellation_prefix is set but no invoice column is mapped.",
            where="source.columns.order_id",
            fix="Map columns.order_id to the invoice-number column, or remove cancellation_prefix.",
        )
    path = resolve_path(source.path, base_dir)
    raw, info = read_frame(path, source, "transactions")

    mapped = {f"columns.{key}": col for key, col in cols.model_dump().items() if col is not None}
    mapped.update({f"segment_columns.{key}": col for key, col in source.segment_columns.items()})
    check_columns(raw, mapped, info, source.delimiter if info.is_csv else None)

    transactions, quality = _transactions_from_frame(raw, source, info, report_zone)
    if pack_currency:
        check_currency_marks(info, source, pack_currency)
    quality.notes[:0] = info.notes  # how the file itself was read comes first
    customers = read_customers(source, base_dir, report_zone) if source.customers_path else None
    return SourceData(transactions=transactions, customers=customers, quality=quality,
                      description=str(path))


#: The ISO code a symbol most often stands for, for the fix of a currency mismatch.
_SYMBOL_CODES = {"£": "GBP", "€": "EUR", "¥": "JPY", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY",
                 "US$": "USD", "CA$": "CAD", "A$": "AUD", "NZ$": "NZD", "HK$": "HKD", "S$": "SGD"}


def check_currency_marks(info: FileInfo, source: FileSource, pack_currency: str) -> None:
    """Refuse money columns whose values carry another currency than the pack prints: the
    numbers would be right and every amount in the pack labelled wrongly.

    Raises
    ------
    ConfigError
        Naming the column, its mark and the ``currency`` to set.
    """
    from cxpipeline.sources.formats import currency_mark_matches

    for key in ("revenue", "unit_price", "cost", "cost_to_serve"):
        column = getattr(source.columns, key)
        mark = info.currency_marks.get(column) if column else None
        if mark and not currency_mark_matches(mark, pack_currency):
            code = mark if len(mark) == 3 and mark.isalpha() else _SYMBOL_CODES.get(mark)
            fix = (f"Set currency: {code} in the config" + ("." if code == mark else f" (the ISO code of {mark}).")
                   if code else
                   f"Set currency to the ISO code of the amounts' currency ({mark}).")
            if mark == "$":
                fix = "Set currency to the ISO code of the amounts' dollar: currency: USD (or CAD, AUD, NZD...)."
            raise ConfigError(
                f"The amounts in column '{column}' are marked {mark} but the pack prints {pack_currency}.",
                where=info.where(column), fix=fix)


class _Amounts:
    """The money columns of a file read as numbers, and the rows whose amounts are unreadable."""

    def __init__(self, raw: pd.DataFrame, source: FileSource, info: FileInfo, notes: list[str]):
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
            values, empty, how = read_numbers(raw[column], source.decimal, info, column)
            if how:
                notes.append(how + ".")
            bad = np.isnan(values)
            fix = (f"Set source.decimal to the column's decimal separator ('.' or ','), or map "
                   f"columns.{key} to another column.")
            unreadable_check(bad, empty, raw[column], column, info, "numbers", fix)
            # Cost columns, and quantity / unit price when revenue is given, may be left empty
            # (unknown: 0); the amounts that make up revenue may not.
            optional = key in ("cost", "profit", "cost_to_serve") or cols.revenue is not None and key != "revenue"
            if key == "profit":
                self.profit_empty = empty
            if optional:
                bad = bad & ~empty
                values = np.where(empty, 0.0, values)
            if key in ("revenue", "cost", "profit", "cost_to_serve"):
                values, changed = round_money(values)
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
        if "profit" in self.numbers:  # cost = revenue - profit; an empty profit cell is an unknown cost: 0
            self.cost = np.where(self.profit_empty, 0.0, np.round(self.revenue - self.numbers["profit"], 2)) + 0.0
            notes.append(f"column '{cols.profit}': the export gives each line's profit, not its cost; cost is read "
                         f"as revenue minus profit (an empty profit cell: cost unknown, 0).")
        self.cost_to_serve = self.numbers.get("cost_to_serve", np.zeros(n))


def _order_ids(raw: pd.DataFrame, source: FileSource, notes: list[str]) -> pd.Series:
    """The order id of each row; rows without one get their own, ``row-<n>``."""
    column = source.columns.order_id
    synthetic = "row-" + pd.Series(np.arange(1, len(raw) + 1), index=raw.index).astype("string")
    if column is None:
        return synthetic
    order_id = as_text(raw[column])
    if order_id.isna().any():
        notes.append(f"{int(order_id.isna().sum())} row(s) without an order id were given "
                     "their own order id 'row-<n>'.")
        order_id = order_id.fillna(synthetic)
    return order_id


def _order_customers(ids: pd.Series, order_id: pd.Series, totals: np.ndarray, source: FileSource,
                     info: FileInfo, notes: list[str]) -> pd.Series:
    """Customer ids; lines without one, in orders whose other lines name exactly one customer.

    Order exports (Shopify's, ERPs' header + lines) write an order's fields on its first line
    only. Read plainly, a blank customer cell is no customer: those lines are excluded as
    "missing customer id", and a note counts them and names ``source.fill_customer_from_order``.
    With it, each takes its order's customer (noted). An order whose lines name two customers,
    or none, a line without an order id and a total row are left as they are.
    """
    column = source.columns.order_id
    missing = ids.isna().to_numpy() & ~totals
    if column is None or not missing.any() or missing.all():
        return ids
    named = ids.notna()
    per_order = pd.DataFrame({"order": order_id[named], "customer": ids[named]}).groupby(
        "order", sort=False)["customer"].agg(["nunique", "first"])
    taken = order_id[missing].map(per_order.loc[per_order["nunique"] == 1, "first"]).dropna()
    if taken.empty:
        return ids
    first = f"first at {info.row(int(ids.index.get_indexer([taken.index[0]])[0]))}"
    if not source.fill_customer_from_order:
        notes.append(f"{len(taken)} line(s) without a customer id belong to an order whose other lines name "
                     f"exactly one customer (column {column!r}; {first}); they are excluded as 'missing "
                     "customer id'. If the export writes an order's fields on its first line only, set "
                     "source.fill_customer_from_order: true.")
        return ids
    ids = ids.copy()
    ids.loc[taken.index] = taken.astype(ids.dtype)
    notes.append(f"{len(taken)} line(s) without a customer id took their order's customer: another line of the "
                 f"same order (column {column!r}) names exactly one ({first}; "
                 "source.fill_customer_from_order: true).")
    return ids


def _mark_returns(amounts: _Amounts, order_id: pd.Series, raw: pd.DataFrame, source: FileSource,
                  info: FileInfo, notes: list[str]) -> np.ndarray:
    """Returns / cancellations, with their amounts made negative in ``amounts``."""
    cols = source.columns
    marked = np.zeros(len(raw), dtype=bool)  # an explicit marker says "return / cancellation"
    if source.cancellation_prefix:
        marked |= order_id.str.startswith(source.cancellation_prefix).fillna(False).to_numpy(dtype=bool)
    if cols.is_return is not None:
        marked |= read_booleans(raw[cols.is_return], info, cols.is_return)
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


def _order_dates(raw: pd.DataFrame, source: FileSource, info: FileInfo, report_zone: str,
                 notes: list[str]) -> DateColumn:
    """The order dates, read in one format for the column; stops when too many are unreadable."""
    column = source.columns.ordered_at
    dates = read_dates(raw[column], source.date_format, source.timezone, report_zone, info, column)
    unreadable = dates.unreadable
    if dates.reading is not None:
        described = dates.reading.describe()
        if described:
            notes.append(f"column '{column}': {described}.")
    if not unreadable.any():
        return dates
    text = as_text(raw[column])
    suggestion = suggest_date_format(text[unreadable])
    if dates.reading is None:  # typed cells or a configured format: only most-unreadable stops
        current = f"source.date_format is {source.date_format!r}; " if source.date_format else ""
        fix = (f"{current}set source.date_format to the format of these dates"
               + (f", e.g. date_format: '{suggestion}'" if suggestion else " (strptime codes, e.g. '%d/%m/%Y %H:%M')")
               + ".")
        unreadable_check(unreadable, dates.empty, raw[column], column, info, "dates", fix)
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


def _currencies(raw: pd.DataFrame, source: FileSource, info: FileInfo) -> pd.Series | None:
    column = source.columns.currency
    if column is None:
        return None
    currency = as_text(raw[column]).str.upper()
    codes = sorted(currency.dropna().unique().tolist())
    if source.currency is None and len(codes) > 1:
        raise InputError(
            f"The file mixes currencies ({', '.join(codes)}) and no currency is chosen.",
            where=info.where(column),
            fix=f"Set source.currency to the one to report on, e.g. 'currency: {codes[0]}' "
                "(rows in other currencies are excluded and counted).",
        )
    return currency


def _excluded_by_config(raw: pd.DataFrame, source: FileSource, info: FileInfo) -> list[tuple[str, np.ndarray]]:
    """``source.exclude_rows``: (reason, row mask) per configured value, e.g. a payment export's
    ``Status = Failed``; values match ignoring case and surrounding spaces."""
    out = []
    for column, values in source.exclude_rows.items():
        if column not in raw.columns:
            raise InputError(f"Column '{column}' named in source.exclude_rows is not in the file.",
                             where=info.where(),
                             fix="Use one of the file's columns: " + ", ".join(repr(c) for c in raw.columns[:12])
                                 + ("..." if len(raw.columns) > 12 else "") + ".")
        text = as_text(raw[column]).str.casefold()
        for value in values:
            out.append((f"{REASON_CONFIG_PREFIX}{column} = {value}",
                        (text == str(value).strip().casefold()).fillna(False).to_numpy(dtype=bool)))
    return out


def _money(cents_total: int) -> str:
    return f"{cents_total / 100:,.2f}"


def _transactions_from_frame(raw: pd.DataFrame, source: FileSource, info: FileInfo,
                             report_zone: str | None = None) -> tuple[pd.DataFrame, Exclusions]:
    """Convert a raw frame (columns as in the file) into canonical transactions + exclusions."""
    cols = source.columns
    n = len(raw)
    notes: list[str] = []
    amounts = _Amounts(raw, source, info, notes)
    order_id = _order_ids(raw, source, notes)
    is_return = _mark_returns(amounts, order_id, raw, source, info, notes)
    quality = Exclusions.start(n, amounts.revenue)
    ids = customer_ids(raw[cols.customer_id])
    totals = total_rows(raw, amounts.revenue, ids)
    ids = _order_customers(ids, order_id, totals, source, info, notes)
    # A total row's date cell ("Total", or empty) is no date: it must not weigh in the decision
    # of the column's date format.
    dates = _order_dates(raw.assign(**{cols.ordered_at: raw[cols.ordered_at].where(~totals)}) if totals.any() else raw,
                         source, info, report_zone or source.timezone, notes)
    currency = _currencies(raw, source, info)

    work = pd.DataFrame({
        "order_id": order_id.astype("string"),
        "customer_id": ids,
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
        work[name] = as_text(raw[column])

    # --- exclusions, in the order of EXCLUSION_REASONS -------------------------------------
    def full(mask: np.ndarray) -> pd.Series:  # a row mask over the file, aligned by label
        return pd.Series(mask, index=raw.index)

    if totals.any():
        notes.append(f"{int(totals.sum())} total row(s) excluded: rows without a {cols.customer_id!r} that "
                     "say 'total' or end the file and whose amount is, to the cent, the sum of the rows "
                     f"above them (first at {info.row(int(np.flatnonzero(totals)[0]))}). Their amounts are "
                     "not sales and are not counted in the excluded share.")
    work = quality.exclude(work, full(totals), REASON_TOTAL_ROW, "revenue")
    for reason, mask in _excluded_by_config(raw, source, info):
        work = quality.exclude(work, full(mask), reason, "revenue")
    if amounts.unreadable.any():
        position, column = amounts.first_bad
        notes.append(first_note(REASON_NON_NUMERIC_AMOUNT, int(amounts.unreadable.sum()), position,
                                 column, raw[column].iloc[position], info))
    work = quality.exclude(work, full(amounts.unreadable), REASON_NON_NUMERIC_AMOUNT, "revenue")

    date_bad = dates.values.isna().to_numpy()
    date_excluded = date_bad & ~amounts.unreadable & ~totals
    if date_excluded.any():
        position = int(np.flatnonzero(date_excluded)[0])
        notes.append(first_note(REASON_UNPARSEABLE_DATE, int(date_excluded.sum()), position,
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


_TOTAL_WORD = r"(?i)\b(?:sub-?|grand[ -]?)?totals?\b"


def total_rows(raw: pd.DataFrame, revenue: np.ndarray, customer: pd.Series) -> np.ndarray:
    """Rows that are a report's totals, not sales: the customer cell empty or saying "total",
    some cell saying "total" (Total, Subtotal, Grand total) or the row the last of the file,
    and the amount equal, to the cent, to the sum of at least two rows above it: those since the
    previous total row (a subtotal) or all of them (a grand total).

    Finance exports often end with such a row; read as a sale it would double the file's revenue.
    ``customer`` is the file's customer ids as read (:func:`customer_ids`: missing where empty).
    """
    n = len(raw)
    if n < 3:
        return np.zeros(n, dtype=bool)
    no_customer = (customer.isna() | customer.str.contains(_TOTAL_WORD, regex=True, na=False)).to_numpy(dtype=bool)
    if not no_customer.any():
        return np.zeros(n, dtype=bool)
    says_total = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(no_customer)  # only rows without a customer are looked at
    for column in raw.columns:
        cells = raw[column].iloc[rows]
        if cells.dtype == object or pd.api.types.is_string_dtype(cells.dtype):
            says_total[rows] |= cells.astype("string").str.contains(_TOTAL_WORD, regex=True, na=False).to_numpy(dtype=bool)
    candidates = no_customer & (says_total | (np.arange(n) == n - 1)) & np.isfinite(revenue)
    if not candidates.any():
        return np.zeros(n, dtype=bool)
    cents = np.where(np.isfinite(revenue), np.round(revenue * 100), 0).astype("int64")
    before = np.concatenate([[0], np.cumsum(cents)])  # before[i]: the cents of the rows above row i
    totals = np.zeros(n, dtype=bool)
    removed, count_removed, last = 0, 0, -1  # the totals found so far, and the latest one
    for i in np.flatnonzero(candidates):  # a few rows: those that say total, and the last
        grand, grand_rows = before[i] - removed, i - count_removed
        sub, sub_rows = before[i] - before[last + 1], i - (last + 1)
        if cents[i] != 0 and ((cents[i] == sub and sub_rows >= 2) or (cents[i] == grand and grand_rows >= 2)):
            totals[i] = True
            removed, count_removed, last = removed + int(cents[i]), count_removed + 1, i
    return totals


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
    path = resolve_path(source.customers_path, base_dir)
    raw, info = read_frame(path, source, "customers")
    check_columns(raw, {f"customer_columns.{k}": v for k, v in mapping.items()}, info,
                   source.delimiter if info.is_csv else None)
    out = pd.DataFrame(index=raw.index)
    for canonical, column in mapping.items():
        if canonical in ("customer_id", "referred_by"):
            out[canonical] = customer_ids(raw[column])
        elif canonical == "acquired_at":
            read = read_dates(raw[column], source.date_format, source.timezone,
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
            out[canonical] = as_text(raw[column])
    missing = out["customer_id"].isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise InputError("Missing customer id in the customer table.",
                         where=info.where(mapping["customer_id"], position),
                         fix="Fill in the id or remove the row.")
    return validate_customers(out.reset_index(drop=True), source=str(path))
