"""Shared test fixtures. Integration tests use the real services on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
import pytest

IS_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def transactions_frame(rows: list[tuple], *, segment: str | None = None) -> pd.DataFrame:
    """Canonical transactions from (customer_id, ordered_at, revenue[, order_id]) tuples.

    Negative revenue is a return. Cost is 60 % of revenue, cost to serve 2.00 per line.
    """
    records = []
    for i, row in enumerate(rows):
        customer, at, revenue = row[:3]
        order = row[3] if len(row) > 3 else f"o{i}"
        records.append(
            {
                "order_id": order,
                "customer_id": customer,
                "ordered_at": pd.Timestamp(at),
                "revenue": float(revenue),
                "cost": round(0.6 * float(revenue), 2),
                "cost_to_serve": 2.0,
                "quantity": 1.0 if revenue >= 0 else -1.0,
                "is_return": revenue < 0,
            }
        )
    frame = pd.DataFrame.from_records(records)
    return frame.astype(
        {"order_id": "string", "customer_id": "string", "ordered_at": "datetime64[us]", "is_return": bool}
    )


def require_service(name: str, reason: str) -> None:
    """Skip outside CI when a service is absent; under CI=true fail instead (never skip)."""
    if IS_CI:
        pytest.fail(f"{name} is required under CI but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards; yields its name.

    The name carries the process id so parallel test workers never share one.
    """
    import psycopg

    name = f"{prefix}_{os.getpid()}"
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", str(exc))
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


#: The data_quality.json keys two engines must agree on (the source and fingerprint differ).
SAME_DQ_KEYS = ("rows_in", "rows_used", "rows_excluded", "revenue_in", "revenue_used", "revenue_excluded",
                "excluded_by_reason", "first_ordered_at", "last_ordered_at", "count_customers", "count_panel_rows",
                "tie_out")


def assert_same_artifacts(a: Path, b: Path, *, required: tuple[str, ...] = ()) -> None:
    """Two artifact folders of one period hold the same tables, frame for frame, and agree on
    the accounting of data_quality.json (:data:`SAME_DQ_KEYS`); ``required`` tables must be there."""
    import pandas as pd

    from cxpipeline.artifacts import read_json, read_table

    names = sorted(p.stem for p in a.glob("*.parquet"))
    assert set(required) <= set(names)
    assert names == sorted(p.stem for p in b.glob("*.parquet"))
    for name in names:
        pd.testing.assert_frame_equal(read_table(a, name), read_table(b, name), obj=f"{a.name} {name}")
    dq_a, dq_b = read_json(a / "data_quality.json"), read_json(b / "data_quality.json")
    for key in SAME_DQ_KEYS:
        assert dq_a[key] == dq_b[key], key


def wait_for(condition: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` have passed; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def pdf_pages(pdf: Path, layout: bool = True) -> list[str]:
    """A PDF's text per page as poppler's ``pdftotext`` reads it, whitespace collapsed: in layout
    mode (a table row stays on one line) or in reading order (a column's sentences stay whole)."""
    import shutil
    import subprocess

    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: `make` installs it")
    args = ["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [" ".join(page.split()) for page in text.split("\f")][:-1]  # the text ends with a form feed


@pytest.fixture(scope="module")
def smtp_sink():
    """A real SMTP server on localhost (aiosmtpd, tests/smtp_fixtures.py) for a module's tests."""
    from tests.smtp_fixtures import start_smtp_server

    server = start_smtp_server()
    yield server
    server.stop()


# Test modules that drive real components end to end (Airflow, SMTP, PostgreSQL, the CLI as a
# subprocess, WeasyPrint renders of whole packs). `make test-fast` leaves them out: the unit
# lane is the metric, reading, model and architecture tests, in well under a minute.
INTEGRATION_MODULES = {
    "test_airflow_scheduler", "test_bad_inputs", "test_bench_quick", "test_compose", "test_concurrency",
    "test_dags", "test_delivery", "test_demo_command", "test_faults", "test_metrics_pack",
    "test_object_storage", "test_outbound", "test_pushdown", "test_report",
    "test_report_model_pages", "test_report_security", "test_security", "test_sql_source", "test_units",
    "test_email", "test_board_edition", "test_trend_report", "test_spark_source", "test_published_links",
    "test_weekly_sources", "test_public_exports", "test_adbc_source",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.stem in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
