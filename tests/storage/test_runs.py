"""storage.runs on a real SQLite file: the last finished run, the last success, where a failure
streak began and the runs still going, written by the same verbs the stages use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from storage import db as store
from storage import runs
from storage.runs import FinishedRun, RunInProgress, SuccessfulRun

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def ran(db: Database, stage: str, target: str, minutes: int, error: str | None = None) -> int:
    """One finished run of ``stage``/``target`` started ``minutes`` after T0, one minute long."""
    run = store.start_run(db, stage, target, T0 + timedelta(minutes=minutes))
    store.finish_run(db, run, T0 + timedelta(minutes=minutes + 1), items=1, error=error)
    return run


def test_a_stage_that_never_ran_has_no_runs_to_read(db: Database) -> None:
    assert runs.last_finished(db, "classify", "") is None
    assert runs.last_ok(db, "classify", "") is None
    assert runs.streak_start(db, "classify", "", "") is None
    assert runs.in_progress(db) == []


def test_the_last_finished_run_and_the_last_success_of_one_target(db: Database) -> None:
    ran(db, "collect", "x-main", 0)
    ran(db, "collect", "x-main", 10)
    ran(db, "collect", "x-other", 15, error="boom")  # another target: not this one's
    ran(db, "classify", "", 16, error="boom")  # another stage
    store.start_run(db, "collect", "x-main", T0 + timedelta(minutes=20))  # still going
    assert runs.last_finished(db, "collect", "x-main") == \
        FinishedRun(status="ok", started_at="2026-11-20T10:10:00Z", error=None)
    assert runs.last_ok(db, "collect", "x-main") == \
        SuccessfulRun(started_at="2026-11-20T10:10:00Z", finished_at="2026-11-20T10:11:00Z")
    assert runs.last_finished(db, "collect", "x-other") == \
        FinishedRun(status="error", started_at="2026-11-20T10:15:00Z", error="boom")
    assert runs.last_ok(db, "collect", "x-other") is None


def test_a_failure_streak_starts_with_the_first_run_after_the_last_success(db: Database) -> None:
    ran(db, "rules", "", 0, error="early failure")
    ran(db, "rules", "", 5)
    ran(db, "rules", "", 10, error="first of the streak")
    ran(db, "rules", "", 15, error="second of the streak")
    ok = runs.last_ok(db, "rules", "")
    assert ok is not None
    assert runs.streak_start(db, "rules", "", ok.started_at) == "2026-11-20T10:10:00Z"
    # never succeeded: the streak is every run, from the oldest
    assert runs.streak_start(db, "rules", "", "") == "2026-11-20T10:00:00Z"
    assert runs.streak_start(db, "rules", "", "2026-11-20T10:15:00Z") is None


def test_runs_in_progress_carry_their_last_heartbeat_or_their_start(db: Database) -> None:
    ran(db, "classify", "", 0)
    beating = store.start_run(db, "collect", "x-main", T0 + timedelta(minutes=1))
    store.beat_run(db, beating, T0 + timedelta(minutes=3))
    store.start_run(db, "dispatch", "hook", T0 + timedelta(minutes=2))
    assert sorted(runs.in_progress(db), key=lambda r: r.stage) == [
        RunInProgress("collect", "x-main", "2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z"),
        RunInProgress("dispatch", "hook", "2026-11-20T10:02:00Z", "2026-11-20T10:02:00Z"),
    ]
    store.close_interrupted_runs(db, T0 + timedelta(minutes=4))
    assert runs.in_progress(db) == []
    interrupted = runs.last_finished(db, "dispatch", "hook")
    assert interrupted is not None and interrupted.status == "interrupted"


def test_runs_in_progress_are_found_through_the_partial_index(db: Database) -> None:
    plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {runs.RUNNING_SQL}")]
    assert plan == ["SEARCH runs USING INDEX idx_runs_running (status=?)"], plan


def test_a_failure_in_the_same_second_as_the_last_success_is_a_streak(db: Database) -> None:
    """The health picture once crashed here (no run starts after the success: ``None[0]``)."""
    from listener.health import stage_state

    ok = store.start_run(db, "classify", "", T0)
    store.finish_run(db, ok, T0, items=1)
    failed = store.start_run(db, "classify", "", T0)  # chained right after, the same second
    store.finish_run(db, failed, T0 + timedelta(seconds=1), items=0, error="model missing")
    state = stage_state(db, "classify", "", 60.0)
    assert state.status == "error" and state.failing_since == state.last_run
