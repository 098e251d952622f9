"""Can this process write to the database? ``listener doctor``'s database check.

Opening a SQLite file proves little: a read-only file, a read-only mount or a directory the
process may not write to (WAL needs its ``-wal`` and ``-shm`` files next to it) only show at the
first write, in the middle of a run. The probe writes for real and takes it back.

PostgreSQL's connection proves as little: a read-only server (a hot standby the URL reached, a
role or database with ``default_transaction_read_only``), a schema the role may not create in
(PostgreSQL 15 no longer lets every role create in ``public``) or a writer holding the write lock
only show at the first write too. The probe is the same there: it takes the write lock every
write transaction takes (:func:`storage.tx.immediate`'s advisory lock, waited for at most the
busy timeout, as SQLite's ``BEGIN IMMEDIATE`` waits) and creates a table in the schema the verbs
write and the migrations create in, then rolls back. A real table, not a TEMP one: a temporary
table lives in the session's own schema, so it would pass where the listener's schema refuses
to be written. Why not an INSERT into one of the listener's tables: the doctor checks a database
whose migrations may still be pending (a new, empty one), and a table of its own needs none.
"""

from __future__ import annotations

from storage.engine import POSTGRESQL, Db, dialect
from storage.tx import WRITE_LOCK_KEY

# Both engines: a typed column (PostgreSQL needs one; SQLite takes it as an affinity)
_CREATE = "CREATE TABLE _doctor_probe (x INTEGER)"
_PG_WRITE_LOCK = "SELECT pg_advisory_xact_lock(?)"


def prove_writable(db: Db) -> None:
    """Take the write lock and create a table, inside a transaction that is rolled back: nothing
    is left behind. Raises the engine's error (``sqlite3.Error``: read-only, locked past the
    busy timeout, disk I/O…; ``psycopg.Error``: a read-only transaction, no privilege on the
    schema, the lock not granted within the busy timeout) when this process could not write.
    ``db`` must not be inside a transaction already."""
    conn = db.conn
    if dialect(db) == POSTGRESQL:
        conn.execute("BEGIN")  # PostgreSQL's BEGIN takes no lock: the advisory lock below does
        steps = [(_PG_WRITE_LOCK, [WRITE_LOCK_KEY]), (_CREATE, [])]
    else:
        conn.execute("BEGIN IMMEDIATE")  # the write lock: proves we may write
        steps = [(_CREATE, [])]  # proves the pages are writable
    try:
        for sql, params in steps:
            conn.execute(sql, params)
    finally:
        conn.execute("ROLLBACK")
