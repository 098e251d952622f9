"""Workers: every ``listener run`` process sharing the database, and its last sign of life.

A worker registers when it starts (host, pid, the stages it runs), beats while it works, and
says when it stopped; ``listener status`` lists them, so an operator sees which machines are
working, which went quiet (a heartbeat older than a few intervals) and what they held
(:mod:`storage.leases`). A worker's id is its lease owner name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from listener.core.models import to_iso
from storage.engine import Db
from storage.tx import immediate


@dataclass(frozen=True)
class Worker:
    id: str
    host: str
    pid: int
    stages: str  # comma-separated, as given to --stages
    started_at: str
    heartbeat_at: str
    stopped_at: str | None


def register(db: Db, worker_id: str, host: str, pid: int, stages: Sequence[str],
             now: datetime) -> None:
    """Record a worker that starts (a restarted one with the same id starts afresh)."""
    stamp = to_iso(now)
    with immediate(db):
        db.execute(
            "INSERT INTO workers (id, host, pid, stages, started_at, heartbeat_at, stopped_at)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET"
            " host = excluded.host, pid = excluded.pid, stages = excluded.stages,"
            " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
            " stopped_at = NULL",
            [worker_id, host, pid, ",".join(stages), stamp, stamp],
        )


def beat(db: Db, worker_id: str, now: datetime) -> None:
    with immediate(db):
        db.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", [to_iso(now), worker_id])


def stopped(db: Db, worker_id: str, now: datetime) -> None:
    """A clean stop: shown as stopped rather than as a worker gone quiet."""
    with immediate(db):
        db.execute("UPDATE workers SET stopped_at = ?, heartbeat_at = ? WHERE id = ?",
                   [to_iso(now), to_iso(now), worker_id])


def listed(db: Db) -> list[Worker]:
    """Every worker ever registered, most recently alive first."""
    return [Worker(**r) for r in db.query(
        "SELECT id, host, pid, stages, started_at, heartbeat_at, stopped_at FROM workers"
        " ORDER BY heartbeat_at DESC, id")]


def forget_stopped(db: Db, before: datetime) -> int:
    """Drop workers last heard of before ``before``, stopped or killed (a week of restarts is
    not worth a list; a killed worker never says it stopped)."""
    with immediate(db):
        return int(db.execute("DELETE FROM workers WHERE heartbeat_at < ?",
                              [to_iso(before)]).rowcount)


def close_runs_of_gone(db: Db, now: datetime, quiet_since: datetime) -> int:
    """Runs left ``running`` by workers that stopped or went quiet before ``quiet_since``
    (killed: SIGKILL, OOM, a lost host), marked interrupted — what a single SQLite process
    does for its own runs when it starts again."""
    with immediate(db):
        return int(db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
            " WHERE status = 'running' AND worker IN (SELECT id FROM workers"
            " WHERE stopped_at IS NOT NULL OR heartbeat_at < ?)",
            [to_iso(now), "its worker stopped or went quiet before this run finished",
             to_iso(quiet_since)]).rowcount)
