"""What the board-pack DAG needs from Airflow itself, kept out of the DAG file (docs/airflow.md).

The library (:mod:`cxpipeline`) never imports Airflow; the DAG file (dags/cx_board_pack.py)
holds only the tasks. This module holds the Airflow-specific rest: the fail-fast wrapper, the
SMTP connection as :class:`cxpipeline.delivery.SmtpSettings`, the artifact store as an
``ObjectStoragePath``, the failure alert and the DAG's arguments. Nothing here touches a
connection or the metadata database at import (parse) time.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from cx_timetables import ReportingPeriodTimetable
from cxpipeline import runs
from cxpipeline.errors import is_transient

START_DATE = pendulum.parse(os.environ.get("CXPIPELINE_START_DATE") or "2020-01-01", tz="UTC")
OUTPUT_ROOT = os.environ.get("CXPIPELINE_OUTPUT_ROOT") or None  # None: output.root of the config
STORE = runs.artifact_store()  # $CXPIPELINE_ARTIFACT_URL, _PUBLIC_URL, _CONN_ID


def fail_fast(function):
    """Fail the task at once (no retry) on an error the library knows to be permanent."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                raise  # retried with backoff
            raise AirflowFailException(str(exc)) from exc
    return call


def interval(context) -> dict:
    """The run's data interval, as :func:`cxpipeline.runs.start_run` takes it."""
    return {"interval_start": context.get("data_interval_start"), "interval_end": context.get("data_interval_end")}


def smtp(conn_id: str):
    """The Airflow SMTP connection as :class:`cxpipeline.delivery.SmtpSettings` (its retry_limit too)."""
    from airflow.sdk import Connection

    from cxpipeline.delivery import SmtpSettings

    c = Connection.get(conn_id)
    return SmtpSettings.from_connection(host=c.host, port=c.port, login=c.login, password=c.password,
                                        extra=c.extra_dejson, conn_id=conn_id)


def store() -> dict:
    """Where and how to publish: ``{"store": ObjectStoragePath | None, "public_url", "published_at"}``,
    the keyword arguments of :func:`cxpipeline.runs.publish` (None store: not published)."""
    if not STORE.url:
        return {"store": None}
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach, has_fs

    url = STORE.url if "://" in STORE.url else Path(STORE.url).resolve().as_uri()
    scheme = url.split("://", 1)[0]
    if not has_fs(scheme):  # e.g. memory://: a plain fsspec filesystem
        import fsspec

        attach(scheme, fs=fsspec.filesystem(scheme))
    return {"store": ObjectStoragePath(url, conn_id=STORE.conn_id), "public_url": STORE.public_url,
            "published_at": pendulum.now("UTC").isoformat()}


def failure_alert(smtp_conn_id: str):
    """A failure callback emailing ``$CXPIPELINE_ALERT_TO`` (read when a task fails)."""
    def alert(context) -> None:
        to = [a.strip() for a in os.environ.get("CXPIPELINE_ALERT_TO", "").split(",") if a.strip()]
        if to:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            SmtpNotifier(to=to, smtp_conn_id=smtp_conn_id,
                         subject="[cxpipeline] {{ dag.dag_id }} failed at {{ ti.task_id }} ({{ run_id }})",
                         html_content="<p>Task <b>{{ ti.task_id }}</b> of <b>{{ dag.dag_id }}</b> failed (run "
                                      "{{ run_id }}).</p><pre>{{ exception | default('') | e }}</pre><p>Nothing is "
                                      "emailed to the recipients unless every step succeeds.</p>")(context)
    return alert


def dag_args(pack_id: str, kind: str, fiscal: int, smtp_conn_id: str, doc: str, **extra) -> dict:
    """The ``@dag`` arguments of a pack: id, timetable, retries of transient errors only, the
    failure alert and the run params (:data:`cxpipeline.runs.RUN_PARAMS`)."""
    return dict(
        dag_id=f"cx_board_pack_{pack_id}", schedule=ReportingPeriodTimetable(kind, fiscal), start_date=START_DATE,
        catchup=False, max_active_runs=1, tags=["cxpipeline", kind], doc_md=doc,
        default_args={"retries": int(os.environ.get("CXPIPELINE_TASK_RETRIES", "2")),  # transient errors only
                      "retry_delay": timedelta(seconds=float(os.environ.get("CXPIPELINE_RETRY_DELAY_SECONDS", "30"))),
                      "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=10),
                      "on_failure_callback": failure_alert(smtp_conn_id)},
        params={name: Param(spec["default"], **{k: v for k, v in spec.items() if k != "default"})
                for name, spec in runs.RUN_PARAMS.items()},
    ) | extra
