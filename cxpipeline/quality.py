"""Row and revenue accounting for everything a source or a step excludes.

Nothing is dropped silently: every exclusion is recorded with its reason, row count and
revenue, and ``revenue_in == revenue_used + revenue_excluded`` holds by construction (in
integer cents). The data-quality page of the pack and ``manifest.json`` print this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Exclusions", "cents", "to_cents"]


def cents(values) -> np.ndarray:
    """Money values as integer cents, element by element (compare and add money exactly)."""
    return np.rint(np.asarray(values, dtype="float64") * 100).astype("int64")


def to_cents(values: pd.Series | np.ndarray) -> int:
    """Sum of money values in integer cents (exact reconciliation, no float drift)."""
    return int(cents(pd.to_numeric(pd.Series(values), errors="coerce").fillna(0.0)).sum())


@dataclass
class Exclusions:
    """Counts of rows and revenue going in, used and excluded by reason.

    Typical use in a source::

        quality = Exclusions.start(df, revenue)        # everything read
        df = quality.exclude(df, df.customer_id.isna(), "missing customer id", revenue_column)
    """

    rows_in: int = 0
    revenue_in_cents: int = 0
    by_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, rows: int, revenue: pd.Series | np.ndarray) -> "Exclusions":
        return cls(rows_in=int(rows), revenue_in_cents=to_cents(revenue))

    def record(self, reason: str, rows: int, revenue_cents: int) -> None:
        """Add ``rows`` / ``revenue_cents`` excluded for ``reason`` (accumulates)."""
        if rows == 0:
            return
        entry = self.by_reason.setdefault(reason, {"rows": 0, "revenue_cents": 0})
        entry["rows"] += int(rows)
        entry["revenue_cents"] += int(revenue_cents)

    def exclude(self, df: pd.DataFrame, mask: pd.Series, reason: str, revenue_column: str) -> pd.DataFrame:
        """Drop the rows where ``mask`` is true, recording them under ``reason``."""
        mask = pd.Series(mask, index=df.index).fillna(False).astype(bool)
        if mask.any():
            self.record(reason, int(mask.sum()), to_cents(df.loc[mask, revenue_column]))
            return df.loc[~mask]
        return df

    @property
    def rows_excluded(self) -> int:
        return sum(v["rows"] for v in self.by_reason.values())

    @property
    def revenue_excluded_cents(self) -> int:
        return sum(v["revenue_cents"] for v in self.by_reason.values())

    @property
    def rows_used(self) -> int:
        return self.rows_in - self.rows_excluded

    @property
    def revenue_used_cents(self) -> int:
        return self.revenue_in_cents - self.revenue_excluded_cents

    def to_dict(self) -> dict:
        """Plain dict for manifest.json and the pack (money in currency units)."""
        return {
            "rows_in": self.rows_in,
            "rows_used": self.rows_used,
            "rows_excluded": self.rows_excluded,
            "revenue_in": self.revenue_in_cents / 100,
            "revenue_used": self.revenue_used_cents / 100,
            "revenue_excluded": self.revenue_excluded_cents / 100,
            "excluded_by_reason": [
                {"reason": reason, "rows": v["rows"], "revenue": v["revenue_cents"] / 100}
                for reason, v in sorted(self.by_reason.items())
            ],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Exclusions":
        out = cls(rows_in=data["rows_in"], revenue_in_cents=round(data["revenue_in"] * 100))
        for item in data["excluded_by_reason"]:
            out.record(item["reason"], item["rows"], round(item["revenue"] * 100))
        out.notes = list(data.get("notes", []))
        return out
