"""Row and revenue accounting for everything a source or a step excludes.

Nothing is dropped silently: every exclusion is recorded with its reason, row count and
revenue, and ``revenue_in == revenue_used + revenue_excluded`` holds by construction (in
integer cents). The data-quality page of the pack and ``manifest.json`` print this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Exclusions", "cents", "to_cents", "tie_out_row"]


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
    # The excluded rows that have a date (reason, ordered_at, revenue cents), kept so the
    # tie-out can say, per period, what the source held and what was left out (see tie_out_row).
    dated: list[pd.DataFrame] = field(default_factory=list, repr=False, compare=False)

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
            if "ordered_at" in df.columns:
                rows = df.loc[mask & df["ordered_at"].notna(), ["ordered_at", revenue_column]]
                self.dated.append(pd.DataFrame({
                    "reason": reason, "ordered_at": rows["ordered_at"].to_numpy(),
                    "revenue_cents": cents(pd.to_numeric(rows[revenue_column], errors="coerce").fillna(0.0))}))
            return df.loc[~mask]
        return df

    def dated_in(self, start, end) -> pd.DataFrame:
        """Excluded rows dated in ``[start, end)``: one row per reason (reason, rows, revenue_cents)."""
        if not self.dated:
            return pd.DataFrame({"reason": pd.Series(dtype="string"), "rows": pd.Series(dtype="int64"),
                                 "revenue_cents": pd.Series(dtype="int64")})
        rows = pd.concat(self.dated, ignore_index=True)
        inside = rows.loc[(rows["ordered_at"] >= pd.Timestamp(start)) & (rows["ordered_at"] < pd.Timestamp(end))]
        return (inside.groupby("reason", sort=True)
                .agg(rows=("revenue_cents", "size"), revenue_cents=("revenue_cents", "sum")).reset_index())

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


def tie_out_row(label: str, title: str, used_rows: int, used_cents: int, excluded: pd.DataFrame) -> dict:
    """One period's tie-out: rows and revenue dated in it in the source against those used.

    ``excluded`` holds the period's excluded rows by reason (``reason, rows, revenue_cents``).
    The source's total for the period is used + excluded, so a reader can tick the pack's
    revenue against the ledger: ``is_equal`` says whether nothing dated in it was excluded.
    """
    excluded = excluded.loc[excluded["rows"] > 0]
    rows_excluded = int(excluded["rows"].sum())
    cents_excluded = int(excluded["revenue_cents"].sum())
    return {
        "period": label,
        "title": title,
        "rows_source": used_rows + rows_excluded,
        "revenue_source": (used_cents + cents_excluded) / 100,
        "rows_used": used_rows,
        "revenue_used": used_cents / 100,
        "excluded": [{"reason": str(r.reason), "rows": int(r.rows), "revenue": int(r.revenue_cents) / 100}
                     for r in excluded.itertuples(index=False)],
        "is_equal": rows_excluded == 0 and cents_excluded == 0,
        "is_revenue_equal": cents_excluded == 0,
    }
