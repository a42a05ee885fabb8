"""Mapped unit packs, fail-fast and retried errors, with ``dag.test()`` and a real SMTP server.

Usage: dag_test_units.py <output_root>. The packs folder holds a weekly pack with units by
region. Prints one JSON line: per run, its state, each task instance (task, map index, state,
tries) and the emails received.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone

import cxpipeline.checks as checks
from pathlib import Path

from cxpipeline.publish import read_pointer, storage_path
from tests.smtp_fixtures import attachment_of, free_port, start_smtp_server

output_root = sys.argv[1]
server = start_smtp_server()
GOOD = (f"smtp://127.0.0.1:{server.port}?disable_ssl=true&disable_tls=true"
        "&from_email=board-packs%40example.com&timeout=10&retry_limit=0")
os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = GOOD

# One unit fails its checks (dag.test runs the tasks in this process).
_real_checks = checks.run_checks


def _checks_failing_for_north(folder, config):
    report = _real_checks(folder, config)
    if config.pack_id.endswith("--north"):
        report["is_deliverable"] = False
        report["checks"].append({"name": "forced for the test", "is_passed": False, "detail": "North"})
    return report


checks.run_checks = _checks_failing_for_north

from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from airflow.utils import db  # noqa: E402

db.resetdb()
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag("cx_board_pack_regions_weekly")
CONF = {"period": None, "recipients": [], "dry_run": False, "resend": False, "unit": None}


def run(name, logical_date, conf=None):
    before = len(server.handler.messages)
    t0 = time.perf_counter()
    dag_run = dag.test(logical_date=logical_date, run_conf={**CONF, **(conf or {})})
    return {
        "name": name, "state": str(dag_run.state), "seconds": round(time.perf_counter() - t0, 1),
        "data_interval": [str(dag_run.data_interval_start), str(dag_run.data_interval_end)],
        "tis": sorted([ti.task_id, ti.map_index, str(ti.state), ti.try_number, ti.rendered_map_index]
                      for ti in dag_run.get_task_instances()),
        "emails": [{"to": rcpts, "subject": m["Subject"],
                    "filename": next((p.get_filename() for p in m.iter_attachments()), None),
                    "sha256": attachment_of(m)[3] if m.get_content_type() == "multipart/mixed" else None,
                    "text": m.get_body(("plain",)).get_content()}
                   for rcpts, m in server.handler.messages[before:]],
    }


def published(period):
    """Each pack's committed pointer in the store (CXPIPELINE_ARTIFACT_URL), by its folder name."""
    store = os.environ.get("CXPIPELINE_ARTIFACT_URL")
    found = {}
    for folder in sorted(Path(output_root).glob(f"*/{period}")) if store else []:
        destination = storage_path(store) / folder.parent.name / period
        if (destination / "LATEST.json").exists():
            found[folder.parent.name] = read_pointer(destination)
    return found


monday = datetime(2026, 9, 28, 6, tzinfo=timezone.utc)  # the run after 2026-W39 (21-27 Sep)
runs = [run("weekly", monday)]
runs[0]["published"] = published("2026-W39")
runs.append(run("rerun", datetime(2026, 9, 28, 7, tzinfo=timezone.utc)))
runs.append(run("one_unit", datetime(2026, 9, 28, 8, tzinfo=timezone.utc), {"unit": "South", "resend": True}))
# A permanent error (a period the data does not cover): failed at once, no retry.
runs.append(run("permanent", datetime(2026, 9, 28, 9, tzinfo=timezone.utc), {"period": "2027-W01"}))
# A transient one (nothing listens on the SMTP port): retried, then failed.
os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = GOOD.replace(f":{server.port}?", f":{free_port()}?")
runs.append(run("smtp_down", datetime(2026, 9, 28, 10, tzinfo=timezone.utc),
                {"resend": True, "unit": "East"}))
server.stop()
print(json.dumps({"runs": runs}, default=str))
