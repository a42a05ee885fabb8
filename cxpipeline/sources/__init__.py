"""Sources: each turns its input into canonical transactions (see :mod:`cxpipeline.schema`).

:func:`load_source` is the single entry point used by the pipeline and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cxpipeline.config import Config
from cxpipeline.quality import Exclusions

__all__ = ["SourceData", "load_source"]


@dataclass
class SourceData:
    """What a source yields: validated transactions, an optional customer table, exclusions."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None
    quality: Exclusions
    description: str  # e.g. "demo retailer (5000 customers, seed 7)" or the file path


def load_source(config: Config) -> SourceData:
    """Load the configured source as canonical, validated transactions."""
    kind = config.source.kind
    if kind == "demo":
        from cxpipeline.sources.demo import load_demo

        return load_demo(config.source)
    if kind == "file":
        from cxpipeline.sources.files import load_file_source

        return load_file_source(config.source, base_dir=config.base_dir, report_timezone=config.report_timezone)
    from cxpipeline.sources.sql import load_sql_source

    return load_sql_source(config.source)
