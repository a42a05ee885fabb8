"""Money, count and percentage formatting (Babel) and the preview command."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from pypdf import PdfReader

from cxpipeline.cli import main
from cxpipeline.report import Formatter

M = "\u2212"
NB = "\u00a0"


@pytest.mark.parametrize(
    ("locale", "currency", "value", "full", "compact"),
    [
        ("en_GB", "GBP", 1234567.49, "£1,234,567", "£1.2m"),
        ("en_GB", "GBP", 23456.0, "£23,456", "£23.5k"),
        ("en_GB", "GBP", -512.4, f"{M}£512", f"{M}£512"),
        ("en_GB", "GBP", 2.3e9, "£2,300,000,000", "£2.3bn"),
        ("en_US", "USD", -1234.51, f"{M}$1,235", f"{M}$1.2k"),
        ("de_DE", "EUR", 1234567.0, f"1.234.567{NB}€", f"1,2{NB}Mio.{NB}€"),
        ("de_DE", "EUR", 23456.0, f"23.456{NB}€", f"23.456{NB}€"),  # no German short form for thousands
    ],
)
def test_money_full_and_compact(locale, currency, value, full, compact):
    fmt = Formatter(locale, currency)
    assert fmt.money(value) == full
    assert fmt.money_compact(value) == compact


def test_counts_percentages_and_signed_deltas():
    gb, de = Formatter("en_GB", "GBP"), Formatter("de_DE", "EUR")
    assert gb.count(12345) == "12,345" and de.count(12345) == "12.345"
    assert gb.percent(0.8734) == "87.3%" and de.percent(0.8734) == "87,3%"
    assert gb.signed_money(1204.2) == "+£1,204"
    assert gb.signed_money(-310) == f"{M}£310"
    assert gb.signed_money(0.2) == "£0"  # rounds to zero: no sign
    assert gb.signed_count(12) == "+12" and gb.signed_count(-3) == f"{M}3" and gb.signed_count(0) == "0"
    assert gb.signed_percent(-0.0512) == f"{M}5.1%" and gb.signed_percent(0.398) == "+39.8%"
    assert gb.signed_money_compact(15839) == "+£15.8k"


@pytest.mark.parametrize("bad", [float("nan"), None, math.inf])
def test_nan_is_never_printed(bad):
    fmt = Formatter("en_GB", "GBP")
    for method in (fmt.money, fmt.money_compact, fmt.count, fmt.percent):
        with pytest.raises(ValueError, match="NaN"):
            method(bad)


def test_preview_command_renders_the_fixture(tmp_path, capsys):
    out = tmp_path / "preview"
    assert main(["preview", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(out / "board_pack.pdf")
    assert (out / "bridge.parquet").exists() and (out / "board_pack.html").exists()
    text = PdfReader(out / "board_pack.pdf").pages[2].extract_text()
    assert "Gained" in text and "customers worth £" in text


def test_preview_with_a_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("brand:\n  primary_color: red\n")
    run = subprocess.run([sys.executable, "-m", "cxpipeline", "preview", "--config", str(bad),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode == 2
    assert "brand.primary_color" in run.stderr and "Traceback" not in run.stderr


def test_clip_cuts_long_names_with_an_ellipsis():
    from cxpipeline.report.formatting import Formatter

    assert Formatter.clip("Acme Ltd") == "Acme Ltd"
    assert Formatter.clip("x" * 80) == "x" * 80
    assert Formatter.clip("x" * 81) == "x" * 79 + "\u2026"
    assert Formatter.clip("ab cd ef", 5) == "ab c\u2026"
    assert Formatter.clip("ab   cdef", 6) == "ab\u2026"  # no space before the ellipsis
    assert Formatter.clip(12345, 3) == "12\u2026"
