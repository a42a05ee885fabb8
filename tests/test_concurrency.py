"""Concurrency: one run per pack and period at a time; parallel periods; identical reruns.

Real processes throughout: ``cxpipeline run`` subprocesses, and a helper process holding the
lock. The backfill of 8 periods runs as 8 concurrent ``cxpipeline run`` processes (the Airflow
LocalExecutor runs each task as such a process; the real-scheduler test of the DAG lives in
tests/test_airflow_scheduler.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cxpipeline.locking import LOCK_NAME, PackLockedError, pack_lock

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "cxpipeline"

# Six customers buying in 2024; revenue per month is known exactly from these rows.
ROWS = [
    ("C1", "2024-01-05", 100.00), ("C2", "2024-01-20", 40.00), ("C3", "2024-02-03", 75.50),
    ("C1", "2024-02-14", 60.00), ("C4", "2024-03-09", 20.25), ("C2", "2024-03-30", 55.00),
    ("C5", "2024-04-11", 80.00), ("C1", "2024-04-28", -15.00), ("C3", "2024-05-06", 33.33),
    ("C6", "2024-05-19", 120.00), ("C2", "2024-06-02", 44.44), ("C4", "2024-06-25", 10.00),
    ("C5", "2024-07-07", 66.00), ("C1", "2024-07-31", 70.00), ("C6", "2024-08-15", 25.00),
    ("C3", "2024-08-16", 12.00), ("C2", "2024-09-01", 90.00), ("C5", "2024-09-29", 30.00),
    ("C1", "2024-10-02", 5.00),
]


def write_case(folder: Path, *, factor: float = 1.0, pack_id: str = "conc") -> Path:
    """A monthly file-source pack over ROWS (amounts x factor); returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["order,customer,date,amount,region"]
    for i, (customer, day, amount) in enumerate(ROWS):
        region = "North" if customer in ("C1", "C3", "C5") else "South"
        lines.append(f"o{i},{customer},{day},{amount * factor:.2f},{region}")
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(
        f"pack_id: {pack_id}\n"
        "source:\n  kind: file\n  path: data.csv\n"
        "  columns: {order_id: order, customer_id: customer, ordered_at: date, revenue: amount}\n"
        "  segment_columns: {region: region}\n"
        "period: {type: month}\nsegments: [region]\noutput: {root: out}\n"
    )
    return folder / "config.yaml"


def month_revenue(month: str, factor: float = 1.0) -> float:
    return round(sum(round(a * factor, 2) for _, day, a in ROWS if day.startswith(month)), 2)


def run_cli(config: Path, period: str, out: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(CLI), "run", "--config", str(config), "--period", period, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_consistent_pack(folder: Path, period: str, revenue: float) -> None:
    """The folder holds the artifacts of exactly one complete, checked run of ``period``."""
    manifest = json.loads((folder / "manifest.json").read_text())
    dq = json.loads((folder / "data_quality.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    checks = json.loads((folder / "checks.json").read_text())
    assert manifest["period"] == metrics["period"] == period
    assert manifest["input_fingerprint"] == dq["input_fingerprint"]
    assert metrics["headline"]["revenue_current"] == pytest.approx(revenue, abs=0.005)
    assert checks["is_deliverable"] is True
    assert checks["pdf_sha256"] == sha256(folder / "board_pack.pdf"), "the checked PDF is the PDF on disk"
    assert not list(folder.glob(".*.tmp")), "no temporary files left behind"
    from pypdf import PdfReader

    assert period in (PdfReader(folder / "board_pack.pdf").pages[0].extract_text() or "")


HOLDER = """
import sys
from cxpipeline.locking import pack_lock
with pack_lock(sys.argv[1], timeout=0):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_lock_held_by_another_process_blocks_then_frees_when_it_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(PackLockedError) as caught:
            with pack_lock(tmp_path, timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3
        message = str(caught.value)
        assert f"pid {holder.pid}" in message and "where:" in message and "fix:" in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel drops the lock of a killed process: no stale lock, no manual cleanup.
    with pack_lock(tmp_path, timeout=0):
        assert (tmp_path / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")


def test_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    order: list[str] = []
    with pack_lock(tmp_path, timeout=0):
        with pack_lock(tmp_path, timeout=0):  # a stage inside run_pack re-enters
            order.append("nested")

        def other():
            with pack_lock(tmp_path, timeout=5):
                order.append("other thread")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        order.append("outer done")
    thread.join(timeout=5)
    assert order == ["nested", "outer done", "other thread"]


def test_two_runs_of_the_same_period_do_not_interleave(tmp_path):
    """Run A holds the lock; run B (other data, same pack and period) waits for all of A and
    the folder ends with B's complete, consistent pack — never a mix of the two."""
    config_a = write_case(tmp_path / "a", factor=1.0)
    config_b = write_case(tmp_path / "b", factor=2.0)
    out = tmp_path / "out"
    lock = out / "conc" / "2024-06" / LOCK_NAME
    run_a = run_cli(config_a, "2024-06", out)
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().startswith(f"pid {run_a.pid} ")):
        assert run_a.poll() is None, run_a.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run_b = run_cli(config_b, "2024-06", out)
    holders: list[str] = []  # distinct holders in the order seen
    while run_b.poll() is None:
        text = lock.read_text()
        holder = text.split(" ")[1] if text.startswith("pid ") else ""
        if holder and (not holders or holders[-1] != holder):
            holders.append(holder)
        time.sleep(0.01)
    # A held the lock until its run was complete, then B: never back and forth.
    assert holders == [str(run_a.pid), str(run_b.pid)], holders
    a_out, a_err = run_a.communicate()
    assert run_a.returncode == 0, a_err
    b_out, b_err = run_b.communicate(timeout=180)
    assert run_b.returncode == 0, b_err
    assert lock.read_text().startswith(f"pid {run_b.pid} ")
    assert_consistent_pack(out / "conc" / "2024-06", "2024-06", month_revenue("2024-06", 2.0))


BACKFILL = ["2024-02", "2024-03", "2024-04", "2024-05", "2024-06", "2024-07", "2024-08", "2024-09"]


@pytest.mark.slow  # 8 full packs rendered at once: ~70 s of CPU
def test_backfill_of_eight_periods_in_parallel_writes_eight_correct_packs(tmp_path):
    config = write_case(tmp_path / "case")
    out = tmp_path / "out"
    runs = {period: run_cli(config, period, out) for period in BACKFILL}  # all at once
    for period, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, (period, stderr)
        assert stdout.strip().endswith(f"conc/{period}/board_pack.pdf")
    # (hidden: .pack_config.json, the record of the config that owns the pack)
    folders = sorted(p.name for p in (out / "conc").iterdir() if not p.name.startswith("."))
    assert folders == BACKFILL
    for period in BACKFILL:
        assert_consistent_pack(out / "conc" / period, period, month_revenue(period))


def test_rerun_of_the_same_period_and_config_writes_identical_metrics_files(tmp_path):
    from cxpipeline.config import load_config
    from cxpipeline.pipeline import compute_metrics, extract, pack_folder
    from cxpipeline.periods import parse_period

    config = load_config(write_case(tmp_path / "case"))
    period = parse_period("2024-06")
    folder = pack_folder(config, period, tmp_path / "out")

    def snapshot() -> dict[str, str]:
        names = [p for p in folder.iterdir() if p.suffix in (".parquet", ".csv") or p.name in (
            "metrics.json", "data_quality.json")]
        return {p.name: sha256(p) for p in sorted(names)}

    extract(config, period, tmp_path / "out")
    compute_metrics(config, period, tmp_path / "out")
    first = snapshot()
    extract(config, period, tmp_path / "out")
    compute_metrics(config, period, tmp_path / "out")
    assert snapshot() == first
    assert {"bridge.parquet", "bridge.csv", "ledger.parquet", "ledger.csv", "panel.parquet", "metrics.json"} <= set(first)
