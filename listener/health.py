"""What the pipeline is doing, read from the database: stages, queues, paused sources.

One picture, three readers: ``/healthz`` (JSON, 200 or 503), ``/metrics`` (gauges computed at
scrape time) and ``listener status`` (a table). It comes from the ``runs``, ``posts``,
``scores``, ``alerts`` and ``source_state`` tables rather than from process memory, so it is
right after a restart and covers cron runs (``run --once``) as well as the daemon.

Every query here is cheap and indexed (``tests/listener/test_metrics.py`` checks the query
plans): a scrape must not scan a table that grows with every post.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from listener.config import Config
from listener.errors import ListenerError, StorageError
from listener.log import redact
from listener.models import parse_iso, to_iso
from storage import outbox
from storage.tx import connect

# Newest finished run of one stage target; `runs(stage, started_at)` walks back from the newest.
LAST_RUN_SQL = (
    "SELECT status, started_at, error FROM runs WHERE stage = ? AND target = ?"
    " AND status != 'running' ORDER BY stage DESC, started_at DESC LIMIT 1"
)
LAST_OK_SQL = (
    "SELECT started_at, finished_at FROM runs WHERE stage = ? AND target = ? AND status = 'ok'"
    " ORDER BY stage DESC, started_at DESC LIMIT 1"
)
# The failure streak starts with the oldest run after the last success (or the oldest run).
STREAK_START_SQL = (
    "SELECT started_at FROM runs WHERE stage = ? AND target = ? AND started_at > ?"
    " ORDER BY stage, started_at LIMIT 1"
)
# The classify stage scores posts in id order, so what is left is the tail after the post of
# the newest score (an approximation only right after `classifier.model` changes).
LAST_SCORED_SQL = "SELECT post_id FROM scores WHERE id = (SELECT max(id) FROM scores)"
UNSCORED_SQL = "SELECT count(*) FROM posts WHERE id > ?"
UNEVALUATED_SQL = "SELECT count(*) FROM scores WHERE rules_at IS NULL"  # partial index
ALERTS_SQL = "SELECT count(*) FROM alerts WHERE status = ?"  # index (status, next_attempt_at)
PAUSED_SQL = "SELECT source, paused_until FROM source_state WHERE paused_until IS NOT NULL"


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
class Snapshot:
    stages: list[StageState]
    queues: Queues
    paused: dict[str, str]  # source → ISO time it resumes

    def unhealthy(self, now: datetime, unhealthy_after: int) -> list[StageState]:
        return [s for s in self.stages if not s.healthy(now, unhealthy_after)]

    def to_json(self, now: datetime, unhealthy_after: int) -> dict[str, Any]:
        """The /healthz body."""
        bad = {s.name for s in self.unhealthy(now, unhealthy_after)}
        return {
            "status": "failing" if bad else "ok",
            "checked_at": to_iso(now),
            "failing": sorted(bad),
            "stages": {s.name: {k: v for k, v in asdict(s).items() if k not in ("stage", "target")}
                       for s in self.stages},
            "queues": asdict(self.queues),
            "paused_sources": self.paused,
        }


def stage_targets(config: Config) -> list[tuple[str, str, float]]:
    """``(stage, target, interval)`` of every stage the daemon schedules."""
    every = config.schedule
    collect = [("collect", s.name, s.interval) for s in config.sources if s.enabled]
    return [*collect, ("classify", "", every.classify_interval), ("rules", "", every.rules_interval),
            ("reports", "", every.reports_interval), ("dispatch", "", every.dispatch_interval)]


def load_snapshot(config: Config) -> Snapshot:
    """The picture, read on a connection of its own; raises sqlite3.Error or StorageError."""
    if not config.db_path.exists():  # never create an empty database just to look at it
        raise StorageError(f"no database at {config.db_path}: nothing has run yet")
    db = connect(config.db_path)
    try:
        return read_snapshot(db, config)
    finally:
        db.close()


def read_snapshot(db: Database, config: Config) -> Snapshot:
    """The whole picture; raises sqlite3.Error when the database cannot be read."""
    stages = [stage_state(db, *target) for target in stage_targets(config)]
    paused = {row[0]: row[1] for row in db.execute(PAUSED_SQL).fetchall()}
    return Snapshot(stages=stages, queues=read_queues(db), paused=paused)


def stage_state(db: Database, stage: str, target: str, interval: float) -> StageState:
    last = db.execute(LAST_RUN_SQL, [stage, target]).fetchone()
    if last is None:
        return StageState(stage, target, interval)
    ok = db.execute(LAST_OK_SQL, [stage, target]).fetchone()
    since = None
    if last[0] == "error":
        after = ok[0] if ok else ""
        since = db.execute(STREAK_START_SQL, [stage, target, after]).fetchone()[0]
    return StageState(stage, target, interval, status=last[0], last_run=last[1],
                      last_ok=ok[1] if ok else None, error=redact(last[2]) if last[2] else None,
                      failing_since=since)


def read_queues(db: Database) -> Queues:
    last = db.execute(LAST_SCORED_SQL).fetchone()
    return Queues(
        unscored=_count(db, UNSCORED_SQL, [last[0] if last else 0]),
        unevaluated=_count(db, UNEVALUATED_SQL, []),
        undispatched=_count(db, ALERTS_SQL, [outbox.PENDING]),
        failed=_count(db, ALERTS_SQL, [outbox.FAILED]),
    )


def _count(db: Database, sql: str, params: list[Any]) -> int:
    return int(db.execute(sql, params).fetchone()[0])


def healthz(config: Config, now: datetime) -> tuple[int, dict[str, Any]]:
    """``(HTTP status, body)``: 503 when a stage failed for too long or the database is unreadable."""
    try:
        snapshot = load_snapshot(config)
    except (sqlite3.Error, ListenerError) as exc:
        return 503, {"status": "failing", "checked_at": to_iso(now),
                     "database": f"unreadable: {exc}"}
    body = {**snapshot.to_json(now, config.metrics.unhealthy_after), "database": "ok"}
    return (503 if body["failing"] else 200), body
