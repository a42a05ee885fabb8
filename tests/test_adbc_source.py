"""Warehouses read through ADBC drivers (cxpipeline/sources/adbc.py).

DuckDB runs here: a database file holding the demo retailer, read with DuckDB's ADBC driver, gives
the same artifacts as the demo source, with the panels streamed as Arrow batches. Snowflake and
BigQuery cannot run here: their real drivers are reached up to the login, which fails with a
clear error that never shows the password. Their SQL is checked in tests/test_dialects.py.
"""

from __future__ import annotations

import pytest

from cxpipeline import pipeline
from cxpipeline.config import config_from_dict
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import parse_period
from cxpipeline.sources import adbc, load_source
from cxpipeline.sources.sql import canonical_relation, sql_last_day
from tests.conftest import assert_same_artifacts

DEMO = {"customers": 600, "years": 3, "seed": 11}
PERIOD = parse_period("2026-Q2")
ARTIFACTS = ("panel.parquet", "panel_monthly.parquet", "cadence.parquet", "customers.parquet", "data_quality.json")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A DuckDB database file with the demo retailer typed as a warehouse types it: amounts as
    DECIMAL, order times as TIMESTAMPTZ."""
    import duckdb

    from cxpipeline.sources.demo import generate_demo

    transactions, customers = generate_demo(DEMO["customers"], DEMO["years"], DEMO["seed"])
    path = tmp_path_factory.mktemp("adbc") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("lines", transactions)
        con.register("people", customers)
        con.execute("""CREATE TABLE transactions AS SELECT order_id, customer_id,
                       CAST(ordered_at AS TIMESTAMPTZ) AS ordered_at, CAST(revenue AS DECIMAL(14, 2)) AS revenue,
                       CAST(cost AS DECIMAL(14, 2)) AS cost, CAST(cost_to_serve AS DECIMAL(14, 2)) AS cost_to_serve,
                       CAST(quantity AS DECIMAL(14, 3)) AS quantity, is_return FROM lines""")
        con.execute("CREATE TABLE customers AS SELECT * FROM people")
    return path


def _config(url: str, **source):
    return config_from_dict({"pack_id": "warehouse", "source": {"kind": "sql", "url": url, **source}})


def test_duckdb_warehouse_gives_the_demo_sources_artifacts_streamed_as_arrow(warehouse, tmp_path, monkeypatch):
    streamed = []
    original = adbc.write_batches

    def spy(session, sql, target, dtypes):
        streamed.append(target.name)
        return original(session, sql, target, dtypes)

    monkeypatch.setattr(adbc, "write_batches", spy)
    demo = config_from_dict({"pack_id": "demo", "source": {"kind": "demo", **DEMO}})
    warehouse_config = _config(f"duckdb:///{warehouse}")
    for config in (demo, warehouse_config):
        pipeline.extract(config, PERIOD, tmp_path)
        pipeline.compute_metrics(config, PERIOD, tmp_path)
    assert sorted(streamed) == ["cadence.parquet", "panel.parquet", "panel_monthly.parquet"]
    assert_same_artifacts(tmp_path / "demo" / PERIOD.label, tmp_path / "warehouse" / PERIOD.label,
                          required=("panel", "panel_monthly", "cadence", "customers", "bridge", "ledger"))
    # The last order date (the default period) and the whole-table read agree with the demo too.
    demo_data = load_source(demo)
    assert sql_last_day(warehouse_config.source) == demo_data.transactions["ordered_at"].max().date()
    loaded = load_source(warehouse_config)
    assert len(loaded.transactions) == len(demo_data.transactions)
    assert round(loaded.transactions["revenue"].sum(), 2) == round(demo_data.transactions["revenue"].sum(), 2)
    assert len(loaded.customers) == len(demo_data.customers)


def test_a_connection_lost_mid_extract_is_a_clear_error_and_writes_nothing(warehouse, tmp_path, monkeypatch):
    original = adbc.write_batches

    def drop_after_first(session, sql, target, dtypes):
        if target.name != "panel.parquet":
            session.connection.close()  # the driver now refuses every statement
        return original(session, sql, target, dtypes)

    monkeypatch.setattr(adbc, "write_batches", drop_after_first)
    config = _config(f"duckdb:///{warehouse}")
    folder = pipeline.pack_folder(config, PERIOD, tmp_path)
    with pytest.raises(InputError, match="connection to the warehouse failed") as caught:
        pipeline.extract(config, PERIOD, tmp_path)
    assert "Nothing was written" in str(caught.value)
    assert not any((folder / name).exists() for name in ARTIFACTS)
    assert not list(folder.glob(".extract-*"))


def test_missing_table_and_missing_database_file(warehouse, tmp_path):
    with pytest.raises(InputError, match="query failed") as caught:
        pipeline.extract(_config(f"duckdb:///{warehouse}", transactions_table="no_such_table"), PERIOD, tmp_path)
    assert "docs/warehouse.md" in str(caught.value)
    missing = tmp_path / "typo.duckdb"
    with pytest.raises(InputError, match="no DuckDB database file"):
        pipeline.extract(_config(f"duckdb:///{missing}"), PERIOD, tmp_path)
    assert not missing.exists()  # reading never creates a database


def test_snowflake_is_read_by_its_driver_and_a_failed_login_hides_the_password(tmp_path):
    # The real Snowflake driver tries to log in at ACCOUNT.snowflakecomputing.com; this machine
    # cannot reach it (no such account either), so the extract stops at the login.
    url = "snowflake://reporter:pa55-w0rd@cx-no-such-account/SALES/ANALYTICS?warehouse=REPORTING&loginTimeout=5"
    config = _config(url, transactions_table="CX_TRANSACTIONS")
    with pytest.raises(InputError, match="connection to the warehouse failed") as caught:
        pipeline.extract(config, PERIOD, tmp_path)
    message = str(caught.value)
    assert "cx-no-such-account" in message and "pa55-w0rd" not in message
    assert "snowflake://reporter:***@cx-no-such-account" in message
    assert not (pipeline.pack_folder(config, PERIOD, tmp_path) / "panel.parquet").exists()


def test_bigquery_is_read_by_its_driver_with_the_key_file_from_the_url(tmp_path):
    key = tmp_path / "missing-key.json"
    with pytest.raises(InputError, match="connection to the warehouse failed") as caught:
        pipeline.extract(_config(f"bigquery://acme-analytics/sales?credentials_path={key}"), PERIOD, tmp_path)
    assert "missing-key.json" in str(caught.value)  # the driver opened the file the URL names


def test_connect_arguments_per_engine(warehouse):
    assert adbc.connect_arguments("snowflake://u:p@acct/DB/SCH?warehouse=WH&role=R") == {
        "uri": "snowflake://u:p@acct/DB/SCH?warehouse=WH&role=R"}
    assert adbc.connect_arguments("bigquery://proj/ds?credentials_path=/k.json&location=EU") == {"db_kwargs": {
        "adbc.bigquery.sql.project_id": "proj", "adbc.bigquery.sql.dataset_id": "ds",
        "adbc.bigquery.sql.location": "EU",
        "adbc.bigquery.sql.auth_type": "adbc.bigquery.sql.auth_type.json_credential_file",
        "adbc.bigquery.sql.auth_credentials": "/k.json"}}
    assert adbc.connect_arguments("bigquery://proj") == {"db_kwargs": {"adbc.bigquery.sql.project_id": "proj"}}
    assert adbc.connect_arguments(f"duckdb:///{warehouse}") == {"path": str(warehouse)}
    with pytest.raises(InputError, match="no project"):
        adbc.connect_arguments("bigquery:///ds")
    assert adbc.adbc_driver("postgresql://u@h/db") is None
    assert adbc.adbc_driver("snowflake://u@acct").engine == "snowflake"


def test_a_driver_that_is_not_installed_says_what_to_install():
    missing = adbc.AdbcDriver("snowflake", "cx_no_such_driver.dbapi", "adbc-driver-snowflake", "snowflake", '"')
    with pytest.raises(ConfigError, match="pip install adbc-driver-snowflake"):
        adbc._load_driver(missing)


def test_upper_case_names_are_read_as_the_extract_names_them(warehouse):
    # Snowflake answers unquoted aliases in upper case; mixed case is someone's chosen name.
    with adbc.adbc_session(f"duckdb:///{warehouse}") as session:
        frame = session.read('SELECT 1 AS "COUNT_ROWS", 2 AS "Sales Region"')
    assert list(frame.columns) == ["count_rows", "Sales Region"]
    assert frame.iloc[0].tolist() == [1, 2]


def test_a_duckdb_file_is_read_only_and_open_to_several_readers(warehouse):
    url = f"duckdb:///{warehouse}"
    with adbc.adbc_session(url) as one, adbc.adbc_session(url) as two:  # two runs read at once
        assert one.read("SELECT count(*) AS n FROM transactions")["n"][0] == two.read(
            "SELECT count(*) AS n FROM transactions")["n"][0] > 0
        with pytest.raises(Exception, match="read-only|Cannot execute"):
            one.read("CREATE TABLE written AS SELECT 1 AS x")


def test_canonical_columns_and_segments_match_whatever_their_case():
    columns = ["ORDER_ID", "CUSTOMER_ID", "ORDERED_AT", "REVENUE", "COST", "COST_TO_SERVE", "QUANTITY",
               "IS_RETURN", "REGION", "Sales Channel"]
    relation, present = canonical_relation('"T"', columns, ["region", "Sales Channel", "tier"])
    assert present == ["region", "Sales Channel"]
    assert """NULLIF(trim(CAST("REGION" AS VARCHAR)), '') AS "region\"""" in relation
    assert """NULLIF(trim(CAST("Sales Channel" AS VARCHAR)), '') AS "Sales Channel\"""" in relation
    with pytest.raises(InputError, match="lacks canonical column.*revenue"):
        canonical_relation('"T"', [c for c in columns if c != "REVENUE"], [])


def test_identifiers_are_quoted_only_when_the_engine_needs_it(warehouse):
    with adbc.adbc_session(f"duckdb:///{warehouse}") as session:
        assert session.table("transactions", "main") == "main.transactions"
        assert session.table('Odd "Name"') == '"Odd ""Name"""'


def test_a_relative_database_path_is_found_beside_the_config_file(warehouse, tmp_path, monkeypatch):
    import shutil

    from cxpipeline.config import load_config
    from cxpipeline.sources import pushdown_last_day

    folder = tmp_path / "configs"
    folder.mkdir()
    shutil.copyfile(warehouse, folder / "sales.duckdb")
    (folder / "pack.yaml").write_text("pack_id: beside\nsource:\n  kind: sql\n  url: duckdb:///sales.duckdb\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_config(folder / "pack.yaml")
    assert pushdown_last_day(config) == sql_last_day(_config(f"duckdb:///{warehouse}").source)
    assert adbc.local_database("duckdb:///sales.duckdb", folder) == f"duckdb:///{folder / 'sales.duckdb'}"
    for unchanged in ("duckdb:////abs/x.duckdb", "duckdb:///md:sales", "snowflake://u@acct/DB"):
        assert adbc.local_database(unchanged, folder) == unchanged
