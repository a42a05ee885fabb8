"""The artifact store: one folder per pack and period, written atomically.

``<output_root>/<pack_id>/<period_label>/`` holds the panel, the metrics tables (Parquet + CSV),
model scores, ``board_pack.pdf``, ``board_pack.html`` and ``manifest.json``. Every file is written
to a temporary name in the same folder and renamed into place, so a killed run never leaves a
half-written file that a later step (or an email) would pick up.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "artifact_dir",
    "atomic_path",
    "write_bytes",
    "write_text",
    "write_json",
    "read_json",
    "write_table",
    "read_table",
    "sha256_file",
]


def artifact_dir(output_root: str | Path, pack_id: str, period_label: str) -> Path:
    """The folder for one pack and period (created if missing)."""
    folder = Path(output_root) / pack_id / period_label
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    On any error the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, payload: Any) -> Path:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str, allow_nan=False)
    return write_text(target, text + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_table(folder: str | Path, name: str, df: pd.DataFrame, *, csv: bool = True) -> Path:
    """Write ``<name>.parquet`` (and ``<name>.csv``) atomically; return the Parquet path."""
    folder = Path(folder)
    parquet = folder / f"{name}.parquet"
    with atomic_path(parquet) as tmp:
        df.to_parquet(tmp, index=False)
    if csv:
        with atomic_path(folder / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False, float_format="%.10g")
    return parquet


def read_table(folder: str | Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(folder) / f"{name}.parquet")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
