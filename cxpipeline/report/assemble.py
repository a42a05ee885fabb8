"""The pack's PDF laid out on two cores: two body documents and one page-furniture document,
assembled into one file.

WeasyPrint lays a document out on one core, and the pack's 30-odd pages of tables take it
2-3 s. Every section of the pack starts on a new page, so how a section breaks into pages does
not depend on what comes before it; only the page numbers do (the footer's "Page x of y" and
the contents). So the pack is rendered in three documents of the same HTML and CSS:

1. **Body parts.** The document is cut at a section boundary into two documents with the running
   header and footer but "Page x of y". They are laid out and written at the same time, one in this
   process and one in a forked child (Linux; elsewhere one after the other). Part one keeps the
   cover and an empty contents page, so its pages stay where they are in the whole pack.
2. **Page furniture.** When both are laid out the page numbers are known. A third document
   has what depends on them: "Page x of y" on each page and the contents page (with the
   running header) whose page numbers and links point at the sections' anchors, repeated at
   the top of the pages where the sections start. Whichever process is free first lays it out.
3. **Assembly** (pikepdf/qpdf): each body page goes under its furniture page as a form
   XObject; the named destinations (every anchor) and the PDF outline (every bookmark) are
   written from the body parts' pages, as WeasyPrint writes them.

Each process draws the charts of its own part (a deferred :class:`ChartBook`) and the three
documents share one parse of the stylesheet. The result has the same pages, text, links and
outline as the one-document render
(:func:`render_single_pdf`), which the tests compare, and which is used whenever the pack does
not have the expected shape or ``CXPIPELINE_RENDER_PROCESSES=1``.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import pickle
import re
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf
from markupsafe import escape

from weasyprint import CSS
from weasyprint.text.fonts import FontConfiguration

from cxpipeline.report.charts import ChartBook
from cxpipeline.report.render import (TEMPLATES_DIR, PackHTML, TemplateOnlyFetcher, collector_paused,
                                      render_document)

__all__ = ["PackParts", "RenderedPDF", "split_pack", "render_pack_pdf", "render_single_pdf",
           "render_processes"]

LOGGER = logging.getLogger(__name__)

#: Top-level blocks of the pack's body: cover, contents, one per section (board_pack.html;
#: the page templates have no <section> of their own, and data is escaped).
_BLOCK_START = re.compile(r"<section\b")
_ID = re.compile(r' id="([^"]+)"')
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+")
_EMPTY_CONTENTS = '<section class="contents" id="contents"></section>'

#: Body parts: the running header and footer but "Page x of y", which the furniture draws
#: (on the contents page the furniture draws them all: the page's text stays in order).
_BODY_CSS = """<style>
@page { @bottom-right { content: none; } }
#contents { page: cx-front; }
@page cx-front { @top-left { content: none; } @top-right { content: none; }
                 @bottom-left { content: none; } @bottom-right { content: none; } }
</style>
"""
#: Furniture document: the contents page whole (with its header and footer), then empty
#: pages that carry "Page x of y" only and the anchors of the sections that start on them.
_FURNITURE_CSS = """<style>
.furniture-page { break-before: page; height: 0; page: cx-numbers; }
@page cx-numbers { @top-left { content: none; } @top-right { content: none; }
                   @bottom-left { content: none; } }
</style>
"""


def render_processes(environ: dict | None = None) -> int:
    """How many processes lay out the pack: ``$CXPIPELINE_RENDER_PROCESSES`` (1 or 2), else 2
    where a child process can be forked cheaply (Linux), else 1."""
    environ = os.environ if environ is None else environ
    value = environ.get("CXPIPELINE_RENDER_PROCESSES", "").strip()
    if value in ("1", "2"):
        return int(value)
    return 2 if sys.platform.startswith("linux") and hasattr(os, "fork") else 1


@dataclass
class RenderedPDF:
    """A rendered pack: the PDF, its page count, and how it was made."""

    pdf: bytes
    count_pages: int
    method: str  # "single document" | "assembled, N processes"
    blocked_urls: list[str] = field(default_factory=list)
    html: str = ""  # the document rendered, its charts drawn (board_pack.html)


@dataclass
class PackParts:
    """The pack's HTML cut into its top-level blocks (see :func:`split_pack`)."""

    head: str        # up to and including <body ...>
    cover: str
    contents: str
    sections: list[str]
    tail: str        # </body></html>

    def body_document(self, sections: list[str], *, with_front: bool) -> str:
        """A body part; with the front, the cover and an empty contents page (the furniture
        draws the contents; if they ever need two pages, the pages do not line up and the
        pack is rendered as one document)."""
        head = self.head.replace("</head>", _BODY_CSS + "</head>", 1)
        front = self.cover + _EMPTY_CONTENTS if with_front else ""
        return head + front + "".join(sections) + self.tail


def split_pack(html: str) -> PackParts | None:
    """The pack's top-level blocks, or ``None`` if ``html`` is not shaped as board_pack.html
    writes it (a cover, the contents, then at least two sections)."""
    body_at = html.find("<body")
    body_open_end = html.find(">", body_at) + 1
    tail_at = html.rfind("</body>")
    if body_at < 0 or tail_at < body_open_end or "</head>" not in html[:body_at]:
        return None
    starts = [m.start() for m in _BLOCK_START.finditer(html, body_open_end, tail_at)]
    if len(starts) < 4 or html[body_open_end:starts[0]].strip():
        return None
    blocks = [html[a:b] for a, b in zip(starts, starts[1:] + [tail_at])]
    cover, contents, *sections = blocks
    if 'class="cover"' not in cover[:200] or 'id="contents"' not in contents[:200]:
        return None
    return PackParts(html[:body_open_end], cover, contents, sections, html[tail_at:])


def _section_id(block: str) -> str | None:
    found = _ID.search(block[:300])
    return found.group(1) if found else None


def _weight(block: str) -> int:
    """Rough layout cost of a block, about 1 ms each on the demo pack: table cells and
    paragraphs are laid out and drawn, a chart is drawn, a page has a fixed cost."""
    return (block.count("<td") + block.count("<th") + 3 * (block.count("<p") + block.count("<li"))
            + 60 * block.count("<img") + 40)


#: Of a body part's time, the share before its PDF is written (layout: its anchors and page
#: count are known then); and the furniture's share of the whole pack's time.
_LAYOUT_SHARE = 0.75
_FURNITURE_SHARE = 0.08


def _cut(front: list[str], sections: list[str]) -> int:
    """Where to cut the sections so that both processes finish together. The first process
    lays out and writes the ``front`` (cover, contents) and the sections before the cut; the
    furniture, which needs the second part laid out (not yet written) too, is counted to it,
    as it usually lays it out (whichever process is free first does)."""
    weights = [_weight(s) for s in sections]
    front_weight = sum(_weight(b) for b in front)
    furniture = _FURNITURE_SHARE * (front_weight + sum(weights))

    def finish(cut: int) -> float:
        first, second = front_weight + sum(weights[:cut]), sum(weights[cut:])
        return max(max(first, _LAYOUT_SHARE * second) + furniture, second)

    return min(range(1, len(sections)), key=finish)


@dataclass
class _Layout:
    """What the furniture and the assembly need of a laid-out body part (picklable: it
    crosses the fork)."""

    sizes: list[tuple[float, float]]
    anchors: list[dict[str, tuple[float, float]]]
    bookmarks: list[list[tuple[int, str, tuple[float, float], str]]]
    blocked_urls: list[str]
    log_records: list[logging.LogRecord] = field(default_factory=list)
    chart_uris: dict[int, str] = field(default_factory=dict)  # the charts this part drew


_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>\s*", re.DOTALL)


class _Stylesheets:
    """The documents' ``<style>`` blocks parsed once per render, with one font configuration
    (the shipped fonts loaded once), and given to WeasyPrint in the same order: the three
    documents share the pack's stylesheet (~0.09 s each to parse and load otherwise). Parsed
    before the fork, the child gets them ready."""

    def __init__(self, templates_dir: Path):
        self.base_url = templates_dir.as_uri() + "/"
        self.fetcher = TemplateOnlyFetcher(templates_dir)
        self.font_config = FontConfiguration()
        self._parsed: dict[str, CSS] = {}

    def split(self, html: str) -> tuple[str, list[CSS]]:
        """``html`` without the ``<style>`` blocks of its head, and those blocks parsed."""
        head_end = html.index("</head>")
        sheets = []
        for text in _STYLE_BLOCK.findall(html, 0, head_end):
            if text not in self._parsed:
                self._parsed[text] = CSS(string=text, base_url=self.base_url, url_fetcher=self.fetcher,
                                         font_config=self.font_config)
            sheets.append(self._parsed[text])
        return _STYLE_BLOCK.sub("", html[:head_end]) + html[head_end:], sheets

    def render(self, html: str, fetcher: TemplateOnlyFetcher):
        """``html`` laid out (call with the garbage collector paused)."""
        stripped, sheets = self.split(html)
        return PackHTML(string=stripped, base_url=self.base_url, url_fetcher=fetcher).render(
            stylesheets=sheets, font_config=self.font_config)


def _lay_out(html: str, templates_dir: Path, styles: _Stylesheets):
    """A body part laid out: the WeasyPrint document (to write) and its :class:`_Layout`.
    Call with the garbage collector paused (:func:`collector_paused`)."""
    fetcher = TemplateOnlyFetcher(templates_dir)
    document = styles.render(html, fetcher)
    return document, _Layout(
        sizes=[(page.width, page.height) for page in document.pages],
        anchors=[{name: (point[0], point[1]) for name, point in page.anchors.items()} for page in document.pages],
        bookmarks=[[(level, label, (target[0], target[1]), state) for level, label, target, state in page.bookmarks]
                   for page in document.pages],
        blocked_urls=list(fetcher.blocked))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None  # picklable whatever the args were
        record.exc_info = None
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


def _in_child(html: str, templates_dir: Path, charts: ChartBook, styles: _Stylesheets, furniture,
              claim, from_parent: int, to_parent: int) -> None:
    """The forked child: lay out one part and send its :class:`_Layout` as soon as it is
    known, then write its PDF and send that; then, if the parent has not claimed it yet, lay
    out the furniture (``furniture(first_layout, second_layout)``, the first part's layout
    read from the parent) and send it. Log records go back with each message (the parent's
    handlers may write to a socket the parent owns); a failure is sent as its traceback.
    Never returns."""
    try:
        with os.fdopen(to_parent, "wb") as pipe, os.fdopen(from_parent, "rb") as incoming:
            try:
                collector = _Collect()
                for logger in [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                                       if isinstance(v, logging.Logger)]:
                    logger.handlers = []
                logging.getLogger().addHandler(collector)
                logging.captureWarnings(True)  # warnings too: not printed on the parent's stderr
                with collector_paused():
                    numbers = charts.numbers_in(html)
                    document, layout = _lay_out(charts.resolve(html), templates_dir, styles)
                    layout.chart_uris = {number: charts.uris[number] for number in numbers}
                    layout.log_records = collector.take()
                    pickle.dump(("layout", layout), pipe)
                    pipe.flush()
                    pickle.dump(("pdf", document.write_pdf(), collector.take()), pipe)
                    pipe.flush()
                    del document
                    if not claim(_CHILD):
                        return
                    first = pickle.load(incoming)
                    message = ("furniture", furniture(first, layout), collector.take())
            except EOFError:  # the parent stopped listening
                return
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                message = ("error", traceback.format_exc())
            pickle.dump(message, pipe)
    finally:
        os._exit(0)


_PARENT, _CHILD = 1, 2


class _Child:
    """The second body part, laid out and written in a forked child (see :func:`_in_child`),
    which also lays out the furniture if it is free before this process."""

    def __init__(self, html: str, templates_dir: Path, charts: ChartBook, styles: _Stylesheets, furniture):
        # Who lays out the furniture: the first process free once both parts are laid out.
        self._claimed = multiprocessing.RawValue("i", 0)
        self._claim_lock = multiprocessing.Lock()
        from_child, to_parent = os.pipe()
        from_parent, to_child = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() while threads run (pyarrow's pool, Airflow's): the
            # child only runs WeasyPrint and matplotlib, which those threads never lock, and
            # leaves with os._exit.
            warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child's coverage is not collected
            os.close(from_child)
            os.close(to_child)
            _in_child(html, templates_dir, charts, styles, furniture, self.claim, from_parent, to_parent)
        os.close(to_parent)
        os.close(from_parent)
        self.pipe = os.fdopen(from_child, "rb")
        self.outgoing = os.fdopen(to_child, "wb")

    def claim(self, who: int) -> bool:
        """Claim the furniture for ``who``; False if the other process has it."""
        with self._claim_lock:
            if self._claimed.value == 0:
                self._claimed.value = who
            return self._claimed.value == who

    def send_first_layout(self, layout: _Layout) -> None:
        """The first part's layout, which the child needs if it lays out the furniture."""
        try:
            pickle.dump(layout, self.outgoing)
            self.outgoing.flush()
        except BrokenPipeError:  # the child has finished and left
            pass

    def receive(self, kind: str):
        """The child's next message, of ``kind`` "layout" (its :class:`_Layout`), "pdf" or
        "furniture"; its log records are handled here as if logged in this process."""
        try:
            message = pickle.load(self.pipe)
        except EOFError:
            message = ("error", "the child process exited without a result")
        if message[0] == "error":
            raise RuntimeError(f"Laying out the second half of the board pack failed in its process:\n{message[1]}")
        if message[0] != kind:  # pragma: no cover - the protocol's order is fixed
            raise RuntimeError(f"The board pack's render child sent {message[0]!r}, expected {kind!r}.")
        records = message[1].log_records if kind == "layout" else message[2]
        for record in records:
            logging.getLogger(record.name).handle(record)
        return message[1]

    def close(self) -> None:
        """Stop listening (a child still writing gets a broken pipe and exits) and reap the
        child without waiting for it: tearing down its copy of this process's memory takes
        the kernel ~0.1 s after its last message."""
        self.pipe.close()
        try:
            self.outgoing.close()
        except BrokenPipeError:
            pass
        if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            threading.Thread(target=os.waitpid, args=(self.pid, 0), name="cx-render-child-reaper",
                             daemon=True).start()


def _furniture_document(parts: PackParts, pages: list[tuple[dict, list]], front_pages: int,
                        origin: tuple[float, float]) -> str | None:
    """The page-furniture document for the assembled ``pages`` (anchors, bookmarks per page),
    or ``None`` if the pack is not shaped as expected: the cover and contents carry no anchor
    or bookmark of their own, and every section the contents link to starts at the top of a
    page (the furniture repeats its anchor there, for the contents' page numbers and links)."""
    contents_ids = set(_ID.findall(parts.contents))
    targets = set(re.findall(r' href="#([^"]+)"', parts.contents))
    if any(bookmarks or set(anchors) - contents_ids for anchors, bookmarks in pages[:front_pages]):
        return None
    shells, numbers = [], []
    for index, (anchors, _) in enumerate(pages[front_pages:], start=front_pages):
        ids = [name for name in anchors if name in targets]
        if any(abs(anchors[name][0] - origin[0]) > 0.01 or abs(anchors[name][1] - origin[1]) > 0.01
               for name in ids):
            return None
        targets.difference_update(ids)
        inner = "".join(f'<div id="{escape(name)}"></div>' for name in ids[1:])
        first = f' id="{escape(ids[0])}"' if ids else ""
        shells.append(f'<div class="furniture-page"{first}>{inner}</div>')
        # The contents' page numbers as text: the same as its target-counter() gives, without
        # WeasyPrint laying the contents page out again once the targets are known (~0.03 s).
        numbers += [f'.toc a[href="#{name}"]::after {{ content: "{index + 1}"; }}'
                    for name in ids if _PLAIN_ID.fullmatch(name)]
    if targets - contents_ids:
        return None
    head = _furniture_head(parts).replace("</head>", "<style>\n" + "\n".join(numbers) + "\n</style>\n</head>", 1)
    return head + '<div class="cover"></div>' + parts.contents + "".join(shells) + parts.tail


def _furniture_head(parts: PackParts) -> str:
    return parts.head.replace("</head>", _FURNITURE_CSS + "</head>", 1)


def _outline_tree(bookmarks: list[tuple[int, str, int, float, float, str]]) -> list:
    """Bookmarks ``(level, label, page, x, y, state)`` in document order as a tree of
    ``[label, (page, x, y), children, state]``: each one is a child of the last one before it
    with a lower level (as WeasyPrint nests them)."""
    root: list = []
    stack: list[tuple[int, list]] = []  # (level, children list of that bookmark)
    for level, label, page, x, y, state in bookmarks:
        while stack and stack[-1][0] >= level:
            stack.pop()
        node = [label, (page, x, y), [], state]
        (stack[-1][1] if stack else root).append(node)
        stack.append((level, node[2]))
    return root


def _add_outline(pack, tree: list, page_refs: list) -> None:
    """The PDF outline of ``tree`` (:func:`_outline_tree`), written as WeasyPrint writes it."""

    def add(nodes, parent):
        count, items = len(nodes), []
        for label, (page, x, y), children, state in nodes:
            item = pack.make_indirect(pikepdf.Dictionary(
                Title=pikepdf.String(label), Dest=pikepdf.Array([page_refs[page], pikepdf.Name.XYZ, x, y, 0]),
                Parent=parent))
            child_items, child_count = add(children, item)
            item.Count = -child_count if state == "closed" else child_count
            if state != "closed":
                count += child_count
            if child_items:
                item.First, item.Last = child_items[0], child_items[-1]
            if items:
                item.Prev, items[-1].Next = items[-1], item
            items.append(item)
        return items, count

    if not tree:
        return
    outlines = pack.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Outlines))
    items, count = add(tree, outlines)
    outlines.Count, outlines.First, outlines.Last = count, items[0], items[-1]
    pack.Root.Outlines = outlines


def _assemble(furniture_pdf: bytes, bodies: list[bytes], heights: list[float],
              anchors: list[dict], bookmarks: list[list]) -> bytes:
    """Each body page under its furniture page; the pack's named destinations (every anchor)
    and outline (every bookmark) from the body parts' pages, in PDF points as WeasyPrint
    writes them."""

    def point(page: int, x: float, y: float) -> tuple[float, float]:
        return round(x * 0.75, 6), round((heights[page] - y) * 0.75, 6)  # CSS px -> PDF points

    with pikepdf.open(io.BytesIO(furniture_pdf)) as pack:
        sources = [pikepdf.open(io.BytesIO(body)) for body in bodies]
        try:
            body_pages = [page for source in sources for page in source.pages]
            for index, (page, body_page) in enumerate(zip(pack.pages, body_pages)):
                # Page.add_underlay would name the XObject at random (the same pack would not
                # be the same bytes); WeasyPrint's pages share one resource dictionary, hence
                # a name per page. Same page box: drawn as is, before the furniture.
                name = f"/CxBody{index}"
                form = pack.copy_foreign(body_page.as_form_xobject())
                page.add_resource(form, pikepdf.Name.XObject, pikepdf.Name(name))
                page.contents_add(pikepdf.Stream(pack, f"q {name} Do Q\n".encode()), prepend=True)
            page_refs = [page.obj for page in pack.pages]
            names = []
            for index, page_anchors in enumerate(anchors):
                for anchor, (x, y) in page_anchors.items():
                    names.append((anchor, pikepdf.Array([page_refs[index], pikepdf.Name.XYZ,
                                                         *point(index, x, y), 0])))
            if names:
                array = pikepdf.Array()
                for anchor, destination in sorted(names, key=lambda item: item[0]):
                    array.append(pikepdf.String(anchor))
                    array.append(destination)
                if "/Names" not in pack.Root:
                    pack.Root.Names = pikepdf.Dictionary()
                pack.Root.Names.Dests = pikepdf.Dictionary(Names=array)
            _add_outline(pack, _outline_tree([(level, label, index, *point(index, x, y), state)
                                              for index, page_bookmarks in enumerate(bookmarks)
                                              for level, label, (x, y), state in page_bookmarks]), page_refs)
            out = io.BytesIO()
            pack.save(out, compress_streams=True, object_stream_mode=pikepdf.ObjectStreamMode.generate,
                      deterministic_id=True)  # same pack -> same bytes
        finally:
            for source in sources:
                source.close()
    return out.getvalue()


def render_single_pdf(html: str, templates_dir: str | Path = TEMPLATES_DIR,
                      fetcher: TemplateOnlyFetcher | None = None) -> RenderedPDF:
    """The pack as one WeasyPrint document (the reference the assembled render must equal)."""
    fetcher = fetcher or TemplateOnlyFetcher(Path(templates_dir).resolve())
    with collector_paused():
        document = render_document(html, templates_dir, fetcher)
        pdf = document.write_pdf()
    return RenderedPDF(pdf, len(document.pages), "single document", list(fetcher.blocked))


def render_pack_pdf(html: str, templates_dir: str | Path = TEMPLATES_DIR, *,
                    processes: int | None = None, charts: ChartBook | None = None) -> RenderedPDF:
    """The pack's PDF, laid out in ``processes`` processes (default :func:`render_processes`)
    and assembled (see the module's docstring); one document if ``processes`` is 1 or the
    HTML is not shaped as the pack's template writes it.

    Parameters
    ----------
    html
        The complete pack document (:func:`cxpipeline.report.render_html`).
    templates_dir
        Base folder for relative URLs and the only folder files are served from.
    processes
        1 or 2.
    charts
        The deferred :class:`~cxpipeline.report.charts.ChartBook` whose tokens ``html`` holds:
        each process draws the charts of its part. ``RenderedPDF.html`` is the document with
        every chart drawn.
    """
    templates_dir = Path(templates_dir).resolve()
    charts = charts if charts is not None else ChartBook()
    processes = render_processes() if processes is None else processes
    parts = split_pack(html) if processes > 1 else None
    rendered = _render_parts(parts, templates_dir, processes, charts) if parts is not None else None
    if rendered is None:
        if parts is not None:
            LOGGER.warning("board pack: the parts did not line up with the page furniture; rendered as "
                           "one document instead")
        html = charts.resolve(html)
        rendered = render_single_pdf(html, templates_dir)
    rendered.html = charts.resolve(html)
    return rendered


def _render_parts(parts: PackParts, templates_dir: Path, processes: int, charts: ChartBook) -> RenderedPDF | None:
    """Lay out and write the two body parts (at the same time if ``processes`` is 2), lay out
    the furniture as soon as both are laid out, and assemble them; ``None`` if the
    furniture's pages do not line up with the parts'."""
    cut = _cut([parts.cover, parts.contents], parts.sections)
    first = parts.body_document(parts.sections[:cut], with_front=True)
    second = parts.body_document(parts.sections[cut:], with_front=False)
    styles = _Stylesheets(templates_dir)
    for html in (first, second, _furniture_head(parts)):
        styles.split(html)  # parsed here, before the fork
    def furniture(one: _Layout, two: _Layout):
        return _furniture_pdf(parts, cut, one, two, templates_dir, styles)

    child = _Child(second, templates_dir, charts, styles, furniture) if processes > 1 else None
    # The collector stays paused to the end: re-enabled, its first collection would walk the
    # render's ~10^5 boxes before the assembly (~0.15 s); it runs after the render instead.
    with collector_paused():
        try:
            document, one = _lay_out(charts.resolve(first), templates_dir, styles)
            if child is not None:
                child.send_first_layout(one)
            pdf_one = document.write_pdf()
            del document
            if child is None:
                document, two = _lay_out(charts.resolve(second), templates_dir, styles)
                pdf_two = document.write_pdf()
                del document
                furniture_result = furniture(one, two)
            else:
                two = child.receive("layout")
                charts.uris.update(two.chart_uris)
                if child.claim(_PARENT):  # the child is still writing its part
                    furniture_result = furniture(one, two)
                    pdf_two = child.receive("pdf")
                else:  # the child was free first and lays it out
                    pdf_two = child.receive("pdf")
                    furniture_result = child.receive("furniture")
        finally:
            if child is not None:
                child.close()
        if furniture_result is None:
            return None
        furniture_pdf, anchors, blocked = furniture_result
        sizes = one.sizes + two.sizes
        pdf = _assemble(furniture_pdf, [pdf_one, pdf_two], [height for _, height in sizes], anchors,
                        one.bookmarks + two.bookmarks)
    return RenderedPDF(pdf, len(sizes), f"assembled, {processes} processes",
                       list(dict.fromkeys(styles.fetcher.blocked + one.blocked_urls + two.blocked_urls + blocked)))


def _furniture_pdf(parts: PackParts, cut: int, one: _Layout, two: _Layout, templates_dir: Path,
                   styles: _Stylesheets):
    """The furniture's PDF, the pack's anchors page by page and the URLs the furniture's
    fetcher refused; ``None`` if its pages would not line up with the parts'."""
    # Part two's first section starts where every page's content starts; part one's first
    # section on the first page after the cover and contents.
    origin = two.anchors[0].get(_section_id(parts.sections[cut]))
    first_id = _section_id(parts.sections[0])
    front_pages = next((i for i, anchors in enumerate(one.anchors) if first_id in anchors), None)
    if origin is None or front_pages is None:
        return None
    # An anchor on several pages (a box split across them) counts where it first appears.
    seen: set[str] = set()
    anchors = []
    for page_anchors in one.anchors + two.anchors:
        anchors.append({name: point for name, point in page_anchors.items() if name not in seen})
        seen.update(page_anchors)
    html = _furniture_document(parts, list(zip(anchors, one.bookmarks + two.bookmarks)), front_pages, origin)
    if html is None:
        return None
    fetcher = TemplateOnlyFetcher(templates_dir)
    document = styles.render(html, fetcher)
    if [(page.width, page.height) for page in document.pages] != one.sizes + two.sizes:
        return None
    return document.write_pdf(), anchors, list(fetcher.blocked)
