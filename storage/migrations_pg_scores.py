"""PostgreSQL migration pg011: one statement trigger on ``scores`` instead of five.

Why. pg005 gave each of the five things a score statement keeps in step (the hour and day
rollups, the same for extra brands, the triage queue) a statement trigger of its own. Each of
the five locked the statement's posts again, found the live scores again (each post's newest
new score, unless a newer one exists), and each rollup joined every post and looked up its
previous score again: four times the same moves, computed per post. And they fired in their
names' order, rollups first: the shared cells were locked before the queue rows (the costliest
part, ~48 µs a queued post) were written, so two score statements running side by side waited
for each other's whole queue work, not only its cells.

``score_statement`` does it once, in this order:

1. lock the statement's posts in id order (``FOR NO KEY UPDATE``, as before);
2. the live scores and each one's move (the post's cell, the label and urgency it leaves: those
   of its newest score older than the statement's first score for it, 'unscored' if none), as
   one array of :data:`MOVE_TYPE` values;
3. the queue rows of those posts, with their search documents (pg010's statement);
4. the rollups from that array: days, hours, then the extra brands' days and hours, each cell's
   summed moves upserted in key order and cells left at zero deleted (pg005's rules).

Same rows as the five triggers (``tests/storage/test_migrations_pg.py`` compares both engines
after every step). The cells come last, so a statement holds the hot rows only from its end
to its commit; the table order (days before hours) is the post rollups' (``post_days_post``
fires before ``post_hours_post``), and within a table the key order, so no two writers take
them in opposite orders.
"""

# ruff: noqa: S608 -- every statement here is built from this module's constants, no input
from __future__ import annotations

from typing import Any

import psycopg

# the pg005/pg010 statement triggers this step replaces (trigger and function share a name)
REPLACED = ("post_hours_score", "post_days_score", "post_hours_extra_score",
            "post_days_extra_score", "triage_score")
NAME = "score_statement"
MOVE_TYPE = "score_move"

_C = 'COLLATE "C"'  # the rollups' key collation: the same key order as their indexes
_TYPE = (
    f"CREATE TYPE {MOVE_TYPE} AS (post_id bigint, score_id bigint, created_at text {_C},"
    f" brand text {_C}, source text {_C}, label text {_C}, urgent integer,"
    f" old_label text {_C}, old_urgent integer)"
)
_LABEL = "CASE WHEN {0}language_supported = 0 THEN 'unsupported' ELSE {0}sentiment END"

# 1. and 2.: the posts locked, then one move per live score (moves: the post's own brand;
# extra: one per extra brand of the post)
_LOCK = ("PERFORM 1 FROM posts WHERE id IN (SELECT post_id FROM new_scores) ORDER BY id"
         " FOR NO KEY UPDATE;")
_MOVES = f"""
SELECT array_agg(ROW(l.post_id, l.id, p.created_at, coalesce(p.brand, ''),
                     coalesce(p.source, ''), b.label, b.urgent,
                     coalesce(b.old_label, 'unscored'), coalesce(b.old_urgent, 0))::{MOVE_TYPE}
                 ORDER BY l.post_id) INTO moves
FROM (SELECT post_id, max(id) AS id, min(id) AS first_id FROM new_scores GROUP BY post_id) l
JOIN posts p ON p.id = l.post_id
CROSS JOIN LATERAL (
  SELECT max(id) AS newest, (array_agg({_LABEL.format("")} ORDER BY id DESC))[1] AS label,
         (array_agg((urgency >= 0.5)::integer ORDER BY id DESC))[1] AS urgent,
         (array_agg({_LABEL.format("")} ORDER BY id DESC) FILTER (WHERE id < l.first_id))[1]
           AS old_label,
         (array_agg((urgency >= 0.5)::integer ORDER BY id DESC)
           FILTER (WHERE id < l.first_id))[1] AS old_urgent
  FROM scores WHERE post_id = l.post_id) b
WHERE b.newest = l.id;
"""
EXTRA = f"""
SELECT array_agg(ROW(m.post_id, m.score_id, m.created_at, e.brand, m.source, m.label, m.urgent,
                     m.old_label, m.old_urgent)::{MOVE_TYPE}) INTO extra
FROM unnest(moves) m JOIN post_extra_brands e ON e.post_id = m.post_id;
"""
# 3.: migrations_pg._TRIAGE_ROW, with pg010's search documents, for the live scores
_TRIAGE = """
DELETE FROM triage WHERE post_id IN (SELECT post_id FROM unnest(moves));
INSERT INTO triage (post_id, score_id, created_at, brand, source, lang, sentiment, urgency,
                    followers, rank, status, supported, search_vector)
SELECT p.id, s.id, p.created_at, p.brand, p.source, coalesce(s.lang, p.lang), s.sentiment,
       s.urgency, greatest(coalesce(p.author_followers, 0), 0),
       s.urgency * length(CAST(greatest(coalesce(p.author_followers, 0), 0) AS TEXT)),
       coalesce((SELECT status FROM post_status WHERE post_id = p.id), 'new'),
       s.language_supported, search_document(p.text)
FROM unnest(moves) m JOIN posts p ON p.id = m.post_id JOIN scores s ON s.id = m.score_id
WHERE p.duplicate_of IS NULL
  AND (s.sentiment = 'negative' OR s.urgency >= 0.5 OR s.language_supported = 0)
ORDER BY p.id;
"""


def signed_moves(source: str) -> str:
    """``source``'s moves (an array of :data:`MOVE_TYPE`) as a table ``d`` of two rows each:
    -1 (and its urgency) from the cell the post leaves, +1 into the cell it enters. Summed per
    cell, in place (:func:`in_place`) or pending (:mod:`storage.migrations_pg_pending`)."""
    return f"""(SELECT created_at, brand, source, old_label AS sentiment, -1 AS n,
               -old_urgent AS urgent FROM unnest({source})
        UNION ALL SELECT created_at, brand, source, label, 1, urgent FROM unnest({source})) d"""


def upsert_cells(table: str, rows: str) -> str:
    """``rows`` (bucket, brand, source, sentiment, n, urgent: one per cell, in key order) added
    into ``table``'s cells; cells left at zero deleted. Shared with the fold of pending moves
    (:mod:`storage.migrations_pg_pending`)."""
    cell = "(bucket, brand, source, sentiment)"
    return f"""
FOR cell IN
  INSERT INTO {table} (bucket, brand, source, sentiment, n, urgent)
  {rows}
  ON CONFLICT {cell} DO UPDATE SET n = {table}.n + excluded.n,
                                   urgent = {table}.urgent + excluded.urgent
  RETURNING bucket, brand, source, sentiment, n
LOOP
  IF cell.n = 0 THEN
    DELETE FROM {table} WHERE {cell} = (cell.bucket, cell.brand, cell.source, cell.sentiment);
  END IF;
END LOOP;
"""


def _rollup(table: str, width: int, source: str) -> str:
    """4.: ``source``'s moves summed per cell of ``table`` (buckets ``width`` characters of
    created_at), upserted in key order; cells left at zero deleted."""
    return upsert_cells(table, f"""SELECT substr(created_at, 1, {width}), brand, source, sentiment, sum(n)::integer,
         sum(urgent)::integer
  FROM {signed_moves(source)}
  GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 OR sum(urgent) <> 0 ORDER BY 1, 2, 3, 4""")


def in_place() -> str:
    """4. as pg011 does it: every cell moved in place, days then hours, own brand then extra."""
    return (f"{_rollup('post_days', 10, 'moves')} {_rollup('post_hours', 13, 'moves')}"
            f" {EXTRA} IF extra IS NOT NULL THEN {_rollup('post_days_extra', 10, 'extra')}"
            f" {_rollup('post_hours_extra', 13, 'extra')} END IF;")


def function(rollups: str | None = None, *, replace: bool = False, lock: str = _LOCK) -> str:
    """The trigger function (module docstring: what it does, in which order); ``rollups``:
    its step 4 (default :func:`in_place`); ``lock``: its step 1 (pg014 also counts the posts
    it locked, :mod:`storage.migrations_pg_references`)."""
    create = "CREATE OR REPLACE FUNCTION" if replace else "CREATE FUNCTION"
    return (
        f"{create} {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" DECLARE moves {MOVE_TYPE}[]; extra {MOVE_TYPE}[]; cell record; BEGIN {lock}"
        f" {_MOVES} IF moves IS NULL THEN RETURN NULL; END IF; {_TRIAGE}"
        f" {rollups if rollups is not None else in_place()} RETURN NULL; END $$"
    )


def statements() -> tuple[str, ...]:
    """pg011's statements: the five triggers dropped, the one created."""
    dropped: list[str] = []
    for name in REPLACED:
        dropped += [f"DROP TRIGGER {name} ON scores", f"DROP FUNCTION {name}()"]
    return (*dropped, _TYPE, function(),
            f"CREATE TRIGGER {NAME} AFTER INSERT ON scores REFERENCING NEW TABLE AS new_scores"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {NAME}()")


def pg011_score_statement(conn: psycopg.Connection[Any]) -> None:
    """Replace the five score statement triggers by one (module docstring)."""
    for statement in statements():
        conn.execute(statement.encode())


# pg013: the two per-row triggers that count a brand added to a stored post under the post's
# current label (pg001's post_*_extra_brand) read that label as pg001 wrote it, "ORDER BY id
# DESC LIMIT 1" over the post's scores: with statistics that make scores look small (a new
# database, a bulk load not analysed yet) PostgreSQL walks the primary key down from the newest
# score filtering on the post, reading most of the table for each brand added (90 ms a row
# beside a busy classify worker, bench/README.md). The same rows, the label found through
# post_id only, as score_statement finds it.
_CURRENT_LABEL = (
    "(SELECT (array_agg(label ORDER BY id DESC))[1] AS label,"
    " (array_agg(urgent ORDER BY id DESC))[1] AS urgent FROM (SELECT id,"
    " CASE WHEN language_supported = 0 THEN 'unsupported' ELSE sentiment END AS label,"
    " (urgency >= 0.5)::integer AS urgent FROM scores WHERE post_id = NEW.post_id) s)"
)


def brand_function(table: str, width: int) -> str:
    """pg013's ``{table}_brand()``: a brand added to a post counted under its current label."""
    return (
        f"CREATE OR REPLACE FUNCTION {table}_brand() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM 1 FROM posts WHERE id = NEW.post_id FOR NO KEY UPDATE;"
        f" INSERT INTO {table} (bucket, brand, source, sentiment, n, urgent)"
        f" SELECT substr(p.created_at, 1, {width}), NEW.brand, coalesce(p.source, ''),"
        " coalesce(c.label, 'unscored'), 1, coalesce(c.urgent, 0)"
        f" FROM posts p CROSS JOIN {_CURRENT_LABEL} c WHERE p.id = NEW.post_id"
        " ON CONFLICT (bucket, brand, source, sentiment) DO UPDATE SET"
        f" n = {table}.n + 1, urgent = {table}.urgent + excluded.urgent;"
        " RETURN NULL; END $$"
    )


def pg013_brand_lookups(conn: psycopg.Connection[Any]) -> None:
    """The extra-brand triggers read a post's current score through post_id only."""
    for table, width in (("post_hours_extra", 13), ("post_days_extra", 10)):
        conn.execute(brand_function(table, width).encode())

