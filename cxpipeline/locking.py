"""One run at a time per pack and period: an exclusive ``flock`` on ``<artifact folder>/.lock``.

Two runs of the same period (a manual rerun while the scheduled one is still going, or an
Airflow retry overlapping a zombie task) would otherwise interleave their writes, e.g. the
panel of one run with the metrics of the other. Every pipeline stage holds the lock while it
reads and writes the folder, and :func:`cxpipeline.pipeline.run_pack` holds it across all
stages, so a folder always holds the artifacts of one run. Runs of different periods use
different folders and never wait for each other.

The lock is advisory, kernel-held and tied to the open file: a killed process releases it at
once, so a crash never leaves a stale lock behind. The lock file itself is never deleted
(deleting it would let two processes lock two different files of the same name). The holder's
pid and host are written into it, only to make the "waited too long" message useful.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cxpipeline.errors import CxError

__all__ = ["LOCK_NAME", "DEFAULT_TIMEOUT_SECONDS", "PackLockedError", "exclusive_lock", "pack_lock", "lock_holder"]

LOCK_NAME = ".lock"

#: How long a run waits for another run of the same pack and period before giving up. Long
#: enough for a normal run to finish; override with the ``CXPIPELINE_LOCK_TIMEOUT`` env var.
DEFAULT_TIMEOUT_SECONDS = 900.0

# Locks this process holds, per (lock path, thread): nested stages re-enter without waiting
# for themselves. Another thread of the same process opens its own file and does wait.
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


class PackLockedError(CxError):
    """Another run of the same pack and period held the lock for longer than the timeout."""


def lock_holder(folder: str | Path) -> str | None:
    """What a folder's lock file says about its last holder (``pid 123 on host``), if anything."""
    return _holder(Path(folder) / LOCK_NAME)


def _holder(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def _timeout_from_env() -> float:
    value = os.environ.get("CXPIPELINE_LOCK_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS


@contextmanager
def exclusive_lock(path: str | Path, *, timeout: float | None = None, poll_seconds: float = 0.05,
                   what: str = "this pack and period") -> Iterator[Path]:
    """Hold an exclusive ``flock`` on the file ``path`` for the duration of the ``with`` block.

    The one lock of the project: a pack folder's run lock (:func:`pack_lock`) and the delivery
    ledger's lock (:mod:`cxpipeline.delivery.ledger`) are both this. Re-entered, not re-taken,
    by the thread that holds it.

    Parameters
    ----------
    path
        The lock file (its folder is created if missing; the file is never deleted).
    timeout
        Seconds to wait for another holder; ``None`` reads ``CXPIPELINE_LOCK_TIMEOUT`` or uses
        :data:`DEFAULT_TIMEOUT_SECONDS`; ``0`` fails at once if the file is locked.
    poll_seconds
        Interval between attempts while waiting.
    what
        What the lock protects, for the "waited too long" message.

    Raises
    ------
    PackLockedError
        If the lock is still held by another process after ``timeout`` seconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = (str(path.resolve()), threading.get_ident())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key] -= 1
        return

    wait = _timeout_from_env() if timeout is None else float(timeout)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed in finally
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = _holder(path) or "another process"
                    raise PackLockedError(
                        f"Another run of {what} is still working on it ({holder}); waited {wait:g} s.",
                        where=str(path),
                        fix="Wait for that run to finish (or stop it), then run again. The lock is "
                            "released automatically when its process ends; raise "
                            "CXPIPELINE_LOCK_TIMEOUT to wait longer.",
                    ) from None
                time.sleep(poll_seconds)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        with _held_guard:
            _held[key] = 1
        try:
            yield path
        finally:
            with _held_guard:
                del _held[key]
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def pack_lock(folder: str | Path, *, timeout: float | None = None, poll_seconds: float = 0.05):
    """Hold the exclusive lock of an artifact folder (``<folder>/.lock``) for a ``with`` block.

    Parameters
    ----------
    folder
        The artifact folder (``<output_root>/<pack_id>/<period>/``); created if missing.
    timeout, poll_seconds
        As for :func:`exclusive_lock`.

    Raises
    ------
    PackLockedError
        If the lock is still held by another run after ``timeout`` seconds.
    """
    return exclusive_lock(Path(folder) / LOCK_NAME, timeout=timeout, poll_seconds=poll_seconds)
