"""Issue 18's storage verbs on both engines: the reviewed posts a retraining learns from (newest
verdict per post and field, a held-out part fixed by a hash of the post), accuracy per model
version counted from each version's own score of a reviewed post, and the floor that keeps a
promoted model from re-scoring the whole history (the classify stage's claims honour it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import claims, feedback
from storage import db as store
from storage.engine import Db
from storage.feedback import ReviewedPost, accuracy_by_version, is_held_out, reviewed_posts
from storage.privacy import ERASED

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def score(sentiment: str, urgency: float, version: str = "1") -> Score:
    return Score(sentiment, 0.8, 0.1, 0.1, urgency, "default", version)


def post(pid: str, text: str | None = None, lang: str = "en") -> Post:
    return Post(platform="x", platform_id=pid, text=text or f"the app broke again, post {pid}",
                created_at=NOW - timedelta(hours=1), source="x-main", brand="acme", lang=lang)


def stored(db: Db, *posts: Post, at: datetime = NOW) -> list[int]:
    store.store_page(db, "x-main", Page(posts=list(posts)), at)
    keys = [p.platform_id for p in posts]
    found = {r["platform_id"]: r["id"] for r in db.query(
        "SELECT id, platform_id FROM posts WHERE platform_id IN ({})".format(  # noqa: S608
            ", ".join("?" for _ in keys)), keys)}
    return [found[k] for k in keys]


def test_the_held_out_split_is_a_fixed_hash_of_the_post() -> None:
    keys = [f"x:{n}" for n in range(2000)]
    held = [k for k in keys if is_held_out(k)]
    assert 0.26 < len(held) / len(keys) < 0.34  # 30 % by default
    assert held == [k for k in keys if is_held_out(k)]  # the same on every call
    # a larger share only adds posts: none moves from held out to training
    assert set(held) <= {k for k in keys if is_held_out(k, 50)}
    assert not any(is_held_out(k, 0) for k in keys) and all(is_held_out(k, 100) for k in keys)
    # SHA-256 of the key, not Python's salted hash(): these never change between processes
    assert [is_held_out(f"x:{n}") for n in range(8)] == [
        is_held_out(f"x:{n}") for n in range(8)]


def test_reviewed_posts_newest_verdict_per_field_with_a_deterministic_split(any_db: Db) -> None:
    db = any_db
    ids = stored(db, *(post(str(n)) for n in range(40)), post("de", "Die App ist kaputt", "de"))
    store.save_scores(db, [(i, score("negative", 0.9), "en") for i in ids], NOW)
    for n, pid in enumerate(ids[:40]):
        feedback.add_feedback(db, pid, "sentiment", "positive", "ann", NOW - timedelta(days=1))
        feedback.add_feedback(db, pid, "sentiment", ["negative", "neutral"][n % 2], "bob", NOW)
    feedback.add_feedback(db, ids[0], "urgency", "not_complaint", "bob", NOW)
    feedback.add_feedback(db, ids[1], "relevance", "not_relevant", "bob", NOW)
    feedback.add_feedback(db, ids[40], "sentiment", "negative", "bob", NOW)
    db.execute("UPDATE posts SET text = ? WHERE id = ?", [ERASED, ids[2]])  # erased: no text

    rows = reviewed_posts(db)
    assert len(rows) == 41  # 39 English (one erased) + 1 German sentiment, 1 urgency
    by_field = {(r.post_id, r.field): r for r in rows}
    assert (ids[1], "relevance") not in by_field and (ids[2], "sentiment") not in by_field
    assert by_field[(ids[0], "urgency")].label == "not_complaint"
    assert by_field[(ids[0], "sentiment")] == ReviewedPost(
        ids[0], "x:0", "sentiment", "negative", "the app broke again, post 0", "en",
        is_held_out("x:0"))
    assert all(r.label == ["negative", "neutral"][int(r.key[2:]) % 2]
               for r in rows if r.field == "sentiment" and r.lang == "en")
    assert by_field[(ids[40], "sentiment")].lang == "de"
    # both fields of a post fall on the same side; the split is the key's, run after run
    assert by_field[(ids[0], "urgency")].held_out == by_field[(ids[0], "sentiment")].held_out
    assert [r.held_out for r in rows] == [is_held_out(r.key) for r in rows]
    assert reviewed_posts(db) == rows
    held = {r.key for r in rows if r.held_out}
    assert held and held != {r.key for r in rows}  # both parts have posts
    assert {r.key for r in reviewed_posts(db, held_out_percent=60) if r.held_out} >= held


def test_accuracy_by_version_counts_each_versions_own_score(any_db: Db) -> None:
    db = any_db
    ids = stored(db, *(post(str(n)) for n in range(4)))
    store.save_scores(db, [(ids[0], score("negative", 0.9), "en"),
                           (ids[1], score("neutral", 0.2), "en"),
                           (ids[2], score("positive", 0.7), "en")], NOW - timedelta(days=3))
    feedback.add_feedback(db, ids[0], "sentiment", "negative", "ann", NOW - timedelta(days=2))
    feedback.add_feedback(db, ids[1], "sentiment", "positive", "ann", NOW - timedelta(days=2))
    feedback.add_feedback(db, ids[1], "sentiment", "neutral", "ann", NOW - timedelta(days=1))
    feedback.add_feedback(db, ids[2], "sentiment", "negative", "ann", NOW - timedelta(days=2))
    feedback.add_feedback(db, ids[2], "urgency", "complaint", "ann", NOW - timedelta(days=2))
    feedback.add_feedback(db, ids[3], "relevance", "not_relevant", "ann", NOW)  # never counted
    # a promoted version re-scores two of the reviewed posts afterwards
    store.save_scores(db, [(ids[1], score("positive", 0.6, "2"), "en"),
                           (ids[2], score("negative", 0.3, "2"), "en")], NOW)

    table = {(a.model_version, a.field): a for a in accuracy_by_version(db)}
    assert set(table) == {("1", "sentiment"), ("1", "urgency"), ("2", "sentiment"),
                          ("2", "urgency")}
    old, new = table[("1", "sentiment")], table[("2", "sentiment")]
    # v1: post 0 right, post 1 right (its newest verdict is neutral), post 2 wrong
    assert (old.reviewed, old.correct) == (3, 2) and old.share == 2 / 3
    # v2: post 1 wrong (positive), post 2 right (negative)
    assert (new.reviewed, new.correct) == (2, 1)
    # urgency 0.7 is a complaint (v1 right), 0.3 is not (v2 wrong)
    assert (table[("1", "urgency")].correct, table[("2", "urgency")].correct) == (1, 0)
    held = {ids[n] for n in range(3) if is_held_out(f"x:{n}")}
    assert old.held_out_reviewed == len(held)
    assert old.held_out_correct == len(held & {ids[0], ids[1]})
    assert [a.model_version for a in accuracy_by_version(db)][:2] == ["1", "1"]  # oldest first
    # since: only verdicts given from then on (post 1's newest is a day old)
    recent = {(a.model_version, a.field): a for a in accuracy_by_version(
        db, NOW - timedelta(days=1, hours=1))}
    assert set(recent) == {("1", "sentiment"), ("2", "sentiment")}
    assert recent[("1", "sentiment")].reviewed == 1 and recent[("2", "sentiment")].correct == 0


def test_rescore_floor_keeps_old_scored_posts_out_and_claims_honour_it(any_db: Db) -> None:
    db = any_db
    old = stored(db, post("a"), post("b"), post("c"), at=NOW - timedelta(days=10))
    store.save_scores(db, [(old[0], score("neutral", 0.1), "en"),
                           (old[2], score("neutral", 0.1), "en")], NOW - timedelta(days=10))
    recent = stored(db, post("d"), post("e"), at=NOW - timedelta(hours=3))
    store.save_scores(db, [(i, score("neutral", 0.1), "en") for i in recent], NOW)
    # b was never scored (a backlog): the new model scores it and everything after
    assert feedback.rescore_floor(db, NOW - timedelta(hours=48)) == old[1] - 1
    store.save_scores(db, [(old[1], score("neutral", 0.1), "en")], NOW)
    assert feedback.rescore_floor(db, NOW - timedelta(hours=48)) == recent[0] - 1
    # nothing collected since: only posts collected from now on
    assert feedback.rescore_floor(db, NOW) == recent[-1]

    floor = feedback.rescore_floor(db, NOW - timedelta(hours=48))
    claimed = claims.posts_to_score(db, "default", "2", 10, "w1", NOW, 60, after=floor)
    assert [p.id for p in claimed] == recent
    assert [p.id for p in claims.posts_to_score(db, "default", "2", 10, "w2", NOW, 60)] == old
