"""One board-pack DAG per pack file in ``$CXPIPELINE_PACKS_DIR`` (docs/airflow.md).

``extract -> validate -> metrics -> model -> render -> check -> publish -> deliver``, and per unit
``model -> units -> unit.pack[unit] -> unit.deliver[unit]`` (a mapped task group). Each task is one call of
:mod:`cxpipeline.runs`; only small dicts go through XCom. Errors the library knows to be
permanent fail their task at once (no retry); connection errors retry with backoff. A pack file
that cannot be read keeps its DAG id and schedule and fails every run loudly. The Airflow
plumbing (fail-fast, SMTP connection, artifact store, alert, DAG arguments) is in
plugins/cx_airflow.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from cx_airflow import OUTPUT_ROOT, STORE, dag_args, fail_fast, interval, smtp, store
from cxpipeline import runs
from cxpipeline.runs import TASK_DOCS

_DEFAULT_PACKS = Path(__file__).resolve().parents[1] / "examples" / "airflow" / "packs"
PACKS_DIR = os.environ.get("CXPIPELINE_PACKS_DIR") or (str(_DEFAULT_PACKS) if _DEFAULT_PACKS.is_dir() else None)


def build_dag(path: Path, header: runs.PackHeader):
    config = str(path)

    @dag(**dag_args(header.pack_id, header.kind, header.fiscal_year_start_month, header.smtp_conn_id,
                    runs.operator_doc(header, artifact_url=STORE.url, output_root=OUTPUT_ROOT)))
    def board_pack():
        @task(doc_md=TASK_DOCS["extract"])
        @fail_fast
        def extract() -> dict:
            context = get_current_context()
            return runs.start_run(config, period=context["params"]["period"], output_root=OUTPUT_ROOT,
                                  **interval(context))

        def stage(name: str):
            @task(task_id=name, doc_md=TASK_DOCS[name])
            @fail_fast
            def run_stage(previous: dict) -> dict:
                return runs.run_stage(name, config, previous, OUTPUT_ROOT)
            return run_stage

        @task(doc_md=TASK_DOCS["publish"])
        @fail_fast
        def publish(checked: dict) -> dict:
            return runs.publish(checked, **store())

        @task(doc_md=TASK_DOCS["deliver"])
        @fail_fast
        def deliver(published: dict) -> dict:
            p = get_current_context()["params"]
            return runs.deliver(config, published["folder"], smtp=smtp(header.smtp_conn_id), recipients=p["recipients"],
                                resend=p["resend"], dry_run=p["dry_run"], published=published["published"])

        @task(doc_md=TASK_DOCS["units"])
        @fail_fast
        def units(modelled: dict) -> list[dict]:
            return runs.run_units(config, modelled["period"], OUTPUT_ROOT, only=get_current_context()["params"]["unit"])

        @task(task_id="pack", doc_md=TASK_DOCS["unit.pack"], map_index_template="{{ unit_name }}")
        @fail_fast
        def unit_pack(modelled: dict, unit: dict) -> dict:
            get_current_context()["unit_name"] = unit["name"]  # names the mapped instance in the UI
            return runs.build_unit(config, modelled["period"], unit, OUTPUT_ROOT, **store())

        @task(task_id="deliver", doc_md=TASK_DOCS["unit.deliver"], map_index_template="{{ unit_name }}")
        @fail_fast
        def deliver_unit(built: dict) -> dict:
            context = get_current_context()
            context["unit_name"], p = built["unit"], context["params"]
            return runs.deliver(config, built["folder"], smtp=smtp(header.smtp_conn_id), unit=built["unit"],
                                recipients=p["recipients"] or built["recipients"], resend=p["resend"],
                                dry_run=p["dry_run"], published=built["published"])

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

    @dag(**dag_args(pack_id, kind, fiscal, "smtp_default", f"### Broken pack file\n\n`{path}`\n\n```\n{error}\n```",
                    tags=["cxpipeline", "config-error"]))
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
