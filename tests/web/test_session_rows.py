"""storage.sessions.live on both engines: a live session says whose it is (issue 18)."""

from __future__ import annotations

from datetime import timedelta

from storage import sessions, users
from storage.engine import Db
from storage.sessions import LiveSession
from tests.web.seed import NOW

WEEK = timedelta(days=7)


def _start(db: Db, digest: str, user_id: int | None) -> None:
    sessions.start(db, digest, user_id, NOW, expires_at=NOW + WEEK,
                   forget_expired_before=NOW - timedelta(days=30))


def test_a_live_session_says_whose_it_is(any_db: Db) -> None:
    alice = users.add(any_db, "alice", "agent", None, NOW)
    _start(any_db, "d-alice", alice.id)
    _start(any_db, "d-token", None)
    assert sessions.live(any_db, "d-alice", NOW) == LiveSession(alice.id)
    assert sessions.live(any_db, "d-token", NOW) == LiveSession(None)
    assert sessions.live(any_db, "d-alice", NOW + WEEK) is None  # expired
    assert sessions.live(any_db, "never-started", NOW) is None
    assert sessions.revoke(any_db, "d-alice", NOW)
    assert sessions.live(any_db, "d-alice", NOW) is None
    assert sessions.live(any_db, "d-token", NOW) == LiveSession(None)
