"""Issue #5's delivery fault matrix: every sink type against a fake that fails on a schedule.

    row = run_sink("jira", alerts=20, seed=7, rate=0.3, workdir=tmp_path)

One run, all of it real but the far end: a SQLite outbox holding ``alerts`` alerts about stored
posts, the sink built from its destination settings (:mod:`tests.alerts.delivery_remotes`), its
real client talking to the fake on 127.0.0.1, and the real :func:`alerts.dispatch.dispatch` loop
with a manual clock (backoff, Retry-After and the sinks' pacing advance it; nobody sleeps). The
fake fails on a seeded schedule (:mod:`tests.fakes.faults`). Two phases:

1. dispatch until nothing is pending: every alert is delivered or parked (``failed``, with its
   error, after ``max_attempts`` or a permanent error);
2. the outage is over: ``listener alerts retry`` (:func:`storage.outbox.requeue_failed`) and
   dispatch again.

Then it counts, per alert id, what the remote shows. An alert is *lost* when no remote object
carries it and it is not parked with a visible error (after phase 1), or not delivered in the
end; a *duplicate* is each remote object beyond the first for one alert id.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.sinks import sink_class
from alerts.sinks.base import Sink
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from tests.alerts.delivery_remotes import DEDUPED, Remote, remote
from tests.alerts.test_dispatch import ManualClock
from tests.e2e import NEGATIVE
from tests.fakes.faults import HttpFaults, SmtpFaults

FOREVER = 365 * 24 * 3600.0  # dispatch's wait_up_to: go on until nothing is pending
SCORE = Score("negative", 0.91, 0.06, 0.03, 0.84, "minilm-sentiment", "1")


@dataclass(frozen=True)
class Row:
    """What one sink type did under faults (see the module docstring for the definitions)."""

    sink: str
    alerts: int
    requests: int  # HTTP requests (SMTP sessions) that reached the fake, lookups included
    faults: int  # injected
    acted_lost: int  # injected on a create: the remote acted, the answer was lost
    objects: int  # remote objects (webhook: valid deliveries the receiver got, repeats included)
    delivered: int  # alerts with status delivered in the end
    parked: int  # after phase 1: failed with a visible error, re-queued in phase 2
    duplicates: int  # as the remote's users see them (the webhook receiver dedupes)
    raw_duplicates: int  # repeats that reached the remote (= duplicates except for the webhook)
    lost: int
    seconds: float
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def deduped(self) -> bool:
        return self.sink in DEDUPED


def seed_alerts(db: Database, clock: ManualClock, count: int, destination: str) -> list[str]:
    """``count`` stored, scored posts and one pending alert each for ``destination``."""
    posts = [Post("x", str(i), f"{NEGATIVE[i % len(NEGATIVE)]} (#{i})", clock(),
                  source="faults", url=f"https://x.example/s/{i}", author=f"user{i}",
                  author_followers=10 * i, brand="acme") for i in range(count)]
    store.store_page(db, "faults", Page(posts=posts), clock())
    scored = store.posts_to_score(db, SCORE.model, SCORE.model_version, count)
    store.save_scores(db, [(r.id, SCORE, "en") for r in scored], clock())
    rows = store.scores_to_evaluate(db, count)
    alerts = [outbox.NewAlert("unhappy", destination, r.post_id, r.score_id,
                              f"x:{r.post.platform_id}") for r in rows]
    outbox.enqueue(db, alerts, [r.score_id for r in rows], clock())
    return [outbox.alert_id(a.rule, a.post_key, destination) for a in alerts]


def build_sink(settings: dict[str, object]) -> Sink:
    """The sink a config file with these destination settings gets (registry, validation)."""
    cls = sink_class(str(settings["type"]))
    sink: Sink = cls(cls.Config.model_validate(settings))
    return sink


def run_sink(kind: str, *, alerts: int, seed: int, rate: float, workdir: Path,
             timeout: float = 1.0, max_attempts: int = 5,
             weights: dict[str, int] | None = None) -> Row:
    """Deliver ``alerts`` alerts of one sink type under faults; see the module docstring.

    ``weights``: how often each fault kind is in the deck (default 1 each; 0 leaves it out).
    """
    random.seed(seed)  # dispatch's backoff jitter draws from the module-level generator
    clock = ManualClock()
    db = store.open_db(workdir / f"{kind}.db")
    started = time.monotonic()
    try:
        ids = seed_alerts(db, clock, alerts, kind)
        with remote(kind, timeout=timeout) as far:
            plan = _schedule(far, seed, rate, late=3 * timeout + 1, weights=weights)
            parked, lost = _deliver(db, far, plan, clock, max_attempts)
            objects, seen = far.objects(), far.effective()
        return Row(
            sink=kind, alerts=len(ids), requests=plan.requests, faults=plan.faults,
            acted_lost=plan.acted_lost, objects=sum(objects.values()),
            delivered=_count(db, outbox.DELIVERED), parked=len(parked),
            duplicates=repeats(seen), raw_duplicates=repeats(objects),
            lost=len(lost | _lost(db, seen, final=True)), seconds=time.monotonic() - started,
            injected=dict(sorted(plan.injected.items())),
        )
    finally:
        db.close()


def _schedule(far: Remote, seed: int, rate: float, *, late: float,
              weights: dict[str, int] | None) -> HttpFaults | SmtpFaults:
    """Attach a seeded fault schedule to the remote's fake; ``late``: seconds a slow answer
    is held, well past the client's timeout."""
    plan: HttpFaults | SmtpFaults
    if far.settings["type"] == "email":
        plan = SmtpFaults(seed, rate, weights)
        far.fake.stall = late
    else:
        plan = HttpFaults(seed, rate, late=late, creates=far.creates, busy=far.busy,
                          weights=weights)
    far.fake.faults = plan
    return plan


def _deliver(db: Database, far: Remote, plan: HttpFaults | SmtpFaults, clock: ManualClock,
             max_attempts: int) -> tuple[set[str], set[str]]:
    """Both phases; returns the alerts parked and the alerts lost after phase 1."""
    sink = build_sink(far.settings)
    policy = RetryPolicy(max_attempts=max_attempts)  # the default 30 s → 1 h backoff
    try:
        dispatch(db, {sink.name: sink}, policy, clock=clock, sleep=clock.sleep,
                 wait_up_to=FOREVER, strict=True)
        parked = {r["id"] for r in db.query("SELECT id FROM alerts WHERE status = ?",
                                            [outbox.FAILED])}
        lost = _lost(db, far.effective(), final=False)
        plan.enabled = False
        outbox.requeue_failed(db, clock())  # `listener alerts retry`
        dispatch(db, {sink.name: sink}, policy, clock=clock, sleep=clock.sleep,
                 wait_up_to=FOREVER, strict=True)
    finally:
        sink.close()
    return parked, lost


def _lost(db: Database, seen: Counter[str], *, final: bool) -> set[str]:
    """Alerts nobody will see: no remote object carries them and they are not parked with a
    visible error; in the end (``final``), also every alert that is not delivered."""
    lost = set()
    for row in db.query("SELECT id, status, last_error FROM alerts"):
        nowhere = seen[row["id"]] == 0
        parked = row["status"] == outbox.FAILED and bool(row["last_error"])
        undelivered = nowhere or row["status"] != outbox.DELIVERED
        if (nowhere and not parked) or (final and undelivered):
            lost.add(row["id"])
    return lost


def repeats(objects: Counter[str]) -> int:
    """Remote objects beyond the first one of each alert id: the duplicates."""
    return sum(n - 1 for n in objects.values() if n > 1)


def duplicates_cell(duplicates: int, raw: int) -> str:
    """``0 (2 raw)`` where a receiver deduped what reached it twice, else the number."""
    return f"{duplicates} ({raw} raw)" if raw != duplicates else str(duplicates)


def _count(db: Database, status: str) -> int:
    return int(db.execute("SELECT count(*) FROM alerts WHERE status = ?", [status]).fetchone()[0])


HEADER = ("sink", "alerts", "requests", "faults", "acted-lost", "remote objects", "delivered",
          "parked → retried", "duplicates", "lost", "seconds")


def table(rows: list[Row]) -> str:
    """A Markdown table; the webhook's duplicates read ``0 (2 raw)``: the receiver dedupes."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = (r.sink, r.alerts, r.requests, r.faults, r.acted_lost, r.objects, r.delivered,
                 r.parked, duplicates_cell(r.duplicates, r.raw_duplicates), r.lost,
                 f"{r.seconds:.1f}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
