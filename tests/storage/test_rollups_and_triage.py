"""The dashboard's schema (migration 005) on real SQLite files: triggers keep the rollups and the
triage queue in step with posts, scores and statuses; the backfill agrees with the triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import feedback, triage
from storage.migrations import MIGRATIONS, migrate
from storage.trends import Period, counts_by, negative_texts, total
from storage.tx import connect
from tests.storage.old_schema import save_scores_before_009

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROLLUPS = ("post_hours", "post_days")


def score(sentiment: str, urgency: float, version: str = "1") -> Score:
    return Score(sentiment, 0.8, 0.1, 0.1, urgency, "m", version)


def post(pid: str, text: str = "the app is broken and I want a refund", **kw: object) -> Post:
    fields = dict(platform="x", platform_id=pid, text=text, created_at=NOW - timedelta(hours=1),
                  source="x-main", brand="acme", lang="en", author_followers=1500)
    fields.update(kw)
    return Post(**fields)  # type: ignore[arg-type]


def stored(db: Database, *posts: Post) -> list[int]:
    store.store_page(db, "x-main", Page(posts=list(posts)), NOW)
    return [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]


def rollup(db: Database, table: str) -> set[tuple[object, ...]]:
    return set(db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608 (test constant)


def test_rollups_follow_each_posts_newest_score(db: Database) -> None:
    first, second = stored(db, post("1"), post("2", created_at=NOW - timedelta(days=2)))
    hour, day = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H"), "2026-11-20"
    assert ("2026-11-20", "acme", "x-main", "unscored", 1, 0) in rollup(db, "post_days")
    store.save_scores(db, [(first, score("negative", 0.9), "en")], NOW)
    assert rollup(db, "post_hours") >= {(hour, "acme", "x-main", "negative", 1, 1)}
    assert not any(r[0] == hour and r[3] == "unscored" for r in rollup(db, "post_hours"))
    store.save_scores(db, [(first, score("positive", 0.1, version="2"), "en"),
                           (second, score("neutral", 0.7), "en")], NOW)
    assert {r for r in rollup(db, "post_days") if r[0] == day} == {
        (day, "acme", "x-main", "positive", 1, 0)}
    assert sum(r[4] for r in rollup(db, "post_hours")) == 2  # every post counted exactly once
    counts = total(counts_by(db, Period(NOW - timedelta(days=3), NOW), "hour", "bucket"))
    assert (counts.positive, counts.neutral, counts.urgent, counts.total) == (1, 1, 1, 2)
    days = Period.ending(NOW, 72, whole_days=True)
    assert (days.start, days.end) == (NOW.replace(hour=0) - timedelta(days=2),
                                      NOW.replace(hour=0) + timedelta(days=1))
    by_day = counts_by(db, days, "day", "brand", source="x-main")
    assert by_day["acme"].total == 2 and counts_by(db, Period(NOW, NOW), "week", "source") == {}


def test_triage_holds_negative_or_urgent_posts_with_their_status(db: Database) -> None:
    ids = stored(db, post("1", author="jane"),
                 post("2", text="how do I reset it", author_followers=0),
                 post("3", text="happy customer"),  # #4: jane cross-posting #1 on reddit
                 post("4", text="the app is broken and I want a refund", platform="reddit",
                      author="Jane"))
    store.save_scores(db, [(ids[0], score("negative", 0.2), "en"),
                           (ids[1], score("neutral", 0.8), None),
                           (ids[2], score("positive", 0.1), "en"),
                           (ids[3], score("negative", 0.9), "en")], NOW)
    rows = {r[0]: r for r in db.execute("SELECT post_id, rank, status, lang FROM triage")}
    assert set(rows) == {ids[0], ids[1]}  # the positive post stays out; #4 is a cross-post of #1
    assert rows[ids[0]][1] == pytest.approx(0.2 * 4) and rows[ids[1]][1] == pytest.approx(0.8)
    assert rows[ids[1]][3] == "en"  # the post's language when the model gave none
    triage.set_status(db, ids[0], "handled", "test", NOW)
    store.save_scores(db, [(ids[0], score("negative", 0.6, version="2"), "en")], NOW)
    assert db.execute("SELECT status, urgency FROM triage WHERE post_id = ?",
                      [ids[0]]).fetchone() == ("handled", 0.6)  # a re-score keeps the status
    store.save_scores(db, [(ids[1], score("positive", 0.1, version="2"), "en")], NOW)
    assert db.execute("SELECT count(*) FROM triage WHERE post_id = ?", [ids[1]]).fetchone()[0] == 0


def test_migration_backfills_what_the_triggers_would_have_built(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = connect(path)
    steps = MIGRATIONS[:4]  # up to 004
    for _, step in steps:
        step(old)
    old["_migrations"].insert_all({"name": n, "applied_at": "x"} for n, _ in steps)
    ids = stored(old, post("1"), post("2", text="where is my order", lang="de"),
                 post("3", created_at=NOW - timedelta(days=40)))
    save_scores_before_009(old, [(i, score("negative", 0.7), None) for i in ids], NOW)
    save_scores_before_009(old, [(ids[0], score("positive", 0.1, version="2"), "en")], NOW)
    assert migrate(old)[0] == "005_dashboard"
    fresh = store.open_db(tmp_path / "new.db")
    stored(fresh, post("1"), post("2", text="where is my order", lang="de"),
           post("3", created_at=NOW - timedelta(days=40)))
    store.save_scores(fresh, [(i, score("negative", 0.7), None) for i in ids], NOW)
    store.save_scores(fresh, [(ids[0], score("positive", 0.1, version="2"), "en")], NOW)
    for table in (*ROLLUPS, "triage"):
        assert rollup(old, table) == rollup(fresh, table), table
    match = "SELECT rowid FROM posts_fts WHERE posts_fts MATCH 'order'"
    assert old.execute(match).fetchall() == [(ids[1],)]
    old.close()
    fresh.close()


def test_queue_filters_search_and_counts(db: Database) -> None:
    ids = stored(db, post("1", text="refund please"), post("2", text="login broken", brand="b2"),
                 post("3", text="refund now", lang="de", created_at=NOW - timedelta(days=10)))
    store.save_scores(db, [(i, score("negative", 0.5 + i / 10), None) for i in ids], NOW)
    week = triage.QueueFilter(start=NOW - timedelta(days=7), end=NOW)
    assert [r["post_id"] for r in triage.queue(db, week)] == [ids[1], ids[0]]
    assert triage.count_queue(db, week) == 2 and triage.count_queue(db, week, cap=0) == 1
    assert [r["post_id"] for r in triage.queue(db, triage.QueueFilter(q="refund"))] == [
        ids[2], ids[0]]
    assert triage.queue(db, triage.QueueFilter(q="refund", lang="de", brand="acme"))[0][
        "post_id"] == ids[2]
    triage.set_status(db, ids[0], "handled", "test", NOW)
    assert [r["post_id"] for r in triage.queue(db, week)] == [ids[1]]
    assert [r["post_id"] for r in triage.queue(db, triage.QueueFilter(status="handled"))] \
        == [ids[0]]
    assert triage.check_search(db, '"open') is not None and triage.check_search(db, "a*") is None
    assert triage.distinct_values(db, "brand") == ["acme", "b2"]
    assert triage.distinct_values(db, "lang") == ["de", "en"]
    texts = negative_texts(db, Period(NOW - timedelta(days=30), NOW), brand="acme")
    assert sorted(texts) == ["refund now", "refund please"]


def test_feedback_accuracy_counts_each_posts_newest_verdict(db: Database) -> None:
    ids = stored(db, post("1"), post("2", text="what time do you open"))
    store.save_scores(db, [(ids[0], score("negative", 0.9), "en"),
                           (ids[1], score("neutral", 0.2), "en")], NOW)
    feedback.add_feedback(db, ids[0], "sentiment", "neutral", "ann", NOW - timedelta(days=8))
    feedback.add_feedback(db, ids[0], "sentiment", "negative", "ann", NOW)  # changed her mind
    feedback.add_feedback(db, ids[1], "sentiment", "neutral", "bob", NOW)
    feedback.add_feedback(db, ids[1], "urgency", "complaint", "bob", NOW)
    assert feedback.accuracy(db) == [
        {"period": "2026-11-16", "field": "sentiment", "reviewed": 2, "correct": 2},
        {"period": "2026-11-16", "field": "urgency", "reviewed": 1, "correct": 0},
    ]
    assert list(feedback.training_rows(db, "urgency")) == [
        ("x:2", "complaint", "acme", "what time do you open")]
    assert [r[1] for r in feedback.training_rows(db, "sentiment")] == ["negative", "neutral"]
    with pytest.raises(ValueError, match="unknown sentiment label"):
        feedback.add_feedback(db, ids[0], "sentiment", "angry", "ann", NOW)
