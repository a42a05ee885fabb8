"""The board pack: metric tables -> report context (plain dicts) -> HTML (Jinja2) -> PDF (WeasyPrint).

Public API::

    render_board_pack(folder, config) -> {"pdf", "html", "pages", "render_seconds", "render_method", "blocked_urls"}
    build_context(folder, config) -> dict        # every number from the run's tables
    render_html(context) -> str                  # Jinja2, autoescape, StrictUndefined
    render_pdf(html) -> bytes                    # WeasyPrint, files from templates/ + data: only

See docs/report.md.
"""

from cxpipeline.report.context import PAGES, Page, build_context, headline_sentence
from cxpipeline.report.formatting import Formatter
from cxpipeline.report.pack import render_board_pack, render_document, render_html
from cxpipeline.report.render import TEMPLATES_DIR, TemplateOnlyFetcher, make_environment, render_pdf

__all__ = [
    "PAGES",
    "Page",
    "TEMPLATES_DIR",
    "Formatter",
    "TemplateOnlyFetcher",
    "build_context",
    "headline_sentence",
    "make_environment",
    "render_board_pack",
    "render_document",
    "render_html",
    "render_pdf",
]
