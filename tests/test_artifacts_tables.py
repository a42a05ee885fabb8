"""write_table: Parquet + an Arrow-written CSV that reads back like the pandas one; 0644 files."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from cxpipeline.artifacts import ARTIFACT_MODE, _significant, read_table, write_json, write_table


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.array(["C1", "C,2", None, 'say "hi"'], dtype="string"),
        "segment": ["North", "South", "North", "East"],
        "value": [664.4800000000001, 1258.5121875, np.nan, -0.1 - 0.2],
        "share": [1 / 3, 2e-13, 12345678901.5, 0.0],
        "count": np.array([1, 2, 3, 4], dtype="int64"),
        "flag": [True, False, True, False],
        "day": pd.to_datetime(["2026-07-01", "2026-07-02", None, "2026-08-01"]).astype("datetime64[us]"),
        "at": pd.to_datetime(["2026-07-01 10:56:52", "2026-07-02 00:00:00", "2026-07-03 00:00:01", None]).astype("datetime64[us]"),
    })


def test_csv_reads_back_as_the_pandas_csv_did(tmp_path):
    table = _table()
    write_table(tmp_path, "t", table)
    pandas_csv = tmp_path / "reference.csv"
    table.to_csv(pandas_csv, index=False, float_format="%.10g")
    ours, theirs = pd.read_csv(tmp_path / "t.csv"), pd.read_csv(pandas_csv)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    text = (tmp_path / "t.csv").read_text()
    assert "664.48," in text and "1258.512187," in text  # 10 significant digits, printf rounding
    assert ",2026-07-01," in text and ",2026-07-01 10:56:52\n" in text  # dates stay dates, no fractions
    pd.testing.assert_frame_equal(read_table(tmp_path, "t"), table, check_exact=True)  # the Parquet keeps every bit


def test_significant_digits_match_printf():
    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.normal(size=20000) * 10.0 ** rng.integers(-20, 20, 20000),
        np.round(rng.normal(size=20000) * 1e5, 2),
        [0.0, -0.0, 5e-324, 1.7e308, 0.5, 2.5, np.inf, -np.inf, np.nan],
    ])
    expected = np.array([float(f"{v:.10g}") for v in values])
    got = _significant(values, 10)
    assert ((got == expected) | (np.isnan(got) & np.isnan(expected))).all()


@pytest.mark.parametrize("umask", [0o077, 0o022])
def test_artifacts_are_readable_by_others(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_table(tmp_path, "t", _table())
        write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(previous)
    for name in ("t.parquet", "t.csv", "m.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == ARTIFACT_MODE == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
