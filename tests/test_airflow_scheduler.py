"""A real Airflow: api-server + scheduler + dag-processor, LocalExecutor, metadata on PostgreSQL.

One Airflow serves the whole module (two pack files, two DAGs):

1. a run of the quarterly demo pack for a past quarter is triggered through the REST API; the
   test waits for it to succeed, then checks the PDF in the artifact folder, the published copy
   and the email the SMTP server (aiosmtpd, in this process) received;
2. a backfill of 8 past months of a small monthly pack (``tests/airflow_packs/``) is created
   through ``POST /api/v2/backfills`` with ``max_active_runs=8``: task runs of different months
   overlap in time, and each month still gets its own checked, published and emailed pack whose
   numbers match the source;
3. a weekly pack with units by region is triggered for 2026-W39: the scheduler runs
   the task group ``unit`` (``unit.pack`` -> ``unit.deliver``) mapped over the 5 regions the extract found, and each
   subscribed region gets its own pack.

The Airflow processes run in their own process group and are stopped at the end, whatever
happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from pypdf import PdfReader

from cxpipeline.config import load_config
from cxpipeline.publish import read_pointer, read_published
from cxpipeline.sources import load_source
from tests.airflow_fixtures import REPO, airflow_env
from tests.conftest import wait_for
from tests.smtp_fixtures import attachment_of, free_port, start_smtp_server

pytestmark = pytest.mark.slow

# One database per test process, so two checkouts testing on one machine never collide.
DATABASE = f"cx_airflow_test_{os.getpid()}"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DAG_ID = "cx_board_pack_demo_airflow"
# The backfill's pack: monthly, a small demo source, five cheap sections, one recipient.
BACKFILL_PACK = REPO / "tests" / "airflow_packs" / "monthly_backfill.yaml"
BACKFILL_DAG_ID = "cx_board_pack_monthly_backfill"
BACKFILL_MONTHS = [f"2025-{month:02d}" for month in range(1, 9)]
TASKS = ["extract", "validate", "metrics", "model", "render", "check", "publish", "deliver"]
# The mapped run's pack: weekly, units by region (5 regions in the demo), two pages.
UNITS_PACK = REPO / "tests" / "airflow_packs" / "weekly_units.yaml"
UNITS_DAG_ID = "cx_board_pack_weekly_units"


def _fresh_database() -> str:
    _drop_database()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"


def _drop_database() -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def _request(method: str, url: str, body: dict | None = None, token: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _wait(what: str, check, timeout: float, processes: subprocess.Popen, logs: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes.poll() is not None:
            pytest.fail(f"Airflow exited while waiting for {what}:\n{_tail(logs)}")
        try:
            result = check()
        except (OSError, urllib.error.URLError):
            result = None
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{_tail(logs)}")


def _finished_run(run_url: str, token: str, what: str, processes: subprocess.Popen,
                  logs: Path) -> tuple[str, list[dict]]:
    """Wait (up to 420 s) for a DAG run to succeed or fail; its state and task instances."""
    def finished():
        state = _request("GET", run_url, token=token)[1]["state"]
        return state if state in ("success", "failed") else None

    state = _wait(what, finished, 420, processes, logs)
    return state, _request("GET", f"{run_url}/taskInstances?limit=100", token=token)[1]["task_instances"]


def _tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def airflow_stack(tmp_path_factory):
    """One Airflow for the whole module (starting one costs ~40 s); the tests share it."""
    tmp_path = tmp_path_factory.mktemp("airflow")
    smtp = start_smtp_server()
    packs = tmp_path / "packs"
    packs.mkdir()
    shutil.copy(REPO / "examples" / "airflow" / "packs" / "demo.yaml", packs / "demo.yaml")
    shutil.copy(BACKFILL_PACK, packs / BACKFILL_PACK.name)
    shutil.copy(UNITS_PACK, packs / UNITS_PACK.name)
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({"admin": "admin"}))
    env = airflow_env(
        home,
        database=_fresh_database(),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API_AUTH__JWT_SECRET="cxpipeline-integration-test-" + "x" * 64,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW_CONN_SMTP_DEFAULT=(f"smtp://127.0.0.1:{smtp.port}?disable_ssl=true&disable_tls=true"
                                   "&from_email=board-packs%40example.com&timeout=10&retry_limit=0"),
        CXPIPELINE_PACKS_DIR=str(packs),
        CXPIPELINE_OUTPUT_ROOT=str(tmp_path / "out"),
        CXPIPELINE_ARTIFACT_URL=(tmp_path / "published").as_uri(),
        CXPIPELINE_START_DATE="2100-01-01",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    logs = tmp_path / "airflow.log"
    migrate = subprocess.run(["airflow", "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=180)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    script = (f"airflow api-server --port {port} --workers 1 & airflow scheduler & "
              "airflow dag-processor & wait")
    with open(logs, "w") as log_file:
        processes = subprocess.Popen(["bash", "-c", script], env=env, stdout=log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "smtp": smtp, "out": tmp_path / "out",
               "published": tmp_path / "published",
               "processes": processes, "logs": logs}
    finally:
        group = os.getpgid(processes.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            processes.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            processes.wait(timeout=10)
        # every child of the group is gone, not just bash
        def group_gone() -> bool:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            return False

        if not wait_for(group_gone, 15, every=0.5):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:  # the last one exited just now
                pass
        smtp.stop()
        _drop_database()


def _messages_of(smtp, pack_id: str) -> list:
    """The emails received so far whose attachment is a pack of ``pack_id`` (tests share one server)."""
    return [(rcpts, message) for rcpts, message in smtp.handler.messages
            if attachment_of(message)[1].startswith(f"{pack_id}_")]


def _login(stack: dict) -> str:
    """Wait for the API server, then a SimpleAuthManager token for admin."""
    url, logs, procs = stack["url"], stack["logs"], stack["processes"]
    _wait("the API to be healthy",
          lambda: _request("GET", f"{url}/api/v2/monitor/health")[0] == 200, 240, procs, logs)
    status, body = _request("POST", f"{url}/auth/token", {"username": "admin", "password": "admin"})
    assert status in (200, 201), body
    return body["access_token"]


def test_rest_triggered_run_for_a_past_quarter_delivers_the_pack(airflow_stack):
    url, logs, procs = airflow_stack["url"], airflow_stack["logs"], airflow_stack["processes"]
    token = _login(airflow_stack)
    _wait("the DAG to be parsed",
          lambda: _request("GET", f"{url}/api/v2/dags/{DAG_ID}", token=token)[0] == 200, 90, procs, logs)
    dag_info = _request("GET", f"{url}/api/v2/dags/{DAG_ID}", token=token)[1]
    # the plugin's timetable is known to the API server; with the start date in 2100, unpausing
    # schedules nothing now, so the only run is the one triggered below
    assert dag_info["timetable_summary"] == "quarter +6h"
    assert dag_info["next_dagrun_data_interval_start"].startswith("2100-01-01")
    status, body = _request("PATCH", f"{url}/api/v2/dags/{DAG_ID}", {"is_paused": False}, token)
    assert status == 200, body
    status, run = _request("POST", f"{url}/api/v2/dags/{DAG_ID}/dagRuns",
                           {"logical_date": None,
                            "conf": {"period": "2025-Q1", "recipients": ["chair@example.com"]}}, token)
    assert status == 200, run
    run_url = f"{url}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"

    state, tasks = _finished_run(run_url, token, "the run to finish", procs, logs)
    assert state == "success", {t["task_id"]: t["state"] for t in tasks}
    assert {t["task_id"]: t["state"] for t in tasks} == {name: "success" for name in TASKS}

    folder = airflow_stack["out"] / "demo_airflow" / "2025-Q1"
    pdf = (folder / "board_pack.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert json.loads((folder / "metrics.json").read_text())["period"] == "2025-Q1"
    messages = _messages_of(airflow_stack["smtp"], "demo_airflow")
    assert [rcpts for rcpts, _ in messages] == [["chair@example.com"]]  # the param replaced the pack's
    content_type, filename, _, digest = attachment_of(messages[0][1])
    assert (content_type, filename) == ("application/pdf", "demo_airflow_2025-Q1_board_pack.pdf")
    assert digest == hashlib.sha256(pdf).hexdigest()
    # published through ObjectStoragePath (file://): the pointer names the version holding this PDF
    published = airflow_stack["published"] / "demo_airflow" / "2025-Q1"
    assert read_published(published) == pdf
    assert read_pointer(published)["pdf_sha256"] == digest


def _month_sums(transactions, months: list[str]) -> dict[str, float]:
    """Net revenue (sales minus returns) per calendar month, straight from the source rows."""
    month = transactions["ordered_at"].dt.strftime("%Y-%m")
    return {label: round(float(transactions.loc[month == label, "revenue"].sum()), 2) for label in months}


def _max_overlap(intervals: list[tuple[str, str, str]]) -> tuple[int, int]:
    """(most task runs at once, most distinct dag runs with a task running at once).

    ``intervals``: (run id, ISO start, ISO end) per task run; touching intervals do not overlap.
    """
    moment = datetime.fromisoformat
    events = sorted([(moment(start), 1, run) for run, start, _ in intervals]
                    + [(moment(end), -1, run) for run, _, end in intervals])  # an end sorts first
    running: list[str] = []
    most_tasks = most_runs = 0
    for _, step, run in events:
        if step == 1:
            running.append(run)
        else:
            running.remove(run)
        most_tasks, most_runs = max(most_tasks, len(running)), max(most_runs, len(set(running)))
    return most_tasks, most_runs


def test_backfill_of_eight_months_runs_periods_in_parallel_into_eight_correct_packs(airflow_stack):
    """POST /api/v2/backfills with max_active_runs=8 (over the DAG's own limit of 1): the
    LocalExecutor runs tasks of different months at the same time, and every month still gets
    its own complete, checked pack with its own numbers, published and emailed once."""
    url, logs, procs = airflow_stack["url"], airflow_stack["logs"], airflow_stack["processes"]
    token = _login(airflow_stack)
    dag_url = f"{url}/api/v2/dags/{BACKFILL_DAG_ID}"
    _wait("the monthly DAG to be parsed", lambda: _request("GET", dag_url, token=token)[0] == 200,
          90, procs, logs)
    dag_info = _request("GET", dag_url, token=token)[1]
    assert dag_info["timetable_summary"] == "month +6h"
    assert dag_info["max_active_runs"] == 1  # the backfill's own limit below overrides it
    status, body = _request("PATCH", dag_url, {"is_paused": False}, token)
    assert status == 200, body

    request = {"dag_id": BACKFILL_DAG_ID, "from_date": "2025-01-01T00:00:00Z",
               "to_date": "2025-08-01T00:00:00Z", "max_active_runs": 8}
    status, dry = _request("POST", f"{url}/api/v2/backfills/dry_run", request, token)
    assert status == 200, dry
    assert [b["logical_date"][:10] for b in dry["backfills"]] == [f"{m}-01" for m in BACKFILL_MONTHS]
    status, backfill = _request("POST", f"{url}/api/v2/backfills", request, token)
    assert status == 200, backfill
    assert backfill["max_active_runs"] == 8

    runs_url = f"{dag_url}/dagRuns?run_type=backfill&limit=100"

    def all_finished():
        runs = _request("GET", runs_url, token=token)[1]["dag_runs"]
        done = len(runs) == 8 and all(r["state"] in ("success", "failed") for r in runs)
        return runs if done else None

    runs = _wait("the 8 backfill runs to finish", all_finished, 600, procs, logs)
    tis = _request("GET", f"{dag_url}/dagRuns/~/taskInstances?limit=100", token=token)[1]["task_instances"]
    tis = [t for t in tis if t["dag_run_id"] in {r["dag_run_id"] for r in runs}]
    assert {r["state"] for r in runs} == {"success"}, sorted(
        (t["dag_run_id"], t["task_id"], t["state"]) for t in tis if t["state"] != "success")
    assert len(tis) == 8 * len(TASKS) and {t["state"] for t in tis} == {"success"}

    # Parallel: task runs of different months overlapped in time (from the metadata DB's
    # start/end dates of the task instances, as the scheduler recorded them).
    most_tasks, most_runs = _max_overlap([(t["dag_run_id"], t["start_date"], t["end_date"]) for t in tis])
    print(f"\nbackfill: up to {most_tasks} task runs of {most_runs} months at once")
    assert most_runs >= 2

    # One run per month; each run's data interval is exactly its month.
    by_month = {r["data_interval_start"][:7]: r for r in runs}
    assert sorted(by_month) == BACKFILL_MONTHS
    source = load_source(load_config(BACKFILL_PACK)).transactions
    expected = _month_sums(source, ["2024-12", *BACKFILL_MONTHS])
    out, published = airflow_stack["out"] / "monthly_backfill", airflow_stack["published"] / "monthly_backfill"
    mails = {attachment_of(m)[1]: (rcpts, m) for rcpts, m in _messages_of(airflow_stack["smtp"], "monthly_backfill")}
    assert len(_messages_of(airflow_stack["smtp"], "monthly_backfill")) == 8  # one per month, no duplicate
    # 8 separate folders, no other (hidden: the record of the config that owns the pack)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == BACKFILL_MONTHS
    previous = expected["2024-12"]  # the month before the first one of the backfill
    for index, month in enumerate(BACKFILL_MONTHS):
        run = by_month[month]
        next_month = BACKFILL_MONTHS[index + 1] if index + 1 < 8 else "2025-09"
        assert run["data_interval_end"].startswith(f"{next_month}-01T00:00:00")
        assert run["run_type"] == "backfill" and run["conf"] in ({}, None)
        folder = out / month
        metrics = json.loads((folder / "metrics.json").read_text())
        checks = json.loads((folder / "checks.json").read_text())
        assert metrics["period"] == month
        assert checks["is_deliverable"] is True
        pdf = (folder / "board_pack.pdf").read_bytes()
        digest = hashlib.sha256(pdf).hexdigest()
        assert checks["pdf_sha256"] == digest, "the checked PDF is the PDF on disk"
        assert not list(folder.glob(".*.tmp")), "no temporary file left behind"
        assert month in (PdfReader(folder / "board_pack.pdf").pages[0].extract_text() or "")
        # the numbers: this month's revenue is the source's, and last month's is the previous one's
        headline = metrics["headline"]
        assert headline["revenue_current"] == pytest.approx(expected[month], abs=0.005)
        assert headline["revenue_previous"] == pytest.approx(previous, abs=0.005)
        previous = headline["revenue_current"]
        panel = pd.read_parquet(folder / "panel.parquet")
        in_month = panel["period_start"] == pd.Timestamp(f"{month}-01")
        assert round(float(panel.loc[in_month, "revenue"].sum()), 2) == pytest.approx(expected[month], abs=0.005)
        # published, and emailed once to the pack's recipient with this month's PDF
        assert read_pointer(published / month)["pdf_sha256"] == digest
        rcpts, message = mails[f"monthly_backfill_{month}_board_pack.pdf"]
        assert rcpts == ["board@example.com"]
        assert attachment_of(message)[3] == digest
        assert month in message["Subject"]
        ledger = [json.loads(line) for line in (folder / "delivery_ledger.jsonl").read_text().splitlines()]
        assert [(row["recipient"], row["period"], row["result"]) for row in ledger] == [
            ("board@example.com", month, "sent")]
    assert len({hashlib.sha256((out / m / "board_pack.pdf").read_bytes()).digest() for m in BACKFILL_MONTHS}) == 8


def test_weekly_run_maps_one_unit_pack_per_region(airflow_stack):
    url, logs, procs = airflow_stack["url"], airflow_stack["logs"], airflow_stack["processes"]
    token = _login(airflow_stack)
    dag_url = f"{url}/api/v2/dags/{UNITS_DAG_ID}"
    _wait("the weekly DAG to be parsed", lambda: _request("GET", dag_url, token=token)[0] == 200, 90, procs, logs)
    assert _request("GET", dag_url, token=token)[1]["timetable_summary"] == "week +6h"
    assert _request("PATCH", dag_url, {"is_paused": False}, token)[0] == 200
    # the trigger refuses a period that does not match the param's pattern
    status, _ = _request("POST", f"{dag_url}/dagRuns", {"logical_date": None, "conf": {"period": "2026-W99"}}, token)
    assert status >= 400
    status, run = _request("POST", f"{dag_url}/dagRuns", {"logical_date": None, "conf": {"period": "2026-W39"}}, token)
    assert status == 200, run
    run_url = f"{dag_url}/dagRuns/{run['dag_run_id']}"

    state, tis = _finished_run(run_url, token, "the weekly run to finish", procs, logs)
    assert state == "success", sorted((t["task_id"], t["map_index"], t["state"]) for t in tis)
    mapped = sorted((t["rendered_map_index"], t["state"]) for t in tis if t["task_id"] == "unit.pack")
    assert mapped == [(region, "success") for region in ["East", "International", "North", "South", "West"]]
    assert len([t for t in tis if t["task_id"] == "unit.deliver" and t["state"] == "success"]) == 5
    north = _messages_of(airflow_stack["smtp"], "weekly_units--north")
    assert [rcpts for rcpts, _ in north] == [["north@example.com"]]
    assert north[0][1]["Subject"] == "Demo Retail Ltd - North weekly pack 2026-W39"
    assert [rcpts for rcpts, _ in _messages_of(airflow_stack["smtp"], "weekly_units")] == [["trading@example.com"]]
    folder = airflow_stack["out"] / "weekly_units--north" / "2026-W39"
    assert json.loads((folder / "checks.json").read_text())["is_deliverable"] is True
