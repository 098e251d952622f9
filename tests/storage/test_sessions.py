"""storage.sessions on a real SQLite file: web_sessions rows started, checked, revoked and
forgotten long after they expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import sessions
from storage.engine import Db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def start(db: Db, digest: str, at: datetime = NOW) -> None:
    sessions.start(db, digest, None, at, expires_at=at + WEEK,
                   forget_expired_before=at - timedelta(days=30))


def test_a_started_session_is_live_until_it_expires(any_db: Db) -> None:
    start(any_db, "d1")
    assert sessions.is_live(any_db, "d1", NOW)
    assert sessions.is_live(any_db, "d1", NOW + WEEK - timedelta(seconds=1))
    assert not sessions.is_live(any_db, "d1", NOW + WEEK)
    assert not sessions.is_live(any_db, "never-started", NOW)
    row = any_db.execute("SELECT user_id, created_at, expires_at, revoked_at FROM web_sessions"
                         " WHERE id = 'd1'").fetchone()
    assert row == (None, "2026-11-20T12:00:00Z", "2026-11-27T12:00:00Z", None)


def test_a_revoked_session_is_over_and_revoking_it_again_does_nothing(any_db: Db) -> None:
    start(any_db, "d1")
    start(any_db, "d2")
    assert sessions.revoke(any_db, "d1", NOW + timedelta(hours=1))
    assert not sessions.is_live(any_db, "d1", NOW + timedelta(hours=1))
    assert sessions.is_live(any_db, "d2", NOW + timedelta(hours=1))
    assert not sessions.revoke(any_db, "d1", NOW + timedelta(hours=2))  # already ended
    assert not sessions.revoke(any_db, "never-started", NOW)
    revoked = any_db.execute("SELECT revoked_at FROM web_sessions WHERE id = 'd1'").fetchone()[0]
    assert revoked == "2026-11-20T13:00:00Z"  # the first revocation's time stays


def test_starting_a_session_forgets_those_that_expired_long_before(any_db: Db) -> None:
    start(any_db, "old", NOW - timedelta(days=40))  # expired 33 days ago
    start(any_db, "recent", NOW - timedelta(days=20))  # expired 13 days ago: kept a while
    start(any_db, "new")
    ids = {r[0] for r in any_db.execute("SELECT id FROM web_sessions").fetchall()}
    assert ids == {"recent", "new"}
