"""Benchmark the file source's reading of a real-looking CSV export.

Usage::

    .venv/bin/python bench/read_bench.py                  # 1M lines, 3 repeats
    .venv/bin/python bench/read_bench.py --rows 200000 --repeats 1

The file (written once under ``bench/cache/``, gitignored) is an invoice-line export with no
order id, day-first dates with times (``03/01/2024 14:05``), amounts with thousands separators
(``"3,527.60"``), identical rows and zero amounts: every rule of docs/reliability.md, "Reading a
real export", has work to do. Each repeat runs :func:`cxpipeline.sources.files.load_file_source`
in a fresh child process and prints its wall time, lines per second and peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "cache"


def write_export(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    stamps = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 24 * 60, rows), unit="min")
    amounts = np.round(rng.gamma(1.2, 300, rows), 2)
    amounts[rng.random(rows) < 0.01] = 0.0
    frame = pd.DataFrame({
        "Date": stamps.strftime("%d/%m/%Y %H:%M"),
        "Customer": rng.integers(100_000, 400_000, rows).astype(str),
        "Amount": [f"{a:,.2f}" for a in amounts],
        "Country": rng.choice(["United Kingdom", "France", "Germany", "Spain"], rows),
    })
    frame = pd.concat([frame, frame.sample(rows // 200, random_state=1)], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def child(path: str) -> None:
    from cxpipeline.config import FileSource
    from cxpipeline.sources.files import load_file_source

    source = FileSource(path=path, columns={"customer_id": "Customer", "ordered_at": "Date", "revenue": "Amount"},
                        segment_columns={"country": "Country"})
    started = time.perf_counter()
    data = load_file_source(source)
    seconds = time.perf_counter() - started
    rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"seconds": seconds, "rows": data.quality.rows_in, "rss_mb": rss / 1024,
                      "notes": data.quality.notes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    path = CACHE / f"export_{args.rows}.csv"
    if not path.is_file():
        print(f"# writing {path} ...", file=sys.stderr, flush=True)
        write_export(path, args.rows)
    runs = []
    for _ in range(args.repeats):
        done = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True,
                              check=True, cwd=ROOT)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    seconds = statistics.median(r["seconds"] for r in runs)
    rows = runs[0]["rows"]
    print(f"file: {path.name} ({path.stat().st_size / 1e6:.0f} MB, {rows:,} lines)")
    print(f"load_file_source: median {seconds:.2f} s over {len(runs)} run(s) "
          f"({rows / seconds:,.0f} lines/s); peak RSS {max(r['rss_mb'] for r in runs):,.0f} MB")
    for note in runs[0]["notes"]:
        print(f"  note: {note}")


if __name__ == "__main__":
    main()
