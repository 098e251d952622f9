"""Dashboard log-ins, kept server-side so that logging out ends them.

The cookie carries a random session id and an HMAC of it under ``serve.token`` (changing the
token ends every session); the ``web_sessions`` table (migration 008) says whether that id is
still good: created, expires, revoked. A signed cookie alone would stay valid until it
expired, after logout too. The table stores the SHA-256 of the id, never the id itself, and a
``user_id`` that stays NULL for the shared token (named users come later).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlite_utils import Database

from listener.core.models import to_iso
from storage.tx import immediate

SESSION_MAX_AGE = 7 * 24 * 3600  # seconds a log-in lasts
KEEP_ENDED = timedelta(days=30)  # ended sessions are deleted this long after they expired


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _signature(token: str, session_id: str) -> str:
    return hmac.new(token.encode(), f"session:{session_id}".encode(), hashlib.sha256).hexdigest()


def cookie_value(token: str, session_id: str) -> str:
    """What the cookie holds: ``<id>.<hmac>``."""
    return f"{session_id}.{_signature(token, session_id)}"


def session_id(token: str, value: str) -> str | None:
    """The id of a cookie whose signature is right; None for a forged or malformed one
    (checked before the database is asked)."""
    sid, _, signature = value.partition(".")
    if not sid or not hmac.compare_digest(signature.encode(), _signature(token, sid).encode()):
        return None
    return sid


def start(db: Database, now: datetime, user_id: int | None = None) -> str:
    """A new session, valid for SESSION_MAX_AGE; returns its id (for the cookie only).
    Sessions that ended long ago are deleted here, so the table stays small."""
    sid = secrets.token_urlsafe(32)
    with immediate(db):
        db.execute("DELETE FROM web_sessions WHERE expires_at < ?", [to_iso(now - KEEP_ENDED)])
        db.execute("INSERT INTO web_sessions (id, user_id, created_at, expires_at)"
                   " VALUES (?, ?, ?, ?)",
                   [_digest(sid), user_id, to_iso(now),
                    to_iso(now + timedelta(seconds=SESSION_MAX_AGE))])
    return sid


def is_valid(db: Database, token: str, value: str, now: datetime) -> bool:
    """True for a signed cookie whose session exists, has not expired and was not revoked."""
    sid = session_id(token, value)
    if sid is None:
        return False
    row = db.execute("SELECT 1 FROM web_sessions WHERE id = ? AND revoked_at IS NULL"
                     " AND expires_at > ?", [_digest(sid), to_iso(now)]).fetchone()
    return row is not None


def revoke(db: Database, token: str, value: str, now: datetime) -> bool:
    """End the cookie's session (logout); False when there was none to end."""
    sid = session_id(token, value)
    if sid is None:
        return False
    cursor = db.execute("UPDATE web_sessions SET revoked_at = ? WHERE id = ?"
                        " AND revoked_at IS NULL", [to_iso(now), _digest(sid)])
    return bool(cursor.rowcount)
