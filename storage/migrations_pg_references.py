"""PostgreSQL migration pg014: the scores' and the queue's references to posts checked once a
statement, not once a row.

Why. A foreign key is checked by a row trigger: each score inserted queued a check that ran
``SELECT 1 FROM posts WHERE id = $1 FOR KEY SHARE`` on its own, ~14 µs a row on two cores.
For a batch of 8,192 scores (and the ~2,700 queue rows it adds) that was a third of the
statement: 419 → 259 ms without them (``python bench/lock_handoffs.py``'s PostgreSQL save).
The score statement's trigger already locks every post of the batch, in id order, before it
reads them (:mod:`storage.migrations_pg_scores`); counting the posts it locked against the
posts the batch names *is* the check, done once.

What replaces ``scores.post_id`` and ``triage.post_id`` ``REFERENCES posts (id)``, with the
same guarantees and the same SQLSTATE (``23503``, ``psycopg.errors.ForeignKeyViolation``):

* a score naming a post that does not exist fails its statement: ``score_statement`` locks the
  batch's posts (``FOR NO KEY UPDATE``, which a delete waits for) and raises if fewer posts
  were locked than the batch names (a post deleted by a transaction that committed first is
  not locked: it is gone);
* a queue row naming a post that does not exist fails its statement (``triage_posts``, a
  statement trigger: one anti-join, the posts locked ``FOR KEY SHARE`` as a foreign key
  would; the score statement, which writes all of them, already holds them);
* changing a score's or a queue row's ``post_id`` to a post that does not exist fails
  (``scores_post_update``, ``triage_post_update``: row triggers on ``UPDATE OF post_id``, which
  nothing in the listener runs, so they cost nothing);
* deleting a post, or changing its id, while a score or queue row names it fails
  (``posts_referenced_delete`` / ``_update``: row triggers fired only by those statements; the
  listener never deletes a post). A delete waits for the lock of a score statement in flight
  for the post and then sees its scores (each statement of a PL/pgSQL function takes a new
  snapshot).

SQLite keeps its foreign keys: it checks them in the same step as the insert, for next to
nothing. ``CHECKED_REFERENCES`` lists the two, for those that read the schema's foreign keys
(``listener db copy`` fills parents first; the engines' schema test).
"""

# ruff: noqa: S608 -- every statement here is built from this module's constants, no input
from __future__ import annotations

from typing import Any

import psycopg

from storage.migrations_pg_pending import pending_rollups
from storage.migrations_pg_scores import function

# (table, column, referenced table, referenced column): foreign keys on SQLite, checked by
# triggers on PostgreSQL (module docstring)
CHECKED_REFERENCES = (("scores", "post_id", "posts", "id"), ("triage", "post_id", "posts", "id"))

def _missing(table: str, post: str) -> str:
    """RAISE what a foreign key on ``table``.post_id raises for ``post`` (SQL expressions)."""
    return (
        f"RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = {table},"
        f" CONSTRAINT = {table} || '_post_id_fkey', MESSAGE = format('insert or update on table"
        f" \"%s\" violates foreign key constraint \"%s_post_id_fkey\"', {table}, {table}),"
        f" DETAIL = format('Key (post_id)=(%s) is not present in table \"posts\".', {post});"
    )


def _locked_and_counted(rows: str, mode: str, table: str) -> str:
    """A block that locks the posts the transition table ``rows`` names, in id order
    (``mode``: ``NO KEY UPDATE`` or ``KEY SHARE``), and raises for ``table`` when fewer posts
    were locked than named: the foreign key's check, once a statement."""
    return f"""
DECLARE locked bigint; named bigint; missing bigint; BEGIN
SELECT count(*) INTO locked FROM (SELECT id FROM posts WHERE id IN (SELECT post_id FROM {rows})
                                  ORDER BY id FOR {mode}) l;
SELECT count(DISTINCT post_id) INTO named FROM {rows};
IF locked < named THEN
  SELECT min(post_id) INTO missing FROM {rows} n
  WHERE NOT EXISTS (SELECT 1 FROM posts WHERE id = n.post_id);
  {_missing(f"'{table}'", "missing")}
END IF; END;
"""


# score_statement's step 1: the statement's posts locked in id order, and counted
CHECKED_LOCK = _locked_and_counted("new_scores", "NO KEY UPDATE", "scores")

_TRIAGE_INSERT = (
    "CREATE FUNCTION triage_posts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" {_locked_and_counted('new_rows', 'KEY SHARE', 'triage')} RETURN NULL; END $$"
)

_POST_UPDATE = f"""
CREATE FUNCTION post_id_exists() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
IF NEW.post_id IS DISTINCT FROM OLD.post_id
   AND NOT EXISTS (SELECT 1 FROM posts WHERE id = NEW.post_id FOR KEY SHARE) THEN
  {_missing("TG_TABLE_NAME", "NEW.post_id")}
END IF; RETURN NEW; END $$
"""

_REFERENCED = """
CREATE FUNCTION posts_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE referencing text; BEGIN
IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN RETURN NEW; END IF;
IF EXISTS (SELECT 1 FROM scores WHERE post_id = OLD.id) THEN referencing := 'scores';
ELSIF EXISTS (SELECT 1 FROM triage WHERE post_id = OLD.id) THEN referencing := 'triage';
END IF;
IF referencing IS NOT NULL THEN
  RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = referencing,
    CONSTRAINT = referencing || '_post_id_fkey',
    MESSAGE = format('update or delete on table "posts" violates foreign key constraint'
                     ' "%s_post_id_fkey" on table "%s"', referencing, referencing),
    DETAIL = format('Key (id)=(%s) is still referenced from table "%s".', OLD.id, referencing);
END IF;
IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$
"""


def statements() -> tuple[str, ...]:
    """pg014's statements: the two foreign keys dropped, their checks created."""
    return (
        "ALTER TABLE scores DROP CONSTRAINT scores_post_id_fkey",
        "ALTER TABLE triage DROP CONSTRAINT triage_post_id_fkey",
        function(pending_rollups(), replace=True, lock=CHECKED_LOCK),
        _TRIAGE_INSERT,
        "CREATE TRIGGER triage_posts AFTER INSERT ON triage REFERENCING NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION triage_posts()",
        _POST_UPDATE,
        "CREATE TRIGGER scores_post_update BEFORE UPDATE OF post_id ON scores"
        " FOR EACH ROW EXECUTE FUNCTION post_id_exists()",
        "CREATE TRIGGER triage_post_update BEFORE UPDATE OF post_id ON triage"
        " FOR EACH ROW EXECUTE FUNCTION post_id_exists()",
        _REFERENCED,
        "CREATE TRIGGER posts_referenced_delete BEFORE DELETE ON posts"
        " FOR EACH ROW EXECUTE FUNCTION posts_referenced()",
        "CREATE TRIGGER posts_referenced_update BEFORE UPDATE OF id ON posts"
        " FOR EACH ROW EXECUTE FUNCTION posts_referenced()",
    )


def pg014_checked_references(conn: psycopg.Connection[Any]) -> None:
    """The scores' and the queue's references to posts checked per statement (docstring)."""
    for statement in statements():
        conn.execute(statement.encode())
