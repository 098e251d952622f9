"""Connections and write transactions.

Every read-then-write starts with ``BEGIN IMMEDIATE``: with a plain ``BEGIN`` concurrent writers
get "database is locked" despite busy_timeout (see PLATFORMS.md). Connections run in autocommit
mode (``isolation_level=None``) so the only transactions are the ones we open explicitly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from listener.errors import StorageError

BUSY_TIMEOUT_MS = 10_000


def connect(path: str | Path) -> Database:
    """Open (creating if needed) a database with WAL, synchronous=NORMAL and a busy timeout.

    One connection per thread: sqlite3 connections must not be shared between threads.
    """
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {target}: {exc}") from exc
    return Database(conn)


@contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """One write transaction: everything inside commits together or not at all."""
    conn = db.conn
    if conn.in_transaction:  # nested use joins the outer transaction
        yield db
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StorageError(f"database is busy or read-only: {exc}") from exc
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
