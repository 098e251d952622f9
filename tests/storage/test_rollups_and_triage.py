"""The dashboard's schema (migration 005) on real databases: triggers keep the rollups and the
triage queue in step with posts, scores and statuses (on both engines: ``any_db``); SQLite's
backfill agrees with its triggers; trends and feedback count by hour, day and week alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import feedback, triage
from storage.engine import Db
from storage.migrations import MIGRATIONS, migrate
from storage.search import SearchError
from storage.trends import (
    Counts,
    Period,
    bucket_key,
    bucket_keys,
    counts_by,
    negative_texts,
    newest_post_at,
    total,
)
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


def stored(db: Db, *posts: Post) -> list[int]:
    store.store_page(db, "x-main", Page(posts=list(posts)), NOW)
    return [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]


def rollup(db: Db, table: str) -> set[tuple[object, ...]]:
    return {tuple(r) for r in db.execute(f"SELECT * FROM {table}").fetchall()}  # noqa: S608


def test_rollups_follow_each_posts_newest_score(any_db: Db) -> None:
    db = any_db
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


def test_triage_holds_negative_or_urgent_posts_with_their_status(any_db: Db) -> None:
    db = any_db
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


def test_queue_filters_search_and_counts(any_db: Db) -> None:
    db = any_db
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


def test_feedback_accuracy_counts_each_posts_newest_verdict(any_db: Db) -> None:
    db = any_db
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


def test_trends_count_by_hour_day_and_week_on_both_engines(any_db: Db) -> None:
    """Weeks start on Monday, whichever engine keys them, and agree with ``bucket_key``."""
    db = any_db
    sunday, monday = datetime(2026, 11, 15, 23, 30, tzinfo=UTC), datetime(2026, 11, 16, 0, 10,
                                                                          tzinfo=UTC)
    next_sunday, new_year = datetime(2026, 11, 22, 12, tzinfo=UTC), datetime(2027, 1, 1, 9,
                                                                          tzinfo=UTC)
    ids = stored(db, post("1", created_at=sunday), post("2", created_at=monday,
                                                        also_brands=("globex",)),
                 post("3", created_at=next_sunday, source="reddit"),
                 post("4", created_at=new_year, brand="globex"))
    store.save_scores(db, [(ids[0], score("negative", 0.9), "en"),
                           (ids[1], score("negative", 0.2), "en"),
                           (ids[2], score("positive", 0.1), "en")], NOW)
    days = Period(datetime(2026, 11, 9, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC))

    def totals(counts: dict[str, Counts]) -> dict[str, tuple[int, int, int, int]]:
        return {k: (c.total, c.negative, c.unscored, c.urgent) for k, c in counts.items()}

    weekly = counts_by(db, days, "week", "bucket")
    assert totals(weekly) == {"2026-11-09": (1, 1, 0, 1), "2026-11-16": (2, 1, 0, 0),
                              "2026-12-28": (1, 0, 1, 0)}  # 2027-01-01 is a Friday
    assert set(weekly) <= set(bucket_keys(days, "week"))
    assert [bucket_key(m, "week") for m in (sunday, monday, next_sunday, new_year)] == [
        "2026-11-09", "2026-11-16", "2026-11-16", "2026-12-28"]
    assert totals(counts_by(db, days, "day", "bucket")) == {
        "2026-11-15": (1, 1, 0, 1), "2026-11-16": (1, 1, 0, 0), "2026-11-22": (1, 0, 0, 0),
        "2027-01-01": (1, 0, 1, 0)}
    hours = Period(datetime(2026, 11, 15, 22, tzinfo=UTC), datetime(2026, 11, 16, 2, tzinfo=UTC))
    assert totals(counts_by(db, hours, "hour", "bucket")) == {
        "2026-11-15T23": (1, 1, 0, 1), "2026-11-16T00": (1, 1, 0, 0)}
    # a post about two brands counts for each; filters by brand (extra ones too) and source
    assert totals(counts_by(db, days, "week", "brand")) == {
        "acme": (3, 2, 0, 1), "globex": (2, 1, 1, 0)}
    assert totals(counts_by(db, days, "week", "bucket", brand="globex")) == {
        "2026-11-16": (1, 1, 0, 0), "2026-12-28": (1, 0, 1, 0)}
    assert totals(counts_by(db, days, "day", "source", source="reddit")) == {
        "reddit": (1, 0, 0, 0)}
    assert counts_by(db, days, "week", "bucket", brand="initech") == {}
    assert sorted(negative_texts(db, days, brand="globex")) == [
        "the app is broken and I want a refund"]
    assert negative_texts(db, days, source="reddit") == []
    assert newest_post_at(db) == "2027-01-01T09:00:00Z"


def test_feedback_accuracy_by_day_week_and_model(any_db: Db) -> None:
    db = any_db
    ids = stored(db, post("1"), post("2", text="what time do you open"), post("3"))
    store.save_scores(db, [(ids[0], score("negative", 0.9), "en"),
                           (ids[1], score("neutral", 0.2), "en")], NOW)
    sunday = datetime(2026, 11, 15, 18, tzinfo=UTC)
    feedback.add_feedback(db, ids[0], "sentiment", "negative", "ann", sunday)
    feedback.add_feedback(db, ids[1], "urgency", "not_complaint", "ann", sunday)
    store.save_scores(db, [(ids[1], score("negative", 0.8, version="2"), "en")], NOW)
    feedback.add_feedback(db, ids[1], "sentiment", "neutral", "bob", NOW)  # the model said negative
    feedback.add_feedback(db, ids[2], "sentiment", "neutral", "bob", NOW)  # nothing scored it
    feedback.add_feedback(db, ids[2], "relevance", "not_relevant", "bob", NOW)
    assert feedback.accuracy(db, "day") == [
        {"period": "2026-11-15", "field": "sentiment", "reviewed": 1, "correct": 1},
        {"period": "2026-11-15", "field": "urgency", "reviewed": 1, "correct": 1},
        {"period": "2026-11-20", "field": "sentiment", "reviewed": 1, "correct": 0},
    ]
    assert feedback.accuracy(db, "week") == [
        {"period": "2026-11-09", "field": "sentiment", "reviewed": 1, "correct": 1},
        {"period": "2026-11-09", "field": "urgency", "reviewed": 1, "correct": 1},
        {"period": "2026-11-16", "field": "sentiment", "reviewed": 1, "correct": 0},
    ]
    assert [(r["model_version"], r["field"], r["reviewed"], r["correct"], r["first"])
            for r in feedback.accuracy_by_model(db)] == [
        ("1", "sentiment", 1, 1, "2026-11-15T18:00:00Z"),
        ("1", "urgency", 1, 1, "2026-11-15T18:00:00Z"),
        ("2", "sentiment", 1, 0, "2026-11-20T12:00:00Z")]
    assert feedback.latest_for(db, ids[2]) == {"sentiment": "neutral",
                                               "relevance": "not_relevant"}
    assert [r["label"] for r in feedback.for_post(db, ids[2])] == ["not_relevant", "neutral"]
    assert [(r["post_id"], r["excerpt"]) for r in feedback.recent(db, limit=2)] == [
        (ids[2], "the app is broken and I want a refund")] * 2
    assert db.execute("SELECT status FROM post_status WHERE post_id = ?",
                      [ids[2]]).fetchone()[0] == "not_relevant"


SEARCHED = {"1": "refund please, the app crashed", "2": "app crashed again",
            "3": "Crème brûlée was cold", "4": "where is my refund", "5": "can't log in to the app",
            "6": "mail foo@bar.com or see https://example.com/help-desk v3.5"}


@pytest.mark.parametrize(("q", "found"), [
    ("refund", "14"), ("app crashed", "12"), ('"crashed again"', "2"), ('"again crashed"', ""),
    ("refund OR crème", "134"), ("app NOT refund", "25"), ("ref*", "14"), ("lo*", "5"),
    ("CREME brulee", "3"), ("(refund OR cold) NOT where", "13"), ("refund OR app NOT crashed",
                                                                    "145"),
    # the brand query language: NOT and - narrow one term or group, AND binds tighter than OR
    ("app NOT (crashed again)", "15"), ("app -crashed", "5"), ("app NOT crashed again", ""),
    ('"can\'t" log', "5"), ("can't log", "5"), ('"app" crash*', "12"),
    # FTS5's syntax is text: a colon, a caret or NEAR are parts of words
    ("text:refund", ""), ("^refund", "14"), ("NEAR(refund)", ""),
    # words inside e-mails, URLs, hyphenated and dotted words: unicode61 splits them apart
    ("bar", "6"), ("example", "6"), ("desk", "6"), ("5", "6"), ('"foo@bar.com"', "6"),
    ("foo@bar.com", "6"), ('"bar.com"', "6"), ('"example.com/help"', "6"), ('"com help"', "6"),
    ("help*", "6"),
])
def test_the_queue_search_finds_the_same_posts_on_both_engines(any_db: Db, q: str,
                                                                found: str) -> None:
    """The brand query language, compiled to FTS5 on SQLite and to a tsquery on PostgreSQL
    (storage/search.py)."""
    ids = dict(zip(SEARCHED, stored(any_db, *(post(k, t) for k, t in SEARCHED.items())),
                   strict=True))
    store.save_scores(any_db, [(i, score("negative", 0.9), "en") for i in ids.values()], NOW)
    assert triage.check_search(any_db, q) is None
    f = triage.QueueFilter(status=None, q=q)
    assert {r["post_id"] for r in triage.queue(any_db, f)} == {ids[k] for k in found}
    assert triage.count_queue(any_db, f) == len(found)


@pytest.mark.parametrize("q", ['"open', "NOT refund", "-refund", "refund OR", "(refund",
                               "refund)", "refund OR -app", "refund 😀", "refund -(app)"])
def test_a_search_neither_engine_can_read_is_explained(any_db: Db, q: str) -> None:
    problem = triage.check_search(any_db, q)
    assert problem is not None and problem.startswith("The search could not be read: ")
    with pytest.raises(SearchError):
        triage.queue(any_db, triage.QueueFilter(q=q))
