"""Benchmark: 12 unit packs of the demo against the company pack alone (prints figures).

Usage::

    .venv/bin/python bench/units_bench.py [--customers 5000] [--workers 2] [--edition board]

The company pack (``run_pack``, every page) is timed alone; then its 12 unit packs (4 regions x
3 channels, a two-level unit) are built from its extract by ``--workers`` processes at once, as
Airflow's mapped ``unit_pack`` tasks run on a machine with that many slots. Prints the wall
times, their ratio (the target: at most 3x the company pack) and each unit's own time.
``--edition board`` builds the unit packs as the board edition (``units.edition: board``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from cxpipeline.config import config_from_dict
from cxpipeline.pipeline import pack_folder, run_pack
from cxpipeline.units import build_unit_pack, find_units


def _config(customers: int, root: str, edition: str | None = None):
    return config_from_dict({"pack_id": "bench_units", "source": {"kind": "demo", "customers": customers},
                             "output": {"root": root}, "units": {"by": ["region", "channel"], "edition": edition}},
                            origin="bench/units_bench.py")


def _build(args):
    customers, root, period, unit, edition = args
    from cxpipeline.periods import parse_period

    return build_unit_pack(_config(customers, root, edition), parse_period(period), unit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--edition", choices=["board", "full"], default=None,
                        help="units.edition: the unit packs' edition (default: the company's, full)")
    args = parser.parse_args()
    os.environ.setdefault("CXPIPELINE_RENDER_PROCESSES", "1")  # one process per unit task
    root = tempfile.mkdtemp(prefix="cx-units-bench-")
    config = _config(args.customers, root)
    t0 = time.perf_counter()
    company = run_pack(config)
    company_seconds = time.perf_counter() - t0
    units = [u for u in find_units(config, pack_folder(config, company.period)) if u.values["region"] != "International"]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(_build, [(args.customers, root, company.period.label, u, args.edition) for u in units]))
    units_seconds = time.perf_counter() - t0
    edition = args.edition or "full, the company pack's"
    print(f"demo {args.customers} customers, period {company.period.label}, {os.cpu_count()} cores, "
          f"{args.workers} workers, unit packs' edition: {edition}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"company pack alone: {company_seconds:.1f} s")
    print(f"{len(results)} unit packs ({args.workers} at a time): {units_seconds:.1f} s")
    print(f"company + units: {company_seconds + units_seconds:.1f} s = "
          f"{(company_seconds + units_seconds) / company_seconds:.2f}x the company pack (target <= 3x)")
    for result in results:
        print(f"  {result['unit']:<24} {result['count_customers']:>5} customers {result['seconds']:>6.1f} s")


if __name__ == "__main__":
    main()
