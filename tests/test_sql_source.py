"""SQL source on the real local PostgreSQL: pushdown gives the same pack as the demo source,
exclusions are computed in SQL, the read is one snapshot, and a dropped connection is a clear
error with no partial artifacts."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from cxpipeline import pipeline
from cxpipeline.artifacts import read_json, read_table
from cxpipeline.cli import main as cli_main
from cxpipeline.config import config_from_dict
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import comparison_period, parse_period
from cxpipeline.sources import sql as sql_source
from tests.conftest import require_service, scratch_database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_NAME = f"cx_sql_test_{os.getpid()}"
URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
DEMO = {"customers": 600, "years": 3, "seed": 11}
PERIOD = parse_period("2026-Q2")
ARTIFACTS = ("panel.parquet", "panel_monthly.parquet", "cadence.parquet", "customers.parquet", "data_quality.json")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def database():
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", str(exc))
    _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    _admin(f"CREATE DATABASE {DB_NAME}")
    # The real command: generate the demo retailer and COPY it in.
    assert cli_main(["load-demo", "--db", URL, "--customers", str(DEMO["customers"]), "--years",
                     str(DEMO["years"]), "--seed", str(DEMO["seed"])]) == 0
    yield URL
    _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def _sql_config(url: str, **source) -> object:
    return config_from_dict({"pack_id": "sql", "source": {"kind": "sql", "url": url, **source}})


def _demo_config() -> object:
    return config_from_dict({"pack_id": "demo", "source": {"kind": "demo", **DEMO}})


def test_load_demo_schema_and_counts(database):
    import psycopg

    from cxpipeline.sources.demo import generate_demo

    transactions, customers = generate_demo(DEMO["customers"], DEMO["years"], DEMO["seed"])
    with psycopg.connect(database) as conn:
        count, revenue = conn.execute("SELECT count(*), sum(revenue) FROM transactions").fetchone()
        assert count == len(transactions)
        assert round(float(revenue), 2) == round(transactions["revenue"].sum(), 2)
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == len(customers)
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'transactions'")}
        assert {"transactions_ordered_at_idx", "transactions_customer_idx"} <= indexes
    # Loading again without --replace is refused with a clear message, and changes nothing.
    assert cli_main(["load-demo", "--db", database, "--customers", "5"]) == 2


def test_sql_source_gives_the_same_artifacts_as_the_demo_source(database, tmp_path):
    demo, warehouse = _demo_config(), _sql_config(database)
    for config in (demo, warehouse):
        pipeline.extract(config, PERIOD, tmp_path)
        pipeline.compute_metrics(config, PERIOD, tmp_path)
    a, b = tmp_path / "demo" / PERIOD.label, tmp_path / "sql" / PERIOD.label
    names = sorted(p.stem for p in a.glob("*.parquet"))
    assert {"panel", "panel_monthly", "cadence", "customers", "bridge", "ledger"} <= set(names)
    assert names == sorted(p.stem for p in b.glob("*.parquet"))
    for name in names:
        pd.testing.assert_frame_equal(read_table(a, name), read_table(b, name), obj=name)
    dq_demo, dq_sql = read_json(a / "data_quality.json"), read_json(b / "data_quality.json")
    differing = {k for k in dq_demo if dq_demo[k] != dq_sql[k]}
    assert differing == {"source", "input_fingerprint"}
    assert read_json(a / "metrics.json")["headline"] == read_json(b / "metrics.json")["headline"]
    # The after-period rows were counted in SQL, and the accounting reconciles to the cent.
    assert dq_sql["rows_in"] == dq_sql["rows_used"] + dq_sql["rows_excluded"]
    assert round(dq_sql["revenue_in"] - dq_sql["revenue_used"] - dq_sql["revenue_excluded"], 2) == 0
    assert [r["reason"] for r in dq_sql["excluded_by_reason"]] == ["after the reporting period"]


def test_run_pack_default_period_reads_only_the_last_date(database, monkeypatch):
    # run_pack must not load transactions for a SQL source: load_source is never called.
    monkeypatch.setattr(pipeline, "load_source", lambda config: pytest.fail("transactions were loaded"))
    from cxpipeline.sources import pushdown_last_day

    assert str(pushdown_last_day(_sql_config(database))) == "2026-09-30"


def test_run_pack_with_a_period_does_not_scan_for_the_last_date(database, tmp_path, monkeypatch):
    # The last order date only picks the default period; in SQL it is a scan of the whole table.
    monkeypatch.setattr(pipeline, "pushdown_last_day", lambda *a, **k: pytest.fail("scanned for the last date"))
    result = pipeline.run_pack(_sql_config(database), PERIOD.label, tmp_path)
    assert result.period == PERIOD and result.pdf_path.is_file()


@pytest.fixture()
def odd_table(database):
    """A hand-built table with every SQL exclusion reason (amounts in cents noted)."""
    _execute(
        "DROP TABLE IF EXISTS odd_lines",
        "CREATE TABLE odd_lines (order_id text, customer_id text, ordered_at timestamp, revenue numeric(14,2),"
        " cost numeric(14,2), cost_to_serve numeric(14,2), quantity numeric(14,3), is_return boolean, country text)",
        """INSERT INTO odd_lines VALUES
           ('A1', 'c1', '2026-04-02 10:00', 100.10, 60, 2, 1, false, 'UK'),
           ('A2', 'c1', '2026-05-02 10:00', 50.00, 30, 2, 1, false, 'FR'),
           ('A3', 'c1', '2026-06-10 10:00', 25.00, 15, 2, 1, false, 'UK'),
           ('R1', 'c1', '2026-06-12 10:00', -20.00, -12, 3, -1, true, 'UK'),
           ('B1', ' c2 ', '2026-01-05 09:00', 40.00, 24, 2, 1, false, 'DE'),
           ('B2', 'c2', '2026-04-05 09:00', 10.01, 6, 2, 1, false, 'DE'),
           ('X1', NULL, '2026-04-07 09:00', 70.00, 40, 2, 1, false, 'UK'),
           ('X2', '   ', '2026-04-07 09:00', 5.00, 3, 2, 1, false, 'UK'),
           ('Z1', 'c3', '2026-04-08 09:00', 0.00, 0, 2, 1, false, 'UK'),
           ('L1', 'c3', '2026-07-01 00:00', 300.00, 200, 2, 1, false, 'UK'),
           ('L2', 'c1', '2026-08-01 00:00', 12.34, 7, 2, 1, false, 'UK')""",
    )
    return database


def test_exclusions_are_computed_in_sql(odd_table, tmp_path):
    config = config_from_dict({
        "pack_id": "odd", "segments": ["country"],
        "source": {"kind": "sql", "url": odd_table, "transactions_table": "odd_lines", "customers_table": None},
    })
    pipeline.extract(config, PERIOD, tmp_path)
    folder = tmp_path / "odd" / PERIOD.label
    dq = read_json(folder / "data_quality.json")
    assert dq["rows_in"] == 11 and dq["rows_used"] == 7  # Z1, worth 0, is a purchase (kept)
    assert dq["revenue_in"] == 592.45
    assert {r["reason"]: (r["rows"], r["revenue"]) for r in dq["excluded_by_reason"]} == {
        "missing customer id": (2, 75.0),
        "after the reporting period": (2, 312.34),
    }
    assert any(note.startswith("1 row(s) have a zero amount and are kept") for note in dq["notes"])
    assert dq["revenue_used"] == 205.11
    assert (dq["first_ordered_at"], dq["last_ordered_at"]) == ("2026-01-05", "2026-08-01")
    # The tie-out, computed in the database: 2026-Q2 held 8 rows worth 240.11, of which the two
    # without a customer (75.00) were excluded; 2026-Q1 held only B1.
    this, previous = dq["tie_out"]
    assert (this["period"], this["rows_source"], this["revenue_source"], this["rows_used"], this["revenue_used"]) \
        == ("2026-Q2", 8, 240.11, 6, 165.11)
    assert this["excluded"] == [{"reason": "missing customer id", "rows": 2, "revenue": 75.0}]
    assert not this["is_revenue_equal"]
    assert (previous["period"], previous["rows_source"], previous["revenue_used"], previous["is_equal"]) \
        == ("2026-Q1", 1, 40.0, True)
    panel = read_table(folder, "panel")
    assert panel[["customer_id", "period_start", "revenue", "gross_revenue", "returns", "count_orders",
                  "count_returns"]].astype({"period_start": str}).values.tolist() == [
        ["c1", "2026-04-01", 155.10, 175.10, 20.0, 3, 1],
        ["c2", "2026-01-01", 40.0, 40.0, 0.0, 1, 0],
        ["c2", "2026-04-01", 10.01, 10.01, 0.0, 1, 0],
        ["c3", "2026-04-01", 0.0, 0.0, 0.0, 1, 0],  # a free first purchase makes a customer
    ]
    assert panel["revenue"].sum() == pytest.approx(dq["revenue_used"], abs=1e-9)
    # A segment that lives on the transactions: each customer's most frequent value.
    customers = read_table(folder, "customers").set_index("customer_id")["country"].to_dict()
    assert customers == {"c1": "UK", "c2": "DE", "c3": "UK"}

    # With exclude_zero_amounts the zero line is excluded and counted instead.
    strict = config_from_dict({
        "pack_id": "odd-strict", "segments": ["country"],
        "source": {"kind": "sql", "url": odd_table, "transactions_table": "odd_lines", "customers_table": None,
                   "exclude_zero_amounts": True},
    })
    pipeline.extract(strict, PERIOD, tmp_path)
    dq = read_json(tmp_path / "odd-strict" / PERIOD.label / "data_quality.json")
    assert dq["rows_used"] == 6
    assert {r["reason"]: r["rows"] for r in dq["excluded_by_reason"]}["zero amount"] == 1


def test_customers_by_copy_equal_the_row_by_row_read(database, monkeypatch):
    """The customer table comes back by COPY (CSV parsed by pyarrow) exactly as row by row:
    digit ids keep their zeros, quotes, commas and line breaks survive, NULL is not ''."""
    _execute(
        "DROP TABLE IF EXISTS odd_customers",
        "CREATE TABLE odd_customers (customer_id text, customer_name text, region varchar(20), seats integer,"
        " credit numeric(10,2), is_vip boolean, acquired_at timestamp, score double precision)",
        """INSERT INTO odd_customers VALUES
           ('00123', 'Smith, "Jo"', 'North', 3, 10.50, true, '2024-01-31 10:00', 0.25),
           ('124', E'Line\nbreak', '', NULL, NULL, false, NULL, NULL),
           ('C9', NULL, NULL, 0, 0, NULL, '2025-06-01', 1e10)""",
    )
    source = _sql_config(database, customers_table="odd_customers").source
    with sql_source.snapshot(sql_source.resolve_url(source)) as conn:
        by_copy = sql_source._customers(conn, source, database)
        monkeypatch.setattr(sql_source, "_copy_to_frame", sql_source._read)
        by_rows = sql_source._customers(conn, source, database)
    _execute("DROP TABLE odd_customers")
    assert by_copy["customer_id"].tolist() == ["00123", "124", "C9"]
    assert by_copy.loc[0, "customer_name"] == 'Smith, "Jo"' and by_copy.loc[1, "customer_name"] == "Line\nbreak"
    assert by_copy.loc[1, "region"] == "" and pd.isna(by_copy.loc[2, "region"])
    pd.testing.assert_frame_equal(by_copy, by_rows, check_dtype=False)
    assert [str(t) for t in by_copy.dtypes] == [str(t) for t in by_rows.dtypes]


def test_as_of_bounds_the_snapshot(odd_table):
    source = config_from_dict({"source": {"kind": "sql", "url": odd_table, "transactions_table": "odd_lines",
                                          "customers_table": None, "as_of": "2026-05-01"}}).source
    result = sql_source.extract_sql(source, PERIOD, comparison_period(PERIOD, "previous"), [])
    assert result.quality.rows_in == 6  # rows ordered before 2026-05-01 only
    assert result.panel["revenue"].sum() == pytest.approx(100.10 + 40.0 + 10.01)
    assert any("2026-05-01" in note for note in result.quality.notes)


def test_the_read_is_one_consistent_snapshot(database, monkeypatch):
    """Rows committed by another session during the extract are invisible to all its queries."""
    original = sql_source.iter_query_chunks
    calls = {"n": 0}

    def concurrent_writer(conn, sql, chunk_rows=None):
        calls["n"] += 1
        if calls["n"] == 2:  # after the accounting query (the customers come by COPY), before the panel
            _execute("INSERT INTO transactions VALUES ('LATE', 'C0000001', '2026-05-05 12:00', 1000, 600, 5, 1, false)")
        yield from original(conn, sql, chunk_rows)

    monkeypatch.setattr(sql_source, "iter_query_chunks", concurrent_writer)
    try:
        result = sql_source.extract_sql(_sql_config(database).source, PERIOD,
                                        comparison_period(PERIOD, "previous"), [])
    finally:
        _execute("DELETE FROM transactions WHERE order_id = 'LATE'")
    assert calls["n"] >= 4  # accounting, panel, monthly panel, cadence
    used_cents = result.quality.revenue_used_cents
    assert round(result.panel["revenue"].sum() * 100) == used_cents
    assert round(result.panel_monthly["revenue"].sum() * 100) == used_cents
    assert "LATE" not in set(result.panel["customer_id"])  # sanity: ids, not orders, are in the panel
    demo_quality = pipeline._extract_in_pandas(
        __import__("cxpipeline.sources", fromlist=["load_source"]).load_source(_demo_config()),
        _demo_config(), PERIOD, comparison_period(PERIOD, "previous")).quality
    assert result.quality.rows_in == demo_quality.rows_in  # the late row was not seen at all


def test_streamed_results_run_at_once_in_the_reading_snapshot(database, tmp_path, monkeypatch):
    """The panel, monthly panel and cadence stream on their own connections at the same time, each
    in the snapshot the reading transaction exported: a row committed after the accounting query
    (before any stream starts) is seen by none of them."""
    import threading

    original = sql_source._copy_to_parquet
    seen = {"threads": set(), "backends": set(), "snapshots": set()}
    late_inserted = threading.Event()
    lock = threading.Lock()

    def spy(conn, sql, target, dtypes):
        with lock:
            if not late_inserted.is_set():  # committed by another session before any COPY runs
                _execute("INSERT INTO transactions VALUES "
                         "('LATE', 'C0000001', '2026-05-05 12:00', 1000, 600, 5, 1, false)")
                late_inserted.set()
            seen["threads"].add(threading.get_ident())
            seen["backends"].add(conn.connection.driver_connection.info.backend_pid)
        return original(conn, sql, target, dtypes)

    monkeypatch.setattr(sql_source, "_copy_to_parquet", spy)
    monkeypatch.setattr(sql_source, "_has_adbc", lambda: False)  # the COPY path (ADBC: the test below)
    config = _sql_config(database)
    try:
        pipeline.extract(config, PERIOD, tmp_path)
    finally:
        _execute("DELETE FROM transactions WHERE order_id = 'LATE'")
    assert late_inserted.is_set()
    assert len(seen["threads"]) == 3 and len(seen["backends"]) == 3  # one connection per result
    folder = pipeline.pack_folder(config, PERIOD, tmp_path)
    used_cents = read_json(folder / "data_quality.json")["revenue_used"] * 100
    assert round(read_table(folder, "panel")["revenue"].sum() * 100) == round(used_cents)
    assert round(read_table(folder, "panel_monthly")["revenue"].sum() * 100) == round(used_cents)
    # The same artifacts as an extract with nothing committed meanwhile.
    again = tmp_path / "again"
    pipeline.extract(config, PERIOD, again)
    for name in ("panel", "panel_monthly", "cadence"):
        pd.testing.assert_frame_equal(read_table(folder, name),
                                      read_table(pipeline.pack_folder(config, PERIOD, again), name), obj=name)


def test_killed_connection_gives_a_clear_error_and_no_partial_artifacts(database, tmp_path, monkeypatch):
    import psycopg

    config = _sql_config(database)
    folder = pipeline.pack_folder(config, PERIOD, tmp_path)
    original = sql_source._copy_to_parquet
    state = {}

    def killer(conn, sql, target, dtypes):
        # The results stream at the same time on their own connections: the monthly panel's
        # backend is killed while the other streams may be running or done.
        if target.name == "panel_monthly.parquet":
            assert target.parent.is_dir()
            pid = conn.connection.driver_connection.info.backend_pid
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                state["killed"] = admin.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid = %s", [DB_NAME, pid]).fetchone()[0]
        return original(conn, sql, target, dtypes)

    monkeypatch.setattr(sql_source, "_copy_to_parquet", killer)
    monkeypatch.setattr(sql_source, "_has_adbc", lambda: False)  # the COPY (CSV) fallback
    with pytest.raises(InputError) as caught:
        pipeline.extract(config, PERIOD, tmp_path)
    assert state["killed"] == 1
    message = str(caught.value)
    assert "connection to the warehouse failed" in message
    assert f"where: postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}" in message
    assert "Nothing was written" in message
    assert not any((folder / name).exists() for name in ARTIFACTS)
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".extract-*"))


def test_results_stream_as_arrow_through_adbc_in_the_shared_snapshot(database, tmp_path, monkeypatch):
    """The panels come back as Arrow batches (ADBC), equal to the COPY (CSV) path's, and a result
    connection killed mid-read is a clear error with no artifacts."""
    import threading

    assert sql_source._has_adbc()
    calls = []
    lock = threading.Lock()
    original = sql_source._adbc_to_parquet

    def spy(*args, **kwargs):
        with lock:
            if not calls:  # committed by another session before any result stream starts
                _execute("INSERT INTO transactions VALUES "
                         "('LATE', 'C0000001', '2026-05-05 12:00', 1000, 600, 5, 1, false)")
            calls.append(args[3].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(sql_source, "_adbc_to_parquet", spy)
    config = _sql_config(database)
    try:
        pipeline.extract(config, PERIOD, tmp_path / "adbc")
    finally:
        _execute("DELETE FROM transactions WHERE order_id = 'LATE'")
    assert sorted(calls) == ["cadence.parquet", "panel.parquet", "panel_monthly.parquet"]
    # The late row is in none of the results (the exported snapshot), so they equal a plain run.
    monkeypatch.setattr(sql_source, "_has_adbc", lambda: False)
    pipeline.extract(config, PERIOD, tmp_path / "copy")
    for name in ("panel", "panel_monthly", "cadence", "customers"):
        pd.testing.assert_frame_equal(read_table(pipeline.pack_folder(config, PERIOD, tmp_path / "adbc"), name),
                                      read_table(pipeline.pack_folder(config, PERIOD, tmp_path / "copy"), name),
                                      obj=name)
    monkeypatch.setattr(sql_source, "_has_adbc", lambda: True)
    # Each result connection's backend terminates itself inside the snapshot transaction.
    monkeypatch.setattr(sql_source, "RESULT_SETTINGS",
                        sql_source.RESULT_SETTINGS + ("SELECT pg_terminate_backend(pg_backend_pid())",))
    folder = pipeline.pack_folder(config, PERIOD, tmp_path / "killed")
    with pytest.raises(InputError, match="connection to the warehouse failed") as caught:
        pipeline.extract(config, PERIOD, tmp_path / "killed")
    assert "Nothing was written" in str(caught.value)
    assert not any((folder / name).exists() for name in ARTIFACTS)
    assert not list(folder.glob(".extract-*"))


def test_missing_table_and_unreachable_server_are_input_errors(database, tmp_path):
    with pytest.raises(InputError, match="query failed") as caught:
        pipeline.extract(_sql_config(database, transactions_table="no_such_table"), PERIOD, tmp_path)
    assert "docs/warehouse.md" in str(caught.value)
    with pytest.raises(InputError, match="connection to the warehouse failed"):
        pipeline.extract(_sql_config("postgresql://postgres@127.0.0.1:1/none"), PERIOD, tmp_path)


def test_url_resolution(monkeypatch):
    source = config_from_dict({"source": {"kind": "sql", "url": "postgresql://u:${CX_TEST_PW}@h/db"}}).source
    monkeypatch.setenv("CX_TEST_PW", "secret")
    assert sql_source.resolve_url(source) == "postgresql+psycopg://u:secret@h/db"
    assert "secret" not in sql_source.redact(sql_source.resolve_url(source))
    monkeypatch.delenv("CX_TEST_PW")
    with pytest.raises(ConfigError, match="CX_TEST_PW"):
        sql_source.resolve_url(source)
    by_conn = config_from_dict({"source": {"kind": "sql", "conn_id": "warehouse"}}).source
    with pytest.raises(ConfigError, match="Airflow connection"):
        sql_source.resolve_url(by_conn)
    # The DAG resolves the connection (Airflow writes postgres://) and passes the URL.
    assert sql_source.resolve_url(by_conn, "postgres://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    config = config_from_dict({"source": {"kind": "sql", "conn_id": "warehouse"}})
    applied = sql_source.with_url(config, "postgres://u@h:5432/db")
    assert sql_source.resolve_url(applied.source) == "postgresql+psycopg://u@h:5432/db"
    assert applied.source.conn_id == "warehouse" and config.source.url is None


def test_periods_start_at_the_businesss_midnight_in_the_warehouse(database, tmp_path):
    """A timestamptz column is cut at period.timezone's midnights: 23:30 UTC on 30 September is
    00:30 on 1 October in London (BST), so that order is in Q4 when the pack reports London time."""
    _execute(
        "DROP TABLE IF EXISTS zoned_lines",
        "CREATE TABLE zoned_lines (order_id text, customer_id text, ordered_at timestamptz, revenue numeric(14,2),"
        " cost numeric(14,2), cost_to_serve numeric(14,2), quantity numeric(14,3), is_return boolean)",
        """INSERT INTO zoned_lines VALUES
           ('A', 'c1', '2026-09-30 23:30:00+00', 10.00, 0, 0, 1, false),
           ('B', 'c2', '2026-09-30 22:30:00+00', 20.00, 0, 0, 1, false),
           ('C', 'c1', '2026-07-02 12:00:00+00', 5.00, 0, 0, 1, false)""",
    )
    def quarter_revenue(zone: str, label: str) -> dict:
        config = config_from_dict({
            "pack_id": f"zoned-{zone.replace('/', '-')}", "segments": [], "period": {"timezone": zone},
            "source": {"kind": "sql", "url": database, "transactions_table": "zoned_lines", "customers_table": None},
        })
        period = parse_period(label)
        pipeline.extract(config, period, tmp_path)
        panel = read_table(tmp_path / config.pack_id / period.label, "panel")
        inside = panel.loc[panel["period_start"] == pd.Timestamp(period.start)]
        return dict(zip(inside["customer_id"], inside["revenue"]))

    assert quarter_revenue("Europe/London", "2026-Q4") == {"c1": 10.0}  # 00:30 on 1 October, London
    assert quarter_revenue("Europe/London", "2026-Q3") == {"c1": 5.0, "c2": 20.0}  # 23:30 on 30 September
    assert quarter_revenue("UTC", "2026-Q3") == {"c1": 15.0, "c2": 20.0}  # in UTC both are in Q3


def test_a_segment_column_named_with_a_space(tmp_path):
    import psycopg

    with scratch_database("cx_sql_segment") as name:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('CREATE TABLE sales (order_id text, customer_id text, ordered_at timestamp, revenue numeric, '
                         'cost numeric, cost_to_serve numeric, quantity int, is_return boolean, "Sales Region" text)')
            conn.execute("INSERT INTO sales VALUES ('o1', 'a', '2026-04-02', 10, 0, 0, 1, false, 'North'), "
                         "('o2', 'a', '2026-05-02', 5, 0, 0, 1, false, 'North'), "
                         "('o3', 'b', '2026-04-03', 7, 0, 0, 1, false, 'South'), "
                         "('o4', 'b', '2026-01-03', 3, 0, 0, 1, false, 'South')")
        config = config_from_dict({"pack_id": "spaced", "segments": ["Sales Region"], "source": {
            "kind": "sql", "url": url, "transactions_table": "sales", "customers_table": None}})
        pipeline.extract(config, PERIOD, tmp_path)
    customers = read_table(tmp_path / "spaced" / PERIOD.label, "customers").set_index("customer_id")
    assert customers["Sales Region"].to_dict() == {"a": "North", "b": "South"}
