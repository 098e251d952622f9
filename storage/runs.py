"""Stage runs read back for the health picture: the last finished run of a stage target, its
last success, where its current failure streak began, and the runs still going.

The ``runs`` table (one row per run of a stage; ``collect`` and ``dispatch`` name a source or a
destination in ``target``, the other stages leave it empty) is written by
:func:`storage.db.start_run` and friends; these are the reads ``/healthz``, ``/metrics`` and
``listener status`` make at every look, so each is one step into an index
(``tests/listener/test_metrics.py`` checks the plans): a scrape must not scan a table that gets
a row for every run ever made. What the answers mean (failing too long, stuck) is decided by
:mod:`listener.health`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.engine import Db

# Newest finished run of one stage target; `runs(stage, started_at)` walks back from the newest.
# Runs chained in one second start at the same time: the later one (higher id) is the newer.
# SQLite's index ends with the rowid, so `id` orders it as it stands (no sort); PostgreSQL
# would otherwise return either of the two.
LAST_RUN_SQL = (
    "SELECT status, started_at, error FROM runs WHERE stage = ? AND target = ?"
    " AND status != 'running' ORDER BY stage DESC, started_at DESC, id DESC LIMIT 1"
)
LAST_OK_SQL = (
    "SELECT started_at, finished_at FROM runs WHERE stage = ? AND target = ? AND status = 'ok'"
    " ORDER BY stage DESC, started_at DESC, id DESC LIMIT 1"
)
# The failure streak starts with the oldest run after the last success (or the oldest run).
STREAK_START_SQL = (
    "SELECT started_at FROM runs WHERE stage = ? AND target = ? AND started_at > ?"
    " ORDER BY stage, started_at, id LIMIT 1"
)
# Runs still going, with their last sign of progress: the partial index idx_runs_running.
RUNNING_SQL = (
    "SELECT stage, target, started_at, coalesce(heartbeat_at, started_at) FROM runs"
    " WHERE status = 'running'"
)


@dataclass(frozen=True)
class FinishedRun:
    """How the newest finished run of a stage target ended."""

    status: str  # ok | error | interrupted (anything but 'running')
    started_at: str  # ISO time
    error: str | None  # as recorded (already scrubbed of secrets when written)


@dataclass(frozen=True)
class SuccessfulRun:
    """The newest run of a stage target that succeeded."""

    started_at: str  # ISO time; a failure streak is the runs after it
    finished_at: str | None  # ISO time


@dataclass(frozen=True)
class RunInProgress:
    """A run still marked 'running' (or left so by a process that died) and its last progress."""

    stage: str
    target: str
    started_at: str  # ISO time
    progress_at: str  # ISO time of its last heartbeat, or its start when it never beat


def last_finished(db: Db, stage: str, target: str) -> FinishedRun | None:
    """The newest finished run of ``stage``/``target``; None when it never finished one."""
    row = db.execute(LAST_RUN_SQL, [stage, target]).fetchone()
    if row is None:
        return None
    return FinishedRun(status=row[0], started_at=row[1], error=row[2])


def last_ok(db: Db, stage: str, target: str) -> SuccessfulRun | None:
    """The newest successful run of ``stage``/``target``; None when none ever succeeded."""
    row = db.execute(LAST_OK_SQL, [stage, target]).fetchone()
    if row is None:
        return None
    return SuccessfulRun(started_at=row[0], finished_at=row[1])


def streak_start(db: Db, stage: str, target: str, after: str) -> str | None:
    """When the current failure streak began: the start (ISO time) of the oldest run of
    ``stage``/``target`` that started after ``after`` (the last success's start, or ``""`` when
    it never succeeded: then the oldest run of all). None when no run started after it."""
    row = db.execute(STREAK_START_SQL, [stage, target, after]).fetchone()
    started: str | None = None if row is None else row[0]
    return started


def in_progress(db: Db) -> list[RunInProgress]:
    """Every run still marked 'running', with its last sign of progress (few rows: the partial
    index holds only those)."""
    return [RunInProgress(stage=row[0], target=row[1], started_at=row[2], progress_at=row[3])
            for row in db.execute(RUNNING_SQL).fetchall()]
