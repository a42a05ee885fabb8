"""Publishing pack folders to object storage (real fsspec filesystems) and the extract gate."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path

import pandas as pd
import pypdf
import pytest

from cxpipeline import publish
from cxpipeline.config import config_from_dict
from cxpipeline.errors import CheckError, InputError
from cxpipeline.periods import parse_period
from cxpipeline.pipeline import extract
from cxpipeline.publish import (POINTER_NAME, PublishError, pack_files, publish_pack, published_file,
                                read_pointer, read_published, storage_path)
from cxpipeline.validation import validate_extract


def _pdf(text: str) -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": text})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _check(folder: Path, pdf: bytes, *, deliverable: bool = True) -> None:
    """Write the PDF and a checks.json that names it, as check_pack does."""
    (folder / "board_pack.pdf").write_bytes(pdf)
    (folder / "checks.json").write_text(json.dumps({
        "is_deliverable": deliverable, "checks": [], "pdf_sha256": hashlib.sha256(pdf).hexdigest()}))


@pytest.fixture()
def pack(tmp_path):
    folder = tmp_path / "out" / "demo" / "2025-Q1"
    (folder / "tables").mkdir(parents=True)
    (folder / "metrics.json").write_text('{"period": "2025-Q1"}\n')
    (folder / "tables" / "bridge.csv").write_text("segment,value\nall,1.5\n")
    # stays local: the run lock, an unfinished atomic write, the ledger (recipients' addresses)
    (folder / ".lock").write_text("pid 1")
    (folder / ".board_pack.pdf.x1.tmp").write_bytes(b"half")
    (folder / "delivery_ledger.jsonl").write_text('{"recipient": "ceo@example.com"}\n')
    _check(folder, _pdf("version one"))
    return folder


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    """The pack's destination ``<url>/demo/2025-Q1`` on a real fsspec filesystem."""
    if request.param == "file":
        root = storage_path((tmp_path / "bucket").as_uri())
    else:
        root = storage_path(f"memory://cx-test-{uuid.uuid4().hex}/packs")
    yield root / "demo" / "2025-Q1"
    if request.param == "memory" and root.exists():
        root.fs.rm(root.path, recursive=True)


def _versions(destination) -> list[str]:
    return sorted(c.name for c in destination.iterdir() if c.name.startswith(publish.VERSION_PREFIX))


def test_publish_then_rerun_overwrites_with_one_committed_version(pack, store):
    first = publish_pack(pack, store, published_at="2025-04-01T06:00:00+00:00")
    assert first["count_files"] == 4 and first["removed_versions"] == []
    assert pack_files(pack) == ["board_pack.pdf", "checks.json", "metrics.json", "tables/bridge.csv"]
    assert _versions(store) == [first["version"]]
    assert sorted(c.name for c in store.iterdir()) == [first["version"], POINTER_NAME]
    pointer = read_pointer(store)
    assert pointer["version"] == first["version"] and pointer["period"] == "2025-Q1"
    assert pointer["pack_id"] == "demo" and pointer["published_at"] == "2025-04-01T06:00:00+00:00"
    assert sorted(pointer["files"]) == pack_files(pack)
    assert read_published(store) == (pack / "board_pack.pdf").read_bytes()
    assert read_published(store, "tables/bridge.csv") == b"segment,value\nall,1.5\n"
    assert first["pdf_url"] == str(published_file(store))
    assert first["pointer"] == str(store / POINTER_NAME)

    # the same folder again: same content, same version, nothing removed
    again = publish_pack(pack, store)
    assert again["version"] == first["version"] and again["removed_versions"] == []

    # a rebuilt pack replaces the old version, which is then removed
    _check(pack, _pdf("version two"))
    second = publish_pack(pack, store)
    assert second["version"] != first["version"]
    assert second["removed_versions"] == [first["version"]]
    assert _versions(store) == [second["version"]]
    assert read_published(store) == _pdf("version two")
    assert read_pointer(store)["pdf_sha256"] == hashlib.sha256(_pdf("version two")).hexdigest()


def test_publish_interrupted_before_the_pointer_leaves_the_old_version_valid(pack, store, monkeypatch):
    first = publish_pack(pack, store)
    _check(pack, _pdf("version two"))

    def killed(destination, pointer):
        raise KeyboardInterrupt("worker killed before the commit")

    monkeypatch.setattr(publish, "_write_pointer", killed)
    with pytest.raises(KeyboardInterrupt):
        publish_pack(pack, store)
    # every file of the new version was uploaded, but readers still get the old one, whole
    assert len(_versions(store)) == 2
    assert read_pointer(store)["version"] == first["version"]
    assert read_published(store) == _pdf("version one")

    monkeypatch.undo()
    second = publish_pack(pack, store)
    assert second["removed_versions"] == [first["version"]]
    assert _versions(store) == [second["version"]]
    assert read_published(store) == _pdf("version two")


def test_publish_failing_mid_upload_changes_nothing_readers_see(pack, store, monkeypatch):
    first = publish_pack(pack, store)
    _check(pack, _pdf("version two"))
    copy, calls = publish._copy_file, []

    def flaky(source, target):
        calls.append(source.name)
        if len(calls) == 2:
            raise ConnectionResetError("connection reset by peer")
        copy(source, target)

    monkeypatch.setattr(publish, "_copy_file", flaky)
    with pytest.raises(ConnectionResetError):
        publish_pack(pack, store)
    assert read_pointer(store)["version"] == first["version"]
    assert read_published(store) == _pdf("version one")


def test_short_upload_is_refused_before_the_commit(pack, store, monkeypatch):
    publish_pack(pack, store)
    _check(pack, _pdf("version two"))

    copy = publish._copy_file

    def truncating(source, target):
        copy(source, target)
        if source.name == "board_pack.pdf":
            target.write_bytes(source.read_bytes()[:100])  # the store kept only part of it

    monkeypatch.setattr(publish, "_copy_file", truncating)
    with pytest.raises(PublishError, match="board_pack.pdf came back with 100 bytes"):
        publish_pack(pack, store)
    assert read_published(store) == _pdf("version one")


def test_unchecked_or_changed_pack_is_never_published(pack, store):
    _check(pack, _pdf("failed checks"), deliverable=False)
    with pytest.raises(CheckError, match="not passed its checks"):
        publish_pack(pack, store)
    _check(pack, _pdf("checked"))
    (pack / "board_pack.pdf").write_bytes(_pdf("edited after the check"))
    with pytest.raises(CheckError, match="changed after it was checked"):
        publish_pack(pack, store)
    assert not store.exists() or not (store / POINTER_NAME).exists()
    with pytest.raises(InputError, match="Nothing has been published"):
        read_pointer(store)


def test_plain_local_path_destination_commits_by_atomic_rename(pack, tmp_path):
    destination = storage_path(str(tmp_path / "share")) / "demo" / "2025-Q1"
    assert isinstance(destination, Path)
    result = publish_pack(pack, destination)
    assert sorted(p.name for p in destination.iterdir()) == [result["version"], POINTER_NAME]
    assert read_published(destination) == (pack / "board_pack.pdf").read_bytes()
    assert result["url"] == str(destination.resolve())


# --- validate_extract ------------------------------------------------------------------------------

Q1 = parse_period("2025-Q1")


def _extract_folder(tmp_path: Path, *, reasons=(), rows_in=10, revenue_in=1000.0, first="2024-01-03",
                    last="2025-06-30", panel_starts=("2024-10-01", "2025-01-01")) -> Path:
    folder = tmp_path / "x" / "2025-Q1"
    folder.mkdir(parents=True, exist_ok=True)
    rows_excluded = sum(r["rows"] for r in reasons)
    revenue_excluded = round(sum(r["revenue"] for r in reasons), 2)
    (folder / "data_quality.json").write_text(json.dumps({
        "rows_in": rows_in, "rows_used": rows_in - rows_excluded, "rows_excluded": rows_excluded,
        "revenue_in": revenue_in, "revenue_used": round(revenue_in - revenue_excluded, 2),
        "revenue_excluded": revenue_excluded, "excluded_by_reason": list(reasons), "notes": [],
        "source": "sales.csv", "first_ordered_at": first, "last_ordered_at": last,
        "is_period_complete": pd.Timestamp(last).date() >= Q1.last_day}))
    pd.DataFrame({"customer_id": [f"C{i}" for i in range(len(panel_starts))],
                  "period_start": pd.to_datetime(list(panel_starts))}).to_parquet(folder / "panel.parquet")
    return folder


AFTER = {"reason": "after the reporting period", "rows": 3, "revenue": 600.0}


def test_validate_extract_returns_the_exclusion_summary(tmp_path):
    bad = {"reason": "missing customer id", "rows": 1, "revenue": 100.0}
    summary = validate_extract(_extract_folder(tmp_path, reasons=[bad, AFTER]), Q1)
    # bad rows are 100 of the 400 read up to the period's end; rows after it are by design
    assert summary["excluded_share"] == 0.25
    assert summary["rows_after_period"] == 3 and summary["revenue_after_period"] == 600.0
    assert (summary["rows_in"], summary["rows_used"], summary["rows_excluded"]) == (10, 6, 4)
    assert summary["count_customers_in_period"] == 1 and summary["warnings"] == []
    assert summary["period"] == "2025-Q1"


def test_a_total_row_is_no_bad_row(tmp_path):
    # the file's own total (as much again as its sales) is left out of the excluded share
    total = {"reason": "total row (the sum of the rows above it)", "rows": 1, "revenue": 400.0}
    bad = {"reason": "missing customer id", "rows": 1, "revenue": 100.0}
    summary = validate_extract(_extract_folder(tmp_path, reasons=[total, bad, AFTER], revenue_in=1400.0), Q1)
    assert summary["excluded_share"] == 0.25 and summary["rows_after_period"] == 3
    as_bad = {**total, "reason": "missing customer id"}
    with pytest.raises(InputError, match="more than the 50% allowed"):
        validate_extract(_extract_folder(tmp_path, reasons=[as_bad, bad, AFTER], revenue_in=1400.0), Q1)


def test_validate_extract_refuses_unusable_extracts(tmp_path):
    missing = {"reason": "missing customer id", "rows": 10, "revenue": 1000.0}
    with pytest.raises(InputError, match="No row of sales.csv could be used"):
        validate_extract(_extract_folder(tmp_path, reasons=[missing]), Q1)
    zero = {"reason": "unparseable amount", "rows": 4, "revenue": 1000.0}
    with pytest.raises(InputError, match="All revenue of sales.csv was excluded"):
        validate_extract(_extract_folder(tmp_path, reasons=[zero]), Q1)
    most = {"reason": "missing customer id", "rows": 2, "revenue": 600.0}
    with pytest.raises(InputError, match=r"60.0% of the revenue .* more than the 50% allowed "
                                         r"\(largest: missing customer id 600.00\)"):
        validate_extract(_extract_folder(tmp_path, reasons=[most]), Q1)
    assert validate_extract(_extract_folder(tmp_path, reasons=[most]), Q1,
                            max_excluded_share=0.6)["excluded_share"] == 0.6
    with pytest.raises(InputError, match=r"data \(2023-01-02 to 2024-12-31\) does not cover 2025-Q1"):
        validate_extract(_extract_folder(tmp_path, first="2023-01-02", last="2024-12-31"), Q1)
    with pytest.raises(InputError, match="No customer bought in 2025-Q1"):
        validate_extract(_extract_folder(tmp_path, panel_starts=("2024-10-01",)), Q1)
    with pytest.raises(InputError, match="extract has not been written"):
        validate_extract(tmp_path / "nowhere", Q1)


def test_validate_extract_warns_when_the_data_ends_inside_the_period(tmp_path):
    summary = validate_extract(_extract_folder(tmp_path, last="2025-02-14"), Q1)
    assert summary["warnings"] == ["The data ends on 2025-02-14, before the end of 2025-Q1."]


def test_validate_extract_on_a_real_extract_of_an_old_period(tmp_path):
    # Two years of demo data: 2024-Q2 leaves most rows "after the reporting period" by design,
    # which must not count as excluded revenue.
    config = config_from_dict({"pack_id": "gate", "source": {
        "kind": "demo", "customers": 150, "years": 2, "seed": 3, "end_date": "2025-12-31"},
        "period": {"type": "quarter"}, "output": {"root": str(tmp_path)}})
    period = parse_period("2024-Q2")
    folder = extract(config, period)["folder"]
    dq = json.loads((Path(folder) / "data_quality.json").read_text())
    summary = validate_extract(folder, period)
    after = next(r for r in dq["excluded_by_reason"] if r["reason"] == "after the reporting period")
    assert after["revenue"] > 0.5 * dq["revenue_in"]  # would fail a naive 50% rule
    assert summary["revenue_after_period"] == after["revenue"]
    assert summary["rows_used"] == dq["rows_used"] > 0
    panel = pd.read_parquet(Path(folder) / "panel.parquet")
    assert summary["count_customers_in_period"] == panel.loc[
        panel["period_start"] == pd.Timestamp("2024-04-01"), "customer_id"].nunique() > 0
    with pytest.raises(InputError, match="does not cover 2026-Q1"):
        validate_extract(extract(config, parse_period("2026-Q1"))["folder"], parse_period("2026-Q1"))
