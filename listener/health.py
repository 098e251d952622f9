"""What the pipeline is doing, read from the database: stages, queues, paused sources, parked
alerts and destinations that keep failing.

One picture, three readers: ``/healthz`` (JSON, 200 or 503), ``/metrics`` (gauges computed at
scrape time) and ``listener status`` (a table). It comes from the ``runs``, ``posts``,
``scores``, ``alerts`` and ``source_state`` tables rather than from process memory, so it is
right after a restart and covers cron runs (``run --once``) as well as the daemon.

Unhealthy means a human should look: a stage failing for more than ``metrics.unhealthy_after``
of its intervals, any alert parked as ``failed`` (no one was told about that post; ``listener
alerts retry`` re-queues it), or a destination that keeps failing (:func:`failing_destinations`).

The reads are storage's (:mod:`storage.runs`, :mod:`storage.backlog`,
:mod:`storage.source_pauses`, :mod:`storage.destination_health`); this module turns them into
verdicts. Every one is cheap and indexed (``tests/listener/test_metrics.py`` checks the query
plans): a scrape must not scan a table that grows with every post.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from listener.config import Config
from listener.core.errors import ListenerError, StorageError
from listener.core.log import redact
from listener.core.models import parse_iso, to_iso
from storage import backlog, destination_health, outbox, runs
from storage.engine import Db, database_errors
from storage.leases import Lease
from storage.leases import listed as listed_leases
from storage.source_pauses import paused_sources
from storage.tx import connect
from storage.workers import Worker
from storage.workers import listed as listed_workers


@dataclass(frozen=True)
class StageState:
    """The last finished run of one stage (``collect`` has one per source, named by ``target``)."""

    stage: str
    target: str
    interval: float
    status: str | None = None  # ok | error | None (never ran)
    last_run: str | None = None  # ISO time the last finished run started
    last_ok: str | None = None  # ISO time the last successful run finished
    error: str | None = None
    failing_since: str | None = None  # start of the current run of failures

    @property
    def name(self) -> str:
        return f"{self.stage}:{self.target}" if self.target else self.stage

    def failing_for(self, now: datetime) -> float:
        """Seconds this stage has been failing (0 when its last run succeeded)."""
        if self.status != "error" or self.failing_since is None:
            return 0.0
        return max(0.0, (now - parse_iso(self.failing_since)).total_seconds())

    def healthy(self, now: datetime, unhealthy_after: int) -> bool:
        return self.failing_for(now) <= unhealthy_after * self.interval


@dataclass(frozen=True)
class Queues:
    """Work waiting for the next stage."""

    unscored: int  # posts waiting for classify
    unevaluated: int  # scores waiting for rules
    undispatched: int  # alerts pending delivery (retries included)
    failed: int  # alerts parked as failed (`listener alerts retry`)


@dataclass(frozen=True)
class FailingDestination:
    """A destination whose alerts keep failing (see :func:`failing_destinations`)."""

    destination: str
    retrying: int  # its pending alerts that failed `unhealthy_after` attempts or more in a row
    since: str  # when the oldest of them was queued; nothing was delivered to it after that
    last_error: str


@dataclass(frozen=True)
class RunningStage:
    """A run in progress (or left 'running' by a process that died) and its last progress."""

    stage: str
    target: str
    started_at: str
    progress_at: str

    @property
    def name(self) -> str:
        return f"{self.stage}:{self.target}" if self.target else self.stage

    def idle_for(self, now: datetime) -> float:
        """Seconds since the run last showed progress (a page, a batch, a message)."""
        return max(0.0, (now - parse_iso(self.progress_at)).total_seconds())


@dataclass(frozen=True)
class Snapshot:
    stages: list[StageState]
    queues: Queues
    paused: dict[str, str]  # source → ISO time it resumes
    failing_destinations: list[FailingDestination] = field(default_factory=list)
    running: list[RunningStage] = field(default_factory=list)
    stuck_after: float = 600.0  # metrics.stuck_after
    workers: list[Worker] = field(default_factory=list)  # every run process, newest first
    leases: list[Lease] = field(default_factory=list)  # who holds what, until when

    def stuck(self, now: datetime) -> list[RunningStage]:
        """Runs with no progress for ``stuck_after`` seconds: hung on something, or killed."""
        return [r for r in self.running if r.idle_for(now) > self.stuck_after]

    def unhealthy(self, now: datetime, unhealthy_after: int) -> list[StageState]:
        """Stages failing for more than ``unhealthy_after`` of their intervals."""
        return [s for s in self.stages if not s.healthy(now, unhealthy_after)]

    @property
    def parked(self) -> int:
        """Alerts parked as failed: each is a post no human was told about."""
        return self.queues.failed

    def healthy(self, now: datetime, unhealthy_after: int) -> bool:
        """No stage failing too long, no alert parked, no destination that keeps failing."""
        return not (self.unhealthy(now, unhealthy_after) or self.parked
                    or self.failing_destinations or self.stuck(now))

    def to_json(self, now: datetime, unhealthy_after: int) -> dict[str, Any]:
        """The /healthz body: ``status``, and why (``failing`` stages, ``parked_alerts``,
        ``failing_destinations``)."""
        bad = {s.name for s in self.unhealthy(now, unhealthy_after)}
        return {
            "status": "ok" if self.healthy(now, unhealthy_after) else "failing",
            "checked_at": to_iso(now),
            "failing": sorted(bad),
            "parked_alerts": self.parked,
            "failing_destinations": [asdict(d) for d in self.failing_destinations],
            "stuck": [{"stage": r.name, "started_at": r.started_at, "progress_at": r.progress_at,
                       "idle_seconds": round(r.idle_for(now))} for r in self.stuck(now)],
            "stages": {s.name: {k: v for k, v in asdict(s).items() if k not in ("stage", "target")}
                       for s in self.stages},
            "queues": asdict(self.queues),
            "paused_sources": self.paused,
        }


def stage_targets(config: Config) -> list[tuple[str, str, float]]:
    """``(stage, target, interval)`` of every stage the daemon schedules."""
    every = config.schedule
    collect = [("collect", s.name, s.interval) for s in config.sources if s.enabled]
    # the daemon dispatches per destination; run --once records one dispatch run for all
    dispatch = [("dispatch", d.name, every.dispatch_interval) for d in config.destinations]
    # replies: one dispatch job of their own where reply accounts are configured
    if config.reply_accounts:
        dispatch.append(("dispatch", "replies", every.dispatch_interval))
    # retention runs once a day where it is configured (storage.retention_days)
    retention = [("retention", "", 86400.0)] if config.storage.retention_days else []
    retrain = config.classifier.retrain  # retraining from corrections, where configured
    if retrain is not None:
        retention.append(("retrain", "", retrain.every_hours * 3600.0))
    return [*collect, ("classify", "", every.classify_interval), ("rules", "", every.rules_interval),
            ("reports", "", every.reports_interval), ("dispatch", "", every.dispatch_interval),
            *dispatch, *retention]


def load_snapshot(config: Config) -> Snapshot:
    """The picture, read on a connection of its own; raises sqlite3.Error or StorageError."""
    # never create an empty SQLite file just to look at it
    if isinstance(config.database, Path) and not config.database.exists():
        raise StorageError(f"no database at {config.database}: nothing has run yet")
    db = connect(config.database)
    try:
        return read_snapshot(db, config)
    finally:
        db.close()


def read_snapshot(db: Db, config: Config) -> Snapshot:
    """The whole picture; raises sqlite3.Error when the database cannot be read."""
    stages = [stage_state(db, *target) for target in stage_targets(config)]
    paused = paused_sources(db)
    failing = failing_destinations(db, [d.name for d in config.destinations],
                                   config.metrics.unhealthy_after)
    running = [RunningStage(r.stage, r.target, r.started_at, r.progress_at)
               for r in runs.in_progress(db)]
    shared = "workers" in db.table_names()  # a database not yet migrated to 010 has none
    return Snapshot(stages=stages, queues=read_queues(db), paused=paused,
                    failing_destinations=failing, running=running,
                    stuck_after=config.metrics.stuck_after,
                    workers=listed_workers(db) if shared else [],
                    leases=listed_leases(db) if shared else [])


def failing_destinations(
    db: Db, names: list[str], attempts: int
) -> list[FailingDestination]:
    """Destinations that keep failing: one of their pending alerts has failed ``attempts``
    (``metrics.unhealthy_after``) attempts or more in a row, and nothing was delivered to them
    since the oldest such alert was queued.

    Counting attempts rather than time: with dispatch's backoff, three failed attempts span at
    least 1.5 × ``dispatch.backoff_initial`` (45 s at the defaults), and they mean the same in
    the daemon and in cron runs; one failure (a blip) or a rate limit is not "keeps failing",
    and a single broken alert among deliveries that succeed shows as a parked alert instead.
    """
    found = []
    for name in names:
        retrying = destination_health.retrying(db, name, attempts)
        if retrying is None:
            continue
        since = retrying.oldest_queued_at
        last = destination_health.last_delivered(db, name)
        if last is not None and last >= since:
            continue  # it took an alert since: that one is a bad alert, not a bad destination
        found.append(FailingDestination(name, retrying.count, since, redact(" ".join(
            (retrying.last_error or "").split()))))
    return found


def stage_state(db: Db, stage: str, target: str, interval: float) -> StageState:
    last = runs.last_finished(db, stage, target)
    if last is None:
        return StageState(stage, target, interval)
    ok = runs.last_ok(db, stage, target)
    since = None
    if last.status == "error":
        # an ok run and the failing one may start in the same second (runs chained after a
        # fast one): then nothing starts after the success and the streak is the last run
        since = (runs.streak_start(db, stage, target, ok.started_at if ok else "")
                 or last.started_at)
    return StageState(stage, target, interval, status=last.status, last_run=last.started_at,
                      last_ok=ok.finished_at if ok else None,
                      error=redact(last.error) if last.error else None, failing_since=since)


def read_queues(db: Db) -> Queues:
    return Queues(
        unscored=backlog.unscored(db),
        unevaluated=backlog.unevaluated(db),
        undispatched=backlog.alerts_with_status(db, outbox.PENDING),
        failed=backlog.alerts_with_status(db, outbox.FAILED),
    )


def healthz(config: Config, now: datetime) -> tuple[int, dict[str, Any]]:
    """``(HTTP status, body)``: 503 when unhealthy (:meth:`Snapshot.healthy`) or the database is
    unreadable."""
    try:
        snapshot = load_snapshot(config)
    except (*database_errors(), ListenerError) as exc:
        return 503, {"status": "failing", "checked_at": to_iso(now),
                     "database": f"unreadable: {exc}"}
    body = {**snapshot.to_json(now, config.metrics.unhealthy_after), "database": "ok"}
    return (503 if body["status"] != "ok" else 200), body
