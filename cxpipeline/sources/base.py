"""What every source yields when it loads transactions into pandas (:class:`SourceData`).

A module of its own so the sources can import it without importing the package's dispatch
(:mod:`cxpipeline.sources`), which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cxpipeline.quality import Exclusions

__all__ = ["SourceData"]


@dataclass
class SourceData:
    """What a source yields: validated transactions, an optional customer table, exclusions."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None
    quality: Exclusions
    description: str  # e.g. "demo retailer (5000 customers, seed 7)" or the file path
