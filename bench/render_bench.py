"""Render time of the demo board pack, phase by phase, per edition (issue 21's targets: board
edition <= 1 s, full pack <= 2.5 s).

Builds the demo pack once (``cxpipeline demo`` into a temporary folder, unless ``--folder``
points at an existing artifact folder), then renders it ``--repeats`` times in this process
and prints the median of each phase: context (tables -> plain dicts), HTML (Jinja2), and
the PDF as ``render_board_pack`` makes it (one WeasyPrint document written as tagged PDF/A-3a,
cxpipeline.report.render.render_archival_pdf, while a second process draws the charts;
``--charts-here`` draws them in the context phase instead), for the board edition and the
full pack. Imports are paid before the first measurement. The one collection of the render's
garbage that follows is timed apart ("gc after", not in the total); ``cpu`` is the total's CPU
time. The first render's figures are printed too:
like the one render of a CLI run or an Airflow task, it pays the lazy imports and first reads.

    .venv/bin/python bench/render_bench.py [--folder out/demo/2026-Q3] [--repeats 5] [--editions board full]
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
    parser.add_argument("--editions", nargs="+", default=["board", "full"], choices=["board", "full"])
    parser.add_argument("--charts-here", action="store_true",
                        help="draw the charts in this process while the context is built (as before 2026-12-05), "
                             "not in a second process during the layout")
    args = parser.parse_args()

    folder = args.folder
    if folder is None:
        out = Path(tempfile.mkdtemp(prefix="cx-render-bench-"))
        cli = Path(sys.executable).with_name("cxpipeline")
        pdf = subprocess.run([str(cli), "demo", "--out", str(out)], check=True, capture_output=True, text=True)
        folder = Path(pdf.stdout.strip().splitlines()[-1]).parent

    from cxpipeline.config import config_from_dict
    from cxpipeline.report.charts import ChartBook
    from cxpipeline.report.context import build_context
    from cxpipeline.report.pack import render_html
    from cxpipeline.report.render import collector_paused, render_archival_pdf

    base = config_from_dict({"pack_id": folder.parent.name})
    targets = {"board": 1.0, "full": 2.5}
    for edition in args.editions:
        config = base.model_copy(update={"output": base.output.model_copy(update={"edition": edition})})
        phases: dict[str, list[float]] = {"context": [], "html": [], "pdf": [], "total": [], "cpu": [],
                                          "gc after": []}
        pages, method, apart = 0, "", 0
        gc.collect()
        for _ in range(args.repeats):
            times0 = os.times()
            t0 = time.perf_counter()
            charts = ChartBook(deferred=not args.charts_here)  # as render_board_pack
            context = build_context(folder, config, charts=charts)
            charts.start()  # as render_board_pack
            t1 = time.perf_counter()
            html = render_html(context)
            t2 = time.perf_counter()
            with collector_paused():  # as render_board_pack: the render's garbage is collected after it
                rendered = render_archival_pdf(html, pack_id=config.pack_id, period=context["meta"]["period"],
                                               charts=charts)
                t3 = time.perf_counter()
            times1 = os.times()
            cpu = sum(times1[:4]) - sum(times0[:4])
            pages, method = rendered.count_pages, rendered.method
            apart = charts.drawn_apart
            del context, rendered
            t4 = time.perf_counter()
            gc.collect()
            t5 = time.perf_counter()
            del html
            gc.collect()
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0, cpu, t5 - t4)):
                phases[name].append(seconds)
        load = os.getloadavg()
        print(f"demo pack, {edition} edition: {pages} pages ({method}; {apart} charts drawn in a second process), "
              f"{args.repeats} renders, load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
        print("phase      median s   first s")
        for name, values in phases.items():
            print(f"{name:<10} {statistics.median(values):8.2f}  {values[0]:8.2f}")
        target = targets[edition]
        total = statistics.median(phases["total"])
        print(f"target <= {target:.1f} s: {'met' if total <= target else 'not met'} ({total:.2f} s)\n")
    print("(context includes drawing the charts only with --charts-here; pdf = layout and writing tagged PDF/A-3a as one WeasyPrint "
          "document; cpu = the total's CPU time; first = the first render, as a "
          "CLI run's or an Airflow task's one render: lazy imports, first reads, templates compiled if not "
          "cached on disk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
