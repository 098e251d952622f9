"""Can this process write to the database? ``listener doctor``'s database check.

Opening a SQLite file proves little: a read-only file, a read-only mount or a directory the
process may not write to (WAL needs its ``-wal`` and ``-shm`` files next to it) only show at the
first write, in the middle of a run. The probe writes for real and takes it back.
"""

from __future__ import annotations

from storage.engine import Db


def prove_writable(db: Db) -> None:
    """Take the write lock and create a table, inside a transaction that is rolled back: nothing
    is left behind. Raises sqlite3.Error (read-only, locked past the busy timeout, disk I/O…)
    when this process could not write. ``db`` must not be inside a transaction already."""
    db.conn.execute("BEGIN IMMEDIATE")  # the write lock: proves we may write
    try:
        db.conn.execute("CREATE TABLE _doctor_probe (x)")  # proves the pages are writable
    finally:
        db.conn.execute("ROLLBACK")
