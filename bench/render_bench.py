"""Render time of the demo board pack, phase by phase (issue 5's target: <= 2 s).

Builds the demo pack once (``cxpipeline demo`` into a temporary folder, unless ``--folder``
points at an existing artifact folder), then renders it ``--repeats`` times in this process
and prints the median of each phase: context (tables -> plain dicts, charts), HTML (Jinja2),
layout (WeasyPrint) and PDF writing. Imports are paid before the first measurement.
Layout and PDF writing run with the garbage collector paused, as ``render_board_pack`` does;
the one collection of the render's garbage that follows is timed apart ("gc after", not in
the total), and ``cpu`` is the total's CPU time (less sensitive to other load than wall time).

    .venv/bin/python bench/render_bench.py [--folder out/demo/2026-Q3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="an existing artifact folder (default: build the demo pack)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    folder = args.folder
    if folder is None:
        out = Path(tempfile.mkdtemp(prefix="cx-render-bench-"))
        cli = Path(sys.executable).with_name("cxpipeline")
        pdf = subprocess.run([str(cli), "demo", "--out", str(out)], check=True, capture_output=True, text=True)
        folder = Path(pdf.stdout.strip().splitlines()[-1]).parent

    from cxpipeline.config import config_from_dict
    from cxpipeline.report.context import build_context
    from cxpipeline.report.pack import render_document, render_html
    from cxpipeline.report.render import collector_paused

    config = config_from_dict({"pack_id": folder.parent.name})
    phases: dict[str, list[float]] = {"context": [], "html": [], "layout": [], "pdf": [], "total": [],
                                      "cpu": [], "gc after": []}
    pages = 0
    gc.collect()
    for _ in range(args.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        context = build_context(folder, config)
        t1 = time.perf_counter()
        html = render_html(context)
        t2 = time.perf_counter()
        with collector_paused():  # as render_board_pack
            document = render_document(html)
            t3 = time.perf_counter()
            document.write_pdf()
            t4 = time.perf_counter()
        cpu = time.process_time() - c0
        pages = len(document.pages)
        del document, context, html
        t5 = time.perf_counter()
        gc.collect()
        t6 = time.perf_counter()
        for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, cpu, t6 - t5)):
            phases[name].append(seconds)
    load = os.getloadavg()
    print(f"demo pack: {pages} pages, {args.repeats} renders, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} cores")
    print("phase     median s")
    for name, values in phases.items():
        print(f"{name:<9} {statistics.median(values):8.2f}")
    target = 2.0
    total = statistics.median(phases["total"])
    print(f"target <= {target:.1f} s: {'met' if total <= target else 'not met'} ({total:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
