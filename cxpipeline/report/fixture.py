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
from cxpipeline.metrics.bridge import revenue_bridge
from cxpipeline.metrics.ledger import asset_ledger
from cxpipeline.metrics.tables import headline

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


def _cents_sum(values: pd.Series) -> float:
    return int(np.rint(values.to_numpy(dtype="float64") * 100).sum()) / 100


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
    # The tables and the headline come from the metrics code itself: the fixture only makes up
    # the per-customer rows (bridge classes and ledger flags) they are computed from.
    segments = customers[["customer_id", *FIXTURE_SEGMENTS]]
    rows = customers.drop(columns=FIXTURE_SEGMENTS)
    bridge = revenue_bridge(rows, segments, FIXTURE_SEGMENTS)
    ledger = asset_ledger(rows, segments, FIXTURE_SEGMENTS)
    write_table(folder, "bridge", bridge)
    write_table(folder, "ledger", ledger)
    summary = headline({"bridge": bridge, "ledger": ledger, "ledger_customers": customers})
    write_json(folder / "metrics.json", {
        "period": "2024-Q4",
        "period_title": "2024-Q4 (1 Oct 2024 - 31 Dec 2024)",
        "comparison": "2024-Q3",
        "comparison_basis": "previous",
        "headline": summary,
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
