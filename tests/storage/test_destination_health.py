"""storage.destination_health on a real SQLite file: a destination's alerts that keep failing
and when it last took one, as the outbox's own verbs record them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import destination_health, outbox
from storage.destination_health import Retrying

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def queued(db: Database, destination: str, *keys: str, at: datetime = T0) -> list[str]:
    """One pending alert to ``destination`` per new post, queued at ``at``; their ids."""
    posts = [Post(platform="x", platform_id=f"{destination}-{k}", text=f"broken {destination} {k}",
                  created_at=at, source="x-main", lang="en") for k in keys]
    store.store_page(db, "x-main", Page(posts=posts), at)
    alerts = []
    for p in posts:
        post_id = db.execute("SELECT id FROM posts WHERE platform_id = ?",
                             [p.platform_id]).fetchone()[0]
        store.save_scores(db, [(post_id, Score("negative", 0.9, 0.05, 0.05, 0.9, "m", "1"),
                                "en")], at)
        score_id = db.execute("SELECT max(id) FROM scores").fetchone()[0]
        alerts.append(outbox.NewAlert("unhappy", destination, post_id, score_id,
                                      f"x:{p.platform_id}"))
    outbox.enqueue(db, alerts, [], at)
    return [a.id for a in alerts]


def failed(db: Database, alert: str, attempts: int, at: datetime, error: str = "503") -> None:
    for attempt in range(1, attempts + 1):
        outbox.record_failure(db, alert, attempt, at, error=error, status_code=503,
                              retry_at=at + timedelta(minutes=5), ms=1.0)


def test_a_destination_with_nothing_retrying_or_delivered(db: Database) -> None:
    assert destination_health.retrying(db, "hook", 3) is None
    assert destination_health.last_delivered(db, "hook") is None
    queued(db, "hook", "a")  # pending, never attempted
    assert destination_health.retrying(db, "hook", 1) is None


def test_retrying_counts_alerts_past_the_attempts_with_the_oldest_ones_error(
    db: Database,
) -> None:
    first, second, blip = queued(db, "hook", "a", "b", "c")
    [other] = queued(db, "mail", "d")
    failed(db, first, 3, T0, error="connection refused")
    failed(db, second, 4, T0)
    failed(db, blip, 1, T0)  # one failure is a blip, not "keeps failing"
    failed(db, other, 3, T0)
    assert destination_health.retrying(db, "hook", 3) == \
        Retrying(count=2, oldest_queued_at="2026-11-20T10:00:00Z", last_error="connection refused")
    assert destination_health.retrying(db, "hook", 5) is None
    got = destination_health.retrying(db, "mail", 3)
    assert got is not None and got.count == 1


def test_last_delivered_is_the_newest_delivery_to_that_destination(db: Database) -> None:
    a, b = queued(db, "hook", "a", "b")
    [c] = queued(db, "mail", "c")
    outbox.record_delivered(db, a, 1, "r1", T0 + timedelta(minutes=1), 1.0)
    outbox.record_delivered(db, b, 1, "r2", T0 + timedelta(minutes=7), 1.0)
    outbox.record_delivered(db, c, 1, "r3", T0 + timedelta(minutes=9), 1.0)
    assert destination_health.last_delivered(db, "hook") == "2026-11-20T10:07:00Z"
    assert destination_health.last_delivered(db, "mail") == "2026-11-20T10:09:00Z"
    assert destination_health.last_delivered(db, "slack") is None
