"""The extract SQL, written once, rendered by SQLGlot for every engine and parsed by that
engine's own parser; the rules for the forms that differ (median, epoch seconds, binary order,
date_trunc) are applied once in cxpipeline.sources.dialects."""

from __future__ import annotations

from datetime import date

import pytest

from cxpipeline.periods import comparison_period, parse_period
from cxpipeline.sources.aggregate import RowRules, extract_statements
from cxpipeline.sources.dialects import ENGINES, parse_in, render

SOURCE = "(SELECT * FROM transactions) AS source_rows"


def _statements(kind: str = "2026-Q2", rules: RowRules | None = None, fiscal_start: int = 1) -> dict[str, str]:
    period = parse_period(kind, fiscal_start)
    return extract_statements(SOURCE, period, comparison_period(period, "year_ago"), rules or RowRules(),
                              ("region", 'Sales "Region"'))  # a column name with a space and quotes


CASES = {
    "quarter, default rules": _statements(),
    "month, every rule switched on": _statements("2026-05", RowRules(True, date(1995, 1, 1), date(2026, 9, 30))),
    "fiscal quarter (April)": _statements("FY2026-Q1", fiscal_start=4),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_statement_parses_in_every_engine(engine, case):
    statements = CASES[case]
    assert {"accounting", "panel", "panel_monthly", "cadence"} <= set(statements)
    for name, sql in statements.items():
        rendered = render(sql, engine)
        try:
            parse_in(rendered, engine)
        except Exception as exc:  # pragma: no cover - the message says which statement
            pytest.fail(f"{name} rendered for {engine} does not parse: {exc}\n{rendered}")


def test_engine_rules_are_applied():
    cadence = _statements()["cadence"]
    panel = _statements()["panel"]
    # Exact medians only: SQLGlot alone would write an approximate percentile for Spark and Trino.
    for engine in ENGINES:
        assert "APPROX" not in render(cadence, engine).upper(), engine
    assert "MEDIAN(gap_seconds)" in render(cadence, "spark")
    assert "PERCENTILE_CONT(v, 0.5) OVER ()" in render(cadence, "bigquery")
    assert "PERCENTILE_CONT(0.5) WITHIN GROUP" in render(cadence, "snowflake")
    assert "ARRAY_SORT" in render(cadence, "trino")
    # Epoch seconds and truncation of wall-clock timestamps.
    assert "UNIX_SECONDS(CAST(" in render(cadence, "spark")
    assert "EPOCH_SECOND" in render(cadence, "snowflake")
    assert "DATETIME_TRUNC(" in render(panel, "bigquery")
    # Binary order: kept where it must be asked for, dropped where it is the default.
    assert 'COLLATE "C"' in render(panel, "postgres")
    for engine in ("spark", "databricks", "bigquery", "snowflake", "trino"):
        assert "COLLATE" not in render(panel, engine).upper(), engine
    # FILTER becomes a conditional aggregate where the engine has no FILTER clause.
    assert "FILTER" not in render(panel, "bigquery") and "IF(" in render(panel, "bigquery")
    assert "IFF(" in render(panel, "snowflake")


def test_a_segment_column_with_a_space_is_one_quoted_identifier_in_every_engine():
    import sqlglot

    sql = _statements()['segment Sales "Region"']
    quoting = {"spark": "`", "databricks": "`", "bigquery": "`", "duckdb": '"', "postgres": '"',
               "snowflake": '"', "trino": '"'}
    for engine in ENGINES:
        rendered = render(sql, engine)
        q = quoting[engine]
        inner = 'Sales "Region"' if q == "`" else 'Sales ""Region""'
        assert f"{q}{inner}{q} AS segment_value" in rendered, (engine, rendered)
        columns = [c.name for c in sqlglot.parse_one(rendered, read=engine).find_all(sqlglot.exp.Column)]
        assert 'Sales "Region"' in columns, (engine, columns)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown engine 'oracle'"):
        render("SELECT 1", "oracle")


def test_engine_config_examples_validate_and_hold_no_secret():
    from pathlib import Path

    from cxpipeline.config import load_config

    folder = Path(__file__).resolve().parent.parent / "examples" / "engines"
    for path in sorted(folder.glob("*.yaml")):
        config = load_config(path)
        text = path.read_text()
        assert config.source.kind in ("spark", "sql"), path.name
        assert "token=${" in text or "token" not in text.lower(), path.name  # tokens only from the env
        assert "PASSWORD@" not in text or "USER:PASSWORD@ACCOUNT" in text, path.name
