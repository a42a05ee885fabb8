"""The delivery ledger: who was sent which pack (content sha256) for which period, and how it went.

JSON lines in the pack's folder, rewritten atomically; one row per recipient and attempt::

    {"recipient", "unit", "period", "pack_id", "content_sha256", "sent_at", "result", "error",
     "attempts", "message_id", "location", "link"}

(``location``: the published pointer's URL or the local folder, for the operator; ``link``: the
published PDF's ``http(s)`` address the email gave, or ``null``.)

Deliveries of one pack are serialised with :func:`cxpipeline.locking.exclusive_lock`, so two
runs never both send.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxpipeline.artifacts import write_text
from cxpipeline.errors import DeliveryError
from cxpipeline.locking import exclusive_lock

__all__ = ["LEDGER_NAME", "read_ledger", "write_ledger", "locked"]

LEDGER_NAME = "delivery_ledger.jsonl"


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    """All ledger rows (oldest first); an absent ledger is empty.

    Raises
    ------
    DeliveryError
        If a line is not JSON (the ledger is never guessed at: it decides who gets mail).
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise DeliveryError("The delivery ledger is corrupt.", where=f"{path}, line {number}",
                                fix="Repair or remove that line; the ledger decides who is "
                                    "sent the pack again.") from None
    return rows


def write_ledger(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def locked(path: Path):
    """Serialise deliveries of the same pack (two runs must not both send)."""
    return exclusive_lock(path.with_name(path.name + ".lock"))


