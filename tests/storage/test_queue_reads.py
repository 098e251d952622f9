"""What the queue page reads to notice new posts, and which posts a change names exist
(storage/queue_reads.py, issue 18), on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import inbox, queue_reads
from storage.engine import Db
from storage.triage import QueueFilter

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _add(db: Db, key: str, brand: str = "acme", sentiment: str = "negative",
         hours_ago: float = 30) -> int:
    """One post; negative ones enter the queue. Written ``hours_ago``: arrivals are told by id,
    so a post written long ago and stored now is new to the queue all the same."""
    post = Post(platform="x", platform_id=key, text=f"my order {key} never arrived",
                created_at=NOW - timedelta(hours=hours_ago), source="x-main", brand=brand,
                lang="en", author_followers=100)
    store.store_page(db, "x-main", Page(posts=[post]), NOW)
    post_id = int(db.execute("SELECT id FROM posts WHERE platform_id = ?", [key]).fetchone()[0])
    urgency = 0.9 if sentiment == "negative" else 0.1
    store.save_scores(db, [(post_id, Score(sentiment, 0.8, 0.1, 0.1, urgency, "m", "1"), "en")],
                      NOW)
    return post_id


def test_arrivals_count_what_the_filters_show_past_the_newest_row_seen(any_db: Db) -> None:
    db = any_db
    assert queue_reads.newest(db) == 0
    first = _add(db, "a1")
    seen = queue_reads.newest(db)
    assert seen == first
    everything = QueueFilter(status=None)
    assert queue_reads.arrivals(db, everything, seen) == queue_reads.Arrivals(0, seen)
    acme, globex = _add(db, "a2", hours_ago=200), _add(db, "g1", brand="globex")
    _add(db, "p1", sentiment="positive")  # not queue work: never an arrival
    assert queue_reads.arrivals(db, everything, seen) == queue_reads.Arrivals(2, globex)
    assert queue_reads.arrivals(db, QueueFilter(status=None, brand="acme"), seen) == (
        queue_reads.Arrivals(1, acme))
    recent = QueueFilter(status=None, start=NOW - timedelta(days=2), end=NOW)
    assert queue_reads.arrivals(db, recent, seen).count == 1  # a2 was written 200 h ago
    inbox.assign(db, globex, "ann", "ann", NOW)
    assert queue_reads.arrivals(db, QueueFilter(status="new"), seen).count == 1
    mine = QueueFilter(status="open", assignee="ann")
    assert queue_reads.arrivals(db, mine, seen) == queue_reads.Arrivals(1, globex)
    assert queue_reads.arrivals(db, everything, 0, cap=2).count == 2  # capped
    assert queue_reads.newest(db) == globex


def test_existing_names_only_stored_posts(any_db: Db) -> None:
    db = any_db
    ids = [_add(db, "e1"), _add(db, "e2", sentiment="positive")]
    assert queue_reads.existing(db, [*ids, ids[0], 99_999]) == set(ids)
    assert queue_reads.existing(db, []) == set()
