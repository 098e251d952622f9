"""storage.probe on real databases: it proves a writable database writable and leaves nothing
behind (both engines); a read-only connection, a write lock held elsewhere or (PostgreSQL) a
schema the role may not create in fails it."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage.db import open_db
from storage.engine import Db
from storage.probe import prove_writable
from storage.tx import connect, immediate
from tests.pg_server import Server


def tables(db: Db) -> set[str]:
    return set(db.table_names())


@pytest.fixture
def pg_url(pg_server: Server) -> str:
    """A fresh migrated PostgreSQL database's URL, for a second connection to it."""
    return pg_server.new_database()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Db]:
    db = open_db(pg_url)
    yield db
    db.close()


def test_a_writable_database_passes_and_keeps_no_probe_table(any_db: Db) -> None:
    before = tables(any_db)
    prove_writable(any_db)
    prove_writable(any_db)  # twice: the first one's table was rolled back
    assert tables(any_db) == before and "_doctor_probe" not in before
    assert not any_db.conn.in_transaction


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


def test_a_read_only_postgresql_connection_fails(pg_url: str) -> None:
    import psycopg

    reader = connect(pg_url)  # as a hot standby or a read-only role's default would have it
    reader.execute("SET default_transaction_read_only = on")
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only"):
            prove_writable(reader)
        assert not reader.conn.in_transaction
    finally:
        reader.close()


def test_a_postgresql_write_lock_held_past_the_busy_timeout_fails(pg_db: Db, pg_url: str) -> None:
    import psycopg

    impatient = connect(pg_url, busy_timeout_ms=50)
    try:
        with immediate(pg_db), pytest.raises(psycopg.errors.LockNotAvailable, match="lock"):
            prove_writable(impatient)
        assert not impatient.conn.in_transaction
    finally:
        impatient.close()


def test_a_postgresql_role_that_may_not_create_in_the_schema_fails(pg_db: Db,
                                                                   pg_url: str) -> None:
    import psycopg

    role = f"doctor_{uuid.uuid4().hex[:12]}"  # roles are the cluster's: a name of its own
    pg_db.execute(f"CREATE ROLE {role} NOLOGIN")
    pg_db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # PostgreSQL 15's default
    limited = connect(pg_url)
    try:
        limited.execute(f"SET ROLE {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            prove_writable(limited)
        assert not limited.conn.in_transaction
    finally:
        limited.close()
        pg_db.execute(f"DROP ROLE {role}")
