"""A score and a queue row always name a stored post, on both engines.

SQLite checks ``scores.post_id`` and ``triage.post_id`` with foreign keys; PostgreSQL, since
pg014, with triggers that check a whole statement at once (:mod:`storage.migrations_pg_references`:
a per-row foreign-key check was a third of a score batch's time there). These tests hold both
engines to the same refusals, and PostgreSQL's checks to the races a foreign key covers: a post
deleted while a batch of scores for it is in flight, and the other way round.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from listener.core.models import Page, Post, Score
from storage.db import save_scores, store_page
from storage.engine import Db, dialect
from storage.tx import immediate
from tests.pg_server import Server
from tests.storage.pg_threads import in_thread, wait_for_lock

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (.[postgresql])")

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
REFUSED = (sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)
FOREIGN_KEY = r"foreign key constraint|FOREIGN KEY constraint"  # not NOT NULL, UNIQUE, CHECK


def _posts(db: Db, count: int) -> list[int]:
    store_page(db, "test", Page([Post("x", f"p{i}", f"the app crashes {i}", NOW, source="test",
                                      lang="en") for i in range(count)]), NOW)
    return [int(r[0]) for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]


def _negative(post_id: int) -> tuple[int, Score, None]:
    return (post_id, Score("negative", 0.8, 0.1, 0.1, 0.7, "m", "1", "en"), None)


def _count(db: Db, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 (constants)


def test_a_batch_naming_a_post_that_does_not_exist_is_refused_whole(any_db: Db) -> None:
    ids = _posts(any_db, 3)
    with pytest.raises(REFUSED, match=FOREIGN_KEY):
        save_scores(any_db, [_negative(ids[0]), _negative(ids[-1] + 100), _negative(ids[1])],
                    NOW)
    assert (_count(any_db, "scores"), _count(any_db, "triage")) == (0, 0)
    assert save_scores(any_db, [_negative(i) for i in ids], NOW) == 3  # the real ones do
    assert _count(any_db, "triage") == 3


@pytest.mark.parametrize("statement", [
    "UPDATE scores SET post_id = ? WHERE post_id = ?",
    "UPDATE triage SET post_id = ? WHERE post_id = ?",
])
def test_a_reference_moved_to_no_post_is_refused(any_db: Db, statement: str) -> None:
    ids = _posts(any_db, 2)
    save_scores(any_db, [_negative(ids[0])], NOW)
    with pytest.raises(REFUSED, match=FOREIGN_KEY), immediate(any_db):
        any_db.execute(statement, [ids[-1] + 100, ids[0]])
    with immediate(any_db):  # to a post that exists: allowed, as a foreign key allows it
        any_db.execute(statement, [ids[1], ids[0]])


def test_a_queue_row_for_no_post_is_refused(any_db: Db) -> None:
    ids = _posts(any_db, 1)
    save_scores(any_db, [_negative(ids[0])], NOW)
    with pytest.raises(REFUSED, match=FOREIGN_KEY), immediate(any_db):
        any_db.execute(
            "INSERT INTO triage (post_id, score_id, created_at, sentiment, urgency, followers,"
            " rank, status, supported) SELECT post_id + 100, id, ?, 'negative', 0.5, 0, 0,"
            " 'new', 1 FROM scores", ["2026-12-06T12:00:00Z"])


@pytest.mark.parametrize("statement", ["DELETE FROM posts WHERE id = ?",
                                       "UPDATE posts SET id = id + 100 WHERE id = ?"])
def test_a_scored_or_queued_post_cannot_be_deleted_or_renumbered(any_db: Db,
                                                                 statement: str) -> None:
    ids = _posts(any_db, 2)
    save_scores(any_db, [_negative(ids[0])], NOW)
    with pytest.raises(REFUSED, match=FOREIGN_KEY), immediate(any_db):
        any_db.execute(statement, [ids[0]])
    if dialect(any_db) == "postgresql":  # the queue row alone holds it too (SQLite: its FK)
        with immediate(any_db):  # the scores gone, their queue row left naming the post
            any_db.execute("ALTER TABLE scores DISABLE TRIGGER USER")
            any_db.execute("DELETE FROM scores")
            any_db.execute("ALTER TABLE scores ENABLE TRIGGER USER")
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="triage"), \
                immediate(any_db):
            any_db.execute(statement, [ids[0]])
    with immediate(any_db):  # a post nothing names: free to go
        any_db.execute(statement, [ids[1]])


# -- PostgreSQL: the races a foreign key covers ------------------------------------------------


def test_a_batch_for_a_post_deleted_meanwhile_is_refused(pg_server: Server) -> None:
    """The post's delete is in flight when the batch comes; it commits; the batch fails."""
    from storage.db import open_db

    url = pg_server.new_database()
    db, watch = open_db(url), open_db(url)
    ids = _posts(db, 3)
    with psycopg.connect(url) as deleter:
        deleter.execute("DELETE FROM posts WHERE id = %s", [ids[1]])  # open, uncommitted
        held = in_thread(db, lambda d: save_scores(d, [_negative(i) for i in ids], NOW))
        wait_for_lock(watch, held.pid, "the batch")
        deleter.commit()
    held.thread.join(20)
    assert [type(e) for e in held.errors] == [psycopg.errors.ForeignKeyViolation]
    [refused] = held.errors
    assert isinstance(refused, psycopg.errors.ForeignKeyViolation)
    assert f"Key (post_id)=({ids[1]}) is not present" in str(refused.diag.message_detail)
    assert _count(watch, "scores") == 0
    db.close()
    watch.close()


def test_a_delete_waiting_for_a_batch_in_flight_is_refused_once_it_commits(
    pg_server: Server,
) -> None:
    from storage.db import open_db

    url = pg_server.new_database()
    db, watch = open_db(url), open_db(url)
    ids = _posts(db, 2)
    saved = threading.Event()
    with psycopg.connect(url) as batch:  # a batch of scores, in flight: not committed yet
        batch.execute("INSERT INTO scores (post_id, model, model_version, sentiment, p_negative,"
                      " p_neutral, p_positive, urgency, lang, language_supported, scored_by,"
                      " scored_at) VALUES (%s, 'm', '1', 'negative', 0.8, 0.1, 0.1, 0.7, 'en',"
                      " 1, 'm', '2026-12-06T12:00:00Z')", [ids[0]])
        held = in_thread(db, lambda d: d.execute("DELETE FROM posts WHERE id = ?", [ids[0]]))
        wait_for_lock(watch, held.pid, "the delete")
        batch.commit()
        saved.set()
    held.thread.join(20)
    assert saved.is_set()
    assert [type(e) for e in held.errors] == [psycopg.errors.ForeignKeyViolation]
    assert _count(watch, "posts") == 2 and _count(watch, "scores") == 1
    db.close()
    watch.close()


def _post_lookups(db: Db) -> int:
    """Index scans of ``posts`` so far, every session's counts flushed."""
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.execute("SELECT idx_scan FROM pg_stat_user_tables WHERE relname = 'posts'").fetchone()
    return int(row[0] or 0)


def test_a_score_batch_checks_its_posts_once_not_once_a_score(pg_server: Server) -> None:
    """What pg014 is for. A foreign key looks the post up once for each row inserted (600
    index scans of ``posts`` for 300 queued scores before pg014); the checks a statement makes
    read the posts together. Counted, not timed."""
    from storage.db import open_db

    db = open_db(pg_server.new_database())
    ids = _posts(db, 300)
    before = _post_lookups(db)
    save_scores(db, [_negative(i) for i in ids], NOW)
    assert _count(db, "triage") == 300
    assert _post_lookups(db) - before < len(ids)
    db.close()
