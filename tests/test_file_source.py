"""File source: exact results on hand-built invoice files, invariants on generated ones, and a
clear InputError (file, column, row, fix) for each kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpipeline.config import FileSource, config_from_dict
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.quality import to_cents
from cxpipeline.schema import TRANSACTION_COLUMNS
from cxpipeline.sources.files import (
    EXCLUSION_REASONS,
    _exact_duplicates,
    load_file_source,
    other_currency_reason,
)

DATA = Path(__file__).parent / "data"

INVOICE_COLUMNS = dict(customer_id="CustomerID", ordered_at="InvoiceDate", order_id="InvoiceNo",
                       quantity="Quantity", unit_price="UnitPrice")


def invoice_source(**overrides) -> FileSource:
    settings = dict(path="invoice_lines.csv", columns=INVOICE_COLUMNS, date_format="%m/%d/%Y %H:%M",
                    segment_columns={"country": "Country"}, cancellation_prefix="C")
    settings.update(overrides)
    return FileSource(**settings)


def canonical(rows: dict, extra: dict[str, list] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column, dtype in TRANSACTION_COLUMNS.items():
        frame[column] = frame[column].astype(dtype)
    for column, values in (extra or {}).items():
        frame[column] = pd.Series(values, dtype="string")
    return frame


UK, FR, DE = "United Kingdom", "France", "Germany"

# Data rows 1-17 of tests/data/invoice_lines.csv; used: 1-4, 6-8, 11-13, 16 (row 8, worth 0,
# is a purchase: a free line still makes a customer).
EXPECTED_INVOICES = canonical(
    {
        "order_id": ["536365", "536365", "536366", "536367", "536370", "536370", "536414", "C536379",
                     "C536383", "536390", "539993"],
        "customer_id": ["17850", "17850", "17850", "13047", "12583", "12583", "13047", "14527", "15311",
                        "17511", "13047"],
        "ordered_at": pd.to_datetime(["2010-12-01 08:26", "2010-12-01 08:26", "2010-12-01 08:28",
                                      "2010-12-01 08:34", "2010-12-01 08:45", "2010-12-01 08:45",
                                      "2010-12-01 11:52", "2010-12-01 09:41", "2010-12-01 09:49",
                                      "2010-12-01 10:19", "2011-01-04 10:00"]),
        "revenue": [15.30, 20.34, 11.10, 54.08, 90.00, 54.00, 0.0, -27.50, -4.65, -17.00, 19.50],
        "cost": [0.0] * 11,
        "cost_to_serve": [0.0] * 11,
        "quantity": [6.0, 6, 6, 32, 24, 3, 56, -1, -1, -2, 10],
        "is_return": [False] * 7 + [True] * 3 + [False],
    },
    {"country": [UK, UK, UK, UK, FR, FR, UK, UK, UK, UK, DE]},
)

EXPECTED_INVOICE_EXCLUSIONS = {
    "exact duplicate line": {"rows": 1, "revenue_cents": 5408},  # row 5 = row 4
    "missing customer id": {"rows": 3, "revenue_cents": 251 + 502 - 1106206},  # rows 9, 10, 17
    "non-numeric amount": {"rows": 1, "revenue_cents": 0},  # row 15: quantity 'abc'
    "unparseable date": {"rows": 1, "revenue_cents": 1980},  # row 14: 'not a date'
}


def test_invoice_lines_exact():
    data = load_file_source(invoice_source(), base_dir=DATA)
    pd.testing.assert_frame_equal(data.transactions, EXPECTED_INVOICES, check_exact=True)
    quality = data.quality
    assert quality.by_reason == EXPECTED_INVOICE_EXCLUSIONS
    assert (quality.rows_in, quality.rows_used, quality.rows_excluded) == (17, 11, 6)
    assert quality.revenue_used_cents == 21517
    assert quality.revenue_excluded_cents == 5408 + 251 + 502 - 1106206 + 1980
    assert quality.revenue_in_cents == 21517 + quality.revenue_excluded_cents == -1076548
    assert quality.revenue_used_cents == to_cents(data.transactions["revenue"])
    assert quality.notes == [
        "2 return/cancellation line(s) had a positive quantity or amount; made negative "
        "(first at row 12 (line 13 of the file)).",
        "non-numeric amount: 1 row(s) excluded; first at row 15 (line 16 of the file), "
        "column 'Quantity', value 'abc'.",
        "unparseable date: 1 row(s) excluded; first at row 14 (line 15 of the file), "
        "column 'InvoiceDate', value 'not a date'.",
        "1 row(s) have a zero amount and are kept as purchases worth 0 (a free sample or a 100 % "
        "discount still makes a customer); set source.exclude_zero_amounts: true to leave them out.",
    ]
    assert set(quality.by_reason) <= set(EXCLUSION_REASONS)
    assert data.customers is None
    assert data.description == str(DATA / "invoice_lines.csv")


def test_cancellations_are_returns_not_exclusions():
    """Prefix-C lines (even with a positive quantity) and negative quantities reduce revenue."""
    tx = load_file_source(invoice_source(), base_dir=DATA).transactions
    returns = tx[tx["is_return"]]
    assert returns["order_id"].tolist() == ["C536379", "C536383", "536390"]
    assert returns["revenue"].tolist() == [-27.50, -4.65, -17.00]
    assert returns["quantity"].tolist() == [-1.0, -1.0, -2.0]
    # Without the prefix setting the positive-quantity C line is an ordinary sale.
    plain = load_file_source(invoice_source(cancellation_prefix=None), base_dir=DATA).transactions
    line = plain[plain["order_id"] == "C536383"].iloc[0]
    assert (line["revenue"], line["quantity"], bool(line["is_return"])) == (4.65, 1.0, False)


def test_naive_invoice_dates_are_read_in_the_configured_zone():
    # Reported in the source's own zone (the default), times stay the business's wall clock.
    tx = load_file_source(invoice_source(timezone="America/New_York"), base_dir=DATA).transactions
    assert tx["ordered_at"].iloc[0] == pd.Timestamp("2010-12-01 08:26")
    # Reported in UTC (period.timezone: UTC), they move by the zone's offset.
    tx = load_file_source(invoice_source(timezone="America/New_York"), base_dir=DATA,
                          report_timezone="UTC").transactions
    assert tx["ordered_at"].iloc[0] == pd.Timestamp("2010-12-01 13:26")  # EST = UTC-5
    assert tx["ordered_at"].iloc[-1] == pd.Timestamp("2011-01-04 15:00")


def typed_invoice_frame() -> pd.DataFrame:
    """The invoice CSV as another tool would store it in Parquet: real numbers and timestamps."""
    raw = pd.read_csv(DATA / "invoice_lines.csv", dtype=str, keep_default_na=False, na_values=[""])
    return raw.assign(
        Quantity=pd.to_numeric(raw["Quantity"], errors="coerce"),
        UnitPrice=pd.to_numeric(raw["UnitPrice"]),
        CustomerID=pd.to_numeric(raw["CustomerID"]),  # float64 with NaN, like the UCI file
        InvoiceDate=pd.to_datetime(raw["InvoiceDate"], format="%m/%d/%Y %H:%M", errors="coerce"),
    )


def test_parquet_input_equals_csv_input(tmp_path):
    typed = typed_invoice_frame()
    assert typed["CustomerID"].dtype == "float64"
    typed.to_parquet(tmp_path / "invoice_lines.parquet", engine="pyarrow")
    from_parquet = load_file_source(invoice_source(path="invoice_lines.parquet"), base_dir=tmp_path)
    from_csv = load_file_source(invoice_source(), base_dir=DATA)
    pd.testing.assert_frame_equal(from_parquet.transactions, from_csv.transactions, check_exact=True)
    assert from_parquet.quality.by_reason == from_csv.quality.by_reason
    assert from_parquet.quality.rows_in == from_csv.quality.rows_in
    assert from_parquet.quality.revenue_in_cents == from_csv.quality.revenue_in_cents


def test_parquet_aware_timestamps_become_naive_utc(tmp_path):
    frame = pd.DataFrame({
        "cust": [1, 2],
        "when": pd.to_datetime(["2024-06-01 10:00", "2024-12-01 10:00"]).tz_localize("Europe/Paris"),
        "amount": [10.0, 20.0],
    })
    frame.to_parquet(tmp_path / "t.parquet")
    source = FileSource(path="t.parquet", columns=dict(customer_id="cust", ordered_at="when",
                                                       revenue="amount"))
    tx = load_file_source(source, base_dir=tmp_path).transactions
    assert tx["ordered_at"].tolist() == [pd.Timestamp("2024-06-01 08:00"), pd.Timestamp("2024-12-01 09:00")]
    assert tx["customer_id"].tolist() == ["1", "2"]
    assert tx["order_id"].tolist() == ["row-1", "row-2"]


def orders_source(**overrides) -> FileSource:
    settings = dict(path="orders_yyyymmdd.csv", delimiter=";", decimal=",", date_format="%Y%m%d",
                    timezone="Europe/Berlin", currency="EUR",
                    columns=dict(customer_id="Kunde", ordered_at="Datum", revenue="Umsatz",
                                 currency="Waehrung"),
                    segment_columns={"channel": "Kanal"})
    settings.update(overrides)
    return FileSource(**settings)


def test_revenue_column_yyyymmdd_dates_decimal_comma_and_currency():
    data = load_file_source(orders_source(), base_dir=DATA)
    expected = canonical(
        {
            "order_id": ["row-1", "row-2", "row-3", "row-6", "row-8"],  # no order column: one per row
            "customer_id": ["K-001", "K-002", "K-001", "K-004", "K-005"],
            # Reported in Berlin's own time (the source's zone): dates stay Berlin midnights.
            "ordered_at": pd.to_datetime(["2024-01-05", "2024-01-05", "2024-02-12", "2024-03-01",
                                          "2024-03-15"]),
            "revenue": [120.50, 80.00, -20.25, 0.0, 45.00],
            "cost": [0.0] * 5,
            "cost_to_serve": [0.0] * 5,
            "quantity": [0.0] * 5,  # not mapped
            "is_return": [False, False, True, False, False],
        },
        {"currency": ["EUR"] * 5, "channel": ["Web", "Store", "Web", "Store", None]},
    )
    pd.testing.assert_frame_equal(data.transactions, expected, check_exact=True)
    assert data.quality.by_reason == {
        "unparseable date": {"rows": 1, "revenue_cents": 1000},  # row 5: ISO date, not %Y%m%d
        other_currency_reason("USD"): {"rows": 1, "revenue_cents": 5510},
        "missing currency": {"rows": 1, "revenue_cents": 9999},
    }
    assert data.quality.revenue_in_cents == 39034 == data.quality.revenue_used_cents + 1000 + 5510 + 9999
    assert data.quality.notes[0] == (
        "unparseable date: 1 row(s) excluded; first at row 5 (line 6 of the file), "
        "column 'Datum', value '2024-02-14'.")
    assert "1 row(s) have a zero amount and are kept" in data.quality.notes[1]
    # Reported in UTC, Berlin's midnight (CET, UTC+1) is 23:00 the day before.
    utc = load_file_source(orders_source(), base_dir=DATA, report_timezone="UTC").transactions
    assert utc["ordered_at"].iloc[0] == pd.Timestamp("2024-01-04 23:00")


def test_mixed_currencies_need_a_choice():
    with pytest.raises(InputError) as info:
        load_file_source(orders_source(currency=None), base_dir=DATA)
    message = str(info.value)
    assert "mixes currencies (EUR, USD)" in message
    assert "orders_yyyymmdd.csv, column 'Waehrung'" in message
    assert "Set source.currency" in message


def write(tmp_path: Path, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


SIMPLE = dict(customer_id="cust", ordered_at="when", revenue="amount")


def test_time_zone_aware_and_naive_strings(tmp_path):
    write(tmp_path, "cust,when,amount\n"
                    "a,2024-03-10T12:00:00+02:00,1\n"
                    "b,2024-03-10 12:00:00Z,2\n"
                    "c,2024-03-10 12:00:00-0500,3\n"
                    "d,2024-07-01 12:00,4\n"
                    "e,2024-01-15,5\n"
                    "f,2024-07-01T12:00:00.250 UTC,6\n")
    source = FileSource(path="t.csv", columns=SIMPLE, timezone="Europe/London")
    tx = load_file_source(source, base_dir=tmp_path).transactions
    # In London's wall-clock time (the reporting zone): aware values converted, naive kept.
    assert tx["ordered_at"].tolist() == [
        pd.Timestamp("2024-03-10 10:00"),  # GMT in March (before the clocks change)
        pd.Timestamp("2024-03-10 12:00"),
        pd.Timestamp("2024-03-10 17:00"),
        pd.Timestamp("2024-07-01 12:00"),  # naive: already London time
        pd.Timestamp("2024-01-15 00:00"),
        pd.Timestamp("2024-07-01 13:00:00.250"),  # 12:00 UTC is 13:00 BST
    ]
    utc = load_file_source(source, base_dir=tmp_path, report_timezone="UTC").transactions
    assert utc["ordered_at"].tolist()[3:] == [
        pd.Timestamp("2024-07-01 11:00"),  # naive, London summer time (UTC+1)
        pd.Timestamp("2024-01-15 00:00"),  # naive, London winter time (UTC)
        pd.Timestamp("2024-07-01 12:00:00.250"),
    ]


def test_date_format_with_zone_directive(tmp_path):
    write(tmp_path, "cust,when,amount\na,01.02.2024 10:00 +0100,1\nb,01.02.2024 10:00 -0030,2\n")
    source = FileSource(path="t.csv", columns=SIMPLE, date_format="%d.%m.%Y %H:%M %z")
    tx = load_file_source(source, base_dir=tmp_path).transactions
    assert tx["ordered_at"].tolist() == [pd.Timestamp("2024-02-01 09:00"), pd.Timestamp("2024-02-01 10:30")]


def test_is_return_column_and_costs(tmp_path):
    write(tmp_path, "inv,cust,when,amount,qty,cogs,ship,ret\n"
                    "1,a,2024-01-01,10.00,2,4.00,1.50,no\n"
                    "2,a,2024-01-05,10.00,2,4.00,,yes\n"
                    "3,b,2024-01-06,-5.00,-1,-2.00,0.5,0\n")
    columns = dict(order_id="inv", customer_id="cust", ordered_at="when", revenue="amount",
                   quantity="qty", cost="cogs", cost_to_serve="ship", is_return="ret")
    data = load_file_source(FileSource(path="t.csv", columns=columns), base_dir=tmp_path)
    tx = data.transactions
    assert tx["revenue"].tolist() == [10.0, -10.0, -5.0]
    assert tx["quantity"].tolist() == [2.0, -2.0, -1.0]
    assert tx["cost"].tolist() == [4.0, -4.0, -2.0]
    assert tx["cost_to_serve"].tolist() == [1.5, 0.0, 0.5]
    assert tx["is_return"].tolist() == [False, True, True]
    assert data.quality.revenue_in_cents == -500 and data.quality.by_reason == {}
    assert data.quality.notes == ["1 return/cancellation line(s) had a positive quantity or amount; "
                                  "made negative (first at row 2 (line 3 of the file))."]


def test_duplicates_keep_the_first_and_need_every_column_equal(tmp_path):
    write(tmp_path, "inv,cust,when,amount,note\n"
                    "1,a,2024-01-01,10,x\n"
                    "1,a,2024-01-01,10,y\n"  # differs in an unmapped column: kept
                    "1,a,2024-01-01,10,x\n"
                    "1,a,2024-01-01,10,x\n")
    columns = dict(order_id="inv", **SIMPLE)
    data = load_file_source(FileSource(path="t.csv", columns=columns), base_dir=tmp_path)
    assert len(data.transactions) == 2
    assert data.quality.by_reason == {"exact duplicate line": {"rows": 2, "revenue_cents": 2000}}


def test_exact_duplicates_match_pandas_on_generated_data():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "a": rng.integers(0, 4, 5000).astype(str),
        "b": rng.choice(["x", "y", None], 5000),
        "c": rng.integers(0, 3, 5000).astype(str),
    }).astype("string")
    expected = frame.duplicated(keep="first")
    assert 1000 < expected.sum() < 5000
    assert _exact_duplicates(frame).tolist() == expected.tolist()


def test_invariants_on_generated_invoice_lines(tmp_path):
    rng = np.random.default_rng(11)
    n = 3000
    quantity = rng.integers(-3, 12, n).astype(object)
    quantity[rng.random(n) < 0.01] = "?"
    customer = rng.integers(10000, 10100, n).astype(float)
    customer[rng.random(n) < 0.1] = np.nan
    dates = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    dates = dates.strftime("%Y%m%d").to_numpy().astype(object)
    dates[rng.random(n) < 0.01] = "2023-13-45"
    invoice = rng.integers(1, 800, n).astype(str).astype(object)
    invoice = np.where(rng.random(n) < 0.05, "C" + invoice, invoice)
    frame = pd.DataFrame({"Invoice": invoice, "Qty": quantity, "Date": dates,
                          "Price": rng.choice([0, 0.5, 1.25, 9.99], n), "Customer": customer,
                          "Country": rng.choice(["UK", "NA", "FR"], n)})
    frame = pd.concat([frame, frame.sample(100, random_state=1)], ignore_index=True)
    frame.to_csv(tmp_path / "gen.csv", index=False)
    source = FileSource(path="gen.csv", date_format="%Y%m%d", cancellation_prefix="C",
                        columns=dict(customer_id="Customer", ordered_at="Date", order_id="Invoice",
                                     quantity="Qty", unit_price="Price"),
                        segment_columns={"country": "Country"})
    data = load_file_source(source, base_dir=tmp_path)
    tx, quality = data.transactions, data.quality
    assert quality.rows_in == len(frame) == quality.rows_used + quality.rows_excluded
    assert quality.rows_used == len(tx)
    assert quality.revenue_used_cents == to_cents(tx["revenue"])
    assert quality.revenue_in_cents == quality.revenue_used_cents + quality.revenue_excluded_cents
    assert set(quality.by_reason) == set(EXCLUSION_REASONS) - {"missing currency", "zero amount", "total row (the sum of the rows above it)"}
    raw = pd.read_csv(tmp_path / "gen.csv", dtype=str, keep_default_na=False, na_values=[""])
    excluded_before = (raw["Customer"].isna() | (raw["Qty"] == "?") | (raw["Date"] == "2023-13-45"))
    duplicates = int((raw.duplicated(keep="first") & ~excluded_before).sum())
    assert quality.by_reason["exact duplicate line"]["rows"] == duplicates > 50
    assert quality.by_reason["missing customer id"]["rows"] == int(
        (raw["Customer"].isna() & (raw["Qty"] != "?") & (raw["Date"] != "2023-13-45")).sum())
    # With fill_customer_from_order, a line without a customer takes its invoice's customer when the
    # invoice's other lines name exactly one (an independent reading of the rule in pandas).
    filled = load_file_source(source.model_copy(update={"fill_customer_from_order": True}), base_dir=tmp_path)
    named = raw.dropna(subset=["Customer"]).groupby("Invoice")["Customer"].agg(["nunique", "first"])
    customer = raw["Customer"].fillna(raw["Invoice"].map(named.loc[named["nunique"] == 1, "first"]))
    assert 20 < (customer.notna() & raw["Customer"].isna()).sum() < raw["Customer"].isna().sum()
    assert filled.quality.by_reason["missing customer id"]["rows"] == int(
        (customer.isna() & (raw["Qty"] != "?") & (raw["Date"] != "2023-13-45")).sum())
    assert filled.quality.revenue_in_cents == quality.revenue_in_cents  # nothing read differently but the ids
    assert tx["customer_id"].str.fullmatch(r"100\d\d").all()  # '10042.0' -> '10042'
    assert set(tx["country"]) == {"UK", "NA", "FR"}  # 'NA' is a country, not a null
    # Zero-price lines are purchases worth 0, kept (and noted).
    assert (tx.loc[tx["is_return"], "revenue"] <= 0).all() and (tx.loc[~tx["is_return"], "revenue"] >= 0).all()
    assert any("zero amount and are kept" in note for note in quality.notes)
    assert tx.loc[tx["order_id"].str.startswith("C"), "is_return"].all()
    assert list(tx.columns) == list(TRANSACTION_COLUMNS) + ["country"]


def test_customers_table():
    source = invoice_source(
        customers_path="customers.csv",
        customer_columns=dict(customer_id="CustomerID", region="Region", customer_type="Segment",
                              referred_by="ReferredBy", acquired_at="FirstSeen"),
    )
    customers = load_file_source(source, base_dir=DATA).customers
    expected = pd.DataFrame({
        "customer_id": pd.Series(["17850", "13047", "12583"], dtype="string"),
        "region": pd.Series(["North", "South", "East"], dtype="string"),
        "customer_type": pd.Series(["Retail", "Wholesale", "Retail"], dtype="string"),
        "referred_by": pd.Series([None, "17850", None], dtype="string"),
        "acquired_at": pd.Series(pd.to_datetime(["2010-12-01 08:00", "2010-11-20 09:30", None]),
                                 dtype="datetime64[us]"),
    })
    pd.testing.assert_frame_equal(customers, expected, check_exact=True)


def test_customers_table_without_id_mapping_is_a_config_error():
    source = invoice_source(customers_path="customers.csv", customer_columns={"region": "Region"})
    with pytest.raises(ConfigError, match="customer_id"):
        load_file_source(source, base_dir=DATA)


# --- bad files: each gives an InputError naming the file and the fix --------------------------


def error_for(tmp_path: Path, source: FileSource) -> str:
    with pytest.raises(InputError) as info:
        load_file_source(source, base_dir=tmp_path)
    return str(info.value)


def test_wrong_delimiter(tmp_path):
    path = write(tmp_path, "cust;when;amount\na;2024-01-01;1\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE))
    assert "Only one column was found" in message and str(path) in message
    assert "Set source.delimiter: ';'" in message


def test_missing_column_lists_columns_and_suggests(tmp_path):
    path = write(tmp_path, "Customer ID,InvoiceDate,Revenue\na,2024-01-01,1\n")
    columns = dict(customer_id="CustomerID", ordered_at="InvoiceDate", revenue="Revenu")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=columns))
    assert str(path) in message
    assert "columns.customer_id: 'CustomerID' (did you mean 'Customer ID'?)" in message
    assert "columns.revenue: 'Revenu' (did you mean 'Revenue'?)" in message
    assert "The file has the columns: 'Customer ID', 'InvoiceDate', 'Revenue'." in message
    assert "fix:" in message


def test_missing_segment_column(tmp_path):
    write(tmp_path, "cust,when,amount,Country\na,2024-01-01,1,UK\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE,
                                             segment_columns={"country": "country"}))
    assert "segment_columns.country: 'country' (did you mean 'Country'?)" in message


def test_wrong_encoding(tmp_path):
    path = write(tmp_path, "cust,when,amount\na,2024-01-01,1\nZoë Café,2024-01-02,2\n", encoding="latin-1")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE, encoding="utf-8"))  # set: kept
    assert f"{path}, line 3" in message
    assert "encoding: latin-1" in message
    data = load_file_source(FileSource(path="t.csv", columns=SIMPLE, encoding="latin-1"), base_dir=tmp_path)
    assert data.transactions["customer_id"].tolist() == ["a", "Zoë Café"]


def test_a_windows_export_is_read_as_windows_1252_when_no_encoding_is_set(tmp_path):
    # Excel on Windows: cp1252 ('€' is 0x80, the curly quote 0x92); amounts and dates are ASCII
    write(tmp_path, "cust,when,amount,region\nZoë Café,2024-01-01,1.50,Köln\nO’Brien,2024-01-02,2,€ zone\n",
          encoding="cp1252")
    data = load_file_source(FileSource(path="t.csv", columns=SIMPLE, segment_columns={"region": "region"}),
                            base_dir=tmp_path)
    assert data.transactions["customer_id"].tolist() == ["Zoë Café", "O’Brien"]
    assert data.transactions["region"].tolist() == ["Köln", "€ zone"]
    assert data.transactions["revenue"].tolist() == [1.5, 2.0]
    assert data.quality.notes[0].startswith("The file is not UTF-8 (first at line 2); it was read as Windows-1252")
    # a byte Windows-1252 leaves undefined (0x81): Latin-1, which reads every byte
    (tmp_path / "t.csv").write_bytes(b"cust,when,amount\nA\x81B,2024-01-01,1\nc,2024-01-02,2\n")
    data = load_file_source(FileSource(path="t.csv", columns=SIMPLE), base_dir=tmp_path)
    assert data.transactions["customer_id"].tolist() == ["A\x81B", "c"]
    assert "it was read as Latin-1" in data.quality.notes[0]


def test_ragged_rows(tmp_path):
    path = write(tmp_path, "cust,when,amount\na,2024-01-01,1\nb,2024-01-02,2,extra\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE))
    assert f"{path}, line 3" in message
    assert "Expected 3 fields in line 3, saw 4" in message
    assert "double quotes" in message


def test_bad_quoting(tmp_path):
    path = write(tmp_path, 'cust,when,amount\na,2024-01-01,1\n"b,2024-01-02,2\nc,2024-01-03,3\n')
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE))
    assert f"{path}, line 3 (an opening quote that is never closed)" in message
    assert "double quotes" in message


def test_whole_date_column_unreadable_suggests_a_format(tmp_path):
    path = write(tmp_path, "cust,when,amount\na,25/12/2023 10:00,1\nb,26/12/2023 11:30,2\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE, date_format="%Y-%m-%d"))
    assert f"{path}, column 'when', row 1 (line 2 of the file)" in message
    assert "100% of the values in column 'when' cannot be read as dates (first: '25/12/2023 10:00')" in message
    assert "date_format: '%d/%m/%Y %H:%M'" in message
    tx = load_file_source(FileSource(path="t.csv", columns=SIMPLE, date_format="%d/%m/%Y %H:%M"),
                          base_dir=tmp_path).transactions
    assert tx["ordered_at"].tolist() == [pd.Timestamp("2023-12-25 10:00"), pd.Timestamp("2023-12-26 11:30")]


def test_dates_that_are_not_dates(tmp_path):
    path = write(tmp_path, "cust,when,amount\na,2024-01-01,1\nb,soon,2\nc,later,3\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE))
    assert f"{path}, column 'when', row 2 (line 3 of the file)" in message
    assert ("2 of 3 dates in column 'when' cannot be read in any one known format (the closest, "
            "ISO year-month-day, reads 33.3%); first: 'soon'") in message
    assert "Set source.date_format" in message


def test_wrong_date_format_setting(tmp_path):
    write(tmp_path, "cust,when,amount\na,2023-12-25,1\nb,2023-12-26,2\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE, date_format="%Y%m%d"))
    assert "column 'when', row 1" in message
    assert "source.date_format is '%Y%m%d'" in message and "date_format: '%Y-%m-%d'" in message


def test_whole_amount_column_unreadable_with_the_wrong_decimal(tmp_path):
    path = write(tmp_path, 'cust,when,amount\na,2024-01-01,"1,50"\nb,2024-01-02,"2,25"\n')
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE, decimal="."))
    assert f"{path}, column 'amount', row 1 (line 2 of the file)" in message
    assert "cannot be read as numbers (first: '1,50')" in message
    assert "Set source.decimal" in message
    # Not given, the decimal comma is decided from the column itself.
    tx = load_file_source(FileSource(path="t.csv", columns=SIMPLE), base_dir=tmp_path).transactions
    assert tx["revenue"].tolist() == [1.50, 2.25]


def test_text_in_amount_column(tmp_path):
    write(tmp_path, "cust,when,qty,price\na,2024-01-01,one,2\nb,2024-01-02,two,3\n")
    columns = dict(customer_id="cust", ordered_at="when", quantity="qty", unit_price="price")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=columns))
    assert "column 'qty', row 1" in message and "columns.quantity" in message


def test_every_row_excluded(tmp_path):
    path = write(tmp_path, "cust,when,amount\n,2024-01-01,1\n,2024-01-02,2\n")
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE))
    assert "No usable rows: all 2 rows were excluded (missing customer id: 2)" in message
    assert str(path) in message


def test_missing_empty_and_unknown_files(tmp_path):
    assert "does not exist" in error_for(tmp_path, FileSource(path="nope.csv", columns=SIMPLE))
    write(tmp_path, "")
    assert "The file is empty" in error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE))
    write(tmp_path, "cust,when,amount\n", name="t.xlsx")
    message = error_for(tmp_path, FileSource(path="t.xlsx", columns=SIMPLE))
    assert "cannot be read as a spreadsheet" in message and "t.xlsx" in message
    write(tmp_path, "cust,when,amount\n", name="t.dat")
    assert "Set source.format" in error_for(tmp_path, FileSource(path="t.dat", columns=SIMPLE))
    write(tmp_path, "not parquet at all", name="bad.parquet")
    message = error_for(tmp_path, FileSource(path="bad.parquet", columns=SIMPLE))
    assert "cannot be read as Parquet" in message and "bad.parquet" in message


def test_config_mistakes():
    with pytest.raises(ConfigError, match="cancellation_prefix"):
        load_file_source(FileSource(path="t.csv", columns=SIMPLE, cancellation_prefix="C"))
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'") as raised:  # before any read
        config_from_dict({"pack_id": "tz", "source": {"kind": "file", "path": "t.csv", "timezone": "Mars/Olympus",
                                                      "columns": SIMPLE}})
    assert "source.file.timezone" in str(raised.value)


def test_quantity_may_be_empty_when_revenue_is_given(tmp_path):
    write(tmp_path, "cust,when,amount,qty\na,2024-01-01,10,\nb,2024-01-02,5,x\nc,2024-01-03,7,2\n")
    columns = dict(quantity="qty", **SIMPLE)
    data = load_file_source(FileSource(path="t.csv", columns=columns), base_dir=tmp_path)
    assert data.transactions["customer_id"].tolist() == ["a", "c"]
    assert data.transactions["quantity"].tolist() == [0.0, 2.0]
    assert data.quality.by_reason == {"non-numeric amount": {"rows": 1, "revenue_cents": 500}}
    assert data.quality.revenue_in_cents == 2200
    assert data.quality.notes == ["non-numeric amount: 1 row(s) excluded; first at row 2 "
                                  "(line 3 of the file), column 'qty', value 'x'."]


def test_load_source_dispatches_file_configs_relative_to_the_config_folder():
    from cxpipeline.config import config_from_dict
    from cxpipeline.sources import load_source

    config = config_from_dict(
        {"source": {"kind": "file", "path": "invoice_lines.csv", "cancellation_prefix": "C",
                    "date_format": "%m/%d/%Y %H:%M",
                    "columns": INVOICE_COLUMNS, "segment_columns": {"country": "Country"}}},
        base_dir=DATA,
    )
    data = load_source(config)
    pd.testing.assert_frame_equal(data.transactions, EXPECTED_INVOICES, check_exact=True)
    assert data.quality.to_dict()["revenue_used"] == 215.17


def test_a_decompression_bomb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import gzip

    from cxpipeline.sources import file_readers

    monkeypatch.setattr(file_readers, "BOMB_MIN_BYTES", 1024 * 1024)  # the rule, at a test's size
    line = b"a,2024-01-01,1\n"
    with gzip.open(tmp_path / "t.csv.gz", "wb") as bomb:
        bomb.write(b"cust,when,amount\n" + line * 400_000)  # 6 MB of the same line: ~1000x
    message = error_for(tmp_path, FileSource(path="t.csv.gz", columns=SIMPLE))
    assert "inflates to more than" in message and "over 200 times" in message
    with gzip.open(tmp_path / "ok.csv.gz", "wb") as export:  # an ordinary export reads as before
        export.write(b"cust,when,amount\n" + b"".join(f"c{i},2024-01-{1 + i % 28:02d},{i}.50\n".encode()
                                                       for i in range(20_000)))
    tx = load_file_source(FileSource(path="ok.csv.gz", columns=SIMPLE), base_dir=tmp_path).transactions
    assert len(tx) == 20_000


def test_zip_zstd_and_workbook_bombs_are_refused_before_they_are_read(tmp_path, monkeypatch):
    """A zipped CSV, a .zst CSV and an xlsx (a zip of XML) that inflate ~1000x are refused
    before pandas or calamine inflate them; ordinary ones read as before."""
    import zipfile

    import zstandard

    from cxpipeline.sources import file_readers

    monkeypatch.setattr(file_readers, "BOMB_MIN_BYTES", 1024 * 1024)  # the rule, at a test's size
    bomb = b"cust,when,amount\n" + b"a,2024-01-01,1\n" * 400_000  # 6 MB of the same line
    with zipfile.ZipFile(tmp_path / "t.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("t.csv", bomb)
    (tmp_path / "t.csv.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(bomb))
    # A workbook whose sheet XML repeats one row: built by hand, as a spreadsheet program would
    # never write it (openpyxl would take minutes to write 400,000 rows).
    row = '<row><c t="inlineStr"><is><t>a</t></is></c><c><v>45292</v></c><c><v>1</v></c></row>'
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             'spreadsheetml/2006/main"><sheetData>' + row * 100_000 + "</sheetData></worksheet>")
    with zipfile.ZipFile(tmp_path / "t.xlsx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    assert (tmp_path / "t.xlsx").stat().st_size * 200 < len(sheet)
    for name in ("t.csv.zip", "t.csv.zst", "t.xlsx"):
        message = error_for(tmp_path, FileSource(path=name, columns=SIMPLE))
        assert "The compressed file inflates to" in message and "over 200 times" in message, (name, message)
    ordinary = b"cust,when,amount\n" + b"".join(f"c{i},2024-01-{1 + i % 28:02d},{i}.50\n".encode()
                                                for i in range(20_000))
    with zipfile.ZipFile(tmp_path / "ok.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ok.csv", ordinary)
    (tmp_path / "ok.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(ordinary))
    for name in ("ok.csv.zip", "ok.csv.zst"):
        assert len(load_file_source(FileSource(path=name, columns=SIMPLE), base_dir=tmp_path).transactions) == 20_000


def test_excel_sep_line_names_the_delimiter(tmp_path):
    # Excel's "sep=;" first line (here with a byte-order mark and Windows line ends)
    (tmp_path / "t.csv").write_bytes("\ufeffsep=;\r\ncust;when;amount\r\na;2024-01-01;1,50\r\nb;2024-01-02\r\n"
                                     "c;2024-01-03;x\r\n".encode("utf-8"))
    data = load_file_source(FileSource(path="t.csv", columns=SIMPLE), base_dir=tmp_path)
    assert data.transactions["revenue"].tolist() == [1.5]
    notes = data.quality.notes
    assert notes[0] == ("The file's first line 'sep=;' (written by Excel) names its delimiter ';': the file was "
                        "read with it, from line 2.")
    # rows keep their file lines: row 2 is line 4, after the sep and header lines
    assert "1 row(s) have fewer fields than the header (first: row 2 (line 4 of the file))" in notes[1]
    assert "non-numeric amount: 2 row(s) excluded; first at row 2 (line 4 of the file)" in notes[3]
    message = error_for(tmp_path, FileSource(path="t.csv", columns=SIMPLE, delimiter=","))
    assert "The file's first line, 'sep=;', says its delimiter is ';'; the config sets delimiter ','." in message
