"""storage.destination_health on a real SQLite file: a destination's alerts that keep failing
and when it last took one, as the outbox's own verbs record them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import destination_health, outbox
from storage.destination_health import Retrying
from storage.engine import Db

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def queued(db: Db, destination: str, *keys: str, at: datetime = T0) -> list[str]:
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


def failed(db: Db, alert: str, attempts: int, at: datetime, error: str = "503") -> None:
    for attempt in range(1, attempts + 1):
        outbox.record_failure(db, alert, attempt, at, error=error, status_code=503,
                              retry_at=at + timedelta(minutes=5), ms=1.0)


def test_a_destination_with_nothing_retrying_or_delivered(any_db: Db) -> None:
    assert destination_health.retrying(any_db, "hook", 3) is None
    assert destination_health.last_delivered(any_db, "hook") is None
    queued(any_db, "hook", "a")  # pending, never attempted
    assert destination_health.retrying(any_db, "hook", 1) is None


def test_retrying_counts_alerts_past_the_attempts_with_the_oldest_ones_error(
    any_db: Db,
) -> None:
    [first] = queued(any_db, "hook", "a")
    second, blip = queued(any_db, "hook", "b", "c", at=T0 + timedelta(minutes=1))
    [other] = queued(any_db, "mail", "d")
    failed(any_db, first, 3, T0, error="connection refused")  # the oldest: its error is named
    failed(any_db, second, 4, T0)
    failed(any_db, blip, 1, T0)  # one failure is a blip, not "keeps failing"
    failed(any_db, other, 3, T0)
    assert destination_health.retrying(any_db, "hook", 3) == \
        Retrying(count=2, oldest_queued_at="2026-11-20T10:00:00Z", last_error="connection refused")
    assert destination_health.retrying(any_db, "hook", 5) is None
    got = destination_health.retrying(any_db, "mail", 3)
    assert got is not None and got.count == 1


def test_last_delivered_is_the_newest_delivery_to_that_destination(any_db: Db) -> None:
    a, b = queued(any_db, "hook", "a", "b")
    [c] = queued(any_db, "mail", "c")
    outbox.record_delivered(any_db, a, 1, "r1", T0 + timedelta(minutes=1), 1.0)
    outbox.record_delivered(any_db, b, 1, "r2", T0 + timedelta(minutes=7), 1.0)
    outbox.record_delivered(any_db, c, 1, "r3", T0 + timedelta(minutes=9), 1.0)
    assert destination_health.last_delivered(any_db, "hook") == "2026-11-20T10:07:00Z"
    assert destination_health.last_delivered(any_db, "mail") == "2026-11-20T10:09:00Z"
    assert destination_health.last_delivered(any_db, "slack") is None


def test_retrying_alerts_queued_in_the_same_second_name_the_lower_ids_error(any_db: Db) -> None:
    """Equally old: the error of the alert with the lower id, the same on both engines."""
    alerts = queued(any_db, "hook", "a", "b")
    for alert in alerts:
        failed(any_db, alert, 2, T0, error=f"error of {alert}")
    got = destination_health.retrying(any_db, "hook", 2)
    assert got == Retrying(count=2, oldest_queued_at="2026-11-20T10:00:00Z",
                           last_error=f"error of {min(alerts)}")
