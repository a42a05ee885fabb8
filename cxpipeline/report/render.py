"""HTML -> PDF: the Jinja environment, a locked-down URL fetcher and :func:`render_pdf`.

The pack's HTML may carry text from the source data (segment values, customer names, notes).
Jinja autoescapes it, and WeasyPrint gets a fetcher that serves only files inside the
templates folder and ``data:`` URIs: no ``file://`` elsewhere on disk, no network. A blocked
URL is logged and recorded; the resource is simply missing from the page.

One module of ~440 lines on purpose: the Jinja environment, the fetcher and the PDF writer
(PDF/A-3a, tagged, with its XMP) are the one path from HTML to the archived PDF.
"""

from __future__ import annotations

import gc
import logging
import mimetypes
import os
import re
from contextlib import contextmanager
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import xml.etree.ElementTree as ElementTree

import cssselect2
import jinja2
from markupsafe import Markup
import weasyprint.css
from weasyprint import CSS, HTML
from weasyprint import _find_base_url
from weasyprint.css.counters import CounterStyle
from weasyprint.html import UA_STYLESHEET
from weasyprint.urls import URLFetcher, URLFetcherResponse
from xml.sax.saxutils import escape as xml_escape

from cxpipeline.errors import ConfigError
from cxpipeline.report.formatting import Formatter

__all__ = [
    "TEMPLATES_DIR",
    "require_templates",
    "resolve_templates_dir",
    "TemplateOnlyFetcher",
    "PackHTML",
    "parse_well_formed",
    "css_string",
    "collector_paused",
    "make_environment",
    "render_document",
    "render_pdf",
    "PDF_VARIANT",
    "ArchivalPDF",
    "compress_streams_once",
    "pack_xmp",
    "render_archival_pdf",
]

LOGGER = logging.getLogger(__name__)

_DATA_URI = re.compile(r"data:[\w/+.-]*(?:;[\w=.-]+)*,[^\s'\"()<>]{16,}")


class _NoDataUris(logging.Filter):
    """Shortens ``data:`` URIs in log records: an embedded logo or chart is the base64 of a
    file (a misconfigured logo could be any file) and must not be copied into logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "data:" in message:
            record.msg = _DATA_URI.sub(lambda m: f"{m.group(0)[:m.group(0).index(',') + 1]}"
                                                 f"...({len(m.group(0))} characters)", message)
            record.args = None
        return True


for _name in ("weasyprint", __name__):  # WeasyPrint logs images it fails to load with their URL
    logging.getLogger(_name).addFilter(_NoDataUris())

def resolve_templates_dir(environ: dict | None = None) -> Path:
    """Where the pack's templates are: ``$CXPIPELINE_TEMPLATES`` if set, else ``templates/`` of
    a source checkout or editable install (beside the package), else the copy a wheel ships as
    ``cxpipeline/templates`` (see setup.py).

    Raises
    ------
    ConfigError
        If ``CXPIPELINE_TEMPLATES`` is set but holds no ``board_pack.html``.
    """
    environ = os.environ if environ is None else environ
    override = environ.get("CXPIPELINE_TEMPLATES")
    if override:
        path = Path(override).expanduser()
        if not (path / "board_pack.html").is_file():
            raise ConfigError(f"CXPIPELINE_TEMPLATES={override!r} holds no board_pack.html.",
                              where="environment variable CXPIPELINE_TEMPLATES",
                              fix="Point it at the project's templates/ folder, or unset it to use the "
                                  "templates installed with cxpipeline.")
        return path
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "templates", package / "templates"):
        if (candidate / "board_pack.html").is_file():
            return candidate
    return package / "templates"  # missing: require_templates() explains when it is used


def require_templates(templates_dir: str | Path) -> Path:
    """``templates_dir`` if it holds the pack's templates, else a clear error."""
    path = Path(templates_dir)
    if not (path / "board_pack.html").is_file():
        raise ConfigError(f"The board pack templates are not in {str(path)!r}.",
                          where="cxpipeline.report (templates folder)",
                          fix="Install cxpipeline from a wheel (it ships the templates), use the source "
                              "checkout, or set CXPIPELINE_TEMPLATES to a copy of the project's templates/.")
    return path


#: The templates folder (page partials, CSS, fonts); see :func:`resolve_templates_dir`.
TEMPLATES_DIR = resolve_templates_dir()


class TemplateOnlyFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves files under ``root`` and ``data:`` URIs only.

    Every other URL (``file://`` outside ``root``, ``http(s)://``, ``ftp://``...) raises, which
    WeasyPrint turns into a logged warning and a missing resource. ``blocked`` lists the URLs
    refused, so callers and tests can see what a document tried to load.
    """

    def __init__(self, root: str | Path, charts=None):
        super().__init__(timeout=1, allowed_protocols={"file", "data"}, allow_redirects=False)
        self.root = Path(root).resolve()
        self.charts = charts  # a deferred ChartBook: its cx-chart:N tokens are served from it
        self.blocked: list[str] = []

    def _refuse(self, url: str, why: str) -> None:
        self.blocked.append(url)
        LOGGER.warning("board pack: refused to load %s (%s)", url[:200], why)
        raise PermissionError(f"{why}: {url[:200]}")

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data":
            return super().fetch(url, headers)
        chart = self.charts.uri_for(url) if scheme == "cx-chart" and self.charts is not None else None
        if chart is not None:
            return super().fetch(chart, headers)
        if scheme != "file":
            self._refuse(url, "only files from the templates folder and data: URIs are allowed")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            self._refuse(url, "file URLs on another host are not allowed")
        path = Path(url2pathname(unquote(parts.path))).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            self._refuse(url, f"file is outside the templates folder {self.root}")
        mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": mime_type})


@contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector for a WeasyPrint layout and PDF write.

    A render allocates a few hundred thousand style, box and drawing objects that all stay
    alive until the PDF is written, so every automatic full collection during it walks them
    (and everything the process imported) and frees nothing: 5-8 full collections, about
    1 s of a render. Paused, the render's garbage (cyclic: boxes point at their parents) is
    collected once, by the ordinary collector, after the render. Re-enabled on exit only if it
    was enabled on entry, so nested use is safe.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: User-agent rules that match every element of every document: a pseudo-element per element
#: for footnotes and notes (the pack has none: no ``float: footnote``) and ``::marker``
#: (markers exist only on list items). WeasyPrint computes a style for each of these six
#: pseudo-elements of each of the pack's ~3,600 elements: about a third of its style phase.
_UA_UNIVERSAL_NOTES = re.compile(r"^::(?:footnote|note)-[a-z]+ \{[^}]*\}\n", re.MULTILINE)
_UA_UNIVERSAL_MARKER = re.compile(r"^::marker \{", re.MULTILINE)


def lean_user_agent_css(text: str) -> tuple[str, int]:
    """WeasyPrint's HTML user-agent stylesheet ``text`` without the footnote and note
    pseudo-element rules and with ``::marker`` scoped to ``li``; also the number of rules
    changed (0 if a WeasyPrint release words them differently: then nothing is changed)."""
    text, dropped = _UA_UNIVERSAL_NOTES.subn("", text)
    text, scoped = _UA_UNIVERSAL_MARKER.subn("li::marker {", text)
    return text, dropped + scoped


@lru_cache(maxsize=1)
def _lean_user_agent_stylesheet() -> CSS | None:
    text, changed = lean_user_agent_css((files(weasyprint.css) / "html5_ua.css").read_text("utf-8"))
    if not changed:
        return None
    # Its @counter-style rules are already registered by WeasyPrint's own copy.
    return CSS(string=text, counter_style=CounterStyle())


def parse_well_formed(html: str):
    """The element tree of ``html`` parsed by the C XML parser (expat), shaped as WeasyPrint's
    HTML parser (tinyhtml5) builds it, or ``None`` if ``html`` is not a plain well-formed
    ``<!DOCTYPE html>`` document (then the HTML parser must be used).

    The pack's templates write well-formed markup (void elements closed, data autoescaped),
    and tinyhtml5, a pure-Python parser, takes ~0.12 s for the demo pack; expat ~0.01 s.
    Documents that declare entities or XML namespaces, or that expat rejects (control
    characters, unclosed tags, HTML-only entities such as ``&nbsp;``), are left to tinyhtml5.
    """
    if not html.startswith("<!DOCTYPE html>") or "<!ENTITY" in html or "xmlns" in html:
        return None
    try:
        root = ElementTree.fromstring(html)
    except ElementTree.ParseError:
        return None
    body = root.find("body")
    if root.tag != "html" or body is None or any(not isinstance(e.tag, str) for e in root.iter()):
        return None
    # tinyhtml5 keeps no text before <head> and moves text after </body> into the body.
    root.text = None
    if body.tail:
        if len(body):
            body[-1].tail = (body[-1].tail or "") + body.tail
        else:
            body.text = (body.text or "") + body.tail
        body.tail = None
    return root


class PackHTML(HTML):
    """:class:`weasyprint.HTML` with a leaner user-agent stylesheet (:func:`lean_user_agent_css`):
    the same rendering for the pack's documents, a third less time computing styles.
    Overrides WeasyPrint's ``HTML._ua_stylesheets`` (tests/test_report.py checks it is used).

    Built from a string, a well-formed document is parsed by :func:`parse_well_formed` (the same
    tree, ~10x faster) instead of WeasyPrint's HTML parser; ``parser`` says which one was used.
    """

    def __init__(self, guess=None, *, string: str | None = None, base_url=None, url_fetcher=None,
                 media_type: str = "print", **kwargs):
        root = parse_well_formed(string) if string is not None and guess is None and not kwargs else None
        if root is None:
            super().__init__(guess, string=string, base_url=base_url, url_fetcher=url_fetcher,
                             media_type=media_type, **kwargs)
            self.parser = "html"
            return
        # What HTML.__init__ (WeasyPrint 70) sets after parsing.
        self.base_url = _find_base_url(root, str(base_url) if base_url is not None else None)
        self.url_fetcher = url_fetcher if url_fetcher is not None else URLFetcher()
        self.media_type = media_type
        self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
        self.etree_element = self.wrapper_element.etree_element
        self.parser = "xml"

    def _ua_stylesheets(self, *args, **kwargs):
        sheets = super()._ua_stylesheets(*args, **kwargs)
        lean = _lean_user_agent_stylesheet()
        return [lean if sheet is UA_STYLESHEET and lean is not None else sheet for sheet in sheets]


def css_string(text: str) -> Markup:
    """``text`` as a quoted CSS string with every character but letters, digits and spaces
    hex-escaped, so data (a company name) can never close the string or the stylesheet.
    Each escape ends with a space, which CSS reads as part of the escape: without it a space
    that follows ("1 Jul 2026 - 30 Sep") would be swallowed by the escape before it."""
    escaped = "".join(c if (c.isalnum() and c.isascii()) or c == " " else f"\\{ord(c):06x} " for c in str(text))
    return Markup(f'"{escaped}"')


class _BytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept for the life of the process and on disk, keyed by Jinja on the
    template's name and checksummed on its source (an edited template is compiled again).

    Compiling the pack's 19 templates takes longer than rendering them (~0.15-0.35 s against
    ~0.05-0.1 s). Each render makes a new environment (its filters are the pack's locale and
    currency), so the environment's own cache would not outlive one render, and a CLI run or
    an Airflow task renders once per process: the disk copy lets it skip compiling too. The
    disk copy lives in Jinja's per-user folder (``$TMPDIR/_jinja2-cache-<uid>``, mode 0700 and
    owned by the user, or not used); where there is none, only the process's copy is kept."""

    def __init__(self, directory: str | None = None):
        self._code: dict[str, bytes] = {}
        self._disk: jinja2.FileSystemBytecodeCache | None = None
        try:
            self._disk = jinja2.FileSystemBytecodeCache(directory)
        except (OSError, RuntimeError) as exc:  # no safe folder: compiled once per process
            LOGGER.debug("templates: no bytecode cache on disk (%s)", exc)

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)
        elif self._disk is not None:
            self._disk.load_bytecode(bucket)  # a stale or unreadable file leaves the bucket empty

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()
        if self._disk is not None:
            try:
                self._disk.dump_bytecode(bucket)
            except OSError as exc:  # a full or read-only disk costs a compile next time, no more
                LOGGER.debug("templates: bytecode not written to %s (%s)", self._disk.directory, exc)


_BYTECODE_CACHE = _BytecodeCache()


def make_environment(formatter: Formatter, templates_dir: str | Path = TEMPLATES_DIR) -> jinja2.Environment:
    """The Jinja environment: autoescaped HTML, undefined names are errors, our filters.
    Compiled templates are shared by every environment of the process (their source is
    checksummed, so an edited template is recompiled)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(require_templates(templates_dir))),
        bytecode_cache=_BYTECODE_CACHE,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formatter.filters())
    env.filters["css_string"] = css_string
    return env


def render_document(html: str, templates_dir: str | Path = TEMPLATES_DIR,
                    fetcher: TemplateOnlyFetcher | None = None):
    """The laid-out WeasyPrint document (``.pages``, ``.write_pdf()``) of an HTML string, laid out
    with the garbage collector paused (see :func:`collector_paused`; pause it around
    ``write_pdf`` too); relative URLs resolve inside ``templates_dir``, the only folder files
    are served from (pass your own :class:`TemplateOnlyFetcher` to inspect ``fetcher.blocked``)."""
    templates_dir = Path(templates_dir).resolve()
    fetcher = fetcher or TemplateOnlyFetcher(templates_dir)
    with collector_paused():
        return PackHTML(string=html, base_url=templates_dir.as_uri() + "/", url_fetcher=fetcher).render()


def render_pdf(html: str, templates_dir: str | Path = TEMPLATES_DIR,
               fetcher: TemplateOnlyFetcher | None = None) -> bytes:
    """Render an HTML string to PDF bytes (:func:`render_document`, then written).

    Parameters
    ----------
    html
        The complete document (as produced by :func:`cxpipeline.report.render_html`).
    templates_dir
        Base folder for relative URLs (fonts, CSS, images) and the only folder files are
        served from.
    fetcher
        Pass your own :class:`TemplateOnlyFetcher` to inspect ``fetcher.blocked`` afterwards.
    """
    with collector_paused():
        return render_document(html, templates_dir, fetcher).write_pdf(uncompressed_pdf=False)


#: The pack's PDF variant: PDF/A-3, level A (accessible): fonts embedded, an sRGB output intent,
#: XMP metadata, and tagged (WeasyPrint's structure tree: headings, table headers, figures with
#: their alt text). The XMP also names PDF/UA-1 (pdfuaid:part) and the pack (:func:`pack_xmp`).
PDF_VARIANT = "pdf/a-3a"
_CX_NS = "https://cxpipeline.dev/ns/pack/1.0/"


def pack_xmp(pack_id: str, period: str, content_sha256: str) -> bytes:
    """XMP ``rdf:Description`` elements naming the pack, its period and its content hash
    (``cx:pack``, ``cx:period``, ``cx:contentSha256``), declaring PDF/UA-1 (``pdfuaid:part``),
    and the PDF/A extension schemas that describe both namespaces (PDF/A requires every
    property outside its predefined schemas to be described in the file)."""
    def prop(name: str, description: str) -> str:
        return (f"<rdf:li rdf:parseType=\"Resource\"><pdfaProperty:name>{name}</pdfaProperty:name>"
                "<pdfaProperty:valueType>Text</pdfaProperty:valueType>"
                "<pdfaProperty:category>external</pdfaProperty:category>"
                f"<pdfaProperty:description>{description}</pdfaProperty:description></rdf:li>")

    def schema(name: str, uri: str, prefix: str, props: str, value_type: str = "Text") -> str:
        return (f"<rdf:li rdf:parseType=\"Resource\"><pdfaSchema:schema>{name}</pdfaSchema:schema>"
                f"<pdfaSchema:namespaceURI>{uri}</pdfaSchema:namespaceURI>"
                f"<pdfaSchema:prefix>{prefix}</pdfaSchema:prefix>"
                f"<pdfaSchema:property><rdf:Seq>{props}</rdf:Seq></pdfaSchema:property></rdf:li>")

    uaid = "http://www.aiim.org/pdfua/ns/id/"
    extension = (
        '<rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/" '
        'xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" '
        'xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">'
        "<pdfaExtension:schemas><rdf:Bag>"
        + schema("PDF/UA identification schema", uaid, "pdfuaid",
                 prop("part", "Part of ISO 14289 the file conforms to").replace(
                     "<pdfaProperty:valueType>Text", "<pdfaProperty:valueType>Integer"))
        + schema("cxpipeline board pack", _CX_NS, "cx",
                 prop("pack", "Pack id of the board pack")
                 + prop("period", "Reporting period of the board pack")
                 + prop("contentSha256", "SHA-256 of board_pack.html, the document this PDF was rendered from"))
        + "</rdf:Bag></pdfaExtension:schemas></rdf:Description>"
    )
    pack = (f'<rdf:Description rdf:about="" xmlns:pdfuaid="{uaid}" xmlns:cx="{_CX_NS}">'
            "<pdfuaid:part>1</pdfuaid:part>"
            f"<cx:pack>{xml_escape(pack_id)}</cx:pack><cx:period>{xml_escape(period)}</cx:period>"
            f"<cx:contentSha256>{xml_escape(content_sha256)}</cx:contentSha256></rdf:Description>")
    return (pack + extension).encode("utf-8")


def compress_streams_once(document, pdf) -> None:
    """WeasyPrint finisher: compress each of ``pdf``'s streams once, two at a time, before
    pydyf writes the file.

    pydyf compresses a stream (zlib, level 9) each time its bytes are asked for, and with a
    file identifier, which PDF/A requires, it asks twice: once to write the object, once for
    the identifier's md5 of every object. That is ~0.1 s of the demo pack's ~0.2 s of
    compression done twice (docs/report.md). Here each stream is compressed once, with the same
    compressor on the same bytes, in two threads (zlib works outside the GIL), and handed to
    pydyf as already compressed (its ``FlateDecode`` filter set, ``compress`` off): the file
    is byte for byte the one pydyf would write (tests/test_report.py).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pydyf
    import zlib

    item_bytes = getattr(pydyf, "_to_bytes", None)  # pydyf's own serialiser (pinned by the lock)
    if item_bytes is None:  # another pydyf: leave the compression to it
        return
    streams = [o for o in pdf.objects if isinstance(o, pydyf.Stream) and o.compress and "Filter" not in o.extra]

    def deflate(stream) -> bytes:
        compressor = zlib.compressobj(level=9)  # pydyf's own (pydyf.Stream.data)
        data = compressor.compress(b"\n".join(item_bytes(item) for item in stream.stream))
        return data + compressor.flush()

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cxpipeline-deflate") as pool:
        for stream, data in zip(streams, pool.map(deflate, streams)):
            stream.stream, stream.compress = [data], False
            stream.extra["Filter"] = "/FlateDecode"


class ArchivalPDF:
    """A rendered pack: ``pdf`` (bytes), ``count_pages``, ``method``, ``blocked_urls``, ``html``."""

    def __init__(self, pdf: bytes, count_pages: int, method: str, blocked_urls: list[str], html: str):
        self.pdf, self.count_pages, self.method = pdf, count_pages, method
        self.blocked_urls, self.html = blocked_urls, html


def render_archival_pdf(html: str, templates_dir: str | Path = TEMPLATES_DIR, *, pack_id: str,
                        period: str, charts=None) -> ArchivalPDF:
    """The pack as one WeasyPrint document, written as tagged PDF/A-3a (:data:`PDF_VARIANT`)
    with the pack, period and content hash (sha256 of the returned ``html``) in its XMP metadata.

    One document: PDF/A and the structure tree are written by WeasyPrint for a whole
    document; pages laid out apart and stamped into one file would lose both. ``charts``, a
    deferred :class:`~cxpipeline.report.charts.ChartBook` whose tokens are in ``html``, draws
    them in a second process while this one lays the document out (:meth:`ChartBook.start`);
    the returned ``html`` has their ``data:`` URIs in place of the tokens.
    """
    import hashlib

    templates_dir = Path(templates_dir).resolve()
    fetcher = TemplateOnlyFetcher(templates_dir, charts)
    if charts is not None:
        charts.start(html)
    try:
        with collector_paused():
            document = render_document(html, templates_dir, fetcher)
            if charts is not None:
                html = charts.resolve(html)  # every chart the layout fetched is drawn by now
            extra = pack_xmp(pack_id, period, hashlib.sha256(html.encode("utf-8")).hexdigest())
            metadata = document.metadata
            original = metadata.generate_rdf_metadata

            def with_pack(*args, **kwargs) -> bytes:
                # WeasyPrint writes one rdf:RDF; ours go inside it (XMP allows one rdf:RDF per packet).
                rdf = original(*args, **kwargs)
                closing = rdf.rindex(b"</rdf:RDF>")
                return rdf[:closing] + extra + rdf[closing:]

            metadata.generate_rdf_metadata = with_pack  # this document's metadata only
            pdf = document.write_pdf(pdf_variant=PDF_VARIANT, pdf_tags=True, uncompressed_pdf=False,
                                     finisher=compress_streams_once)
    finally:
        if charts is not None:
            charts.close()
    return ArchivalPDF(pdf, len(document.pages), f"single document, {PDF_VARIANT}, tagged",
                       list(fetcher.blocked), html)
