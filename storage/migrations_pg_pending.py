"""PostgreSQL migration pg012: score statements that run side by side, their rollup moves
left pending and folded into the cells a moment later.

Why. Each score statement moves its posts between the rollups' cells, and the cells are hot
rows: every post of an hour and brand shares its 'unscored' cell and a cell per label. Writers
moving a cell in place hold it to their commit, so score writes ran one at a time (behind the
one write lock, :mod:`storage.tx`), and one server process could not write the ~30,000 scores
a second a GPU makes (issue #17: ~53 µs of server time a score, a third of them queued). Worse,
side by side with pages of posts they would deadlock: a page holds its posts' 'unscored' cells
from its insert to its commit and, linking cross-posts or adding a brand, may wait for a post
a score statement holds; that statement, holding its posts, would wait for the cells.

So a statement writing scores under the *shared* write lock (``storage.db.save_scores``, which
sets ``listener.rollups`` to ``pending`` for its transaction) does not touch a cell: its moves,
summed per cell, are appended to ``rollup_pending`` (no key, so appends never wait for each
other), one row per cell and rollup. Everything else it does is as before: its posts locked in
id order, the queue rows, the moves computed once (:mod:`storage.migrations_pg_scores`). The
only rows a score statement and a page can then both wait for are posts, and a score statement
takes those first, in id order, holding nothing a page holds. Any other insert into ``scores``
(no setting) still moves the cells in place, as SQLite does (the engines' equivalence tests
run that way).

``fold_rollup_pending()`` adds the pending rows into their cells (in key order; cells left at
zero deleted, as always) and deletes them; ``save_scores`` calls it after each transaction,
under the exclusive write lock when it is free at once (:mod:`storage.rollups`). Until then
the cells plus the pending rows are the counts: ``storage.trends`` reads both, so no reader
ever sees a score without its move. Sums commute, so the order in which moves are folded
changes nothing, and a fold sees every pending row committed before it (no score statement runs
beside it).
"""

# ruff: noqa: S608 -- every statement here is built from this module's constants, no input
from __future__ import annotations

from typing import Any

import psycopg

from storage.migrations_pg_scores import EXTRA, function, in_place, signed_moves, upsert_cells
from storage.rollups import FOLD, PENDING, ROLLUPS, SETTING

_C = 'TEXT COLLATE "C"'
_TABLE = (f"CREATE TABLE {PENDING} (rollup {_C} NOT NULL, bucket {_C} NOT NULL,"
          f" brand {_C} NOT NULL, source {_C} NOT NULL, sentiment {_C} NOT NULL,"
          " n INTEGER NOT NULL, urgent INTEGER NOT NULL)")


def _pending(source: str) -> str:
    """``source``'s moves (``moves`` or ``extra``), summed per cell of its two rollups, appended."""
    tables = ", ".join(f"('{table}', {width})" for table, width, s in ROLLUPS if s == source)
    return f"""
INSERT INTO {PENDING} (rollup, bucket, brand, source, sentiment, n, urgent)
SELECT r.rollup, substr(d.created_at, 1, r.width), d.brand, d.source, d.sentiment,
       sum(d.n)::integer, sum(d.urgent)::integer
FROM {signed_moves(source)}
CROSS JOIN (VALUES {tables}) AS r (rollup, width)
GROUP BY 1, 2, 3, 4, 5 HAVING sum(d.n) <> 0 OR sum(d.urgent) <> 0;
"""


def pending_rollups() -> str:
    """Step 4 of score_statement: pending with the setting, in place without."""
    return (f"IF current_setting('{SETTING}', true) = 'pending' THEN {_pending('moves')}"
            f" {EXTRA} IF extra IS NOT NULL THEN {_pending('extra')} END IF;"
            f" ELSE {in_place()} END IF;")


def _fold_one(table: str) -> str:
    return upsert_cells(table, f"""SELECT bucket, brand, source, sentiment, sum(n)::integer, sum(urgent)::integer
  FROM {PENDING} WHERE rollup = '{table}'
  GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 OR sum(urgent) <> 0 ORDER BY 1, 2, 3, 4""")


def fold_function() -> str:
    """``fold_rollup_pending()``: every pending row into its cell; how many rows were folded.
    The table lock keeps a score statement from appending between the sums and the delete
    (where the exclusive write lock is held, as :mod:`storage.rollups` takes it, none runs)."""
    folds = " ".join(_fold_one(table) for table, _, _ in ROLLUPS)
    return (
        f"CREATE FUNCTION {FOLD}() RETURNS bigint LANGUAGE plpgsql AS $$"
        f" DECLARE cell record; folded bigint; BEGIN"
        f" LOCK TABLE {PENDING} IN EXCLUSIVE MODE; {folds}"
        f" DELETE FROM {PENDING}; GET DIAGNOSTICS folded = ROW_COUNT; RETURN folded; END $$"
    )


def statements() -> tuple[str, ...]:
    """pg012's statements."""
    return (_TABLE, function(pending_rollups(), replace=True), fold_function())


def pg012_pending_rollups(conn: psycopg.Connection[Any]) -> None:
    """Score statements under the shared write lock leave their moves pending (docstring)."""
    for statement in statements():
        conn.execute(statement.encode())
