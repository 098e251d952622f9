"""The settings every PostgreSQL connection of ours runs with (storage.postgres.connect)."""

from __future__ import annotations

import pytest

from storage import triage
from storage.db import open_db
from tests.pg_server import Server


@pytest.mark.parametrize("times", [1, 8])
def test_every_statement_is_planned_for_its_values(pg_server: Server, times: int) -> None:
    """psycopg prepares a statement run five times; PostgreSQL's generic plan for it then
    serves every status alike, and the queue's count of a status nobody has walked a million
    index entries instead of finding none (239 ms instead of 0.1 ms on 10 million posts).
    Each statement is planned for the values bound, the fifth run and later too."""
    db = open_db(pg_server.new_database())
    try:
        for _ in range(times):
            triage.count_queue(db, triage.QueueFilter(status="assigned"))
        assert db.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
        assert db.execute("SHOW jit").fetchone()[0] == "off"
    finally:
        db.close()


def test_a_write_whose_lock_wait_times_out_leaves_its_connection_ready(
    pg_server: Server,
) -> None:
    """The connection's lock timeout can end the wait for the write lock (another worker
    holds it that long). The wait is part of the write's transaction: it is rolled back and
    fails as a StorageError, and the next write on that connection works; the lock was taken
    outside it before, leaving the connection in an aborted transaction for good."""
    import psycopg

    from listener.core.errors import StorageError
    from storage.tx import WRITE_LOCK_KEY, connect, immediate

    url = pg_server.new_database()
    open_db(url).close()  # migrated
    db = connect(url, busy_timeout_ms=200)
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
        with pytest.raises(StorageError, match="lock timeout"), immediate(db):
            db.execute("INSERT INTO cursors (source, value) VALUES ('a', '1')")
        assert not db.conn.in_transaction
        other.execute("COMMIT")
    with immediate(db):
        db.execute("INSERT INTO cursors (source, value) VALUES ('b', '2')")
    assert [r[0] for r in db.execute("SELECT source FROM cursors").fetchall()] == ["b"]
    db.close()
