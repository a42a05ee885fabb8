"""The model pages of the board pack read back from real PDFs: at-risk list, historical vs
predicted value, model backtest; the definitions filter, the pre-delivery content check and the
templates lookup.

One real pipeline run per data set (module fixtures): a demo retailer with enough history for
the model, and a tiny one whose history is too short (the recency-rule fallback). Expected
strings are formatted here without Babel.
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_EVEN, Decimal
import shutil
from pathlib import Path

import pdfplumber
import pytest

from cxpipeline.artifacts import read_json, read_table
from cxpipeline.checks import pack_content_problems, run_checks
from cxpipeline.config import config_from_dict, load_config
from cxpipeline.errors import CheckError, ConfigError
from cxpipeline.metrics.registry import METRICS
from cxpipeline.periods import parse_period
from cxpipeline.pipeline import check_pack, compute_metrics, extract, run_pack, score_customers
from cxpipeline.report import build_context, render_html, render_pdf
from cxpipeline.report.context import PAGES
from cxpipeline.report.pages_model import AT_RISK_LIST_SIZE, DO_NOT_LOSE_LIST_SIZE, _driver_text
from cxpipeline.report.render import TEMPLATES_DIR, require_templates, resolve_templates_dir

ROOT = Path(__file__).resolve().parents[1]
MINUS = "\u2212"
MODEL_SECTIONS = ("at-risk", "value", "model", "definitions")


def gbp(value: float) -> str:
    text = f"£{abs(round(value)):,}"
    return MINUS + text if round(value) < 0 else text


def pct(value: float, signed: bool = False) -> str:
    """A ratio as 'x.y%', rounded half-even on the decimal value (as the pack's Babel does)."""
    tenths = (Decimal(repr(float(value))) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    text = f"{abs(tenths)}%"
    if signed and tenths != 0:
        return ("+" if tenths > 0 else MINUS) + text
    return (MINUS + text) if tenths < 0 else text


def flat(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def squeezed(text: str) -> str:
    """Without any whitespace: for sentences in narrow columns, which PDF text extraction breaks
    at arbitrary points (e.g. 'BG/ NBD')."""
    return "".join(flat(text).split())


def render_sections(folder: Path, config, out: Path, ids=MODEL_SECTIONS) -> tuple[str, list[str], str]:
    """Render only the given sections of the pack (same context, same templates) -> (html, page texts, pdf)."""
    context = build_context(folder, config)
    # one run of sections (a board page's detail right after it), no appendix divider
    keep = [s for s in context["sections"] if s["id"] in ids or s["id"].removesuffix("-detail") in ids]
    context["sections"] = context["board_sections"] = sorted(keep, key=lambda s: ids.index(s["id"].removesuffix("-detail")))
    context["appendix_sections"] = []
    html = render_html(context)
    pdf = out / "sections.pdf"
    pdf.write_bytes(render_pdf(html))
    with pdfplumber.open(pdf) as doc:
        texts = [page.extract_text() or "" for page in doc.pages]
    return html, texts, str(pdf)


def section_text(texts: list[str], title: str, next_titles: list[str]) -> str:
    """The flattened text from the page whose heading is ``title`` up to the next section."""
    whole = " " + flat("\n".join(texts[2:]))  # after the cover and the contents
    start = whole.index(f" {title} ")
    ends = [whole.find(f" {t} ", start + 1) for t in next_titles]
    ends = [e for e in ends if e > 0]
    return whole[start:min(ends) if ends else len(whole)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_pages")
    config = config_from_dict({"source": {"kind": "demo", "customers": 900, "years": 3}})
    result = run_pack(config, output_root=root)
    html, texts, pdf = render_sections(result.folder, config, root)
    return result.folder, config, html, texts, pdf


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """150 customers, one year of data, reporting 2026-Q1: too little history for the model."""
    root = tmp_path_factory.mktemp("model_pages_tiny")
    config = config_from_dict({"source": {"kind": "demo", "customers": 150, "years": 1}})
    period = parse_period("2026-Q1", 1)
    extract(config, period, root)
    compute_metrics(config, period, root)
    folder = Path(score_customers(config, period, root)["folder"])
    html, texts, pdf = render_sections(folder, config, root)
    return folder, config, html, texts


def test_at_risk_list_equals_the_scores_table(demo_run):
    folder, config, _, texts, _ = demo_run
    scores = read_table(folder, "scores").sort_values("at_risk_rank")
    names = read_table(folder, "customers").set_index("customer_id")["customer_name"]
    text = section_text(texts, "At-risk customers and value at risk", ["Historical vs predicted value"])
    top = scores.head(AT_RISK_LIST_SIZE)
    assert len(top) == AT_RISK_LIST_SIZE
    for row in top.itertuples():
        numbers = f"{pct(row.p_at_risk)} {gbp(row.predicted_value_12m)} {gbp(row.historical_value)} {gbp(row.value_at_risk)}"
        assert f"{row.at_risk_rank} {names[row.customer_id]} {row.customer_id} {numbers}" in text, row.customer_id
        # The driver as the pack prints it: numbers in the locale, money in the currency.
        assert flat(_driver_text(row.driver_1, config)) in text
    # totals: all scored, the top of the list, the do-not-lose quadrant
    keep = scores[scores["is_do_not_lose"]]
    assert ("Value at risk, all customers Customers scored Top 20 on the list Do not lose them "
            f"{gbp(scores['value_at_risk'].sum())} {len(scores):,} {gbp(top['value_at_risk'].sum())} {len(keep):,}") in text
    assert f"customers holding {gbp(keep['value_at_risk'].sum())} of value at risk" in text
    assert (f"Top {AT_RISK_LIST_SIZE} {gbp(top['predicted_value_12m'].sum())} {gbp(top['historical_value'].sum())} "
            f"{gbp(top['value_at_risk'].sum())}") in text
    share = top["value_at_risk"].sum() / scores["value_at_risk"].sum()
    assert f"{pct(share)} of all value at risk" in text
    report = read_json(folder / "model_report.json")["scores_summary"]
    assert round(scores["value_at_risk"].sum(), 2) == pytest.approx(report["total_value_at_risk"], abs=0.01)


def test_do_not_lose_quadrant_is_named_on_its_own(demo_run):
    folder, _, _, texts, _ = demo_run
    scores = read_table(folder, "scores").sort_values("at_risk_rank")
    names = read_table(folder, "customers").set_index("customer_id")["customer_name"]
    keep = scores[scores["is_do_not_lose"]]
    assert len(keep) > DO_NOT_LOSE_LIST_SIZE  # the demo has a real quadrant
    text = section_text(texts, "At-risk customers and value at risk", ["Historical vs predicted value"])
    quadrant = text[text.index("Do not lose them Long-standing"):]
    assert (f"{len(keep):,} customers, historical value {gbp(keep['historical_value'].sum())}, "
            f"{gbp(keep['revenue_12m'].sum())} in the last 12 months, {gbp(keep['predicted_value_12m'].sum())} "
            f"predicted for the next 12 and {gbp(keep['value_at_risk'].sum())} at risk") in quadrant
    for row in keep.head(DO_NOT_LOSE_LIST_SIZE).itertuples():
        assert (f"{row.at_risk_rank} {names[row.customer_id]} {row.customer_id} {pct(row.p_at_risk)} "
                f"{gbp(row.revenue_12m)} {gbp(row.predicted_value_12m)} {gbp(row.historical_value)} "
                f"{gbp(row.value_at_risk)}") in quadrant
    # the customer after the printed ten is not on the page, and the caption says so
    not_shown = keep.iloc[DO_NOT_LOSE_LIST_SIZE]
    assert f"{names[not_shown.customer_id]} {not_shown.customer_id}" not in quadrant
    assert f"The {DO_NOT_LOSE_LIST_SIZE} with the most value at risk of {len(keep):,}." in quadrant


def test_value_bands_equal_the_scores_table(demo_run):
    folder, config, _, texts, _ = demo_run
    scores = read_table(folder, "scores")
    text = section_text(texts, "Historical vs predicted value", ["Model backtest"])
    ranked = scores.sort_values(["historical_value", "customer_id"], ascending=[False, True])
    n = len(ranked)
    cuts = [0, *[math.ceil(s * n) for s in config.tiers.top_shares], n]
    total_hist, total_pred = scores["historical_value"].sum(), scores["predicted_value_12m"].sum()
    for k, name in enumerate(config.tiers.names):
        band = ranked.iloc[cuts[k]:cuts[k + 1]]
        change = band["predicted_value_12m"].sum() - band["revenue_12m"].sum()
        expected = (f"{name} {len(band):,} {gbp(band['historical_value'].sum())} {pct(band['historical_value'].sum() / total_hist)} "
                    f"{gbp(band['revenue_12m'].sum())} {gbp(band['predicted_value_12m'].sum())} "
                    f"{pct(band['predicted_value_12m'].sum() / total_pred)} {'+' if change > 0 else ''}{gbp(change)}")
        assert expected in text, expected
        tail = f"{pct(band['p_at_risk'].mean())} {gbp(band['value_at_risk'].sum())} {int(band['is_do_not_lose'].sum())}"
        assert tail in text, tail
    assert f"Total {n:,} {gbp(total_hist)} {gbp(scores['revenue_12m'].sum())} {gbp(total_pred)}" in text
    keep = scores[scores["is_do_not_lose"]]
    assert f"{gbp(keep['revenue_12m'].sum())} → {gbp(keep['predicted_value_12m'].sum())}" in text


def test_backtest_page_equals_model_report(demo_run):
    folder, _, html, texts, _ = demo_run
    report = read_json(folder / "model_report.json")
    bt = report["backtest"]
    assert bt["available"] and report["logistic_fitted"]
    # the page describes the method the pack uses, chosen by this backtest's Brier score
    assert report["method"] == bt["method"] == bt["preferred"]
    text = section_text(texts, "Model backtest", ["Value model backtest", "Definitions"])
    assert f"Backtest at {bt['snapshot']}, {bt['horizon_days']} days" in text
    order = [k for k in ("logistic", "bgnbd", "recency_rule") if k in bt["models"]]
    assert order == ["logistic", "bgnbd", "recency_rule"]
    aucs = [bt["models"][k]["roc_auc"] for k in order] + [0.5]
    briers = [bt["models"][k]["brier"] for k in order] + [bt["base_rate"]["brier"]]
    assert "ROC-AUC " + " ".join(f"{v:.4f}" for v in aucs) in text
    assert "Brier score " + " ".join(f"{v:.4f}" for v in briers) in text
    assert bt["base_rate"]["brier"] == pytest.approx(bt["lapse_rate"] * (1 - bt["lapse_rate"]), abs=1e-4)
    assert f"{bt['n']:,} customers bought before {bt['snapshot']}; {pct(bt['lapse_rate'])} made no purchase" in text
    # sentences of the narrow column are interleaved with the wide one in the PDF's text: the HTML
    assert flat(report["method_choice"]["why"]) in flat(html)
    assert "P(at risk) comes from the " + report["method_choice"]["label"] in text
    cal = bt["calibration"]
    assert cal == bt["models"][report["method"]]["calibration"]
    assert "Predicted " + " ".join(pct(row["mean_predicted"]) for row in cal) in text
    assert "Observed " + " ".join(pct(row["observed"]) for row in cal) in text
    assert "Observed − predicted " + " ".join(pct(row["difference"], signed=True) for row in cal) in text
    other = "bgnbd" if report["method"] == "logistic" else "logistic"
    other_label = {"bgnbd": "BG/NBD", "logistic": "Logistic"}[other]
    other_cal = bt["models"][other]["calibration"]
    assert f"{other_label}: predicted" in flat(html) and f"{other_label}: observed" in flat(html)
    assert " ".join(pct(r["mean_predicted"]) for r in other_cal) in text  # the label wraps in its cell
    assert " ".join(pct(r["observed"]) for r in other_cal) in text
    # the verdict is the numbers' verdict
    m, r = bt["model"], bt["recency_rule"]
    beats = m["roc_auc"] > r["roc_auc"] and m["brier"] < r["brier"]
    assert ("beats the recency rule on both measures" in text) == beats
    checked = [row for row in cal if row["within_5_points"] is not None]
    if checked and all(row["within_5_points"] for row in checked):
        assert f"every one of the {len(checked)} deciles with 200 or more customers is within 5 points" in text
    # last period's list, checked against what happened
    rv = report["previous_list_review"]
    assert (f"Mean predicted P(at risk) {pct(rv['top_mean_p_at_risk'])} {pct(rv['all_mean_p_at_risk'])}") in text
    assert f"Bought again {rv['top_count_bought_again']}" in text
    assert (f"No purchase since {rv['top_count_no_purchase']} ({pct(rv['top_count_no_purchase'] / rv['top_n'])}) "
            f"{pct(rv['all_share_no_purchase'])}") in text
    assert f"Value at risk then {gbp(rv['top_value_at_risk'])}" in text
    assert f"Purchases counted from {rv['from']} to {rv['to']} ({rv['days_observed']} days)" in text


def test_short_history_pages_name_the_label_free_model(tiny_run):
    folder, _, html, texts = tiny_run
    report = read_json(folder / "model_report.json")
    # one year of history, 150 customers: too few labelled windows for the logistic model
    assert report["method"] == "bgnbd" and not report["logistic_fitted"]
    whole = flat("\n".join(texts))
    at_risk = section_text(texts, "At-risk customers and value at risk", ["Historical vs predicted value"])
    model = section_text(texts, "Model backtest", ["Value model backtest", "Definitions"])
    note = flat(f"P(at risk) comes from the BG/NBD purchase model. {report['method_choice']['why']}")
    assert squeezed(note) in squeezed(at_risk) and flat(note) in flat(html)
    assert "Too few labelled 90-day outcome windows" in note
    assert "Too little history for the model, so these scores come from a recency rule" not in whole
    # BG/NBD could not be fitted at the backtest snapshot (44 customers then): the page says so
    assert "bgnbd" not in report["backtest"]["models"]
    assert "could not be fitted at the backtest snapshot" in flat(html)
    assert "BG/NBD" in at_risk and "the BG/NBD model's inputs" in at_risk
    # numbers on the pages still come from the run's own scores
    scores = read_table(folder, "scores").sort_values("at_risk_rank")
    first = scores.iloc[0]
    assert f"{pct(first.p_at_risk)} {gbp(first.predicted_value_12m)} {gbp(first.historical_value)} {gbp(first.value_at_risk)}" in whole
    assert pack_content_problems(html) == []


def test_probabilities_no_better_than_the_base_rate_are_not_printed(demo_run, tmp_path):
    folder, config, _, _, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    report = read_json(copy / "model_report.json")
    report["probabilities"] = {"shown": False, "method_brier": 0.275, "base_rate_brier": 0.21,
                               "note": "P(at risk) is not shown as a probability: test note. The list is a ranking only."}
    (copy / "model_report.json").write_text(json.dumps(report), encoding="utf-8")
    html, texts, _ = render_sections(copy, config, tmp_path, ids=("at-risk",))
    text = section_text(texts, "At-risk customers and value at risk", ["Definitions"])
    assert "P(at risk) is not shown as a probability: test note." in text
    assert "ranked, not calibrated" in text and "mean P(at risk)" not in text
    scores = read_table(copy, "scores").sort_values("at_risk_rank")
    first = scores.iloc[0]
    assert f"— {gbp(first.predicted_value_12m)} {gbp(first.historical_value)} {gbp(first.value_at_risk)}" in text
    assert pct(first.p_at_risk) + " " + gbp(first.predicted_value_12m) not in text


def test_value_backtest_page_equals_model_report(demo_run, tmp_path):
    folder, config, _, _, _ = demo_run
    html, texts, _ = render_sections(folder, config, tmp_path, ids=("value-backtest",))
    report = read_json(folder / "model_report.json")
    vbt = report["value_backtest"]
    assert vbt["available"] and vbt["horizon_days"] in (365, 366)
    text = section_text(texts, "Value model backtest", ["Definitions"])
    assert f"Backtest at {vbt['snapshot']}," in text and f"{vbt['horizon_days']} days" in text
    used = report["value_model"]["method"]
    assert used == vbt["preferred"] and set(vbt["models"]) == {"regression", "bgnbd"}
    assert vbt["models"][used]["mae"] == min(m["mae"] for m in vbt["models"].values())
    for key, m in [*vbt["models"].items(), ("naive", vbt["naive"])]:
        # labels wrap in their cells; the numbers of a row stay together
        assert f"{gbp(m['mae'])} {gbp(m['total_predicted'])} {gbp(m['total_actual'])}" in text, key
    assert flat(vbt["preferred_reason"]) in flat(html)
    deciles = vbt["models"][used]["deciles"]
    assert sum(d["n"] for d in deciles) == vbt["n"]
    assert sum(d["actual"] for d in deciles) == pytest.approx(vbt["naive"]["total_actual"], abs=0.1)
    assert "Share of actual " + " ".join(pct(d["share_of_actual"]) for d in deciles) in text
    assert "Lift " + " ".join(f"{d['lift']:.2f}" for d in deciles) in text


def test_terminology_and_currency_follow_the_config(demo_run, tmp_path):
    folder, _, _, _, _ = demo_run
    config = load_config(ROOT / "examples" / "brands" / "helfen.yaml")
    html, texts, _ = render_sections(folder, config, tmp_path)
    # the segment attribute "customer_type" is the data's own name, printed on the cover
    whole = flat("\n".join(texts)).replace("Customer type", "")
    assert "customer" not in whole.lower()  # the definitions page included
    assert "£" not in whole and "GBP" not in whole
    assert "At-risk donors and value at risk" in whole and "Donors scored" in whole
    scores = read_table(folder, "scores")
    total = f"{round(scores['value_at_risk'].sum()):,}".replace(",", ".") + " €"
    assert "Value at risk, all donors" in whole and f"{total} {len(scores):,}".replace(",", ".") in whole
    report = read_json(folder / "model_report.json")["backtest"]
    assert f"ROC-AUC {report['model']['roc_auc']:.4f}".replace(".", ",") in whole  # German decimals


def test_every_registry_definition_follows_the_terminology():
    for metric in METRICS.values():
        rendered = metric.render("donors", "donor")
        assert "customer" not in (rendered.label + " " + rendered.definition).lower(), metric.name


def test_definitions_list_only_the_metrics_the_pack_shows(demo_run, tmp_path):
    folder, config, _, _, _ = demo_run
    context = build_context(folder, config)
    shown = {s["id"] for s in context["sections"]}
    declared = {name for page in PAGES if page.id in shown for name in page.metrics}
    definitions = next(s for s in context["sections"] if s["id"] == "definitions")["data"]["metrics"]
    assert {m["name"] for m in definitions} == declared
    assert {"value_at_risk", "backtest_roc_auc", "recency_rule"} <= declared
    # a run without the model stage: its metrics leave the definitions page with its pages
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "scores.parquet").unlink()
    context = build_context(bare, config)
    assert not {"at-risk", "value", "model"} & {s["id"] for s in context["sections"]}
    names = {m["name"] for s in context["sections"] if s["id"] == "definitions" for m in s["data"]["metrics"]}
    assert "value_at_risk" not in names and "backtest_roc_auc" not in names and "bridge_new" in names


def test_model_pages_do_not_overlap_or_leave_the_page(demo_run):
    from tests.test_report import overlapping_chars

    _, _, _, _, pdf = demo_run
    with pdfplumber.open(pdf) as doc:
        for number, page in enumerate(doc.pages, start=1):
            assert overlapping_chars(page) == [], f"page {number}"


def test_the_full_pack_passes_the_checks_and_a_broken_one_fails(demo_run, tmp_path):
    folder, config, _, _, _ = demo_run
    report = read_json(folder / "checks.json")
    assert report["is_deliverable"] is True
    assert {c["name"] for c in report["checks"]} >= {"no empty table or chart", "pdf page count"}
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    html = (broken / "board_pack.html").read_text(encoding="utf-8")
    empty_table = '<table class="data"><thead><tr><th>x</th></tr></thead><tbody></tbody></table>'
    html = html.replace('<h2>Ranked by value at risk</h2>', '<h2>Ranked by value at risk</h2>' + empty_table, 1)
    (broken / "board_pack.html").write_text(html, encoding="utf-8")
    result = run_checks(broken, config)
    failed = {c["name"]: c["detail"] for c in result["checks"] if not c["is_passed"]}
    assert result["is_deliverable"] is False
    assert "section 'at-risk': table 1 has no rows" in failed["no empty table or chart"]  # the board page


def test_check_pack_fails_the_run_with_a_clear_message(demo_run, tmp_path):
    folder, config, _, _, _ = demo_run
    period = parse_period(folder.name, 1)
    root = tmp_path / "root"
    shutil.copytree(folder, root / config.pack_id / folder.name)
    target = root / config.pack_id / folder.name / "board_pack.html"
    target.write_text(target.read_text(encoding="utf-8").replace(
        '<p class="lead">', '<p class="empty"> </p><p class="lead">', 1), encoding="utf-8")
    with pytest.raises(CheckError, match="no empty table or chart: .*an empty-content note has no text"):
        check_pack(config, period, root)
    assert read_json(target.parent / "checks.json")["is_deliverable"] is False


@pytest.mark.parametrize("snippet, problem", [
    ('<table class="data"><tbody></tbody></table>', "table 1 has no rows"),
    ('<table class="data"><tbody><tr><td> </td></tr></tbody></table>', "table 1 has no rows"),
    ('<p class="empty"></p>', "an empty-content note has no text"),
    ('<img class="chart" src="">', "a chart has no embedded image"),
    ('<img class="chart" src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">', "a chart draws nothing"),
    ('<table class="data"><tbody><tr><td class="num">nan</td></tr></tbody></table>', "prints 'nan'"),
    ('', "section 'x' is empty"),
])
def test_content_check_finds_each_kind_of_empty_content(snippet, problem):
    html = f'<html><body><section class="section" id="x"><header><h1>X</h1></header>{snippet}</section></body></html>'
    assert any(problem in p for p in pack_content_problems(html)), pack_content_problems(html)


def test_content_check_accepts_an_explained_gap():
    html = ('<section class="section" id="x"><p class="empty">No customer was scored this period.</p>'
            '<table class="data"><tbody><tr><td class="label">None</td><td class="num">1</td></tr></tbody></table>'
            '</section>')
    assert pack_content_problems(html) == []


def test_templates_are_found_or_the_error_says_how(tmp_path):
    assert resolve_templates_dir({}) == TEMPLATES_DIR
    assert (TEMPLATES_DIR / "pages" / "at_risk.html").is_file()
    assert resolve_templates_dir({"CXPIPELINE_TEMPLATES": str(TEMPLATES_DIR)}) == TEMPLATES_DIR
    with pytest.raises(ConfigError, match="CXPIPELINE_TEMPLATES=.* holds no board_pack.html"):
        resolve_templates_dir({"CXPIPELINE_TEMPLATES": str(tmp_path)})
    with pytest.raises(ConfigError, match="templates are not in"):
        require_templates(tmp_path / "missing")
    # setup.py copies templates/ into the wheel; the sdist carries them (MANIFEST.in)
    assert "graft templates" in (ROOT / "MANIFEST.in").read_text()


def test_masked_pack_never_prints_names(demo_run, tmp_path):
    folder, _, _, _, _ = demo_run
    config = config_from_dict({"source": {"kind": "demo", "customers": 900, "years": 3},
                               "delivery": {"mask_customers": True}})
    names = read_table(folder, "customers").set_index("customer_id")["customer_name"]
    first = read_table(folder, "scores").sort_values("at_risk_rank").iloc[0]["customer_id"]
    try:
        import cxpipeline.masking  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="mask_customers is set but cxpipeline.masking is not available"):
            build_context(folder, config)
        return
    _, texts, _ = render_sections(folder, config, tmp_path, ids=("at-risk",))
    whole = flat("\n".join(texts))
    assert names[first] not in whole and first not in whole
    from cxpipeline.masking import mask_id, masking_salt

    assert mask_id(first, masking_salt(config)) in whole  # the stable token stands in for the customer
