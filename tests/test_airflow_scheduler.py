"""A real Airflow: api-server + scheduler + dag-processor, LocalExecutor, metadata on PostgreSQL.

A run of the board-pack DAG for a past quarter is triggered through the REST API; the test
waits for it to succeed, then checks the PDF in the artifact folder and the email the SMTP
server (aiosmtpd, in this process) received. The Airflow processes run in their own process
group and are stopped at the end, whatever happens.
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
from pathlib import Path

import psycopg
import pytest

from cxpipeline.publish import read_pointer, read_published
from tests.airflow_fixtures import REPO, airflow_env
from tests.smtp_fixtures import attachment_of, free_port, start_smtp_server

pytestmark = pytest.mark.slow

# One database per test process, so two checkouts testing on one machine never collide.
DATABASE = f"cx_airflow_test_{os.getpid()}"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DAG_ID = "cx_board_pack_demo_airflow"


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


def _tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@pytest.fixture()
def airflow_stack(tmp_path):
    smtp = start_smtp_server()
    packs = tmp_path / "packs"
    packs.mkdir()
    shutil.copy(REPO / "examples" / "airflow" / "packs" / "demo.yaml", packs / "demo.yaml")
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
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:  # the last one exited just now
                pass
        smtp.stop()
        _drop_database()


def test_rest_triggered_run_for_a_past_quarter_delivers_the_pack(airflow_stack):
    url, logs, procs = airflow_stack["url"], airflow_stack["logs"], airflow_stack["processes"]
    _wait("the API to be healthy",
          lambda: _request("GET", f"{url}/api/v2/monitor/health")[0] == 200, 240, procs, logs)
    status, body = _request("POST", f"{url}/auth/token", {"username": "admin", "password": "admin"})
    assert status in (200, 201), body
    token = body["access_token"]
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

    def finished():
        state = _request("GET", run_url, token=token)[1]["state"]
        return state if state in ("success", "failed") else None

    state = _wait("the run to finish", finished, 420, procs, logs)
    tasks = _request("GET", f"{run_url}/taskInstances", token=token)[1]["task_instances"]
    assert state == "success", {t["task_id"]: t["state"] for t in tasks}
    assert {t["task_id"]: t["state"] for t in tasks} == {
        name: "success" for name in ["extract", "validate", "metrics", "model", "render", "check",
                                     "publish", "deliver"]}

    folder = airflow_stack["out"] / "demo_airflow" / "2025-Q1"
    pdf = (folder / "board_pack.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert json.loads((folder / "metrics.json").read_text())["period"] == "2025-Q1"
    messages = airflow_stack["smtp"].handler.messages
    assert [rcpts for rcpts, _ in messages] == [["chair@example.com"]]
    content_type, filename, _, digest = attachment_of(messages[0][1])
    assert (content_type, filename) == ("application/pdf", "demo_airflow_2025-Q1_board_pack.pdf")
    assert digest == hashlib.sha256(pdf).hexdigest()
    # published through ObjectStoragePath (file://): the pointer names the version holding this PDF
    published = airflow_stack["published"] / "demo_airflow" / "2025-Q1"
    assert read_published(published) == pdf
    assert read_pointer(published)["pdf_sha256"] == digest
