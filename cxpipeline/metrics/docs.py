"""Generate ``docs/metrics.md`` from the metric registry: ``python -m cxpipeline.metrics.docs``.

``--check`` exits with status 1 when the committed file differs from what the registry says
(the test suite runs the same comparison), so the documentation cannot drift from the code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cxpipeline.metrics.registry import METRICS
from cxpipeline.metrics.rfm import RFM_GRID

__all__ = ["DOC_PATH", "render_markdown", "main"]

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

_INTRO = """\
# Metrics

Generated from `cxpipeline/metrics/metrics.yaml` by `python -m cxpipeline.metrics.docs`; do not
edit by hand (a test fails when this file is out of date). The same registry gives the labels
printed in the board pack and the email. `{customers}` in a label stands for the configured
terminology (customers, donors, members, ...).

## Conventions

- P is the reporting period `[start, end)`, P-1 the comparison period (previous period or the
  same period a year earlier). Revenue is net of returns; money is rounded to the cent.
- *Value* of a customer is trailing 12-month net revenue at a period boundary.
- Every table that is broken down by segment has `segment` (`all` for the overall row, else the
  attribute, e.g. `region`) and `segment_value`; customers without a value are `Unknown`, so the
  rows of a segment add up to the overall row in every count and money column. Two derived
  dimensions are used beside the configured attributes: `value_tier` (tier at the start of P,
  fixed; `New` / `Won back` for customers gained in P, `Not in base at start` otherwise) and
  `rfm_segment` (at the end of P; `No purchase` without one).
- A ratio whose denominator is zero is written as 0 and its denominator is always in the same
  table (`count_*` columns); the pack prints "n/a" for it.
- Tables ending in `_customers` have one row per customer, so any number can be traced back.
- The trend (`trend_ledger`, `trend_bridge`, `trend_span`) covers the last N periods ending with P
  (config `trend.periods`, default 8). Per period it holds exactly the overall rows
  (`segment == 'all'`) of that period's own `ledger` and `bridge` tables, under the configured
  lapse rule and comparison basis, computed in one pass over the run's panel;
  `tests/test_trend.py` builds the packs of two past periods and compares them to the cent.
  A period is left out when the data does not cover its comparison period (or, under the
  personal lapse rule, when the extract did not measure cadence at its boundaries);
  `trend_span` records how many periods were asked for, shown, and why fewer.

## RFM grid

Segment by recency score R (rows) and FM score (columns) = round-half-up((F + M) / 2); scores are
quintiles of the percentile rank among customers with a purchase before the end of P (ties
share a score). This is the common R x F segment map with the single cell R=1, FM=1 named Lost.

"""


def _grid() -> str:
    lines = ["| R \\ FM | 1 | 2 | 3 | 4 | 5 |", "|---|---|---|---|---|---|"]
    for r in range(5, 0, -1):
        lines.append(f"| {r} | " + " | ".join(RFM_GRID[r - 1]) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    """The full text of ``docs/metrics.md``."""
    rows = ["## Metric registry", "",
            "| name | label | definition | unit | code | test |", "|---|---|---|---|---|---|"]
    for metric in METRICS.values():
        rows.append(f"| `{metric.name}` | {_cell(metric.label)} | {_cell(metric.definition)} | {metric.unit} "
                    f"| `{metric.module}` | `{metric.test}` |")
    return _INTRO + _grid() + "\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/metrics.md is out of date")
    parser.add_argument("--path", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run python -m cxpipeline.metrics.docs", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path} ({len(METRICS)} metrics)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
