"""A small, fixed artifact folder for template work and tests (``cxpipeline preview``).

It writes exactly what ``compute_metrics`` writes for the foundation pages (the stage contract
of docs/architecture.md): ``bridge`` and ``ledger`` (Parquet + CSV), ``metrics.json`` and
``data_quality.json``. The numbers are aggregated here from 60 seeded, hand-shaped customer
rows, so every invariant holds (the bridge reconciles to the cent, the ledger in count, and
segment rows add up to the overall row) -- they are test data, not a stand-in for the metrics
code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxpipeline.artifacts import write_json, write_table
from cxpipeline.metrics.bridge import BRIDGE_ORDER

__all__ = ["FIXTURE_SEGMENTS", "build_fixture_customers", "write_fixture_folder"]

FIXTURE_SEGMENTS = ["region", "channel"]


def build_fixture_customers(seed: int = 11, n: int = 60, regions: list[str] | None = None) -> pd.DataFrame:
    """Per-customer rows: both period revenues, bridge class and ledger flags/values."""
    rng = np.random.default_rng(seed)
    regions = regions or ["North", "South", "West", "Scotland & NI"]
    kinds = rng.choice(["new", "reactivated", "increased", "decreased", "flat", "stopped", "returns_only"],
                       size=n, p=[0.15, 0.07, 0.25, 0.25, 0.03, 0.22, 0.03])
    rows = []
    for i, kind in enumerate(kinds):
        prev = round(float(rng.lognormal(7.2, 0.8)), 2)
        cur = round(prev * float(rng.uniform(1.05, 1.9)), 2)
        if kind == "new":
            prev, cur = 0.0, round(float(rng.lognormal(6.8, 0.7)), 2)
        elif kind == "reactivated":
            prev = 0.0
        elif kind == "decreased":
            cur = round(prev * float(rng.uniform(0.2, 0.95)), 2)
        elif kind == "flat":
            cur = prev
        elif kind == "stopped":
            cur = 0.0
        elif kind == "returns_only":
            prev, cur = 0.0, -round(float(rng.uniform(20, 180)), 2)
        is_opening = kind not in ("new", "reactivated")
        is_new, is_reactivated = kind == "new", kind == "reactivated"
        # Everyone who bought in P is active at its end; of those who did not, some lapse.
        is_closing = cur > 0 or (kind == "stopped" and rng.uniform() < 0.35) or (
            kind == "returns_only" and rng.uniform() < 0.5)
        value_opening = round(prev * float(rng.uniform(2.5, 4.0)), 2) if is_opening else 0.0
        value_closing = round(max(cur, 0) * float(rng.uniform(2.5, 4.0)), 2) if is_closing else 0.0
        is_lapsed = (is_opening or is_new or is_reactivated) and not is_closing
        rows.append({
            "customer_id": f"C{i:03d}",
            "region": regions[i % len(regions)],
            "channel": "Online" if rng.uniform() < 0.55 else "Store",
            "bridge_class": kind,
            "revenue_previous": prev,
            "revenue_current": cur,
            "change": round(cur - prev, 2),
            "is_opening": is_opening, "is_new": is_new, "is_reactivated": is_reactivated,
            "is_lapsed": is_lapsed, "is_closing": is_closing,
            "value_opening": value_opening, "value_closing": value_closing,
            "value_lapsed": value_opening if is_lapsed else 0.0,
        })
    return pd.DataFrame(rows)


def _by_segment(customers: pd.DataFrame, summarise) -> pd.DataFrame:
    parts = [summarise(customers).assign(segment="all", segment_value="All")]
    for column in FIXTURE_SEGMENTS:
        for value, rows in customers.groupby(column, sort=True):
            parts.append(summarise(rows).assign(segment=column, segment_value=str(value)))
    out = pd.concat(parts, ignore_index=True)
    return out[["segment", "segment_value", *[c for c in out.columns if c not in ("segment", "segment_value")]]]


def _cents_sum(values: pd.Series) -> float:
    return int(np.rint(values.to_numpy(dtype="float64") * 100).sum()) / 100


def _bridge(rows: pd.DataFrame) -> pd.DataFrame:
    out = [("previous", int((rows.revenue_previous > 0).sum()), _cents_sum(rows.revenue_previous))]
    for kind in BRIDGE_ORDER[1:-1]:
        members = rows[rows.bridge_class == kind]
        out.append((kind, len(members), _cents_sum(members.change)))
    out.append(("current", int((rows.revenue_current > 0).sum()), _cents_sum(rows.revenue_current)))
    return pd.DataFrame(out, columns=["bridge_class", "count_customers", "value"]).astype(
        {"count_customers": "int64", "value": "float64"})


def _ledger(rows: pd.DataFrame) -> pd.DataFrame:
    spec = [("opening", "is_opening", "value_opening"), ("new", "is_new", "value_closing"),
            ("reactivated", "is_reactivated", "value_closing"), ("lapsed", "is_lapsed", "value_lapsed"),
            ("closing", "is_closing", "value_closing")]
    out = [(line, int(rows[flag].sum()), _cents_sum(rows.loc[rows[flag], value])) for line, flag, value in spec]
    return pd.DataFrame(out, columns=["ledger_line", "count_customers", "value"]).astype(
        {"count_customers": "int64", "value": "float64"})


def write_fixture_folder(folder: str | Path, *, seed: int = 11, regions: list[str] | None = None) -> Path:
    """Write the fixture artifact folder (period 2024-Q4 vs 2024-Q3) and return its path.

    Parameters
    ----------
    folder
        Target folder (created).
    seed
        Seed of the customer rows.
    regions
        Region names (tests pass hostile strings here to check escaping).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    customers = build_fixture_customers(seed=seed, regions=regions)
    bridge = _by_segment(customers, _bridge)
    ledger = _by_segment(customers, _ledger)
    write_table(folder, "bridge", bridge)
    write_table(folder, "ledger", ledger)

    overall = ledger[ledger.segment == "all"].set_index("ledger_line")
    bridge_all = bridge[bridge.segment == "all"].set_index("bridge_class")
    opening = customers[customers.is_opening]
    headline = {
        "count_gained": int(overall.loc["new", "count_customers"] + overall.loc["reactivated", "count_customers"]),
        "value_gained": round(float(overall.loc["new", "value"] + overall.loc["reactivated", "value"]), 2),
        "count_lost": int(overall.loc["lapsed", "count_customers"]),
        "value_lost": float(overall.loc["lapsed", "value"]),
        "count_new": int(overall.loc["new", "count_customers"]),
        "value_new": float(overall.loc["new", "value"]),
        "count_reactivated": int(overall.loc["reactivated", "count_customers"]),
        "value_reactivated": float(overall.loc["reactivated", "value"]),
        "revenue_previous": float(bridge_all.loc["previous", "value"]),
        "revenue_current": float(bridge_all.loc["current", "value"]),
        "count_opening": int(overall.loc["opening", "count_customers"]),
        "count_closing": int(overall.loc["closing", "count_customers"]),
        "retention_rate": float(opening.is_closing.mean()),
    }
    write_json(folder / "metrics.json", {
        "period": "2024-Q4",
        "period_title": "2024-Q4 (1 Oct 2024 - 31 Dec 2024)",
        "comparison": "2024-Q3",
        "comparison_basis": "previous",
        "headline": headline,
        "segments": FIXTURE_SEGMENTS,
    })
    used = _cents_sum(customers.revenue_previous) + _cents_sum(customers.revenue_current)
    excluded = [
        {"reason": "cancelled invoice", "rows": 41, "revenue": -3120.40},
        {"reason": "duplicate line", "rows": 12, "revenue": 884.10},
        {"reason": "missing customer id", "rows": 230, "revenue": 15402.75},
    ]
    revenue_excluded = round(sum(e["revenue"] for e in excluded), 2)
    write_json(folder / "data_quality.json", {
        "rows_in": 5123, "rows_used": 5123 - 283, "rows_excluded": 283,
        "revenue_in": round(used + revenue_excluded, 2), "revenue_used": round(used, 2),
        "revenue_excluded": revenue_excluded,
        "excluded_by_reason": excluded,
        "notes": ["Fixture data for template work (cxpipeline preview), not a real company."],
        "rows_after_period_end": 77,
    })
    return folder
