"""The dashboard's reads for issue 15 on real databases, both engines (``any_db``): the queue
lists each post's language, whether the model understood it and which model scored it; a "not
understood" filter reads the partial index (SQLite's plan); the language menu lists every queued
language; trends count posts no model understood apart, and totals still add up; full-text
search ignores diacritics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listener.core.models import Page, Post, Score
from storage import alert_log, outbox, triage
from storage import db as store
from storage.engine import SQLITE, Db, dialect
from storage.trends import SENTIMENTS, Counts, Period, counts_by, total

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = Period(NOW - timedelta(days=1), NOW)
ANY_STATUS = dict(start=DAY.start, end=DAY.end, status=None)


def add(db: Db, pid: str, text: str, lang: str, sentiment: str, urgency: float,
        understood: bool = True, by: str = "multilingual-e5 1", brand: str = "acme",
        version: str = "1") -> int:
    """Store one post (or find it again) and give it a score; returns its id."""
    post = Post(platform="x", platform_id=pid, text=text, created_at=NOW - timedelta(hours=2),
                source="x-main", brand=brand, lang=lang, author_followers=100)
    store.store_page(db, "x-main", Page(posts=[post]), NOW)
    post_id = int(db.execute("SELECT id FROM posts WHERE platform_id = ?", [pid]).fetchone()[0])
    score = Score(sentiment, 0.6, 0.2, 0.2, urgency, "routed", version, lang=lang,
                  language_supported=understood, scored_by=by)
    store.save_scores(db, [(post_id, score, None)], NOW)
    return post_id


def queue_ids(db: Db, **filters: object) -> set[int]:
    return {r["post_id"] for r in triage.queue(
        db, triage.QueueFilter(**{**ANY_STATUS, **filters}))}  # type: ignore[arg-type]


def test_queue_rows_carry_language_understanding_and_the_model(any_db: Db) -> None:
    db = any_db
    es = add(db, "es", "quiero mi reembolso ya", "es", "negative", 0.8, by="multilingual-e5 1")
    sw = add(db, "sw", "nimelipishwa mara mbili", "sw", "positive", 0.1, understood=False,
             by="default 37ebe04e3245+onnx-int8.2")
    rows = {r["post_id"]: r for r in triage.queue(db, triage.QueueFilter(**ANY_STATUS))}
    assert set(rows) == {es, sw}  # the positive Swahili post is queued: a person must read it
    assert (rows[es]["lang"], rows[es]["language_supported"], rows[es]["scored_by"]) == (
        "es", 1, "multilingual-e5 1")
    assert (rows[sw]["lang"], rows[sw]["language_supported"], rows[sw]["scored_by"]) == (
        "sw", 0, "default 37ebe04e3245+onnx-int8.2")


def test_the_not_understood_filter_reads_the_partial_index(any_db: Db) -> None:
    db = any_db
    add(db, "es", "quiero mi reembolso ya", "es", "negative", 0.8)
    sw = add(db, "sw", "nimelipishwa mara mbili", "sw", "positive", 0.1, understood=False)
    ar = add(db, "ar", "لم يصل طلبي", "ar", "negative", 0.7, understood=False)
    assert queue_ids(db, unsupported=True) == {sw, ar}
    assert queue_ids(db, unsupported=True, lang="ar") == {ar}
    assert queue_ids(db, unsupported=True, sentiment="negative") == {ar}
    f = triage.QueueFilter(**ANY_STATUS, unsupported=True)  # type: ignore[arg-type]
    assert triage.count_queue(db, f) == 2
    sql, params = triage.queue_sql(db, f, 50, 0)
    if dialect(db) == SQLITE:  # PostgreSQL's planner picks by its statistics: no fixed plan
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "idx_triage_unsupported" in plan
    # a model that knows Swahili re-scores the post: understood now, and positive, so it leaves
    add(db, "sw", "nimelipishwa mara mbili", "sw", "positive", 0.1, version="2")
    assert queue_ids(db, unsupported=True) == {ar} and sw not in queue_ids(db)


def test_the_language_menu_lists_every_queued_language(any_db: Db) -> None:
    db = any_db
    add(db, "es", "quiero mi reembolso ya", "es", "negative", 0.8)
    add(db, "sw", "nimelipishwa mara mbili", "sw", "positive", 0.1, understood=False)  # only
    und = add(db, "und", "ugh!!!", "und", "negative", 0.6, by="default 1")
    add(db, "en", "love it", "en", "positive", 0.1)  # not in the queue: nothing to filter
    assert triage.distinct_values(db, "lang") == ["es", "sw", "und"]
    assert queue_ids(db, lang="und") == {und}
    assert queue_ids(db, lang="und", unsupported=True) == set()


def test_trends_count_posts_not_understood_apart_and_totals_add_up(any_db: Db) -> None:
    db = any_db
    add(db, "es", "quiero mi reembolso ya", "es", "negative", 0.8)
    add(db, "en", "fine thanks", "en", "neutral", 0.1)
    add(db, "sw", "nimelipishwa mara mbili", "sw", "negative", 0.9, understood=False)
    add(db, "ar", "لم يصل طلبي", "ar", "positive", 0.1, understood=False, brand="globex")
    stored = db.execute("SELECT count(*) FROM posts").fetchone()[0]
    assert "unsupported" in SENTIMENTS
    for bucket in ("hour", "day"):
        period = Period.ending(NOW, 48, whole_days=bucket != "hour")
        counts = total(counts_by(db, period, bucket, "bucket"))
        assert (counts.negative, counts.neutral, counts.positive, counts.unsupported) == (
            1, 1, 0, 2), bucket
        assert counts.total == stored == 4  # before: the two 'unsupported' cells were lost
        assert counts.negative_share == 0.5  # a guessed negative does not move the share
        assert counts.urgent == 2  # the model's guess, as for every post
        by_brand = counts_by(db, period, bucket, "brand")
        assert by_brand["globex"].unsupported == 1 and by_brand["acme"].unsupported == 1
        assert sum(c.total for c in by_brand.values()) == stored
    assert Counts(unsupported=3).as_dict()["total"] == 3
    assert Counts(unsupported=3).negative_share is None


def test_alert_rows_carry_the_language_of_their_score(any_db: Db) -> None:
    db = any_db
    sw = add(db, "sw", "nimelipishwa mara mbili", "sw", "negative", 0.9, understood=False,
             by="default 2")
    score_id = db.execute("SELECT max(id) FROM scores WHERE post_id = ?", [sw]).fetchone()[0]
    outbox.enqueue(db, [outbox.NewAlert(rule="r", destination="slack", post_id=sw,
                                        score_id=score_id, post_key="x:sw")], [], NOW)
    [row] = alert_log.alerts(db, alert_log.AlertFilter())
    assert (row["lang"], row["language_supported"], row["scored_by"]) == ("sw", 0, "default 2")


@pytest.mark.parametrize(("typed", "written"), [
    ("manana", "hasta mañana sin respuesta"), ("mañana", "hasta manana sin respuesta"),
    ("MAÑANA", "hasta manana sin respuesta"), ('"Geld zurück"', "ich will mein Geld zuruck"),
    ("zuruck", "ich will mein Geld zurück"), ("cafe", "le café est fermé"),
    ("café", "le cafe est ferme"), ("cafe\u0301", "le café est fermé"),  # typed decomposed
    ("طلبي", "لم يصل طلبي حتى الآن"), ("पैसा", "मेरा पैसा वापस करो"), ("reembols*", "un reembolso"),
])
def test_search_ignores_diacritics_and_reads_any_script(any_db: Db, typed: str, written: str
                                                        ) -> None:
    db = any_db
    found = add(db, "a", written, "und", "negative", 0.7)
    add(db, "b", "nothing to see here at all", "en", "negative", 0.7)
    assert triage.check_search(db, typed) is None
    assert queue_ids(db, q=typed) == {found}
