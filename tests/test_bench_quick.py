"""``bench/run.py --quick`` runs end to end on a tiny demo (what CI exercises)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_prints_the_table(tmp_path):
    result_file = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(result_file), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = completed.stdout
    assert "| rows | customers | extract s / MB | metrics s / MB" in table
    assert "ratio to ref" in table and "machine: " in table

    data = json.loads(result_file.read_text())
    assert data["machine"]["nproc"] >= 1 and data["machine"]["ram_gib"] > 0
    (result,) = data["results"]
    assert 40_000 < result["rows"] < 60_000
    stages = result["stages"]
    for stage in ("extract", "metrics", "render", "pack", "reference", "floor"):
        assert stages[stage]["seconds"] > 0, stage
        # Each stage ran in its own process: a Python process with pandas loaded is > 50 MB.
        assert 50 < stages[stage]["peak_rss_mb"] < 4000, stage
    # The whole pack does at least the work of its parts' extract and metrics.
    assert stages["pack"]["seconds"] > stages["extract"]["seconds"]
    assert result["extract_metrics"] == stages["extract"]["seconds"] + stages["metrics"]["seconds"]
    assert result["ratio_to_reference"] > 0
    # The pack really was built: a PDF in the artifact folder of the "pack" run.
    assert list(tmp_path.glob("50k-0/bench_pack/2026-Q3/board_pack.pdf"))
