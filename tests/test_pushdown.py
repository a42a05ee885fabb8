"""Canonical Parquet aggregated in DuckDB gives exactly what the pandas file source gives."""

from __future__ import annotations

import pandas as pd
import pytest

from cxpipeline import pipeline
from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import config_from_dict
from cxpipeline.periods import comparison_period, parse_period
from cxpipeline.sources import pushdown_kind
from cxpipeline.sources.parquet import parquet_fast_path
from cxpipeline.sources import load_source
from cxpipeline.sources.demo import generate_demo
from tests.conftest import assert_same_artifacts

PERIOD = parse_period("2026-Q2")
IDENTITY = {c: c for c in ("order_id", "customer_id", "ordered_at", "revenue", "cost", "cost_to_serve",
                           "quantity", "is_return")}


def _odd_rows(transactions: pd.DataFrame) -> pd.DataFrame:
    """Demo rows plus one of each thing the file source cleans or excludes."""
    first = transactions.iloc[0]
    extra = pd.DataFrame([
        {**first, "order_id": "DUP1", "revenue": 12.5},                       # kept ...
        {**first, "order_id": "DUP1", "revenue": 12.5},                       # ... exact duplicate
        {**first, "order_id": "N1", "customer_id": None},                     # missing customer id
        {**first, "order_id": "N2", "customer_id": "  "},                     # blank customer id
        {**first, "order_id": "N3", "customer_id": "null"},                   # null token
        {**first, "order_id": "Z1", "revenue": 0.001},                        # zero to the cent
        {**first, "order_id": "S1", "customer_id": " C0000003 "},             # padded id
        {**first, "order_id": "F1", "customer_id": "17850.0", "revenue": 9.99},  # float-looking id
        {**first, "order_id": None, "revenue": 3.25},                         # no order id: row-<n>
        {**first, "order_id": "W1", "revenue": 8.0, "quantity": -1.0, "is_return": False},  # sign
        {**first, "order_id": "T1", "ordered_at": pd.NaT},                    # no date
        {**first, "order_id": "NAN", "revenue": float("nan")},                # no amount
    ])
    frame = pd.concat([transactions, extra], ignore_index=True)
    return frame.astype({"order_id": "string", "customer_id": "string", "ordered_at": "datetime64[us]",
                         "is_return": bool})


@pytest.fixture(scope="module", params=["whole orders", "an order spanning months"])
def parquet_file(request, tmp_path_factory):
    transactions, customers = generate_demo(400, 3, seed=5)
    frame = _odd_rows(transactions)
    if request.param == "an order spanning months":
        # Two lines of one order in different months: the order-level shortcut would count it
        # once per quarter but must count it in both months, so the line-level queries run.
        first = frame.iloc[0]
        span = pd.DataFrame([{**first, "order_id": "SPAN", "ordered_at": pd.Timestamp("2026-04-30 23:00")},
                             {**first, "order_id": "SPAN", "ordered_at": pd.Timestamp("2026-05-01 01:00")}])
        frame = pd.concat([frame, span.astype(frame.dtypes.to_dict())], ignore_index=True)
    folder = tmp_path_factory.mktemp("canonical")
    frame.to_parquet(folder / "transactions.parquet", index=False)
    customers.to_parquet(folder / "customers.parquet", index=False)
    return folder


def _config(folder, pack_id: str):
    return config_from_dict({
        "pack_id": pack_id,
        "source": {"kind": "file", "path": str(folder / "transactions.parquet"), "columns": IDENTITY,
                   "customers_path": str(folder / "customers.parquet"),
                   "customer_columns": {c: c for c in ("customer_id", "region", "channel", "customer_type",
                                                       "referred_by", "customer_name")}},
    })


def test_canonical_parquet_is_aggregated_in_duckdb(parquet_file):
    assert pushdown_kind(_config(parquet_file, "x")) == "parquet"
    renamed = config_from_dict({"source": {"kind": "file", "path": str(parquet_file / "transactions.parquet"),
                                           "columns": {**IDENTITY, "revenue": "amount"}}})
    assert parquet_fast_path(renamed.source) is None  # a mapping needs the pandas reader
    # so do the readings only the pandas reader does: cost from profit, customers from their order
    base = _config(parquet_file, "x").source
    with_profit = base.model_copy(update={"columns": base.columns.model_copy(update={"cost": None,
                                                                                   "profit": "cost"})})
    assert parquet_fast_path(base) is not None and parquet_fast_path(with_profit) is None
    assert parquet_fast_path(base.model_copy(update={"fill_customer_from_order": True})) is None


def test_parquet_pushdown_equals_the_pandas_file_source(parquet_file, tmp_path):
    _compare_extracts(_config(parquet_file, "fast"), _config(parquet_file, "slow"), PERIOD, tmp_path)
    a = tmp_path / "fast" / PERIOD.label
    dq_fast = read_json(a / "data_quality.json")
    reasons = {r["reason"]: r["rows"] for r in dq_fast["excluded_by_reason"]}
    assert reasons["exact duplicate line"] == 1
    assert reasons["missing customer id"] == 3
    assert "zero amount" not in reasons  # a purchase worth 0 is kept, as in the file source
    assert any("zero amount and are kept" in note for note in dq_fast["notes"])
    assert reasons["unparseable date"] == 1
    assert reasons["non-numeric amount"] == 1
    panel = read_table(a, "panel")
    assert {"C0000003", "17850"} <= set(panel["customer_id"])


def test_orders_are_grouped_once_unless_an_order_spans_months(parquet_file):
    from cxpipeline.sources.parquet import extract_parquet

    result = extract_parquet(parquet_file / "transactions.parquet", period=PERIOD,
                             comparison=comparison_period(PERIOD, "previous"), segment_columns=[], customers=None)
    spanning = "SPAN" in set(pd.read_parquet(parquet_file / "transactions.parquet")["order_id"].dropna())
    assert result.method == ("lines" if spanning else "orders")


def test_no_usable_rows_is_an_input_error(parquet_file, tmp_path):
    from cxpipeline.errors import InputError
    from cxpipeline.sources.parquet import extract_parquet

    early = parse_period("2020-Q1")
    with pytest.raises(InputError, match="No usable transactions before the end of 2020-Q1"):
        extract_parquet(parquet_file / "transactions.parquet", period=early,
                        comparison=comparison_period(early, "previous"), segment_columns=[], customers=None)


def _compare_extracts(config_fast, config_slow, period, root) -> None:
    """Parquet pushdown and pandas reader give the same artifacts, metrics and accounting."""
    pipeline.extract(config_fast, period, root)
    pipeline.extract(config_slow, period, root, data=load_source(config_slow))
    for config in (config_fast, config_slow):
        pipeline.compute_metrics(config, period, root)
    a, b = root / config_fast.pack_id / period.label, root / config_slow.pack_id / period.label
    assert_same_artifacts(a, b)
    assert not list(a.glob(".extract-*")), "the staging folder is removed"


def test_partitions_of_customers_give_the_same_artifacts(parquet_file, tmp_path, monkeypatch):
    """Customers split into partitions of ~500 rows (several files, appended in key order)."""
    from cxpipeline.sources import parquet

    monkeypatch.setattr(parquet, "PARTITION_ROWS", 500)
    _compare_extracts(_config(parquet_file, "parts"), _config(parquet_file, "whole"), PERIOD, tmp_path)
    assert len(pd.read_parquet(parquet_file / "transactions.parquet")) > 5 * 500  # several partitions


def _clean_parquet(folder, transactions: pd.DataFrame, customers: pd.DataFrame):
    transactions.to_parquet(folder / "transactions.parquet", index=False)
    customers.to_parquet(folder / "customers.parquet", index=False)
    return folder


@pytest.mark.parametrize("case", ["one line per order", "an order of two lines", "an exact duplicate line"])
def test_duplicate_scan_runs_only_where_duplicates_can_exist(case, tmp_path, monkeypatch):
    """Clean data with one line per order and nothing after the period: no duplicate can exist
    and the scan is skipped; a two-line order makes it run (finding none); an exact duplicate
    makes it run and the accounting and panels are redone without it. All equal the pandas path."""
    from cxpipeline.sources import parquet

    monkeypatch.setattr(parquet, "PARTITION_ROWS", 2_000)
    transactions, customers = generate_demo(150, 2, seed=11)
    transactions = transactions.astype({"order_id": "string", "customer_id": "string"})
    first = transactions.iloc[[0]]
    if case == "an order of two lines":
        transactions = pd.concat([transactions, first.assign(revenue=4.75, quantity=1.0)], ignore_index=True)
    if case == "an exact duplicate line":
        transactions = pd.concat([transactions, first], ignore_index=True)
    folder = _clean_parquet(tmp_path, transactions, customers)
    period = parse_period("2026-Q3")  # the demo ends on 2026-09-30: no row after the period
    result = parquet.extract_parquet(folder / "transactions.parquet", period=period,
                                      comparison=comparison_period(period, "previous"), segment_columns=[],
                                      customers=None)
    assert result.scanned_duplicates == (case != "one line per order")
    assert result.quality.by_reason.get("exact duplicate line", {}).get("rows", 0) == (
        1 if case == "an exact duplicate line" else 0)
    _compare_extracts(_config(folder, "fast"), _config(folder, "slow"), period, tmp_path / "out")
