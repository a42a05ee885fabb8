"""One library call per orchestration step: what the Airflow DAG and the CLI both call.

One module of ~560 lines on purpose: every step the DAG and the CLI share is here, so neither
repeats the other.

- :func:`read_pack_header` - the few keys a DAG's shape depends on (parse time: YAML only);
  :func:`fallback_pack_id` - the pack id of a file that cannot be read, so its DAG keeps its id;
- :func:`period_of_run` - the period a run reports: a label, else the run's data interval,
  else the latest complete period of the data;
- :func:`start_run`, :func:`run_stage` - the pipeline stages by name, with the period label;
- :func:`run_units`, :func:`build_unit` - the units of a run and one unit's pack (published too);
- :func:`artifact_store`, :func:`publish`, :func:`published_copy` - where checked packs are
  published (``$CXPIPELINE_ARTIFACT_URL``), publishing one, and what was published;
- :func:`deliver` - the published-copy check, the subject, the SMTP retries and the email;
- :func:`operator_doc` - the Markdown page an operator reads in the Airflow UI.

Nothing here imports Airflow (the DAG converts its connection into
:class:`cxpipeline.delivery.SmtpSettings`) or reads the clock. Importing this module is light
(the DAG file imports it at parse time); everything heavy is imported inside the functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from cxpipeline.errors import ConfigError
from cxpipeline.periods import PERIOD_LABEL_PATTERN, PERIOD_TYPES, Period, parse_period, period_containing

__all__ = [
    "PackHeader",
    "RUN_PARAMS",
    "TASK_DOCS",
    "read_pack_header",
    "fallback_pack_id",
    "pack_files",
    "period_of_run",
    "start_run",
    "run_stage",
    "run_units",
    "build_unit",
    "ArtifactStore",
    "artifact_store",
    "publish",
    "published_copy",
    "deliver",
    "operator_doc",
]

#: The params of a manual run as JSON schemas (the DAG turns each into an Airflow ``Param``).
RUN_PARAMS: dict[str, dict[str, Any]] = {
    "period": {"default": None, "type": ["null", "string"], "pattern": PERIOD_LABEL_PATTERN,
               "description": "2026-W14, 2026-03, 2026-Q1, FY2026-Q1 or 2026. Empty: the period of the run's "
                              "data interval (for a manual run: the latest period that has ended)."},
    "recipients": {"default": [], "type": "array", "items": {"type": "string"},
                   "description": "Send to these instead of the configured recipients."},
    "dry_run": {"default": False, "type": "boolean", "description": "Build and check, send nothing."},
    "resend": {"default": False, "type": "boolean", "description": "Send even to whoever already has this PDF."},
    "unit": {"default": None, "type": ["null", "string"], "description": "Build and send only this unit (e.g. North)."},
}
#: The doc of each DAG task (the operator reads it in the Airflow UI).
TASK_DOCS: dict[str, str] = {
    "extract": "Validate the config, decide the period (param or data interval) and extract its data.",
    "validate": "Refuse an extract a pack must not be built from (coverage, exclusions).",
    "metrics": "Compute every metric table and metrics.json.",
    "model": "Fit the at-risk model and score every customer.",
    "render": "Render board_pack.pdf and .html.",
    "check": "Check the pack; only a deliverable pack goes on.",
    "publish": "Copy the checked folder to $CXPIPELINE_ARTIFACT_URL as a new version (skipped when unset).",
    "deliver": "Email the checked PDF to each recipient who does not have it yet (ledger in the folder).",
    "units": "List the units (units.by) the extract found; the `unit` param keeps one.",
    "unit.pack": "Build, render and check one unit's pack from the company extract; publish it like the "
                 "company's, under <pack_id>--<unit>/<period>/ (when $CXPIPELINE_ARTIFACT_URL is set).",
    "unit.deliver": "Email one unit's checked pack to the unit's recipients, linking its published PDF.",
}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PACK_ID = re.compile(r"^pack_id:\s*['\"]?([A-Za-z0-9_-]{1,64})['\"]?\s*(#.*)?$", re.MULTILINE)
_PERIOD_TYPE = re.compile(r"^\s+type:\s*['\"]?(week|month|quarter|year)['\"]?\s*(#.*)?$", re.MULTILINE)
_FISCAL = re.compile(r"^\s+fiscal_year_start_month:\s*([1-9]|1[0-2])\s*(#.*)?$", re.MULTILINE)
_STAGES = {"extract": "extract", "metrics": "compute_metrics", "model": "score_customers",
           "render": "render_pack", "check": "check_pack"}


@dataclass(frozen=True)
class PackHeader:
    """What the DAG's shape depends on (the full config is validated inside the tasks)."""

    path: str
    pack_id: str
    kind: str = "quarter"
    fiscal_year_start_month: int = 1
    comparison: str = "previous"
    company_name: str = "Demo Retail Ltd"
    recipients: list[str] = field(default_factory=list)
    smtp_conn_id: str = "smtp_default"
    units_by: list[str] = field(default_factory=list)
    unit_recipients: dict[str, list[str]] = field(default_factory=dict)
    output_root: str = "out"


def _mapping(value: Any, key: str, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a block of keys, not {type(value).__name__}.", where=where,
                          fix="See examples/demo.yaml for the keys.")
    return value


def read_pack_header(path: str | Path) -> PackHeader:
    """Read a pack file's header (pack id, period type, recipients, units) without validating
    the rest of it.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not YAML or has a bad pack id / period type.
    """
    path = Path(path)
    where = str(path.resolve())
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"The pack file is not valid YAML: {getattr(exc, 'problem', None) or exc}.",
                          where=f"{where}, line {mark.line + 1}" if mark else where,
                          fix="Check indentation and quoting at that line.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The pack file cannot be read: {exc}.", where=where,
                          fix="Make it a readable UTF-8 file.") from None
    data = _mapping(data, "The file", where)
    period = _mapping(data.get("period"), "period", where)
    delivery = _mapping(data.get("delivery"), "delivery", where)
    units = _mapping(data.get("units"), "units", where)
    output = _mapping(data.get("output"), "output", where)
    from cxpipeline.config import BrandConfig, Config, DeliveryConfig, OutputConfig, PeriodConfig

    def default(model, name: str):  # one set of defaults: the config's own
        return model.model_fields[name].default

    pack_id = str(data.get("pack_id", default(Config, "pack_id")))
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", pack_id):
        raise ConfigError(f"pack_id {pack_id!r} may hold only letters, digits, _ and - (1-64).", where=where,
                          fix="e.g. pack_id: retail_uk")
    kind = str(period.get("type", default(PeriodConfig, "type")))
    if kind not in PERIOD_TYPES:
        raise ConfigError(f"period.type {kind!r} is not one of {', '.join(PERIOD_TYPES)}.", where=where,
                          fix="e.g. period: {type: week}")
    by = units.get("by") or []
    try:
        fiscal = int(period.get("fiscal_year_start_month", default(PeriodConfig, "fiscal_year_start_month")))
    except (TypeError, ValueError):
        raise ConfigError("period.fiscal_year_start_month must be a month number 1-12.", where=where,
                          fix="e.g. fiscal_year_start_month: 4") from None
    return PackHeader(
        path=where, pack_id=pack_id, kind=kind, fiscal_year_start_month=fiscal,
        comparison=str(period.get("comparison", default(PeriodConfig, "comparison"))),
        company_name=str(_mapping(data.get("brand"), "brand", where).get(
            "company_name", default(BrandConfig, "company_name"))),
        recipients=[str(r) for r in delivery.get("recipients") or []],
        smtp_conn_id=str(delivery.get("smtp_conn_id", default(DeliveryConfig, "smtp_conn_id"))),
        units_by=[by] if isinstance(by, str) else [str(b) for b in by],
        unit_recipients={str(k): [str(a) for a in v or []] for k, v in _mapping(units.get("recipients"), "units.recipients", where).items()},
        output_root=str(output.get("root", default(OutputConfig, "root"))),
    )


def fallback_pack_id(path: str | Path) -> tuple[str, str, int]:
    """The pack id, period type and fiscal start of a file :func:`read_pack_header` refused,
    read line by line (``pack_id: x`` at the top level), else the file's name, ``quarter`` and
    1: a broken file keeps its DAG id and schedule, so its runs fail loudly instead of the DAG
    disappearing."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    found, kind, fiscal = _PACK_ID.search(text), _PERIOD_TYPE.search(text), _FISCAL.search(text)
    return (found.group(1) if found else re.sub(r"[^A-Za-z0-9_-]", "_", Path(path).stem)[:64],
            kind.group(1) if kind else "quarter", int(fiscal.group(1)) if fiscal else 1)


def pack_files(folder: str | Path | None, variable: str = "CXPIPELINE_PACKS_DIR") -> list[Path]:
    """The ``*.yaml`` / ``*.yml`` pack files of ``folder``, sorted.

    Raises
    ------
    ConfigError
        If the folder is not set, does not exist or holds no pack file (an Airflow without any
        pack DAG must say why, as an import error).
    """
    if folder is None or not str(folder).strip():
        raise ConfigError(f"{variable} is not set, so there is no folder of pack files.", where=variable,
                          fix=f"Set {variable} to the folder holding the pack YAML files "
                              "(e.g. examples/airflow/packs) for the dag-processor and scheduler.")
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"The pack folder {str(root.resolve())!r} does not exist.", where=variable,
                          fix=f"Point {variable} at the folder holding the pack YAML files.")
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ConfigError(f"The pack folder {str(root.resolve())!r} holds no *.yaml file.", where=variable,
                          fix="Add a pack definition (see examples/airflow/packs/demo.yaml).")
    return files


def period_of_run(config, label: str | None = None, interval_start: datetime | None = None,
                  interval_end: datetime | None = None) -> Period:
    """The period a run reports: ``label`` (a manual run's ``period``), else the period
    containing the middle of the data interval (a scheduled run or a backfill), else the latest
    complete period of the data (a manual run without a period nor a data interval).

    Raises
    ------
    ConfigError
        If ``label`` cannot be read as a period.
    """
    from cxpipeline.pipeline import resolve_period

    label = (label or "").strip()
    if label:
        return resolve_period(config, label)
    if interval_start is not None and interval_end is not None:
        middle = interval_start + (interval_end - interval_start) / 2  # safe in any time zone
        return period_containing(middle.date(), config.period.type, config.period.fiscal_year_start_month)
    import pandas as pd

    from cxpipeline.sources import load_source, pushdown_kind, pushdown_last_day

    if pushdown_kind(config) is not None:  # a warehouse / Parquet file: ask the engine, load nothing
        last = pd.Timestamp(pushdown_last_day(config) or pd.NaT)
    else:
        last = load_source(config).transactions["ordered_at"].max()
    return resolve_period(config, None, None if pd.isna(last) else last.date())


def _json(result: Any) -> Any:
    return json.loads(json.dumps(result, default=str))  # XCom and stdout: JSON only


def _period(config, label: str) -> Period:
    return parse_period(label, config.period.fiscal_year_start_month)


def start_run(config_path: str | Path, *, period: str | None = None, interval_start: datetime | None = None,
              interval_end: datetime | None = None, output_root: str | Path | None = None) -> dict:
    """Validate the config, decide the period of the run (:func:`period_of_run`) and extract it.

    Returns the extract's summary with ``period``, ``title`` and ``config_hash``.
    """
    from cxpipeline.config import config_hash, load_config
    from cxpipeline.pipeline import extract, quiet_library_logs

    quiet_library_logs()
    config = load_config(config_path)
    chosen = period_of_run(config, period, interval_start, interval_end)
    summary = extract(config, chosen, output_root)
    return _json({**summary, "folder": str(Path(summary["folder"]).resolve()), "period": chosen.label,
                  "title": chosen.title, "config_hash": config_hash(config)})


def run_stage(stage: str, config_path: str | Path, previous: dict | str, output_root: str | Path | None = None) -> dict:
    """Run one stage (``validate``, ``metrics``, ``model``, ``render``, ``check``) of a period.

    ``previous`` is the previous stage's result (or a period label); the result carries its
    ``period`` and ``title`` on, so each task needs only the one before it.
    """
    from cxpipeline import pipeline
    from cxpipeline.config import load_config

    pipeline.quiet_library_logs()
    config = load_config(config_path)
    chosen = _period(config, previous if isinstance(previous, str) else previous["period"])
    carried = {"period": chosen.label, "title": chosen.title}
    if stage == "validate":
        from cxpipeline.validation import gate_extract

        folder = pipeline.pack_folder(config, chosen, output_root)
        return _json({**carried, **gate_extract(folder, chosen), "folder": str(folder.resolve())})
    if stage not in _STAGES:
        raise ConfigError(f"Unknown stage {stage!r}.", fix=f"Use validate or one of {', '.join(_STAGES)}.")
    result = getattr(pipeline, _STAGES[stage])(config, chosen, output_root)
    for key in ("folder", "pdf"):
        if result.get(key):
            result[key] = str(Path(result[key]).resolve())
    return _json({**carried, **result})


def run_units(config_path: str | Path, period: str, output_root: str | Path | None = None, *,
              only: str | None = None) -> list[dict]:
    """The units the run's extract found (:func:`cxpipeline.units.find_units`), as dicts;
    ``only``: just the unit of that name (or slug), for a rerun of one unit.

    Raises
    ------
    ConfigError
        If ``only`` names no unit of the extract.
    """
    from cxpipeline.config import load_config
    from cxpipeline.pipeline import pack_folder
    from cxpipeline.units import find_units, unit_slug

    config = load_config(config_path)
    units = find_units(config, pack_folder(config, _period(config, period), output_root))
    if only and only.strip():
        units = [u for u in units if u.name.lower() == only.strip().lower() or u.slug == unit_slug(only)]
        if not units:
            raise ConfigError(f"No unit named {only!r} in this run's extract.", where="the unit param",
                              fix="Leave it empty for every unit, or name one listed by the units task.")
    return [u.to_dict() for u in units]


def build_unit(config_path: str | Path, period: str, unit: dict, output_root: str | Path | None = None, *,
               store: Any = None, public_url: str | None = None, published_at: str | None = None) -> dict:
    """Build, render and check one unit's pack (:func:`cxpipeline.units.build_unit_pack`), then
    publish it like the company pack (:func:`publish`: under ``<pack_id>--<unit>/<period>/``
    with its own ``LATEST.json``) when ``store`` is given.

    Returns the unit's summary with ``published`` (``{"url": None}`` without a store).
    """
    from cxpipeline.config import load_config
    from cxpipeline.pipeline import quiet_library_logs
    from cxpipeline.units import build_unit_pack

    quiet_library_logs()
    config = load_config(config_path)
    result = build_unit_pack(config, _period(config, period), unit, output_root)
    result = {**result, "folder": str(Path(result["folder"]).resolve()), "pdf": str(Path(result["pdf"]).resolve())}
    return publish(result, store, public_url=public_url, published_at=published_at)


@dataclass(frozen=True)
class ArtifactStore:
    """Where checked packs are published (docs/airflow.md, "Publishing to object storage")."""

    url: str | None = None  # $CXPIPELINE_ARTIFACT_URL: s3://, gs://, file://, memory:// or a path
    public_url: str | None = None  # $CXPIPELINE_ARTIFACT_PUBLIC_URL: the https address serving it
    conn_id: str | None = None  # $CXPIPELINE_ARTIFACT_CONN_ID: the Airflow connection (the DAG only)

    def root(self):
        """The store's root as a path object (universal_pathlib), or None when not configured;
        the DAG builds an Airflow ``ObjectStoragePath`` instead (plugins/cx_airflow.py)."""
        from cxpipeline.publish import storage_path

        return storage_path(self.url) if self.url else None


def artifact_store(environ: dict | None = None) -> ArtifactStore:
    """The artifact store of ``$CXPIPELINE_ARTIFACT_URL``, ``$CXPIPELINE_ARTIFACT_PUBLIC_URL`` and
    ``$CXPIPELINE_ARTIFACT_CONN_ID`` (empty values: unset).

    Raises
    ------
    ConfigError
        If the public URL is not an ``http(s)`` URL (an email could not link it).
    """
    import os

    from cxpipeline.links import public_link

    environ = os.environ if environ is None else environ
    url, public, conn = (environ.get(f"CXPIPELINE_ARTIFACT_{k}", "").strip() or None
                         for k in ("URL", "PUBLIC_URL", "CONN_ID"))
    if public and not public_link(public):
        raise ConfigError(f"CXPIPELINE_ARTIFACT_PUBLIC_URL {public!r} is not an http(s) URL.",
                          where="CXPIPELINE_ARTIFACT_PUBLIC_URL",
                          fix="Give the https address that serves CXPIPELINE_ARTIFACT_URL "
                              "(e.g. https://packs.example.com), or unset it (emails then link nothing).")
    if public and not url:
        raise ConfigError("CXPIPELINE_ARTIFACT_PUBLIC_URL is set but CXPIPELINE_ARTIFACT_URL is not.",
                          where="CXPIPELINE_ARTIFACT_PUBLIC_URL",
                          fix="Set CXPIPELINE_ARTIFACT_URL to the store it serves, or unset both.")
    return ArtifactStore(url=url, public_url=public, conn_id=conn)


def _destination(store: Any, folder: Path, public_url: str | None):
    """``<store>/<pack folder>/<period>`` (the pack folder is ``<pack_id>`` or ``<pack_id>--<unit>``)
    and its public address."""
    from cxpipeline.publish import storage_path

    root = storage_path(store.strip()) if isinstance(store, str) else store
    pack, period = folder.parent.name, folder.name
    public = f"{public_url.strip().rstrip('/')}/{pack}/{period}" if public_url and public_url.strip() else None
    return root / pack / period, public


def publish(result: dict, store: Any = None, *, public_url: str | None = None,
            published_at: str | None = None) -> dict:
    """Publish a checked pack, the company's or a unit's, to ``<store>/<pack folder>/<period>/``
    (:func:`cxpipeline.publish.publish_pack`: a new version, then its ``LATEST.json``).

    Parameters
    ----------
    result
        The check step's (or :func:`build_unit`'s) result; its ``folder`` is the pack folder.
    store
        ``None`` or empty (not configured: nothing is published), a URL or path, or a
        pathlib-like root (Airflow's ``ObjectStoragePath``).
    public_url
        The ``http(s)`` address serving the store's root: the email then links the PDF's
        address under it (``pdf_link``).
    published_at
        An ISO timestamp recorded in the pointer (the caller's clock).

    Returns
    -------
    dict
        ``result`` with ``published``: the publish result, or ``{"url": None}``.

    Raises
    ------
    CheckError
        If the pack is not checked or its PDF changed since.
    """
    if store is None or (isinstance(store, str) and not store.strip()):
        return _json({**result, "published": {"url": None}})
    from cxpipeline.publish import publish_pack

    folder = Path(result["folder"]).resolve()
    destination, public = _destination(store, folder, public_url)
    return _json({**result, "published": publish_pack(folder, destination, published_at=published_at,
                                                      public_url=public)})


def published_copy(folder: str | Path, store: Any = None, *, public_url: str | None = None) -> dict | None:
    """What is published for a pack folder (its committed ``LATEST.json``), in the shape
    :func:`publish` returns; ``None`` without a store or when nothing was published there."""
    if store is None or (isinstance(store, str) and not store.strip()):
        return None
    from cxpipeline.errors import InputError
    from cxpipeline.publish import POINTER_NAME, public_pdf_link, published_file, read_pointer

    destination, public = _destination(store, Path(folder).resolve(), public_url)
    try:
        pointer = read_pointer(destination)
    except InputError:
        return None
    pdf_url = str(published_file(destination, pointer=pointer))
    return {"url": str(destination), "pointer": str(destination / POINTER_NAME), "version": pointer["version"],
            "pdf_url": pdf_url, "pdf_link": public_pdf_link(public, pointer["version"], pdf_url),
            "pdf_sha256": pointer["pdf_sha256"]}


def deliver(config_path: str | Path, folder: str | Path, *, smtp, recipients: list[str] | str | None = None,
            resend: bool = False, dry_run: bool = False, published: dict | None = None,
            unit: str | None = None, backoff_seconds: float | None = None) -> dict:
    """Email a checked pack: the one delivery of the DAG's ``deliver`` tasks and ``cxpipeline send``.

    Parameters
    ----------
    config_path
        The company config (a unit's config is derived from it with ``unit``).
    folder
        The pack's folder (holding the checked ``board_pack.pdf``).
    smtp
        :class:`cxpipeline.delivery.SmtpSettings`; its ``retries`` (an Airflow connection's
        ``retry_limit``) bound the retries of a transient SMTP failure.
    recipients
        Override of the config's (or the unit's) recipients.
    published
        The ``publish`` step's result (or :func:`published_copy`): when it names a URL, the
        local PDF must be the published one, the ledger records the pointer's URL and the email
        links the published PDF's ``http(s)`` address (``pdf_link``), if it has one. Without it
        the email links nothing (never a path or a pointer).
    unit
        The unit of a per-unit pack (its recipients, subject and ledger key).
    backoff_seconds
        First wait between SMTP retries (default: ``CXPIPELINE_SMTP_BACKOFF_SECONDS``, else 2).

    Returns
    -------
    dict
        The :class:`cxpipeline.delivery.DeliveryReport` as a dict.

    Raises
    ------
    CheckError
        If the local PDF is not the published one, or the pack is not deliverable.
    DeliveryError
        If a recipient was not sent the pack (transient when every failure was).
    """
    from cxpipeline.artifacts import read_json, sha256_file
    from cxpipeline.config import config_hash, load_config
    from cxpipeline.delivery import send_pack
    from cxpipeline.errors import CheckError
    from cxpipeline.units import unit_config

    import os

    if backoff_seconds is None:
        backoff_seconds = float(os.environ.get("CXPIPELINE_SMTP_BACKOFF_SECONDS", "2"))
    config = load_config(config_path)
    if unit is not None:
        config = unit_config(config, unit)
    folder = Path(folder).resolve()
    pdf = folder / "board_pack.pdf"  # the local checked file, never a download
    period = folder.name
    location, link = str(folder), None
    if published and published.get("url"):
        if sha256_file(pdf) != published["pdf_sha256"]:
            raise CheckError("The local PDF is not the one that was published.", where=str(pdf),
                             fix="Rerun the period from extract (it publishes the checked pack again).")
        location = published["pointer"]  # the operator's record: readers go through the pointer
        link = published.get("pdf_link")  # the executive's: the PDF itself, only over http(s)
    recipients = recipients or config.delivery.recipients
    if unit is not None and not recipients:  # a unit nobody subscribed to: built, not sent
        return {"pack_id": config.pack_id, "period": period, "unit": unit, "sent": [], "skipped": [],
                "failed": {}, "dry_run": dry_run, "note": "no recipients for this unit"}
    report = send_pack(
        pdf, recipients, period_label=period, pack_id=config.pack_id,
        summary=read_json(folder / "metrics.json"), smtp=smtp, resend=resend, dry_run=dry_run,
        allowed_domains=config.delivery.allowed_domains, config_hash=config_hash(config),
        subject=config.delivery.subject.format(company=config.brand.company_name, period=period,
                                               pack_id=config.pack_id),
        artifact_location=location, link=link, currency=config.currency, locale=config.locale,
        customers=config.terminology.customers, backoff_seconds=backoff_seconds, unit=unit)
    report.raise_for_failures()
    return _json(report.to_dict())


_ADVERB = {"week": "every ISO week (Monday to Sunday)", "month": "every month", "quarter": "every quarter",
           "year": "every year"}


def operator_doc(header: PackHeader, *, artifact_url: str | None = None, output_root: str | None = None) -> str:
    """The Markdown page an operator reads on the DAG in the Airflow UI."""
    fiscal = (f", fiscal year from month {header.fiscal_year_start_month}"
              if header.fiscal_year_start_month != 1 and header.kind not in ("week", "month") else "")
    root = output_root or header.output_root
    where = f"`{root}/{header.pack_id}/<period>/board_pack.pdf`"
    if artifact_url:
        where += f", then published to `{artifact_url}/{header.pack_id}/<period>/` (`LATEST.json` points to it)"
    units = ""
    if header.units_by:
        listed = "".join(f"\n  - {name}: {', '.join(to) or 'nobody'}" for name, to in header.unit_recipients.items())
        units = (f"\n- **Unit packs**: one per `{' / '.join(header.units_by)}` found in the extract (the mapped "
                 f"task group `unit`: `unit.pack` and `unit.deliver` per unit; a failing unit fails only its own tasks), "
                 f"in `{root}/{header.pack_id}--<unit>/<period>/`"
                 + (f", each published to `{artifact_url}/{header.pack_id}--<unit>/<period>/`" if artifact_url else "")
                 + f". Recipients:{listed or ' none listed'}")
    example = {"week": "2026-W14", "month": "2026-03", "quarter": "2026-Q1", "year": "2026"}[header.kind]
    return f"""### {header.company_name} board pack `{header.pack_id}`

- **Builds** the board pack (PDF) of {_ADVERB[header.kind]}{fiscal}, compared with the
  {"same period last year" if header.comparison == "year_ago" else "previous period"}, about 6 h after the period ends.
- **Emails** {', '.join(header.recipients) or 'nobody (no delivery.recipients)'} through the Airflow connection `{header.smtp_conn_id}`.{units}
- **Writes** {where}.
- **Defined in** `{header.path}`.

**Rerun a period**: *Trigger DAG* with `period` = `{example}` (empty: the period of the run's data
interval, i.e. the latest {header.kind} that has ended). Recipients who already received the same PDF are
skipped: set `resend` to send again, `dry_run` to check without sending, `recipients` to send elsewhere,
`unit` to build and send one unit only. **Resend** without rebuilding: `cxpipeline send --config {header.path} --period {example} --resend`.

**Failures**: a permanent error (bad period, missing file, address outside the allowed domains, failed
checks) fails its task at once; SMTP and database connection errors are retried with backoff.
"""
