"""`cxpipeline demo` end to end, as `make demo` runs it: the real console script, the real PDF.

The headline read back from the PDF (poppler's pdftotext) must carry the numbers of the ledger
table written in the same folder, and the folder must hold every artifact the README promises.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

CLI = Path(sys.executable).with_name("cxpipeline")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([str(CLI), "demo", "--customers", "1200", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done


def test_last_line_is_the_pdf_of_the_latest_complete_quarter(demo_run):
    out, done = demo_run
    last = done.stdout.strip().splitlines()[-1]
    assert Path(last) == out / "demo" / "2026-Q3" / "board_pack.pdf"  # demo data ends 2026-09-30
    assert Path(last).read_bytes().startswith(b"%PDF-")
    assert "Traceback" not in done.stderr and "metrics done" in done.stderr  # progress on stderr
    # Only the pipeline's own progress: no library talking about itself (pikepdf announced its
    # "C++ to Python logger bridge" on every render before the CLI quietened it).
    chatter = [line for line in done.stderr.splitlines()
               if not (line.startswith("[") or line.startswith("board pack: "))]
    assert chatter == [], chatter


def test_pdf_headline_equals_the_ledger_table(demo_run):
    out, _ = demo_run
    folder = out / "demo" / "2026-Q3"
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: `make` installs it")
    text = subprocess.run(["pdftotext", "-layout", str(folder / "board_pack.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())
    match = re.search(r"Gained ([\d,]+) customers worth £([\d,]+), lost ([\d,]+) customers worth £([\d,]+)", text)
    assert match, "headline sentence not found in the PDF"
    gained, gained_value, lost, lost_value = (int(g.replace(",", "")) for g in match.groups())
    ledger = pd.read_csv(folder / "ledger.csv").query("segment == 'all'").set_index("ledger_line")
    assert gained == ledger.loc["new", "count_customers"] + ledger.loc["reactivated", "count_customers"]
    assert lost == ledger.loc["lapsed", "count_customers"]
    assert gained_value == round(ledger.loc["new", "value"] + ledger.loc["reactivated", "value"])
    assert lost_value == round(ledger.loc["lapsed", "value"])
    headline = json.loads((folder / "metrics.json").read_text())["headline"]
    assert (gained, lost) == (headline["count_gained"], headline["count_lost"])
    # The summary's footnote and the data-quality page tie the period out against the source.
    bridge = pd.read_csv(folder / "bridge.csv").query("segment == 'all'").set_index("bridge_class")["value"]
    assert (f"Revenue of 2026-Q3 (£{round(bridge['current']):,}) equals the source's total for the period"
            in text)
    assert "Tie-out with the source, period by period" in text
    assert "periods start at midnight, UTC time" in text


def test_the_folder_holds_every_promised_artifact(demo_run):
    out, _ = demo_run
    folder = out / "demo" / "2026-Q3"
    for name in ("board_pack.pdf", "board_pack.html", "panel.parquet", "bridge.parquet", "bridge.csv",
                 "ledger.parquet", "ledger.csv", "scores.parquet", "metrics.json", "data_quality.json",
                 "checks.json", "manifest.json", "model_report.json"):
        assert (folder / name).is_file(), name
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("input_fingerprint", "config_hash", "row_counts", "excluded_by_reason", "versions", "stages",
                "notes", "report_timezone", "tie_out"):
        assert key in manifest, key
    assert set(manifest["stages"]) == {"extract", "metrics", "model", "render", "check"}
    import weasyprint

    from cxpipeline import __version__

    assert manifest["versions"]["weasyprint"] == weasyprint.__version__  # what rendered the pack
    assert manifest["versions"]["cxpipeline"] == __version__
    assert all(stage["seconds"] >= 0 for stage in manifest["stages"].values())
    assert json.loads((folder / "checks.json").read_text())["is_deliverable"] is True
    assert not list(folder.glob(".*.tmp"))
