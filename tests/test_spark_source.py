"""Spark source on a local Spark started by this module: the extract aggregated in Spark gives
exactly the DuckDB path's artifacts on the demo retailer, table by table; a session killed
mid-extract is a clear error and leaves no artifacts."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cxpipeline import pipeline
from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import config_from_dict
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import parse_period
from cxpipeline.sources import pushdown_kind
from cxpipeline.sources.demo import generate_demo
from tests.conftest import assert_same_artifacts, require_service

PERIOD = parse_period("2026-Q2")
IDENTITY = {c: c for c in ("order_id", "customer_id", "ordered_at", "revenue", "cost", "cost_to_serve",
                           "quantity", "is_return")}
CUSTOMER_COLUMNS = ("customer_id", "customer_name", "region", "channel", "customer_type", "acquired_at",
                    "referred_by", "referral_note")  # the demo table's order
MASTER = "local[2]"
STREAM_BATCH_ROWS = 500


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def spark():
    """One local Spark for the module (JVM start-up is paid once): a Spark Connect server on a
    free port, reached as ``sc://localhost:<port>`` like a managed cluster, whose driver also
    serves the classic ``master: local[2]`` route. Yields the Connect URL."""
    if shutil.which("java") is None:
        require_service("Java (for a local Spark)", "no java on PATH")
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    port = _free_port()
    conf = (SparkConf().setMaster(MASTER).set("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
            .set("spark.connect.grpc.binding.port", str(port)).set("spark.ui.enabled", "false")
            .set("spark.sql.shuffle.partitions", "8")
            # small Arrow batches, so the demo's results stream in several (see the streaming test)
            .set("spark.sql.execution.arrow.maxRecordsPerBatch", str(STREAM_BATCH_ROWS)))
    server = SparkSession.builder.config(conf=conf).getOrCreate()
    server.sparkContext.setLogLevel("FATAL")
    yield f"sc://localhost:{port}"
    try:
        server.stop()
    except Exception:  # the last test kills the driver JVM
        pass


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    transactions, customers = generate_demo(300, 3, seed=7)
    folder = tmp_path_factory.mktemp("spark_demo")
    transactions.to_parquet(folder / "transactions.parquet", index=False)
    customers.to_parquet(folder / "customers.parquet", index=False)
    return folder


def _spark_config(folder, pack_id: str = "spark", **engine):
    return config_from_dict({"pack_id": pack_id, "source": {
        "kind": "spark", **(engine or {"master": MASTER}), "path": str(folder / "transactions.parquet"),
        "customers_path": str(folder / "customers.parquet")}})


def _duckdb_config(folder, pack_id: str = "duckdb"):
    return config_from_dict({"pack_id": pack_id, "source": {
        "kind": "file", "path": str(folder / "transactions.parquet"), "columns": IDENTITY,
        "customers_path": str(folder / "customers.parquet"),
        "customer_columns": {c: c for c in CUSTOMER_COLUMNS}}})


@pytest.mark.parametrize("route", ["spark connect", "local master"])
def test_spark_source_equals_the_duckdb_path_table_by_table(route, spark, demo_files, tmp_path):
    engine = {"remote": spark} if route == "spark connect" else {"master": MASTER}
    spark_config, duck_config = _spark_config(demo_files, **engine), _duckdb_config(demo_files)
    assert pushdown_kind(spark_config) == "spark" and pushdown_kind(duck_config) == "parquet"
    for config in (spark_config, duck_config):
        pipeline.extract(config, PERIOD, tmp_path)
        pipeline.compute_metrics(config, PERIOD, tmp_path)
    a, b = tmp_path / "spark" / PERIOD.label, tmp_path / "duckdb" / PERIOD.label
    # the extract and every metric table
    assert_same_artifacts(a, b, required=("panel", "panel_monthly", "cadence", "customers"))
    dq_spark = read_json(a / "data_quality.json")
    assert dq_spark["source"].startswith("Spark Connect sc://" if route == "spark connect" else "Spark master")
    assert not list(a.glob(".extract-*")), "the staging folder is removed"


def test_spark_connect_results_stream_to_parquet_batch_by_batch(spark, demo_files, tmp_path, monkeypatch):
    """Over Spark Connect the panels arrive as several Arrow batches, each written as it comes
    (never one table of the whole result), and the files equal the DuckDB path's."""
    from cxpipeline.sources import spark as spark_source

    streamed: list[int] = []
    real = spark_source.write_arrow_stream

    def counting(tables, target, dtypes):
        def each():
            for table in tables:
                assert table.num_rows <= STREAM_BATCH_ROWS
                streamed.append(table.num_rows)
                yield table

        return real(each(), target, dtypes)

    monkeypatch.setattr(spark_source, "write_arrow_stream", counting)
    config, duck = _spark_config(demo_files, pack_id="streamed", remote=spark), _duckdb_config(demo_files, "duck")
    for c in (config, duck):
        pipeline.extract(c, PERIOD, tmp_path)
    a, b = tmp_path / "streamed" / PERIOD.label, tmp_path / "duck" / PERIOD.label
    panel_rows = sum(len(read_table(a, name)) for name in ("panel", "panel_monthly", "cadence"))
    assert sum(streamed) == panel_rows and len(streamed) > 3, streamed  # several batches per result
    for name in ("panel", "panel_monthly", "cadence"):
        pd.testing.assert_frame_equal(read_table(a, name), read_table(b, name), obj=name)


def test_missing_path_is_an_input_error(spark, tmp_path):
    config = _spark_config(tmp_path, pack_id="missing")
    with pytest.raises(InputError, match="Spark cannot read the transactions") as info:
        pipeline.extract(config, PERIOD, tmp_path / "out")
    assert "source.table / source.path" in info.value.fix


def test_remote_url_comes_from_the_environment(monkeypatch):
    from cxpipeline.sources.spark import redact_remote, resolve_remote

    source = config_from_dict({"source": {"kind": "spark", "table": "sales.transactions",
                                          "remote": "sc://dbc.example:443/;token=${CX_TEST_TOKEN};x=1"}}).source
    with pytest.raises(ConfigError, match="CX_TEST_TOKEN"):
        resolve_remote(source)
    monkeypatch.setenv("CX_TEST_TOKEN", "dapi-secret")
    url = resolve_remote(source)
    assert url == "sc://dbc.example:443/;token=dapi-secret;x=1"
    assert "dapi-secret" not in redact_remote(url)
    with pytest.raises(Exception, match="exactly one of 'remote'"):
        config_from_dict({"source": {"kind": "spark", "table": "t", "remote": "sc://h:15002", "master": "local"}})


def test_killed_session_mid_extract_is_a_clear_error_and_leaves_no_artifacts(spark, demo_files, tmp_path,
                                                                            monkeypatch):
    """The driver JVM is killed after the accounting, while the panels are read (runs last: it
    ends the module's Spark)."""
    from pyspark import SparkContext

    from cxpipeline.sources import spark as spark_source

    calls = []
    real = spark_source._to_arrow

    def dying(session, sql):
        calls.append(sql)
        if len(calls) == 3:  # customers, accounting, then the panel: the driver JVM is killed
            process = SparkContext._gateway.proc  # the JVM this module started
            process.kill()
            process.wait(timeout=30)
        return real(session, sql)

    monkeypatch.setattr(spark_source, "_to_arrow", dying)
    # The local-master route: a Connect client instead retries a lost server per its retry policy
    # (minutes) before it gives up with the same error.
    config = _spark_config(demo_files, pack_id="killed")
    with pytest.raises(InputError, match="The Spark session failed while reading the transactions for 2026-Q2") as info:
        pipeline.extract(config, PERIOD, tmp_path)
    assert "Nothing was written" in info.value.fix
    folder = tmp_path / "killed" / PERIOD.label
    left = sorted(p.name for p in folder.rglob("*")) if folder.exists() else []
    assert not [name for name in left if name.endswith((".parquet", ".json", ".csv"))], left
