"""One board-pack DAG per pack file in ``$CXPIPELINE_PACKS_DIR`` (docs/airflow.md).

``extract -> validate -> metrics -> model -> render -> check -> publish -> deliver``, and per unit
``model -> units -> unit.pack[unit] -> unit.deliver[unit]`` (a mapped task group). Each task is one call of
:mod:`cxpipeline.runs`; only small dicts go through XCom. Errors the library knows to be
permanent fail their task at once (no retry); connection errors retry with backoff. A pack file
that cannot be read keeps its DAG id and schedule and fails every run loudly.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from cx_timetables import ReportingPeriodTimetable
from cxpipeline import runs
from cxpipeline.errors import is_transient

_DEFAULT_PACKS = Path(__file__).resolve().parents[1] / "examples" / "airflow" / "packs"
PACKS_DIR = os.environ.get("CXPIPELINE_PACKS_DIR") or (str(_DEFAULT_PACKS) if _DEFAULT_PACKS.is_dir() else None)
START_DATE = pendulum.parse(os.environ.get("CXPIPELINE_START_DATE") or "2020-01-01", tz="UTC")
OUTPUT_ROOT = os.environ.get("CXPIPELINE_OUTPUT_ROOT") or None  # None: output.root of the config
ARTIFACT_URL = os.environ.get("CXPIPELINE_ARTIFACT_URL", "").strip() or None
STAGE_DOCS = {"validate": "Refuse an extract a pack must not be built from (coverage, exclusions).",
              "metrics": "Compute every metric table and metrics.json.",
              "model": "Fit the at-risk model and score every customer.",
              "render": "Render board_pack.pdf and .html.",
              "check": "Check the pack; only a deliverable pack goes on."}


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


def _interval(context) -> dict:
    return {"interval_start": context.get("data_interval_start"), "interval_end": context.get("data_interval_end")}


def _smtp(conn_id: str):
    from airflow.sdk import Connection

    from cxpipeline.delivery import SmtpSettings

    c = Connection.get(conn_id)
    return SmtpSettings.from_connection(host=c.host, port=c.port, login=c.login, password=c.password,
                                        extra=c.extra_dejson, conn_id=conn_id)


def _publish(checked: dict, pack_id: str) -> dict:
    """Copy the checked folder to ``$CXPIPELINE_ARTIFACT_URL/<pack_id>/<period>`` (any ObjectStoragePath)."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach, has_fs

    from cxpipeline.publish import publish_pack

    url = ARTIFACT_URL if "://" in ARTIFACT_URL else Path(ARTIFACT_URL).resolve().as_uri()
    if not has_fs(url.split("://", 1)[0]):  # e.g. memory://: plain fsspec
        import fsspec

        attach(url.split("://", 1)[0], fs=fsspec.filesystem(url.split("://", 1)[0]))
    root = ObjectStoragePath(url, conn_id=os.environ.get("CXPIPELINE_ARTIFACT_CONN_ID") or None)
    return publish_pack(checked["folder"], root / pack_id / checked["period"], published_at=pendulum.now("UTC").isoformat())


def _alert(smtp_conn_id: str):
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


def _dag_args(pack_id: str, kind: str, fiscal: int, smtp_conn_id: str, doc: str) -> dict:
    return dict(
        dag_id=f"cx_board_pack_{pack_id}", schedule=ReportingPeriodTimetable(kind, fiscal), start_date=START_DATE,
        catchup=False, max_active_runs=1, tags=["cxpipeline", kind], doc_md=doc,
        default_args={"retries": int(os.environ.get("CXPIPELINE_TASK_RETRIES", "2")),  # transient errors only
                      "retry_delay": timedelta(seconds=float(os.environ.get("CXPIPELINE_RETRY_DELAY_SECONDS", "30"))),
                      "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=10),
                      "on_failure_callback": _alert(smtp_conn_id)},
        params={name: Param(spec["default"], **{k: v for k, v in spec.items() if k != "default"})
                for name, spec in runs.RUN_PARAMS.items()},
    )


def build_dag(path: Path, header: runs.PackHeader):
    config = str(path)

    @dag(**_dag_args(header.pack_id, header.kind, header.fiscal_year_start_month, header.smtp_conn_id,
                     runs.operator_doc(header, artifact_url=ARTIFACT_URL, output_root=OUTPUT_ROOT)))
    def board_pack():
        @task(doc_md="Validate the config, decide the period (param or data interval) and extract its data.")
        @fail_fast
        def extract() -> dict:
            context = get_current_context()
            return runs.start_run(config, period=context["params"]["period"], output_root=OUTPUT_ROOT, **_interval(context))

        def stage(name: str):
            @task(task_id=name, doc_md=STAGE_DOCS[name])
            @fail_fast
            def run_stage(previous: dict) -> dict:
                return runs.run_stage(name, config, previous, OUTPUT_ROOT)
            return run_stage

        @task(doc_md="Copy the checked folder to $CXPIPELINE_ARTIFACT_URL as a new version (skipped when unset).")
        @fail_fast
        def publish(checked: dict) -> dict:
            return {**checked, "published": _publish(checked, header.pack_id) if ARTIFACT_URL else {"url": None}}

        @task(doc_md="Email the checked PDF to each recipient who does not have it yet (ledger in the folder).")
        @fail_fast
        def deliver(published: dict) -> dict:
            p = get_current_context()["params"]
            return runs.deliver(config, published["folder"], smtp=_smtp(header.smtp_conn_id), recipients=p["recipients"],
                                resend=p["resend"], dry_run=p["dry_run"], published=published["published"])

        @task(doc_md="List the units (units.by) the extract found; the `unit` param keeps one.")
        @fail_fast
        def units(modelled: dict) -> list[dict]:
            return runs.run_units(config, modelled["period"], OUTPUT_ROOT, only=get_current_context()["params"]["unit"])

        @task(task_id="pack", doc_md="Build, render and check one unit's pack from the company extract.",
              map_index_template="{{ unit_name }}")
        @fail_fast
        def unit_pack(modelled: dict, unit: dict) -> dict:
            get_current_context()["unit_name"] = unit["name"]  # names the mapped instance in the UI
            return runs.build_unit(config, modelled["period"], unit, OUTPUT_ROOT)

        @task(task_id="deliver", doc_md="Email one unit's checked pack to the unit's recipients.",
              map_index_template="{{ unit_name }}")
        @fail_fast
        def deliver_unit(built: dict) -> dict:
            context = get_current_context()
            context["unit_name"], p = built["unit"], context["params"]
            return runs.deliver(config, built["folder"], smtp=_smtp(header.smtp_conn_id), unit=built["unit"],
                                recipients=p["recipients"] or built["recipients"], resend=p["resend"], dry_run=p["dry_run"])

        @task_group(group_id="unit")  # mapped: each unit's deliver waits for its own pack only
        def unit_branch(modelled: dict, unit: dict):
            deliver_unit(unit_pack(modelled, unit))

        run = extract()
        for name in ("validate", "metrics", "model"):
            run = stage(name)(run)
        modelled = run
        for name in ("render", "check"):
            run = stage(name)(run)
        deliver(publish(run))
        if header.units_by:
            unit_branch.partial(modelled=modelled).expand(unit=units(modelled))

    return board_pack()


def broken_dag(path: Path, error: Exception):
    """A pack file that cannot be read keeps its DAG id and schedule; every run fails loudly."""
    pack_id, kind, fiscal = runs.fallback_pack_id(path)

    @dag(**{**_dag_args(pack_id, kind, fiscal, "smtp_default", f"### Broken pack file\n\n`{path}`\n\n```\n{error}\n```"),
            "tags": ["cxpipeline", "config-error"]})
    def board_pack():
        @task(doc_md="Fails: the pack file cannot be read (see the DAG's docs).")
        def config_error() -> None:
            raise AirflowFailException(f"The pack definition cannot be read:\n{error}")
        config_error()

    return board_pack()


for _path in runs.pack_files(PACKS_DIR):  # no folder / no pack file: an import error, not zero DAGs
    try:
        _header = runs.read_pack_header(_path)
    except Exception as _exc:  # a broken file must not hide the others
        globals()[f"broken_{_path.stem}"] = broken_dag(_path, _exc)
        continue
    globals()[f"cx_board_pack_{_header.pack_id}"] = build_dag(_path, _header)
