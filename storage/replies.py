"""Replies to customers, sent through the platform (issue 18): the rows and their life.

A reply is written on the post page (:func:`create`), waits for an admin where the author's
role needs approval (``awaiting_approval`` → :func:`approve` or :func:`reject`), and is then
``pending`` for the dispatch stage. Sending is the outbox's protocol, per reply:

1. :func:`begin` (its own transaction) marks it ``sending`` and counts the attempt; a reply
   found ``sending`` later was being sent when a worker died, so the sender first asks the
   platform whether it got there (each writer's ``find``) before sending again;
2. the platform is called outside any transaction;
3. :func:`record_sent` stores what the platform created, moves the post to ``replied`` and
   writes the audit entry — one transaction; or :func:`record_failure` schedules a retry
   (``pending`` again) or parks it (``failed``, with the cause).

Many workers share the work through leases named ``reply:<id>`` (:mod:`storage.leases`): the
one holding the lease sends; the others skip it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.models import parse_iso, to_iso
from storage import audit
from storage.engine import Db
from storage.triage import set_status
from storage.tx import immediate

AWAITING, PENDING, SENDING, SENT = "awaiting_approval", "pending", "sending", "sent"
FAILED, REJECTED, CANCELLED = "failed", "rejected", "cancelled"
LEASE = "reply:"
TEXT_MAX = 10_000  # characters; each platform's writer enforces its own, shorter limit
_COLUMNS = ("id, post_id, account, platform, author, text, status, created_at, approved_by,"
            " approved_at, attempts, next_attempt_at, last_error, remote_id, remote_url, sent_at")


class ReplyError(ValueError):
    """A reply that cannot be written, approved or changed as asked (said to the person)."""


@dataclass(frozen=True)
class Reply:
    id: str
    post_id: int
    account: str
    platform: str
    author: str
    text: str
    status: str
    created_at: str
    approved_by: str | None
    approved_at: str | None
    attempts: int
    next_attempt_at: str
    last_error: str | None
    remote_id: str | None
    remote_url: str | None
    sent_at: str | None


def _reply(row: Any) -> Reply:
    return Reply(*(row[i] for i in range(16)))


def get(db: Db, reply_id: str) -> Reply | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM replies WHERE id = ?",  # noqa: S608 (constants)
                     [reply_id]).fetchone()
    return _reply(row) if row else None


def for_post(db: Db, post_id: int) -> list[Reply]:
    """A post's replies, oldest first (the post page shows the conversation)."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM replies WHERE post_id = ?"  # noqa: S608
                      " ORDER BY created_at, id", [post_id]).fetchall()
    return [_reply(r) for r in rows]


def awaiting_approval(db: Db, limit: int = 200) -> list[Reply]:
    rows = db.execute(f"SELECT {_COLUMNS} FROM replies WHERE status = ?"  # noqa: S608
                      " ORDER BY created_at LIMIT ?", [AWAITING, limit]).fetchall()
    return [_reply(r) for r in rows]


def create(db: Db, post_id: int, account: str, platform: str, author: str, text: str,
           now: datetime, *, needs_approval: bool, address: str | None = None) -> Reply:
    """Write a reply (and its audit entry); it is sent once approved, or at once."""
    text = text.strip()
    if not text or len(text) > TEXT_MAX:
        raise ReplyError(f"a reply has 1 to {TEXT_MAX} characters")
    reply_id = uuid.uuid4().hex
    status = AWAITING if needs_approval else PENDING
    stamp = to_iso(now)
    with immediate(db):
        _refuse_a_repeat(db, post_id, text)
        db.execute("INSERT INTO replies (id, post_id, account, platform, author, text, status,"
                   " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [reply_id, post_id, account, platform, author, text, status, stamp, stamp])
        audit.record(db, author, "reply.write", now, target=f"post:{post_id}", address=address,
                     detail={"reply": reply_id, "account": account, "status": status})
    found = get(db, reply_id)
    assert found is not None
    return found


def _refuse_a_repeat(db: Db, post_id: int, text: str) -> None:
    """The same text to the same post twice is a double click, not a conversation — and on
    platforms without idempotency keys (Reddit, X) two identical replies could not be told
    apart when looking whether an attempt got there."""
    row = db.execute("SELECT status FROM replies WHERE post_id = ? AND text = ?"
                     " AND status NOT IN (?, ?) LIMIT 1",
                     [post_id, text, REJECTED, CANCELLED]).fetchone()
    if row is not None:
        hint = " — send it again from the post page" if row[0] == FAILED else ""
        raise ReplyError(f"this reply was already written for this post ({row[0]}){hint}")


def _decide(db: Db, reply_id: str, to: str, by: str, now: datetime, action: str,
            address: str | None, detail: dict[str, Any]) -> Reply:
    with immediate(db):
        reply = get(db, reply_id)
        if reply is None or reply.status != AWAITING:
            raise ReplyError("this reply is not waiting for approval (any more)")
        db.execute("UPDATE replies SET status = ?, approved_by = ?, approved_at = ?,"
                   " next_attempt_at = ? WHERE id = ?", [to, by, to_iso(now), to_iso(now),
                                                         reply_id])
        audit.record(db, by, action, now, target=f"post:{reply.post_id}", address=address,
                     detail={"reply": reply_id, **detail})
    changed = get(db, reply_id)
    assert changed is not None
    return changed


def approve(db: Db, reply_id: str, by: str, now: datetime, address: str | None = None) -> Reply:
    return _decide(db, reply_id, PENDING, by, now, "reply.approve", address, {})


def reject(db: Db, reply_id: str, by: str, now: datetime, reason: str = "",
           address: str | None = None) -> Reply:
    return _decide(db, reply_id, REJECTED, by, now, "reply.reject", address,
                   {"reason": reason[:500]} if reason else {})


def due(db: Db, now: datetime, accounts: list[str], limit: int = 50) -> list[Reply]:
    """Replies to send now through these accounts: pending ones whose time has come, and ones
    left ``sending`` by a worker that died (the sender looks on the platform first)."""
    if not accounts:
        return []
    marks = ", ".join("?" * len(accounts))
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM replies WHERE status IN (?, ?) AND next_attempt_at <= ?"  # noqa: S608 (placeholders)
        f" AND account IN ({marks}) ORDER BY next_attempt_at, id LIMIT ?",
        [PENDING, SENDING, to_iso(now), *accounts, limit]).fetchall()
    return [_reply(r) for r in rows]


def begin(db: Db, reply_id: str, now: datetime) -> Reply | None:
    """Mark an attempt (``sending``, one more attempt); None when the reply is no longer due
    (sent, cancelled or changed meanwhile). The returned reply's ``status`` is what it was
    before: ``sending`` means an earlier attempt may have reached the platform."""
    with immediate(db):
        reply = get(db, reply_id)
        if reply is None or reply.status not in (PENDING, SENDING):
            return None
        db.execute("UPDATE replies SET status = ?, attempts = attempts + 1,"
                   " next_attempt_at = ? WHERE id = ?", [SENDING, to_iso(now), reply_id])
    return reply


def record_sent(db: Db, reply: Reply, remote_id: str, remote_url: str | None,
                now: datetime) -> None:
    """The platform has the reply: store what it made, move the post to ``replied`` (the first
    response, when it is one) and audit it, together."""
    with immediate(db):
        db.execute("UPDATE replies SET status = ?, remote_id = ?, remote_url = ?, sent_at = ?,"
                   " last_error = NULL WHERE id = ?",
                   [SENT, remote_id, remote_url, to_iso(now), reply.id])
        current = db.execute("SELECT status FROM post_status WHERE post_id = ?",
                             [reply.post_id]).fetchone()
        if current is None or current[0] in ("new", "assigned"):
            set_status(db, reply.post_id, "replied", reply.author, now)
        audit.record(db, reply.author, "reply.sent", now, target=f"post:{reply.post_id}",
                     detail={"reply": reply.id, "account": reply.account,
                             "remote_id": remote_id})


def record_failure(db: Db, reply: Reply, now: datetime, error: str,
                   retry_at: datetime | None) -> None:
    """An attempt failed: ``pending`` again at ``retry_at``, or parked as ``failed``."""
    with immediate(db):
        # only a reply still being sent: one withdrawn meanwhile (a person forgotten, see
        # storage.privacy) stays withdrawn
        changed = db.execute(
            "UPDATE replies SET status = ?, last_error = ?, next_attempt_at = ?"
            " WHERE id = ? AND status = ?", [PENDING if retry_at else FAILED, error[:2000],
                                             to_iso(retry_at or now), reply.id, SENDING])
        if retry_at is None and changed.rowcount:
            audit.record(db, reply.author, "reply.failed", now, target=f"post:{reply.post_id}",
                         detail={"reply": reply.id, "error": error[:300]})


def retry(db: Db, reply_id: str, by: str, now: datetime, address: str | None = None) -> Reply:
    """Send a parked (failed) reply again: one more attempt, which first looks on the platform
    whether an earlier one got there (its attempts are kept, so the sender asks)."""
    with immediate(db):
        reply = get(db, reply_id)
        if reply is None or reply.status != FAILED:
            raise ReplyError("only a failed reply can be sent again")
        db.execute("UPDATE replies SET status = ?, next_attempt_at = ? WHERE id = ?",
                   [PENDING, to_iso(now), reply_id])
        audit.record(db, by, "reply.retry", now, target=f"post:{reply.post_id}",
                     address=address, detail={"reply": reply_id})
    changed = get(db, reply_id)
    assert changed is not None
    return changed


def cancel(db: Db, reply_id: str, by: str, now: datetime, address: str | None = None) -> Reply:
    """Withdraw a reply no attempt has been made to send (awaiting approval, or pending and
    never tried), or one parked as failed. Not one being sent or retried: an attempt that
    timed out may have reached the platform."""
    with immediate(db):
        reply = get(db, reply_id)
        if reply is None or not (reply.status in (AWAITING, FAILED)
                                 or (reply.status == PENDING and not reply.attempts)):
            raise ReplyError("this reply is being sent or was sent: it cannot be withdrawn")
        db.execute("UPDATE replies SET status = ? WHERE id = ?", [CANCELLED, reply_id])
        audit.record(db, by, "reply.cancel", now, target=f"post:{reply.post_id}",
                     address=address, detail={"reply": reply_id})
    changed = get(db, reply_id)
    assert changed is not None
    return changed


@dataclass(frozen=True)
class Target:
    """The post a reply answers, as the platform's writer needs it."""

    platform_id: str
    url: str | None
    author: str | None
    thread: str | None
    raw: dict[str, Any]
    # what the customer wrote, the stars and when: a store whose write API knows reviews by
    # another id than the collector's finds the review by them (alerts/replies/appstore.py)
    text: str = ""
    rating: float | None = None
    created_at: datetime | None = None


def target(db: Db, post_id: int) -> Target | None:
    row = db.execute("SELECT platform_id, url, author, thread, raw, text, rating, created_at"
                     " FROM posts WHERE id = ?", [post_id]).fetchone()
    if row is None:
        return None
    try:
        raw = json.loads(row[4]) if row[4] else {}
    except ValueError:
        raw = {}
    return Target(str(row[0]), row[1], row[2], row[3], raw if isinstance(raw, dict) else {},
                  row[5] or "", row[6], parse_iso(row[7]) if row[7] else None)
