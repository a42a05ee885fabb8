"""One board-pack DAG per pack definition.

Every ``*.yaml`` in ``$CXPIPELINE_PACKS_DIR`` (default ``examples/airflow/packs``) becomes the DAG
``cx_board_pack_<pack_id>``::

    extract -> validate -> metrics -> model -> render -> check -> publish -> deliver

Each task calls one :mod:`cxpipeline` function and passes only the period label, paths and
small dicts through XCom; artifacts are built in the local folder
``<output root>/<pack_id>/<period>/``. ``extract`` decides the period and loads the data;
``validate`` refuses an unusable extract; ``publish`` copies the checked folder to
``$CXPIPELINE_ARTIFACT_URL/<pack_id>/<period>/`` (any ``ObjectStoragePath``: s3://, gs://,
file://) as a new version committed by one small pointer write (``LATEST.json``).

- The schedule is a :class:`cx_timetables.ReportingPeriodTimetable`: one run per month /
  quarter / (fiscal) year, after the period ends; the run's data interval *is* the period, so
  backfills of past periods work (``airflow backfill create --dag-id ... --from-date ...``).
- Manual runs take params ``period`` (e.g. ``2024-Q2``; overrides the data interval),
  ``recipients`` (overrides the config's list), ``dry_run`` and ``resend``.
- Email goes through the Airflow SMTP connection named in ``delivery.smtp_conn_id``.
  A delivery ledger in the artifact folder stops a rerun from emailing the same pack twice.
- A failed task emails ``$CXPIPELINE_ALERT_TO`` (SmtpNotifier) when that variable is set.

Parse time stays light: only the YAML files are read here (pack id, period type, fiscal start);
the config is validated, the source read and the SMTP connection looked up inside the tasks.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pendulum
import yaml
from airflow.sdk import Param, dag, get_current_context, task

from cx_timetables import ReportingPeriodTimetable

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKS_DIR = Path(os.environ.get("CXPIPELINE_PACKS_DIR") or REPO_ROOT / "examples" / "airflow" / "packs")
DAG_PREFIX = "cx_board_pack_"
# No scheduled run covers a period starting before this date (ISO date; manual runs are free).
START_DATE = pendulum.parse(os.environ.get("CXPIPELINE_START_DATE") or "2020-01-01", tz="UTC")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

log = logging.getLogger(__name__)


def _pack_header(path: Path) -> dict:
    """The few keys the DAG's shape depends on; the full config is validated in the tasks."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    if not isinstance(data, dict):
        raise ValueError("the file must be a mapping of keys to values")
    period = data.get("period") or {}
    delivery = data.get("delivery") or {}
    return {
        "pack_id": str(data.get("pack_id", "demo")),
        "kind": str(period.get("type", "quarter")),
        "fiscal_year_start_month": int(period.get("fiscal_year_start_month", 1)),
        "recipients": [str(r) for r in delivery.get("recipients") or []],
        "smtp_conn_id": str(delivery.get("smtp_conn_id", "smtp_default")),
    }


# --- helpers run inside tasks (heavy imports happen here, not at parse time) -----------------

def _quiet_logs() -> None:
    from cxpipeline.pipeline import quiet_library_logs

    quiet_library_logs()


def _output_root() -> str | None:
    return os.environ.get("CXPIPELINE_OUTPUT_ROOT") or None  # None: output.root of the config


def _load(config_path: str):
    from cxpipeline.config import load_config

    return load_config(config_path)


def _period_of_run(config, context):
    """params.period, else the period the run's data interval covers, else the data's latest."""
    from cxpipeline.periods import period_containing
    from cxpipeline.pipeline import resolve_period

    label = (context["params"].get("period") or "").strip()
    if label:
        return resolve_period(config, label)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        middle = start + (end - start) / 2  # safe whatever the timetable's time zone
        return period_containing(middle.date(), config.period.type, config.period.fiscal_year_start_month)
    import pandas as pd

    from cxpipeline.sources import pushdown_kind, pushdown_last_day
    from cxpipeline.sources import load_source

    if pushdown_kind(config) is not None:  # a warehouse / Parquet file: ask the engine, load nothing
        last = pd.Timestamp(pushdown_last_day(config) or pd.NaT)
    else:
        last = load_source(config).transactions["ordered_at"].max()
    return resolve_period(config, None, None if pd.isna(last) else last.date())


def _run_stage(function_name: str, config_path: str, period_label: str) -> dict:
    import json

    from cxpipeline import pipeline
    from cxpipeline.periods import parse_period

    _quiet_logs()
    config = _load(config_path)
    period = parse_period(period_label, config.period.fiscal_year_start_month)
    result = getattr(pipeline, function_name)(config, period, _output_root())
    return json.loads(json.dumps(result, default=str))  # XCom: JSON only


def _artifact_destination(pack_id: str, period_label: str):
    """``$CXPIPELINE_ARTIFACT_URL/<pack_id>/<period>`` as an ObjectStoragePath, or None."""
    url = os.environ.get("CXPIPELINE_ARTIFACT_URL", "").strip()
    if not url:
        return None
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach, has_fs

    if "://" not in url:
        url = Path(url).resolve().as_uri()
    scheme = url.split("://", 1)[0]
    if not has_fs(scheme):
        # A scheme no Airflow provider registers (e.g. memory://) is used as plain fsspec.
        import fsspec

        from cxpipeline.errors import ConfigError

        try:
            attach(scheme, fs=fsspec.filesystem(scheme))
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"No filesystem for the artifact URL {url!r}: {exc}",
                              where="CXPIPELINE_ARTIFACT_URL",
                              fix="Install the Airflow provider for this store (amazon for s3://, "
                                  "google for gs://) or use file://.") from exc
    root = ObjectStoragePath(url, conn_id=os.environ.get("CXPIPELINE_ARTIFACT_CONN_ID") or None)
    return root / pack_id / period_label


def _smtp_settings(conn_id: str):
    from airflow.sdk import Connection

    from cxpipeline.delivery import SmtpSettings

    conn = Connection.get(conn_id)
    return SmtpSettings.from_connection(host=conn.host, port=conn.port, login=conn.login,
                                        password=conn.password, extra=conn.extra_dejson)


def _failure_alert(smtp_conn_id: str):
    """A failure callback that emails $CXPIPELINE_ALERT_TO (read when a task fails)."""

    def alert(context) -> None:
        to = os.environ.get("CXPIPELINE_ALERT_TO", "").strip()
        if not to:
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=[a.strip() for a in to.split(",") if a.strip()],
            smtp_conn_id=smtp_conn_id,
            subject="[cxpipeline] {{ dag.dag_id }} failed at {{ ti.task_id }} ({{ run_id }})",
            html_content=(
                "<p>Task <b>{{ ti.task_id }}</b> of <b>{{ dag.dag_id }}</b> failed "
                "(run {{ run_id }}).</p><pre>{{ exception | default('') | e }}</pre>"
                "<p>Nothing is emailed to the recipients unless every step succeeds.</p>"
            ),
        )(context)

    return alert


# --- the DAG factory ---------------------------------------------------------------------------

def build_dag(config_path: Path, header: dict):
    pack_id = header["pack_id"]
    config_file = str(config_path)

    @dag(
        dag_id=f"{DAG_PREFIX}{pack_id}",
        description=f"Board pack '{pack_id}' from {config_path.name}",
        schedule=ReportingPeriodTimetable(header["kind"], header["fiscal_year_start_month"]),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # runs of one pack share its artifact folders and ledger
        tags=["cxpipeline", header["kind"]],
        doc_md=__doc__,
        params={
            "period": Param(None, type=["null", "string"],
                            description="Period to report, e.g. 2024-Q2, 2024-11, FY2025-Q1. "
                                        "Empty: the period of the run's data interval."),
            "recipients": Param([], type="array", items={"type": "string"},
                                description="Override the config's recipients (empty: use them)."),
            "dry_run": Param(False, type="boolean",
                             description="Build and check the pack, but send no email."),
            "resend": Param(False, type="boolean",
                            description="Email even recipients who already received this pack."),
        },
        default_args={
            "retries": int(os.environ.get("CXPIPELINE_TASK_RETRIES", "2")),
            "retry_delay": timedelta(minutes=5),
            "on_failure_callback": _failure_alert(header["smtp_conn_id"]),
        },
    )
    def board_pack():
        @task
        def extract() -> dict:
            """Validate the config, decide the period of this run and extract its data."""
            from cxpipeline.config import config_hash

            _quiet_logs()
            config = _load(config_file)
            period = _period_of_run(config, get_current_context())
            log.info("pack %s, period %s", config.pack_id, period.title)
            summary = _run_stage("extract", config_file, period.label)
            return {**summary, "period": period.label, "title": period.title,
                    "config_hash": config_hash(config)}

        @task
        def validate(run: dict) -> dict:
            """Refuse an extract a pack must not be built from; log what was excluded."""
            from cxpipeline.periods import parse_period
            from cxpipeline.validation import gate_extract

            config = _load(config_file)
            summary = gate_extract(run["folder"], parse_period(run["period"], config.period.fiscal_year_start_month))
            log.info("extract usable: %s of %s rows used, excluded share %s, warnings %s",
                     summary["rows_used"], summary["rows_in"], summary["excluded_share"],
                     summary["warnings"])
            return summary

        @task
        def metrics(run: dict) -> dict:
            return _run_stage("compute_metrics", config_file, run["period"])

        @task
        def model(run: dict) -> dict:
            return _run_stage("score_customers", config_file, run["period"])

        @task
        def render(run: dict) -> dict:
            return _run_stage("render_pack", config_file, run["period"])

        @task
        def check(run: dict) -> dict:
            return _run_stage("check_pack", config_file, run["period"])

        @task
        def publish(run: dict, checked: dict) -> dict:
            """Copy the checked folder to $CXPIPELINE_ARTIFACT_URL (skipped when unset)."""
            from cxpipeline.publish import publish_pack

            destination = _artifact_destination(header["pack_id"], run["period"])
            if destination is None:
                return {"url": None}
            stamp = pendulum.now("UTC").isoformat()
            result = publish_pack(checked["folder"], destination, published_at=stamp)
            log.info("published %s (%s files) to %s", result["version"], result["count_files"],
                     result["pointer"])
            return result

        @task
        def deliver(run: dict, checked: dict, published: dict) -> dict:
            from cxpipeline.artifacts import read_json, sha256_file
            from cxpipeline.config import config_hash
            from cxpipeline.delivery import send_pack
            from cxpipeline.errors import CheckError

            _quiet_logs()
            params = get_current_context()["params"]
            config = _load(config_file)
            folder = Path(checked["folder"])
            pdf = folder / "board_pack.pdf"  # the local checked file, never a download
            location = str(folder)
            if published.get("url"):
                if sha256_file(pdf) != published["pdf_sha256"]:
                    raise CheckError("The local PDF is not the one that was published.",
                                     where=str(pdf), fix="Rerun the period from extract.")
                location = published["pointer"]  # readers go through the pointer
            dry_run = bool(params.get("dry_run"))
            report = send_pack(
                pdf,
                params.get("recipients") or config.delivery.recipients,
                period_label=run["period"],
                pack_id=config.pack_id,
                summary=read_json(folder / "metrics.json"),
                smtp=_smtp_settings(config.delivery.smtp_conn_id),  # a dry run checks it too
                resend=bool(params.get("resend")),
                dry_run=dry_run,
                allowed_domains=config.delivery.allowed_domains,
                config_hash=config_hash(config),  # the pack must be this config's
                subject=config.delivery.subject.format(
                    company=config.brand.company_name, period=run["period"], pack_id=config.pack_id),
                artifact_location=location,
                currency=config.currency,
                locale=config.locale,
                customers=config.terminology.customers,
                retries=int(os.environ.get("CXPIPELINE_SMTP_RETRIES", "3")),
                backoff_seconds=float(os.environ.get("CXPIPELINE_SMTP_BACKOFF_SECONDS", "2")),
            )
            log.info("delivery: %s %s, skipped (already sent) %s, failed %s",
                     "would send" if dry_run else "sent", report.would_send if dry_run else report.sent,
                     report.skipped, list(report.failed))
            report.raise_for_failures()
            return report.to_dict()

        run = extract()
        validated = validate(run)
        checked = check(run)
        published = publish(run, checked)
        validated >> metrics(run) >> model(run) >> render(run) >> checked
        deliver(run, checked, published)

    return board_pack()


def _config_error_dag(config_path: Path, error: Exception):
    """A broken pack file shows up as a failing DAG instead of hiding the other packs."""
    message = f"{config_path}: {error}"

    @dag(dag_id=f"{DAG_PREFIX}invalid_{config_path.stem}", schedule=None,
         start_date=pendulum.datetime(2020, 1, 1, tz="UTC"), catchup=False,
         tags=["cxpipeline", "config-error"], description=message[:200])
    def invalid_pack():
        @task
        def config_error() -> None:
            raise ValueError(f"The pack definition cannot be read: {message}")

        config_error()

    return invalid_pack()


for _path in sorted(PACKS_DIR.glob("*.y*ml")):
    try:
        _header = _pack_header(_path)
    except (OSError, ValueError, TypeError, yaml.YAMLError) as _exc:
        log.error("skipping pack %s: %s", _path, _exc)
        globals()[f"invalid_{_path.stem}"] = _config_error_dag(_path, _exc)
        continue
    globals()[f"{DAG_PREFIX}{_header['pack_id']}"] = build_dag(_path, _header)
