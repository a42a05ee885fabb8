"""The pipeline as stages: extract -> metrics -> model -> render -> check.

One module of ~570 lines on purpose: the stages share the artifact folder's lock, staging and
invalidation rules, which are read together with the stages they guard.

Each stage takes ``(config, period, output_root)``, reads what earlier stages wrote in the
artifact folder ``<output_root>/<pack_id>/<period>/``, writes its own files atomically and
returns a small JSON-able dict (always with ``"folder"``). Airflow tasks call the stages one by
one and pass only these dicts; the CLI calls :func:`run_pack`, which runs them all (the metrics
and model stages side by side on two or more CPUs).
The period is always a parameter; nothing reads the clock.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from cxpipeline.artifacts import ARTIFACT_MODE, artifact_dir, read_json, read_table, sha256_file, write_json, write_table
from cxpipeline.config import Config, config_hash
from cxpipeline.errors import CheckError, ConfigError, InputError
from cxpipeline.locking import pack_lock
from cxpipeline.panel import build_panel, customer_cadence
from cxpipeline.periods import Period, cadence_instants, comparison_period, latest_complete_period, parse_period
from cxpipeline.sources.aggregate import AFTER_PERIOD, PanelExtract
from cxpipeline.validation import gate_extract
from cxpipeline.versions import library_versions
from cxpipeline.quality import tie_out_row, to_cents
from cxpipeline.sources import SourceData, extract_pushdown, load_source, pushdown_kind, pushdown_last_day

__all__ = [
    "PackResult",
    "pack_folder",
    "resolve_period",
    "extract",
    "compute_metrics",
    "score_customers",
    "render_pack",
    "check_pack",
    "run_pack",
    "quiet_library_logs",
    "source_tie_out",
]

log = logging.getLogger(__name__)

# Libraries whose INFO records are about themselves, not the pack (font subsetting, pikepdf's
# "logger bridge initialized"); their warnings still show.
NOISY_LIBRARIES = ("weasyprint", "fontTools", "matplotlib", "pikepdf")


def quiet_library_logs() -> None:
    """Show only warnings and errors from :data:`NOISY_LIBRARIES` (CLI and Airflow tasks)."""
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class PackResult:
    folder: Path
    pdf_path: Path
    period: Period


def pack_folder(config: Config, period: Period, output_root: str | Path | None = None) -> Path:
    root = Path(output_root) if output_root is not None else config.resolve(config.output.root)
    # Resolved: logs, XCom and emails name /srv/out/..., not packs/../../../out/...
    return artifact_dir(root.resolve(), config.pack_id, period.label)


def resolve_period(config: Config, period_label: str | None, last_day_of_data: date | None = None,
                   say=None) -> Period:
    """The period to report: the given label, else the latest complete period of the data.

    "Complete" is judged against ``source.data_through`` when the config gives it (the day the
    export covers up to: a file may end on 30 December with nothing sold on the 31st), else
    against the last order date. ``say`` (a progress callback) is told which period was chosen
    and why.
    """
    fiscal = config.period.fiscal_year_start_month
    if period_label:
        try:
            period = parse_period(period_label, fiscal)
        except ConfigError as exc:
            exc.where = exc.where or "the period (--period, or the DAG's period param)"
            raise
        if period.kind != config.period.type:
            log.info("period %s is a %s; the config's default is %s", period.label, period.kind, config.period.type)
        return period
    through = getattr(config.source, "data_through", None)
    if through is None and last_day_of_data is None:
        raise InputError("No period given and the data has no dates.", fix="Pass --period, e.g. 2024-Q4.")
    basis = through or last_day_of_data
    period = latest_complete_period(basis, config.period.type, fiscal)
    if say is not None:
        if through is not None:
            say(f"period {period.label} chosen: the latest {period.kind} complete by source.data_through "
                f"({through:%Y-%m-%d})")
        else:
            hint = ("; if the data covers days after it with no sales, set source.data_through, or pass --period"
                    if config.source.kind != "demo" else "")
            say(f"period {period.label} chosen: the latest {period.kind} complete by the last order date "
                f"({last_day_of_data:%Y-%m-%d}){hint}")
    return period


# run_pack runs the metrics and model stages in two threads: each reads, updates and rewrites
# manifest.json, so one at a time.
_manifest_guard = threading.Lock()


def _update_manifest(folder: Path, stage: str, summary: dict, seconds: float) -> None:
    path = folder / "manifest.json"
    with _manifest_guard:
        manifest = read_json(path) if path.exists() else {"stages": {}}
        manifest["stages"][stage] = {**{k: v for k, v in summary.items() if k != "folder"},
                                     "seconds": round(seconds, 3)}
        write_json(path, manifest)


def _fingerprint(transactions: pd.DataFrame) -> str:
    hashes = pd.util.hash_pandas_object(transactions, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]


def _transaction_segments(transactions: pd.DataFrame, customers: pd.DataFrame | None, segments: list[str]) -> pd.DataFrame:
    """The customer table with segment columns taken from transactions where needed.

    A segment that lives on transactions (e.g. ``country`` of an invoice) is given to each
    customer as their most frequent value (ties: alphabetical), so segments are fixed per
    customer and segment rows add up to the overall row.
    """
    ids = pd.DataFrame({"customer_id": transactions["customer_id"].drop_duplicates().astype("string")})
    table = ids if customers is None else customers.merge(ids, on="customer_id", how="outer")
    for column in segments:
        if column in table.columns or column not in transactions.columns:
            continue
        counts = transactions.groupby(["customer_id", column], observed=True).size().rename("n").reset_index()
        counts = counts.sort_values(["customer_id", "n", column], ascending=[True, False, True])
        mode = counts.drop_duplicates("customer_id")[["customer_id", column]]
        mode[column] = mode[column].astype("string")
        table = table.merge(mode, on="customer_id", how="left")
    return table


def _locked(stage):
    """Run a stage holding its artifact folder's lock (see :mod:`cxpipeline.locking`); inside
    :func:`run_pack`, which holds it across all stages, the lock is re-entered, not re-taken."""

    @functools.wraps(stage)
    def locked_stage(config: Config, period: Period, output_root: str | Path | None = None, **kwargs):
        with pack_lock(pack_folder(config, period, output_root)):
            return stage(config, period, output_root, **kwargs)

    return locked_stage


# A new extract makes every later artifact of the folder stale: the old pack must not stay
# deliverable (or be emailed) next to new data, even if this run dies half way.
_STALE_ON_EXTRACT = ("checks.json", "board_pack.pdf", "board_pack.html", "manifest.json")
_STAGING_PREFIX = ".extract-"  # the extract's staging folders (see extract)


def _invalidate(folder: Path, names: tuple[str, ...], keep: Path | None = None) -> None:
    for name in names:
        (folder / name).unlink(missing_ok=True)
    if "manifest.json" in names:
        # Temporary files of a run that was killed mid-write (we hold the lock: no live writer).
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        for leftover in folder.glob(f"{_STAGING_PREFIX}*"):
            if leftover.is_dir() and leftover != keep:
                shutil.rmtree(leftover, ignore_errors=True)


def _extract_in_pandas(data: SourceData, config: Config, period: Period, comparison: Period) -> PanelExtract:
    """The extract computed from transactions loaded into pandas (demo and CSV sources)."""
    transactions = data.transactions
    quality = data.quality
    after = transactions["ordered_at"] >= pd.Timestamp(period.end)
    quality.record(AFTER_PERIOD, int(after.sum()), to_cents(transactions.loc[after, "revenue"]))
    used = transactions.loc[~after]
    if used.empty:
        raise InputError(
            f"No transactions before the end of {period.label}.",
            where=data.description,
            fix="Choose a later period; the data starts on "
            f"{transactions['ordered_at'].min():%Y-%m-%d}." if len(transactions) else "Check the source: it is empty.",
        )
    panel = build_panel(used, period.kind, period.fiscal_start_month, end=pd.Timestamp(period.end))
    monthly = panel if period.kind == "month" else build_panel(used, "month", end=pd.Timestamp(period.end))
    cadence = customer_cadence(used, cadence_instants(period, comparison, config.cadence_trend_periods))
    customers = _transaction_segments(used, data.customers, config.segments)
    first_day = transactions["ordered_at"].min()
    last_day = transactions["ordered_at"].max()
    ties = source_tie_out(data, [period, comparison])
    return PanelExtract(
        panel=panel, panel_monthly=monthly, cadence=cadence, customers=customers, quality=quality,
        description=data.description, first_ordered_at=None if pd.isna(first_day) else first_day,
        last_ordered_at=None if pd.isna(last_day) else last_day, fingerprint=_fingerprint(transactions),
        tie_out=ties,
    )


def source_tie_out(data: SourceData, periods: list[Period]) -> list[dict]:
    """Per period: rows and revenue dated in it in the source against those used
    (:func:`cxpipeline.quality.tie_out_row`), for a source loaded into pandas."""
    transactions, out = data.transactions, []
    for each in periods:
        inside = transactions.loc[(transactions["ordered_at"] >= pd.Timestamp(each.start))
                                  & (transactions["ordered_at"] < pd.Timestamp(each.end))]
        out.append(tie_out_row(each.label, each.title, len(inside), to_cents(inside["revenue"]),
                               data.quality.dated_in(each.start, each.end)))
    return out


@_locked
def extract(
    config: Config, period: Period, output_root: str | Path | None = None, *, data: SourceData | None = None
) -> dict:
    """Load the source and write the panel, customers, cadence and data-quality record.

    SQL sources and canonical Parquet files are aggregated where the data is (the warehouse or
    embedded DuckDB, see :func:`cxpipeline.sources.extract_pushdown`); other sources load transactions into
    pandas first. Both give the same artifacts. Nothing is written until everything is read.
    """
    from cxpipeline.provenance import claim_pack_root, stamp_manifest

    started = time.perf_counter()
    folder = pack_folder(config, period, output_root)
    claim_pack_root(config, folder.parent)  # before anything is read or withdrawn
    comparison = comparison_period(period, config.period.comparison)
    # Engines stream the panels into a staging folder beside the artifacts; they are moved into
    # place only once everything has been read.
    with tempfile.TemporaryDirectory(dir=folder, prefix=_STAGING_PREFIX) as stage:
        if data is None and pushdown_kind(config) is not None:
            result = extract_pushdown(config, period, comparison, stage_dir=stage)
        else:
            result = _extract_in_pandas(data or load_source(config), config, period, comparison)
        _invalidate(folder, _STALE_ON_EXTRACT, keep=Path(stage))
        stamp_manifest(config, folder)  # which config this pack is built from (checked by send)
        for name, staged in result.files.items():
            os.chmod(staged, ARTIFACT_MODE)
            os.replace(staged, folder / f"{name}.parquet")
    if not result.files:
        write_table(folder, "panel", result.panel, csv=False)
        write_table(folder, "panel_monthly", result.panel_monthly, csv=False)
        write_table(folder, "cadence", result.cadence, csv=False)
    write_table(folder, "customers", result.customers, csv=False)
    count_customers = (result.count_customers if result.count_customers is not None
                       else int(result.panel["customer_id"].nunique()))
    _sample_for_model(config, folder, count_customers, result.quality)
    from cxpipeline.masking import mask_extract

    mask_extract(config, folder)  # delivery.mask_customers: no later stage sees a raw id or name
    quality = result.quality
    panel = result.panel
    first_day = pd.Timestamp(result.first_ordered_at) if result.first_ordered_at is not None else pd.NaT
    last_day = pd.Timestamp(result.last_ordered_at) if result.last_ordered_at is not None else pd.NaT
    dq = {
        **quality.to_dict(),
        "source": result.description,
        "first_ordered_at": None if pd.isna(first_day) else f"{first_day:%Y-%m-%d}",
        "last_ordered_at": None if pd.isna(last_day) else f"{last_day:%Y-%m-%d}",
        "count_customers": count_customers,
        "count_panel_rows": result.count_panel_rows if result.count_panel_rows is not None else len(panel),
        "input_fingerprint": result.fingerprint,
        "is_period_complete": bool(pd.notna(last_day) and last_day.date() >= period.last_day),
        "period": period.label,
        "report_timezone": config.report_timezone,
        "tie_out": result.tie_out,
    }
    if not dq["is_period_complete"]:
        quality.notes.append(f"The data ends on {dq['last_ordered_at']}, before the end of {period.label}.")
        dq["notes"] = list(quality.notes)
    write_json(folder / "data_quality.json", dq)
    summary = {
        "folder": str(folder),
        "period": period.label,
        "rows_in": dq["rows_in"],
        "rows_used": dq["rows_used"],
        "count_customers": dq["count_customers"],
    }
    _update_manifest(folder, "extract", summary, time.perf_counter() - started)
    return summary


def _sample_for_model(config: Config, folder: Path, count_customers: int, quality) -> dict | None:
    """``panel_monthly_model``: the monthly panel of a fixed sample of customers, written only
    above ``model.max_customers_monthly`` (the model fits on it and still scores everyone); the
    data-quality notes say so."""
    from cxpipeline.panel import write_model_sample

    sample = write_model_sample(folder / "panel_monthly.parquet", folder / "panel_monthly_model.parquet",
                                count_customers, config.model.max_customers_monthly)
    if sample is not None:
        quality.notes.append(
            f"The at-risk and value models are fitted on a fixed sample of {sample['customers_in_sample']:,} of "
            f"{sample['customers']:,} customers ({sample['fraction']:.1%}, chosen by a hash of the customer id: "
            f"the same customers every run), since there are more than model.max_customers_monthly = "
            f"{sample['max_customers_monthly']:,}; every customer is scored.")
    return sample


@_locked
def compute_metrics(config: Config, period: Period, output_root: str | Path | None = None) -> dict:
    """Compute every metric table from the extracted panel; write tables and metrics.json."""
    from cxpipeline.metrics.tables import MetricInputs, compute_tables, headline

    started = time.perf_counter()
    folder = pack_folder(config, period, output_root)
    comparison = comparison_period(period, config.period.comparison)
    inputs = MetricInputs(
        panel=read_table(folder, "panel"),
        customers=read_table(folder, "customers"),
        cadence=read_table(folder, "cadence"),
        period=period,
        comparison=comparison,
    )
    tables = compute_tables(inputs, config)
    for name, table in tables.items():
        # CSV copies are for the summary tables an analyst opens in a spreadsheet; the
        # per-customer rows (hundreds of thousands at scale) stay in Parquet only.
        write_table(folder, name, table, csv=not name.endswith("_customers"))
    summary = {
        "period": period.label,
        "period_title": period.title,
        "comparison": comparison.label,
        "comparison_title": comparison.title,
        "comparison_basis": config.period.comparison,
        "headline": headline(tables),
        "segments": list(config.segments),
        "tables": sorted(tables),
    }
    write_json(folder / "metrics.json", summary)
    _update_manifest(folder, "metrics", {"tables": sorted(tables)}, time.perf_counter() - started)
    return {"folder": str(folder), "period": period.label, "headline": summary["headline"]}


@_locked
def score_customers(config: Config, period: Period, output_root: str | Path | None = None) -> dict:
    """Fit the at-risk model on earlier snapshots and score every customer at the period end.

    Writes ``scores`` (ranked by value at risk) and ``model_report.json`` (training window,
    features, versions, the backtest on the latest fully observed snapshot, and last period's
    at-risk list checked against what happened since).
    """
    from cxpipeline.model import fit_and_score, review_previous_list, score_period
    from cxpipeline.model.features import MODEL_PANEL_COLUMNS, features_in_chunks, sorted_by_period

    started = time.perf_counter()
    folder = pack_folder(config, period, output_root)
    # Above model.max_customers_monthly the extract wrote a fixed sample of customers' monthly
    # rows (panel_monthly_model): the fits and backtests use it, every customer is scored from
    # features read from the whole panel in chunks (never the whole panel at once).
    sample_file = folder / "panel_monthly_model.parquet"
    sampled = sample_file.is_file()
    monthly = read_table(folder, "panel_monthly_model" if sampled else "panel_monthly", columns=MODEL_PANEL_COLUMNS)
    # Customer ids as a categorical with sorted categories: one factorize of the strings here,
    # then sorting the rows by period and each fit's factorize (sort=True gives the same codes
    # as on the strings) work on integer codes, not 5M strings.
    codes, ids = pd.factorize(monthly["customer_id"], sort=True)
    monthly["customer_id"] = pd.Categorical.from_codes(codes, categories=pd.Index(ids, dtype="string"))
    monthly = sorted_by_period(monthly)  # snapshots: slices
    customers = read_table(folder, "customers")
    segments = [s for s in config.segments if s in customers.columns]
    options = {"horizon_days": config.model.horizon_days, "random_state": config.model.random_state,
               "segment_columns": segments}
    score_features = (functools.partial(features_in_chunks, folder / "panel_monthly.parquet") if sampled else None)
    result = score_period(monthly, customers, period.last_day, score_features=score_features, **options)
    report = dict(result.report)
    if sampled:
        in_sample = int(monthly["customer_id"].nunique())
        total = int(read_json(folder / "data_quality.json")["count_customers"])
        report["customer_sample"] = {
            "customers_in_sample": in_sample, "customers": total, "fraction": round(in_sample / total, 6),
            "max_customers_monthly": config.model.max_customers_monthly, "scored": "every customer"}
        report["messages"] = [
            f"Fitted and backtested on a fixed sample of {in_sample:,} of {total:,} customers "
            f"({in_sample / total:.1%}, by a hash of the customer id; model.max_customers_monthly = "
            f"{config.model.max_customers_monthly:,}); every customer is scored. Last period's list is "
            "reviewed within the sample."] + list(report.get("messages", []))
    # Last period's list as it would have been printed then (fitted on data up to its end only),
    # checked against the purchases made since.
    previous = period.previous()
    previous_end = pd.Timestamp(previous.end)
    if period.kind == "week" and period.start.day != 1:
        # The monthly panel shows a customer as of a month start only: a weekly pack reviews
        # the list scored at the start of the week's month (docs/airflow.md, "Weekly packs").
        previous_end = pd.Timestamp(period.start.replace(day=1))
    # For a quarter and a 90-day horizon the backtest already fitted at last period's end, on
    # the same rows with the same options: the same list, so it is not fitted twice.
    previous_scores = result.fits.get(previous_end)
    if previous_scores is None:
        previous_scores, _, _ = fit_and_score(monthly, customers, previous_end, with_drivers=False,
                                              method=report["method"], value_method=report["value_model"]["method"],
                                              **options)
    review_from = (previous_end - pd.Timedelta(days=1)).date()
    report["previous_list_review"] = review_previous_list(previous_scores, monthly, review_from, period.last_day)
    write_table(folder, "scores", result.scores)
    write_json(folder / "model_report.json", report)
    summary = {"method": report.get("method"), "count_scored": len(result.scores),
               "backtest_auc": result.backtest.get("model", {}).get("roc_auc")}
    _update_manifest(folder, "model", summary, time.perf_counter() - started)
    return {"folder": str(folder), **summary}


@_locked
def render_pack(config: Config, period: Period, output_root: str | Path | None = None) -> dict:
    """Render board_pack.html and board_pack.pdf from the metric tables."""
    from cxpipeline.report import render_board_pack

    started = time.perf_counter()
    folder = pack_folder(config, period, output_root)
    _invalidate(folder, ("checks.json",))  # the new PDF is unchecked until check_pack passes
    result = render_board_pack(folder, config)
    summary = {"folder": str(folder), "pdf": str(result["pdf"]), "pages": result["pages"]}
    _update_manifest(folder, "render", summary, time.perf_counter() - started)
    return summary


@_locked
def check_pack(config: Config, period: Period, output_root: str | Path | None = None) -> dict:
    """Check the pack before it may be delivered; raise CheckError when it must not be sent."""
    from cxpipeline.checks import run_checks

    started = time.perf_counter()
    folder = pack_folder(config, period, output_root)
    report = run_checks(folder, config)
    pdf = folder / "board_pack.pdf"
    # Which PDF passed: a sender can verify it is sending exactly the checked file.
    report["pdf_sha256"] = sha256_file(pdf) if pdf.is_file() else None
    write_json(folder / "checks.json", report)
    _update_manifest(folder, "check", {"is_deliverable": report["is_deliverable"]}, time.perf_counter() - started)
    if not report["is_deliverable"]:
        failed = [c for c in report["checks"] if not c["is_passed"]]
        raise CheckError(
            f"The pack for {period.label} failed {len(failed)} check(s): "
            + "; ".join(f"{c['name']}: {c['detail']}" for c in failed),
            where=str(folder / "checks.json"),
            fix="Fix the data or configuration named above and rerun the period; the pack was not marked deliverable.",
        )
    return {"folder": str(folder), "is_deliverable": True, "pdf": str(folder / "board_pack.pdf")}


def _write_run_manifest(config: Config, period: Period, folder: Path) -> None:

    path = folder / "manifest.json"
    manifest = read_json(path) if path.exists() else {"stages": {}}
    dq = read_json(folder / "data_quality.json")
    manifest.update(
        {
            "pack_id": config.pack_id,
            "period": period.label,
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "comparison_basis": config.period.comparison,
            "config_hash": config_hash(config),
            "input_fingerprint": dq["input_fingerprint"],
            "source": dq["source"],
            "row_counts": {k: dq[k] for k in ("rows_in", "rows_used", "rows_excluded")},
            "excluded_by_reason": dq["excluded_by_reason"],
            # How the data was read (date and amount formats, rows kept or left out) and the
            # period's tie-out against the source: the same words as the data-quality page.
            "notes": dq.get("notes", []),
            "report_timezone": dq.get("report_timezone"),
            "tie_out": dq.get("tie_out", []),
            "versions": library_versions(),
        }
    )
    write_json(path, manifest)


def run_pack(
    config: Config,
    period_label: str | None = None,
    output_root: str | Path | None = None,
    *,
    progress=None,
) -> PackResult:
    """Run every stage for one period and return where the pack is.

    The metrics and model stages both read only the extract's artifacts: with two or more CPUs
    they run at the same time, in two threads (``CXPIPELINE_SERIAL_STAGES=1``: one after the
    other, when memory is tight: the two peaks then add up).
    """
    say = progress or (lambda message: log.info(message))
    if pushdown_kind(config) is not None:  # aggregated where the data is: never loaded here
        data = None
        # the last order date only picks the default period (a scan of the whole table in SQL)
        last = pd.NaT if period_label else pd.Timestamp(pushdown_last_day(config) or pd.NaT)
    else:
        say("loading source ...")
        data = load_source(config)
        last = data.transactions["ordered_at"].max()
    period = resolve_period(config, period_label, None if pd.isna(last) else last.date(), say=say)
    folder = pack_folder(config, period, output_root)
    say(f"period {period.title}; artifacts in {folder}")
    # One lock across all stages: a concurrent run of this period waits for the whole run.
    with pack_lock(folder):
        stages = _stages()
        together = _side_by_side(stages)
        if together:
            _import_in_background(LATER_IMPORTS)
        for name, stage in stages:
            if together and name == together[1][0]:
                continue  # ran alongside the stage before it
            if together and name == together[0][0]:
                say(f"{name} and {together[1][0]} ...")
                _run_side_by_side(together, config, period, output_root, say)
                continue
            say(f"{name} ...")
            t0 = time.perf_counter()
            if name == "extract":
                stage(config, period, output_root, data=data)
                # The same gate as the DAG's validate task: a pack is never built (or marked
                # deliverable) from an extract that does not cover the period or lost too much.
                summary = gate_extract(folder, period)
                for warning in summary["warnings"]:
                    say(f"warning: {warning}")
            else:
                stage(config, period, output_root)
            say(f"{name} done in {time.perf_counter() - t0:.1f} s")
        _write_run_manifest(config, period, folder)
    return PackResult(folder=folder, pdf_path=folder / "board_pack.pdf", period=period)


#: Libraries only the later stages import: scikit-learn and SciPy (model), WeasyPrint, matplotlib
#: and Jinja (render), pikepdf (checks). Their imports take ~1.3 s; with two CPUs run_pack
#: imports them in a background thread while the extract runs (DuckDB leaves the interpreter
#: free), not on the pack's critical path. Third-party packages only: none imports cxpipeline,
#: so no import cycle can run across the two threads.
LATER_IMPORTS = ("sklearn.linear_model", "sklearn.calibration", "sklearn.metrics", "scipy.stats", "scipy.optimize",
                 "weasyprint", "matplotlib.figure", "matplotlib.backends.backend_agg", "jinja2", "pikepdf")


def _import_in_background(names: tuple[str, ...]) -> threading.Thread:
    """Import ``names`` in a daemon thread; a failure is left to the stage that imports it."""
    import importlib

    def run() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the stage's own import reports it, where it matters
                log.debug("background import of %s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name="cxpipeline-imports", daemon=True)
    thread.start()
    return thread


#: Environment variable: set to 1 to run every stage of :func:`run_pack` one after the other.
SERIAL_STAGES_ENV = "CXPIPELINE_SERIAL_STAGES"
#: Stages that read only the extract's artifacts and write different files: with two or more
#: CPUs, run_pack runs them at the same time (the pack then waits for the longer of the two).
_SIDE_BY_SIDE = ("metrics", "model")


def _side_by_side(stages: list) -> tuple | None:
    """The two stages :func:`run_pack` runs at the same time, or None (one CPU, or
    ``CXPIPELINE_SERIAL_STAGES=1``: the peak memory is then one stage's, not the two's sum)."""
    by_name = dict(stages)
    if os.environ.get(SERIAL_STAGES_ENV, "").strip() not in ("", "0") or not all(n in by_name for n in _SIDE_BY_SIDE):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return tuple((n, by_name[n]) for n in _SIDE_BY_SIDE) if cpus >= 2 else None


def _run_side_by_side(pair: tuple, config: Config, period: Period, output_root, say) -> None:
    """Run two stages at once: the second in a worker thread, the first in this one.

    For :func:`run_pack`, which holds the folder's lock: the worker runs the second stage's
    unlocked body (taking the lock from another thread would wait for this one). Both have
    finished when this returns or raises, so nothing writes into the folder once the lock is
    released; the first stage's error is raised first (the second's is logged), else the second's.
    """
    (first_name, first), (second_name, second) = pair

    def timed(name, stage):
        t0 = time.perf_counter()
        stage(config, period, output_root)
        say(f"{name} done in {time.perf_counter() - t0:.1f} s")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cxpipeline-{second_name}") as pool:
        worker = pool.submit(timed, second_name, getattr(second, "__wrapped__", second))
        try:
            timed(first_name, first)
        except BaseException:
            if worker.exception() is not None:  # waits for the worker
                log.error("the %s stage failed too: %s", second_name, worker.exception())
            raise
        worker.result()


def _stages():
    return [
        ("extract", extract),
        ("metrics", compute_metrics),
        ("model", score_customers),
        ("render", render_pack),
        ("check", check_pack),
    ]
