"""The monthly panel for the model, sampled by customer above model.max_customers_monthly."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from cxpipeline import pipeline
from cxpipeline.artifacts import read_json, read_table
from cxpipeline.config import config_from_dict
from cxpipeline.model.features import features_in_chunks, snapshot_features
from cxpipeline.panel import sample_threshold, write_model_sample
from cxpipeline.periods import parse_period
from cxpipeline.schema import PANEL_COLUMNS

PERIOD = parse_period("2026-Q2")


def _panel(ids: list[str]) -> pd.DataFrame:
    """Two monthly rows per customer, sorted by customer and month."""
    rows = []
    for n, customer in enumerate(ids):
        for month in ("2026-01-01", "2026-02-01"):
            start = pd.Timestamp(month)
            rows.append({"customer_id": customer, "period_start": start, "revenue": 10.0 + n, "gross_revenue": 10.0 + n,
                         "returns": 0.0, "cost": 4.0, "cost_to_serve": 1.0, "count_orders": 1, "count_returns": 0,
                         "first_order_at": start + pd.Timedelta(days=3), "last_order_at": start + pd.Timedelta(days=3)})
    return pd.DataFrame(rows).astype(PANEL_COLUMNS)


def test_sample_keeps_exactly_the_customers_whose_md5_prefix_is_below_the_rate(tmp_path):
    ids = [f"C{i:03d}" for i in range(10)]
    _panel(ids).to_parquet(tmp_path / "panel_monthly.parquet", index=False)
    out = tmp_path / "panel_monthly_model.parquet"
    info = write_model_sample(tmp_path / "panel_monthly.parquet", out, count_customers=10, max_customers=4)
    # 4 of 10: prefix below 0.4 * 2**32 = 0x66666666. md5("C000") = 37f6c012..., "C003" 5027ad67...,
    # "C005" 31d09894..., "C007" 2dff3377..., "C008" 5fd8dae3...; the other five are above.
    assert sample_threshold(0.4) == "66666666"
    kept = pd.read_parquet(out)
    assert sorted(kept["customer_id"].unique()) == ["C000", "C003", "C005", "C007", "C008"]
    assert sorted(kept["customer_id"].unique()) == sorted(
        i for i in ids if hashlib.md5(i.encode()).hexdigest()[:8] < "66666666")
    # the kept customers' rows are whole, in the panel's order and schema
    whole = _panel(ids)
    expected = whole.loc[whole["customer_id"].isin(["C000", "C003", "C005", "C007", "C008"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected)
    assert info == {"customers": 10, "customers_in_sample": 5, "rows_in_sample": 10, "fraction": 0.5,
                    "md5_prefix_below": "66666666", "max_customers_monthly": 4}
    # a lower rate keeps a subset of the same customers (0.2: below 0x33333333)
    write_model_sample(tmp_path / "panel_monthly.parquet", out, count_customers=10, max_customers=2)
    assert sorted(pd.read_parquet(out)["customer_id"].unique()) == ["C005", "C007"]


def test_no_sample_at_or_below_the_bound_and_a_stale_one_is_removed(tmp_path):
    _panel(["A", "B"]).to_parquet(tmp_path / "panel_monthly.parquet", index=False)
    out = tmp_path / "panel_monthly_model.parquet"
    out.write_bytes(b"stale")
    assert write_model_sample(tmp_path / "panel_monthly.parquet", out, count_customers=2, max_customers=2) is None
    assert not out.exists()


def test_features_in_chunks_equal_the_whole_panel():
    from cxpipeline.sources.demo import generate_demo

    transactions, _ = generate_demo(300, 3, seed=3)
    monthly = pipeline.build_panel(transactions, "month", end=PERIOD.end)
    snapshot = pd.Timestamp(PERIOD.end)
    whole = snapshot_features(monthly, snapshot)

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "panel_monthly.parquet"
        monthly.to_parquet(path, index=False)
        chunked, count = features_in_chunks(path, snapshot, chunk_rows=97)  # cuts inside customers
    assert count == monthly["customer_id"].nunique()
    pd.testing.assert_frame_equal(chunked, whole.set_axis(whole.index.astype("string")), check_index_type=False)


def _config(max_customers: int | None, pack_id: str):
    model = {} if max_customers is None else {"max_customers_monthly": max_customers}
    return config_from_dict({"pack_id": pack_id, "source": {"kind": "demo", "customers": 2500, "years": 3, "seed": 4},
                             "model": model})


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    folders = {}
    for name, bound in (("whole", None), ("sampled", 1000)):
        config = _config(bound, name)
        pipeline.extract(config, PERIOD, root)
        pipeline.score_customers(config, PERIOD, root)
        folders[name] = root / name / PERIOD.label
    return folders


def test_below_the_bound_nothing_changes(packs):
    folder = packs["whole"]
    assert not (folder / "panel_monthly_model.parquet").exists()
    assert "customer_sample" not in read_json(folder / "model_report.json")
    assert not any("fixed sample" in note for note in read_json(folder / "data_quality.json")["notes"])


def test_above_the_bound_the_model_fits_on_the_sample_and_scores_everyone(packs):
    whole, sampled = packs["whole"], packs["sampled"]
    monthly = read_table(sampled, "panel_monthly")
    sample = read_table(sampled, "panel_monthly_model")
    ids = monthly["customer_id"].unique()
    expected = sorted(i for i in ids if hashlib.md5(i.encode()).hexdigest()[:8] < sample_threshold(1000 / len(ids)))
    assert sorted(sample["customer_id"].unique()) == expected
    assert 0 < len(expected) < len(ids)
    pd.testing.assert_frame_equal(sample, monthly.loc[monthly["customer_id"].isin(expected)].reset_index(drop=True))
    # every customer scored, with the same history figures as without the sample
    a, b = read_table(whole, "scores"), read_table(sampled, "scores")
    assert sorted(a["customer_id"]) == sorted(b["customer_id"])
    merged = a.merge(b, on="customer_id", suffixes=("_whole", "_sampled"))
    for column in ("historical_value", "revenue_12m", "recency_days", "tenure_days", "orders_total"):
        np.testing.assert_array_equal(merged[f"{column}_whole"], merged[f"{column}_sampled"], err_msg=column)
    assert merged["p_at_risk_sampled"].between(0, 1).all()
    # the run says so: data-quality notes and the model report
    notes = read_json(sampled / "data_quality.json")["notes"]
    assert any(f"fixed sample of {len(expected):,} of {len(ids):,} customers" in note for note in notes)
    report = read_json(sampled / "model_report.json")
    assert report["customer_sample"]["customers_in_sample"] == len(expected)
    assert report["customer_sample"]["customers"] == len(ids)
    assert "fixed sample" in report["messages"][0]


def test_a_masked_extract_masks_the_sample_too(tmp_path):
    """The sample is chosen on the raw ids, then masked with the other extract tables: the model
    sees tokens only, fits on the sample and still scores every customer."""
    from cxpipeline.masking import mask_id, masking_salt

    config = config_from_dict({"pack_id": "masked", "source": {"kind": "demo", "customers": 2500, "years": 3, "seed": 4},
                               "model": {"max_customers_monthly": 1000}, "delivery": {"mask_customers": True}})
    pipeline.extract(config, PERIOD, tmp_path)
    pipeline.score_customers(config, PERIOD, tmp_path)
    folder = tmp_path / "masked" / PERIOD.label
    monthly, sample = read_table(folder, "panel_monthly"), read_table(folder, "panel_monthly_model")
    assert monthly["customer_id"].str.startswith("C-").all() and sample["customer_id"].str.startswith("C-").all()
    from cxpipeline.sources.demo import generate_demo

    raw_ids = generate_demo(2500, 3, seed=4)[0]
    raw_ids = raw_ids.loc[raw_ids["ordered_at"] < pd.Timestamp(PERIOD.end), "customer_id"].astype("string").unique()
    threshold = sample_threshold(1000 / len(raw_ids))
    salt = masking_salt(config)
    expected = {mask_id(i, salt) for i in raw_ids if hashlib.md5(i.encode()).hexdigest()[:8] < threshold}
    assert set(sample["customer_id"]) == expected
    scores = read_table(folder, "scores")
    assert set(scores["customer_id"]) <= set(monthly["customer_id"]) and len(scores) > len(expected)
