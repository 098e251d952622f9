"""Work a worker claims before doing it, when many share the database: posts to score, and
alerts to send.

Claiming is reading the next unscored posts nobody holds and taking a lease on each
(:mod:`storage.leases`) in one go; the worker scores them outside any transaction, saves the
scores and releases the leases. Two classify workers therefore never score the same post for
the same model version; if one dies mid-batch, its posts are free again when the leases expire
(and a score that lands twice is refused by the scores' unique key anyway).

Alerts: a destination that needs no pacing is sent to by every dispatch worker at once, each
claiming the due deliveries it sends (:func:`deliveries_to_send`): one lease per alert of the
group (``alert:<id>``), taken in one write transaction that also checks each group is still
pending, due and unattempted, so no two workers ever claim one group and a group already
delivered is never claimed. Just before sending, the worker checks again, in the transaction
that records the attempt's start (:func:`begin`), that it still holds every lease and that the
group is still pending, due and unattempted: meanwhile the destination may have asked every
worker to wait (Retry-After: ``outbox.defer_destination``).
The leases are given back once the outcome is recorded (:func:`release`). A worker that dies
mid-send leaves its groups leased until the leases expire; then another worker claims them, as
attempt 2 or later, so the sinks that can look for an alert before creating it again do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from listener.core.models import to_iso
from storage import due_alerts, leases, outbox
from storage.db import Unscored, unscored_batch
from storage.due_alerts import Delivery
from storage.engine import Db
from storage.tx import immediate

_RACES = 5  # reads in a row that other workers claimed entirely before giving up for this run
_LOOK_AHEAD = 4  # due groups read per group to claim: workers claiming at once each find some
_UNCLAIMED = (
    "SELECT id, text, lang FROM posts p WHERE p.id > ? AND NOT EXISTS (SELECT 1 FROM scores s"
    " WHERE s.post_id = p.id AND s.model = ? AND s.model_version = ?)"
    " AND NOT EXISTS (SELECT 1 FROM leases l"
    " WHERE l.name = CAST(? AS TEXT) || CAST(p.id AS TEXT) AND l.until >= ?)"
    " ORDER BY id LIMIT ?"
)


def score_lease(model: str, version: str, post_id: int) -> str:
    """The lease name of scoring ``post_id`` with one model version."""
    return f"{_prefix(model, version)}{post_id}"


def _prefix(model: str, version: str) -> str:
    return f"classify:{model}:{version}:"


def posts_to_score(db: Db, model: str, version: str, limit: int, owner: str, now: datetime,
                   seconds: float, *, after: int = 0) -> list[Unscored]:
    """Up to ``limit`` unscored posts, oldest first, now leased to ``owner``. Another worker
    claiming the same rows at the same moment wins some of them; when it won them all, the
    next unclaimed ones are read (an empty list means there is nothing left to claim).
    Posts with ids up to ``after`` are never offered (a promoted model's re-scoring floor)."""
    for _ in range(_RACES):
        rows = unscored_batch(db, _UNCLAIMED, [after, model, version, _prefix(model, version),
                                               to_iso(now), limit])
        if not rows:
            return []
        names = [score_lease(model, version, r.id) for r in rows]
        held = set(leases.take_many(db, names, owner, now, seconds))
        if held:
            return [r for r, name in zip(rows, names, strict=True) if name in held]
    return []


def release_scored(db: Db, model: str, version: str, post_ids: list[int], owner: str) -> int:
    """Give back the leases of posts whose scores are saved."""
    return leases.release(db, [score_lease(model, version, i) for i in post_ids], owner)


def alert_lease(alert_id: str) -> str:
    """The lease name of sending one alert (every alert of a group is leased)."""
    return f"{outbox.ALERT_LEASE}{alert_id}"


def _names(deliveries: Iterable[Delivery]) -> list[str]:
    return [alert_lease(a) for d in deliveries for a in d.alert_ids]


def deliveries_to_send(db: Db, now: datetime, limit: int, destination: str | None, owner: str,
                       seconds: float) -> list[Delivery]:
    """Up to ``limit`` due deliveries no other worker holds, in :func:`storage.outbox.due`'s
    order (most important first), each now leased to ``owner`` — every alert of it — for
    ``seconds``.

    The outbox is read outside any transaction (its due query is the costly part, and every
    other worker's writes would wait on it), a few more groups than wanted; then, in one write
    transaction, each group is claimed in that order only if all its leases are taken and it
    is still pending, due and not attempted since it was read. Another worker claiming at the
    same moment wins some; when it won them all, the outbox is read again."""
    for _ in range(_RACES):
        found = due_alerts.due(db, now, limit * _LOOK_AHEAD, destination, free_for=owner)
        if not found:
            return []
        kept: list[Delivery] = []
        with immediate(db):
            for delivery in found:
                if len(kept) == limit:
                    break
                if _take(db, delivery, owner, now, seconds):
                    kept.append(delivery)
        if kept:
            return kept
    return []


def _take(db: Db, delivery: Delivery, owner: str, now: datetime, seconds: float) -> bool:
    """Lease every alert of ``delivery`` if all are free and it is still as it was read
    (inside the claiming transaction); what was taken of a group that is not is given back."""
    names = _names([delivery])
    if (len(leases.take_many(db, names, owner, now, seconds)) == len(names)
            and outbox.group_due(db, delivery.alert_ids, now, _attempts(delivery))):
        return True
    leases.release(db, names, owner)
    return False


def _attempts(delivery: Delivery) -> int:
    """The attempts made at the group when it was read (its message's attempt is one more)."""
    return max(int(r.get("attempts") or 0) for r in delivery.rows)


def begin(db: Db, delivery: Delivery, attempt: int, owner: str, now: datetime, seconds: float,
          *, after: str | None = None) -> bool:
    """Start attempt ``attempt`` of a claimed delivery (:func:`storage.outbox.begin_attempt`)
    if ``owner`` still holds it — its leases renewed for ``seconds`` — and it is still pending,
    due and not attempted since it was read; False (nothing started) otherwise: the
    destination asked every worker to wait since it was claimed (Retry-After), or the claim
    expired and another worker took it over. With ``after`` (the alert an incident update
    replies to), also False while another worker is sending that one: the update waits to
    learn where it landed instead of opening a ticket of its own. One transaction, so no other
    worker's claim or record falls between the check and the start."""
    names = _names([delivery])
    with immediate(db):
        if len(leases.take_many(db, names, owner, now, seconds)) != len(names):
            return False
        if after is not None and leases.held_elsewhere(db, [alert_lease(after)], owner, now):
            return False
        if not outbox.group_due(db, delivery.alert_ids, now, _attempts(delivery)):
            return False
        outbox.begin_attempt(db, delivery.alert_ids, attempt)
    return True


def release(db: Db, deliveries: Sequence[Delivery], owner: str) -> int:
    """Give back the leases of claimed deliveries: sent and recorded, or not sent after all."""
    return leases.release(db, _names(deliveries), owner)
