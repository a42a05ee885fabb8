"""The pack laid out in two processes and assembled (cxpipeline.report.assemble) is the same
document as the pack laid out as one: same pages, text, links, destinations and outline."""

from __future__ import annotations

import io
import logging

import pdfplumber
import pytest
from pypdf import PdfReader

from cxpipeline.config import config_from_dict, load_config
from cxpipeline.report import build_context, render_html
from cxpipeline.report import assemble
from cxpipeline.report.assemble import render_pack_pdf, render_processes, render_single_pdf, split_pack
from cxpipeline.report.charts import ChartBook
from cxpipeline.report.fixture import write_fixture_folder
from tests.test_report import ROOT


@pytest.fixture(scope="module", params=["demo", "helfen", "letter-portrait"])
def pack_folder(request, tmp_path_factory):
    folder = write_fixture_folder(tmp_path_factory.mktemp("pack") / request.param / "2024-Q4")
    config = {"demo": lambda: config_from_dict({}),
              "helfen": lambda: load_config(ROOT / "examples" / "brands" / "helfen.yaml"),
              "letter-portrait": lambda: config_from_dict({"output": {"page_size": "Letter",
                                                                      "orientation": "portrait"}})}[request.param]()
    return folder, config


@pytest.fixture(scope="module")
def pack_html(pack_folder):
    return render_html(build_context(*pack_folder))


def _outline(reader: PdfReader) -> list[tuple[int, str, int]]:
    found = []

    def walk(items, level):
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
            else:
                found.append((level, item.title, reader.get_destination_page_number(item)))

    walk(reader.outline, 0)
    return found


def _described(pdf: bytes) -> dict:
    """Everything a reader sees of a PDF, position by position."""
    reader = PdfReader(io.BytesIO(pdf))
    links = [(index, str(annotation.get_object().get("/Dest")),
              [round(float(v), 2) for v in annotation.get_object()["/Rect"]])
             for index, page in enumerate(reader.pages) for annotation in (page.get("/Annots") or [])]
    destinations = {name: (reader.get_destination_page_number(dest), round(float(dest.left or 0), 2),
                           round(float(dest.top or 0), 2))
                    for name, dest in reader.named_destinations.items()}
    with pdfplumber.open(io.BytesIO(pdf)) as plumbed:
        words = [sorted((w["text"], w["top"], w["x0"]) for w in page.extract_words()) for page in plumbed.pages]
    # pypdf puts a line break between the body and the furniture's "Page x of y" where the
    # one document has a space: the words, their order and their positions must be the same
    return {"texts": [" ".join(page.extract_text().split()) for page in reader.pages], "words": words,
            "sizes": [(float(p.mediabox.width), float(p.mediabox.height)) for p in reader.pages],
            "links": links, "destinations": destinations, "outline": _outline(reader),
            "title": reader.metadata.title, "author": reader.metadata.author}


@pytest.mark.parametrize("processes", [2, 1])
def test_assembled_pack_equals_the_one_document_pack(pack_html, processes):
    single = render_single_pdf(pack_html)
    assembled = render_pack_pdf(pack_html, processes=processes) if processes == 2 else None
    if processes == 1:  # the parts laid out one after the other, in this process
        parts = split_pack(pack_html)
        assembled = assemble._render_parts(parts, assemble.TEMPLATES_DIR.resolve(), 1, ChartBook())
    assert assembled.method.startswith("assembled")
    expected, got = _described(single.pdf), _described(assembled.pdf)
    assert got["texts"] == expected["texts"]  # header, "Page x of y" and contents included
    for got_words, expected_words in zip(got["words"], expected["words"], strict=True):  # each word in place
        assert [w[0] for w in got_words] == [w[0] for w in expected_words]
        assert all(abs(g[1] - e[1]) < 0.1 and abs(g[2] - e[2]) < 0.1 for g, e in zip(got_words, expected_words))
    assert len(got["links"]) >= 6 and got["links"] == expected["links"]
    assert len(got["destinations"]) >= 6 and got["destinations"] == expected["destinations"]
    assert len(got["outline"]) >= 6 and got["outline"] == expected["outline"]
    assert (got["sizes"], got["title"], got["author"]) == (expected["sizes"], expected["title"], expected["author"])
    assert assembled.count_pages == single.count_pages == len(got["texts"])


@pytest.mark.parametrize("processes", [2, 1])
def test_deferred_charts_are_drawn_by_the_process_that_lays_them_out(pack_folder, pack_html, processes,
                                                                    monkeypatch):
    """render_board_pack's way: the context holds chart tokens, each process draws its own
    part's charts; the document and the PDF are those of charts drawn at once."""
    charts = ChartBook(deferred=True)
    tokens_html = render_html(build_context(*pack_folder, charts=charts))
    numbers = charts.numbers_in(tokens_html)
    assert numbers and not charts.uris  # nothing drawn yet
    # cut after the summary: the bridge page's waterfall is drawn in the child too
    monkeypatch.setattr(assemble, "_cut", lambda front, sections: 1)
    from_child = []
    receive = assemble._Child.receive
    monkeypatch.setattr(assemble._Child, "receive",
                        lambda self, kind: from_child.append(receive(self, kind)) or from_child[-1])
    rendered = render_pack_pdf(tokens_html, processes=processes, charts=charts)
    assert rendered.html == pack_html  # the same charts, byte for byte
    assert sorted(charts.uris) == numbers
    assert _described(rendered.pdf)["texts"] == _described(render_single_pdf(pack_html).pdf)["texts"]
    if processes == 2:
        drawn_by_child = from_child[0].chart_uris
        assert drawn_by_child and all(charts.uris[n] == uri for n, uri in drawn_by_child.items())


def test_assembled_pack_is_the_same_bytes_every_time(pack_html):
    assert render_pack_pdf(pack_html, processes=2).pdf == render_pack_pdf(pack_html, processes=2).pdf


def test_a_document_not_shaped_as_the_pack_is_rendered_as_one():
    html = "<!DOCTYPE html><html><head><title>t</title></head><body><p>Hello</p></body></html>"
    assert split_pack(html) is None
    rendered = render_pack_pdf(html, processes=2)
    assert rendered.method == "single document" and rendered.count_pages == 1
    assert "Hello" in PdfReader(io.BytesIO(rendered.pdf)).pages[0].extract_text()


def test_the_child_process_reports_blocked_urls_and_its_log(pack_html, caplog):
    """A URL refused while laying out the second part (in the child) is listed and logged by
    the parent like one refused in this process."""
    parts = split_pack(pack_html)
    cut = assemble._cut([parts.cover, parts.contents], parts.sections)
    hostile = parts.sections[-1].replace("</section>", '<img src="file:///etc/hostname" alt=""></section>', 1)
    html = pack_html.replace(parts.sections[-1], hostile)
    assert cut < len(parts.sections)  # the last section is in the child's part
    with caplog.at_level(logging.WARNING, logger="cxpipeline.report.render"):
        rendered = render_pack_pdf(html, processes=2)
    assert rendered.method == "assembled, 2 processes"
    assert rendered.blocked_urls == ["file:///etc/hostname"]
    assert any("refused to load file:///etc/hostname" in r.getMessage() for r in caplog.records)


def test_a_failure_in_the_child_process_fails_the_render_with_its_traceback(pack_html, monkeypatch):
    real = assemble._lay_out

    def fail_on_the_second_part(html, *args):
        if 'id="contents"' not in html:  # the second part has no front pages
            raise ValueError("broken section")
        return real(html, *args)

    monkeypatch.setattr(assemble, "_lay_out", fail_on_the_second_part)  # the fork inherits it
    with pytest.raises(RuntimeError, match=r"(?s)second half of the board pack failed.*ValueError: broken section"):
        render_pack_pdf(pack_html, processes=2)


def test_render_processes_from_the_environment():
    assert render_processes({"CXPIPELINE_RENDER_PROCESSES": "1"}) == 1
    assert render_processes({"CXPIPELINE_RENDER_PROCESSES": "2"}) == 2
    assert render_processes({}) in (1, 2)


@pytest.mark.parametrize("first_free", ["parent", "child"])
def test_the_furniture_is_the_same_whichever_process_lays_it_out(pack_html, first_free, monkeypatch):
    """The furniture is laid out by the first process free once both parts are laid out;
    both ways give the one-document pack."""
    winner = assemble._PARENT if first_free == "parent" else assemble._CHILD
    monkeypatch.setattr(assemble._Child, "claim", lambda self, who: who == winner)  # the fork inherits it
    expected = _described(render_single_pdf(pack_html).pdf)
    got = _described(render_pack_pdf(pack_html, processes=2).pdf)
    for key in ("texts", "links", "destinations", "outline", "sizes"):
        assert got[key] == expected[key], key
