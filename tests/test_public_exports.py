"""A real public export end to end: the CDNOW sample (tests/data, from the MIT-licensed lifetimes
package), read with the example config as it ships (examples/cdnow.yaml): a text file with no
header line, columns separated by runs of spaces, customer ids with leading zeros, yyyymmdd dates.
The pack's revenue must be the plain sum of the file's amounts, to the cent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cxpipeline.artifacts import read_json
from cxpipeline.config import load_config
from cxpipeline.pipeline import run_pack
from tests.conftest import pdf_pages

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "cdnow_sample_transactions.txt"


def _plain_reading() -> tuple[int, Decimal, set[str], dict[str, Decimal]]:
    """Rows, total, customers and revenue per quarter, read line by line with no pandas."""
    rows, total, customers, quarters = 0, Decimal(0), set(), {}
    for line in SAMPLE.read_text().splitlines():
        customer, _, day, _, amount = line.split()
        quarter = f"{day[:4]}-Q{(int(day[4:6]) - 1) // 3 + 1}"
        rows, total = rows + 1, total + Decimal(amount)
        customers.add(customer)
        quarters[quarter] = quarters.get(quarter, Decimal(0)) + Decimal(amount)
    return rows, total, customers, quarters


def test_cdnow_sample_as_shipped_gives_a_pack_that_ties_to_the_file(tmp_path):
    rows, total, customers, quarters = _plain_reading()
    config = load_config(ROOT / "examples" / "cdnow.yaml")
    config = config.model_copy(update={"output": config.output.model_copy(update={"root": str(tmp_path)})})
    result = run_pack(config)
    assert result.period.label == "1998-Q2"  # the last complete quarter of the file
    folder = result.folder
    dq = read_json(folder / "data_quality.json")
    assert (dq["rows_in"], dq["rows_used"]) == (rows, rows) == (6919, 6919)
    assert Decimal(str(dq["revenue_in"])) == Decimal(str(dq["revenue_used"])) == total
    assert len(customers) == 2357 and "00004" in customers  # ids keep their leading zeros
    headline = read_json(folder / "metrics.json")["headline"]
    assert Decimal(str(round(headline["revenue_current"], 2))) == quarters["1998-Q2"]
    assert Decimal(str(round(headline["revenue_previous"], 2))) == quarters["1998-Q1"]
    assert read_json(folder / "checks.json")["is_deliverable"] is True
    pages = pdf_pages(folder / "board_pack.pdf")
    assert "US$17,981" in pages[2] and "CDNOW" in pages[0]  # en_GB prints US dollars as US$
    assert any("dates read as yyyymmdd" in page for page in pages)
