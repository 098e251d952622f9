"""The rollups' pending moves on PostgreSQL: folded into the cells, and read with them.

Score batches written side by side leave their posts' moves between cells pending
(:mod:`storage.migrations_pg_pending` says why). :func:`fold` adds them into the cells when no
write is in flight, without waiting for one; :func:`cells` is what a reader of a rollup reads,
the cells and the pending rows together, so counts are exact at every moment whether or not a
fold has run. SQLite moves its cells in place (one writer at a time): nothing is ever pending
there.
"""

from __future__ import annotations

from storage.engine import Db
from storage.tx import exclusive_if_free, immediate

# the table of pending moves, the function that folds them (migration pg012), and the
# transaction-local setting with which a score statement leaves its moves pending
PENDING = "rollup_pending"
FOLD = "fold_rollup_pending"
SETTING = "listener.rollups"
# each rollup, the width of its bucket, and the moves it counts (the post's own brand, or extra)
ROLLUPS = (("post_days", 10, "moves"), ("post_hours", 13, "moves"),
           ("post_days_extra", 10, "extra"), ("post_hours_extra", 13, "extra"))
_TABLES = frozenset(table for table, _, _ in ROLLUPS)
# pending rows beyond which a writer waits for its fold rather than leave it to the next one:
# readers scan them (a fold that keeps failing to find the lock free would let them grow)
FOLD_WAIT_ROWS = 50_000


def _postgresql(db: Db) -> bool:
    return getattr(db, "dialect", "sqlite") == "postgresql"


def fold(db: Db) -> int:
    """Fold every pending move into its cell if the write lock is free now (else leave them to
    the next call, unless :data:`FOLD_WAIT_ROWS` are waiting: then wait for it); how many
    pending rows were folded. Outside a transaction of the caller's."""
    if not _postgresql(db) or db.conn.in_transaction:
        return 0
    with exclusive_if_free(db) as held:
        if held:
            return int(db.execute(f"SELECT {FOLD}()").fetchone()[0])
    waiting = db.execute(f"SELECT count(*) FROM (SELECT 1 FROM {PENDING} LIMIT ?) p",  # noqa: S608
                         [FOLD_WAIT_ROWS + 1]).fetchone()[0]
    if waiting <= FOLD_WAIT_ROWS:
        return 0
    with immediate(db):
        return int(db.execute(f"SELECT {FOLD}()").fetchone()[0])


def cells(db: Db, table: str) -> str:
    """What to read ``FROM`` for rollup ``table``: its cells, and on PostgreSQL its pending
    moves with them (several rows per cell: readers sum ``n`` and ``urgent`` by cell, as the
    trends do)."""
    if table not in _TABLES:  # a constant of the caller's, never user text
        raise ValueError(f"not a rollup: {table!r}")
    columns = "bucket, brand, source, sentiment, n, urgent"
    if not _postgresql(db):
        return table
    return (f"(SELECT {columns} FROM {table} UNION ALL SELECT {columns} FROM {PENDING}"  # noqa: S608
            f" WHERE rollup = '{table}')")
