"""The dispatch stage: deliver due outbox rows through their sinks, with retries.

- success: marked delivered with the remote id, the attempt recorded — one transaction;
- 429 / RateLimited: the whole destination waits for Retry-After (not counted as an attempt);
- retryable failure: next attempt after exponential backoff with jitter;
- permanent failure or ``max_attempts`` reached: parked as ``failed`` for ``listener alerts retry``.
The window in which a crash can duplicate is between ``sink.send`` returning and the commit of
``record_delivered``: sinks whose remote supports idempotency close it with the alert id.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from alerts.sinks.base import Sink
from listener.errors import DeliveryError, RateLimited
from listener.models import AlertMessage, Clock, Sleep, parse_iso
from storage import outbox
from storage.db import post_from_row, score_from_row

log = logging.getLogger(__name__)
BATCH = 100


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_initial: float = 30.0
    backoff_max: float = 3600.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Exponential backoff with jitter: between half and all of initial * 2^(attempt-1)."""
        base = min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))
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


def message_from_row(row: dict[str, Any]) -> AlertMessage:
    return AlertMessage(
        alert_id=row["alert_id"], rules=(row["rule"],), destination=row["destination"],
        post=post_from_row(row), score=score_from_row(row), priority=row["priority"] or "normal",
    )


def dispatch(
    db: Database,
    sinks: Mapping[str, Sink],
    policy: RetryPolicy,
    *,
    clock: Clock,
    sleep: Sleep = time.sleep,
    wait_up_to: float = 0.0,
    strict: bool = False,
) -> DispatchResult:
    """Deliver every due alert; with ``wait_up_to`` > 0, also wait for retries due that soon."""
    result = DispatchResult()
    deadline = clock() + timedelta(seconds=wait_up_to)
    last_sent: dict[str, float] = {}
    while True:
        held: set[str] = set()  # destinations that answered 429 in this pass
        for row in outbox.due(db, clock(), BATCH):
            sink = sinks.get(row["destination"])
            if sink is None or sink.name in held:
                continue  # no sink (disabled in config) or waiting: stays pending, nothing lost
            _pace(sink, last_sent, sleep)
            if not _attempt(db, sink, row, policy, clock, result, strict):
                held.add(sink.name)
        nxt = outbox.next_due_at(db, sinks)
        if nxt is None or wait_up_to <= 0:
            return result
        due_at = parse_iso(nxt)
        if due_at > deadline:
            return result
        if due_at > clock():
            sleep((due_at - clock()).total_seconds())


def _pace(sink: Sink, last_sent: dict[str, float], sleep: Sleep) -> None:
    """Keep at least ``sink.min_interval`` seconds between sends (Slack: ~1 message/s/channel)."""
    gap = float(getattr(sink, "min_interval", 0.0) or 0.0)
    previous = last_sent.get(sink.name)
    if gap and previous is not None:
        wait = previous + gap - time.monotonic()
        if wait > 0:
            sleep(wait)
    last_sent[sink.name] = time.monotonic()


def _attempt(
    db: Database, sink: Sink, row: dict[str, Any], policy: RetryPolicy, clock: Clock,
    result: DispatchResult, strict: bool,
) -> bool:
    """One delivery attempt; False when the destination asked us to wait (rate limit)."""
    alert_id, attempt = row["alert_id"], int(row["attempts"] or 0) + 1
    started = time.monotonic()
    try:
        remote_id = sink.send(message_from_row(row))
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else policy.delay(1)
        until = clock() + timedelta(seconds=wait)
        _failed(db, row, attempt - 1, clock(), exc, until, started, "rate_limited")
        outbox.defer_destination(db, row["destination"], until)
        log.warning("%s rate-limited: holding its alerts %.0fs", sink.name, wait)
        result.rate_limited += 1
        return False
    except DeliveryError as exc:
        retry = exc.retryable and attempt < policy.max_attempts
        until = clock() + timedelta(seconds=policy.delay(attempt)) if retry else None
        _failed(db, row, attempt, clock(), exc, until, started)
        _count(result, retry, f"{alert_id} → {sink.name}: {exc}")
        return True
    except Exception as exc:  # a bug in a sink must not stop delivery of everything else
        if strict:
            raise
        log.exception("sink %s crashed on alert %s", sink.name, alert_id)
        retry = attempt < policy.max_attempts
        until = clock() + timedelta(seconds=policy.delay(attempt)) if retry else None
        _failed(db, row, attempt, clock(), exc, until, started)
        _count(result, retry, f"{alert_id} → {sink.name}: {exc!r}")
        return True
    ms = (time.monotonic() - started) * 1000
    outbox.record_delivered(db, alert_id, attempt, remote_id, clock(), ms)
    result.delivered += 1
    return True


def _failed(
    db: Database, row: dict[str, Any], attempt: int, now: datetime, exc: Exception,
    until: datetime | None, started: float, outcome: str | None = None,
) -> None:
    status = getattr(exc, "status", None)
    outbox.record_failure(
        db, row["alert_id"], attempt, now, error=str(exc), status_code=status, retry_at=until,
        ms=(time.monotonic() - started) * 1000, outcome=outcome,
    )
    if outcome == "rate_limited":
        return  # logged once per destination by the caller
    level = logging.WARNING if until is not None else logging.ERROR
    log.log(level, "alert %s to %s (post %s:%s) attempt %d failed: %s%s", row["alert_id"],
            row["destination"], row["platform"], row["platform_id"], attempt, exc,
            "" if until is not None else " — parked; `listener alerts retry` re-queues it")


def _count(result: DispatchResult, retry: bool, message: str) -> None:
    if retry:
        result.retried += 1
    else:
        result.failed += 1
        result.errors.append(message)
