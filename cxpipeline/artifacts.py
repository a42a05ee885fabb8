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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

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
    "neutralise_formulas",
    "write_csv",
]


#: Permissions of every artifact (readable by the group and others, like a plain file).
ARTIFACT_MODE = 0o644
#: Significant digits of floats in the CSV copies of tables (the Parquet keeps every bit).
CSV_DIGITS = 10


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
    # mkstemp creates 0600; artifacts are read by other users (mounted folders, mail, web)
    os.fchmod(fd, ARTIFACT_MODE)
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


def _significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Floats rounded to ``digits`` significant digits (what ``%.{digits}g`` prints)."""
    finite = np.isfinite(values) & (values != 0)
    safe = np.where(finite, np.abs(values), 1.0)
    exponent = np.floor(np.log10(safe)).astype("int64") - (digits - 1)
    up = np.power(10.0, np.clip(-exponent, 0, 300))  # divide/multiply by exact powers of ten
    down = np.power(10.0, np.clip(exponent, 0, 300))
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.where(exponent < 0, values * up, values / down)
        rounded = np.where(exponent < 0, np.rint(scaled) / up, np.rint(scaled) * down)
        # near a half the scaling itself may round; let printf decide those few exactly
        near_half = finite & ~(np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) > 1e-3)
    extreme = finite & ((safe >= 1e15) | (safe < 1e-12))  # 10**k beyond 1e22 is not exact
    for i in np.flatnonzero(near_half | extreme):
        rounded[i] = float(f"{values[i]:.{digits}g}")
    return np.where(finite, rounded, values)


# OWASP's CSV-injection rule: a cell a spreadsheet would evaluate as a formula starts with one
# of these; it is written with a leading apostrophe (shown as text, never run). Plain numbers
# such as "-12.5" or "+44" are left alone: they are data, not formulas.
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _neutralised(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A string column with formula-like cells prefixed by ``'`` (missing stays missing)."""
    risky = pc.and_not(pc.match_substring_regex(column, _FORMULA_START),
                       pc.match_substring_regex(column, _PLAIN_NUMBER))
    if not pc.any(risky).as_py():
        return column
    quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """``table`` with every text cell that a spreadsheet would evaluate made inert.

    Cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a leading
    ``'`` (OWASP CSV injection), unless the whole cell is a plain number. Only text columns
    (including dictionary-encoded ones) change; numbers, dates and booleans are not text to a
    spreadsheet and stay as they are. Used for CSV copies only: Parquet keeps raw values.
    """
    for i, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type)
                                            or pa.types.is_large_string(kind.value_type)):
            column = table.column(i).cast(kind.value_type)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = table.column(i)
        else:
            continue
        column = _neutralised(column)
        table = table.set_column(i, pa.field(field.name, column.type), column)
    return table


def _csv_ready(df: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table printed like the pandas CSV did: floats to 10 significant
    digits, whole-second timestamps without a fraction (dates when all are midnight), missing
    values as empty cells."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_floating(field.type):
            values = column.to_numpy().astype("float64")  # nulls come back as NaN
            column = pa.array(_significant(values, CSV_DIGITS), mask=column.is_null().to_numpy(zero_copy_only=False))
        elif pa.types.is_timestamp(field.type) and field.type.unit != "s":
            ticks = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
            per_second = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[field.type.unit]
            valid = ~column.is_null().to_numpy(zero_copy_only=False)
            if field.type.tz is None and not (ticks[valid] % (per_second * 86400)).any():
                column = column.cast(pa.date32())  # midnight only: the date, as pandas printed it
            elif not (ticks[valid] % per_second).any():
                column = column.cast(pa.timestamp("s", tz=field.type.tz))
        else:
            continue
        table = table.set_column(i, pa.field(field.name, column.type), column)
    return neutralise_formulas(table)


def write_csv(target: str | Path, df: pd.DataFrame) -> Path:
    """Write ``df`` as a spreadsheet-safe CSV atomically (see :func:`neutralise_formulas`)."""
    with atomic_path(target) as tmp:
        pa_csv.write_csv(_csv_ready(df), str(tmp))
    return Path(target)


def write_table(folder: str | Path, name: str, df: pd.DataFrame, *, csv: bool = True) -> Path:
    """Write ``<name>.parquet`` (and ``<name>.csv``) atomically; return the Parquet path.

    The CSV is written by Arrow (pandas' writer formats every cell in Python, minutes for
    a few million cells): strings are quoted, booleans are ``true``/``false``, and text
    cells a spreadsheet would evaluate (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) are prefixed
    with ``'`` (:func:`neutralise_formulas`); the Parquet file keeps the raw values.
    """
    folder = Path(folder)
    parquet = folder / f"{name}.parquet"
    with atomic_path(parquet) as tmp:
        df.to_parquet(tmp, index=False)
    if csv:
        write_csv(folder / f"{name}.csv", df)
    return parquet


def read_table(folder: str | Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A table of the run's folder (``columns``: only these, read from the Parquet file)."""
    return pd.read_parquet(Path(folder) / f"{name}.parquet", columns=columns)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
