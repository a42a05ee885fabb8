"""The PDF page-count check (cxpipeline/checks.py::check_pdf) on hand-built files."""

from __future__ import annotations

import pikepdf

from cxpipeline.checks import MAX_PAGES, check_pdf
from cxpipeline.config import config_from_dict


def _folder(tmp_path, pages: int, sections: int):
    html = "<!DOCTYPE html><html><body>" + '<section class="section"></section>' * sections + "</body></html>"
    (tmp_path / "board_pack.html").write_text(html, encoding="utf-8")
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page()
    pdf.save(tmp_path / "board_pack.pdf")
    return tmp_path


def test_page_count_against_sections(tmp_path):
    config = config_from_dict({"pack_id": "checks"})
    assert check_pdf(_folder(tmp_path, 6, 3), config) == (True, f"6 pages for 3 sections (allowed 5-{MAX_PAGES})")
    assert check_pdf(_folder(tmp_path, 4, 3), config) == (False, f"4 pages for 3 sections (allowed 5-{MAX_PAGES})")


def test_missing_empty_or_broken_pdf_fails_the_check(tmp_path):
    config = config_from_dict({"pack_id": "checks"})
    assert check_pdf(tmp_path, config) == (False, "board_pack.pdf is missing or empty")
    folder = _folder(tmp_path, 6, 3)
    data = (folder / "board_pack.pdf").read_bytes()
    (folder / "board_pack.pdf").write_bytes(b"")
    assert check_pdf(folder, config) == (False, "board_pack.pdf is missing or empty")
    (folder / "board_pack.pdf").write_bytes(b"%PDF-1.7\n" + b"garbage " * 20)  # no page tree at all
    ok, detail = check_pdf(folder, config)
    assert not ok and detail.startswith("board_pack.pdf cannot be read as a PDF"), detail
    (folder / "board_pack.pdf").write_bytes(data[: len(data) // 2])  # truncated
    ok, detail = check_pdf(folder, config)
    assert not ok, detail
