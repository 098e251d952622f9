"""Dashboard log-ins, kept server-side so that logging out ends them.

The cookie carries a random session id and an HMAC of it under ``serve.token`` (changing the
token ends every session); the ``web_sessions`` table (migration 008) says whether that id is
still good: created, expires, revoked. A signed cookie alone would stay valid until it
expired, after logout too. The table stores the SHA-256 of the id, never the id itself, and
the ``user_id`` of the person who logged in (NULL for the shared token). The rows are read and
written by :mod:`storage.sessions`; here are the ids, the cookies and the lifetimes.

With no token configured (people log in by name), :data:`NO_TOKEN_KEY` signs: the signature
then only turns away malformed cookies early, the id's 256 random bits are what protect it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage import sessions as rows
from storage.sessions import LiveSession

SESSION_MAX_AGE = 7 * 24 * 3600  # seconds a log-in lasts
KEEP_ENDED = timedelta(days=30)  # ended sessions are deleted this long after they expired
NO_TOKEN_KEY = "listener-session"  # the signing key when serve.token is not set


def signing_key(token: str | None) -> str:
    """What session cookies are signed with: the token, when there is one."""
    return token if token is not None else NO_TOKEN_KEY


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
    rows.start(db, _digest(sid), user_id, now,
               expires_at=now + timedelta(seconds=SESSION_MAX_AGE),
               forget_expired_before=now - KEEP_ENDED)
    return sid


def live(db: Database, token: str, value: str, now: datetime) -> LiveSession | None:
    """The session of a signed cookie that is still good (with whose it is); None otherwise."""
    sid = session_id(token, value)
    if sid is None:
        return None
    return rows.live(db, _digest(sid), now)


def revoke(db: Database, token: str, value: str, now: datetime) -> bool:
    """End the cookie's session (logout); False when there was none to end."""
    sid = session_id(token, value)
    if sid is None:
        return False
    return rows.revoke(db, _digest(sid), now)
