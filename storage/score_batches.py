"""Scores saved a batch at a time on SQLite: each rollup and the triage queue moved by one
statement for the whole batch, instead of five row triggers per score (migration 016).

Why: the classify stage writes thousands of scores per transaction, and each score ran five
row triggers (two rollups, two extra-brand rollups, the queue), each a sub-program that looks
up the post and the post's previous score again: ~27 of ~31 µs a score on two cores, which
capped SQLite at ~33,000 scores/s — the rate a GPU classify worker must exceed
(bench/classify_stage.py). One statement per table finds each previous score once and moves
each cell once per batch, as PostgreSQL's statement trigger does
(:mod:`storage.migrations_pg_scores`).

The row triggers stay for every other insert into ``scores`` (a repair, a test, a command of
tomorrow): they step aside only while the gate table :data:`GATE` holds its row. That row
exists only inside :func:`save`'s transaction, which holds SQLite's one write lock, so no
other connection ever sees it, and a rollback removes it with the batch.

The batch's statements (:data:`MOVES`) run as one, from a TEMP trigger fired by the row that
ends the batch (:data:`SETUP`): a batch is then six statements from Python (one more per
:data:`SCORES_PER_STATEMENT` scores) instead of twenty, each a hand-over of the interpreter
lock to the classify stage's other threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from listener.core.errors import StorageError
from storage.engine import Db

GATE = "score_batch"
# a score trigger's condition: no batch is being saved (an empty table's one page read)
TRIGGERS_ON = f"NOT EXISTS (SELECT 1 FROM {GATE})"  # noqa: S608 (constant)
GATE_TABLE = f"CREATE TABLE {GATE} (open INTEGER PRIMARY KEY CHECK (open = 1))"
SCORES_PER_STATEMENT = 2000  # x 12 values: within SQLite's 32,766 bound parameters
ROLLUPS = (("post_hours", 13), ("post_days", 10))  # table, characters of created_at kept


def label(prefix: str = "") -> str:
    """The rollup cell a score counts in (migration 009): its sentiment, or 'unsupported' when
    no configured model covers the post's language, so trends count those posts apart."""
    return (f"CASE WHEN {prefix}language_supported = 0 THEN 'unsupported'"
            f" ELSE {prefix}sentiment END")


def save(db: Db, rows: Sequence[Sequence[Any]]) -> int:
    """Insert score rows (``storage.db.score_values``) inside the caller's write transaction,
    then move the rollups and the queue for all of them; how many were new (a re-score by the
    same model version is ignored)."""
    with batch(db):
        return insert_rows(db, rows)


def insert_rows(db: Db, rows: Sequence[Sequence[Any]]) -> int:
    """The score rows inserted, nothing more; how many were new. Inside :func:`batch` the
    batch moves the rollups and the queue; outside, the row triggers do, score by score."""
    saved = 0
    # statements of SCORES_PER_STATEMENT rows, each one step with the GIL released
    # (executemany steps and re-takes the GIL per row): twice the rows per second, and the
    # classify stage's other threads run meanwhile (bench/classify_stage.py)
    for start in range(0, len(rows), SCORES_PER_STATEMENT):
        part = rows[start:start + SCORES_PER_STATEMENT]
        cur = db.conn.execute(_insert(len(part)), [v for row in part for v in row])
        saved += max(int(cur.rowcount), 0)
    return saved


@contextmanager
def batch(db: Db) -> Iterator[None]:
    """Scores inserted inside this block (in the caller's write transaction) skip the row
    triggers; at its end the rollups and the queue move for all of them at once. On an
    exception nothing moves: the caller's rollback takes the gate's row and the scores back."""
    if not db.conn.in_transaction:  # the gate and the ids below hold only under the write lock
        raise StorageError("a batch of scores must run inside a write transaction")
    db.conn.execute(f"INSERT INTO {GATE} VALUES (1)")  # noqa: S608 (constant)
    # the new scores are those above ``first``: scores.id is the rowid, and this connection
    # alone writes until it commits
    first = db.conn.execute("SELECT coalesce(max(id), 0) FROM scores").fetchone()[0]
    yield
    try:
        db.conn.execute(_END_BATCH, [first])
    except sqlite3.OperationalError as exc:  # this connection's first batch (or rolled back)
        if _END not in str(exc):
            raise
        for statement in SETUP:
            db.conn.execute(statement)
        db.conn.execute(_END_BATCH, [first])


def _insert(count: int) -> str:
    """The INSERT of ``count`` score rows (one text per count: sqlite3 caches it prepared)."""
    return (
        "INSERT INTO scores (post_id, model, model_version, sentiment, p_negative, p_neutral,"  # noqa: S608 (placeholders)
        " p_positive, urgency, lang, language_supported, scored_by, scored_at) VALUES "
        + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * count)
        + " ON CONFLICT(post_id, model, model_version) DO NOTHING"
    )


# The batch's moves between cells, per post and cell, with the post's cell key: +1 into each
# new score's cell, -1 out of the cell of the score it follows (the post's previous score, or
# 'unscored'). A post scored twice in one batch moves through both; what cancels out is left
# out.
_NEW = "FROM scores s WHERE s.id > :first"
_PREVIOUS = "(SELECT max(id) FROM scores WHERE post_id = s.post_id AND id < s.id)"
_MOVES_OF_BATCH = (
    "INSERT INTO temp.score_moves"  # noqa: S608 (constants)
    " SELECT m.post_id, p.created_at, coalesce(p.brand, ''), coalesce(p.source, ''), m.sentiment,"
    " m.n, m.urgent FROM (SELECT post_id, sentiment, sum(n) AS n, sum(urgent) AS urgent FROM ("
    f" SELECT s.post_id, {label('s.')} AS sentiment, 1 AS n, s.urgency >= 0.5 AS urgent {_NEW}"
    f" UNION ALL SELECT s.post_id, coalesce({label('o.')}, 'unscored'), -1,"
    f" -coalesce(o.urgency >= 0.5, 0) FROM scores s LEFT JOIN scores o ON o.id = {_PREVIOUS}"
    " WHERE s.id > :first)"
    " GROUP BY post_id, sentiment HAVING sum(n) <> 0 OR sum(urgent) <> 0) m"
    " CROSS JOIN posts p ON p.id = m.post_id"
)
_UPSERT = ("ON CONFLICT (bucket, brand, source, sentiment) DO UPDATE"
           " SET n = n + excluded.n, urgent = urgent + excluded.urgent")


def _cells(table: str, width: int, extra: bool) -> tuple[str, str]:
    """``table``'s two statements: add the moves, summed per cell; drop the cells they left
    empty (the row triggers leave no cell at 0 either). ``extra``: the extra-brand rollup,
    one cell per brand beyond the post's first."""
    # CROSS JOIN: SQLite's way to keep the batch's moves the outer loop, whatever statistics
    # say about the extra brands (a small table once analyzed is still read by key)
    brand, join = "m.brand", ""
    if extra:
        brand, join = "e.brand", " CROSS JOIN post_extra_brands e ON e.post_id = m.post_id"
    key = f"substr(m.created_at, 1, {width}), {brand}, m.source"
    moved = f"FROM temp.score_moves m{join}"
    return (
        f"INSERT INTO {table} (bucket, brand, source, sentiment, n, urgent)"  # noqa: S608 (constants)
        f" SELECT {key}, m.sentiment, sum(m.n), sum(m.urgent) {moved} WHERE true"
        f" GROUP BY 1, 2, 3, 4 HAVING sum(m.n) <> 0 OR sum(m.urgent) <> 0 {_UPSERT}",
        f"DELETE FROM {table} WHERE n = 0 AND (bucket, brand, source) IN"  # noqa: S608 (constants)
        f" (SELECT {key} {moved})",
    )


# the queue row of a post whose score is negative, help-seeking or not understood (migration
# 009's, which its row trigger and the batch both insert)
TRIAGE_ROW = (
    "SELECT p.id, s.id, p.created_at, p.brand, p.source, coalesce(s.lang, p.lang), s.sentiment,"
    " s.urgency, max(coalesce(p.author_followers, 0), 0), s.urgency * length(CAST(max(coalesce("
    "p.author_followers, 0), 0) AS TEXT)), coalesce((SELECT status FROM post_status"
    " WHERE post_id = p.id), 'new'), s.language_supported FROM posts p"
    " JOIN scores s ON s.post_id = p.id WHERE p.duplicate_of IS NULL"
    " AND (s.sentiment = 'negative' OR s.urgency >= 0.5 OR s.language_supported = 0)"
)


def _queue() -> tuple[str, str]:
    """The queue rows of the batch's posts, from each post's newest score, as the row trigger
    leaves them (its delete and insert fire the search index's own triggers)."""
    return (
        f"DELETE FROM triage WHERE post_id IN (SELECT s.post_id {_NEW})",  # noqa: S608 (constants)
        # each post's newest: a later score of the same post is looked up from the batch's
        # rows (``IN (SELECT max(id) … GROUP BY post_id)`` was planned as a walk of the whole
        # scores index, in post order: every score ever saved, for each batch)
        f"INSERT INTO triage {TRIAGE_ROW} AND s.id > :first AND NOT EXISTS"  # noqa: S608 (constants)
        " (SELECT 1 FROM scores later WHERE later.post_id = s.post_id AND later.id > s.id)",
    )


MOVES = (
    "CREATE TEMP TABLE IF NOT EXISTS score_moves (post_id INTEGER NOT NULL,"
    " created_at TEXT NOT NULL, brand TEXT NOT NULL, source TEXT NOT NULL,"
    " sentiment TEXT NOT NULL, n INTEGER NOT NULL, urgent INTEGER NOT NULL)",
    "DELETE FROM temp.score_moves",
    _MOVES_OF_BATCH,
    *(s for table, width in ROLLUPS for s in _cells(table, width, extra=False)),
    *(s for table, width in ROLLUPS for s in _cells(f"{table}_extra", width, extra=True)),
    *_queue(),
)


# The end of a batch is one statement: a row inserted into a TEMP table whose TEMP trigger runs
# the moves above (``:first`` read from that row), then closes the gate and deletes the row.
# Why not the statements one by one: Python's sqlite3 gives the interpreter lock up and takes
# it back for each statement, and beside a thread busy in Python (the GPU's scoring thread)
# each take waits for that thread's switch interval: 16 statements a batch cost a batch of
# 8,192 scores ~120 ms more there (132 ms alone, 252 ms beside; python bench/lock_handoffs.py).
# Each connection creates the table and trigger at its first batch (TEMP objects are its own;
# a rollback of that batch takes them back, and the next batch creates them again).
_END = "score_batch_end"
_CLOSE = (f"DELETE FROM {GATE}", f"DELETE FROM {_END}")  # noqa: S608 (constants)


def _in_trigger(statement: str) -> str:
    """A statement of :data:`MOVES` as the trigger runs it: the batch's first id from the row
    that fires it, the moves table by its bare name (a trigger's statements name no schema;
    TEMP comes first in the search)."""
    return statement.replace(":first", "new.first").replace("temp.score_moves", "score_moves")


SETUP = (
    MOVES[0],
    f"CREATE TEMP TABLE IF NOT EXISTS {_END} (first INTEGER NOT NULL)",
    f"CREATE TEMP TRIGGER IF NOT EXISTS score_batch_moves AFTER INSERT ON {_END} BEGIN "  # noqa: S608 (constants)
    + " ".join(f"{_in_trigger(statement)};" for statement in (*MOVES[1:], *_CLOSE))
    + " END",
)
_END_BATCH = f"INSERT INTO temp.{_END} VALUES (?)"  # noqa: S608 (constant)
