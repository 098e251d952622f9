"""Leases and workers (issue 17), on both engines: what many workers share a database with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import leases, workers
from storage.engine import Db

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_lease_is_held_by_one_worker_until_it_expires(any_db: Db) -> None:
    assert leases.take(any_db, "source:x", "w1", T0, 60)
    assert not leases.take(any_db, "source:x", "w2", T0 + timedelta(seconds=59), 60)
    assert leases.take(any_db, "source:x", "w1", T0 + timedelta(seconds=30), 60)  # renewed
    assert not leases.take(any_db, "source:x", "w2", T0 + timedelta(seconds=89), 60)
    # w1 died: once its renewed lease has run out, w2 takes the work
    assert leases.take(any_db, "source:x", "w2", T0 + timedelta(seconds=91), 60)
    [lease] = leases.listed(any_db)
    assert (lease.name, lease.owner) == ("source:x", "w2")


def test_a_batch_is_claimed_at_once_and_never_twice(any_db: Db) -> None:
    names = [f"classify:v1:{i}" for i in range(1, 7)]
    assert leases.take_many(any_db, names[:4], "w1", T0, 300) == names[:4]
    assert leases.take_many(any_db, names, "w2", T0, 300) == names[4:]
    assert leases.held_elsewhere(any_db, names, "w2", T0) == set(names[:4])
    assert leases.release(any_db, names[:2], "w1") == 2
    assert leases.release(any_db, names[2:4], "w2") == 0  # not its own: nothing released
    assert leases.take_many(any_db, names, "w2", T0, 300) == names[:2] + names[4:]
    assert leases.expired(any_db, T0 + timedelta(seconds=301)) == leases.listed(any_db)
    assert leases.release_all(any_db, "w1") == 2 and leases.release_all(any_db, "w2") == 4
    assert leases.listed(any_db) == []


def test_workers_register_beat_stop_and_are_listed(any_db: Db) -> None:
    workers.register(any_db, "a:1", "host-a", 1, ["collect", "rules"], T0)
    workers.register(any_db, "b:2", "host-b", 2, ["classify"], T0)
    workers.beat(any_db, "b:2", T0 + timedelta(seconds=10))
    workers.stopped(any_db, "a:1", T0 + timedelta(seconds=5))
    listed = workers.listed(any_db)
    assert [(w.id, w.stages, w.stopped_at) for w in listed] == [
        ("b:2", "classify", None), ("a:1", "collect,rules", "2026-12-06T12:00:05Z")]
    workers.register(any_db, "a:1", "host-a", 1, ["collect"], T0 + timedelta(seconds=20))
    assert workers.listed(any_db)[0].stopped_at is None  # restarted
    assert workers.forget_stopped(any_db, T0 + timedelta(seconds=20)) == 1  # b:2, unheard of


def test_two_classify_workers_claim_different_posts_and_a_dead_ones_come_back(
    any_db: Db,
) -> None:
    from listener.core.models import Page, Post, Score
    from storage import claims
    from storage import db as store

    posts = [Post("x", str(i), f"post {i}", T0, source="s") for i in range(1, 6)]
    store.store_page(any_db, "s", Page(posts), T0)
    first = claims.posts_to_score(any_db, "m", "v", 3, "w1", T0, 300)
    second = claims.posts_to_score(any_db, "m", "v", 3, "w2", T0, 300)
    assert [p.id for p in first] == [1, 2, 3] and [p.id for p in second] == [4, 5]
    score = Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v")
    store.save_scores(any_db, [(p.id, score, None) for p in second], T0)
    assert claims.release_scored(any_db, "m", "v", [p.id for p in second], "w2") == 2
    assert claims.posts_to_score(any_db, "m", "v", 9, "w2", T0, 300) == []  # w1 holds 1-3
    # w1 died with its batch: five minutes later the posts are claimed again, by w2
    later = claims.posts_to_score(any_db, "m", "v", 9, "w2", T0 + timedelta(seconds=301), 300)
    assert [p.id for p in later] == [1, 2, 3]
    # another model version is other work: not held by anyone
    assert len(claims.posts_to_score(any_db, "m", "v2", 9, "w1", T0, 300)) == 5


def test_the_runs_of_a_killed_worker_are_closed_once_it_went_quiet(any_db: Db) -> None:
    """Found by the crash harness on PostgreSQL: a SIGKILLed worker's runs stayed 'running'
    for ever and every worker's /healthz said STUCK ten minutes later."""
    from storage import db as store
    from storage import runs

    workers.register(any_db, "dead", "h", 1, ["rules"], T0)
    workers.register(any_db, "alive", "h", 2, ["rules"], T0)
    dead_run = store.start_run(any_db, "rules", "", T0, worker="dead")
    store.start_run(any_db, "rules", "", T0, worker="alive")
    later = T0 + timedelta(minutes=5)
    workers.beat(any_db, "alive", later)
    assert workers.close_runs_of_gone(any_db, later, later - timedelta(seconds=120)) == 1
    assert len(runs.in_progress(any_db)) == 1
    assert any_db.execute("SELECT status FROM runs WHERE id = ?", [dead_run]).fetchone()[0] \
        == "interrupted"
    # leases expired long ago go; a worker unheard of for a week is forgotten
    leases.take(any_db, "alert:x", "dead", T0, 60)
    assert leases.purge_expired(any_db, later - timedelta(seconds=300)) == 0  # not long enough
    assert leases.purge_expired(any_db, later) == 1
    assert workers.forget_stopped(any_db, T0 + timedelta(days=8)) == 2


def test_a_name_twice_in_one_batch_is_taken_once_and_answered_twice(any_db: Db) -> None:
    """PostgreSQL takes a batch in one statement, which may not update one row twice."""
    assert leases.take_many(any_db, ["a", "b", "a"], "w1", T0, 60) == ["a", "b", "a"]
    assert leases.take_many(any_db, ["a", "c", "a"], "w2", T0, 60) == ["c"]
    assert leases.release(any_db, ["a", "a", "b"], "w1") == 2
    assert [lease.name for lease in leases.listed(any_db)] == ["c"]
