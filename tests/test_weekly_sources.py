"""Weekly packs (ISO weeks) across a year boundary from the engines that aggregate the extract
themselves: the SQL source on the real local PostgreSQL and the canonical-Parquet pushdown in
DuckDB each give, table by table, what the pandas file source gives for 2026-W53 (28 Dec 2026 -
3 Jan 2027) and 2027-W01 (4-10 Jan 2027), compared with the previous week and with the same week
last year (docs/airflow.md, "Weekly packs").

The data is the demo retailer up to 17 January 2027 plus orders on the weeks' edges (the last
second of a Sunday, a Monday's first instant, New Year's Eve and Day), so a week cut one day or
one hour off, or by calendar year instead of ISO year, changes a table.
"""

from __future__ import annotations


import pandas as pd
import pytest

from cxpipeline import pipeline
from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import config_from_dict
from cxpipeline.periods import parse_period
from cxpipeline.sources import load_source, pushdown_kind
from cxpipeline.sources.demo import generate_demo
from tests.conftest import assert_same_artifacts, scratch_database

END = "2027-01-17"
DEMO = {"customers": 500, "years": 2, "seed": 13}
WEEKS = ["2026-W53", "2027-W01"]
TRANSACTION_COLUMNS = ["order_id", "customer_id", "ordered_at", "revenue", "cost", "cost_to_serve", "quantity",
                       "is_return"]
CUSTOMER_COLUMNS = ["customer_id", "customer_name", "region", "channel", "customer_type", "acquired_at",
                    "referred_by", "referral_note"]
# (order id, customer, ordered at, revenue): each on an edge of the weeks compared
EDGES = [("E1", "C0000001", "2026-12-27 23:59:59", 11.0),    # Sunday of 2026-W52, last second
         ("E2", "C0000001", "2026-12-28 00:00:00", 13.0),    # 2026-W53 starts
         ("E3", "C0000002", "2026-12-31 23:30:00", 17.0),    # New Year's Eve: 2026-W53
         ("E4", "C0000002", "2027-01-01 00:00:00", 19.0),    # New Year's Day: still 2026-W53
         ("E5", "C0000003", "2027-01-03 23:59:59", 23.0),    # 2026-W53, last second
         ("E6", "C0000003", "2027-01-04 00:00:00", 29.0),    # 2027-W01 starts
         ("E7", "C0000004", "2027-01-10 23:59:59", 31.0),    # 2027-W01, last second
         ("E8", "C0000004", "2027-01-11 00:00:00", 37.0),    # 2027-W02: after both weeks
         ("E9", "C0000005", "2025-12-29 00:00:00", 41.0)]    # 2026-W01 starts (2025-W52 ends the day before)


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions, customers = generate_demo(DEMO["customers"], DEMO["years"], DEMO["seed"], END)
    first = transactions.iloc[0]
    edges = pd.DataFrame([{**first, "order_id": o, "customer_id": c, "ordered_at": pd.Timestamp(t), "revenue": r,
                           "cost": round(r * 0.4, 2), "cost_to_serve": 1.0, "quantity": 1.0, "is_return": False}
                          for o, c, t, r in EDGES])
    transactions = pd.concat([transactions, edges.astype(transactions.dtypes.to_dict())], ignore_index=True)
    assert set(edges["customer_id"]) <= set(customers["customer_id"])
    return transactions[TRANSACTION_COLUMNS], customers[CUSTOMER_COLUMNS]


@pytest.fixture(scope="module")
def frames():
    return _frames()


@pytest.fixture(scope="module")
def files(frames, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weekly_canonical")
    transactions, customers = frames
    transactions.to_parquet(folder / "transactions.parquet", index=False)
    customers.to_parquet(folder / "customers.parquet", index=False)
    return folder


def _file_config(folder, pack_id: str, comparison: str) -> object:
    return config_from_dict({
        "pack_id": pack_id, "period": {"type": "week", "comparison": comparison},
        "source": {"kind": "file", "path": str(folder / "transactions.parquet"),
                   "columns": {c: c for c in TRANSACTION_COLUMNS},
                   "customers_path": str(folder / "customers.parquet"),
                   "customer_columns": {c: c for c in CUSTOMER_COLUMNS}},
    })


def _pandas_extract(config, period, root):
    """The file source read by pandas (no pushdown): the reference."""
    pipeline.extract(config, period, root, data=load_source(config))
    return root / config.pack_id / period.label


REQUIRED = ("panel", "panel_monthly", "cadence", "customers")


def _edges_in_panel(folder, period) -> None:
    """The reference itself puts each edge order in its ISO week."""
    panel = read_table(folder, "panel")
    weekly = panel.loc[panel["period_start"] == pd.Timestamp(period.start)].set_index("customer_id")["revenue"]
    demo_only = _frames_without_edges()
    expected = {"2026-W53": {"C0000001": 13.0, "C0000002": 17.0 + 19.0, "C0000003": 23.0},
                "2027-W01": {"C0000003": 29.0, "C0000004": 31.0}}[period.label]
    for customer, revenue in expected.items():
        base = demo_only.get((period.label, customer), 0.0)
        assert round(float(weekly.get(customer, 0.0)) - base, 2) == revenue, (period.label, customer)


def _frames_without_edges() -> dict:
    transactions, _ = generate_demo(DEMO["customers"], DEMO["years"], DEMO["seed"], END)
    weeks = {w: parse_period(w) for w in WEEKS}
    out = {}
    for label, period in weeks.items():
        inside = transactions.loc[(transactions["ordered_at"] >= pd.Timestamp(period.start))
                                  & (transactions["ordered_at"] < pd.Timestamp(period.end))]
        for customer, revenue in inside.groupby("customer_id")["revenue"].sum().items():
            out[(label, customer)] = float(revenue)
    return out


@pytest.mark.parametrize("comparison", ["previous", "year_ago"])
@pytest.mark.parametrize("week", WEEKS)
def test_weekly_parquet_pushdown_equals_the_pandas_file_source(files, tmp_path, week, comparison):
    period = parse_period(week)
    fast, slow = _file_config(files, "fast", comparison), _file_config(files, "slow", comparison)
    assert pushdown_kind(fast) == "parquet"
    pipeline.extract(fast, period, tmp_path)
    reference = _pandas_extract(slow, period, tmp_path)
    _edges_in_panel(reference, period)
    assert_same_artifacts(tmp_path / "fast" / week, reference, required=REQUIRED)
    for config in (fast, slow):  # and the metric tables computed from them
        pipeline.compute_metrics(config, period, tmp_path)
    assert_same_artifacts(tmp_path / "fast" / week, reference, required=REQUIRED)


# --- the SQL source on the local PostgreSQL ------------------------------------------------------

@pytest.fixture(scope="module")
def database(frames):
    with scratch_database("cx_weekly_test") as name:
        yield _loaded(f"postgresql://postgres@127.0.0.1:5432/{name}", frames)


def _loaded(url: str, frames) -> str:
    """``url``'s database with the demo retailer and the week-edge orders: the file's rows exactly."""
    import psycopg

    from cxpipeline.commands.load_demo import load_demo_into_postgres

    load_demo_into_postgres(url, DEMO["customers"], DEMO["years"], DEMO["seed"], END)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO transactions (order_id, customer_id, ordered_at, revenue, cost, cost_to_serve, quantity,"
            " is_return) VALUES (%s, %s, %s, %s, %s, %s, 1, false)",
            [(o, c, t, r, round(r * 0.4, 2), 1.0) for o, c, t, r in EDGES])
        # the warehouse holds exactly the rows the file holds
        count, revenue = conn.execute("SELECT count(*), sum(revenue) FROM transactions").fetchone()
    transactions, _ = frames
    assert count == len(transactions) and round(float(revenue), 2) == round(transactions["revenue"].sum(), 2)
    return url


@pytest.mark.parametrize("comparison", ["previous", "year_ago"])
@pytest.mark.parametrize("week", WEEKS)
def test_weekly_sql_source_equals_the_pandas_file_source(database, files, tmp_path, week, comparison):
    period = parse_period(week)
    warehouse = config_from_dict({"pack_id": "sql", "period": {"type": "week", "comparison": comparison},
                                  "source": {"kind": "sql", "url": database}})
    assert pushdown_kind(warehouse) == "sql"
    pipeline.extract(warehouse, period, tmp_path)
    reference = _pandas_extract(_file_config(files, "file", comparison), period, tmp_path)
    _edges_in_panel(reference, period)
    assert_same_artifacts(tmp_path / "sql" / week, reference, required=REQUIRED)
    for pack_id in ("sql", "file"):
        config = warehouse if pack_id == "sql" else _file_config(files, "file", comparison)
        pipeline.compute_metrics(config, period, tmp_path)
    assert_same_artifacts(tmp_path / "sql" / week, reference, required=REQUIRED)
    assert read_json(tmp_path / "sql" / week / "metrics.json")["headline"] == \
        read_json(reference / "metrics.json")["headline"]
