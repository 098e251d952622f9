"""Dashboard log-in sessions kept server-side (the ``web_sessions`` table, migration 008), so
that logging out ends them.

Only the rows: :mod:`listener.web.sessions` makes the ids, signs the cookies, hashes each id
(the table holds the SHA-256 of an id, never the id) and decides how long a session lasts. A
session is good while it exists, has not expired and was not revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from listener.core.models import to_iso
from storage.engine import Db
from storage.tx import immediate


def start(db: Db, digest: str, user_id: int | None, now: datetime, expires_at: datetime,
          forget_expired_before: datetime) -> None:
    """Record a new session (by the digest of its id); sessions that expired before
    ``forget_expired_before`` are deleted in the same transaction, so the table stays small."""
    with immediate(db):
        db.execute("DELETE FROM web_sessions WHERE expires_at < ?",
                   [to_iso(forget_expired_before)])
        db.execute("INSERT INTO web_sessions (id, user_id, created_at, expires_at)"
                   " VALUES (?, ?, ?, ?)",
                   [digest, user_id, to_iso(now), to_iso(expires_at)])


def is_live(db: Db, digest: str, now: datetime) -> bool:
    """True when the session exists, has not expired by ``now`` and was not revoked."""
    row = db.execute("SELECT 1 FROM web_sessions WHERE id = ? AND revoked_at IS NULL"
                     " AND expires_at > ?", [digest, to_iso(now)]).fetchone()
    return row is not None


@dataclass(frozen=True)
class LiveSession:
    """A session that is still good; ``user_id`` is None for one the shared token started."""

    user_id: int | None


def live(db: Db, digest: str, now: datetime) -> LiveSession | None:
    """The session, when it exists, has not expired by ``now`` and was not revoked."""
    row = db.execute("SELECT user_id FROM web_sessions WHERE id = ? AND revoked_at IS NULL"
                     " AND expires_at > ?", [digest, to_iso(now)]).fetchone()
    return LiveSession(None if row[0] is None else int(row[0])) if row else None


def revoke(db: Db, digest: str, now: datetime) -> bool:
    """End a session at ``now`` (logout); False when there was none still open to end."""
    cursor = db.execute("UPDATE web_sessions SET revoked_at = ? WHERE id = ?"
                        " AND revoked_at IS NULL", [to_iso(now), digest])
    return bool(cursor.rowcount)
