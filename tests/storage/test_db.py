"""Storage verbs on real temporary databases: SQLite files, and PostgreSQL for the verbs every
engine runs (``any_db``)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlite_utils import Database

from listener.core.models import Page, Post, Rejected, Score
from storage import claims, outbox
from storage import db as store
from storage.engine import SQLITE, Db, dialect
from storage.migrations import MIGRATIONS, migrate, pending
from storage.tx import connect
from tests.dbrows import count, get, rows
from tests.storage.old_schema import save_scores_before_009

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def post(pid: str, text: str = "hello") -> Post:
    return Post(platform="x", platform_id=pid, text=text, created_at=NOW, source="src")


def test_schema_pragmas_and_idempotent_migrations(db: Database, tmp_path: Path) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert migrate(db) == [] and pending(db) == []
    assert {"posts", "cursors", "scores", "alerts", "deliveries", "runs", "rejects"} <= set(
        db.table_names()
    )
    assert [r["name"] for r in db["_migrations"].rows] == [name for name, _ in MIGRATIONS]


def test_store_page_dedups_and_saves_cursor(any_db: Db) -> None:
    page = Page(posts=[post("1"), post("2"), post("1")], cursor={"offset": 10},
                rejected=[Rejected("f.jsonl:3", "missing required field 'text'")])
    assert store.store_page(any_db, "src", page, NOW) == 2
    assert store.store_page(any_db, "src", Page(posts=[post("2"), post("3")], cursor=None), NOW) == 1
    assert count(any_db, "posts") == 3
    assert store.load_cursor(any_db, "src") == {"offset": 10}
    assert [r["location"] for r in rows(any_db, "rejects")] == ["f.jsonl:3"]


def test_a_post_the_database_refuses_is_rejected_alone(any_db: Db) -> None:
    # before (issue 14): one refused post failed the whole page, every run, and the cursor
    # never moved past it; now that post is rejected by platform:id and the rest is stored
    store.store_page(any_db, "src", Page(posts=[post("1")], cursor={"offset": 1}), NOW)
    # NOT NULL fails inside SQL, after the page's first post was inserted
    broken = Post(platform=None, platform_id="9", text="t", created_at=NOW)  # type: ignore[arg-type]
    page = Page(posts=[post("2"), broken, post("3")], cursor={"offset": 99})
    assert store.store_page(any_db, "src", page, NOW) == 2
    assert [r["platform_id"] for r in rows(any_db, "posts")] == ["1", "2", "3"]
    assert store.load_cursor(any_db, "src") == {"offset": 99}
    [reject] = rows(any_db, "rejects")
    assert reject["location"] == "None:9"
    assert "IntegrityError" in reject["reason"] or "NotNullViolation" in reject["reason"]


def test_a_failing_database_stores_neither_posts_nor_cursor(db: Database) -> None:
    store.store_page(db, "src", Page(posts=[post("1")], cursor={"offset": 1}), NOW)
    # a failure of the database, not of a row (here a trigger whose table is gone): nothing of
    # the page may be stored, and no post is rejected for it, so the next run fetches it again
    db.execute("CREATE TABLE gone (x)")
    db.execute("CREATE TRIGGER posts_gone AFTER INSERT ON posts BEGIN INSERT INTO gone VALUES"
               " (new.id); END")
    db.execute("DROP TABLE gone")
    with pytest.raises(sqlite3.OperationalError):
        store.store_page(db, "src", Page(posts=[post("2"), post("3")], cursor={"offset": 99}),
                         NOW)
    assert db["posts"].count == 1 and db["rejects"].count == 0
    assert store.load_cursor(db, "src") == {"offset": 1}


def test_scores_are_per_model_version_and_never_duplicated(any_db: Db) -> None:
    store.store_page(any_db, "src", Page(posts=[post("1"), post("2")]), NOW)
    todo = store.posts_to_score(any_db, "m", "v1", 10)
    assert [r.text for r in todo] == ["hello", "hello"]
    score = Score("negative", 0.8, 0.15, 0.05, 0.9, "m", "v1")
    assert store.save_scores(any_db, [(todo[0].id, score, "en")], NOW) == 1
    assert store.save_scores(any_db, [(todo[0].id, score, "en")], NOW) == 0
    assert len(store.posts_to_score(any_db, "m", "v1", 10)) == 1
    assert len(store.posts_to_score(any_db, "m", "v2", 10)) == 2  # a new version re-scores all


ODD_TEXTS = ["nul \x00 inside", 'quote " back \\ slash', "\u2028\u2029 separators",
             "emoji 😂 \U0010ffff", "\x01\x1f\x7f controls", "tab\tnewline\n", "",
             '{"json": [1, null]}', "\ufeffbom", "long " * 5000]


def test_unscored_posts_read_as_stored_in_id_order(any_db: Db) -> None:
    texts = [t for t in ODD_TEXTS if "\x00" not in t or dialect(any_db) == SQLITE]  # PG: no NUL
    page = [Post(platform="x", platform_id=str(i), text=text, created_at=NOW, source="src",
                 lang=None if i % 3 == 0 else "en") for i, text in enumerate(texts)]
    store.store_page(any_db, "src", Page(posts=page), NOW)
    stored = [tuple(r) for r in any_db.execute(
        "SELECT id, text, lang FROM posts ORDER BY id").fetchall()]
    assert [r[1] for r in stored] == texts and {r[2] for r in stored} == {None, "en"}
    assert [tuple(u) for u in store.posts_to_score(any_db, "m", "v", 100)] == stored
    assert [tuple(u) for u in store.posts_to_score(any_db, "m", "v", 3, after=stored[4][0])
            ] == stored[5:8]
    assert store.posts_to_score(any_db, "m", "v", 100, after=stored[-1][0]) == []


class _RowCounting:
    """Spies on a database's ``execute``: the rows each statement reading posts hands to
    Python (Python's sqlite3 gives the interpreter lock up and takes it back for each; psycopg
    for each piece of a result libpq receives, and a result of many rows comes in many)."""

    def __init__(self, db: Db) -> None:
        self.db, self.execute, self.rows = db, db.execute, []  # type: list[int]

    def __enter__(self) -> _RowCounting:
        self.db.execute = self._execute  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.db.execute  # type: ignore[attr-defined]  # the class's again

    def _execute(self, sql: str, *params: object) -> object:
        cursor = self.execute(sql, *params)
        return _Fetches(cursor, self.rows) if "FROM posts" in sql else cursor


class _Fetches:
    def __init__(self, cursor: object, rows: list[int]) -> None:
        self.cursor, self.rows = cursor, rows

    def fetchall(self) -> list[object]:
        rows = self.cursor.fetchall()  # type: ignore[attr-defined]
        self.rows.append(len(rows))
        return rows

    def fetchone(self) -> object:
        row = self.cursor.fetchone()  # type: ignore[attr-defined]
        self.rows.append(row is not None)
        return row


def test_a_batch_of_unscored_posts_is_handed_over_as_one_row(any_db: Db) -> None:
    # before: one row per post, the lock given up and taken back 8,192 times a batch on SQLite
    # (~70 on PostgreSQL); beside a thread busy in Python (the GPU's scoring thread) each take
    # waited for its switch interval: a batch read in 8-13 ms alone took 6-12 s there on SQLite
    # and ~400 ms on PostgreSQL (bench/lock_handoffs.py)
    store.store_page(any_db, "src", Page(posts=[post(str(i)) for i in range(500)]), NOW)
    with _RowCounting(any_db) as counting:
        read = store.posts_to_score(any_db, "m", "v", 400, after=50)
        claimed = claims.posts_to_score(any_db, "m", "v", 30, "w1", NOW, 60, after=450)
    assert [u.id for u in read] == list(range(51, 451))
    assert [u.id for u in claimed] == list(range(451, 481))
    assert counting.rows == [1, 1]


def test_outbox_ids_are_deterministic_and_unique(any_db: Db) -> None:
    store.store_page(any_db, "src", Page(posts=[post("1")]), NOW)
    store.save_scores(any_db, [(1, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "v"), None)], NOW)
    rows = store.scores_to_evaluate(any_db, 10)
    alert = outbox.NewAlert("r", "slack", 1, rows[0].score_id, "x:1")
    assert outbox.enqueue(any_db, [alert, alert], [rows[0].score_id], NOW) == 1
    assert outbox.enqueue(any_db, [alert], [], NOW) == 0
    assert store.scores_to_evaluate(any_db, 10) == []
    assert outbox.alert_id("r", "x:1", "slack") == outbox.alert_id("r", "x:1", "slack")
    assert outbox.alert_id("r", "x:1", "slack") != outbox.alert_id("r", "x:1", "email")
    due = outbox.due(any_db, NOW, 10)
    assert [d["alert_id"] for d in due] == [outbox.alert_id("r", "x:1", "slack")]


def test_failure_then_park_then_requeue(any_db: Db) -> None:
    store.store_page(any_db, "src", Page(posts=[post("1")]), NOW)
    store.save_scores(any_db, [(1, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "v"), None)], NOW)
    sid = store.scores_to_evaluate(any_db, 1)[0].score_id
    outbox.enqueue(any_db, [outbox.NewAlert("r", "d", 1, sid, "x:1")], [sid], NOW)
    aid = outbox.alert_id("r", "x:1", "d")
    outbox.record_failure(any_db, aid, 1, NOW, error="boom", status_code=500, retry_at=None, ms=1)
    assert get(any_db, "alerts", aid)["status"] == outbox.FAILED
    assert outbox.due(any_db, NOW, 10) == []
    assert outbox.requeue_failed(any_db, NOW) == 1
    assert get(any_db, "alerts", aid)["status"] == outbox.PENDING
    assert [d["outcome"] for d in rows(any_db, "deliveries")] == ["failed"]


def test_identical_text_by_one_author_within_an_hour_is_linked_as_a_crosspost(
    any_db: Db,
) -> None:
    text = "Acme Cloud has been down for an hour, nobody answers support tickets"
    first = Post("x", "1", text, NOW, source="src", author="jane")
    same = Post("reddit", "t3_a", text.upper() + " https://t.co/xyz", NOW.replace(minute=40),
                author="Jane")  # the same handle on another platform: one person
    later = Post("bluesky", "b", text, NOW.replace(hour=14), author="jane")
    short = [Post("x", str(i), "thanks!", NOW, author="jane") for i in (7, 8)]
    store.store_page(any_db, "src", Page(posts=[first, *short]), NOW)
    store.store_page(any_db, "src", Page(posts=[same, later]), NOW)
    links = {r["platform_id"]: r["duplicate_of"] for r in rows(any_db, "posts")}
    first_id = any_db.execute("SELECT id FROM posts WHERE platform_id = '1'").fetchone()[0]
    assert links == {"1": None, "7": None, "8": None, "t3_a": first_id, "b": None}


def test_the_same_words_from_different_customers_are_never_merged(any_db: Db) -> None:
    """Issue 13 #3: during an outage many customers write the same sentence; each is a
    customer of their own (the old code linked them all to the first and alerted once)."""
    text = "Is Acme Cloud down for anyone else? Nothing loads for me"
    posts = [Post("x", str(i), text, NOW.replace(minute=i), source="src", author=f"user{i}")
             for i in range(20)]
    posts.append(Post("x", "anon", text, NOW, source="src"))  # no author: cannot be the same
    store.store_page(any_db, "src", Page(posts=posts), NOW)
    assert any_db.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL").fetchone() == (0,)


def test_the_migration_unlinks_crossposts_of_different_authors(tmp_path: Path) -> None:
    """Databases linked by the old rule get their customers back, in the triage queue too."""
    old = connect(tmp_path / "old.db")
    steps = MIGRATIONS[:5]  # up to 005: the queue exists, the new rule does not
    for _, step in steps:
        step(old)
    old["_migrations"].insert_all({"name": n, "applied_at": "x"} for n, _ in steps)
    text = "Acme Cloud has been down for an hour, nobody answers support tickets"
    store.store_page(old, "s", Page(posts=[Post("x", "1", text, NOW, author="ann"),
                                          Post("x", "2", text, NOW, author="bob"),
                                          Post("x", "3", text, NOW, author="ANN")]), NOW)
    old.execute("UPDATE posts SET duplicate_of = 1 WHERE id IN (2, 3)")  # the old rule's links
    scored = [(i, Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v"), None) for i in (1, 2, 3)]
    save_scores_before_009(old, scored, NOW)
    old.execute("DELETE FROM triage WHERE post_id IN (2, 3)")  # as the old queue left them
    migrate(old)
    links = dict(old.execute("SELECT id, duplicate_of FROM posts").fetchall())
    assert links == {1: None, 2: None, 3: 1}  # bob is a customer of his own; ANN is ann
    assert sorted(r[0] for r in old.execute("SELECT post_id FROM triage")) == [1, 2]
    old.close()
