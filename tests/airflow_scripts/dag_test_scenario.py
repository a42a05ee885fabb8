"""Run the board-pack DAG in-process with ``dag.test()`` against a real SMTP server.

Usage: dag_test_scenario.py <dag_id> <output_root>. The environment (see
tests/airflow_fixtures.airflow_env) points Airflow at a fresh SQLite DB and at a packs folder.
Prints one JSON line with, per run: its state, the task states, the emails the server received,
the artifact folder's PDF hash and headline numbers, and what $CXPIPELINE_ARTIFACT_URL (a
``memory://`` store in this process) holds for the period: the pointer and the published PDF.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone

from cxpipeline.publish import VERSION_PREFIX, read_pointer, read_published, storage_path
from tests.smtp_fixtures import attachment_of, start_smtp_server

dag_id, output_root = sys.argv[1], sys.argv[2]
server = start_smtp_server()
# The connection must exist before Airflow reads its environment.
os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = (
    f"smtp://127.0.0.1:{server.port}?disable_ssl=true&disable_tls=true"
    "&from_email=board-packs%40example.com&timeout=10&retry_limit=0"
)

from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from airflow.utils import db  # noqa: E402

started = time.perf_counter()
db.resetdb()
timings = {"resetdb": round(time.perf_counter() - started, 2)}
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag(dag_id)


def folder_state(period: str) -> dict:
    folder = os.path.join(output_root, dag_id.removeprefix("cx_board_pack_"), period)
    pdf = os.path.join(folder, "board_pack.pdf")
    out = {"folder": folder}
    if os.path.exists(pdf):
        out["pdf_sha256"] = hashlib.sha256(open(pdf, "rb").read()).hexdigest()
    metrics = os.path.join(folder, "metrics.json")
    if os.path.exists(metrics):
        out["metrics"] = json.load(open(metrics))
    ledger = os.path.join(folder, "delivery_ledger.jsonl")
    if os.path.exists(ledger):
        out["ledger"] = [json.loads(line) for line in open(ledger) if line.strip()]
    store_url = os.environ.get("CXPIPELINE_ARTIFACT_URL")
    published = storage_path(store_url) / dag_id.removeprefix("cx_board_pack_") / period if store_url else None
    if published is not None and (published / "LATEST.json").exists():
        pointer = read_pointer(published)
        out["published"] = {
            "pointer_url": str(published / "LATEST.json"),
            "version": pointer["version"],
            "pdf_sha256": hashlib.sha256(read_published(published)).hexdigest(),
            "versions": sorted(c.name for c in published.iterdir() if c.name.startswith(VERSION_PREFIX)),
        }
    return out


# dag.test() runs every task in this process and keeps a run's conf in the DAG's params, so
# each run passes the whole form (as a trigger from the UI does), not just what differs.
DEFAULT_CONF = {"period": None, "recipients": [], "dry_run": False, "resend": False, "unit": None}


def run(name: str, logical_date: datetime, conf: dict, period: str, reject=()) -> dict:
    conf = {**DEFAULT_CONF, **conf}
    server.handler.reject = set(reject)
    before = len(server.handler.messages)
    t0 = time.perf_counter()
    dag_run = dag.test(logical_date=logical_date, run_conf=conf)
    seconds = round(time.perf_counter() - t0, 2)
    emails = []
    for rcpts, message in server.handler.messages[before:]:
        entry = {"to": rcpts, "subject": message["Subject"]}
        if any(True for _ in message.iter_attachments()):
            content_type, filename, _, digest = attachment_of(message)
            entry.update(content_type=content_type, filename=filename, sha256=digest,
                         text=message.get_body(("plain",)).get_content())
        else:
            entry["body"] = message.get_body(("html", "plain")).get_content()[:2000]
        emails.append(entry)
    return {
        "name": name,
        "state": str(dag_run.state),
        "data_interval": [str(dag_run.data_interval_start), str(dag_run.data_interval_end)],
        "tasks": {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()},
        "emails": emails,
        "seconds": seconds,
        **folder_state(period),
    }


def at(year, month, day, hour=6):
    return datetime(year, month, day, hour, tzinfo=timezone.utc)


runs = []
# The data interval decides the period: a run dated 2025-04-01 covers 2025-Q1.
runs.append(run("first", at(2025, 4, 1, 6), {}, "2025-Q1"))
runs.append(run("rerun", at(2025, 4, 1, 7), {}, "2025-Q1"))
runs.append(run("resend", at(2025, 4, 1, 8), {"resend": True}, "2025-Q1"))
# A dry run (even with resend): every check and each message built, nothing sent or recorded.
runs.append(run("dry_run", at(2025, 4, 1, 9), {"dry_run": True, "resend": True}, "2025-Q1"))
# 2025-Q2 with one recipient rejected (550): the run fails, an alert goes out.
runs.append(run("rejected", at(2025, 7, 1), {}, "2025-Q2", reject=["cfo@example.com"]))
# Rerun of 2025-Q2 through params.period (it overrides the run's own interval, 2025-Q3).
runs.append(run("after_fix", at(2025, 10, 1, 7), {"period": "2025-Q2"}, "2025-Q2"))
# The rest of the backfill of 2025: one run per data interval, to the board only.
runs.append(run("backfill_q3", at(2025, 10, 1), {"recipients": ["board@example.com"]}, "2025-Q3"))
runs.append(run("backfill_q4", at(2026, 1, 1), {"recipients": ["board@example.com"]}, "2025-Q4"))
# A period the data (to 2026-09-30) does not cover: validate stops the run after extract.
runs.append(run("uncovered", at(2026, 1, 1, 9), {"period": "2027-Q1"}, "2027-Q1"))

server.stop()
print(json.dumps({"runs": runs, "timings": timings}, default=str))
