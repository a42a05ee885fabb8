"""The board edition and the appendix, and the PDF as an archival, accessible record, read back
from real packs (demo brand; second brand: donors, EUR, de_DE): the board section is one page
per board page (at most 6) and reads alone; the full pack puts every other page behind an
"Appendix" divider with its own contents entries; page numbers, contents and the pack's checks
hold in both editions; the PDF is PDF/A-3 (XMP pdfaid, pack, period, content hash), tagged
(StructTreeRoot, headings, table headers) and every chart has alt text."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pikepdf
import pytest

from cxpipeline.artifacts import read_json
from cxpipeline.config import config_from_dict, load_config
from cxpipeline.periods import parse_period
from cxpipeline.pipeline import check_pack, render_pack, run_pack
from cxpipeline.report.context import PAGES
from cxpipeline.report.formatting import Formatter
from tests.conftest import pdf_pages

ROOT = Path(__file__).resolve().parents[1]
SOURCE = {"kind": "demo", "customers": 1200, "years": 4}
BOARD_IDS = [page.id for page in PAGES if page.board]
BOARD_TITLES = ["Executive summary", "Customer asset trend", "Revenue bridge", "Customer asset ledger",
                "Value tiers and migration", "At-risk customers and value at risk"]


def _with_edition(config, edition: str):
    return config.model_copy(update={"output": config.output.model_copy(update={"edition": edition})})


def _board_copy(config, folder: Path, root: Path) -> Path:
    """The same run's tables rendered and checked again as the board edition, in another root."""
    target = root / folder.relative_to(folder.parents[1])
    shutil.copytree(folder, target)
    board = _with_edition(config, "board")
    period = parse_period(folder.name)
    render_pack(board, period, root)
    check_pack(board, period, root)
    return target


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = config_from_dict({"pack_id": "board-demo", "source": SOURCE, "segments": ["region", "channel"]})
    full = run_pack(config, "2026-Q3", tmp_path_factory.mktemp("full")).folder
    return config, full, _board_copy(config, full, tmp_path_factory.mktemp("board"))


@pytest.fixture(scope="module")
def helfen(tmp_path_factory):
    config = load_config(ROOT / "examples" / "brands" / "helfen.yaml")
    config = config.model_copy(update={"source": config_from_dict({"source": SOURCE}).source})
    full = run_pack(config, "2026-Q3", tmp_path_factory.mktemp("full")).folder
    return config, full, _board_copy(config, full, tmp_path_factory.mktemp("board"))


def _contents(page: str) -> list[tuple[str, str, int]]:
    """(number, title, page) of each contents entry, as printed."""
    page = page.split(" Contents ", 1)[1].split(" Compared with ", 1)[0]
    return [(n, t.strip(), int(p)) for n, t, p in re.findall(r"\b(\d\d|A\d+) (.+?) (\d+)(?= |$)", page)]


def _title_at(pages: list[str], index: int, number: str, title: str) -> bool:
    return f"{number} {title}" in pages[index]


def _check_board_section(pages: list[str], titles: list[str]) -> None:
    contents = _contents(pages[1])
    board = [(n, t, p) for n, t, p in contents if not n.startswith("A")]
    assert [t for _, t, _ in board] == titles
    # one page each, right after the cover and the contents, each starting where the contents say
    assert [p for _, _, p in board] == list(range(3, 3 + len(titles)))
    for number, title, page in board:
        assert _title_at(pages, page - 1, number, title), (title, page)
    assert len(titles) <= 6


def test_board_edition_is_the_board_section_alone(demo):
    config, _, folder = demo
    pages = pdf_pages(folder / "board_pack.pdf")
    assert len(pages) == 2 + 6  # cover, contents, six board pages
    _check_board_section(pages, BOARD_TITLES)
    assert not any("Appendix" in page for page in pages)
    assert all(f"Page {i} of 8" in page for i, page in enumerate(pages[1:], start=2))
    report = read_json(folder / "checks.json")
    assert report["is_deliverable"] is True and all(c["is_passed"] for c in report["checks"])
    # reads alone: the headline, the trend, the bridge, the ledger, the migration and the top list
    fmt = Formatter(config.locale, config.currency)
    headline = read_json(folder / "metrics.json")["headline"]
    assert f"Gained {fmt.count(headline['count_gained'])} customers" in pages[2]
    assert "Ranked by value at risk" in pages[7] and "in the appendix" not in pages[7].split("Ranked")[0]


def test_full_pack_has_the_appendix_divider_and_its_contents(demo):
    _, folder, _ = demo
    pages = pdf_pages(folder / "board_pack.pdf")
    _check_board_section(pages, BOARD_TITLES)
    contents = _contents(pages[1])
    appendix = [(n, t, p) for n, t, p in contents if n.startswith("A")]
    divider = 2 + len(BOARD_TITLES)  # index of the page after the board section
    assert pages[divider].count("Appendix") >= 1 and "The board section reads alone" in pages[divider]
    assert "Appendix " + str(divider + 1) in pages[1]  # the divider's own contents entry
    assert [n for n, _, _ in appendix] == [f"A{i}" for i in range(1, len(appendix) + 1)]
    titles = [t for _, t, _ in appendix]
    assert titles[:3] == ["Customer asset trend: revenue movements", "Revenue bridge by segment",
                          "Customer asset ledger by segment"]
    assert "Definitions" in titles and "Data quality" in titles
    assert appendix[0][2] == divider + 2
    for number, title, page in appendix:  # each starts on the page the contents give
        assert _title_at(pages, page - 1, number, title), (title, page)
        assert f"{number} {title} {page}" in pages[divider]  # and the divider lists it
    assert [p for _, _, p in appendix] == sorted(p for _, _, p in appendix)
    report = read_json(folder / "checks.json")
    assert report["is_deliverable"] is True and all(c["is_passed"] for c in report["checks"])
    total = len(pages)
    assert f"Page {total} of {total}" in pages[-1]


def _figures_and_tags(pdf: pikepdf.Pdf) -> tuple[list[str], dict[str, int]]:
    figures, tags = [], {}

    def walk(node) -> None:
        if isinstance(node, pikepdf.Dictionary):
            if "/S" in node:
                tag = str(node.S)
                tags[tag] = tags.get(tag, 0) + 1
                if tag == "/Figure":
                    figures.append(str(node.get("/Alt", "")))
            kids = node.get("/K")
            if isinstance(kids, (pikepdf.Array, pikepdf.Dictionary)):
                walk(kids)
        elif isinstance(node, pikepdf.Array):
            for kid in node:
                walk(kid)

    walk(pdf.Root.StructTreeRoot)
    return figures, tags


def _check_archival(config, folder: Path, count_charts: int) -> None:
    pdf_path = folder / "board_pack.pdf"
    with pikepdf.open(pdf_path) as pdf:
        meta = pdf.open_metadata()
        assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("3", "A")
        assert meta["pdfuaid:part"] == "1"
        xmp = pdf.Root.Metadata.read_bytes().decode("utf-8")
        html_sha = hashlib.sha256((folder / "board_pack.html").read_bytes()).hexdigest()
        assert f"<cx:pack>{config.pack_id}</cx:pack>" in xmp and "<cx:period>2026-Q3</cx:period>" in xmp
        assert f"<cx:contentSha256>{html_sha}</cx:contentSha256>" in xmp
        assert "/OutputIntents" in pdf.Root and pdf.Root.MarkInfo.Marked is True
        assert str(pdf.Root.Lang) == config.locale.split("_")[0]
        figures, tags = _figures_and_tags(pdf)
        assert tags.get("/H1", 0) >= 6 and tags.get("/TH", 0) > 0 and tags.get("/Table", 0) > 0
        assert len(figures) == count_charts and all(alt.strip() for alt in figures), figures
        fonts = [f for page in pdf.pages for f in page.Resources.get("/Font", {}).values()]
        for font in fonts:  # every font embedded
            descendant = font.DescendantFonts[0] if "/DescendantFonts" in font else font
            descriptor = descendant.FontDescriptor
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), font
    fmt = Formatter(config.locale, config.currency)
    headline = read_json(folder / "metrics.json")["headline"]
    bridge_alt = [alt for alt in figures if alt.startswith("Revenue bridge waterfall chart")]
    assert bridge_alt and fmt.money(headline["revenue_current"]) in bridge_alt[0]
    assert fmt.money(headline["revenue_previous"]) in bridge_alt[0]
    # every chart's alt text is written from its numbers (the logo's names the company)
    charts = [alt for alt in figures if not alt.endswith(" logo")]
    assert all(any(ch.isdigit() for ch in alt) for alt in charts), charts
    trend = [alt for alt in figures if alt.startswith("Bar chart of ")]
    assert len(trend) == 1 and "In 2026-Q3: " + fmt.count(headline["count_gained"]) + " gained worth " in trend[0]
    assert fmt.count(headline["count_lost"]) + " lost worth " in trend[0]
    movement = [alt for alt in figures if alt.startswith("Stacked bar chart of revenue movement")]
    change = headline["revenue_current"] - headline["revenue_previous"]
    assert len(movement) == 1 and movement[0].endswith(f"revenue change {fmt.signed_money(change)}."), movement


def test_pdf_is_pdfa3_tagged_with_alt_text_board_and_full(demo):
    config, full, board = demo
    # board: summary waterfall, two trend charts, bridge waterfall
    _check_archival(config, board, count_charts=4)
    html = (full / "board_pack.html").read_text(encoding="utf-8")
    detail = html[html.index('<section class="section" id="trend-detail"'):]
    detail = detail[:detail.index("</section>")]
    visible = html.count('<img class="chart') - detail.count('<img class="chart')  # hidden there (CSS)
    _check_archival(config, full, count_charts=visible)


def test_charts_drawn_in_a_second_process_give_the_same_pack(demo):
    """render_board_pack draws the charts in a forked process while the pack is laid out: the
    stored HTML and the PDF are byte for byte those of charts drawn in this process."""
    import os

    from cxpipeline.report import build_context, render_html
    from cxpipeline.report.charts import ChartBook
    from cxpipeline.report.render import render_archival_pdf

    config, folder, _ = demo
    html_here = render_html(build_context(folder, config, charts=ChartBook()))
    book = ChartBook(deferred=True)
    html_tokens = render_html(build_context(folder, config, charts=book))
    numbers = book.numbers_in(html_tokens)
    assert len(numbers) >= 4 and "cx-chart:" not in html_here
    book.start()
    apart = render_archival_pdf(html_tokens, pack_id=config.pack_id, period="2026-Q3", charts=book)
    here = render_archival_pdf(html_here, pack_id=config.pack_id, period="2026-Q3")
    assert apart.html == html_here == (folder / "board_pack.html").read_text(encoding="utf-8")
    assert apart.pdf == here.pdf
    if len(os.sched_getaffinity(0)) >= 2:  # CI's machines have two
        assert book.drawn_apart == len(numbers)


def test_second_brand_board_and_full(helfen):
    config, full, board = helfen
    titles = ["Executive summary", "Donor asset trend", "Revenue bridge", "Donor asset ledger",
              "Value tiers and migration", "At-risk donors and value at risk"]
    pages = pdf_pages(board / "board_pack.pdf")
    assert len(pages) == 8
    _check_board_section(pages, titles)
    _check_board_section(pdf_pages(full / "board_pack.pdf"), titles)
    assert "Appendix" in " ".join(pdf_pages(full / "board_pack.pdf"))
    for folder in (board, full):
        report = read_json(folder / "checks.json")
        assert report["is_deliverable"] is True
    _check_archival(config, board, count_charts=4 + 1)  # and the cover's logo (alt: "... logo")


def test_board_ids_are_known_sections():
    from cxpipeline.config import SECTION_IDS

    from cxpipeline.config import BOARD_SECTION_IDS

    assert BOARD_IDS == ["summary", "trend", "bridge", "ledger", "migration", "at-risk"] == list(BOARD_SECTION_IDS)
    assert set(BOARD_IDS) <= set(SECTION_IDS)


def test_edition_is_checked(tmp_path):
    from cxpipeline.errors import ConfigError
    from cxpipeline.report import build_context
    from cxpipeline.report.fixture import write_fixture_folder

    with pytest.raises(ConfigError, match="edition"):
        config_from_dict({"output": {"edition": "summary-only"}})
    assert config_from_dict({}).output.edition == "full"
    folder = write_fixture_folder(tmp_path / "f")
    # refused when the config is read, before any data: the company's edition and the units'
    with pytest.raises(ConfigError, match=r"output: edition is 'board' but sections names no board page"):
        config_from_dict({"output": {"edition": "board", "sections": ["data-quality", "definitions"]}})
    with pytest.raises(ConfigError, match=r"units.edition is 'board' but output.sections names no board page"):
        config_from_dict({"output": {"sections": ["data-quality"]}, "units": {"by": "region", "edition": "board"}})
    # and by the renderer, for a config built around the check
    board_without_board_pages = config_from_dict({"output": {"sections": ["data-quality", "definitions"]}})
    board_without_board_pages = board_without_board_pages.model_copy(update={
        "output": board_without_board_pages.output.model_copy(update={"edition": "board"})})
    with pytest.raises(ConfigError, match="names no board page"):
        build_context(folder, board_without_board_pages)
    # without any board page the full pack has no divider: its pages are numbered 01, 02...
    context = build_context(folder, config_from_dict({"output": {"sections": ["data-quality", "definitions"]}}))
    assert [s["number"] for s in context["board_sections"]] == ["01", "02"] and context["appendix_sections"] == []
