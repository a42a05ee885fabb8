"""Customer ids as integer codes while the metrics are computed.

Hashing, sorting and joining half a million string ids dozens of times costs far more than the
metrics themselves, so :func:`cxpipeline.metrics.tables.compute_tables` gives every customer id
of a run (panel, customer table, cadence and ``referred_by``) one int64 code, runs every metric
on the codes and turns the codes back into the string ids only in the output tables.

Codes are assigned in the sort order of the string ids, so anything sorted or grouped by id
comes out in the same order as with the strings, and the output tables are identical.

Every public metric function also accepts string ids (DataFrame in, DataFrame out):
:func:`as_ids` keeps codes as they are and makes anything else a ``string`` column, as the
functions always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ID_COLUMNS", "is_coded", "as_ids", "CustomerCodes"]

#: Output columns that hold a customer id (decoded back to strings by :meth:`CustomerCodes.decode_table`).
ID_COLUMNS = ("customer_id", "referred_by", "referrer_id")


def is_coded(values: pd.Series | pd.Index) -> bool:
    """True when the ids are integer codes (int64, or nullable Int64 when some are missing)."""
    return pd.api.types.is_integer_dtype(values.dtype)


def as_ids(values: pd.Series) -> pd.Series:
    """Ids as the metric functions return them: codes unchanged, anything else as ``string``."""
    return values if is_coded(values) else values.astype("string")


@dataclass(frozen=True)
class CustomerCodes:
    """One code space for the customer ids of a run; ``labels[code]`` is the string id."""

    labels: pd.Series  # sorted distinct ids, dtype "string"

    @classmethod
    def build(cls, columns: Sequence[pd.Series]) -> tuple["CustomerCodes", list[pd.Series]]:
        """Code every id column in one pass; return the code space and the coded columns.

        A missing id stays missing (the coded column is then nullable ``Int64``), so it is
        dropped by groupby and kept unmatched by joins exactly as a missing string was.
        """
        parts = [pd.Series(column, copy=False).astype("string").reset_index(drop=True) for column in columns]
        joined = pd.concat(parts, ignore_index=True) if parts else pd.Series(dtype="string")
        codes, uniques = pd.factorize(joined, sort=True)
        codes = codes.astype("int64", copy=False)
        coded, start = [], 0
        for column, part in zip(columns, parts):
            piece = codes[start:start + len(part)]
            start += len(part)
            missing = piece < 0
            if missing.any():
                out = pd.Series(pd.arrays.IntegerArray(piece, missing), index=column.index, name=column.name)
            else:
                out = pd.Series(piece, index=column.index, name=column.name)
            coded.append(out)
        return cls(pd.Series(uniques, dtype="string")), coded

    def decode(self, codes: pd.Series) -> pd.Series:
        """The string ids (``string`` dtype, missing where the code is missing)."""
        values = codes.to_numpy(dtype="int64", na_value=-1)
        missing = values < 0
        labels = self.labels.array
        taken = labels.take(np.where(missing, -1, values), allow_fill=True) if missing.any() else labels.take(values)
        return pd.Series(taken, index=codes.index, name=codes.name, dtype="string")

    def decode_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table with every coded :data:`ID_COLUMNS` column turned back into string ids."""
        columns = [c for c in ID_COLUMNS if c in table.columns and is_coded(table[c])]
        if not columns:
            return table
        table = table.copy()
        for column in columns:
            table[column] = self.decode(table[column])
        return table
