"""What leaves the building (issue 20): spreadsheet-safe CSVs, strict YAML, only the checked
PDF of the right config, masking in every published file, bounded logos.

Real components: Arrow's CSV writer read back with the csv module and pandas, the real YAML
loader, the whole pipeline on a tiny file source, a real SMTP server (aiosmtpd), the CLI.
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from cxpipeline.artifacts import neutralise_formulas, write_table
from cxpipeline.config import load_config
from cxpipeline.errors import ConfigError

HOSTILE_CELLS = ['=HYPERLINK("http://evil.example/x","click")', "+cmd|' /C calc'!A0", "-2+3",
                 "@SUM(A1:A9)", "\tTAB", "\rCR"]


def test_csv_cells_a_spreadsheet_would_evaluate_are_prefixed_and_parquet_keeps_them(tmp_path):
    frame = pd.DataFrame({
        "customer_id": pd.Series(HOSTILE_CELLS + ["C7", "-12.5", "+44", None], dtype="string"),
        "segment_value": pd.Categorical(["=1+1"] * 5 + ["North"] * 5),
        "value": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
    })
    write_table(tmp_path, "bridge_movers", frame)
    with open(tmp_path / "bridge_movers.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    ids = [row["customer_id"] for row in rows]
    assert ids[:6] == ["'" + cell for cell in HOSTILE_CELLS]
    assert ids[6:] == ["C7", "-12.5", "+44", ""], "plain numbers and ordinary text are untouched"
    assert {row["segment_value"] for row in rows} == {"'=1+1", "North"}, "categoricals too"
    assert rows[0]["value"] == "-1.5", "numeric columns are numbers, not text"
    for row in rows:  # nothing a spreadsheet would run is left
        for cell in row.values():
            assert not cell[:1] in ("=", "+", "@", "\t", "\r") or cell in ("+44",), cell
    raw = pd.read_parquet(tmp_path / "bridge_movers.parquet")
    assert raw["customer_id"].tolist()[:6] == HOSTILE_CELLS, "the Parquet twin keeps raw values"


def test_neutralise_formulas_leaves_tables_without_text_alone():
    import pyarrow as pa

    table = pa.table({"n": [1, -2], "d": pa.array([None, None], pa.string())})
    assert neutralise_formulas(table).equals(table)


@pytest.mark.parametrize("text, phrase, line", [
    ("pack_id: x\ndelivery:\n  allowed_domains: [example.com]\n  recipients: [a@example.com]\n"
     "delivery:\n  recipients: [leak@gmail.com]\n", "'delivery' appears twice", 5),
    ("pack_id: x\nbrand: {company_name: A, company_name: B}\n", "'company_name' appears twice", 2),
    ("pack_id: x\nsegments: " + "[" * 10_000 + "]" * 10_000 + "\n", "nested more than 32 levels", 2),
])
def test_yaml_duplicate_keys_and_deep_nesting_are_config_errors(tmp_path, text, phrase, line):
    path = tmp_path / "pack.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=phrase) as caught:
        load_config(path)
    assert caught.value.where == f"{path}, line {line}" and caught.value.fix


def _config_error(tmp_path, text: str) -> ConfigError:
    path = tmp_path / "pack.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


@pytest.mark.parametrize("text, phrase", [
    ("delivery: {subject: '{company.__class__}'}\n", "placeholder {company.__class__} is not allowed"),
    ("delivery: {subject: '{period[0]} pack'}\n", "placeholder {period[0]} is not allowed"),
    ("delivery: {subject: '{ceo} pack'}\n", "placeholder {ceo} is not allowed"),
    ("delivery: {subject: '{company!r}'}\n", "placeholder {company!r} is not allowed"),
    ("delivery: {subject: 'Pack {'}\n", "not a valid template"),
    ('delivery: {subject: "Pack\\r\\nBcc: x@evil.example"}\n', "subject contains a line break"),
    ('brand: {company_name: "Acme\\nBcc: x@evil.example"}\n', "company_name contains a line break"),
    ("output: {sections: []}\n", "sections is empty"),
    ("output: {sections: [summary, summry]}\n", "unknown section id(s) 'summry'"),
    ("currency: ABC\n", "'ABC' is not an ISO 4217 currency code"),
    ("model: {random_state: -1}\n", "model.random_state: Input should be greater than or equal to 0"),
    ("model: {random_state: 4294967296}\n", "model.random_state: Input should be less than or equal to"),
    ("segments: [region, all]\n", "'all' is reserved"),
])
def test_config_values_that_fail_late_are_refused_when_the_config_loads(tmp_path, text, phrase):
    error = _config_error(tmp_path, "pack_id: x\n" + text)
    assert phrase in str(error) and error.where and error.fix


def test_section_ids_are_the_renderer_pages():
    from cxpipeline.config import SECTION_IDS
    from cxpipeline.report.context import PAGES

    assert SECTION_IDS == tuple(page.id for page in PAGES)


def test_documented_placeholders_still_work(tmp_path):
    path = tmp_path / "pack.yaml"
    path.write_text("pack_id: x\ncurrency: EUR\ndelivery: {subject: '{company} {{board}} {period} {pack_id}'}\n")
    assert load_config(path).delivery.subject == "{company} {{board}} {period} {pack_id}"
