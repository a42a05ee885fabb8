"""The board pack end to end: artifact folder -> context -> HTML -> PDF, written atomically."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from markupsafe import Markup
from cxpipeline.artifacts import write_bytes, write_text
from cxpipeline.config import Config
from cxpipeline.report.briefing import write_briefing
from cxpipeline.report.charts import ChartBook
from cxpipeline.report.context import build_context
from cxpipeline.report.formatting import Formatter
from cxpipeline.report.render import (TEMPLATES_DIR, collector_paused, make_environment, render_archival_pdf,
                                      render_document)

__all__ = ["STYLESHEETS", "render_html", "render_document", "render_board_pack"]

LOGGER = logging.getLogger(__name__)

#: Stylesheets inlined into the document, in cascade order (fonts, variables, page rules, style).
STYLESHEETS = ["css/fonts.css", "css/variables.css", "css/page.css", "css/style.css"]


def render_html(context: dict, templates_dir: str | Path = TEMPLATES_DIR) -> str:
    """The complete HTML document of the pack (CSS inlined; fonts referenced relative to
    ``templates_dir``, images as ``data:`` URIs), so the same file previews in a browser."""
    templates_dir = Path(templates_dir)
    env = make_environment(Formatter(context["meta"]["locale"], context["meta"]["currency"]), templates_dir)
    css = Markup("\n".join((templates_dir / name).read_text(encoding="utf-8") for name in STYLESHEETS))
    return env.get_template("board_pack.html").render(**context, stylesheet=css)


def render_board_pack(folder: str | Path, config: Config, *, templates_dir: str | Path = TEMPLATES_DIR) -> dict:
    """Render ``board_pack.html`` and ``board_pack.pdf`` into the run's artifact folder.

    Parameters
    ----------
    folder
        The run's artifact folder holding ``bridge``, ``ledger``, ``metrics.json`` and
        ``data_quality.json`` (and any later metric tables).
    config
        The pack configuration.

    Returns
    -------
    dict
        ``{"pdf": path, "html": path, "pages": int, "render_seconds": float, "render_method": str,
        "blocked_urls": list}``; the PDF is one WeasyPrint document written as tagged PDF/A-3a
        (:func:`cxpipeline.report.render.render_archival_pdf`).
    """
    folder = Path(folder)
    started = time.perf_counter()
    charts = ChartBook(deferred=True)  # drawn in a second process while the pack is laid out
    context = build_context(folder, config, templates_dir=templates_dir, charts=charts)
    charts.start()
    try:
        html = render_html(context, templates_dir)
        write_briefing(folder, context, config, templates_dir)  # the email's words, from the same context
    except BaseException:
        charts.close()
        raise
    with collector_paused():  # the render's garbage is collected after it (see collector_paused)
        rendered = render_archival_pdf(html, templates_dir, pack_id=config.pack_id,
                                       period=context["meta"]["period"], charts=charts)
        html_path = write_text(folder / "board_pack.html", rendered.html)
        pdf_path = write_bytes(folder / "board_pack.pdf", rendered.pdf)
        seconds = round(time.perf_counter() - started, 3)
    LOGGER.info("board pack: %d pages in %.2f s (%s) -> %s", rendered.count_pages, seconds, rendered.method,
                pdf_path)
    return {"pdf": str(pdf_path), "html": str(html_path), "pages": rendered.count_pages,
            "render_seconds": seconds, "render_method": rendered.method,
            "blocked_urls": rendered.blocked_urls}
