"""storage.backlog on a real SQLite file: posts waiting for the model, scores waiting for the
rules and alerts per outbox status, counted with the verbs the stages write through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import backlog, outbox
from storage import db as store
from storage.engine import Db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def post(pid: str) -> Post:
    return Post(platform="x", platform_id=pid, text=f"post {pid}: the app is broken",
                created_at=NOW - timedelta(hours=1), source="x-main", brand="acme", lang="en")


def stored(db: Db, *pids: str) -> list[int]:
    store.store_page(db, "x-main", Page(posts=[post(p) for p in pids]), NOW)
    return [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]


def scored(db: Db, *post_ids: int) -> list[int]:
    store.save_scores(db, [(p, Score("negative", 0.8, 0.1, 0.1, 0.9, "m", "1"), "en")
                           for p in post_ids], NOW)
    return [r[0] for r in db.execute("SELECT id FROM scores ORDER BY id").fetchall()]


def test_an_empty_database_has_no_backlog(any_db: Db) -> None:
    assert backlog.unscored(any_db) == 0
    assert backlog.unevaluated(any_db) == 0
    assert backlog.alerts_with_status(any_db, outbox.PENDING) == 0


def test_unscored_posts_are_those_after_the_post_of_the_newest_score(any_db: Db) -> None:
    ids = stored(any_db, "1", "2", "3", "4")
    assert backlog.unscored(any_db) == 4
    scored(any_db, ids[0], ids[1])
    assert backlog.unscored(any_db) == 2
    scored(any_db, ids[3])  # classify goes in id order: the approximation counts after the newest
    assert backlog.unscored(any_db) == 0


def test_unevaluated_scores_and_alerts_per_status(any_db: Db) -> None:
    ids = stored(any_db, "1", "2", "3")
    score_ids = scored(any_db, *ids)
    assert backlog.unevaluated(any_db) == 3
    alerts = [outbox.NewAlert("unhappy", "hook", ids[0], score_ids[0], "x:1"),
              outbox.NewAlert("unhappy", "hook", ids[1], score_ids[1], "x:2"),
              outbox.NewAlert("unhappy", "mail", ids[1], score_ids[1], "x:2")]
    assert outbox.enqueue(any_db, alerts, score_ids[:2], NOW) == 3
    assert backlog.unevaluated(any_db) == 1
    assert backlog.alerts_with_status(any_db, outbox.PENDING) == 3
    outbox.record_failure(any_db, alerts[0].id, 1, NOW, error="410 Gone", status_code=410,
                          retry_at=None, ms=5.0)
    assert backlog.alerts_with_status(any_db, outbox.PENDING) == 2
    assert backlog.alerts_with_status(any_db, outbox.FAILED) == 1
    assert backlog.alerts_with_status(any_db, outbox.DELIVERED) == 0
