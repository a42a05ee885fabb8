"""The trend page and the summary's trend sentences, read back from the real PDF (pdftotext),
in the demo brand (English, GBP, with the at-risk model) and the second brand (donors, EUR,
de_DE); the pack's own checks pass; a short history is said plainly."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cxpipeline.artifacts import read_json, read_table
from cxpipeline.checks import pack_content_problems
from cxpipeline.config import config_from_dict, load_config
from cxpipeline.pipeline import check_pack, compute_metrics, extract, render_pack, run_pack
from cxpipeline.periods import parse_period
from cxpipeline.report.formatting import Formatter
from cxpipeline.report.pages_trend import ordinal, trend_sentences
from tests.conftest import pdf_pages

ROOT = Path(__file__).resolve().parents[1]
SOURCE = {"kind": "demo", "customers": 1200, "years": 4}


def _trend_page(pages: list[str], title: str) -> tuple[int, str]:
    found = [(i, p) for i, p in enumerate(pages) if title in p and "per quarter" in p]
    assert len(found) == 1, f"{title!r} page not found once"
    return found[0]


def _wide(folder: Path) -> pd.DataFrame:
    """Per period from the trend tables, computed here independently of the page builder."""
    ledger = read_table(folder, "trend_ledger").pivot(index="period", columns="ledger_line",
                                                      values=["count_customers", "value"])
    bridge = read_table(folder, "trend_bridge").pivot(index="period", columns="bridge_class", values="value")
    out = pd.DataFrame({
        "gained": ledger[("count_customers", "new")] + ledger[("count_customers", "reactivated")],
        "value_gained": ledger[("value", "new")] + ledger[("value", "reactivated")],
        "lost": ledger[("count_customers", "lapsed")], "value_lost": ledger[("value", "lapsed")],
        "closing": ledger[("count_customers", "closing")], "revenue": bridge["current"],
        "change": bridge["current"] - bridge["previous"],
    })
    out["net_value"] = out["value_gained"] - out["value_lost"]
    return out.sort_index()


def _row_text(fmt: Formatter, period: str, row: pd.Series) -> str:
    """The table row as the PDF's text has it (whitespace, the locale's no-break spaces too, as one space)."""
    return " ".join(" ".join([period, fmt.count(row["gained"]), fmt.money(row["value_gained"]), fmt.count(row["lost"]),
                     fmt.money(row["value_lost"]), fmt.signed_count(row["gained"] - row["lost"]),
                     fmt.signed_money(row["net_value"]), fmt.count(row["closing"]), fmt.money(row["revenue"]),
                     fmt.signed_money(row["change"])]).split())


@pytest.fixture(scope="module")
def demo_pack(tmp_path_factory):
    config = config_from_dict({"pack_id": "trend-demo", "source": SOURCE, "segments": ["region"]})
    return config, run_pack(config, "2026-Q3", tmp_path_factory.mktemp("packs")).folder


def test_trend_page_reads_back_from_the_pdf(demo_pack):
    config, folder = demo_pack
    pages = pdf_pages(folder / "board_pack.pdf")
    index, page = _trend_page(pages, "Customer asset trend")
    summary_index = next(i for i, p in enumerate(pages) if "Executive summary" in p and "Three things" in p)
    assert index == summary_index + 1  # right after the summary
    fmt = Formatter(config.locale, config.currency)
    wide = _wide(folder)
    assert len(wide) == 8 and "in each of the last 8 quarters" in page
    for period in ("2024-Q4", "2026-Q3"):  # the oldest and the current row of the table
        assert _row_text(fmt, period, wide.loc[period]) in page
    assert "Gained and lost, per quarter" in page and "Revenue movement by class, per quarter" in page
    # value at risk: this period's, from the scores, and said to be this period's only
    # its revenue movements table and the value-at-risk note: the trend's detail in the appendix
    detail = next(i for i, p in enumerate(pages) if "Customer asset trend: revenue movements" in p and i > index + 1)
    text = " ".join(pages[detail:detail + 2])
    var = round(float(read_table(folder, "scores")["value_at_risk"].sum()), 2)
    assert f"Value at risk at the end of 2026-Q3: {fmt.money(var)}" in text
    assert "so there is no value at risk for the earlier quarters" in text
    # the revenue movements table: the current quarter's new customers' value
    assert "New customers" in text and fmt.signed_money_compact(
        float(read_table(folder, "trend_bridge").query("period == '2026-Q3' and bridge_class == 'new'")["value"].iloc[0])) in text


def test_summary_sentence_names_the_run_of_periods(demo_pack):
    _, folder = demo_pack
    pages = pdf_pages(folder / "board_pack.pdf", layout=False)
    summary = next(p for p in pages if "Executive summary" in p and "Three things" in p)
    net = _wide(folder)["net_value"].round(2)
    sign = (net > 0).astype(int) - (net < 0).astype(int)
    run = 0
    for value in reversed(sign.tolist()):
        if value != sign.iloc[-1]:
            break
        run += 1
    verb = "lost more value than it gained" if sign.iloc[-1] < 0 else "gained more value than it lost"
    assert "Across the last 8 quarters" in summary
    if run >= 2:
        assert f"The customer asset {verb} for the {ordinal(run)} quarter running." in summary
    else:
        assert f"The customer asset {verb} in 2026-Q3, after" in summary


def test_trend_page_passes_the_packs_checks(demo_pack):
    _, folder = demo_pack
    report = read_json(folder / "checks.json")
    assert report["is_deliverable"] is True
    assert all(check["is_passed"] for check in report["checks"])
    html = (folder / "board_pack.html").read_text(encoding="utf-8")
    section = html[html.index('<section class="section" id="trend"'):]
    section = section[:section.index("</section>") + len("</section>")]
    assert pack_content_problems(section) == []
    assert section.count('class="chart chart-trend"') == 2 and section.count("data:image/svg+xml;base64,") == 2
    assert "nan" not in re.sub(r"<[^>]+>", " ", section).lower().split()
    assert {"trend_ledger", "trend_bridge", "trend_span"} <= set(read_json(folder / "metrics.json")["tables"])


def test_second_brand_reads_right(tmp_path):
    config = load_config(ROOT / "examples" / "brands" / "helfen.yaml")
    config = config.model_copy(update={"source": config_from_dict({"source": SOURCE}).source})
    folder = run_pack(config, "2026-Q3", tmp_path).folder
    pages = pdf_pages(folder / "board_pack.pdf")
    _, page = _trend_page(pages, "Donor asset trend")
    fmt = Formatter("de_DE", "EUR")
    wide = _wide(folder)
    row = _row_text(fmt, "2026-Q3", wide.loc["2026-Q3"])
    assert row in page and "€" in row
    assert "donors gained and lost, in count and in value" in page and "customer" not in page.lower()
    assert "Donors gained and lost" in page or "Donors gained" in " ".join(pages)
    summary = next(p for p in pdf_pages(folder / "board_pack.pdf", layout=False) if "Across the last 8 quarters" in p)
    assert "The donor asset" in summary


def test_short_history_is_said_plainly_and_without_a_model(tmp_path):
    config = config_from_dict({"pack_id": "trend-short", "source": {**SOURCE, "years": 2}, "segments": ["region"]})
    period = parse_period("2026-Q3")
    for stage in (extract, compute_metrics, render_pack, check_pack):
        folder = Path(stage(config, period, tmp_path)["folder"])
    first = read_table(folder, "panel")["period_start"].min()
    span = read_table(folder, "trend_span").iloc[0]
    shown = int(span["shown"])
    assert shown < 8 and span["reason"] == "history"
    assert read_table(folder, "trend_ledger")["period"].nunique() == shown
    text = " ".join(pdf_pages(folder / "board_pack.pdf", layout=False))
    first_label = f"{first.year}-Q{(first.month - 1) // 3 + 1}"
    assert f"The trend shows {shown} quarters, not 8: the data starts in {first_label}" in text
    assert "No at-risk model ran for this pack, so no value at risk is shown for any quarter." in text


def test_sentences_exact_on_hand_built_rows():
    fmt, terms = Formatter("en_GB", "GBP"), {"customer": "customer", "customers": "customers"}

    def row(period, new, lost, net_value):
        return {"period": period, "count_new": new, "count_lost": lost, "net_value": net_value,
                "count_opening": 100, "count_closing": 100}

    rows = [row("2024-Q4", 30, 9, 50.0), row("2025-Q1", 20, 10, -5.0), row("2025-Q2", 25, 11, -7.0),
            row("2025-Q3", 40, 10, -1.0)]
    assert trend_sentences(rows, fmt, terms, "quarter") == [
        "The customer asset lost more value than it gained for the 3rd quarter running.",
        "The largest intake of new customers in 4 quarters: 40.",
    ]
    rows[-1] = row("2025-Q3", 10, 8, 3.0)
    assert trend_sentences(rows, fmt, terms, "quarter") == [
        "The customer asset gained more value than it lost in 2025-Q3, after losing more in 2025-Q2.",
        "The smallest intake of new customers in 4 quarters: 10.",
    ]
    rows[-1] = row("2025-Q3", 25, 10, 0.0)  # no streak, no record: how the base moved
    assert trend_sentences(rows, fmt, terms, "quarter") == ["Active customers: 100, 0 since the start of 2024-Q4."]
    assert trend_sentences(rows[:1], fmt, terms, "quarter") == []
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "112th"]
