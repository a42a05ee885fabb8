"""The demo retailer: determinism, schema, invariants and plausible statistics."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from cxpipeline.config import DemoSource
from cxpipeline.errors import InputError
from cxpipeline.quality import to_cents
from cxpipeline.schema import TRANSACTION_COLUMNS, validate_customers, validate_transactions
from cxpipeline.sources import SourceData
from cxpipeline.sources.demo import (
    BLOCK_CUSTOMERS,
    CUSTOMER_COLUMNS,
    demo_span,
    generate_demo,
    iter_demo_chunks,
    load_demo,
)

END = pd.Timestamp("2026-09-30")
START = pd.Timestamp("2022-10-01")


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_demo(5000, 4, seed=7, end_date="2026-09-30")


@pytest.fixture(scope="module")
def purchases(demo) -> pd.DataFrame:
    transactions, _ = demo
    return transactions[~transactions["is_return"]]


# --- Determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(demo):
    transactions, customers = generate_demo(5000, 4, seed=7, end_date=date(2026, 9, 30))
    pd.testing.assert_frame_equal(transactions, demo[0])
    pd.testing.assert_frame_equal(customers, demo[1])


def test_other_seed_gives_other_data(demo):
    transactions, _ = generate_demo(5000, 4, seed=8)
    assert len(transactions) != len(demo[0]) or not transactions["revenue"].equals(demo[0]["revenue"])


def test_pinned_fingerprint(demo):
    # Pins the generator: changes only when the model is deliberately re-tuned (update then).
    transactions, customers = demo
    assert len(transactions) == 66_171
    assert to_cents(transactions["revenue"]) == 7_651_260_11
    assert customers["referred_by"].notna().sum() == 964


def test_chunks_equal_one_shot_across_block_boundaries():
    customers = 2 * BLOCK_CUSTOMERS + 1_234  # three blocks, the last partial
    whole_transactions, whole_customers = generate_demo(customers, 2, seed=11, end_date="2025-12-31")
    chunks = list(iter_demo_chunks(customers, 2, seed=11, end_date="2025-12-31", chunk_customers=3_700))
    assert [len(c) for _, c in chunks] == [3_700, 3_700, 3_700, 134]
    pd.testing.assert_frame_equal(
        pd.concat([t for t, _ in chunks], ignore_index=True), whole_transactions
    )
    pd.testing.assert_frame_equal(
        pd.concat([c for _, c in chunks], ignore_index=True), whole_customers
    )
    # An arbitrary slice equals the same customers of the one-shot frame.
    part_transactions, part_customers = generate_demo(
        customers, 2, seed=11, end_date="2025-12-31", first_customer=4_990, count=20
    )
    expected_ids = [f"C{i:07d}" for i in range(4_990, 5_010)]
    assert part_customers["customer_id"].tolist() == expected_ids
    expected = whole_transactions[whole_transactions["customer_id"].isin(expected_ids)]
    pd.testing.assert_frame_equal(part_transactions, expected.reset_index(drop=True))


# --- Schema ----------------------------------------------------------------------------------


def test_transactions_follow_the_canonical_schema(demo):
    transactions, _ = demo
    assert list(transactions.columns) == list(TRANSACTION_COLUMNS)
    for column, dtype in TRANSACTION_COLUMNS.items():
        assert transactions[column].dtype == dtype, column
    validated = validate_transactions(transactions, source="demo")
    pd.testing.assert_frame_equal(validated, transactions)
    assert transactions["order_id"].str.fullmatch(r"[OR]\d{13}").all()
    assert transactions["customer_id"].str.fullmatch(r"C\d{7}").all()
    # order_id identifies one row: one purchase per O id, at most one return per purchase.
    assert transactions["order_id"].is_unique
    for column in ("revenue", "cost", "cost_to_serve"):
        cents = transactions[column].to_numpy() * 100
        assert np.allclose(cents, np.round(cents), atol=1e-6), f"{column} not rounded to cents"


def test_customer_table_schema_and_segments(demo):
    transactions, customers = demo
    assert list(customers.columns) == list(CUSTOMER_COLUMNS)
    for column, dtype in CUSTOMER_COLUMNS.items():
        assert customers[column].dtype == dtype, column
    validate_customers(customers)
    assert customers["customer_id"].tolist() == [f"C{i:07d}" for i in range(5000)]
    assert set(customers["region"]) == {"North", "South", "East", "West", "International"}
    assert set(customers["channel"]) == {"Online", "Store", "Marketplace"}
    assert set(customers["customer_type"]) == {"Consumer", "Small business", "Enterprise"}
    assert customers["customer_name"].notna().all() and customers["customer_name"].str.len().min() > 3
    assert set(transactions["customer_id"]) == set(customers["customer_id"])


# --- Time ------------------------------------------------------------------------------------


def test_span_is_whole_years_ending_on_end_date():
    assert demo_span(4, "2026-09-30") == (date(2022, 10, 1), date(2026, 9, 30))
    assert demo_span(1, "2024-02-29") == (date(2023, 3, 1), date(2024, 2, 29))
    assert demo_span(2, date(2025, 12, 31)) == (date(2024, 1, 1), date(2025, 12, 31))


def test_no_transaction_outside_the_span_and_last_quarter_complete(demo):
    transactions, customers = demo
    ordered_at = transactions["ordered_at"]
    assert ordered_at.min() >= START
    assert ordered_at.max() < END + pd.Timedelta(days=1)
    assert customers["acquired_at"].min() >= START
    # Data runs to the last day: each of the last quarter's weeks has orders.
    last_quarter = ordered_at[ordered_at >= pd.Timestamp("2026-07-01")]
    assert last_quarter.dt.normalize().max() == END
    assert last_quarter.dt.isocalendar().week.nunique() >= 13


def test_long_spans_stay_bounded():
    # 30 years: purchase-rate trends are capped, so no customer explodes into millions of orders.
    transactions, customers = generate_demo(2000, 30, seed=1, end_date="2026-09-30")
    assert transactions["ordered_at"].min() >= pd.Timestamp("1996-10-01")
    assert transactions["ordered_at"].max() < END + pd.Timedelta(days=1)
    assert transactions.groupby("customer_id").size().max() < 5_000
    assert customers["acquired_at"].dt.year.nunique() == 31


def test_orders_have_plausible_times_of_day(demo, purchases):
    _, customers = demo
    hours = purchases["ordered_at"].dt.hour
    assert hours.nunique() >= 18  # not all at midnight
    store_ids = customers.loc[customers["channel"] == "Store", "customer_id"]
    store_hours = purchases.loc[purchases["customer_id"].isin(store_ids), "ordered_at"]
    assert store_hours.dt.hour.between(9, 19).all()


def test_acquired_at_is_the_first_purchase(demo, purchases):
    _, customers = demo
    first = purchases.groupby("customer_id")["ordered_at"].min()
    assert (first.loc[customers["customer_id"]].to_numpy() == customers["acquired_at"].to_numpy()).all()


def test_arrivals_grow_and_peak_in_q4(demo, purchases):
    _, customers = demo
    arrivals = customers["acquired_at"].dt.year
    assert (customers["acquired_at"] >= pd.Timestamp("2025-10-01")).sum() > 1.5 * (
        customers["acquired_at"] < pd.Timestamp("2023-10-01")
    ).sum()
    assert arrivals.nunique() == 5
    revenue = purchases.groupby(purchases["ordered_at"].dt.to_period("Q"))["revenue"].sum()
    for year in (2023, 2024, 2025):
        q4 = revenue[pd.Period(f"{year}Q4")]
        assert q4 > revenue[pd.Period(f"{year}Q3")] and q4 > revenue[pd.Period(f"{year + 1}Q1")]


# --- Returns ---------------------------------------------------------------------------------


def test_returns_are_negative_and_follow_a_purchase_of_the_same_customer(demo, purchases):
    transactions, _ = demo
    returns = transactions[transactions["is_return"]]
    assert (purchases[["revenue", "cost", "quantity"]] > 0).all().all()
    assert (returns[["revenue", "cost", "quantity"]] < 0).all().all()
    assert (transactions["cost_to_serve"] >= 0).all()
    assert returns["order_id"].str.startswith("R").all() and purchases["order_id"].str.startswith("O").all()
    original = purchases.set_index("order_id").loc["O" + returns["order_id"].str.slice(1)]
    assert (original["customer_id"].to_numpy() == returns["customer_id"].to_numpy()).all()
    gap = returns["ordered_at"].to_numpy() - original["ordered_at"].to_numpy()
    assert (gap >= np.timedelta64(1, "D")).all()
    assert (-returns["revenue"].to_numpy() <= original["revenue"].to_numpy() + 1e-9).all()
    assert (-returns["quantity"].to_numpy() <= original["quantity"].to_numpy()).all()
    assert (-returns["cost"].to_numpy() <= original["cost"].to_numpy() + 0.01).all()


# --- Referrals -------------------------------------------------------------------------------


def test_referrers_are_earlier_existing_customers(demo):
    _, customers = demo
    referred = customers[customers["referred_by"].notna()]
    acquired = customers.set_index("customer_id")["acquired_at"]
    assert referred["referred_by"].isin(customers["customer_id"]).all()
    assert (referred["referred_by"] != referred["customer_id"]).all()
    assert (acquired.loc[referred["referred_by"]].to_numpy() < referred["acquired_at"].to_numpy()).all()
    assert 0.15 <= len(referred) / len(customers) <= 0.25
    # A few advocates refer many; most referrers refer one.
    per_referrer = referred["referred_by"].value_counts()
    assert per_referrer.iloc[0] >= 10 and per_referrer.median() == 1


def test_referral_notes_are_few_and_name_the_referrer(demo):
    _, customers = demo
    noted = customers[customers["referral_note"].notna()]
    assert 3 <= len(noted) <= 50
    assert noted["referred_by"].notna().all()
    for note, referrer in zip(noted["referral_note"], noted["referred_by"]):
        assert referrer in note and note.endswith((".", "week."))


# --- Statistics ------------------------------------------------------------------------------


def test_volumes_and_behaviour_are_plausible(demo, purchases):
    transactions, customers = demo
    assert 60_000 <= len(transactions) <= 120_000
    orders = purchases.groupby("customer_id").size()
    assert 0.10 <= (orders == 1).mean() <= 0.35  # one-and-done customers
    assert orders.max() >= 100  # heavy buyers exist
    return_share = transactions["is_return"].sum() / len(purchases)
    assert 0.05 <= return_share <= 0.08
    full = purchases.set_index("order_id")["revenue"]
    returns = transactions[transactions["is_return"]]
    is_full = -returns["revenue"].to_numpy() == full.loc["O" + returns["order_id"].str.slice(1)].to_numpy()
    assert 0.3 <= is_full.mean() <= 0.7  # both full and partial returns


def test_costs_and_profitability_are_plausible(demo, purchases):
    transactions, customers = demo
    channel = purchases["customer_id"].map(customers.set_index("customer_id")["channel"])
    cogs_share = purchases.groupby(channel)["cost"].sum() / purchases.groupby(channel)["revenue"].sum()
    assert cogs_share.between(0.55, 0.70).all()
    assert cogs_share["Online"] < cogs_share["Store"] < cogs_share["Marketplace"]
    last_year = transactions[transactions["ordered_at"] >= pd.Timestamp("2025-10-01")]
    margin = (last_year["revenue"] - last_year["cost"] - last_year["cost_to_serve"]).groupby(
        last_year["customer_id"]
    ).sum()
    unprofitable = margin < 0
    assert 0.08 <= unprofitable.mean() <= 0.25
    revenue = last_year.groupby("customer_id")["revenue"].sum()
    # Unprofitable customers are small ones; the top 1 % carry a large share of revenue (whales).
    assert revenue[unprofitable].median() < revenue[~unprofitable].median() / 3
    top = revenue.sort_values(ascending=False)
    assert 0.10 <= top.head(len(top) // 100).sum() / top.sum() <= 0.45


def test_customers_move_between_quarters(demo):
    transactions, customers = demo
    quarter = transactions["ordered_at"].dt.to_period("Q")
    by_quarter = transactions.groupby(["customer_id", quarter])["revenue"].sum().unstack()
    previous, current = by_quarter[pd.Period("2026Q2")], by_quarter[pd.Period("2026Q3")]
    both = previous.notna() & current.notna()
    stopped = (previous.notna() & current.isna()).sum()
    increased = (both & (current > previous * 1.05)).sum()
    decreased = (both & (current < previous * 0.95)).sum()
    new = (customers["acquired_at"] >= pd.Timestamp("2026-07-01")).sum()
    reactivated = (previous.isna() & current.notna()).sum() - new
    for count in (stopped, increased, decreased, new, reactivated):
        assert count >= 0.05 * both.sum()


# --- load_demo and errors --------------------------------------------------------------------


def test_load_demo_accounts_for_every_row(demo):
    data = load_demo(DemoSource(customers=5000, years=4, seed=7))
    assert isinstance(data, SourceData)
    pd.testing.assert_frame_equal(data.transactions, demo[0])
    assert data.quality.rows_in == len(demo[0]) and data.quality.rows_used == len(demo[0])
    assert data.quality.revenue_in_cents == to_cents(demo[0]["revenue"])
    assert data.quality.rows_excluded == 0
    assert data.description == "demo retailer: 5,000 customers, 4 years, seed 7"
    small = load_demo(DemoSource(customers=1, years=1, seed=3, end_date="2025-12-31"))
    assert small.description == "demo retailer: 1 customer, 1 year, seed 3"
    assert small.customers["customer_id"].tolist() == ["C0000000"]
    assert small.customers["referred_by"].isna().all()  # nobody earlier to refer them


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0, "years": 4}, "at least one customer"),
        ({"customers": 10, "years": 0}, "at least one year"),
        ({"customers": 10, "years": 4, "end_date": "2026-13-01"}, "is not a date"),
        ({"customers": 10, "years": 4, "first_customer": 10}, "outside 0..9"),
        ({"customers": 10, "years": 4, "first_customer": 5, "count": 6}, "outside 1..5"),
    ],
)
def test_bad_parameters_raise_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message) as error:
        generate_demo(**kwargs)
    assert error.value.fix


# --- generate-demo command -------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_generate_demo_command_streams_chunks_to_files(tmp_path, capsys, file_format):
    from cxpipeline.cli import main

    status = main([
        "generate-demo", "--customers", "300", "--years", "2", "--seed", "5", "--end-date", "2025-06-30",
        "--format", file_format, "--chunk-customers", "120", "--out", str(tmp_path),
    ])
    assert status == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"customers.{file_format}", f"transactions.{file_format}"]
    expected_transactions, expected_customers = generate_demo(300, 2, seed=5, end_date="2025-06-30")
    if file_format == "parquet":
        transactions = pd.read_parquet(tmp_path / "transactions.parquet")
        customers = pd.read_parquet(tmp_path / "customers.parquet")
    else:
        transactions = validate_transactions(pd.read_csv(tmp_path / "transactions.csv"))
        customers = pd.read_csv(tmp_path / "customers.csv", dtype="string")
        customers["acquired_at"] = pd.to_datetime(customers["acquired_at"]).astype("datetime64[us]")
    pd.testing.assert_frame_equal(transactions, expected_transactions)
    pd.testing.assert_frame_equal(customers, expected_customers)


def test_generate_demo_command_rejects_bad_input(tmp_path, capsys):
    from cxpipeline.cli import main

    status = main(["generate-demo", "--customers", "0", "--out", str(tmp_path)])
    assert status == 2
    assert "at least one customer" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
