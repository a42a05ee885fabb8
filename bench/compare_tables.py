"""Are the demo pack's metric tables byte-identical between two versions of the code?

Usage::

    .venv/bin/python bench/compare_tables.py --before 1326184          # against a git revision
    .venv/bin/python bench/compare_tables.py --before 1326184 --after HEAD

Each version is checked out into a temporary git worktree and runs the pipeline's extract and
metrics stages on the demo retailer (the same seed and period) with the venv's Python; then every
metric table (``*.parquet`` and ``*.csv`` written by the metrics stage, and ``metrics.json``) is
compared byte by byte. A refactor that changes no behaviour prints "identical" for every file.
Exit status 1 if any file differs or exists on one side only.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the checked-out version: extract + metrics for the demo's latest quarter.
_BUILD = """
import sys
from cxpipeline.config import config_from_dict
from cxpipeline.periods import parse_period
from cxpipeline.pipeline import compute_metrics, extract
config = config_from_dict({"pack_id": "demo"})
period = parse_period("2026-Q3")
extract(config, period, sys.argv[1])
compute_metrics(config, period, sys.argv[1])
"""


def build(revision: str | None, out: Path) -> Path:
    """Metric tables of ``revision`` (None: the working tree) under ``out``; returns the folder."""
    with tempfile.TemporaryDirectory(prefix="cx-compare-") as tmp:
        source = ROOT
        if revision is not None:
            source = Path(tmp) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(source), revision],
                           check=True)
        try:
            env = {"PYTHONPATH": str(source), "PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"}
            subprocess.run([sys.executable, "-c", _BUILD, str(out)], check=True, cwd=source, env=env)
        finally:
            if revision is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(source)], check=True)
    return out / "demo" / "2026-Q3"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--after", default=None, help="git revision (default: the working tree)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cx-tables-") as tmp:
        before = build(args.before, Path(tmp) / "before")
        after = build(args.after, Path(tmp) / "after")
        # The metrics stage's outputs: its tables (Parquet + CSV) and metrics.json. The extract's
        # own files are compared too, except the manifest (it records timings).
        names = sorted({p.name for p in [*before.iterdir(), *after.iterdir()]
                        if p.suffix in (".parquet", ".csv") or p.name == "metrics.json"})
        different = []
        for name in names:
            a, b = before / name, after / name
            if not a.exists() or not b.exists():
                different.append(name)
                print(f"only in {'after' if b.exists() else 'before'}: {name}")
            elif not filecmp.cmp(a, b, shallow=False):
                different.append(name)
                print(f"DIFFERENT: {name}")
        print(f"{len(names) - len(different)} of {len(names)} files identical "
              f"({args.before} -> {args.after or 'working tree'})")
        return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
