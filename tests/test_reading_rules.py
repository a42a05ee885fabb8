"""The plain reading of a real export: dates and amounts decided once per column, identical rows
and zero amounts kept as purchases, the business's time zone, spreadsheets, and one gate for
every entry point. Tiny exact files for each rule; an invariant on a public-style export."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpipeline.config import FileSource, config_from_dict
from cxpipeline.errors import InputError
from cxpipeline.sources.files import load_file_source

SIMPLE = dict(customer_id="cust", ordered_at="when", revenue="amount")
ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, **settings):
    return load_file_source(FileSource(path=settings.pop("path", "t.csv"), columns=settings.pop("columns", SIMPLE),
                                       **settings), base_dir=tmp_path)


def error_for(tmp_path: Path, **settings) -> str:
    with pytest.raises(InputError) as info:
        load(tmp_path, **settings)
    return str(info.value)


# --- dates ----------------------------------------------------------------------------------


def test_day_first_dates_that_month_first_reading_half_accepts(tmp_path):
    # Month-first reads 03/01/19 (1 March) and 05/02/19 but not 13/01/19 or 25/02/19: the whole
    # column is read day-first, never value by value.
    write(tmp_path, "cust,when,amount\na,03/01/19,1\nb,13/01/19,2\nc,05/02/19,3\nd,25/02/19,4\n")
    data = load(tmp_path)
    assert data.transactions["ordered_at"].tolist() == [
        pd.Timestamp("2019-01-03"), pd.Timestamp("2019-01-13"), pd.Timestamp("2019-02-05"),
        pd.Timestamp("2019-02-25")]
    assert "column 'when': dates read as day/month/year: 13/01/19 = 13 January 2019." in data.quality.notes


def test_month_first_with_times_and_dotted_day_first(tmp_path):
    write(tmp_path, "cust,when,amount\na,12/31/2023 8:26,1\nb,1/2/2024 14:05,2\n")
    assert load(tmp_path).transactions["ordered_at"].tolist() == [
        pd.Timestamp("2023-12-31 08:26"), pd.Timestamp("2024-01-02 14:05")]
    write(tmp_path, "cust,when,amount\na,31.12.2023,1\nb,01.02.2024 10:00:00,2\n")
    assert load(tmp_path).transactions["ordered_at"].tolist() == [
        pd.Timestamp("2023-12-31"), pd.Timestamp("2024-02-01 10:00")]


def test_a_column_where_every_day_is_twelve_or_less_is_an_error(tmp_path):
    path = write(tmp_path, "cust,when,amount\na,03/01/19,1\nb,04/02/19,2\n")
    message = error_for(tmp_path)
    assert "The dates in column 'when' can be read in more than one way" in message
    assert "'03/01/19' is 3 January 2019 (day/month/year) or 1 March 2019 (month/day/year)" in message
    assert "'04/02/19' is 4 February 2019 (day/month/year) or 2 April 2019 (month/day/year)" in message
    assert f"where: {path}, column 'when'" in message
    assert "date_format: '%d/%m/%y' or '%m/%d/%y'" in message
    # Saying which removes the doubt.
    assert load(tmp_path, date_format="%d/%m/%y").transactions["ordered_at"].iloc[0] == pd.Timestamp("2019-01-03")


def test_an_unreadable_date_is_excluded_only_when_nearly_every_date_reads(tmp_path):
    lines = [f"c{i},2024-01-{1 + i % 28:02d},1\n" for i in range(999)]
    write(tmp_path, "cust,when,amount\n" + "".join(lines) + "x,31/02/2024,5\n")
    data = load(tmp_path)
    assert data.quality.by_reason == {"unparseable date": {"rows": 1, "revenue_cents": 500}}
    assert len(data.transactions) == 999
    write(tmp_path, "cust,when,amount\n" + "".join(lines[:100]) + "x,31/02/2024,5\n")
    message = error_for(tmp_path)
    assert "1 of 101 dates in column 'when' cannot be read in any one known format" in message
    assert "first: '31/02/2024'" in message


def test_implausible_dates_are_excluded_and_noted(tmp_path):
    write(tmp_path, "cust,when,amount\na,1899-12-30,7\nb,2024-05-01,2\nc,2024-07-02,3\n")
    data = load(tmp_path, data_through="2024-06-30")
    assert data.quality.by_reason == {"dated before 1990-01-01": {"rows": 1, "revenue_cents": 700},
                                      "dated after 2024-06-30 (data_through)": {"rows": 1, "revenue_cents": 300}}
    assert any("1 row(s) dated before 1990-01-01 (first: 1899-12-30)" in n for n in data.quality.notes)
    assert load(tmp_path, earliest_date="1800-01-01").quality.by_reason == {}


# --- identical rows and zero amounts ----------------------------------------------------------


def test_identical_rows_without_an_order_id_are_separate_purchases(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-05,9.50\na,2024-01-05,9.50\nb,2024-01-06,3\n")
    data = load(tmp_path)
    assert data.transactions["revenue"].tolist() == [9.50, 9.50, 3.0]
    assert data.transactions["order_id"].tolist() == ["row-1", "row-2", "row-3"]
    assert data.quality.by_reason == {}
    assert ("1 row(s) are identical to an earlier row (worth 9.50); with no order id they are read as "
            "separate purchases and kept. If they are export duplicates, set source.drop_identical_rows: "
            "true.") in data.quality.notes
    dropped = load(tmp_path, drop_identical_rows=True)
    assert dropped.quality.by_reason == {"exact duplicate line": {"rows": 1, "revenue_cents": 950}}


def test_identical_lines_with_an_order_id_are_export_duplicates(tmp_path):
    write(tmp_path, "order,cust,when,amount\n1,a,2024-01-05,9.50\n1,a,2024-01-05,9.50\n2,a,2024-01-05,9.50\n")
    data = load(tmp_path, columns={**SIMPLE, "order_id": "order"})
    assert data.transactions["order_id"].tolist() == ["1", "2"]
    assert data.quality.by_reason == {"exact duplicate line": {"rows": 1, "revenue_cents": 950}}


def test_an_orders_later_lines_take_the_customer_its_first_line_names_when_asked(tmp_path):
    """Order exports (Shopify's; ERPs' header + lines) write the customer on an order's first line
    only. Read plainly a blank cell is no customer: excluded, with a note naming the setting. With
    source.fill_customer_from_order, a line takes its order's customer when the order's other lines
    name exactly one; an order naming two, or none, and a line without an order id stay excluded."""
    write(tmp_path, "order,cust,when,amount\n"
                    "#1001,a@x.com,2024-01-05,10.00\n"
                    ",,2024-01-05,5.00\n"             # no order id: its own order, no customer
                    "#1001,,2024-01-05,2.50\n"
                    "#1002,b@x.com,2024-01-06,7.00\n"
                    "#1002,c@x.com,2024-01-06,1.00\n"
                    "#1002,,2024-01-06,4.00\n"        # two customers named: not guessed
                    "#1003,,2024-01-07,3.00\n"        # none named
                    "#1001,,2024-01-05,1.25\n")       # a later line of the first order, further down
    columns = {**SIMPLE, "order_id": "order"}
    plain = load(tmp_path, columns=columns)
    assert plain.quality.by_reason == {"missing customer id": {"rows": 5, "revenue_cents": 1575}}
    assert ("2 line(s) without a customer id belong to an order whose other lines name exactly one customer "
            "(column 'order'; first at row 3 (line 4 of the file)); they are excluded as 'missing customer id'. "
            "If the export writes an order's fields on its first line only, set "
            "source.fill_customer_from_order: true.") in plain.quality.notes
    data = load(tmp_path, columns=columns, fill_customer_from_order=True)
    assert data.transactions[["order_id", "customer_id", "revenue"]].values.tolist() == [
        ["#1001", "a@x.com", 10.0], ["#1001", "a@x.com", 2.5], ["#1002", "b@x.com", 7.0],
        ["#1002", "c@x.com", 1.0], ["#1001", "a@x.com", 1.25]]
    assert data.quality.by_reason == {"missing customer id": {"rows": 3, "revenue_cents": 1200}}
    assert ("2 line(s) without a customer id took their order's customer: another line of the same order "
            "(column 'order') names exactly one (first at row 3 (line 4 of the file); "
            "source.fill_customer_from_order: true).") in data.quality.notes
    # Without an order id nothing ties a line to another: no note, every blank customer excluded.
    no_orders = load(tmp_path, fill_customer_from_order=True)
    assert no_orders.quality.by_reason == {"missing customer id": {"rows": 5, "revenue_cents": 1575}}
    assert not any("order's customer" in note or "belong to an order" in note for note in no_orders.quality.notes)


def test_a_profit_column_gives_the_cost_as_revenue_minus_profit(tmp_path):
    """Superstore-style exports give each line's profit (to 4 decimals), not its cost."""
    write(tmp_path, "Order ID,Customer ID,Order Date,Sales,Profit\n"
                    "CA-2016-152156,CG-12520,11/8/2016,261.96,41.9136\n"
                    "US-2015-108966,SO-20335,10/11/2015,957.5775,-383.031\n"  # a loss: cost above revenue
                    "CA-2014-115812,BH-11710,6/9/2014,48.86,\n")               # no profit given: cost unknown
    columns = {"order_id": "Order ID", "customer_id": "Customer ID", "ordered_at": "Order Date",
               "revenue": "Sales", "profit": "Profit"}
    data = load(tmp_path, columns=columns, date_format="%m/%d/%Y")  # 11/8/2016 could be either order
    tx = data.transactions.sort_values("ordered_at")
    assert tx["revenue"].tolist() == [48.86, 957.58, 261.96]
    assert tx["cost"].tolist() == [0.0, 1340.61, 220.05]  # 957.58 + 383.03; 261.96 - 41.91
    assert ("column 'Profit': the export gives each line's profit, not its cost; cost is read as revenue minus "
            "profit (an empty profit cell: cost unknown, 0).") in data.quality.notes
    assert any("fractions of a cent" in note for note in data.quality.notes)
    with pytest.raises(ValueError, match="map either 'cost' or 'profit'"):
        FileSource(path="t.csv", columns={**columns, "cost": "Sales"})


def test_zero_amounts_are_purchases_unless_excluded(tmp_path):
    from cxpipeline.panel import build_panel

    # b's first purchase (January) was free: b is a customer from January, not from April.
    write(tmp_path, "cust,when,amount\na,2024-01-05,10\nb,2024-01-07,0.00\nb,2024-04-02,25\n")
    data = load(tmp_path)
    assert data.quality.by_reason == {}
    panel = build_panel(data.transactions, "quarter")
    first = panel.loc[panel["customer_id"] == "b"].iloc[0]
    assert (first["period_start"], first["revenue"], first["count_orders"]) == (pd.Timestamp("2024-01-01"), 0.0, 1)
    assert any(n.startswith("1 row(s) have a zero amount and are kept as purchases worth 0") for n in data.quality.notes)
    strict = load(tmp_path, exclude_zero_amounts=True)
    assert strict.quality.by_reason == {"zero amount": {"rows": 1, "revenue_cents": 0}}


def test_rows_the_config_marks_as_no_sales_are_excluded_and_counted_by_value(tmp_path):
    """A payment export lists failed and voided charges beside paid ones: read plainly, a failed
    charge would be revenue. ``exclude_rows`` names them; each value is its own counted reason,
    and like total rows they are left out by design, not as bad rows."""
    write(tmp_path, "cust,when,amount,Status\na,2024-01-02,10.00,Paid\nb,2024-01-03,99.00,failed \n"
                    "c,2024-01-04,5.00,Voided\nd,2024-01-05,7.50,\ne,2024-01-06,20.00,Paid\n")
    data = load(tmp_path, exclude_rows={"Status": ["Failed", "voided"]})
    assert data.transactions["customer_id"].tolist() == ["a", "d", "e"]
    assert data.quality.by_reason == {
        "excluded by the config: Status = Failed": {"rows": 1, "revenue_cents": 9900},
        "excluded by the config: Status = voided": {"rows": 1, "revenue_cents": 500},
    }
    message = error_for(tmp_path, exclude_rows={"State": ["Failed"]})
    assert "Column 'State' named in source.exclude_rows is not in the file" in message and "'Status'" in message


def test_rows_excluded_by_the_config_are_not_bad_rows_for_the_gate(tmp_path):
    from cxpipeline import pipeline
    from cxpipeline.periods import parse_period
    from cxpipeline.validation import validate_extract

    write(tmp_path, "cust,when,amount,Status\na,2024-01-02,10.00,Paid\nb,2024-02-03,90.00,Failed\n"
                    "c,2024-03-04,80.00,Failed\nd,2024-03-05,5.00,Paid\n")
    config = config_from_dict({"pack_id": "payments", "segments": [], "source": {
        "kind": "file", "path": "t.csv", "columns": SIMPLE, "exclude_rows": {"Status": ["Failed"]}}},
        base_dir=tmp_path)
    period = parse_period("2024-Q1")
    pipeline.extract(config, period, tmp_path / "out")
    summary = validate_extract(pipeline.pack_folder(config, period, tmp_path / "out"), period)
    # 92 % of the money in the file was left out, all of it chosen by the config: no bad rows.
    assert summary["excluded_share"] == 0.0 and summary["revenue_used"] == 15.0


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values, expected", [
    (['"3,527.60"', "12.5", '"1,000"'], [3527.60, 12.5, 1000.0]),     # comma thousands
    (['"3.527,60"', '"12,5"', "1.000"], [3527.60, 12.5, 1000.0]),     # dot thousands, decimal comma
    (['"3 527,60"', '"12,5"'], [3527.60, 12.5]),                       # space thousands
    (["3'527.60", "12.50"], [3527.60, 12.5]),                          # Swiss apostrophe
    (["(12.50)", "£5.00", "12.50-"], [-12.50, 5.0, -12.50]),           # accounting negatives, symbols
    (['"1,23,456.00"', '"12,34,56,789"', "99.5"], [123456.0, 123456789.0, 99.5]),  # Indian lakh grouping
    (['"\u22121,234.56"', "\u2212£5.00", "12.50\u2212"], [-1234.56, -5.0, -12.50]),  # the typeset minus sign
])
def test_amounts_as_people_write_them(tmp_path, values, expected):
    rows = "".join(f"c{i},2024-01-0{i + 1},{v}\n" for i, v in enumerate(values))
    write(tmp_path, "cust,when,amount\n" + rows)
    data = load(tmp_path)
    assert data.transactions["revenue"].abs().tolist() == [abs(v) for v in expected]
    assert to_signed(data) == expected
    assert data.quality.by_reason == {}


def to_signed(data) -> list[float]:
    return data.transactions["revenue"].tolist()


def test_ambiguous_thousands_need_the_decimal_setting(tmp_path):
    write(tmp_path, 'cust,when,amount\na,2024-01-01,"1,234"\nb,2024-01-02,"2,500"\n')
    message = error_for(tmp_path)
    assert "can be read with a decimal point or a decimal comma" in message
    assert "'1,234' is 1234 or 1.234" in message and "'2,500' is 2500 or 2.5" in message
    assert "Set source.decimal: '.'" in message
    assert load(tmp_path, decimal=".").transactions["revenue"].tolist() == [1234.0, 2500.0]
    assert load(tmp_path, decimal=",").transactions["revenue"].tolist() == [1.23, 2.5]  # to the cent


def test_dot_thousands_with_a_decimal_comma(tmp_path):
    write(tmp_path, "cust;when;amount\na;2024-01-01;3.527\nb;2024-01-02;12,5\n")
    data = load(tmp_path, delimiter=";", decimal=",")
    assert data.transactions["revenue"].tolist() == [3527.0, 12.5]


def test_sub_cent_amounts_are_rounded_once_at_read(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-01,10.004\na,2024-01-02,10.004\nb,2024-01-03,0.336\n")
    data = load(tmp_path)
    assert data.transactions["revenue"].tolist() == [10.0, 10.0, 0.34]
    assert data.quality.revenue_in_cents == 2034
    assert any("3 amount(s) had fractions of a cent" in n for n in data.quality.notes)


def test_a_mostly_unreadable_amount_column_stops(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-01,ten\nb,2024-01-02,eleven\nc,2024-01-03,4\n")
    assert "cannot be read as numbers (first: 'ten')" in error_for(tmp_path)


# --- time zones -------------------------------------------------------------------------------


def test_an_order_at_local_midnight_falls_in_the_new_quarter(tmp_path):
    from cxpipeline.panel import build_panel

    write(tmp_path, "cust,when,amount\na,2026-10-01 00:30,10\nb,2026-09-30T23:30:00Z,20\nc,2026-09-30 23:59,5\n")
    data = load(tmp_path, timezone="Europe/London")
    panel = build_panel(data.transactions, "quarter").set_index("customer_id")["period_start"]
    # 00:30 London and 23:30 UTC (00:30 BST) are in Q4; 23:59 London on 30 September is Q3.
    assert panel.to_dict() == {"a": pd.Timestamp("2026-10-01"), "b": pd.Timestamp("2026-10-01"),
                               "c": pd.Timestamp("2026-07-01")}
    # Reported in UTC (period.timezone: UTC) the London half hour after midnight is still Q3.
    utc = load_file_source(FileSource(path="t.csv", columns=SIMPLE, timezone="Europe/London"),
                           base_dir=tmp_path, report_timezone="UTC")
    assert utc.transactions["ordered_at"].iloc[0] == pd.Timestamp("2026-09-30 23:30")


def test_the_config_reports_in_the_period_zone_or_the_source_zone():
    file_source = {"kind": "file", "path": "t.csv", "columns": SIMPLE, "timezone": "Europe/Berlin"}
    assert config_from_dict({"source": file_source}).report_timezone == "Europe/Berlin"
    assert config_from_dict({"source": file_source, "period": {"timezone": "UTC"}}).report_timezone == "UTC"
    assert config_from_dict({}).report_timezone == "UTC"
    from cxpipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        config_from_dict({"period": {"timezone": "Mars/Olympus"}})


# --- spreadsheets -----------------------------------------------------------------------------


def _workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


HEADER = ["Invoice", "Customer", "Date", "Amount"]


def test_a_workbook_with_typed_dates_and_numbers(tmp_path):
    _workbook(tmp_path / "t.xlsx", {"Sales": [
        HEADER,
        ["A1", 17850, dt.datetime(2024, 1, 3, 9, 30), 12.5],
        ["A2", 13047, dt.datetime(2024, 1, 13), 3527.6],
        ["A3", 13047, "25/01/2024", "1,200.00"],  # a date and an amount typed in as text
    ]})
    columns = dict(customer_id="Customer", ordered_at="Date", revenue="Amount", order_id="Invoice")
    data = load(tmp_path, path="t.xlsx", columns=columns)
    expected = pd.DataFrame({"customer_id": ["17850", "13047", "13047"],
                             "ordered_at": pd.to_datetime(["2024-01-03 09:30", "2024-01-13 00:00", "2024-01-25 00:00"]),
                             "revenue": [12.5, 3527.6, 1200.0]})
    got = data.transactions[["customer_id", "ordered_at", "revenue"]]
    pd.testing.assert_frame_equal(got, expected.astype(got.dtypes.to_dict()), check_exact=True)


def test_two_sheets_stacked_with_an_overlap(tmp_path):
    _workbook(tmp_path / "t.xlsx", {
        "Jan": [HEADER, ["A1", "c1", dt.datetime(2024, 1, 30), 10.0], ["A2", "c2", dt.datetime(2024, 1, 31), 20.0]],
        "Feb": [HEADER, ["A2", "c2", dt.datetime(2024, 1, 31), 20.0], ["A3", "c1", dt.datetime(2024, 2, 2), 5.0]],
    })
    columns = dict(customer_id="Customer", ordered_at="Date", revenue="Amount", order_id="Invoice")
    data = load(tmp_path, path="t.xlsx", columns=columns, sheets="all")
    assert data.transactions["order_id"].tolist() == ["A1", "A2", "A3"]
    assert data.quality.by_reason == {"exact duplicate line": {"rows": 1, "revenue_cents": 2000}}
    assert data.quality.notes[0] == "2 sheets stacked ('Jan', 'Feb'): 4 rows."
    # One sheet by name or index.
    assert load(tmp_path, path="t.xlsx", columns=columns, sheet="Feb").transactions["order_id"].tolist() == ["A2", "A3"]
    assert load(tmp_path, path="t.xlsx", columns=columns, sheet=1).transactions["order_id"].tolist() == ["A2", "A3"]
    message = error_for(tmp_path, path="t.xlsx", columns=columns, sheet="Mar")
    assert "no sheet named 'Mar'" in message and "'Jan', 'Feb'" in message


def test_a_workbook_split_by_year_is_not_read_as_its_first_sheet_alone(tmp_path):
    """Online Retail II keeps each year on its own sheet: reading the first alone would leave the
    second year out without a word, so the default asks which to read. A sheet without the
    mapped columns (notes, a summary) is not transactions: it is left and the note names it."""
    year = [HEADER, ["A1", "c1", dt.datetime(2024, 1, 30), 10.0]]
    _workbook(tmp_path / "t.xlsx", {"Year 2023": year, "Notes": [["Exported by finance"], ["Figures in GBP"]],
                                    "Year 2024": [["Sales by line"], [], *year]})  # a title above its header
    columns = dict(customer_id="Customer", ordered_at="Date", revenue="Amount", order_id="Invoice")
    message = error_for(tmp_path, path="t.xlsx", columns=columns)
    assert "2 sheets with the mapped columns ('Year 2023', 'Year 2024')" in message
    assert "only the first, 'Year 2023', would be read" in message and "source.sheets: all" in message
    chosen = load(tmp_path, path="t.xlsx", columns=columns, sheet="Year 2023")
    assert chosen.quality.notes == ["Sheet 'Year 2023' was read; the workbook's other sheet(s) 'Notes', "
                                    "'Year 2024' were not."]
    _workbook(tmp_path / "n.xlsx", {"Sales": year, "Notes": [["Exported by finance"]]})
    data = load(tmp_path, path="n.xlsx", columns=columns)
    assert data.transactions["order_id"].tolist() == ["A1"]
    assert data.quality.notes == ["Sheet 'Sales' was read; the workbook's other sheet(s) 'Notes' were not "
                                  "(they do not name the mapped columns)."]


def test_an_opendocument_spreadsheet_reads_like_the_workbook(tmp_path):
    frame = pd.DataFrame({"Customer": ["c1", "c2"], "Date": ["03/01/2024", "15/01/2024"], "Amount": [10.5, 2.25]})
    frame.to_excel(tmp_path / "t.ods", index=False, engine="odf")
    data = load(tmp_path, path="t.ods", columns=dict(customer_id="Customer", ordered_at="Date", revenue="Amount"))
    assert data.transactions["ordered_at"].tolist() == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-15")]
    assert data.transactions["revenue"].tolist() == [10.5, 2.25]


# --- driver texts -----------------------------------------------------------------------------


def test_driver_texts_in_the_packs_locale_and_currency():
    from cxpipeline.report.pages_model import _driver_text

    german = config_from_dict({"locale": "de_DE", "currency": "EUR", "segments": ["region"]})
    assert _driver_text("net revenue in the last 12 months: 16288", german) == "net revenue in the last 12 months: 16.288\xa0€"
    assert _driver_text("days since last purchase: 1240 days", german) == "days since last purchase: 1.240 days"
    assert _driver_text("time since last order vs usual gap: 2.5x", german) == "time since last order vs usual gap: 2,5x"
    assert _driver_text("region: Nord", german) == "Region: Nord"
    british = config_from_dict({})
    assert _driver_text("net revenue in the last 12 months: 16288", british) == "net revenue in the last 12 months: £16,288"


# --- one gate for every entry point -------------------------------------------------------------


def test_a_period_after_the_data_is_refused_by_the_cli(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-05,10\nb,2024-02-07,20\nc,2024-03-09,5\n")
    (tmp_path / "c.yaml").write_text(
        "pack_id: late\nsegments: []\nsource:\n  kind: file\n  path: t.csv\n"
        "  columns: {customer_id: cust, ordered_at: when, revenue: amount}\n")
    result = subprocess.run([sys.executable, "-m", "cxpipeline", "run", "-c", str(tmp_path / "c.yaml"),
                             "--period", "2024-Q4", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "does not cover 2024-Q4" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "late" / "2024-Q4" / "board_pack.pdf").exists()


def test_the_checks_refuse_a_pack_whose_extract_fails_the_gate(tmp_path):
    from cxpipeline.checks import check_extract_usable
    from cxpipeline.periods import parse_period
    from cxpipeline.pipeline import extract

    # 57 % of the revenue has no customer id: the extract is written, the pack is not deliverable.
    write(tmp_path, "cust,when,amount\na,2024-01-05,43\n,2024-01-07,57\n")
    config = config_from_dict({"pack_id": "g", "segments": [], "source": {"kind": "file", "path": "t.csv",
                                                                           "columns": SIMPLE}}, base_dir=tmp_path)
    period = parse_period("2024-Q1")
    folder = Path(extract(config, period, tmp_path / "out")["folder"])
    is_passed, detail = check_extract_usable(folder, config)
    assert not is_passed and "57.0% of the revenue" in detail


# --- a public-style export: every period ties to the source to the cent ---------------------------


def _public_export(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    """Invoice lines as a shop exports them: no order id, day-first dates with times, amounts
    with thousands separators, some identical rows (the same item twice a day), free items."""
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    times = pd.to_timedelta(rng.integers(0, 24 * 60, n), unit="min")
    amounts = np.round(rng.gamma(1.5, 400, n), 2)
    amounts[rng.random(n) < 0.03] = 0.0
    frame = pd.DataFrame({"Date": (days + times), "Customer": rng.integers(1000, 1400, n).astype(str),
                          "Amount": amounts, "Item": rng.choice(["A", "B", "C"], n)})
    repeats = frame.sample(60, random_state=3)
    return pd.concat([frame, repeats], ignore_index=True)


def _source_sum(frame: pd.DataFrame, start: str, end: str) -> Decimal:
    inside = frame.loc[(frame["Date"] >= pd.Timestamp(start)) & (frame["Date"] < pd.Timestamp(end))]
    return sum((Decimal(f"{a:.2f}") for a in inside["Amount"]), Decimal("0.00"))


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_every_period_of_a_public_style_export_ties_to_the_source(tmp_path, kind):
    from cxpipeline.artifacts import read_json, read_table
    from cxpipeline.periods import parse_period
    from cxpipeline.pipeline import compute_metrics, extract

    frame = _public_export(np.random.default_rng(16))
    if kind == "csv":
        text = frame.assign(Date=frame["Date"].dt.strftime("%d/%m/%Y %H:%M"),
                            Amount=frame["Amount"].map(lambda a: f"{a:,.2f}"))
        text.to_csv(tmp_path / "export.csv", index=False)
    else:  # the xlsx twin: typed date cells, numbers
        _workbook(tmp_path / "export.xlsx", {"Export": [list(frame.columns)] + [
            [row.Date.to_pydatetime(), row.Customer, float(row.Amount), row.Item] for row in frame.itertuples()]})
    config = config_from_dict({
        "pack_id": f"public-{kind}", "segments": [], "period": {"type": "quarter"},
        "source": {"kind": "file", "path": f"export.{kind}",
                   "columns": {"customer_id": "Customer", "ordered_at": "Date", "revenue": "Amount"}},
    }, base_dir=tmp_path)
    for label, start, end, previous in [("2024-Q4", "2024-10-01", "2025-01-01", ("2024-07-01", "2024-10-01")),
                                        ("2024-Q2", "2024-04-01", "2024-07-01", ("2024-01-01", "2024-04-01"))]:
        period = parse_period(label)
        folder = Path(extract(config, period, tmp_path / "out")["folder"])
        compute_metrics(config, period, tmp_path / "out")
        bridge = read_table(folder, "bridge").query("segment == 'all'").set_index("bridge_class")["value"]
        assert Decimal(f"{bridge['current']:.2f}") == _source_sum(frame, start, end)
        assert Decimal(f"{bridge['previous']:.2f}") == _source_sum(frame, *previous)
        dq = read_json(folder / "data_quality.json")
        assert {r["reason"] for r in dq["excluded_by_reason"]} <= {"after the reporting period"}
        for tie in dq["tie_out"]:  # the period and its comparison
            assert tie["rows_source"] == tie["rows_used"] and tie["is_revenue_equal"]
        assert Decimal(f"{dq['tie_out'][0]['revenue_source']:.2f}") == _source_sum(frame, start, end)
        assert any("identical to an earlier row" in n for n in dq["notes"])
        if kind == "csv":
            assert any("dates read as day/month/year" in n for n in dq["notes"])


def test_the_excel_example_config_validates():
    """examples/excel_export.yaml: two overlapping sheets stacked, typed dates, London periods."""
    result = subprocess.run([sys.executable, "-m", "cxpipeline", "validate", "-c", "examples/excel_export.yaml"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "note: 2 sheets stacked ('2025', '2026')" in result.stdout
    assert "excluded - exact duplicate line" in result.stdout
    assert "2026-Q3: source 540 rows 28,391.16; used 540 rows 28,391.16 (equal)" in result.stdout
    assert "latest quarter complete by source.data_through (2026-09-30)" in result.stderr


# --- files without a header, fields separated by runs of spaces (CDNOW's layout) ---------------

CDNOW_STYLE = ("00001 19970101  1  11.77\n"
               "00002 19970112  1  12.00\n"
               "00002 19970112  5  77.00\n"
               "00003 19970102  2  20.76\n"
               "00003 19970330  2  20.76\n"
               "00004 19970101  2  29.33\n")
BY_POSITION = {"customer_id": 1, "ordered_at": 2, "quantity": 3, "revenue": 4}


def test_headerless_whitespace_file_is_read_by_position(tmp_path):
    write(tmp_path, CDNOW_STYLE, name="CDNOW_master.txt")
    config = config_from_dict({"pack_id": "cdnow", "segments": [], "source": {
        "kind": "file", "path": "CDNOW_master.txt", "header": False, "delimiter": "whitespace",
        "columns": BY_POSITION}})
    tx = load_file_source(config.source, base_dir=tmp_path).transactions
    assert tx["customer_id"].tolist() == ["00001", "00002", "00002", "00003", "00003", "00004"]  # zeros kept
    assert tx["ordered_at"].dt.strftime("%Y-%m-%d").tolist() == [
        "1997-01-01", "1997-01-12", "1997-01-12", "1997-01-02", "1997-03-30", "1997-01-01"]
    assert [str(v) for v in tx["revenue"]] == ["11.77", "12.0", "77.0", "20.76", "20.76", "29.33"]
    assert round(float(tx["revenue"].sum()), 2) == 171.62  # every line, none lost to the missing header


def test_headerless_file_rows_and_lines_agree(tmp_path):
    # line 3 of the file is the 3rd row: no header line to count
    write(tmp_path, CDNOW_STYLE.replace("77.00", "7x.00"), name="c.txt")
    data = load(tmp_path, path="c.txt", header=False, delimiter="whitespace", columns=BY_POSITION)
    assert any("row 3 (line 3 of the file)" in n for n in data.quality.notes), data.quality.notes
    assert len(data.transactions) == 5


def test_a_header_that_is_data_says_to_set_header_false(tmp_path):
    write(tmp_path, CDNOW_STYLE, name="c.txt")
    message = error_for(tmp_path, path="c.txt", delimiter="whitespace",
                        columns={"customer_id": "customer", "ordered_at": "date", "revenue": "amount"})
    assert "The file has the columns: '00001', '19970101', '1', '11.77'." in message
    assert "set source.header: false and map the columns by position" in message
    message = error_for(tmp_path, path="c.txt", delimiter="whitespace", header=False,
                        columns={"customer_id": 1, "ordered_at": 2, "revenue": 5})
    assert "columns.revenue: '5'" in message and "named by position, 1 to 4" in message


# --- currency marks on amounts ------------------------------------------------------------------


def test_currency_codes_before_or_after_the_amount_are_read_and_noted(tmp_path):
    write(tmp_path, 'cust,when,amount\na,2024-01-01,"USD 1,234.56"\nb,2024-01-02,(12.00 USD)\nc,2024-01-03,USD -3.10\n')
    data = load_file_source(FileSource(path="t.csv", columns=SIMPLE), base_dir=tmp_path, pack_currency="USD")
    assert data.transactions["revenue"].tolist() == [1234.56, -12.0, -3.1]
    assert ("column 'amount': amounts read with a decimal point (1,234.56); amounts marked USD, read without "
            "the mark.") in data.quality.notes
    write(tmp_path, 'cust,when,amount\na,2024-01-01,"US$1,234.56"\nb,2024-01-02,-US$12.00\nc,2024-01-03,12 PCS\n')
    data = load_file_source(FileSource(path="t.csv", columns=SIMPLE), base_dir=tmp_path, pack_currency="USD")
    assert data.transactions["revenue"].tolist() == [1234.56, -12.0]  # "12 PCS" is no currency: excluded
    assert data.quality.by_reason["non-numeric amount"]["rows"] == 1


def test_two_currencies_in_one_amount_column_are_refused(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-01,$12.00\nb,2024-01-02,€5.00\nc,2024-01-03,$1.00\n")
    message = error_for(tmp_path)
    assert "The amounts in column 'amount' are in more than one currency ($, €; e.g. '$12.00', '€5.00')" in message
    assert "map it as columns.currency and set source.currency" in message
    write(tmp_path, "cust,when,amount\na,2024-01-01,USD 12.00\nb,2024-01-02,EUR 5.00\nc,2024-01-03,NIL\n")
    assert "more than one currency (EUR, USD;" in error_for(tmp_path)


def test_amounts_in_another_currency_than_the_pack_are_refused(tmp_path):
    from cxpipeline.errors import ConfigError
    from cxpipeline.sources import load_source

    write(tmp_path, "cust,when,amount\na,2024-01-01,$12.00\nb,2024-01-02,$5.00\n")
    config = config_from_dict({"pack_id": "usd", "segments": [], "source": {
        "kind": "file", "path": str(tmp_path / "t.csv"), "columns": SIMPLE}})  # currency: GBP by default
    with pytest.raises(ConfigError) as raised:
        load_source(config)
    message = str(raised.value)
    assert "The amounts in column 'amount' are marked $ but the pack prints GBP." in message
    assert "currency: USD (or CAD, AUD, NZD...)" in message
    usd = config.model_copy(update={"currency": "USD"})
    assert load_source(usd).transactions["revenue"].tolist() == [12.0, 5.0]
    write(tmp_path, "cust,when,amount\na,2024-01-01,12.00 EUR\n")
    with pytest.raises(ConfigError, match=r"(?s)marked EUR but the pack prints USD\..*Set currency: EUR in the config\.$"):
        load_source(usd)


def test_currency_mark_matches():
    from cxpipeline.sources.formats import currency_mark_matches

    assert [currency_mark_matches(m, c) for m, c in [
        ("$", "USD"), ("$", "CAD"), ("$", "GBP"), ("US$", "USD"), ("US$", "CAD"), ("CA$", "CAD"),
        ("€", "EUR"), ("€", "GBP"), ("£", "GBP"), ("USD", "USD"), ("USD", "EUR"), ("¥", "JPY"),
    ]] == [True, True, False, True, False, True, True, False, True, True, False, True]


NUMBER_DATES = {
    # 2024-01-01 00:00 UTC, 2024-01-02 00:00 UTC, 2024-07-01 00:00 UTC (in ms): London is UTC+1 in July
    "unix time": ("a,1704067200,10\nb,1704153600,5\nc,1719792000000,7\n", {"timezone": "Europe/London"},
                  ["2024-01-01 00:00", "2024-01-02 00:00", "2024-07-01 01:00"],
                  "Unix time (seconds since 1970, UTC): 1704153600 = 2 January 2024 00:00 UTC",
                  # an 8-digit value is yyyymmdd, never seconds: mixed, they read in no one convention
                  "a,1704067200,10\nb,20240102,5\n"),
    # a date column exported from a spreadsheet in "General" format: 45292 = 1 January 2024
    "spreadsheet day numbers": ("a,45292,10\nb,45293.5,5\nc,45474,7\n", {},
                                ["2024-01-01 00:00", "2024-01-02 12:00", "2024-07-01 00:00"],
                                "spreadsheet day numbers (days since 30 December 1899): 45293.5 = 2 January 2024",
                                # outside 1990-2099 they are no dates: an id-like column is not read as one
                                "a,12345,10\nb,99999,5\n"),
}


@pytest.mark.parametrize("case", NUMBER_DATES)
def test_dates_written_as_numbers(tmp_path, case):
    text, settings, expected, reading, not_dates = NUMBER_DATES[case]
    write(tmp_path, "cust,when,amount\n" + text)
    data = load(tmp_path, **settings)
    assert data.transactions["ordered_at"].tolist() == [pd.Timestamp(t) for t in expected]
    assert f"column 'when': dates read as {reading}." in data.quality.notes
    write(tmp_path, "cust,when,amount\n" + not_dates)
    assert "cannot be read in any one known format" in error_for(tmp_path)


# --- a report's total rows ------------------------------------------------------------------------


def test_a_grand_total_row_is_not_a_sale(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-05,100.00\nb,2024-02-05,50.00\na,2024-04-05,70.00\n"
                    "c,2024-05-06,30.00\n,Total,250.00\n")
    data = load(tmp_path)
    assert data.transactions["revenue"].tolist() == [100.0, 50.0, 70.0, 30.0]
    assert data.quality.by_reason == {"total row (the sum of the rows above it)": {"rows": 1, "revenue_cents": 25000}}
    assert any(n.startswith("1 total row(s) excluded") and "row 5 (line 6 of the file)" in n
               for n in data.quality.notes), data.quality.notes
    assert not any("unparseable date" in n for n in data.quality.notes)  # 'Total' is no date to decide on


def test_subtotals_and_a_grand_total(tmp_path):
    write(tmp_path, "cust,when,amount\na,2024-01-05,10.00\nb,2024-01-06,20.00\nSubtotal January,,30.00\n"
                    "a,2024-02-05,5.00\nc,2024-02-07,7.50\n,February total,12.50\nGrand total,,42.50\n")
    data = load(tmp_path)
    assert data.transactions["revenue"].tolist() == [10.0, 20.0, 5.0, 7.5]
    assert data.quality.by_reason["total row (the sum of the rows above it)"] == {"rows": 3, "revenue_cents": 8500}


def test_a_row_that_only_adds_up_is_not_taken_for_a_total(tmp_path):
    # no customer and the sum of the rows above, but neither says 'total' nor ends the file: a bad row
    write(tmp_path, "cust,when,amount\na,2024-01-05,10.00\nb,2024-01-06,20.00\n,2024-01-07,30.00\n"
                    "c,2024-01-08,4.00\n")
    data = load(tmp_path)
    assert data.quality.by_reason == {"missing customer id": {"rows": 1, "revenue_cents": 3000}}
    # and a last row that says total but does not add up is not left out: its 'Total' is then a date
    write(tmp_path, "cust,when,amount\na,2024-01-05,10.00\nb,2024-01-06,20.00\nc,2024-01-07,5.00\n,Total,99.00\n")
    assert "first: 'Total'" in error_for(tmp_path)


# --- a report's title above its header --------------------------------------------------------------


def test_title_lines_above_the_header_of_a_csv(tmp_path):
    write(tmp_path, "Sales report Q3 2024\nExported 2024-10-01 by finance\n\ncust,when,amount\n"
                    "a,2024-01-01,10\nb,2024-01-02,x\nc,2024-01-03,7\n")
    data = load(tmp_path)
    assert data.transactions["revenue"].tolist() == [10.0, 7.0]
    assert data.quality.notes[0] == ("The header is on line 4: the 3 line(s) above it (a report's title) "
                                     "were skipped.")
    assert any("first at row 2 (line 6 of the file)" in n for n in data.quality.notes)
    # no line names every mapped column: the first line is the header, and the error says what is missing
    write(tmp_path, "customer,when,amount\na,2024-01-01,10\n")
    assert "columns.customer_id: 'cust'" in error_for(tmp_path)


def test_title_rows_above_the_header_of_a_sheet(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Report"
    for row in (["Sales report Q3 2024"], [], ["cust", "when", "amount"], ["a", "2024-01-01", 10],
                ["b", "2024-01-02", "x"]):
        sheet.append(row)
    book.save(tmp_path / "t.xlsx")
    data = load(tmp_path, path="t.xlsx")
    assert data.transactions["revenue"].tolist() == [10.0]
    assert data.quality.notes[0] == "Sheet 'Report': the 2 row(s) above the header (a report's title) were skipped."
    assert any("first at row 2 (row 5 of sheet 'Report')" in n for n in data.quality.notes)
