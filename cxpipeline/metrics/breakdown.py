"""Per-customer frames broken down overall and by each segment attribute.

Every metric table in the pack has the same two leading columns: ``segment`` (``"all"`` for
the overall row, else the attribute name such as ``"region"``) and ``segment_value``
(``"All"``, else the attribute's value). Customers without a value are put in ``"Unknown"`` so
that segment rows always add up to the overall row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from cxpipeline.errors import ConfigError

__all__ = ["ALL", "UNKNOWN", "customer_segments", "by_segment"]

ALL = "All"
UNKNOWN = "Unknown"


def customer_segments(
    customer_ids: pd.Series,
    customers: pd.DataFrame | None,
    segment_columns: Sequence[str],
    *,
    customer_col: str = "customer_id",
) -> pd.DataFrame:
    """One row per customer id with one string column per segment attribute.

    Raises
    ------
    ConfigError
        If a configured segment is not a column of the customer table.
    """
    ids = pd.DataFrame({customer_col: pd.Series(customer_ids, dtype="string").drop_duplicates()})
    if not segment_columns:
        return ids.reset_index(drop=True)
    available = [] if customers is None else list(customers.columns)
    missing = [s for s in segment_columns if s not in available]
    if missing:
        raise ConfigError(
            f"Segment(s) {', '.join(map(repr, missing))} not found in the customer data.",
            where="config key 'segments'",
            fix=f"Use columns that exist: {', '.join(c for c in available if c != customer_col) or '(none)'};"
            " or map them in the source (segment_columns / customer_columns).",
        )
    attrs = customers[[customer_col, *segment_columns]].copy()
    attrs[customer_col] = attrs[customer_col].astype("string")
    out = ids.merge(attrs, on=customer_col, how="left")
    for column in segment_columns:
        out[column] = out[column].astype("string").fillna(UNKNOWN).replace("", UNKNOWN)
    return out.reset_index(drop=True)


def by_segment(
    frame: pd.DataFrame,
    segment_columns: Sequence[str],
    summarise: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """Apply ``summarise`` to the whole frame and to each segment value's rows.

    ``summarise`` takes the per-customer rows of one group and returns a frame (any rows);
    the result stacks them with ``segment`` / ``segment_value`` columns in front.
    """
    parts = [summarise(frame).assign(segment="all", segment_value=ALL)]
    for column in segment_columns:
        for value, rows in frame.groupby(column, sort=True, observed=True):
            parts.append(summarise(rows).assign(segment=column, segment_value=str(value)))
    out = pd.concat(parts, ignore_index=True)
    front = ["segment", "segment_value"]
    return out[front + [c for c in out.columns if c not in front]]
