"""Checks a pack must pass before it counts as deliverable (DESIGN.md §4).

Each check returns ``(is_passed, detail)``. :func:`run_checks` runs them all on an artifact
folder and reports ``is_deliverable`` only if every check passed; the pipeline refuses to mark
(and the delivery step refuses to send) a pack that failed any.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import Config

__all__ = ["run_checks", "CHECKS", "MIN_PAGES", "MAX_PAGES"]

MIN_PAGES, MAX_PAGES = 3, 80


def _cents(values) -> np.ndarray:
    return np.rint(np.asarray(values, dtype="float64") * 100).astype("int64")


def check_bridge_reconciles(folder: Path, config: Config) -> tuple[bool, str]:
    bridge = read_table(folder, "bridge")
    bad = []
    for (segment, value), rows in bridge.groupby(["segment", "segment_value"], sort=False):
        by_class = dict(zip(rows["bridge_class"], _cents(rows["value"])))
        moves = sum(v for k, v in by_class.items() if k not in ("previous", "current"))
        if by_class["previous"] + moves != by_class["current"]:
            bad.append(f"{segment}={value}: off by {(by_class['previous'] + moves - by_class['current']) / 100:.2f}")
    segment_totals = bridge.query("segment != 'all' and bridge_class == 'current'").groupby("segment")["value"].sum()
    overall = bridge.query("segment == 'all' and bridge_class == 'current'")["value"].sum()
    for segment, total in segment_totals.items():
        if _cents([total])[0] != _cents([overall])[0]:
            bad.append(f"segments of {segment} add to {total:.2f}, overall is {overall:.2f}")
    return (not bad, "; ".join(bad) or "previous + changes = current to the cent in every segment")


def check_ledger_reconciles(folder: Path, config: Config) -> tuple[bool, str]:
    ledger = read_table(folder, "ledger")
    bad = []
    for (segment, value), rows in ledger.groupby(["segment", "segment_value"], sort=False):
        n = dict(zip(rows["ledger_line"], rows["count_customers"]))
        if n["opening"] + n["new"] + n["reactivated"] - n["lapsed"] != n["closing"]:
            bad.append(f"{segment}={value}")
    return (not bad, ("counts do not reconcile in " + ", ".join(bad)) if bad else "opening + gained - lapsed = closing everywhere")


def check_revenue_accounted(folder: Path, config: Config) -> tuple[bool, str]:
    dq = read_json(folder / "data_quality.json")
    used = _cents([dq["revenue_in"]])[0] - sum(_cents([r["revenue"]])[0] for r in dq["excluded_by_reason"])
    ok = used == _cents([dq["revenue_used"]])[0]
    return ok, f"revenue in {dq['revenue_in']:.2f} = used {dq['revenue_used']:.2f} + excluded {dq['revenue_excluded']:.2f}"


def check_no_missing_numbers(folder: Path, config: Config) -> tuple[bool, str]:
    metrics = read_json(folder / "metrics.json")
    bad = []
    for name in metrics["tables"]:
        table = read_table(folder, name)
        numeric = table.select_dtypes("number")
        if numeric.isna().to_numpy().any() and not name.endswith("_customers"):
            bad.append(f"{name} has NaN in {', '.join(numeric.columns[numeric.isna().any()])}")
        if table.empty and not name.endswith("_customers"):
            bad.append(f"{name} is empty")
    for key, value in metrics["headline"].items():
        if value is None and key != "retention_rate":
            bad.append(f"headline {key} is missing")
    return (not bad, "; ".join(bad) or "no NaN, no empty table")


def check_pdf(folder: Path, config: Config) -> tuple[bool, str]:
    from pypdf import PdfReader

    pdf = folder / "board_pack.pdf"
    if not pdf.exists() or pdf.stat().st_size == 0:
        return False, "board_pack.pdf is missing or empty"
    pages = len(PdfReader(pdf).pages)
    ok = MIN_PAGES <= pages <= MAX_PAGES
    return ok, f"{pages} pages (allowed {MIN_PAGES}-{MAX_PAGES})"


CHECKS: list[tuple[str, Callable[[Path, Config], tuple[bool, str]]]] = [
    ("bridge reconciles", check_bridge_reconciles),
    ("ledger reconciles", check_ledger_reconciles),
    ("revenue accounted for", check_revenue_accounted),
    ("no missing numbers", check_no_missing_numbers),
    ("pdf page count", check_pdf),
]


def run_checks(folder: str | Path, config: Config) -> dict:
    folder = Path(folder)
    results = []
    for name, check in CHECKS:
        try:
            is_passed, detail = check(folder, config)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            is_passed, detail = False, f"could not run: {exc}"
        results.append({"name": name, "is_passed": bool(is_passed), "detail": detail})
    return {"is_deliverable": all(r["is_passed"] for r in results), "checks": results}
