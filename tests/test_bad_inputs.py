"""The bad-input corpus (tests/bad_inputs/): every case gives a clear error or is counted.

Each case is a folder with ``config.yaml`` and its data, listed in ``manifest.yaml`` with the
expected outcome:

* ``error``: ``cxpipeline validate`` (or ``run --period``) as a real subprocess exits 2 and
  stderr says what, where and how to fix it, with the expected phrases and no traceback;
* ``excluded``: validate succeeds and lists the excluded rows by reason; the pipeline
  (``run_pack``) records them in data_quality.json and the PDF's data-quality page shows them;
* ``used``: the pack renders, passes every check, and shows the expected text.

The CLI runs and the pipeline runs go in parallel (threads driving subprocesses; two spawned
worker processes for the pipeline) to keep the corpus fast.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from tests.bad_inputs.make_table import CORPUS, DOC, load_cases, updated_doc

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "cxpipeline"
CASES = load_cases()
BY_NAME = {case["case"]: case for case in CASES}
PIPELINE_CASES = [c["case"] for c in CASES if c.get("pipeline_period")]
QUICK_PAGES = ("summary", "bridge", "data-quality", "definitions")


def _argv(case: dict, out_root: Path) -> list[str]:
    argv = [case["command"], "--config", str(CORPUS / case["case"] / "config.yaml")]
    if case["command"] in ("run", "send"):
        argv += ["--period", case["period"], "--out", str(out_root / case["case"])]
    return argv + [str(a) for a in case.get("args", [])]


def _build_argv(case: dict, out_root: Path) -> list[str]:
    """A case with ``build``: that config's pack is built (cxpipeline run) before the case runs."""
    return ["run", "--config", str(CORPUS / case["case"] / case["build"]), "--period", case["period"],
            "--out", str(out_root / case["case"])]


def _tamper(case: dict, out_root: Path) -> None:
    """``tamper: swap_pdf``: another PDF copied over the built, checked one."""
    if case.get("tamper") == "swap_pdf":
        pdf = out_root / case["case"] / "case" / case["period"] / "board_pack.pdf"
        pdf.write_bytes(pdf.read_bytes() + b"\n% a different PDF\n")


# send --dry-run checks the SMTP settings are complete (nothing is sent: the pack is refused).
SMTP_ENV = {"CXPIPELINE_SMTP_HOST": "127.0.0.1", "CXPIPELINE_SMTP_FROM": "reports@example.com"}


def _entry_point(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed ``cxpipeline`` script, exactly as a user runs it."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # warnings must not leak to the user either
    return subprocess.run([str(CLI), *argv], capture_output=True, text=True, timeout=180, env=env, cwd=cwd)


def run_cli_forked(jobs: list[tuple[str, list[str]]], cwd: str, parallel: int = 2) -> dict[str, tuple]:
    """Worker: ``cxpipeline <argv>`` for many cases, each in its own forked process.

    Runs in a freshly spawned process that imports the CLI once; every case is then a
    ``fork()`` running ``cxpipeline.cli.main`` with its own stdout/stderr files and exit code
    (the same code path as the entry point, without paying the pandas import 44 times).
    """
    import tempfile
    import warnings

    import cxpipeline.cli
    import cxpipeline.sources.files  # noqa: F401 - imported once, before forking

    warnings.simplefilter("default")
    os.environ.update(SMTP_ENV)
    os.chdir(cwd)
    results: dict[str, tuple] = {}
    running: dict[int, tuple[str, str, str]] = {}

    def reap(block: bool) -> None:
        pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        if pid:
            name, out, err = running.pop(pid)
            with open(out, encoding="utf-8") as o, open(err, encoding="utf-8") as e:
                results[name] = (os.waitstatus_to_exitcode(status), o.read(), e.read())

    folder = tempfile.mkdtemp(prefix="cli-")
    for name, argv in jobs:
        while len(running) >= parallel:
            reap(block=True)
        out, err = os.path.join(folder, f"{name}.out"), os.path.join(folder, f"{name}.err")
        pid = os.fork()
        if pid == 0:  # the child: one CLI invocation
            code = 70
            try:
                os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
                os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
                sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
                logging.root.handlers.clear()
                code = cxpipeline.cli.main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - shown as the test's failure
                import traceback

                traceback.print_exc()
                code = 70
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        running[pid] = (name, out, err)
    while running:
        reap(block=True)
    return results


# A few cases also go through the installed script as a real subprocess (one per outcome
# kind and one per command), proving the entry point, exit status and stderr end to end.
ENTRY_POINT_CASES = ["wrong_encoding", "config_unknown_key", "period_before_data", "duplicate_lines",
                     "config_duplicate_key", "logo_symlink_system_file"]


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    out_root = tmp_path_factory.mktemp("cli")
    jobs = [(case["case"], _argv(case, out_root)) for case in CASES]
    builds = [(case["case"], _build_argv(case, out_root)) for case in CASES if case.get("build")]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        built = pool.submit(run_cli_forked, builds, str(out_root)).result()
        for name, (code, _, err) in built.items():
            assert code == 0, (name, err)
            _tamper(BY_NAME[name], out_root)
        forked = pool.submit(run_cli_forked, jobs, str(out_root))
        with ThreadPoolExecutor(max_workers=2) as threads:
            real = {name: threads.submit(_entry_point, _argv(BY_NAME[name], out_root / "real"), out_root)
                    for name in ENTRY_POINT_CASES}
            results = {name: subprocess.CompletedProcess([name], *values) for name, values in forked.result().items()}
            for name, future in real.items():
                results[f"entry:{name}"] = future.result()
    return results


def run_case_pipeline(name: str, out_root: str) -> dict:
    """Worker: run_pack for one corpus case; return what the tests inspect (picklable)."""
    from pypdf import PdfReader

    from cxpipeline.artifacts import read_json
    from cxpipeline.config import load_config
    from cxpipeline.pipeline import run_pack

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logging.getLogger("cxpipeline").addHandler(handler)
    case = BY_NAME[name]
    from cxpipeline.report import context

    all_pages = list(context.PAGES)
    if case["outcome"] == "excluded":
        # Speed: an exclusion case needs the real data-quality page, not all ~16 analysis
        # pages; the "used" edge cases render the full pack. (Restored below: workers are reused.)
        context.PAGES[:] = [p for p in all_pages if p.id in QUICK_PAGES]
    try:
        config = load_config(CORPUS / name / "config.yaml")
        result = run_pack(config, case["pipeline_period"], Path(out_root) / name)
    finally:
        context.PAGES[:] = all_pages
        logging.getLogger("cxpipeline").removeHandler(handler)
    pages = [page.extract_text() or "" for page in PdfReader(result.pdf_path).pages]
    return {
        "formula_cells": _formula_cells(result.folder),
        "published_found": _published_found(result.folder, case.get("published_lacks", [])),
        "data_quality": read_json(result.folder / "data_quality.json"),
        "checks": read_json(result.folder / "checks.json"),
        "pages": pages,
        "html": (result.folder / "board_pack.html").read_text(encoding="utf-8"),
        "warnings": records,
    }


def _formula_cells(folder: Path) -> list[str]:
    """CSV cells a spreadsheet would evaluate (OWASP CSV injection): must be none."""
    import csv
    import re

    number = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
    found = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                found += [f"{path.name}: {cell!r}" for cell in row
                          if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not number.match(cell)]
    return found


def _published_found(folder: Path, needles: list[str]) -> list[str]:
    """Which of ``needles`` appear in any published file (Parquet cells, PDF text, other text)."""
    if not needles:
        return []
    import pandas as pd
    from pypdf import PdfReader

    from cxpipeline.publish import pack_files

    found = []
    for name in pack_files(folder):
        path = folder / name
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            text = " ".join(frame.columns) + frame.astype("string").fillna("").to_csv(index=False)
        elif path.suffix == ".pdf":
            text = "".join("".join((p.extract_text() or "").split()) for p in PdfReader(path).pages)
        elif path.suffix in (".png", ".jpg", ".jpeg"):
            continue  # the email's trend chart and logo: pixels of periods and numbers, no ids or names
        else:
            text = path.read_text(encoding="utf-8")
        found += [f"{name}: {needle}" for needle in needles if needle in text]
    return found


@pytest.fixture(scope="module")
def pipeline_results(tmp_path_factory) -> dict[str, dict]:
    out_root = tmp_path_factory.mktemp("packs")
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(run_case_pipeline, name, str(out_root)) for name in PIPELINE_CASES}
        results = {}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - reported by that case's test, not by all
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return results


def test_corpus_is_large_and_complete():
    folders = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert sorted(BY_NAME) == folders, "every folder is in the manifest and vice versa"
    assert len(CASES) >= 25
    assert {c["outcome"] for c in CASES} == {"error", "excluded", "used"}
    for case in CASES:
        assert case["outcome"] != "error" or case.get("expect"), case["case"]
        assert case["outcome"] != "excluded" or case.get("excluded"), case["case"]


def test_reliability_doc_matches_manifest():
    text = DOC.read_text(encoding="utf-8")
    assert text == updated_doc(text, CASES), "run: .venv/bin/python tests/bad_inputs/make_table.py"


@pytest.mark.parametrize("name", [c["case"] for c in CASES] + [f"entry:{n}" for n in ENTRY_POINT_CASES])
def test_cli(name, cli_results):
    case = BY_NAME[name.removeprefix("entry:")]
    done = cli_results[name]
    assert "Traceback" not in done.stderr and "Warning:" not in done.stderr, done.stderr
    if case["outcome"] == "error":
        assert done.returncode == 2, (done.returncode, done.stderr)
        message = done.stderr[done.stderr.index("error: "):]
        assert "\n  where: " in message and "\n  fix:   " in message, message
        for phrase in case["expect"]:
            assert phrase in message, (phrase, message)
        return
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("ok")
    for reason, rows in (case.get("excluded") or {}).items():
        if reason == "after the reporting period":
            continue  # depends on the period: only the pipeline knows it
        assert f"excluded - {reason}: {rows:,} rows" in done.stdout, done.stdout
    for note in case.get("notes", []):  # what was read differently is said, never silent
        assert f"note: {note}" in done.stdout, (note, done.stdout)


def _data_quality_page(pages: list[str]) -> str:
    found = [p for p in pages if "Excluded rows by reason" in p or "No rows were excluded" in p]
    assert len(found) == 1, "exactly one data-quality page"
    return found[0]


@pytest.mark.parametrize("name", PIPELINE_CASES)
def test_pipeline(name, pipeline_results):
    case = BY_NAME[name]
    result = pipeline_results[name]
    assert "error" not in result, result.get("error")
    dq = result["data_quality"]
    assert result["checks"]["is_deliverable"] is True, result["checks"]
    by_reason = {item["reason"]: item["rows"] for item in dq["excluded_by_reason"]}
    assert by_reason == (case.get("excluded") or {}), "exactly the expected exclusions, nothing else"
    assert dq["rows_in"] == dq["rows_used"] + dq["rows_excluded"]
    for note in case.get("notes", []):
        assert any(text.startswith(note) for text in dq["notes"]), (note, dq["notes"])
    page = " ".join(_data_quality_page(result["pages"]).split())
    if by_reason:
        for reason, rows in by_reason.items():
            shown = reason[:1].upper() + reason[1:]
            assert f"{shown} {rows}" in page, (shown, page)
        assert f"Total excluded {dq['rows_excluded']}" in page
    else:
        assert "No rows were excluded" in page
    assert "Reconciles to the cent" in page
    # Every CSV artifact is spreadsheet-safe; a masked pack publishes no id or name.
    assert result["formula_cells"] == [], result["formula_cells"]
    assert result["published_found"] == [], result["published_found"]
    # pypdf breaks long cells into lines at odd places: compare without any whitespace.
    squashed = "".join("".join(result["pages"]).split())
    for phrase in case.get("pdf_contains", []):
        assert "".join(phrase.split()) in squashed, phrase


def test_hostile_segment_values_are_text_not_markup(pipeline_results):
    """<script>/<style>/<img file://>/<link http://> in the data arrive as escaped text: the
    HTML carries entities, nothing was fetched or refused (no element was ever created)."""
    result = pipeline_results["html_in_segment_values"]
    assert "error" not in result, result.get("error")
    html = result["html"]
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<style>body{display:none}" not in html
    assert "<img src='file:///etc/passwd'>" not in html and "<link rel=stylesheet" not in html
    assert not [w for w in result["warnings"] if "refused to load" in w], result["warnings"]
    assert all("root:" not in page for page in result["pages"]), "no local file was embedded"


def test_hostile_customer_names_never_reach_the_pack_as_markup(pipeline_results):
    result = pipeline_results["html_in_customer_names"]
    assert "error" not in result, result.get("error")
    assert "<iframe" not in result["html"] and "<h1>Forged</h1>" not in result["html"]
    assert "<b onmouseover" not in result["html"] and "<img src=http" not in result["html"]
    assert not [w for w in result["warnings"] if "refused to load" in w], result["warnings"]


if __name__ == "__main__":  # pragma: no cover - convenience
    sys.exit(pytest.main([__file__, "-q"]))
