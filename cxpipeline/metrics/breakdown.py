"""Per-customer frames broken down overall and by each segment attribute.

Every metric table in the pack has the same two leading columns: ``segment`` (``"all"`` for
the overall row, else the attribute name such as ``"region"``) and ``segment_value``
(``"All"``, else the attribute's value). Customers without a value are put in ``"Unknown"`` so
that segment rows always add up to the overall row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from cxpipeline.errors import ConfigError
from cxpipeline.metrics.ids import as_ids

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
    ids = pd.DataFrame({customer_col: as_ids(pd.Series(customer_ids)).drop_duplicates()})
    if not segment_columns:
        return ids.reset_index(drop=True)
    available = [] if customers is None else list(customers.columns)
    missing = [s for s in segment_columns if s not in available]
    if missing:
        raise ConfigError(
            f"Segment(s) {', '.join(map(repr, missing))} not found in the customer data.",
            where="config key 'segments'",
            fix=f"Use columns that exist: {', '.join(c for c in available if c != customer_col) or '(none)'};"
            " or map them in the source (segment_columns / customer_columns); or set 'segments: []' for no"
            " segments (when the config does not set it, it is the demo's region, channel, customer_type).",
        )
    attrs = customers[[customer_col, *segment_columns]].copy()
    attrs[customer_col] = as_ids(attrs[customer_col])
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

    ``summarise`` takes the per-customer rows of one group (without the segment columns, which
    it never needs) and returns a frame (any rows); the result stacks them with ``segment`` /
    ``segment_value`` columns in front. Segment values come in sorted order; customers
    without a value (missing) are in no segment row. Each group keeps the frame's row order.
    """
    segment_columns = list(segment_columns)
    rows_only = frame.drop(columns=[c for c in segment_columns if c in frame.columns])
    # text columns (classes, tiers) as categoricals: every group's rows are then cut and
    # grouped on small integer codes instead of re-hashing the strings in every group
    text = {c: "category" for c in rows_only.columns
            if c != "customer_id" and pd.api.types.is_string_dtype(rows_only[c]) and not isinstance(rows_only[c].dtype, pd.CategoricalDtype)}
    if text:
        rows_only = rows_only.astype(text)
    parts = [summarise(rows_only).assign(segment="all", segment_value=ALL)]
    for column in segment_columns:
        codes, values = pd.factorize(frame[column], sort=True)
        # one stable sort, then each value's rows are a contiguous run (in frame order)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(values) + 1))
        for code, value in enumerate(values):
            group = rows_only.take(order[bounds[code]:bounds[code + 1]])
            if len(group):
                parts.append(summarise(group).assign(segment=column, segment_value=str(value)))
    out = pd.concat(parts, ignore_index=True)
    front = ["segment", "segment_value"]
    return out[front + [c for c in out.columns if c not in front]]
