"""Connections and write transactions, for both engines.

A target is an SQLite file path or a ``postgresql://`` URL (:mod:`storage.postgres`).
On SQLite every read-then-write starts with ``BEGIN IMMEDIATE``: with a plain ``BEGIN`` concurrent writers
get "database is locked" despite busy_timeout (see PLATFORMS.md). Connections run in autocommit
mode (``isolation_level=None``) so the only transactions are the ones we open explicitly.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from sqlite_utils import Database

from listener.core.errors import StorageError
from storage.engine import Db

BUSY_TIMEOUT_MS = 10_000
log = logging.getLogger(__name__)
T = TypeVar("T")


def connect(path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Db:
    """Open (creating if needed) a database with WAL, synchronous=NORMAL and a busy timeout;
    or, for a ``postgresql://`` URL, a connection to that server.

    One connection per thread: neither engine's connections may be shared between threads.
    """
    if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
        from storage import postgres  # psycopg: only where PostgreSQL is configured

        return postgres.connect(path, busy_timeout_ms)
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
def immediate(db: Db, *, shared: bool = False) -> Iterator[Db]:
    """One write transaction: everything inside commits together or not at all.

    ``shared``: writes built to run side by side among themselves — a page of posts being
    stored (:func:`storage.db.store_page`, :mod:`storage.pg_pages` says what pages then share,
    and how) and a batch of scores (:func:`storage.db.save_scores`,
    :mod:`storage.migrations_pg_pending`). On PostgreSQL they take the write lock shared; every
    other write transaction still runs alone, with none of them in flight. On SQLite it changes
    nothing: one writer at a time."""
    conn = db.conn
    if conn.in_transaction:  # nested use joins the outer transaction
        yield db
        return
    if getattr(db, "dialect", "sqlite") == "postgresql":
        with _pg_transaction(db, shared=shared):
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


# The key of the one write lock every PostgreSQL write transaction takes ("listener" + 1).
WRITE_LOCK_KEY = 0x6C697374656E6573
# The key of the ingest turn: the part of storing a page that pages take one at a time
INGEST_LOCK_KEY = WRITE_LOCK_KEY + 1


@contextmanager
def _pg_transaction(db: Db, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """PostgreSQL's write transaction, one at a time across every worker, as SQLite's
    ``BEGIN IMMEDIATE`` is: the verbs read then write (caps, incident grouping, retention's
    "every post up to this id") and the rollup triggers update shared cells, all written for
    one writer; concurrent writers would deadlock on the cells or see each other half-done.
    Work that runs in parallel (scoring, sending) happens outside these transactions, on
    rows a worker has claimed; the writes that record it are short. ``shared``: pages of posts
    and batches of scores, which run side by side (:mod:`storage.pg_pages`,
    :mod:`storage.migrations_pg_pending`). ``wait`` False: the lock only if it is free now;
    yields whether it is held.

    Taking the lock is part of the transaction: a wait ended by the connection's lock timeout
    rolls it back and fails as any write does, leaving the connection ready for the next."""
    import psycopg

    conn = db.conn
    conn.execute("BEGIN")
    try:
        if wait:
            lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            conn.execute(f"SELECT {lock}(?)", [WRITE_LOCK_KEY])
            held = True
        else:
            held = bool(conn.execute("SELECT pg_try_advisory_xact_lock(?)",
                                     [WRITE_LOCK_KEY]).fetchone()[0])
        yield held
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            with suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        if isinstance(exc, psycopg.OperationalError):
            raise StorageError(f"database write failed ({type(exc).__name__}: {exc}); nothing "
                               "of it was saved and the next run retries it") from exc
        raise


DEADLOCK_ATTEMPTS = 3
DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE for a transaction ended to break a deadlock


def again_after_deadlock(db: Db, write: Callable[[], T]) -> T:
    """``write()`` (one write transaction of its own), run again if PostgreSQL ended it to
    break a deadlock, up to :data:`DEADLOCK_ATTEMPTS` times: shared writers (pages, score
    batches) can meet in one rare order (:mod:`storage.pg_pages`), and the transaction that was
    rolled back is whole and safe to repeat. Inside a caller's transaction there is nothing to
    repeat alone: the error goes up."""
    attempt = 1
    while True:
        try:
            return write()
        except StorageError as exc:
            if (attempt >= DEADLOCK_ATTEMPTS or db.conn.in_transaction
                    or getattr(exc.__cause__, "sqlstate", None) != DEADLOCK_DETECTED):
                raise
            attempt += 1
            log.warning("write ended by the database to break a deadlock; again (%d of %d)",
                        attempt, DEADLOCK_ATTEMPTS)


@contextmanager
def exclusive_if_free(db: Db) -> Iterator[bool]:
    """PostgreSQL: a write transaction holding the write lock exclusively, only if no write is in
    flight now (no waiting, so a caller never stalls behind, nor makes wait, other writers);
    yields whether it holds it. What ran inside commits. For housekeeping that may be left to
    the next attempt (:mod:`storage.rollups`). Inside a caller's transaction: False."""
    if getattr(db, "dialect", "sqlite") != "postgresql" or db.conn.in_transaction:
        yield False
        return
    with _pg_transaction(db, wait=False) as held:
        yield held


def ingest_turn(db: Db) -> None:
    """In a page's transaction on PostgreSQL: wait until no other page is at the steps that
    read what pages write (cross-post links, extra brands, rejects, the cursor); held to the
    commit. Nothing on SQLite, whose pages run one at a time anyway."""
    if getattr(db, "dialect", "sqlite") == "postgresql":
        db.conn.execute("SELECT pg_advisory_xact_lock(?)", [INGEST_LOCK_KEY])


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
