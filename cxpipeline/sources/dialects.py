"""The extract SQL rendered for each engine by SQLGlot, with the engine-specific rules in one place.

The accounting, panel, monthly panel and cadence queries are written once
(:mod:`cxpipeline.sources.aggregate`, :mod:`cxpipeline.panel`) in the SQL that PostgreSQL and
DuckDB both run (:data:`SOURCE_DIALECT`). :func:`render` parses that text with SQLGlot and
writes it in an engine's dialect. SQLGlot translates most forms itself (``FILTER`` becomes
``IF``/``IFF`` where an engine has no ``FILTER``, ``INTERVAL`` literals, ``date_trunc``); where
SQLGlot's translation would change a result, one rule below fixes the form for that engine:

* :data:`MEDIAN_FORMS`: the exact median (``percentile_cont(0.5) WITHIN GROUP``). SQLGlot writes
  an *approximate* percentile for Spark and Trino; the panel needs the exact one.
* :data:`EPOCH_FORMS`: whole seconds since the epoch (``EXTRACT(EPOCH FROM t)``), which Spark
  and Snowflake spell differently.
* :data:`BINARY_ORDER_ENGINES`: ``COLLATE "C"`` (binary order of ids) is dropped where strings
  already compare byte by byte by default (Spark, BigQuery, Snowflake, Trino).
* :data:`TRUNC_FORMS`: ``date_trunc`` on a wall-clock timestamp (BigQuery: ``DATETIME_TRUNC``).

Which engines run in the tests and which are only rendered and parsed: ``docs/warehouse.md``.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "SOURCE_DIALECT",
    "ENGINES",
    "MEDIAN_FORMS",
    "EPOCH_FORMS",
    "TRUNC_FORMS",
    "BINARY_ORDER_ENGINES",
    "render",
    "parse_in",
]

#: The dialect the queries are written in (a subset DuckDB runs as well).
SOURCE_DIALECT = "postgres"

#: Engines the extract SQL is rendered for (SQLGlot dialect names).
ENGINES = ("duckdb", "postgres", "spark", "databricks", "bigquery", "snowflake", "trino")

#: The exact median of ``{x}`` (NULLs ignored, the mean of the two middle values for an even
#: count, NULL for none), in each engine that needs another form than ``percentile_cont``.
#: BigQuery's PERCENTILE_CONT is only a window function (run here over the group's values) and
#: Trino has only an approximate percentile (the middle of the sorted array here).
MEDIAN_FORMS = {
    "spark": "MEDIAN({x})",
    "databricks": "MEDIAN({x})",
    "bigquery": "(SELECT PERCENTILE_CONT(v, 0.5) OVER () FROM UNNEST(ARRAY_AGG({x} IGNORE NULLS)) AS v LIMIT 1)",
    "trino": ("IF(COUNT({x}) = 0, NULL, (ELEMENT_AT(ARRAY_SORT(FILTER(ARRAY_AGG({x}), v -> v IS NOT NULL)), "
              "CAST((COUNT({x}) + 1) / 2 AS INTEGER)) + ELEMENT_AT(ARRAY_SORT(FILTER(ARRAY_AGG({x}), "
              "v -> v IS NOT NULL)), CAST(COUNT({x}) / 2 + 1 AS INTEGER))) / 2.0)"),
}

#: Whole seconds since 1970-01-01 of a wall-clock timestamp ``{x}`` (the session zone is UTC).
EPOCH_FORMS = {
    "spark": "UNIX_SECONDS(CAST({x} AS TIMESTAMP))",
    "databricks": "UNIX_SECONDS(CAST({x} AS TIMESTAMP))",
    "snowflake": "DATE_PART(EPOCH_SECOND, {x})",
    "bigquery": "UNIX_SECONDS(TIMESTAMP({x}))",
}

#: ``date_trunc('{unit}', {x})`` where SQLGlot's form does not take a zone-less timestamp.
TRUNC_FORMS = {
    "bigquery": "DATETIME_TRUNC({x}, {unit})",
}

#: Engines whose default string order is binary (byte order), as ``COLLATE "C"`` asks.
BINARY_ORDER_ENGINES = frozenset({"spark", "databricks", "bigquery", "snowflake", "trino"})


def _form(template: str, engine: str, **parts):
    import sqlglot

    return sqlglot.parse_one(template.format(**parts), read=engine)


def _rules(engine: str):
    """The rewrite for one engine: a function node -> node for ``Expression.transform``."""
    from sqlglot import exp

    def rewrite(node):
        if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont) \
                and engine in MEDIAN_FORMS:
            fraction = node.this.this
            if not (isinstance(fraction, exp.Literal) and float(fraction.this) == 0.5):
                raise ValueError(f"only the median (0.5) has a rule for {engine}, got {fraction.sql()}")
            ordered = node.expression.expressions[0].this
            return _form(MEDIAN_FORMS[engine], engine, x=ordered.sql(engine))
        if isinstance(node, exp.Extract) and node.name.upper() == "EPOCH" and engine in EPOCH_FORMS:
            return _form(EPOCH_FORMS[engine], engine, x=node.expression.sql(engine))
        if isinstance(node, (exp.TimestampTrunc, exp.DateTrunc)) and engine in TRUNC_FORMS:
            unit = node.args.get("unit")
            unit_name = (unit.name if unit is not None else "DAY").upper()
            return _form(TRUNC_FORMS[engine], engine, x=node.this.sql(engine), unit=unit_name)
        if isinstance(node, exp.Collate) and engine in BINARY_ORDER_ENGINES \
                and node.expression.name.upper() == "C":
            return node.this
        return node

    return rewrite


@lru_cache(maxsize=512)
def render(sql: str, engine: str) -> str:
    """The query ``sql`` (written in :data:`SOURCE_DIALECT`) in the dialect of ``engine``.

    Parameters
    ----------
    sql
        One statement of the extract (accounting, panel, cadence, segment counts).
    engine
        One of :data:`ENGINES`.

    Returns
    -------
    str
        The statement in that dialect. DuckDB and PostgreSQL get the text unchanged: it is
        written in the subset both run (and tested in both), so nothing is gained by rewriting it.

    Raises
    ------
    ValueError
        An unknown engine, or a form no rule covers (SQLGlot's ``UnsupportedError``).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine in ("duckdb", "postgres"):
        return sql
    import sqlglot
    from sqlglot.errors import ErrorLevel

    tree = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    tree = tree.transform(_rules(engine))
    return tree.sql(dialect=engine, unsupported_level=ErrorLevel.RAISE)


def parse_in(sql: str, engine: str):
    """Parse ``sql`` with ``engine``'s own parser (raises ``sqlglot.ParseError`` if it does not)."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    return sqlglot.parse_one(sql, read=engine, error_level=ErrorLevel.RAISE)
