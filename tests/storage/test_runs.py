"""storage.runs on a real SQLite file: the last finished run, the last success, where a failure
streak began and the runs still going, written by the same verbs the stages use."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from storage import db as store
from storage import runs
from storage.db import open_db
from storage.engine import Db
from storage.runs import FinishedRun, RunInProgress, SuccessfulRun
from tests.pg_server import Server

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def ran(db: Db, stage: str, target: str, minutes: int, error: str | None = None) -> int:
    """One finished run of ``stage``/``target`` started ``minutes`` after T0, one minute long."""
    run = store.start_run(db, stage, target, T0 + timedelta(minutes=minutes))
    store.finish_run(db, run, T0 + timedelta(minutes=minutes + 1), items=1, error=error)
    return run


def test_a_stage_that_never_ran_has_no_runs_to_read(any_db: Db) -> None:
    assert runs.last_finished(any_db, "classify", "") is None
    assert runs.last_ok(any_db, "classify", "") is None
    assert runs.streak_start(any_db, "classify", "", "") is None
    assert runs.in_progress(any_db) == []


def test_the_last_finished_run_and_the_last_success_of_one_target(any_db: Db) -> None:
    ran(any_db, "collect", "x-main", 0)
    ran(any_db, "collect", "x-main", 10)
    ran(any_db, "collect", "x-other", 15, error="boom")  # another target: not this one's
    ran(any_db, "classify", "", 16, error="boom")  # another stage
    store.start_run(any_db, "collect", "x-main", T0 + timedelta(minutes=20))  # still going
    assert runs.last_finished(any_db, "collect", "x-main") == \
        FinishedRun(status="ok", started_at="2026-11-20T10:10:00Z", error=None)
    assert runs.last_ok(any_db, "collect", "x-main") == \
        SuccessfulRun(started_at="2026-11-20T10:10:00Z", finished_at="2026-11-20T10:11:00Z")
    assert runs.last_finished(any_db, "collect", "x-other") == \
        FinishedRun(status="error", started_at="2026-11-20T10:15:00Z", error="boom")
    assert runs.last_ok(any_db, "collect", "x-other") is None


def test_a_failure_streak_starts_with_the_first_run_after_the_last_success(any_db: Db) -> None:
    ran(any_db, "rules", "", 0, error="early failure")
    ran(any_db, "rules", "", 5)
    ran(any_db, "rules", "", 10, error="first of the streak")
    ran(any_db, "rules", "", 15, error="second of the streak")
    ok = runs.last_ok(any_db, "rules", "")
    assert ok is not None
    assert runs.streak_start(any_db, "rules", "", ok.started_at) == "2026-11-20T10:10:00Z"
    # never succeeded: the streak is every run, from the oldest
    assert runs.streak_start(any_db, "rules", "", "") == "2026-11-20T10:00:00Z"
    assert runs.streak_start(any_db, "rules", "", "2026-11-20T10:15:00Z") is None


def test_runs_in_progress_carry_their_last_heartbeat_or_their_start(any_db: Db) -> None:
    ran(any_db, "classify", "", 0)
    beating = store.start_run(any_db, "collect", "x-main", T0 + timedelta(minutes=1))
    store.beat_run(any_db, beating, T0 + timedelta(minutes=3))
    store.start_run(any_db, "dispatch", "hook", T0 + timedelta(minutes=2))
    assert sorted(runs.in_progress(any_db), key=lambda r: r.stage) == [
        RunInProgress("collect", "x-main", "2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z"),
        RunInProgress("dispatch", "hook", "2026-11-20T10:02:00Z", "2026-11-20T10:02:00Z"),
    ]
    store.close_interrupted_runs(any_db, T0 + timedelta(minutes=4))
    assert runs.in_progress(any_db) == []
    interrupted = runs.last_finished(any_db, "dispatch", "hook")
    assert interrupted is not None and interrupted.status == "interrupted"


def test_runs_in_progress_are_found_through_the_partial_index(db: Database) -> None:
    plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {runs.RUNNING_SQL}")]
    assert plan == ["SEARCH runs USING INDEX idx_runs_running (status=?)"], plan


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A PostgreSQL plan (``EXPLAIN (FORMAT JSON)``) node and every node under it."""
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def test_runs_in_progress_are_found_through_the_partial_index_on_postgresql(
    pg_server: Server,
) -> None:
    """PostgreSQL's planner reads the table's statistics: with thousands of finished runs and
    one going, the partial index is the way in (on a nearly empty table a scan would be)."""
    db = open_db(pg_server.new_database())
    try:
        db.execute("INSERT INTO runs (stage, target, started_at, finished_at, status, items)"
                   " SELECT 'collect', 'x-main', '2026-11-20T10:00:00Z', '2026-11-20T10:01:00Z',"
                   " 'ok', 1 FROM generate_series(1, 5000)")
        store.start_run(db, "collect", "x-main", T0)
        db.execute("ANALYZE runs")
        [(plan,)] = db.execute(f"EXPLAIN (FORMAT JSON) {runs.RUNNING_SQL}").fetchall()
        nodes = list(plan_nodes(plan[0]["Plan"]))
        assert [n.get("Index Name") for n in nodes if "Index Name" in n] == \
            ["idx_runs_running"], plan
        assert not any(n["Node Type"] == "Seq Scan" for n in nodes), plan
    finally:
        db.close()


def test_a_failure_in_the_same_second_as_the_last_success_is_a_streak(any_db: Db) -> None:
    """The health picture once crashed here (no run starts after the success: ``None[0]``)."""
    from listener.health import stage_state

    ok = store.start_run(any_db, "classify", "", T0)
    store.finish_run(any_db, ok, T0, items=1)
    failed = store.start_run(any_db, "classify", "", T0)  # chained right after, the same second
    store.finish_run(any_db, failed, T0 + timedelta(seconds=1), items=0, error="model missing")
    state = stage_state(any_db, "classify", "", 60.0)
    assert state.status == "error" and state.failing_since == state.last_run
