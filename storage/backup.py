"""A consistent copy of the live database, taken while the daemon keeps writing.

Copying the file with ``cp`` while a writer is active can produce a torn copy (and misses
whatever still sits in ``-wal``). SQLite's online backup API copies the database as of one read
transaction instead: in WAL mode readers do not block writers, so the daemon and cron runs go on
while the copy is made, and the copy holds every transaction committed before it started and
none of those after.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from listener.core.errors import StorageError
from storage.tx import BUSY_TIMEOUT_MS


def backup(source: Path, target: Path) -> int:
    """Copy ``source`` to ``target`` (atomically replaced); returns the copy's size in bytes.

    One backup step (``pages=-1``) copies everything inside one read transaction: stepping in
    smaller pieces would restart whenever another process writes, and never finish on a busy
    database. The copy is switched to ``journal_mode=DELETE`` so it is one self-contained file,
    checked with ``PRAGMA quick_check``, and only then renamed into place.
    """
    if not source.is_file():
        raise StorageError(f"no database at {source}; check storage.path in the config")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        if verdict != "ok":
            raise StorageError(f"the copy of {source} failed its integrity check: {verdict}")
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot back up {source} to {target}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size
