"""Sources: each turns its input into canonical transactions (see :mod:`cxpipeline.schema`).

Two ways in, chosen per config:

* :func:`load_source` loads transactions into pandas (the demo, CSV / Excel / mapped Parquet
  files; a SQL table for inspection);
* :func:`extract_pushdown` aggregates where the rows are (a SQL source in its database, a
  Spark table or path in Spark, a canonical Parquet file in embedded DuckDB) and returns only panel-level results
  (:mod:`cxpipeline.sources.aggregate`). :func:`pushdown_kind` says which applies.
"""

from __future__ import annotations

from pathlib import Path

from cxpipeline.config import Config
from cxpipeline.periods import Period
from cxpipeline.sources.base import SourceData

__all__ = ["SourceData", "load_source", "pushdown_kind", "extract_pushdown", "pushdown_last_day"]


def load_source(config: Config) -> SourceData:
    """Load the configured source as canonical, validated transactions."""
    kind = config.source.kind
    if kind == "demo":
        from cxpipeline.sources.demo import load_demo

        return load_demo(config.source)
    if kind == "file":
        from cxpipeline.sources.files import load_file_source

        return load_file_source(config.source, base_dir=config.base_dir, report_timezone=config.report_timezone,
                                pack_currency=config.currency)
    if kind == "spark":
        raise ValueError("a Spark source is aggregated in Spark (extract_pushdown), never loaded into pandas")
    from cxpipeline.sources.sql import load_sql_source

    return load_sql_source(config.source, base_dir=config.base_dir)


def pushdown_kind(config: Config) -> str | None:
    """``"sql"`` for a warehouse, ``"spark"`` for Spark, ``"parquet"`` for a canonical Parquet file,
    else None (pandas)."""
    from cxpipeline.sources.parquet import parquet_fast_path

    if config.source.kind in ("sql", "spark"):
        return config.source.kind
    if config.source.kind == "file" and parquet_fast_path(config.source, config.base_dir) is not None:
        return "parquet"
    return None


def extract_pushdown(config: Config, period: Period, comparison: Period, *, url: str | None = None,
                     stage_dir: str | Path | None = None):
    """The extract for a pushdown source (see :func:`pushdown_kind`), nothing loaded into pandas.

    Returns a :class:`cxpipeline.sources.aggregate.PanelExtract`. A Parquet file's panels are
    streamed into ``stage_dir`` when it is given (see :func:`cxpipeline.sources.parquet.extract_parquet`).
    """
    from cxpipeline.periods import cadence_instants
    from cxpipeline.sources.aggregate import RowRules

    kind = pushdown_kind(config)
    instants = cadence_instants(period, comparison, config.cadence_trend_periods)
    if kind == "sql":
        from cxpipeline.sources.sql import extract_sql

        return extract_sql(config.source, period, comparison, list(config.segments), url=url, stage_dir=stage_dir,
                           time_zone=config.report_timezone, instants=instants, base_dir=config.base_dir)
    if kind == "spark":
        from cxpipeline.sources.spark import extract_spark

        return extract_spark(config.source, period, comparison, list(config.segments), base_dir=config.base_dir,
                             stage_dir=stage_dir, remote=url, instants=instants)
    if kind == "parquet":
        from cxpipeline.sources.files import read_customers
        from cxpipeline.sources.parquet import extract_parquet, parquet_fast_path

        source = config.source
        customers = read_customers(source, config.base_dir, config.report_timezone) if source.customers_path else None
        return extract_parquet(parquet_fast_path(source, config.base_dir), period=period, comparison=comparison,
                               segment_columns=[c for c in config.segments if c in source.segment_columns],
                               customers=customers, stage_dir=stage_dir, rules=RowRules.of(source),
                               instants=instants)
    raise ValueError(f"source kind {config.source.kind!r} is not aggregated in an engine")


def pushdown_last_day(config: Config, *, url: str | None = None):
    """Last order date of a pushdown source, read by the engine (for the default period)."""
    if pushdown_kind(config) == "sql":
        from cxpipeline.sources.sql import sql_last_day

        return sql_last_day(config.source, url=url, base_dir=config.base_dir)
    if pushdown_kind(config) == "spark":
        from cxpipeline.sources.spark import spark_last_day

        return spark_last_day(config.source, base_dir=config.base_dir, remote=url)
    from cxpipeline.sources.parquet import parquet_fast_path, parquet_last_day

    return parquet_last_day(parquet_fast_path(config.source, config.base_dir))
