"""storage.probe on real SQLite files: it proves a writable database writable and leaves
nothing behind; a read-only connection or a write lock held elsewhere fails it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage.probe import prove_writable
from storage.tx import connect, immediate


def tables(db: Database) -> set[str]:
    return set(db.table_names())


def test_a_writable_database_passes_and_keeps_no_probe_table(db: Database) -> None:
    before = tables(db)
    prove_writable(db)
    prove_writable(db)  # twice: the first one's table was rolled back
    assert tables(db) == before and "_doctor_probe" not in before
    assert not db.conn.in_transaction


def test_a_read_only_connection_fails(db: Database, tmp_path: Path) -> None:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    reader = Database(sqlite3.connect(f"file:{tmp_path / 'fixture.db'}?mode=ro", uri=True,
                                      isolation_level=None))
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
            prove_writable(reader)
        assert not reader.conn.in_transaction
    finally:
        reader.close()


def test_a_write_lock_held_past_the_busy_timeout_fails(db: Database, tmp_path: Path) -> None:
    impatient = connect(tmp_path / "fixture.db", busy_timeout_ms=50)
    try:
        with immediate(db), pytest.raises(sqlite3.OperationalError, match="locked"):
            prove_writable(impatient)
    finally:
        impatient.close()
