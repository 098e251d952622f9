"""storage.delivery_outcomes on a real SQLite file: a mark in the deliveries log, and each
alert's latest outcome after it (what one ``run --once`` did)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from storage.delivery_outcomes import deliveries_mark, outcomes_since
from storage.engine import Db
from storage.tx import connect
from tests.pg_server import Server

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def queued(db: Db, *keys: str) -> list[str]:
    posts = [Post(platform="x", platform_id=k, text=f"broken {k}", created_at=T0,
                  source="x-main", lang="en") for k in keys]
    store.store_page(db, "x-main", Page(posts=posts), T0)
    ids = [r[0] for r in db.execute("SELECT id FROM posts ORDER BY id").fetchall()]
    store.save_scores(db, [(i, Score("negative", 0.9, 0.05, 0.05, 0.9, "m", "1"), "en")
                           for i in ids], T0)
    scores = [r[0] for r in db.execute("SELECT id FROM scores ORDER BY id").fetchall()]
    alerts = [outbox.NewAlert("unhappy", "hook", i, s, f"x:{k}")
              for i, s, k in zip(ids, scores, keys, strict=True)]
    outbox.enqueue(db, alerts, [], T0)
    return [a.id for a in alerts]


def retry(db: Db, alert: str, attempt: int) -> None:
    outbox.record_failure(db, alert, attempt, T0, error="503", status_code=503,
                          retry_at=T0 + timedelta(minutes=1), ms=1.0)


def test_no_deliveries_yet(any_db: Db) -> None:
    assert deliveries_mark(any_db) == 0
    assert outcomes_since(any_db, 0) == {}


def test_a_database_without_the_deliveries_table_has_mark_zero() -> None:
    bare = Database(memory=True)  # before any migration: nothing has run yet
    try:
        assert deliveries_mark(bare) == 0
    finally:
        bare.close()


def test_a_postgresql_schema_without_the_deliveries_table_has_mark_zero(pg_server: Server) -> None:
    bare = connect(pg_server.new_database())
    try:
        bare.execute("CREATE SCHEMA bare")  # an empty schema first on the search path
        bare.execute("SET search_path = bare")
        assert deliveries_mark(bare) == 0
    finally:
        bare.close()


def test_outcomes_after_a_mark_count_each_alerts_latest_attempt(any_db: Db) -> None:
    early, a, b, c = queued(any_db, "0", "1", "2", "3")
    retry(any_db, early, 1)  # before the run
    mark = deliveries_mark(any_db)
    assert mark == 1
    retry(any_db, a, 1)
    outbox.record_delivered(any_db, a, 2, "r1", T0, 1.0)  # retried, then delivered: delivered
    retry(any_db, b, 1)
    outbox.record_failure(any_db, c, 1, T0, error="410", status_code=410, retry_at=None, ms=1.0)
    retry(any_db, early, 2)  # an older alert's attempt in this run counts too
    assert outcomes_since(any_db, mark) == {"delivered": 1, "retry": 2, "failed": 1}
    assert deliveries_mark(any_db) == 6
    assert outcomes_since(any_db, deliveries_mark(any_db)) == {}
