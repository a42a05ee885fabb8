"""Is an extract usable? A gate between extract and metrics.

:func:`validate_extract` reads what the extract stage wrote (``data_quality.json`` and the
panel) and refuses, with an error that says what to fix, an extract a board pack must not be
built from: no rows used, a period the data does not cover, or too much of the revenue excluded
as bad rows. It returns the exclusion summary, so the orchestrator's log shows what was left
out even when the extract passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from cxpipeline.artifacts import read_json
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.periods import Period
from cxpipeline.sources.aggregate import AFTER_PERIOD, REASON_CONFIG_PREFIX, REASON_TOTAL_ROW

__all__ = ["DEFAULT_MAX_EXCLUDED_SHARE", "validate_extract", "gate_extract", "max_excluded_share"]

#: Above this share of the revenue read excluded as bad rows, the extract is refused.
DEFAULT_MAX_EXCLUDED_SHARE = 0.5


def validate_extract(
    folder: str | Path,
    period: Period,
    *,
    max_excluded_share: float = DEFAULT_MAX_EXCLUDED_SHARE,
    period_column: str = "period_start",
) -> dict:
    """Check the extract in ``folder`` for ``period``; return its exclusion summary.

    Parameters
    ----------
    folder
        The artifact folder the extract stage wrote (``data_quality.json``, ``panel.parquet``).
    period
        The reporting period the pack is for.
    max_excluded_share
        Largest acceptable share (0-1) of the revenue read that may be excluded.
    period_column
        The panel's column holding each row's period start.

    Returns
    -------
    dict
        ``folder``, ``period``, ``rows_in``, ``rows_used``, ``rows_excluded``, ``revenue_in``,
        ``revenue_used``, ``revenue_excluded``, ``excluded_by_reason`` (as in
        ``data_quality.json``), ``rows_after_period``, ``revenue_after_period``,
        ``excluded_share`` (share of the revenue up to the period's end excluded as bad rows;
        None when there was none), ``first_ordered_at``, ``last_ordered_at``,
        ``count_customers_in_period`` and ``warnings`` (e.g. the data ends inside the period).

    Raises
    ------
    InputError
        If no row was used, the data does not reach into the period, nobody bought in the
        period, all revenue was excluded, or more than ``max_excluded_share`` of it. Rows
        dated after the period (left out by design) count for none of these shares.
    """
    if not 0 <= max_excluded_share <= 1:
        raise InputError(f"max_excluded_share must be between 0 and 1, not {max_excluded_share}.",
                         fix="Use e.g. 0.5 for 50%.")
    folder = Path(folder)
    dq_path, panel_path = folder / "data_quality.json", folder / "panel.parquet"
    if not dq_path.is_file() or not panel_path.is_file():
        raise InputError("The extract has not been written.", where=str(folder),
                         fix="Run the extract step for this period first.")
    dq = read_json(dq_path)
    where = str(dq_path)
    source = dq.get("source") or "the source"

    # Rows dated after the period are left out by design (a backfill of an old period leaves
    # out most of the data), and a report's total rows and the rows the config names as no sales
    # (source.exclude_rows) are not sales; only the other reasons are bad rows.
    def reason(name: str) -> dict:
        return next((r for r in dq["excluded_by_reason"] if r["reason"] == name), {"rows": 0, "revenue": 0.0})

    after = reason(AFTER_PERIOD)
    designed = [r for r in dq["excluded_by_reason"]
                if r["reason"] in (AFTER_PERIOD, REASON_TOTAL_ROW) or r["reason"].startswith(REASON_CONFIG_PREFIX)]
    by_design = {"rows": sum(r["rows"] for r in designed), "revenue": sum(float(r["revenue"]) for r in designed)}
    bad_reasons = [r for r in dq["excluded_by_reason"] if r not in designed]
    rows_considered = dq["rows_in"] - by_design["rows"]
    if dq["rows_used"] <= 0 and rows_considered > 0:
        raise InputError(
            f"No row of {source} could be used ({rows_considered} read up to the end of the period, "
            "all excluded: " + ", ".join(f"{r['reason']} {r['rows']}" for r in bad_reasons) + ").",
            where=where,
            fix="Fix the source (columns, dates, customer ids) so its rows pass; see excluded_by_reason.")

    revenue_in = float(dq["revenue_in"]) - by_design["revenue"]
    revenue_excluded = float(dq["revenue_excluded"]) - by_design["revenue"]
    # Of the money read (used and excluded, each side counted at its size, so a large negative
    # line cannot push the share past 100 %).
    money = abs(float(dq["revenue_used"])) + abs(revenue_excluded)
    excluded_share = abs(revenue_excluded) / money if round(money, 2) else None
    if excluded_share is not None and round(float(dq["revenue_used"]), 2) == 0 \
            and round(revenue_excluded, 2):
        raise InputError(f"All revenue of {source} was excluded ({revenue_excluded:,.2f} of "
                         f"{revenue_in:,.2f} up to the end of the period).", where=where,
                         fix="Fix the rows listed in excluded_by_reason and rerun the extract.")
    if excluded_share is not None and excluded_share > max_excluded_share:
        reasons = sorted(bad_reasons, key=lambda r: -abs(r["revenue"]))
        raise InputError(
            f"{excluded_share:.1%} of the revenue of {source} up to the end of the period was "
            f"excluded, more than the {max_excluded_share:.0%} allowed (largest: "
            + ", ".join(f"{r['reason']} {r['revenue']:,.2f}" for r in reasons[:3]) + ").",
            where=where,
            fix="Fix those rows in the source, or raise the limit (CXPIPELINE_MAX_EXCLUDED_SHARE) "
                "if the exclusions are expected.")

    first, last = dq.get("first_ordered_at"), dq.get("last_ordered_at")
    if last is None or first is None or pd.Timestamp(last).date() < period.start \
            or pd.Timestamp(first).date() > period.last_day:
        raise InputError(
            f"The data ({first or '?'} to {last or '?'}) does not cover {period.label} "
            f"({period.start:%Y-%m-%d} to {period.last_day:%Y-%m-%d}).", where=where,
            fix="Pick a period inside the data, or load the missing data into the source.")

    panel = pd.read_parquet(panel_path, columns=["customer_id", period_column])
    in_period = panel.loc[pd.to_datetime(panel[period_column]).dt.date == period.start, "customer_id"]
    if in_period.empty:
        raise InputError(f"No customer bought in {period.label}, although the data runs from "
                         f"{first} to {last}.", where=str(panel_path),
                         fix="Check that the source holds this period's sales (dates, filters).")

    warnings = []
    if not dq.get("is_period_complete", True):
        warnings.append(f"The data ends on {last}, before the end of {period.label}.")
    return {
        "folder": str(folder),
        "period": period.label,
        **{key: dq[key] for key in ("rows_in", "rows_used", "rows_excluded", "revenue_in",
                                    "revenue_used", "revenue_excluded", "excluded_by_reason")},
        "rows_after_period": after["rows"],
        "revenue_after_period": after["revenue"],
        "excluded_share": None if excluded_share is None else round(excluded_share, 6),
        "first_ordered_at": first,
        "last_ordered_at": last,
        "count_customers_in_period": int(in_period.nunique()),
        "warnings": warnings,
    }


def max_excluded_share() -> float:
    """The largest share of revenue the extract may exclude as bad rows
    (``CXPIPELINE_MAX_EXCLUDED_SHARE``, default :data:`cxpipeline.validation.DEFAULT_MAX_EXCLUDED_SHARE`)."""
    share = os.environ.get("CXPIPELINE_MAX_EXCLUDED_SHARE", "").strip()
    if not share:
        return DEFAULT_MAX_EXCLUDED_SHARE
    try:
        value = float(share)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise ConfigError(f"CXPIPELINE_MAX_EXCLUDED_SHARE is {share!r}, not a share between 0 and 1.",
                          where="environment", fix="Set it to e.g. 0.5 (50 %), or unset it.")
    return value


def gate_extract(folder: str | Path, period: Period) -> dict:
    """The extract gate every entry point runs (CLI ``run``/``demo``, the DAG, the checks)."""
    return validate_extract(folder, period, max_excluded_share=max_excluded_share())
