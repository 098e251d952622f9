"""PostgreSQL migration pg005: the rollup and queue triggers on ``posts`` and ``scores`` run
once per statement, not once per row.

Why. pg001's row triggers do, for every post stored, one upsert per rollup, and for every score
written, five functions with four to six queries each (lock the post, look for a newer score,
read the previous one, move the cell, drop an empty cell, add the new cell, redo the queue row).
On two cores that capped ingest at ~16,000 posts per CPU-second and the classify stage's writes
at ~1,500 scores/s, when the same statements without triggers ran at ~34,000 (issue #17's
figures). A statement trigger reads the statement's rows as a transition table
(``REFERENCING NEW TABLE``) and moves every cell it touches with one grouped upsert: the work
is per cell, not per row, and a page of 1,000 posts of one hour and brand is one cell update.
COPY fires statement triggers with their transition tables too, so the COPY ingest path
(``storage.db._copy_posts``) keeps the rollups as ``INSERT`` does.

Same rows as before, as SQLite's row triggers give (``tests/storage/test_migrations_pg.py``
compares them after every step, including statements of several rows):

* A post's rows are locked first, in id order (``FOR NO KEY UPDATE``, as the row triggers
  lock one; the order keeps two statements locking overlapping posts from deadlocking).
* The post's current score after the statement is its newest new one, unless a newer score
  exists (committed meanwhile by another transaction, or given a higher id explicitly): then
  nothing moves for that post, as the row triggers' "superseded" test says.
* The cell the post leaves is the label of its newest score older than the statement's first
  score for it ('unscored' if none): several scores of one post in one statement move it once,
  from where it was to where the last one puts it, which is where SQLite's row-by-row moves end.
* Each touched cell gets the sum of its moves in one upsert (cells in key order); a cell whose
  count falls to zero is deleted, as the row triggers delete it.

The names, tables, events and timings are the row triggers' (and SQLite's), so the trigger
catalogue reads as before; only ``FOR EACH STATEMENT`` differs. Triggers on other tables
(extra brands, statuses, the search document) fire for a few rows at a time and stay per row;
since pg010 the queue rows a score statement adds carry their search document already, and
the per-row ``triage_fts_insert`` makes one only for a row inserted without.
"""

# ruff: noqa: S608 -- every statement here is built from this module's constants, no input
from __future__ import annotations

from typing import Any

import psycopg

# the row triggers pg001 created that this step replaces (trigger and function share a name)
_REPLACED = (
    ("post_hours_post", "posts"), ("post_days_post", "posts"),
    ("post_hours_score", "scores"), ("post_days_score", "scores"),
    ("post_hours_extra_score", "scores"), ("post_days_extra_score", "scores"),
    ("triage_score", "scores"),
)
_LABEL = "CASE WHEN {0}language_supported = 0 THEN 'unsupported' ELSE {0}sentiment END"
_CELL = "(bucket, brand, source, sentiment)"
_COLUMNS = "(bucket, brand, source, sentiment, n, urgent)"

# the statement's posts locked in id order, then its live scores: each post's newest new one,
# unless a newer score exists; with the post's cell and the cell it leaves ({posts}: how the
# post's cells are found, {width}: the bucket's width)
_LOCK = ("PERFORM 1 FROM posts WHERE id IN (SELECT post_id FROM new_scores) ORDER BY id"
         " FOR NO KEY UPDATE;")
_MOVES = f"""
WITH newest AS (
  SELECT post_id, max(id) AS id, min(id) AS first_id FROM new_scores GROUP BY post_id),
live AS (
  SELECT n.post_id, s.id, s.first_id, {_LABEL.format("n.")} AS label,
         (n.urgency >= 0.5)::integer AS urgent
  FROM newest s JOIN new_scores n ON n.id = s.id
  WHERE NOT EXISTS (SELECT 1 FROM scores x WHERE x.post_id = s.post_id AND x.id > s.id)),
moves AS (
  SELECT substr(p.created_at, 1, {{width}}) AS bucket, {{brand}} AS brand,
         coalesce(p.source, '') AS source, l.label, l.urgent,
         coalesce(b.label, 'unscored') AS old_label, coalesce(b.urgent, 0) AS old_urgent
  FROM live l JOIN posts p ON p.id = l.post_id {{posts}}
  LEFT JOIN LATERAL (
    SELECT {_LABEL.format("")} AS label, (urgency >= 0.5)::integer AS urgent FROM scores
    WHERE post_id = l.post_id AND id < l.first_id ORDER BY id DESC LIMIT 1) b ON true),
deltas AS (
  SELECT bucket, brand, source, sentiment, sum(n)::integer AS n, sum(urgent)::integer AS urgent
  FROM (SELECT bucket, brand, source, old_label AS sentiment, -1 AS n, -old_urgent AS urgent
        FROM moves
        UNION ALL SELECT bucket, brand, source, label, 1, urgent FROM moves) AS m
  GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 OR sum(urgent) <> 0)
"""


def _function(name: str, body: str) -> str:
    return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" {body} RETURN NULL; END $$")


def _statement_trigger(name: str, table: str, rows: str) -> str:
    return (f"CREATE TRIGGER {name} AFTER INSERT ON {table} REFERENCING NEW TABLE AS {rows}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()")


def _post_rollup(table: str, width: int) -> tuple[str, str]:
    """New posts count as 'unscored' in their cells: one upsert per cell."""
    body = (
        f"BEGIN INSERT INTO {table} {_COLUMNS}"
        f" SELECT substr(created_at, 1, {width}), coalesce(brand, ''), coalesce(source, ''),"
        " 'unscored', count(*), 0 FROM new_posts GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        f" ON CONFLICT {_CELL} DO UPDATE SET n = {table}.n + excluded.n;"
    )
    name = f"{table}_post"
    return _function(name, body), _statement_trigger(name, "posts", "new_posts")


def _score_rollup(table: str, width: int, *, extra: bool) -> tuple[str, str]:
    """Each live score moves its post (or, for the extra rollups, each of the post's extra
    brands) from the cell it leaves to its new one: the summed moves upserted per cell, and
    the cells left at zero deleted."""
    if extra:
        moves = _MOVES.format(width=width, brand="e.brand",
                              posts="JOIN post_extra_brands e ON e.post_id = l.post_id")
    else:
        moves = _MOVES.format(width=width, brand="coalesce(p.brand, '')", posts="")
    body = (
        f"DECLARE cell record; BEGIN {_LOCK}"
        f" FOR cell IN {moves} INSERT INTO {table} {_COLUMNS}"
        f" SELECT * FROM deltas ORDER BY 1, 2, 3, 4 ON CONFLICT {_CELL} DO UPDATE"
        f" SET n = {table}.n + excluded.n, urgent = {table}.urgent + excluded.urgent"
        " RETURNING bucket, brand, source, sentiment, n LOOP"
        f" IF cell.n = 0 THEN DELETE FROM {table} WHERE {_CELL} ="
        " (cell.bucket, cell.brand, cell.source, cell.sentiment); END IF; END LOOP;"
    )
    name = f"{table}_score"
    return _function(name, body), _statement_trigger(name, "scores", "new_scores")


# migrations_pg._TRIAGE_ROW for the statement's live scores
_TRIAGE = (
    "DECLARE live bigint[]; BEGIN " + _LOCK +
    " SELECT array_agg(s.id) INTO live FROM (SELECT post_id, max(id) AS id FROM new_scores"
    " GROUP BY post_id) s WHERE NOT EXISTS (SELECT 1 FROM scores x WHERE x.post_id = s.post_id"
    " AND x.id > s.id);"
    " DELETE FROM triage WHERE post_id IN (SELECT post_id FROM scores WHERE id = ANY(live));"
    " INSERT INTO triage (post_id, score_id, created_at, brand, source, lang, sentiment, urgency,"
    " followers, rank, status, supported)"
    " SELECT p.id, s.id, p.created_at, p.brand, p.source, coalesce(s.lang, p.lang), s.sentiment,"
    " s.urgency, greatest(coalesce(p.author_followers, 0), 0), s.urgency * length(CAST("
    "greatest(coalesce(p.author_followers, 0), 0) AS TEXT)), coalesce((SELECT status"
    " FROM post_status WHERE post_id = p.id), 'new'), s.language_supported FROM posts p"
    " JOIN scores s ON s.post_id = p.id WHERE s.id = ANY(live) AND p.duplicate_of IS NULL"
    " AND (s.sentiment = 'negative' OR s.urgency >= 0.5 OR s.language_supported = 0)"
    " ORDER BY p.id;"
)


# pg010 (storage.migrations_pg): the statement also writes each queued post's search document,
# set-based. Made by triage_fts_insert, a row trigger, each document cost ~108 µs (the trigger's
# query re-planned search_document's body for every row), 60 % of a score batch's time.
_TRIAGE_WITH_DOCUMENTS = _TRIAGE.replace(
    " followers, rank, status, supported)", " followers, rank, status, supported, search_vector)"
).replace(" s.language_supported FROM posts p", " s.language_supported, search_document(p.text)"
          " FROM posts p")  # tests/storage/test_migrations_pg.py checks both replacements took


def triage_with_documents() -> tuple[str, str]:
    """pg010's statements: triage_score writes the documents; triage_fts_insert makes one only
    for a row inserted without (a statement of its own elsewhere)."""
    return (
        f"CREATE OR REPLACE FUNCTION triage_score() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" {_TRIAGE_WITH_DOCUMENTS} RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION triage_fts_insert() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.search_vector IS NULL THEN NEW.search_vector := (SELECT"
        " search_document(text) FROM posts WHERE id = NEW.post_id); END IF; RETURN NEW; END $$",
    )


def statements() -> tuple[str, ...]:
    """pg005's statements: the row triggers dropped, the statement triggers created."""
    dropped: list[str] = []
    for name, table in _REPLACED:
        dropped += [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    created = [
        *_post_rollup("post_hours", 13), *_post_rollup("post_days", 10),
        *_score_rollup("post_hours", 13, extra=False),
        *_score_rollup("post_days", 10, extra=False),
        *_score_rollup("post_hours_extra", 13, extra=True),
        *_score_rollup("post_days_extra", 10, extra=True),
        _function("triage_score", _TRIAGE),
        _statement_trigger("triage_score", "scores", "new_scores"),
    ]
    return (*dropped, *created)


def pg005_statement_triggers(conn: psycopg.Connection[Any]) -> None:
    """Replace the row triggers on posts and scores by statement triggers (module docstring)."""
    for statement in statements():
        conn.execute(statement.encode())
