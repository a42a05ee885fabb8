"""Per-unit packs: the same pack computed on one unit's customers (a region, a channel, ...).

``units: {by: region, recipients: {North: [a@example.com]}}`` in a config asks for one pack per
value of ``region`` (``by: [region, channel]``: one per pair, named ``North / Online``) beside
the company pack. A unit's pack is built from the company run's one extract, never by reading
the source again:

1. :func:`find_units` lists the units the extract found (the ``by`` columns of its
   ``customers`` table) with each unit's recipients (``units.recipients``, or the addresses in
   ``units.recipients_column`` of the customers table);
2. :func:`build_unit_pack` filters the company folder's panel, monthly panel, cadence and
   customers to the unit's customers into the unit's own folder, takes the unit's rows of the
   company's scores (the at-risk model is fitted once, on every customer; each unit's list is
   re-ranked within the unit), then computes the unit's metric tables (its own bridge, ledger,
   tiers), renders and checks them with the ordinary stages.

A unit's pack lives in ``<output root>/<pack_id>--<unit slug>/<period>/`` under the config
:func:`unit_config` derives (pack id, the unit in the company name, so in the title, the file
name and the email subject; the unit's recipients; the ``by`` columns no longer segments, since
they hold one value). Every unit's bridge adds up to the company's: the units partition the
customers.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from cxpipeline.artifacts import read_json, read_table, write_json, write_table
from cxpipeline.config import Config
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import Period

__all__ = ["Unit", "UNIT_SEPARATOR", "unit_slug", "unit_pack_id", "unit_config", "find_units", "build_unit_pack", "run_units"]

#: Joins the values of a two-level unit into its name: ``North / Online``.
UNIT_SEPARATOR = " / "
# The extract's tables a unit's folder holds, filtered to the unit's customers.
_EXTRACT_TABLES = ("panel", "panel_monthly", "cadence", "customers")


@dataclass(frozen=True)
class Unit:
    """One unit: its name (``North`` or ``North / Online``), slug, values and recipients."""

    name: str
    slug: str
    values: dict[str, str]
    recipients: list[str]
    count_customers: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def unit_slug(name: str) -> str:
    """``North / Online`` -> ``north-online`` (folder names, pack ids, Airflow map indexes)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return slug or "unit"


def unit_pack_id(pack_id: str, slug: str) -> str:
    """``<pack_id>--<slug>``, at most 64 characters (the pack id rule). A longer one keeps its
    start and ends with 8 hex digits of the slug's hash: cut short alone, two long unit names
    that begin alike ("... Accounts East", "... Accounts West") would share a folder."""
    full = f"{pack_id}--{slug}"
    if len(full) <= 64:
        return full
    return f"{full[:55].rstrip('-')}-{hashlib.sha256(slug.encode('utf-8')).hexdigest()[:8]}"


def unit_config(config: Config, unit: Unit | str) -> Config:
    """The config of one unit's pack (see the module docstring).

    Raises
    ------
    ConfigError
        If the config asks for no units.
    """
    if config.units is None:
        raise ConfigError("This config asks for no per-unit packs.", where=config.config_origin,
                          fix="Add units: {by: region} to the config.")
    name = unit.name if isinstance(unit, Unit) else str(unit)
    recipients = (unit.recipients if isinstance(unit, Unit)
                  else list(config.units.recipients.get(name, [])))
    pack_id = unit_pack_id(config.pack_id, unit_slug(name))
    return config.model_copy(update={
        "pack_id": pack_id,
        "brand": config.brand.model_copy(update={"company_name": f"{config.brand.company_name} - {name}"}),
        "delivery": config.delivery.model_copy(update={"recipients": recipients}),
        "output": config.output.model_copy(update={"edition": config.units.edition or config.output.edition}),
        "segments": [s for s in config.segments if s not in config.units.columns],
        "units": None,
    })


def _unit_names(customers: pd.DataFrame, columns: list[str]) -> pd.Series:
    missing = [c for c in columns if c not in customers.columns]
    if missing:
        raise ConfigError(f"units.by names column(s) {', '.join(missing)} the customers table does not have.",
                          where="units.by",
                          fix="Use a customer column (see the customers table of the extract, e.g. region) "
                              "and list it in segments or source.segment_columns.")
    parts = [customers[c].astype("string").fillna("(none)") for c in columns]
    names = parts[0]
    for part in parts[1:]:
        names = names + UNIT_SEPARATOR + part
    return names


def find_units(config: Config, folder: str | Path) -> list[Unit]:
    """The units the company extract in ``folder`` found, sorted by name, with recipients.

    Raises
    ------
    ConfigError
        If the config has no ``units``, a ``by`` column is missing, or two units share a slug.
    """
    if config.units is None:
        return []
    customers = read_table(folder, "customers")
    names = _unit_names(customers, config.units.columns)
    counts = names.value_counts()
    column = config.units.recipients_column
    from_column: dict[str, list[str]] = {}
    if column is not None:
        if column not in customers.columns:
            raise ConfigError(f"units.recipients_column {column!r} is not a column of the customers table.",
                              where="units.recipients_column", fix="Name the column holding the addresses.")
        pairs = pd.DataFrame({"unit": names, "to": customers[column].astype("string")}).dropna()
        for unit, group in pairs.groupby("unit", sort=True):
            from_column[str(unit)] = sorted({a.strip() for cell in group["to"] for a in re.split(r"[,;\s]+", cell)
                                             if a.strip()})
    units, names = [], {}  # pack id -> unit name (the same slug gives the same pack id)
    for name in sorted(counts.index.astype(str)):
        slug = unit_slug(name)
        pack_id = unit_pack_id(config.pack_id, slug)
        if pack_id in names:
            raise ConfigError(f"Units {names[pack_id]!r} and {name!r} would share the folder name {pack_id!r}.",
                              where="units.by", fix="Rename one of the values in the data.")
        names[pack_id] = name
        values = dict(zip(config.units.columns, name.split(UNIT_SEPARATOR)))
        recipients = list(config.units.recipients.get(name, [])) + from_column.get(name, [])
        units.append(Unit(name=name, slug=slug, values=values, recipients=list(dict.fromkeys(recipients)),
                          count_customers=int(counts[name])))
    unknown = sorted(set(config.units.recipients) - set(names.values()))
    if unknown:
        raise ConfigError(f"units.recipients names unit(s) the data does not have: {', '.join(unknown)}.",
                          where="units.recipients",
                          fix=f"Use the unit names found: {', '.join(sorted(names.values()))}.")
    return units


def _unit_extract(config: Config, unit: Unit, company: Path, folder: Path) -> dict:
    """Write the unit's slice of the company extract and model into ``folder``."""
    customers = read_table(company, "customers")
    mask = _unit_names(customers, config.units.columns) == unit.name
    ids = customers.loc[mask, "customer_id"].astype("string")
    if ids.empty:
        raise InputError(f"The unit {unit.name!r} has no customers in this extract.", where=str(company),
                         fix="Check units.by and the period; a unit is found from the customers table.")
    keep = pd.Index(ids.unique())
    for name in _EXTRACT_TABLES:
        table = customers.loc[mask] if name == "customers" else read_table(company, name)
        if name != "customers":
            table = table.loc[table["customer_id"].astype("string").isin(keep)]
        write_table(folder, name, table.reset_index(drop=True), csv=False)
    scores = read_table(company, "scores")
    scores = scores.loc[scores["customer_id"].astype("string").isin(keep)].sort_values("at_risk_rank")
    scores["at_risk_rank"] = range(1, len(scores) + 1)  # ranked within the unit
    write_table(folder, "scores", scores.reset_index(drop=True))
    report = read_json(company / "model_report.json")
    report["unit_note"] = (f"Scores from the model fitted on all {len(customers)} customers of the company "
                           f"run; {unit.name}'s {len(keep)} customers ranked among themselves.")
    write_json(folder / "model_report.json", report)
    dq = read_json(company / "data_quality.json")
    panel = read_table(folder, "panel", columns=["customer_id"])
    note = (f"Unit {unit.name}: {len(keep)} of {len(customers)} customers "
            f"({', '.join(f'{k} = {v}' for k, v in unit.values.items())}). Rows in and excluded "
            "are the company extract's, from which every unit pack is cut.")
    # The source's period totals are the company's: they are kept for the record, not printed as
    # this unit's tie-out (the unit's revenue is a part of them).
    dq.update({"count_customers": int(len(keep)), "count_panel_rows": int(len(panel)), "unit": unit.name,
               "notes": [*dq.get("notes", []), note], "company_tie_out": dq.get("tie_out", []), "tie_out": []})
    write_json(folder / "data_quality.json", dq)
    for name in ("manifest.json",):
        if (company / name).exists():
            manifest = read_json(company / name)
            manifest["unit"] = unit.name
            write_json(folder / name, manifest)
    return {"count_customers": int(len(keep))}


def build_unit_pack(config: Config, period: Period, unit: Unit | dict, output_root: str | Path | None = None) -> dict:
    """Build, render and check one unit's pack from the company run of ``period``.

    The company run must have passed its model stage (its folder holds the extract and the
    scores). Returns the unit's summary (``folder``, ``unit``, ``pdf``, ``is_deliverable``).

    Raises
    ------
    CheckError
        If the unit's pack fails its checks (only this unit's pack is affected).
    """
    from cxpipeline.pipeline import check_pack, compute_metrics, pack_folder, render_pack
    from cxpipeline.provenance import claim_pack_root, stamp_manifest

    unit = unit if isinstance(unit, Unit) else Unit(**unit)
    started = time.perf_counter()
    company = pack_folder(config, period, output_root)
    uconfig = unit_config(config, unit)
    folder = pack_folder(uconfig, period, output_root)
    claim_pack_root(uconfig, folder.parent)
    for stale in ("checks.json", "board_pack.pdf", "board_pack.html", "manifest.json"):
        (folder / stale).unlink(missing_ok=True)
    summary = _unit_extract(config, unit, company, folder)
    stamp_manifest(uconfig, folder)
    compute_metrics(uconfig, period, output_root)
    render_pack(uconfig, period, output_root)
    checked = check_pack(uconfig, period, output_root)
    return {**checked, "unit": unit.name, "slug": unit.slug, "pack_id": uconfig.pack_id,
            "recipients": list(unit.recipients), "count_customers": summary["count_customers"],
            "seconds": round(time.perf_counter() - started, 2)}


def run_units(config: Config, period: Period, output_root: str | Path | None = None, *,
              only: list[str] | None = None, progress=None) -> tuple[list[dict], dict[str, str]]:
    """Build every unit's pack (or those named in ``only``) after the company run of ``period``.

    A unit that fails (e.g. its checks) is reported and the others are still built.

    Returns
    -------
    tuple
        The built units' summaries, and unit name -> error for the units that failed.
    """
    from cxpipeline.errors import CxError
    from cxpipeline.pipeline import pack_folder

    say = progress or (lambda message: None)
    units = find_units(config, pack_folder(config, period, output_root))
    if only:
        wanted = {name.lower() for name in only} | {unit_slug(name) for name in only}
        unknown = [name for name in only if name.lower() not in {u.name.lower() for u in units}
                   and unit_slug(name) not in {u.slug for u in units}]
        if unknown:
            raise ConfigError(f"No unit named {', '.join(map(repr, unknown))} in this extract.",
                              where="--unit", fix=f"Use one of: {', '.join(u.name for u in units)}.")
        units = [u for u in units if u.name.lower() in wanted or u.slug in wanted]
    built, failed = [], {}
    for unit in units:
        try:
            result = build_unit_pack(config, period, unit, output_root)
        except CxError as exc:
            failed[unit.name] = str(exc)
            say(f"unit {unit.name}: FAILED: {exc.what}")
            continue
        built.append(result)
        say(f"unit {unit.name}: {result['count_customers']} customers, {result['pdf']} ({result['seconds']} s)")
    return built, failed
