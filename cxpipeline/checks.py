"""Checks a pack must pass before it counts as deliverable (docs/architecture.md, "The pack's checks").

Each check returns ``(is_passed, detail)``. :func:`run_checks` runs them all on an artifact
folder and reports ``is_deliverable`` only if every check passed; the pipeline refuses to mark
(and the delivery step refuses to send) a pack that failed any.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path


from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import Config
from cxpipeline.quality import cents

__all__ = ["run_checks", "CHECKS", "MIN_PAGES", "MAX_PAGES", "pack_content_problems"]

MIN_PAGES, MAX_PAGES = 3, 80


def check_bridge_reconciles(folder: Path, config: Config) -> tuple[bool, str]:
    bridge = read_table(folder, "bridge")
    bad = []
    for (segment, value), rows in bridge.groupby(["segment", "segment_value"], sort=False):
        by_class = dict(zip(rows["bridge_class"], cents(rows["value"])))
        moves = sum(v for k, v in by_class.items() if k not in ("previous", "current"))
        if by_class["previous"] + moves != by_class["current"]:
            bad.append(f"{segment}={value}: off by {(by_class['previous'] + moves - by_class['current']) / 100:.2f}")
    segment_totals = bridge.query("segment != 'all' and bridge_class == 'current'").groupby("segment")["value"].sum()
    overall = bridge.query("segment == 'all' and bridge_class == 'current'")["value"].sum()
    for segment, total in segment_totals.items():
        if cents([total])[0] != cents([overall])[0]:
            bad.append(f"segments of {segment} add to {total:.2f}, overall is {overall:.2f}")
    return (not bad, "; ".join(bad) or "previous + changes = current to the cent in every segment")


def check_ledger_reconciles(folder: Path, config: Config) -> tuple[bool, str]:
    ledger = read_table(folder, "ledger")
    bad = []
    for (segment, value), rows in ledger.groupby(["segment", "segment_value"], sort=False):
        n = dict(zip(rows["ledger_line"], rows["count_customers"]))
        if n["opening"] + n["new"] + n["reactivated"] - n["lapsed"] != n["closing"]:
            bad.append(f"{segment}={value}")
    return (not bad, ("counts do not reconcile in " + ", ".join(bad)) if bad else "opening + gained - lapsed = closing everywhere")


def check_revenue_accounted(folder: Path, config: Config) -> tuple[bool, str]:
    dq = read_json(folder / "data_quality.json")
    used = cents([dq["revenue_in"]])[0] - sum(cents([r["revenue"]])[0] for r in dq["excluded_by_reason"])
    ok = used == cents([dq["revenue_used"]])[0]
    return ok, f"revenue in {dq['revenue_in']:.2f} = used {dq['revenue_used']:.2f} + excluded {dq['revenue_excluded']:.2f}"


def check_extract_usable(folder: Path, config: Config) -> tuple[bool, str]:
    """The extract gate (:func:`cxpipeline.validation.gate_extract`) again, on the pack's own
    folder: a pack whose data does not cover its period, where nobody bought, or with too much
    revenue excluded is never deliverable, whichever entry point built it."""
    from cxpipeline.errors import InputError
    from cxpipeline.periods import parse_period
    from cxpipeline.validation import gate_extract

    dq = read_json(folder / "data_quality.json")
    label = dq.get("period") or folder.name
    try:
        summary = gate_extract(folder, parse_period(label, config.period.fiscal_year_start_month))
    except InputError as exc:
        return False, exc.what
    share = summary["excluded_share"]
    return True, (f"the data covers {label}; {summary['count_customers_in_period']} customers bought in it; "
                  f"{0 if share is None else share:.1%} of revenue excluded as bad rows")


def check_no_missing_numbers(folder: Path, config: Config) -> tuple[bool, str]:
    metrics = read_json(folder / "metrics.json")
    bad = []
    for name in metrics["tables"]:
        table = read_table(folder, name)
        numeric = table.select_dtypes("number")
        if numeric.isna().to_numpy().any() and not name.endswith("_customers"):
            bad.append(f"{name} has NaN in {', '.join(numeric.columns[numeric.isna().any()])}")
        if table.empty and not name.endswith("_customers"):
            bad.append(f"{name} is empty")
    for key, value in metrics["headline"].items():
        if value is None and key != "retention_rate":
            bad.append(f"headline {key} is missing")
    return (not bad, "; ".join(bad) or "no NaN, no empty table")


def _section_count(folder: Path) -> int:
    html = folder / "board_pack.html"
    if not html.is_file():
        return 0
    return len(re.findall(r'<section class="section"', html.read_text(encoding="utf-8")))


def check_pdf(folder: Path, config: Config) -> tuple[bool, str]:
    """The PDF exists and its page count is within bounds: at least the cover, the contents and
    one page per section of the HTML it was made from, at most :data:`MAX_PAGES`."""
    import pikepdf  # qpdf: reads the page tree without parsing the ~10,000 structure-tree objects

    pdf = folder / "board_pack.pdf"
    if not pdf.exists() or pdf.stat().st_size == 0:
        return False, "board_pack.pdf is missing or empty"
    try:
        with pikepdf.open(pdf, attempt_recovery=False) as document:  # a damaged file fails
            pages = len(document.pages)
    except pikepdf.PdfError as exc:
        return False, f"board_pack.pdf cannot be read as a PDF ({exc})"
    sections = _section_count(folder)
    low = max(MIN_PAGES, 2 + sections)
    ok = low <= pages <= MAX_PAGES
    return ok, f"{pages} pages for {sections} sections (allowed {low}-{MAX_PAGES})"


_VOID = {"img", "br", "meta", "link", "hr", "input", "col", "source", "wbr"}
_BAD_TEXT = {"nan", "none", "inf", "-inf", "null", "undefined"}


class _PackScanner(HTMLParser):
    """Walks board_pack.html and records, per section, its tables (rows with text), charts
    (image sources), explanation sentences (``p.empty``) and numeric cells that print a
    missing value."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.section = "(before the first section)"
        self.problems: list[str] = []
        self.sections: dict[str, int] = {}  # id -> content elements seen
        self._tables: list[dict] = []
        self._row_text: list[str] | None = None
        self._empty_text: list[str] | None = None
        self._table_index = 0

    def _classes(self, attrs) -> set[str]:
        return set((dict(attrs).get("class") or "").split())

    def handle_starttag(self, tag, attrs):
        classes = self._classes(attrs)
        attributes = dict(attrs)
        if tag == "section" and "section" in classes:
            self.section = attributes.get("id") or "(unnamed section)"
            self.sections[self.section] = 0
            self._table_index = 0
        if tag == "table" and "data" in classes:
            self._table_index += 1
            self._tables.append({"rows": 0, "index": self._table_index, "in_body": False})
        elif tag == "tbody" and self._tables:
            self._tables[-1]["in_body"] = True
        elif tag == "tr" and self._tables and self._tables[-1]["in_body"]:
            self._row_text = []
        elif tag == "img" and "chart" in classes:
            self._check_chart(attributes.get("src") or "")
        elif tag == "p" and "empty" in classes:
            self._empty_text = []
        if tag in ("table", "img", "p") and self.section in self.sections:
            self.sections[self.section] += 1
        if tag not in _VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag):
        if tag == "tr" and self._row_text is not None:
            if "".join(self._row_text).strip():
                self._tables[-1]["rows"] += 1
            self._row_text = None
        elif tag == "tbody" and self._tables:
            self._tables[-1]["in_body"] = False
        elif tag == "table" and self._tables:
            table = self._tables.pop()
            if table["rows"] == 0:
                self.problems.append(f"section {self.section!r}: table {table['index']} has no rows and no "
                                     f"explanation (print a sentence saying why instead of an empty table)")
        elif tag == "p" and self._empty_text is not None:
            if not "".join(self._empty_text).strip():
                self.problems.append(f"section {self.section!r}: an empty-content note has no text")
            self._empty_text = None
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._row_text is not None:
            self._row_text.append(data)
        if self._empty_text is not None:
            self._empty_text.append(data)
        # Numeric cells only: a name or segment value may legitimately read "None".
        if self.stack and "num" in self.stack[-1][1] and data.strip().lower() in _BAD_TEXT:
            self.problems.append(f"section {self.section!r}: prints {data.strip()!r} where a number or text belongs")

    def _check_chart(self, src: str) -> None:
        if not src.startswith("data:image/"):
            self.problems.append(f"section {self.section!r}: a chart has no embedded image")
            return
        if src.startswith("data:image/svg+xml;base64,"):
            svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8", "replace")
            if not re.search(r"<(path|rect|polyline|line|circle|use)\b", svg):
                self.problems.append(f"section {self.section!r}: a chart draws nothing")


def pack_content_problems(html: str) -> list[str]:
    """Empty tables, empty charts, unexplained gaps and printed NaN/None in the pack's HTML.

    An empty table or chart is allowed only as a sentence saying why (``<p class="empty">``
    with text) in its place; every section must show something.
    """
    scanner = _PackScanner()
    scanner.feed(html)
    scanner.close()
    problems = list(scanner.problems)
    problems += [f"section {name!r} is empty" for name, count in scanner.sections.items() if count == 0]
    return problems


def check_no_empty_content(folder: Path, config: Config) -> tuple[bool, str]:
    html = folder / "board_pack.html"
    if not html.is_file():
        return False, "board_pack.html is missing"
    problems = pack_content_problems(html.read_text(encoding="utf-8"))
    if problems:
        shown = problems[:8] + ([f"and {len(problems) - 8} more"] if len(problems) > 8 else [])
        return False, "; ".join(shown)
    return True, "every table has rows and every chart draws something, or a sentence says why"


CHECKS: list[tuple[str, Callable[[Path, Config], tuple[bool, str]]]] = [
    ("bridge reconciles", check_bridge_reconciles),
    ("ledger reconciles", check_ledger_reconciles),
    ("revenue accounted for", check_revenue_accounted),
    ("extract usable", check_extract_usable),
    ("no missing numbers", check_no_missing_numbers),
    ("no empty table or chart", check_no_empty_content),
    ("pdf page count", check_pdf),
]


def run_checks(folder: str | Path, config: Config) -> dict:
    folder = Path(folder)
    results = []
    for name, check in CHECKS:
        try:
            is_passed, detail = check(folder, config)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            is_passed, detail = False, f"could not run: {exc}"
        results.append({"name": name, "is_passed": bool(is_passed), "detail": detail})
    return {"is_deliverable": all(r["is_passed"] for r in results), "checks": results}
