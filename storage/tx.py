"""Connections and write transactions.

Every read-then-write starts with ``BEGIN IMMEDIATE``: with a plain ``BEGIN`` concurrent writers
get "database is locked" despite busy_timeout (see PLATFORMS.md). Connections run in autocommit
mode (``isolation_level=None``) so the only transactions are the ones we open explicitly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlite_utils import Database

from listener.core.errors import StorageError

BUSY_TIMEOUT_MS = 10_000


def connect(path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) a database with WAL, synchronous=NORMAL and a busy timeout.

    One connection per thread: sqlite3 connections must not be shared between threads.
    """
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(target, isolation_level=None, timeout=busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {target}: {exc}") from exc
    db = Database(conn)
    # sqlite-utils 4 learns whether SQLite has ON CONFLICT upserts (3.24+, 2018) by creating
    # and dropping a table at each connection's first upsert: a schema change in the middle of
    # the daemon's work, which expires every other connection's statements; with the FTS5
    # triggers on scores, a concurrent INSERT INTO scores then fails (SQLITE_SCHEMA, "no such
    # table: scores" — found by the crash harness). Tell it the answer instead.
    db._supports_on_conflict = True
    return db


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
        raise StorageError(f"database is busy or read-only: {exc} (another process held it "
                           "longer than the busy timeout); the next run retries") from exc
    try:
        yield db
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:  # SQLite has already rolled back after some errors (SQLITE_FULL)
            with suppress(sqlite3.Error):  # a failing ROLLBACK must not hide the cause
                conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and environmental(exc):
            raise StorageError(_explain(exc)) from exc
        raise


# Failures of the machine, not of our SQL: a full disk, an I/O error, a lock held too long.
_ENVIRONMENTAL = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED",
                  "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_NOMEM")


def environmental(exc: sqlite3.OperationalError) -> bool:
    """A failure of the machine (disk full, I/O, a lock held too long), not of our SQL."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_ENVIRONMENTAL)


def _explain(exc: sqlite3.OperationalError) -> str:
    """The failed write as a StorageError message: what happened and what to do."""
    what = "free disk space" if exc.sqlite_errorname == "SQLITE_FULL" else "check the disk"
    return (f"database write failed ({exc.sqlite_errorname}: {exc}); nothing of it was saved "
            f"and the next run retries it — {what}")
