"""Faults with real components: a render killed with SIGKILL, an SMTP server that is down or
rejects, PostgreSQL dropping the connection mid-extract. Nothing half-done is ever picked up,
nothing is marked sent that was not, and a rerun completes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cxpipeline.artifacts import read_json
from cxpipeline.config import load_config
from cxpipeline.delivery import SmtpSettings, read_ledger, send_pack
from cxpipeline.errors import CheckError, DeliveryError
from tests.conftest import PG_ADMIN, scratch_database
from tests.smtp_fixtures import free_port, start_smtp_server
from tests.test_concurrency import CLI, assert_consistent_pack, month_revenue, run_cli, write_case

PERIOD = "2024-06"


@pytest.fixture(scope="module")
def built_pack(tmp_path_factory) -> Path:
    """One complete, checked pack (in-process run_pack)."""
    from cxpipeline.pipeline import run_pack

    base = tmp_path_factory.mktemp("built")
    result = run_pack(load_config(write_case(base / "case")), PERIOD, base / "out")
    return result.folder


def _send(folder: Path, smtp: SmtpSettings, recipients: list[str], sleeps: list[float]):
    return send_pack(folder / "board_pack.pdf", recipients, period_label=PERIOD, pack_id="conc",
                     summary=read_json(folder / "metrics.json"), smtp=smtp, retries=3,
                     backoff_seconds=0.01, sleep=sleeps.append)


def test_sigkill_mid_render_leaves_no_pdf_to_pick_up_and_the_rerun_completes(tmp_path, built_pack):
    out = tmp_path / "out"
    folder = out / "conc" / PERIOD
    shutil.copytree(built_pack, folder)  # an older, complete pack of this period is in place
    assert read_json(folder / "checks.json")["is_deliverable"] is True
    config = write_case(tmp_path / "case", factor=2.0)  # the rerun has new data
    run = run_cli(config, PERIOD, out)
    seen = ""
    for line in run.stderr:  # progress lines; kill once the render stage is under way
        seen += line
        if line.rstrip().endswith("render ..."):
            time.sleep(1.0)
            run.send_signal(signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, seen
    assert "render done" not in seen
    # The old pack was withdrawn when the new extract started; the new one never completed.
    assert not (folder / "board_pack.pdf").exists()
    assert not (folder / "checks.json").exists()
    with pytest.raises(CheckError, match="never checked"):
        _send(folder, SmtpSettings(host="127.0.0.1", port=free_port(), from_address="pack@example.com"),
              ["ceo@example.com"], [])
    rerun = subprocess.run([str(CLI), "run", "--config", str(config), "--period", PERIOD, "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert_consistent_pack(folder, PERIOD, month_revenue(PERIOD, 2.0))


def test_smtp_server_down_retries_then_fails_and_marks_nothing_sent(built_pack):
    server = start_smtp_server()
    port = server.port
    server.stop()  # nothing listens on the port any more
    sleeps: list[float] = []
    smtp = SmtpSettings(host="127.0.0.1", port=port, from_address="pack@example.com", timeout=2)
    report = _send(built_pack, smtp, ["ceo@example.com", "cfo@example.com"], sleeps)
    assert report.sent == [] and sorted(report.failed) == ["ceo@example.com", "cfo@example.com"]
    # One short retry for the first recipient, then the outage is left to the task's own retry
    # (docs/airflow.md): the error is transient, so Airflow tries the delivery again later.
    assert len(sleeps) == 1, "it retried once before giving up"
    with pytest.raises(DeliveryError) as raised:
        report.raise_for_failures()
    assert raised.value.transient
    ledger = read_ledger(report.ledger_path)
    assert all(row["result"] != "sent" for row in ledger), ledger


def test_smtp_server_rejecting_fails_only_those_recipients(built_pack, tmp_path):
    folder = tmp_path / "pack"
    shutil.copytree(built_pack, folder)
    server = start_smtp_server()
    try:
        server.handler.reject = {"gone@example.com"}
        server.handler.transient_failures = 2  # 451 twice, then accepted: retried, sent once
        smtp = SmtpSettings(host="127.0.0.1", port=server.port, from_address="pack@example.com", timeout=5)
        sleeps: list[float] = []
        report = _send(folder, smtp, ["ceo@example.com", "gone@example.com"], sleeps)
    finally:
        server.stop()
    assert report.sent == ["ceo@example.com"] and list(report.failed) == ["gone@example.com"]
    assert server.handler.recipients() == ["ceo@example.com"], "exactly one message delivered"
    sent_rows = [r for r in read_ledger(report.ledger_path) if r["result"] == "sent"]
    assert [r["recipient"] for r in sent_rows] == ["ceo@example.com"]
    with pytest.raises(DeliveryError):
        report.raise_for_failures()


def test_database_dropping_mid_extract_is_a_clear_error_with_no_partial_artifacts(tmp_path):
    """The CLI reads from PostgreSQL through a view that sleeps; the test terminates the
    backend while the query runs (pg_terminate_backend)."""
    import psycopg

    from tests.test_concurrency import ROWS

    admin = PG_ADMIN
    with scratch_database("cx_faults_test") as DB:
        with psycopg.connect(f"{admin.replace('dbname=postgres', 'dbname=' + DB)}", autocommit=True) as conn:
            conn.execute("CREATE TABLE raw (order_id text, customer_id text, ordered_at timestamp, "
                         "revenue double precision, region text)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO raw VALUES (%s, %s, %s, %s, 'North')",
                                [(f"o{i}", c, d, a) for i, (c, d, a) in enumerate(ROWS)])
            # Every read of the view takes 5 s: time enough to cut the connection mid-query.
            conn.execute("CREATE VIEW transactions AS SELECT order_id, customer_id, ordered_at, revenue, "
                         "0.0::float8 AS cost, 0.0::float8 AS cost_to_serve, 1.0::float8 AS quantity, "
                         "revenue < 0 AS is_return, region FROM raw, (SELECT pg_sleep(5)) AS slow")
        config = tmp_path / "config.yaml"
        config.write_text(f"pack_id: pg\nsource: {{kind: sql, url: 'postgresql://postgres@127.0.0.1:5432/{DB}', "
                          "customers_table: null}\nperiod: {type: month}\nsegments: [region]\noutput: {root: out}\n")
        run = subprocess.Popen([str(CLI), "run", "--config", str(config), "--period", PERIOD],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = 0
        deadline = time.monotonic() + 60
        with psycopg.connect(admin, autocommit=True) as conn:
            while not killed and time.monotonic() < deadline and run.poll() is None:
                killed = conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()",
                    [DB]).fetchone()[0]
                time.sleep(0.05)
        stdout, stderr = run.communicate(timeout=120)
        assert killed >= 1, stderr
        assert run.returncode == 2, stderr
        assert "Traceback" not in stderr
        message = stderr[stderr.index("error: "):]
        assert "where:" in message and "fix:" in message and f"127.0.0.1:5432/{DB}" in message
        folder = tmp_path / "out" / "pg" / PERIOD
        written = sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.exists() else []
        assert written == [], f"partial artifacts: {written}"
