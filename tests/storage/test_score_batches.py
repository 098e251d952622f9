"""Scores saved a batch at a time on SQLite (:mod:`storage.score_batches`, migration 016).

The row triggers on ``scores`` are the reference: every batch must leave the rollups, the
extra-brand rollups, the triage queue and the search index exactly as inserting the same
rows one by one does (the triggers still do that for any other insert). Compared on the
trigger scenarios PostgreSQL is held to, then on random days of posts, brands, statuses,
cross-posts and re-scores written through ``save_scores`` itself.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from listener.core.errors import StorageError
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import score_batches
from storage.tx import immediate
from tests.storage.test_migrations_pg import _CELLS, _STATE, SCENARIOS

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
_SCORE_ROW = ("INSERT INTO scores (post_id, model, model_version, sentiment, p_negative,"
              " p_neutral, p_positive, urgency, lang, language_supported, scored_by, scored_at)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _state(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """What the score triggers keep: rollups, queue, and the search index's every entry."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_entries"
                 " USING fts5vocab(main, posts_fts, instance)")
    state = {table: sorted(tuple(r) for r in conn.execute(select))
             for table, select in _STATE.items()}
    state["posts_fts"] = sorted(conn.execute("SELECT term, doc, offset FROM temp.fts_entries"))
    return state


def _batched(conn: sqlite3.Connection) -> Callable[[str, Any], Any]:
    """Run a step, an insert into scores as a batch (in a transaction of its own)."""
    db = Database(conn)

    def execute(sql: str, params: Any) -> Any:
        if not sql.startswith("INSERT INTO scores"):
            return conn.execute(sql, params)
        with immediate(db), score_batches.batch(db):
            return conn.execute(sql, params)
    return execute


@pytest.mark.parametrize("triggers", list(SCENARIOS))
def test_a_batch_leaves_what_the_row_triggers_leave(triggers: str, tmp_path: Path) -> None:
    rows, batches = (store.open_db(tmp_path / f"{n}.db") for n in ("rows", "batches"))
    run = _batched(batches.conn)
    moved = False
    for sql, params in SCENARIOS[triggers]:
        rows.conn.execute(sql, params)
        run(sql, params)
        expected = _state(rows.conn)
        moved = moved or any(expected.values())
        assert _state(batches.conn) == expected, sql
    assert moved  # the scenario does something
    assert batches.execute(f"SELECT count(*) FROM {score_batches.GATE}").fetchone()[0] == 0


def _random_day(rng: random.Random, count: int) -> list[Post]:
    """Posts over two days and a few hours, brands (some none) and sources, texts that
    repeat words (so search entries overlap), languages."""
    words = ["refund", "broken", "love", "app", "help", "сломалось", "café", "late", "order"]
    return [Post(platform="x", platform_id=f"p{i}",
                 text=" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + f" #{i}",
                 created_at=NOW - timedelta(hours=rng.choice([1, 2, 3, 25, 26])),
                 source=rng.choice(["x-main", "x-eu"]),
                 brand=rng.choice(["acme", "globex", None]), lang=rng.choice(["en", "ru", None]),
                 author=f"a{i % 7}", author_followers=rng.choice([None, 0, 15, 2500, -3]))
            for i in range(count)]


def _random_scores(rng: random.Random, ids: list[int], version: int) -> list[tuple[int, Score,
                                                                                   str | None]]:
    """A batch: some posts, some twice (two model versions in one batch), some of a version
    already saved (ignored), unsupported languages now and then."""
    chosen = rng.sample(ids, rng.randint(1, len(ids)))
    again = rng.sample(chosen, len(chosen) // 4)  # a second model version, same batch
    out = []
    for pid, model_version in [*((p, rng.choice([version, version - 1])) for p in chosen),
                               *((p, version + 100) for p in again)]:
        score = Score(rng.choice(["negative", "neutral", "positive"]), 0.6, 0.2, 0.2,
                      rng.choice([0.1, 0.5, 0.9]), "m", str(model_version),
                      lang=rng.choice(["en", None]), language_supported=rng.random() > 0.2)
        out.append((pid, score, rng.choice(["en", "ru", None])))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_batches_through_save_scores_match_row_by_row(seed: int, tmp_path: Path) -> None:
    """``save_scores`` against the same rows inserted one by one, after each batch; between
    batches posts gain brands, statuses and cross-post links, as collect and people do."""
    rng = random.Random(seed)
    rows, batches = (store.open_db(tmp_path / f"{n}.db") for n in ("rows", "batches"))
    posts = _random_day(rng, 60)
    for db in (rows, batches):
        store.store_page(db, "x-main", Page(posts=posts), NOW)
    ids = [r[0] for r in rows.execute("SELECT id FROM posts ORDER BY id").fetchall()]
    for version in range(1, 9):
        _between_batches(rng, ids, rows.conn, batches.conn)
        batch = _random_scores(rng, ids, version)
        saved = store.save_scores(batches, batch, NOW)
        before = rows.execute("SELECT count(*) FROM scores").fetchone()[0]
        for value in store.score_values(batch, NOW):
            rows.conn.execute(_SCORE_ROW.replace("INSERT", "INSERT OR IGNORE"), value)
        rows.conn.commit()
        assert saved == rows.execute("SELECT count(*) FROM scores").fetchone()[0] - before
        assert _state(batches.conn) == _state(rows.conn), version
    assert batches.execute("SELECT count(*) FROM post_hours WHERE n = 0").fetchone()[0] == 0
    assert batches.execute(f"SELECT {_CELLS} FROM post_days ORDER BY 1, 2, 3, 4").fetchall() == \
        batches.execute(_RECOUNT_DAYS).fetchall()


# the day rollup recounted from scratch (migration 005's backfill, 009's labels)
_RECOUNT_DAYS = (
    "SELECT substr(p.created_at, 1, 10), coalesce(p.brand, ''), coalesce(p.source, ''),"
    " coalesce(CASE WHEN s.language_supported = 0 THEN 'unsupported' ELSE s.sentiment END,"
    " 'unscored'), count(*), coalesce(sum(s.urgency >= 0.5), 0) FROM posts p"
    " LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)"
    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
)


def _between_batches(rng: random.Random, ids: list[int], *conns: sqlite3.Connection) -> None:
    """The same changes on every database: an extra brand, a status, a cross-post link."""
    pid = rng.choice(ids)
    brand = rng.choice(["initech", "umbrella", "hooli"])
    status = rng.choice(["handled", "not_relevant", "new", "assigned"])
    twin, later = sorted(rng.sample(ids, 2))
    handled, link = rng.choice(ids), rng.random() < 0.3
    for conn in conns:
        conn.execute("INSERT OR IGNORE INTO post_extra_brands (post_id, brand) VALUES (?, ?)",
                     [pid, brand])
        conn.execute("INSERT INTO post_status (post_id, status, updated_at, by) VALUES"
                     " (?, ?, 'x', 'test') ON CONFLICT (post_id) DO UPDATE SET status ="
                     " excluded.status", [handled, status])
        if link:
            conn.execute("UPDATE posts SET duplicate_of = ? WHERE id = ?", [twin, later])
        conn.commit()


def test_a_failed_batch_moves_nothing_and_leaves_the_triggers_on(tmp_path: Path) -> None:
    """A batch that fails half-way (a score of a post that is not there) is rolled back whole:
    no score, no cell moved, the gate closed, so the next insert row by row moves cells."""
    db = store.open_db(tmp_path / "a.db")
    store.store_page(db, "x-main", Page(posts=_random_day(random.Random(1), 3)), NOW)
    ids = [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]
    before = _state(db.conn)
    bad = [(i, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "1"), "en") for i in [*ids, 999]]
    with pytest.raises(sqlite3.IntegrityError):  # as before batches (no OperationalError)
        store.save_scores(db, bad, NOW)
    assert _state(db.conn) == before
    assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == 0
    assert db.execute(f"SELECT count(*) FROM {score_batches.GATE}").fetchone()[0] == 0
    db.conn.execute(_SCORE_ROW, store.score_values(bad[:1], NOW)[0])
    db.conn.commit()
    assert db.execute("SELECT sum(n) FROM post_hours WHERE sentiment = 'negative'"
                      ).fetchone()[0] == 1


class _Statements:
    """A ``sqlite3.Connection`` as it is, recording each statement Python runs on it (Python's
    sqlite3 gives the interpreter lock up and takes it back for each)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.inner, self.ran = conn, []  # type: list[str]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def execute(self, sql: str, *params: object) -> sqlite3.Cursor:
        self.ran.append(sql.split(" (", 1)[0].split(" VALUES", 1)[0])
        return self.inner.execute(sql, *params)  # type: ignore[arg-type]


def test_a_batch_is_a_few_statements_whatever_its_size(tmp_path: Path) -> None:
    """What makes a batch fast: the rollups and the queue are each written by one statement
    for the whole batch, not by the row triggers once per score (before migration 016 every
    move was a trigger's), and those statements run as one, the end trigger's: a batch runs
    as few statements from Python for 40 scores as for 2,000 (before: 16 more each batch)."""
    db = store.open_db(tmp_path / "a.db")
    store.store_page(db, "x-main", Page(posts=_random_day(random.Random(2), 2060)), NOW)
    ids = [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]
    ran = []
    for part in (ids[:20], ids[20:60], ids[60:]):  # the first creates the end trigger
        db.conn = spy = _Statements(db.conn)  # type: ignore[misc]
        try:
            store.save_scores(db, [(i, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "1"), "en")
                                   for i in part], NOW)
        finally:
            db.conn = spy.inner
        ran.append(spy.ran)
    assert any(s.startswith("CREATE TEMP TRIGGER") for s in ran[0])
    assert ran[1] == ran[2] == [
        "BEGIN IMMEDIATE", "INSERT INTO score_batch", "SELECT coalesce(max(id), 0) FROM scores",
        "INSERT INTO scores", "INSERT INTO temp.score_batch_end", "COMMIT"]
    (trigger,) = db.execute("SELECT sql FROM temp.sqlite_master WHERE type = 'trigger'").fetchone()
    for table in ("post_hours", "post_days", "post_hours_extra", "post_days_extra", "triage"):
        assert trigger.count(f"INSERT INTO {table} ") == 1, table
    assert db.execute("SELECT count(*) FROM triage").fetchone()[0] == len(ids)


@pytest.mark.parametrize("analyzed", [False, True], ids=["no statistics", "analyzed"])
def test_no_statement_of_a_batch_reads_the_whole_history(analyzed: bool, tmp_path: Path
                                                         ) -> None:
    """Each statement reads the batch's rows (a rowid range of scores, the moves table) and
    looks the rest up by key: its cost follows the batch, not the database. A plan that walks
    a table of history (every score, post or cell ever stored) would make a batch on a
    10-million-post database take seconds (the queue's first version walked the scores
    index for its GROUP BY). With and without ``ANALYZE``'s statistics."""
    db = store.open_db(tmp_path / "a.db")
    rng = random.Random(3)
    store.store_page(db, "x-main", Page(posts=_random_day(rng, 200)), NOW)
    ids = [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]
    for version in (1, 2):
        store.save_scores(db, _random_scores(rng, ids, version), NOW)
    db.conn.execute("INSERT INTO post_extra_brands (post_id, brand) VALUES (?, 'initech')",
                    [ids[0]])
    if analyzed:
        db.conn.execute("ANALYZE")
    db.conn.commit()
    for statement in score_batches.MOVES:
        if statement.startswith("CREATE"):
            db.conn.execute(statement)
            continue
        plan = [row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {statement}",
                                                  {"first": len(ids)})]
        walks = [step for step in plan if step.startswith("SCAN ")
                 and not step.startswith(("SCAN m", "SCAN (subquery"))]
        assert not walks, (statement, plan)


def test_a_batch_outside_a_write_transaction_is_refused(tmp_path: Path) -> None:
    """The batch's new scores are those above the highest id when it began, which holds only
    while its connection holds the write lock: outside a transaction it refuses to start."""
    db = store.open_db(tmp_path / "a.db")
    with pytest.raises(StorageError, match="write transaction"), score_batches.batch(db):
        pass
    assert db.execute(f"SELECT count(*) FROM {score_batches.GATE}").fetchone()[0] == 0
