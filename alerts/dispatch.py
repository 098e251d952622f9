"""The dispatch stage: deliver due outbox rows through their sinks, with retries.

- success: marked delivered with the remote id, the attempt recorded — one transaction;
- 429 / RateLimited: the whole destination waits for Retry-After (not counted as an attempt);
- retryable failure: next attempt after exponential backoff with jitter;
- permanent failure or ``max_attempts`` reached: parked as ``failed`` for ``listener alerts retry``.
The window in which a crash can duplicate is between ``sink.send`` returning and the commit of
``record_delivered``: sinks whose remote supports idempotency close it with the alert id.

Many workers (PostgreSQL): a destination without pacing is sent to by all of them at once, each
pass with a :class:`Claim` claiming the groups it sends (:mod:`storage.claims`), a few at a
time, and checking each again just before sending it; a paced destination keeps one sender at a
time (the runtime's ``dispatch:<name>`` lease), so its pacing holds across workers.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.sinks.base import Sink
from listener.core import instruments
from listener.core.deadline import deadline
from listener.core.errors import DeadlineExceeded, DeliveryError, RateLimited
from listener.core.log import about_post
from listener.core.models import AlertMessage, Clock, ReportMessage, Sleep, parse_iso
from listener.core.netguard import Endpoint, only_to
from storage import claims, due_alerts, outbox
from storage.due_alerts import Delivery
from storage.engine import Db, database_errors
from storage.tx import immediate

log = logging.getLogger(__name__)
BATCH = 100  # groups (a post or report and one destination) read at a time
CLAIM = 2  # groups one of many workers claims at a time: a few, so that the workers share
# the queue evenly and the most important groups go first whoever sends them


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    backoff_initial: float = 30.0
    backoff_max: float = 3600.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Exponential backoff with jitter: between half and all of initial * 2^(attempt-1)."""
        base: float = min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))
        return base * (0.5 + rng() / 2)


@dataclass
class DispatchResult:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def items(self) -> int:
        return self.delivered + self.retried + self.failed + self.rate_limited


@dataclass(frozen=True)
class Claim:
    """Send as one of many workers: claim each group before sending it (:mod:`storage.claims`).

    ``seconds`` is how long a claim lasts: longer than one attempt may take (its
    ``send_deadline``), so that no other worker takes a group over while it is being sent."""

    owner: str  # the worker id the leases are taken in
    seconds: float
    size: int = CLAIM


def paced(sink: Sink) -> bool:
    """Whether the destination wants a gap between two messages (``min_interval``: Slack's one
    message a second per channel): then one worker at a time sends to it."""
    return float(getattr(sink, "min_interval", 0.0) or 0.0) > 0


@dataclass(frozen=True)
class Pass:
    """How one dispatch pass behaves beyond the retry policy."""

    wait_up_to: float = 0.0  # also wait for retries due this soon (run --once)
    send_deadline: float = 60.0  # seconds one delivery attempt may take, all its requests
    strict: bool = False  # tests: a sink's bug is raised, not logged
    stop: threading.Event | None = None  # the daemon is stopping: end between two messages
    beat: Callable[[], None] | None = None  # called after every message: the run is alive
    endpoints: Sequence[Endpoint] | None = None  # what the destination's settings name
    allow_private: bool = False  # its settings open private networks to it
    claim: Claim | None = None  # one of many workers: claim each group before sending it


def dispatch(
    db: Db,
    sinks: Mapping[str, Sink],
    policy: RetryPolicy,
    *,
    clock: Clock,
    sleep: Sleep = time.sleep,
    wait_up_to: float = 0.0,
    strict: bool = False,
    stop: threading.Event | None = None,
    send_deadline: float = 60.0,
    beat: Callable[[], None] | None = None,
    endpoints: Sequence[Endpoint] | None = None,
    allow_private: bool = False,
    claim: Claim | None = None,
) -> DispatchResult:
    """Deliver every due alert of ``sinks``' destinations; with ``wait_up_to`` > 0, also wait
    for retries due that soon.

    Give it ONE destination to keep destinations apart (the runtime runs one pass per
    destination, each in its own thread and with its own connection): a slow or hung
    destination then only ever delays its own alerts. Every attempt is cut off after
    ``send_deadline`` seconds in total (:mod:`listener.core.deadline`), whatever the server does;
    with ``endpoints`` (the destination's configured hosts) it may connect to no private address
    but theirs (:mod:`listener.core.netguard`: a redirect to the metadata service is refused, whatever
    the client library).
    ``stop`` (the daemon's shutdown event) ends the pass between two messages: a batch paced at
    Slack's 1 message a second can take 100 s, longer than a service manager waits on SIGTERM.
    What is left stays pending for the next start; nothing is lost.

    With ``claim`` (one of many workers), each group is claimed before it is sent and given
    back once its outcome is recorded. Groups other workers hold are theirs, retries included:
    the pass ends as soon as all that is due is held by others (each waits for its own)."""
    how = Pass(wait_up_to, send_deadline, strict, stop, beat, endpoints, allow_private, claim)
    result = DispatchResult()
    until = clock() + timedelta(seconds=wait_up_to)
    last_sent: dict[str, float] = {}
    only = next(iter(sinks)) if len(sinks) == 1 else None
    while True:
        if claim is None:
            deliveries = due_alerts.due(db, clock(), BATCH, destination=only)
            attempted = _send_all(db, sinks, deliveries, policy, clock, sleep, result, how,
                                  last_sent)
            if attempted is None:
                return result
            if attempted and len(deliveries) == BATCH:
                continue  # a full batch: more may be due now
        else:
            deliveries = claims.deliveries_to_send(db, clock(), claim.size, only, claim.owner,
                                                   claim.seconds)
            try:
                attempted = _send_all(db, sinks, deliveries, policy, clock, sleep, result, how,
                                      last_sent)
            finally:  # sent and recorded, or not sent after all (stopping, a failure)
                _give_back(db, deliveries, claim)
            if attempted is None:
                return result
            if attempted:
                continue  # more may be due now
        nxt = outbox.next_due_at(db, sinks)
        if nxt is None or wait_up_to <= 0:
            return result
        due_at = parse_iso(nxt)
        if due_at > until or (claim is not None and due_at <= clock()):
            return result  # (due now, yet none free: other workers are sending it)
        if due_at > clock():
            sleep((due_at - clock()).total_seconds())


def _give_back(db: Db, deliveries: Sequence[Delivery], claim: Claim) -> None:
    """Release claimed groups; failing that, they are only delayed until the claims expire."""
    try:
        claims.release(db, deliveries, claim.owner)
    except database_errors() as exc:
        log.warning("could not give back %d claimed alert group(s) (they expire in %.0fs): %s",
                    len(deliveries), claim.seconds, exc)


def _send_all(
    db: Db, sinks: Mapping[str, Sink], deliveries: Sequence[Delivery], policy: RetryPolicy,
    clock: Clock, sleep: Sleep, result: DispatchResult, how: Pass, last_sent: dict[str, float],
) -> int | None:
    """Send ``deliveries`` in order; how many were attempted (None: the daemon is stopping)."""
    held: set[str] = set()  # destinations that answered 429 in this pass
    attempted = 0
    for delivery in deliveries:
        sink = sinks.get(delivery.destination)
        if sink is None or sink.name in held:
            continue  # no sink (disabled in config) or waiting: stays pending, nothing lost
        _pace(sink, last_sent, sleep)
        if how.stop is not None and how.stop.is_set():  # checked after the pacing wait
            return None
        outcome = _attempt(db, sink, delivery, policy, clock, result, how)
        if outcome is None:
            continue  # claimed, but not to be sent now (see storage.claims.begin)
        attempted += 1
        if not outcome:
            held.add(sink.name)
        if how.beat is not None:
            how.beat()
    return attempted


def _pace(sink: Sink, last_sent: dict[str, float], sleep: Sleep) -> None:
    """Keep at least ``sink.min_interval`` seconds between sends (Slack: ~1 message/s/channel)."""
    gap = float(getattr(sink, "min_interval", 0.0) or 0.0)
    previous = last_sent.get(sink.name)
    if gap and previous is not None:
        wait = previous + gap - time.monotonic()
        if wait > 0:
            sleep(wait)
    last_sent[sink.name] = time.monotonic()


def _send(sink: Sink, message: AlertMessage | ReportMessage, how: Pass) -> str | None:
    """``sink.send`` within a total deadline and the address guard; past the deadline, a
    retryable failure (the remote may have acted: the next attempt looks first where it can)."""
    guard = (only_to(how.endpoints, f"destination {sink.name}", allow_private=how.allow_private)
             if how.endpoints is not None else nullcontext())
    try:
        with deadline(how.send_deadline, f"{sink.name} (alert {message.alert_id})"), guard:
            return sink.send(message)
    except DeadlineExceeded as exc:
        raise DeliveryError(str(exc), retryable=True) from None


def _attempt(
    db: Db, sink: Sink, delivery: Delivery, policy: RetryPolicy, clock: Clock,
    result: DispatchResult, how: Pass,
) -> bool | None:
    """One delivery attempt; False when the destination asked us to wait (rate limit), None
    when a claimed delivery is not to be sent now after all (:func:`storage.claims.begin`)."""
    strict = how.strict
    message = due_alerts.message(db, delivery)
    attempt = message.attempt
    if how.claim is None:
        outbox.begin_attempt(db, list(delivery.alert_ids), attempt)
    else:
        parent = message.parent_alert_id if isinstance(message, ReportMessage) else None
        if not claims.begin(db, delivery, attempt, how.claim.owner, clock(),
                            how.claim.seconds, after=parent):
            return None
    started = time.monotonic()
    try:
        remote_id = _send(sink, message, how)
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else policy.delay(1)
        until = clock() + timedelta(seconds=wait)
        _failed(db, delivery, attempt - 1, clock(), exc, until, started, "rate_limited")
        outbox.defer_destination(db, sink.name, until)
        log.warning("%s rate-limited: holding its alerts %.0fs", sink.name, wait)
        result.rate_limited += 1
        return False
    except Exception as exc:  # DeliveryError, or a bug in a sink: must not stop the rest
        if not isinstance(exc, DeliveryError):
            if strict:
                raise
            log.exception("sink %s crashed on alert %s", sink.name, message.alert_id,
                          extra=_about(delivery))
        retry = getattr(exc, "retryable", True) and attempt < policy.max_attempts
        retry_at = clock() + timedelta(seconds=policy.delay(attempt)) if retry else None
        _failed(db, delivery, attempt, clock(), exc, retry_at, started)
        _count(result, retry, f"{message.alert_id} → {sink.name}: {exc}")
        return True
    ms = (time.monotonic() - started) * 1000
    with immediate(db):  # every alert of the group is delivered by the same message
        for alert in delivery.alert_ids:
            outbox.record_delivered(db, alert, attempt, remote_id, clock(), ms)
    instruments.record_delivery(sink.name, "delivered", delivery.collected_at,
                                clock().timestamp())
    result.delivered += 1
    return True


def _failed(
    db: Db, delivery: Delivery, attempts: int, now: datetime, exc: Exception,
    until: datetime | None, started: float, outcome: str | None = None,
) -> None:
    """Record a failed attempt for every alert of the delivery (a 429 does not count as one)."""
    ms = (time.monotonic() - started) * 1000
    with immediate(db):
        for alert in delivery.alert_ids:
            outbox.record_failure(
                db, alert, attempts, now, error=str(exc),
                status_code=getattr(exc, "status", None), retry_at=until, ms=ms, outcome=outcome,
            )
    instruments.record_delivery(delivery.destination,
                                outcome or ("retry" if until is not None else "failed"))
    if outcome == "rate_limited":
        return  # logged once per destination by the caller
    level = logging.WARNING if until is not None else logging.ERROR
    log.log(level, "alert %s to %s (%s) failed: %s%s", delivery.alert_ids[0],
            delivery.destination, delivery.about, exc,
            "" if until is not None else " — parked; `listener alerts retry` re-queues it",
            extra=_about(delivery))


def _about(delivery: Delivery) -> dict[str, Any]:
    """Log fields naming the post an alert is about (none for report alerts)."""
    return about_post(*delivery.post_key) if delivery.post_key else {}


def _count(result: DispatchResult, retry: bool, message: str) -> None:
    if retry:
        result.retried += 1
    else:
        result.failed += 1
        result.errors.append(message)
