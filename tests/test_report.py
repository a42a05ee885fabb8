"""The board pack PDF read back: numbers equal the metric tables, TOC, fonts, branding.

The pack is rendered once per brand (module fixtures) from the hand-built fixture folder
(cxpipeline.report.fixture) with real WeasyPrint and read back with pypdf / pdfplumber.
Expected strings are formatted independently of the pack's Babel formatter.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pandas as pd
import pdfplumber
import pytest
from pypdf import PdfReader

from cxpipeline.artifacts import read_json, read_table, write_table
from cxpipeline.config import config_from_dict, load_config
from cxpipeline.errors import ConfigError, InputError
from cxpipeline.metrics.registry import label
from cxpipeline.report import TEMPLATES_DIR, build_context, render_board_pack, render_html
from cxpipeline.report.fixture import write_fixture_folder
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["previous", "new", "reactivated", "increased", "decreased", "flat", "stopped", "returns_only", "current"]
MINUS = "\u2212"


def gbp(value: float) -> str:
    """en_GB whole pounds, formatted without Babel."""
    text = f"£{abs(round(value)):,}"
    return MINUS + text if round(value) < 0 else text


def eur_de(value: float) -> str:
    text = f"{abs(round(value)):,}".replace(",", ".") + "\u00a0€"
    return MINUS + text if round(value) < 0 else text


def parse_number(text: str, *, group: str = ",") -> float:
    """'+£31,541' / '−1.234 €' / '−£45' -> float."""
    cleaned = re.sub(r"[^\d\-−+%,.]", "", text).replace(MINUS, "-").replace(group, "")
    return float(cleaned.replace(",", ".").rstrip("%"))


def page_texts(pdf: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(pdf).pages]


def find_page(texts: list[str], title: str) -> int:
    """0-based index of the page whose section heading is ``title``."""
    for index, text in enumerate(texts):
        lines = [line.strip() for line in text.splitlines()]
        for i, line in enumerate(lines[:-1]):
            if re.fullmatch(r"\d\d|A\d+", line) and lines[i + 1] == title:  # board 01.., appendix A1..
                return index
    raise AssertionError(f"no page with heading {title!r}")


def table_rows(page, header_word: str, last_label: str = "Total", *, last_match: bool = False) -> list[list[str]]:
    """The body rows of the table whose first header cell is ``header_word`` (text strategy),
    down to the first (or, with ``last_match``, the last) word starting with ``last_label``."""
    words = page.extract_words()
    header = next(w for w in words if w["text"] == header_word)
    below = [w for w in words if w["text"].startswith(last_label) and w["top"] > header["bottom"]]
    last = max(below, key=lambda w: w["top"]) if last_match else min(below, key=lambda w: w["top"])
    crop = page.crop((header["x0"] - 1, header["bottom"] + 2, page.width, min(page.height, last["bottom"] + 12)))
    rows = crop.extract_table({"vertical_strategy": "text", "horizontal_strategy": "text"})
    return [row for row in rows if any(cell for cell in row)]


@pytest.fixture(scope="module")
def demo_pack(tmp_path_factory):
    folder = write_fixture_folder(tmp_path_factory.mktemp("pack") / "demo" / "2024-Q4")
    config = config_from_dict({})
    result = render_board_pack(folder, config)
    return folder, config, result


@pytest.fixture(scope="module")
def charity_pack(tmp_path_factory):
    folder = write_fixture_folder(tmp_path_factory.mktemp("pack") / "helfen" / "2024-Q4")
    config = load_config(ROOT / "examples" / "brands" / "helfen.yaml")
    return folder, config, render_board_pack(folder, config)


def test_render_writes_pdf_and_html_atomically(demo_pack):
    folder, _, result = demo_pack
    assert Path(result["pdf"]) == folder / "board_pack.pdf"
    assert Path(result["pdf"]).read_bytes().startswith(b"%PDF-")
    html = Path(result["html"]).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Executive summary" in html
    assert result["pages"] == len(PdfReader(result["pdf"]).pages)
    assert 6 <= result["pages"] <= 20
    assert result["blocked_urls"] == []
    assert not list(folder.glob(".*.tmp"))  # no temporary files left behind


def test_headline_sentence_equals_metrics_json(demo_pack):
    folder, _, result = demo_pack
    h = read_json(folder / "metrics.json")["headline"]
    expected = (f"Gained {h['count_gained']:,} customers worth {gbp(h['value_gained'])}, "
                f"lost {h['count_lost']:,} customers worth {gbp(h['value_lost'])}")
    texts = page_texts(Path(result["pdf"]))
    summary = texts[find_page(texts, "Executive summary")]
    assert expected in " ".join(summary.split())
    # key figures beside it
    assert gbp(h["revenue_current"]) in summary
    assert f"{h['retention_rate'] * 100:.1f}%" in summary
    assert f"{h['count_closing']:,}" in summary


def test_overall_bridge_table_equals_bridge_table(demo_pack):
    folder, _, result = demo_pack
    bridge = read_table(folder, "bridge")
    overall = bridge[bridge.segment == "all"].set_index("bridge_class")
    texts = page_texts(Path(result["pdf"]))
    with pdfplumber.open(result["pdf"]) as pdf:
        page = pdf.pages[find_page(texts, "Revenue bridge")]
        rows = table_rows(page, "Class", last_label=label("revenue_current").split(",")[0], last_match=True)
    flat = {" ".join(r[0].split()): r for r in rows if r[0]}
    # a label may wrap onto two lines: rejoin rows whose number cells sit on the first line
    seen = 0
    for cls in CLASSES:
        name = label("revenue_previous" if cls == "previous" else "revenue_current" if cls == "current"
                     else f"bridge_{cls}")
        row = next(r for key, r in flat.items() if name.startswith(key) or key.startswith(name))
        numbers = [c for c in row[1:] if c]
        assert int(numbers[0].replace(",", "")) == overall.loc[cls, "count_customers"], cls
        assert abs(parse_number(numbers[1]) - overall.loc[cls, "value"]) <= 0.5, cls
        assert numbers[1].lstrip("+") == gbp(overall.loc[cls, "value"]), cls
        seen += 1
    assert seen == len(CLASSES)


def test_every_segment_bridge_cell_equals_bridge_table(demo_pack):
    folder, _, result = demo_pack
    bridge = read_table(folder, "bridge")
    texts = page_texts(Path(result["pdf"]))
    start = find_page(texts, "Revenue bridge by segment")
    checked = 0
    with pdfplumber.open(result["pdf"]) as pdf:
        for segment in ["region", "channel"]:
            header = segment.capitalize()
            page = next(pdf.pages[i] for i in range(start, start + 3)
                        if any(w["text"] == header for w in pdf.pages[i].extract_words()))
            rows = table_rows(page, header)
            expected = bridge[bridge.segment == segment]
            values_rows = [r for r in rows if r[0]]
            count_rows = [r for r in rows if not r[0]]
            assert len(values_rows) == expected.segment_value.nunique() + 1  # + Total
            for values, counts in zip(values_rows, count_rows):
                name = values[0]
                table = (bridge[bridge.segment == "all"] if name == "Total"
                         else expected[expected.segment_value == name]).set_index("bridge_class")
                cells = [c for c in values[1:] if c][: len(CLASSES)]
                count_cells = [c for c in counts[1:] if c]
                for cls, cell, count in zip(CLASSES, cells, count_cells):
                    assert abs(parse_number(cell) - table.loc[cls, "value"]) <= 0.5, (segment, name, cls)
                    assert cell.lstrip("+") == gbp(table.loc[cls, "value"])
                    assert int(count.replace(",", "")) == table.loc[cls, "count_customers"]
                    checked += 1
    assert checked == (4 + 1 + 2 + 1) * len(CLASSES)


def test_ledger_page_numbers_equal_ledger_table(demo_pack):
    folder, _, result = demo_pack
    ledger = read_table(folder, "ledger")
    overall = ledger[ledger.segment == "all"].set_index("ledger_line")
    texts = page_texts(Path(result["pdf"]))
    text = " ".join(texts[find_page(texts, "Customer asset ledger")].split())
    for line in ["opening", "new", "reactivated", "lapsed", "closing"]:
        name = label(f"ledger_{line}")
        count, value = overall.loc[line, "count_customers"], overall.loc[line, "value"]
        assert f"{name} {count:,} {gbp(value)}" in text, line
    h = read_json(folder / "metrics.json")["headline"]
    # the retention rate sits beside the raw gained and lost numbers
    assert re.search(rf"Gained {h['count_gained']} ?customers worth {re.escape(gbp(h['value_gained']))} "
                     rf"Lost {h['count_lost']} ?customers worth {re.escape(gbp(h['value_lost']))} "
                     rf"Retention rate {h['retention_rate'] * 100:.1f}%", text)


def test_data_quality_page_reconciles(demo_pack):
    folder, _, result = demo_pack
    dq = read_json(folder / "data_quality.json")
    texts = page_texts(Path(result["pdf"]))
    text = " ".join(texts[find_page(texts, "Data quality")].split())
    assert f"Rows read {dq['rows_in']:,}" in text
    for reason in dq["excluded_by_reason"]:
        assert f"{reason['reason'].capitalize()} {reason['rows']:,}" in text
    assert f"Revenue read {gbp(dq['revenue_in'])}" in text
    assert "Reconciles to the cent." in text


def test_toc_entries_point_to_their_pages(demo_pack):
    _, _, result = demo_pack
    texts = page_texts(Path(result["pdf"]))
    toc = texts[1]
    entries = re.findall(r"^(\d\d|A\d+) (.+?) (\d+)$", toc, flags=re.MULTILINE)
    titles = [title for _, title, _ in entries]
    # the board section, then the appendix (behind its divider, listed in the contents too)
    assert titles == ["Executive summary", "Revenue bridge", "Customer asset ledger",
                      "Revenue bridge by segment", "Customer asset ledger by segment", "Data quality",
                      "Definitions"]
    assert [number for number, _, _ in entries] == ["01", "02", "03", "A1", "A2", "A3", "A4"]
    appendix = re.search(r"^Appendix (\d+)$", toc, flags=re.MULTILINE)
    assert appendix and "2024-Q4\nAppendix\n" in texts[int(appendix.group(1)) - 1]
    for number, title, page in entries:
        index = int(page) - 1
        assert find_page(texts, title) == index, title
        assert f"{number}\n{title}" in texts[index]


def test_running_header_and_page_x_of_y(demo_pack):
    _, _, result = demo_pack
    texts = page_texts(Path(result["pdf"]))
    total = len(texts)
    assert "Page" not in texts[0]  # the cover has no header/footer
    for number, text in enumerate(texts[1:], start=2):
        assert f"Page {number} of {total}" in text
        assert "Demo Retail Ltd" in text and "Customer asset board pack" in text
        # escaped as a CSS string: the space after "-" must survive the escape before it
        assert "2024-Q4 (1 Oct 2024 - 31 Dec 2024)" in " ".join(text.split())


def _fonts(obj, found: dict) -> None:
    """Collect every font (page resources and nested form XObjects such as SVG charts)."""
    resources = obj.get("/Resources")
    if resources is None:
        return
    resources = resources.get_object()
    for font in (resources.get("/Font") or {}).values():
        font = font.get_object()
        descendants = font.get("/DescendantFonts")
        descriptor_owner = descendants[0].get_object() if descendants else font
        descriptor = descriptor_owner.get("/FontDescriptor")
        descriptor = descriptor.get_object() if descriptor else {}
        embedded = any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        found[str(font["/BaseFont"])] = embedded
    for xobject in (resources.get("/XObject") or {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form":
            _fonts(xobject, found)


def test_only_the_shipped_fonts_are_used_and_all_embedded(demo_pack):
    _, _, result = demo_pack
    found: dict[str, bool] = {}
    for page in PdfReader(result["pdf"]).pages:
        _fonts(page, found)
    assert found and all(found.values()), found
    families = {re.sub(r"^[A-Z]{6}\+", "", name.lstrip("/")) for name in found}
    assert families <= {"Inter", "Inter-Medium", "Inter-Semi-Bold", "Inter-Bold", "Inter-Italic"}, families
    # the chart's tick labels are text set in Inter too (svg.fonttype none), not paths
    texts = page_texts(Path(result["pdf"]))
    assert "£89.5k" in texts[find_page(texts, "Revenue bridge")]
    shipped = {p.name for p in (TEMPLATES_DIR / "fonts").glob("*.otf")}
    assert shipped == {f"Inter-{w}.otf" for w in ("Regular", "Medium", "SemiBold", "Bold", "Italic")}
    assert (TEMPLATES_DIR / "fonts" / "OFL.txt").read_text().count("SIL Open Font License") >= 1


def test_second_brand_terminology_currency_and_locale(charity_pack):
    folder, config, result = charity_pack
    texts = page_texts(Path(result["pdf"]))
    whole = "\n".join(texts)
    h = read_json(folder / "metrics.json")["headline"]
    expected = (f"Gained {h['count_gained']} donors worth {eur_de(h['value_gained'])}, "
                f"lost {h['count_lost']} donors worth {eur_de(h['value_lost'])}")
    summary = texts[find_page(texts, "Executive summary")]
    assert expected.replace("\u00a0", " ") in " ".join(summary.replace("\u00a0", " ").split())
    # terminology on every page the pack writes, the definitions page included (exclusion
    # reasons are source data)
    definitions = find_page(texts, "Definitions")
    pack_text = "\n".join(texts)
    for reason in read_json(folder / "data_quality.json")["excluded_by_reason"]:
        pack_text = pack_text.replace(reason["reason"].capitalize(), "")
    assert "customer" not in pack_text.lower()
    definitions_text = " ".join(" ".join(texts[definitions:]).split())
    assert "New donors" in definitions_text and "Retention rate" in definitions_text
    assert "£" not in whole and "GBP" not in whole
    assert "Stiftung Helfen e.V." in texts[1] and "Donor asset board pack" in texts[1]
    assert find_page(texts, "Donor asset ledger") > 0
    # every bridge cell of the overall table, in German number format
    bridge = read_table(folder, "bridge")
    overall = bridge[bridge.segment == "all"].set_index("bridge_class")
    text = " ".join(texts[find_page(texts, "Revenue bridge")].replace("\u00a0", " ").split())
    for cls in ["new", "decreased", "stopped"]:
        value = overall.loc[cls, "value"]
        assert eur_de(value).replace("\u00a0", " ").lstrip(MINUS) in text
    # the brand colour is in the HTML, the logo embedded as data (never fetched from disk)
    html = Path(result["html"]).read_text(encoding="utf-8")
    assert "--primary: #0F5C4C" in html and 'src="data:image/svg+xml;base64,' in html
    assert result["blocked_urls"] == []


def test_letter_portrait_page_setup(tmp_path):
    folder = write_fixture_folder(tmp_path / "p")
    config = config_from_dict({"output": {"page_size": "Letter", "orientation": "portrait"}})
    result = render_board_pack(folder, config)
    box = PdfReader(result["pdf"]).pages[1].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)


def test_strict_undefined_raises_on_a_missing_key(tmp_path):
    folder = write_fixture_folder(tmp_path / "s")
    context = build_context(folder, config_from_dict({}))
    del context["meta"]["period"]
    with pytest.raises(jinja2.UndefinedError, match="period"):
        render_html(context)
    context = build_context(folder, config_from_dict({}))
    del context["sections"][0]["data"]["headline"]
    with pytest.raises(jinja2.UndefinedError, match="headline"):
        render_html(context)


def test_nan_in_a_metric_table_is_refused(tmp_path):
    folder = write_fixture_folder(tmp_path / "n")
    bridge = read_table(folder, "bridge")
    bridge.loc[3, "value"] = float("nan")
    write_table(folder, "bridge", bridge)
    with pytest.raises(InputError, match="missing values"):
        build_context(folder, config_from_dict({}))


def test_missing_metric_table_is_a_clear_error(tmp_path):
    folder = write_fixture_folder(tmp_path / "m")
    (folder / "ledger.parquet").unlink()
    with pytest.raises(InputError, match="'ledger' is missing"):
        build_context(folder, config_from_dict({}))


def test_missing_logo_is_a_config_error(tmp_path):
    folder = write_fixture_folder(tmp_path / "l")
    config = config_from_dict({"brand": {"logo": "nope.svg"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        build_context(folder, config)


def test_three_things_are_generated_from_the_numbers(demo_pack):
    folder, config, _ = demo_pack
    things = build_context(folder, config)["sections"][0]["data"]["three_things"]
    bridge = read_table(folder, "bridge")
    overall = bridge[bridge.segment == "all"].set_index("bridge_class")
    movers = overall.drop(index=["previous", "current", "flat"])["value"]
    top_gain, top_loss = movers.idxmax(), movers.idxmin()
    assert things[0].startswith(f"{label('bridge_' + top_gain)} added {gbp(movers[top_gain])}")
    assert things[1].startswith(f"{label('bridge_' + top_loss)} took away {gbp(abs(movers[top_loss]))}")
    seg = bridge[bridge.segment != "all"].pivot_table(index=["segment", "segment_value"],
                                                      columns="bridge_class", values="value")
    change = (seg["current"] - seg["previous"])
    segment, value = change.abs().idxmax()
    verb = "rose" if change[(segment, value)] > 0 else "fell"
    assert things[2].startswith(f"{segment.capitalize()} {value}: revenue {verb} by {gbp(abs(change[(segment, value)]))}")
    assert len(things) == 3


def test_segment_rows_add_up_in_the_fixture(tmp_path):
    """The fixture obeys the contract's invariants (so the pages built on it are meaningful)."""
    folder = write_fixture_folder(tmp_path / "f")
    bridge, ledger = read_table(folder, "bridge"), read_table(folder, "ledger")
    for (segment, value), rows in bridge.groupby(["segment", "segment_value"]):
        v = rows.set_index("bridge_class")["value"]
        assert round(v["previous"] + v.drop(["previous", "current"]).sum() - v["current"], 2) == 0
    for (segment, value), rows in ledger.groupby(["segment", "segment_value"]):
        c = rows.set_index("ledger_line")["count_customers"]
        assert c["opening"] + c["new"] + c["reactivated"] - c["lapsed"] == c["closing"]
    for segment in ["region", "channel"]:
        summed = bridge[bridge.segment == segment].groupby("bridge_class")["value"].sum().round(2)
        overall = bridge[bridge.segment == "all"].set_index("bridge_class")["value"]
        pd.testing.assert_series_equal(summed.sort_index(), overall.sort_index(), check_names=False)


def overlapping_chars(page, shrink: float = 0.25) -> list[tuple]:
    """Pairs of glyphs whose (slightly shrunk) boxes intersect, and glyphs outside the page."""
    from collections import defaultdict

    boxes = []
    for c in page.chars:
        if c["text"].strip():
            w, h = c["x1"] - c["x0"], c["bottom"] - c["top"]
            boxes.append((c["x0"] + w * shrink, c["top"] + h * shrink, c["x1"] - w * shrink,
                          c["bottom"] - h * shrink, c["text"]))
    grid = defaultdict(list)
    for i, b in enumerate(boxes):
        grid[(int(b[0] // 10), int(b[1] // 10))].append(i)
    bad = []
    for i, b in enumerate(boxes):
        gx, gy = int(b[0] // 10), int(b[1] // 10)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in grid.get((gx + dx, gy + dy), ()):
                    o = boxes[j]
                    if j > i and b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]:
                        bad.append((b[4], o[4], round(b[0]), round(b[1])))
    bad += [("outside", c["text"]) for c in page.chars
            if c["x0"] < 0 or c["x1"] > page.width + 0.5 or c["top"] < 0 or c["bottom"] > page.height + 0.5]
    return bad


def test_no_text_overlaps_or_leaves_the_page(demo_pack, charity_pack):
    for _, _, result in (demo_pack, charity_pack):
        with pdfplumber.open(result["pdf"]) as pdf:
            for number, page in enumerate(pdf.pages, start=1):
                assert overlapping_chars(page) == [], f"{result['pdf']} page {number}"


def test_overlap_detector_catches_an_overlap():
    from cxpipeline.report import render_pdf

    html = ('<html><head><style>@font-face { font-family: Inter; src: url("fonts/Inter-Regular.otf") }'
            'body { font-family: Inter }</style></head><body><p style="position: absolute; top: 10mm; left: 10mm">Overlapping text</p>'
            '<p style="position: absolute; top: 10.5mm; left: 11mm">Overlapping text</p></body></html>')
    with pdfplumber.open(__import__("io").BytesIO(render_pdf(html))) as pdf:
        assert overlapping_chars(pdf.pages[0])


def test_output_sections_choose_the_pages_in_pack_order(tmp_path):
    folder = write_fixture_folder(tmp_path / "sections" / "demo" / "2024-Q4")
    config = config_from_dict({"output": {"sections": ["data-quality", "summary"]}})
    result = render_board_pack(folder, config)
    text = "\n".join(page_texts(Path(result["pdf"])))
    assert "Executive summary" in text and "Data quality" in text
    assert "Revenue bridge by segment" not in text and "asset ledger" not in text
    assert text.index("Executive summary") < text.index("Data quality")  # pack order, not list order


def test_unknown_output_section_is_a_clear_config_error(tmp_path):
    from cxpipeline.errors import ConfigError

    # Refused when the config is read (issue 20), long before a render could fail on it.
    with pytest.raises(ConfigError, match="exec-summary") as error:
        config_from_dict({"output": {"sections": ["summary", "exec-summary"]}})
    assert "data-quality" in str(error.value)  # the message lists the valid page ids


def test_lean_user_agent_stylesheet_is_used_and_list_markers_still_print():
    """The renderer swaps WeasyPrint's user-agent stylesheet for one without the rules that give
    every element six pseudo-elements (cxpipeline.report.render.PackHTML). If a WeasyPrint
    upgrade rewords those rules or renames the hook, this fails instead of the pack silently
    rendering slower."""
    from importlib.resources import files

    import weasyprint.css
    from weasyprint.html import UA_STYLESHEET

    from cxpipeline.report import render_pdf
    from cxpipeline.report.render import PackHTML, lean_user_agent_css

    upstream = (files(weasyprint.css) / "html5_ua.css").read_text("utf-8")
    lean, changed = lean_user_agent_css(upstream)
    assert changed == 6 and "::footnote-call" not in lean and "\nli::marker {" in lean
    sheets = PackHTML(string="<p>x</p>")._ua_stylesheets()
    assert UA_STYLESHEET not in sheets and len(sheets) == 1
    pdf = PdfReader(__import__("io").BytesIO(render_pdf("<ol><li>Alpha</li><li>Beta</li></ol>")))
    text = pdf.pages[0].extract_text()
    assert "Alpha" in text and "Beta" in text and "1." in text and "2." in text  # the markers


def test_pack_html_is_parsed_by_the_xml_parser_into_the_html_parsers_tree(demo_pack, charity_pack):
    """PackHTML parses the pack's well-formed HTML with expat (cxpipeline.report.render.
    parse_well_formed) instead of WeasyPrint's pure-Python HTML parser: the tree must be the one
    tinyhtml5 builds, element for element and character for character, for both brands. Markup
    that is not well-formed still goes through the HTML parser."""
    import tinyhtml5

    from cxpipeline.report.render import PackHTML, parse_well_formed

    def walk(element):
        yield element.tag, dict(element.attrib), element.text, element.tail
        for child in element:
            yield from walk(child)

    for _, _, result in (demo_pack, charity_pack):
        html = Path(result["html"]).read_text(encoding="utf-8")
        assert PackHTML(string=html).parser == "xml"
        expected = tinyhtml5.parse(html, namespace_html_elements=False)
        assert list(walk(parse_well_formed(html))) == list(walk(expected))
    for markup in ("<p>x</p>", "<!DOCTYPE html><html><body><p>a<br>b</p></body></html>",
                   "<!DOCTYPE html><html><body><p>&nbsp;</p></body></html>",
                   '<!DOCTYPE html [<!ENTITY a "b">]><html><body>&a;</body></html>'):
        assert parse_well_formed(markup) is None and PackHTML(string=markup).parser == "html"


# -- compiled templates ------------------------------------------------------------------------

def _compiles(monkeypatch) -> list[str]:
    """Names of the templates Jinja compiles from here on."""
    compiled: list[str] = []
    original = jinja2.Environment.compile

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        compiled.append(name)
        return original(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", compile)
    return compiled


def _render(templates: Path) -> str:
    from cxpipeline.report import Formatter, make_environment

    return make_environment(Formatter("en_GB", "GBP"), templates).get_template("board_pack.html").render(n=1234.5)


def test_templates_are_compiled_once_and_a_new_process_reads_them_from_disk(tmp_path, monkeypatch):
    from cxpipeline.report import render

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "board_pack.html").write_text("{% include 'part.html' %}|{{ n | money }}")
    (templates / "part.html").write_text("part one")
    cache = tmp_path / "cache"
    cache.mkdir()
    compiled = _compiles(monkeypatch)

    monkeypatch.setattr(render, "_BYTECODE_CACHE", render._BytecodeCache(str(cache)))
    first = _render(templates)
    assert sorted(compiled) == ["board_pack.html", "part.html"] and len(list(cache.iterdir())) == 2
    assert _render(templates) == first and len(compiled) == 2  # same process: from memory

    monkeypatch.setattr(render, "_BYTECODE_CACHE", render._BytecodeCache(str(cache)))  # a new process
    assert _render(templates) == first == "part one|£1,234" and len(compiled) == 2  # from disk

    (templates / "part.html").write_text("part two")  # an edited template is compiled again
    monkeypatch.setattr(render, "_BYTECODE_CACHE", render._BytecodeCache(str(cache)))
    assert _render(templates) == "part two|£1,234" and compiled[2:] == ["part.html"]


def test_without_a_writable_cache_folder_templates_are_compiled_once_per_process(tmp_path, monkeypatch):
    from cxpipeline.report import render

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "board_pack.html").write_text("{{ n | money }}")
    compiled = _compiles(monkeypatch)
    monkeypatch.setattr(render, "_BYTECODE_CACHE", render._BytecodeCache(str(tmp_path / "missing")))
    assert _render(templates) == _render(templates) == "£1,234" and compiled == ["board_pack.html"]


def _fake_chart(text: str) -> str:
    return "data:image/svg+xml;base64," + text


def test_a_chart_failing_in_the_second_process_raises_here_and_the_others_are_drawn():
    from cxpipeline.report.charts import ChartBook

    def broken() -> str:
        raise ValueError("no such series: 'lapsed'")

    book = ChartBook(deferred=True)
    for chart, args in ((_fake_chart, ("AAAA",)), (broken, ()), (_fake_chart, ("BBBB",))):
        book.draw(chart, *args)
    book.start()
    assert book.uri(0) == _fake_chart("AAAA")
    with pytest.raises(ValueError, match="no such series: 'lapsed'"):  # its own error, drawn again here
        book.uri(1)
    assert book.uri(2) == _fake_chart("BBBB") and book._drawer is None


def test_charts_are_drawn_here_when_the_second_process_dies():
    import os
    import signal
    import time

    from cxpipeline.report.charts import ChartBook

    def slow(text: str) -> str:
        time.sleep(0.5)
        return _fake_chart(text)

    book = ChartBook(deferred=True)
    html = " ".join(f'<img src="{book.draw(slow, t)}" />' for t in ("AAAA", "BBBB", "CCCC"))
    book.start(html)
    if book._drawer is None:
        pytest.skip("one CPU here: charts are drawn in this process")
    os.kill(book._drawer[0].pid, signal.SIGKILL)
    assert book.resolve(html) == " ".join(f'<img src="{_fake_chart(t)}" />' for t in ("AAAA", "BBBB", "CCCC"))
    assert book._drawer is None


def test_chart_tokens_in_data_are_left_as_data():
    """Only an image source is a chart token: a customer named "cx-chart:0" (or a number no
    chart has) is text, neither replaced nor a crash."""
    from cxpipeline.report.charts import ChartBook

    book = ChartBook(deferred=True)
    token = book.draw(_fake_chart, "AAAA")
    html = f'<img src="{token}" /><td>cx-chart:0</td><td>cx-chart:999</td><img src="cx-chart:999" />'
    assert book.numbers_in(html) == [0]
    assert book.resolve(html) == (f'<img src="{_fake_chart("AAAA")}" /><td>cx-chart:0</td><td>cx-chart:999</td>'
                                  '<img src="cx-chart:999" />')


def test_pdf_streams_are_compressed_once_and_the_file_is_unchanged(demo_pack, monkeypatch):
    """pydyf compresses a stream each time it is written, twice with PDF/A's file identifier;
    the finisher compresses each once and the file is the same bytes."""
    import zlib

    import pydyf

    from cxpipeline.report.render import PDF_VARIANT, collector_paused, compress_streams_once, render_document

    folder, _, _ = demo_pack
    html = (folder / "board_pack.html").read_text(encoding="utf-8")
    calls = []

    class CountingZlib:
        def compressobj(self, level):
            calls.append(level)
            return zlib.compressobj(level=level)

    monkeypatch.setattr(pydyf, "zlib", CountingZlib())
    with collector_paused():
        document = render_document(html)
        plain = document.write_pdf(pdf_variant=PDF_VARIANT, pdf_tags=True, uncompressed_pdf=False)
        by_pydyf = len(calls)
        once = document.write_pdf(pdf_variant=PDF_VARIANT, pdf_tags=True, uncompressed_pdf=False,
                                  finisher=compress_streams_once)
    streams = by_pydyf // 2
    assert once == plain
    assert streams > 20 and len(calls) - by_pydyf <= 4  # only the object and xref streams pydyf makes itself


def test_the_chart_process_ends_with_a_killed_render(tmp_path):
    """The chart process holds copies of the render's open files, the pack's lock among them: a
    render killed mid-way must not leave it behind (the next run of the period would wait)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "render.py"
    script.write_text(
        "import sys, time\n"
        "from cxpipeline.report.charts import ChartBook\n"
        "def slow(text):\n"
        "    time.sleep(0.3)\n"
        "    return 'data:,' + text * 40_000\n"  # larger than the pipe's buffer: a send waits for a reader
        "book = ChartBook(deferred=True)\n"
        "html = ' '.join(f'<img src=\"{book.draw(slow, t)}\" />' for t in 'ABCDEFGH')\n"
        "book.start(html)\n"
        "print(book._drawer[0].pid if book._drawer else 0, flush=True)\n"
        "time.sleep(60)\n", encoding="utf-8")
    render = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(render.stdout.readline())
    if child == 0:
        render.kill()
        pytest.skip("one CPU here: charts are drawn in the render's own process")
    time.sleep(1.0)  # the chart process has sent what the pipe holds and waits to send more
    render.send_signal(signal.SIGKILL)
    render.wait(timeout=10)

    def ended() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return open(f"/proc/{child}/stat").read().split()[2] == "Z"  # ended, not yet reaped by init

    if not wait_for(ended, 10):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the chart process outlived the killed render")
