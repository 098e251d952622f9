"""The reply stage: send due replies through their accounts' writers, exactly once.

Runs with dispatch (the runtime calls :func:`send_replies` after the alerts' passes). Per
reply: take its lease (many workers: one sends, the others skip it), mark the attempt
(:func:`storage.replies.begin`), ask the platform whether an earlier attempt already got there
when there was one (:meth:`ReplyWriter.find`), else send; record the outcome. A crash between
the platform's answer and the record leaves the reply ``sending``: the next attempt finds the
reply on the platform instead of posting it again. A 429 holds the account's other replies
until Retry-After; other failures retry with the alerts' backoff and park after
``max_attempts``. A slow platform delays only its own replies: each attempt is cut off after
``send_deadline`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.dispatch import RetryPolicy
from alerts.replies.base import Outgoing, ReplyWriter, Sent
from listener.core.deadline import deadline
from listener.core.errors import DeadlineExceeded, DeliveryError, RateLimited
from listener.core.models import Clock
from listener.core.netguard import Endpoint, only_to
from storage import leases, replies
from storage.engine import Db, database_errors

log = logging.getLogger(__name__)
BATCH = 50


@dataclass
class ReplyResult:
    sent: int = 0
    found: int = 0  # an earlier attempt had got there: recorded, not sent again
    retrying: int = 0
    failed: int = 0
    rate_limited: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sending:
    """How one pass sends: who it is, how long its leases and attempts last, where it may
    connect (each account's configured hosts), and the daemon's stop event."""

    owner: str
    lease_seconds: float = 300.0
    send_deadline: float = 60.0
    endpoints: Mapping[str, Sequence[Endpoint]] | None = None
    allow_private: bool = False
    stop: threading.Event | None = None


def send_replies(db: Db, writers: Mapping[str, ReplyWriter], policy: RetryPolicy, how: Sending,
                 *, clock: Clock) -> ReplyResult:
    """Send every due reply of these accounts (``writers`` by account name)."""
    result = ReplyResult()
    held: set[str] = set()  # accounts that answered 429 in this pass
    for reply in replies.due(db, clock(), sorted(writers), BATCH):
        if how.stop is not None and how.stop.is_set():
            break
        if reply.account in held:
            continue
        name = replies.LEASE + reply.id
        if not leases.take(db, name, how.owner, clock(), how.lease_seconds):
            continue  # another worker has it
        try:
            if not _one(db, writers[reply.account], reply.id, policy, how, clock, result):
                held.add(reply.account)
        finally:
            try:
                leases.release(db, [name], how.owner)
            except database_errors() as exc:  # it expires on its own
                log.warning("could not give back the lease on reply %s: %s", reply.id, exc)
    return result


def _one(db: Db, writer: ReplyWriter, reply_id: str, policy: RetryPolicy, how: Sending,
         clock: Clock, result: ReplyResult) -> bool:
    """One attempt; False when the account asked us to wait (429)."""
    before = replies.begin(db, reply_id, clock())
    if before is None:
        return True  # sent, withdrawn or changed meanwhile
    post = replies.target(db, before.post_id)
    if post is None:
        replies.record_failure(db, before, clock(), "the post is no longer stored", None)
        result.failed += 1
        return True
    out = Outgoing(before.id, before.text, post.platform_id, post.url, post.author,
                   post.thread, post.raw, post.text, post.rating, post.created_at)
    attempt = before.attempts + 1
    try:
        sent, found = _call(writer, out, before.attempts > 0, how)
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else policy.delay(1)
        _retry(db, before, clock(), str(exc), clock() + timedelta(seconds=wait))
        result.rate_limited += 1
        log.warning("%s rate-limited: holding its replies %.0fs", writer.name, wait)
        return False
    except Exception as exc:  # DeliveryError, or a bug in a writer: the other replies go on
        if not isinstance(exc, DeliveryError):
            log.exception("reply writer %s crashed on reply %s", writer.name, reply_id)
        retry = getattr(exc, "retryable", True) and attempt < policy.max_attempts
        at = clock() + timedelta(seconds=policy.delay(attempt)) if retry else None
        _retry(db, before, clock(), f"{type(exc).__name__}: {exc}", at)
        result.retrying += bool(retry)
        result.failed += not retry
        result.errors.append(f"{reply_id} → {writer.name}: {exc}")
        return True
    replies.record_sent(db, before, sent.remote_id, sent.url, clock())
    result.found += found
    result.sent += not found
    return True


def _call(writer: ReplyWriter, out: Outgoing, tried: bool, how: Sending) -> tuple[Sent, bool]:
    """Find an earlier attempt's reply (when there was one), else send; within the deadline
    and the account's address guard. Returns what the platform has, and whether it was found."""
    hosts = how.endpoints.get(writer.name) if how.endpoints is not None else None
    guard = (only_to(hosts, f"reply account {writer.name}", allow_private=how.allow_private)
             if hosts is not None else nullcontext())
    try:
        with deadline(how.send_deadline, f"{writer.name} (reply {out.reply_id})"), guard:
            found = writer.find(out) if tried else None
            return (found, True) if found is not None else (writer.send(out), False)
    except DeadlineExceeded as exc:
        raise DeliveryError(str(exc), retryable=True) from None


def _retry(db: Db, reply: replies.Reply, now: datetime, error: str,
           at: datetime | None) -> None:
    replies.record_failure(db, reply, now, error, at)
    level = logging.WARNING if at is not None else logging.ERROR
    log.log(level, "reply %s through %s failed: %s%s", reply.id, reply.account, error,
            "" if at is not None else " — parked; retry it from the post page")
